"""Fixed-capacity FIFO of activation rows with a running column sum (TANL's ID and OOD memories)."""
from __future__ import annotations

import torch

__all__ = ["ActivationQueue"]


class ActivationQueue:
    """FIFO of at most ``capacity`` rows of width N (official ``memleng`` rows of corpus activations).

    A ring buffer: ``push`` writes over the oldest rows in place, and a float64 running column sum makes ``mean``
    O(N) instead of O(capacity x N). The sum is recomputed from the buffer after every ``resync_every`` rows
    written, so rounding never accumulates over long streams.

    Args:
        capacity: maximum number of rows kept (L).
        width: row width (N, the corpus size).
        device: where the buffer lives.
        resync_every: rows written between exact recomputations of the sum (default 8 x capacity).
    """

    def __init__(self, capacity: int, width: int, device: torch.device | str | None = None,
                 resync_every: int | None = None):
        self.capacity = int(capacity)
        self.width = int(width)
        self.resync_every = int(resync_every or 8 * self.capacity)
        self.buffer = torch.zeros(self.capacity, self.width, dtype=torch.float32, device=device)
        self.column_sum = torch.zeros(self.width, dtype=torch.float64, device=device)
        self.count = 0  # rows held; while count < capacity they sit in slots [0, count)
        self.head = 0  # slot of the next write (= slot of the oldest row once full)
        self._written_since_resync = 0

    def fill(self, rows: torch.Tensor) -> None:
        """Replace the contents by ``rows`` [R, N] (only the last ``capacity`` are kept, in order)."""
        self.count = 0
        self.head = 0
        self.push(rows)
        self.resync()

    def push(self, rows: torch.Tensor, row_sum: torch.Tensor | None = None) -> None:
        """Append ``rows`` [R, N] in order, evicting the oldest rows beyond ``capacity``.

        ``row_sum`` ([N], optional) is ``rows.sum(0)`` when the caller already has it.
        """
        if rows.shape[0] > self.capacity:
            rows, row_sum = rows[-self.capacity:], None
        num_rows = rows.shape[0]
        if num_rows == 0:
            return
        self.column_sum += (rows.sum(0) if row_sum is None else row_sum).double()
        # The write covers at most two contiguous slices; the slots it overwrites hold exactly the rows evicted.
        first = min(num_rows, self.capacity - self.head)
        for start, source in ((self.head, rows[:first]), (0, rows[first:])):
            if source.shape[0] == 0:
                continue
            stop = start + source.shape[0]
            held_stop = stop if self.count == self.capacity else min(stop, self.count)
            if held_stop > start:
                self.column_sum -= self.buffer[start:held_stop].sum(0).double()
            self.buffer[start:stop].copy_(source)
        self.head = (self.head + num_rows) % self.capacity
        self.count = min(self.count + num_rows, self.capacity)
        self._written_since_resync += num_rows
        if self._written_since_resync >= self.resync_every:
            self.resync()

    def push_selected(self, source: torch.Tensor, index: torch.Tensor, chunk_rows: int = 8) -> torch.Tensor:
        """``push(source[index])`` with the rows gathered straight into their slots (no intermediate copy).

        Args:
            source: [B, N] rows to choose from (a view is fine: it is only read).
            index: [R] row indices into ``source``, in push order.
            chunk_rows: rows handled at a time: each chunk's evicted rows are summed, overwritten and the new
                rows summed while they are in cache (one pass over memory fewer than sum, write, sum).

        Returns:
            [N] float32 sum of the R pushed rows (``source[index].sum(0)``, as the caller's batch statistic).
        """
        num_rows = index.numel()
        total = torch.zeros(self.width, dtype=torch.float32, device=self.buffer.device)
        if num_rows == 0:
            return total
        if num_rows > self.capacity:  # only the last rows stay: gather all once for the sum, keep the tail
            rows = source.index_select(0, index)
            self.push(rows, None)
            return total.add_(rows.sum(0))
        evicted = torch.zeros_like(total)
        held_stop = self.capacity if self.count == self.capacity else self.count  # slots [0, held_stop) hold rows
        first = min(num_rows, self.capacity - self.head)
        for start, part in ((self.head, index[:first]), (0, index[first:])):
            for offset in range(0, part.numel(), chunk_rows):
                rows = part[offset:offset + chunk_rows]
                begin = start + offset
                slots = self.buffer[begin:begin + rows.numel()]
                held = min(rows.numel(), held_stop - begin)
                if held > 0:
                    evicted.add_(slots[:held].sum(0))
                torch.index_select(source, 0, rows, out=slots)
                total.add_(slots.sum(0))
        self.column_sum += total.double() - evicted.double()
        self.head = (self.head + num_rows) % self.capacity
        self.count = min(self.count + num_rows, self.capacity)
        self._written_since_resync += num_rows
        if self._written_since_resync >= self.resync_every:
            self.resync()
        return total

    def resync(self) -> None:
        """Recompute the running sum exactly (float64) from the rows held, row by row into the float64 sum (a
        float64 copy of the buffer would cost more time and memory than the sum)."""
        self.column_sum.zero_()
        for row in self.buffer[: self.count]:
            self.column_sum.add_(row)
        self._written_since_resync = 0

    def rows(self) -> torch.Tensor:
        """The rows held, oldest first: [count, N] (a copy)."""
        if self.count < self.capacity:
            return self.buffer[: self.count].clone()
        return torch.cat([self.buffer[self.head:], self.buffer[: self.head]])

    def mean(self) -> torch.Tensor:
        """Column mean of the rows held, [N] float32 (NaN when empty)."""
        return (self.column_sum / self.count if self.count else torch.full_like(self.column_sum, float("nan"))).float()
