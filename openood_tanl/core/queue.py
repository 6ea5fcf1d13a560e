"""Fixed-capacity FIFO of activation rows with a running column sum (TANL's ID and OOD memories)."""
from __future__ import annotations

import torch

__all__ = ["ActivationQueue"]


class ActivationQueue:
    """FIFO of at most ``capacity`` rows of width N (official ``memleng`` rows of corpus activations).

    A ring buffer: ``push`` writes over the oldest rows, and a float64 running sum makes ``mean`` O(N) instead of
    O(capacity x N). The sum is recomputed from the buffer every time the ring has been overwritten once, so rounding
    never accumulates over long streams.

    Args:
        capacity: maximum number of rows kept (L).
        width: row width (N, the corpus size).
        device: where the buffer lives.
    """

    def __init__(self, capacity: int, width: int, device: torch.device | str | None = None):
        self.capacity = int(capacity)
        self.width = int(width)
        self.buffer = torch.zeros(self.capacity, self.width, dtype=torch.float32, device=device)
        self.column_sum = torch.zeros(self.width, dtype=torch.float64, device=device)
        self.count = 0  # rows held
        self.head = 0  # slot of the next write (= slot of the oldest row once full)
        self._writes_since_resync = 0

    def fill(self, rows: torch.Tensor) -> None:
        """Replace the contents by ``rows`` [R, N] (only the last ``capacity`` are kept, in order)."""
        self.count = 0
        self.head = 0
        self.column_sum.zero_()
        self.push(rows)

    def push(self, rows: torch.Tensor) -> None:
        """Append ``rows`` [R, N] in order, evicting the oldest rows beyond ``capacity``."""
        rows = rows[-self.capacity:]
        num_rows = rows.shape[0]
        if num_rows == 0:
            return
        slots = (self.head + torch.arange(num_rows, device=self.buffer.device)) % self.capacity
        evicted = max(0, self.count + num_rows - self.capacity)
        if evicted:
            oldest = (self.head - self.count + torch.arange(evicted, device=self.buffer.device)) % self.capacity
            self.column_sum -= self.buffer.index_select(0, oldest).sum(0, dtype=torch.float64)
        self.buffer.index_copy_(0, slots, rows.to(self.buffer.dtype))
        self.column_sum += rows.sum(0, dtype=torch.float64)
        self.head = (self.head + num_rows) % self.capacity
        self.count = min(self.count + num_rows, self.capacity)
        self._writes_since_resync += num_rows
        if self._writes_since_resync >= self.capacity:
            self.resync()

    def resync(self) -> None:
        """Recompute the running sum exactly from the rows held."""
        self.column_sum = self.rows().sum(0, dtype=torch.float64)
        self._writes_since_resync = 0

    def rows(self) -> torch.Tensor:
        """The rows held, oldest first: [count, N]."""
        order = (self.head - self.count + torch.arange(self.count, device=self.buffer.device)) % self.capacity
        return self.buffer.index_select(0, order)

    def mean(self) -> torch.Tensor:
        """Column mean of the rows held, [N] float32 (NaN when empty)."""
        return (self.column_sum / self.count if self.count else torch.full_like(self.column_sum, float("nan"))).float()
