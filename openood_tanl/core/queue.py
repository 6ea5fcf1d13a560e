"""Fixed-capacity FIFO of activation rows with a running column sum (TANL's ID and OOD memories)."""
from __future__ import annotations

from collections import deque

import torch

from .pool import SUM_BLOCK, ActivationPool

__all__ = ["ActivationQueue"]


class ActivationQueue:
    """FIFO of at most ``capacity`` rows of width N (official ``memleng`` rows of corpus activations).

    The rows live in an ``ActivationPool`` (the queue holds their slots), which the memories of several engines on
    one stream may share. A float64 running column sum makes ``mean`` O(N) instead of O(capacity x N). The held
    rows are tracked as pieces, oldest first, each with its float32 sum (``ActivationPool.piece_sum``: at most
    ``SUM_BLOCK`` rows of one batch): a piece that leaves whole is subtracted as it was added, without reading its
    rows, so the running sum never drifts from the sum of the held pieces' sums; a piece that leaves in part costs
    a read of the smaller of its leaving and staying parts. At most ``max_pieces`` are kept (the newest absorbs
    further rows). ``resync`` recomputes every sum from the rows.

    Args:
        capacity: maximum number of rows kept (L).
        width: row width (N, the corpus size).
        device: where the rows live (that of ``pool`` when given).
        max_pieces: piece sums kept ([N] each).
        pool: where the rows are stored (a pool of ``capacity`` rows of its own when None).
    """

    def __init__(self, capacity: int, width: int, device: torch.device | str | None = None,
                 max_pieces: int = 64, pool: ActivationPool | None = None):
        self.capacity = int(capacity)
        self.width = int(width)
        self.max_pieces = max(int(max_pieces), 1)
        self.pool = pool if pool is not None else ActivationPool(self.width, device, self.capacity)
        if self.pool.width != self.width:
            raise ValueError(f"the pool holds rows of width {self.pool.width}, not {self.width}")
        self.column_sum = torch.zeros(self.width, dtype=torch.float64, device=self.pool.device)
        self._slots: deque[int] = deque()  # pool slots of the rows held, oldest first
        self._pieces: deque[list] = deque()  # [rows, sum [N]] per piece of held rows, oldest first; sums only read

    @property
    def count(self) -> int:
        """Rows held."""
        return len(self._slots)

    def fill(self, rows: torch.Tensor) -> None:
        """Replace the contents by ``rows`` [R, N] (only the last ``capacity`` are kept, in order)."""
        self.clear()
        self.push(rows)

    def clear(self) -> None:
        """Hold no rows (their slots go back to the pool)."""
        self.pool.release(list(self._slots))
        self._slots.clear()
        self._pieces.clear()
        self.column_sum.zero_()

    def move_to(self, pool: ActivationPool) -> None:
        """Store the rows held in ``pool`` from now on (copied there; sums and order unchanged)."""
        if pool is self.pool:
            return
        if pool.width != self.width:
            raise ValueError(f"the pool holds rows of width {pool.width}, not {self.width}")
        slots = pool.add(self.rows()) if self._slots else []
        self.pool.release(list(self._slots))
        self.pool, self._slots = pool, deque(slots)

    def push(self, rows: torch.Tensor) -> None:
        """Append ``rows`` [R, N] in order, evicting the oldest rows beyond ``capacity``."""
        rows = rows[-self.capacity:]
        if rows.shape[0] == 0:
            return
        self._evict(rows.shape[0])
        self._slots.extend(self.pool.add(rows))
        for piece in rows.split(SUM_BLOCK):
            self._append(piece.shape[0], piece.sum(0))

    def push_selected(self, source: torch.Tensor, index: torch.Tensor, column: int = 0) -> torch.Tensor:
        """``push(source[index, column:])``, the rows taken into the pool straight from ``source``.

        Args:
            source: [B, column + N] rows to choose from (e.g. the batch's softmax over [ID | corpus]); only read.
            index: [R] distinct row indices into ``source``, in push order.
            column: first column of the pushed part.

        Returns:
            [N] float32 sum of the R pushed rows (``source[index, column:].sum(0)``, the caller's batch statistic),
            added piece by piece.
        """
        rows = index.tolist()
        kept = rows[-self.capacity:]
        total = torch.zeros(self.width, dtype=torch.float32, device=self.pool.device)
        for piece in self.pool.pieces(rows[:len(rows) - len(kept)]):  # past capacity: summed, not kept
            total.add_(self.pool.piece_sum(source, piece, column))
        self._evict(len(kept))
        for piece in self.pool.pieces(kept):
            slots, piece_sum = self.pool.take(source, piece, column)
            self._slots.extend(slots)
            total.add_(piece_sum)
            self._append(len(piece), piece_sum)
        return total

    def resync(self) -> None:
        """Recompute every piece's sum from its rows, and the running sum from them."""
        self.column_sum.zero_()
        slots = iter(self._slots)
        for piece in self._pieces:
            piece[1] = self.pool.slot_sum([next(slots) for _ in range(piece[0])])
            self.column_sum.add_(piece[1])

    def rows(self) -> torch.Tensor:
        """The rows held, oldest first: [count, N] (a copy)."""
        return self.pool.rows(list(self._slots))

    def mean(self) -> torch.Tensor:
        """Column mean of the rows held, [N] float32 (NaN when empty)."""
        return (self.column_sum / self.count if self.count else torch.full_like(self.column_sum, float("nan"))).float()

    # ------------------------------------------------------------------ pieces
    def _evict(self, num_rows: int) -> None:
        """Drop the oldest rows so that ``num_rows`` more fit, taking their sum out of the running sum."""
        excess = self.count + num_rows - self.capacity
        while excess > 0:
            size, piece_sum = self._pieces[0]
            leaving = min(size, excess)
            slots = [self._slots.popleft() for _ in range(leaving)]
            if leaving == size:  # leaves whole: subtracted as it was added
                self.column_sum.sub_(piece_sum)
                self._pieces.popleft()
            else:  # leaves in part: read the smaller part
                # float64 differences: what leaves now and what stays add up to what was added
                if leaving <= size - leaving:
                    evicted = self.pool.slot_sum(slots)
                    staying = piece_sum.double() - evicted
                else:
                    staying = self.pool.slot_sum([self._slots[i] for i in range(size - leaving)])
                    evicted = piece_sum.double() - staying
                self.column_sum.sub_(evicted)
                self._pieces[0] = [size - leaving, staying]
            self.pool.release(slots)
            excess -= leaving

    def _append(self, size: int, piece_sum: torch.Tensor) -> None:
        """Record ``size`` rows appended to ``_slots`` whose sum is ``piece_sum`` (kept, only read)."""
        self.column_sum.add_(piece_sum)
        if len(self._pieces) == self.max_pieces:  # the newest piece absorbs the rows
            self._pieces[-1] = [self._pieces[-1][0] + size, self._pieces[-1][1].double() + piece_sum]
        else:
            self._pieces.append([size, piece_sum])
