"""TANL's ID and OOD memories: a fixed-capacity FIFO of activation rows with a running column sum, vectorised."""
from __future__ import annotations

from collections import deque

import torch

from .errors import UserError

__all__ = ["ActivationMemory"]


class ActivationMemory:
    """FIFO of at most ``capacity`` rows of width N (official ``memleng`` rows of corpus activations).

    The rows live in one [capacity, N] float32 ring on the device, gathered there straight from their source. Each
    push is one chunk of rows with its float32 sum; a float64 running column sum (``mean`` is O(N)) adds a chunk's
    sum when it enters and subtracts the same value when it leaves whole, so it never drifts from the held rows; a
    chunk that leaves in part costs one read of the smaller of its leaving and staying parts. At most
    ``max_chunks`` chunk sums are kept (the newest absorbs further rows). Every push or eviction is a handful of
    tensor ops whatever the number of rows, and the bookkeeping (chunk sizes, the ring position) lives on the
    host: no host sync.

    Args:
        capacity: maximum number of rows kept (L).
        width: row width (N, the corpus size).
        device: where the rows live.
        max_chunks: chunk sums kept ([N] each).
    """

    def __init__(self, capacity: int, width: int, device: torch.device | str | None = None, max_chunks: int = 64):
        self.capacity = int(capacity)
        self.width = int(width)
        self.max_chunks = max(int(max_chunks), 1)
        self.storage = torch.zeros(self.capacity, self.width, dtype=torch.float32, device=device)
        self.column_sum = torch.zeros(self.width, dtype=torch.float64, device=device)
        self._start = 0  # ring position of the oldest row
        self._count = 0
        self._chunks: deque[list] = deque()  # [rows, sum [N]] per chunk of held rows, oldest first

    @property
    def device(self) -> torch.device:
        return self.storage.device

    @property
    def count(self) -> int:
        """Rows held."""
        return self._count

    def chunk_sums(self) -> list[tuple[int, torch.Tensor]]:
        """(rows, their sum [N]) of each chunk held, oldest first (read-only; they add up to ``column_sum``)."""
        return [(size, chunk_sum) for size, chunk_sum in self._chunks]

    def state_dict(self) -> dict:
        """What the memory holds, as tensors and ints (``torch.save``-able, loadable with ``weights_only=True``):
        ``load_state_dict`` of it continues bitwise."""
        sums = [chunk_sum.double() for _, chunk_sum in self._chunks]  # float32 sums are exact in float64
        return {"storage": self.storage.clone(), "start": self._start, "count": self._count,
                "chunk_sizes": torch.tensor([size for size, _ in self._chunks], dtype=torch.long),
                "chunk_sums": torch.stack(sums) if sums else torch.zeros(0, self.width, dtype=torch.float64),
                "column_sum": self.column_sum.clone()}

    def load_state_dict(self, state: dict) -> None:
        """Hold what ``state`` (a ``state_dict`` of a memory of the same capacity and width) holds."""
        storage = state["storage"]
        if tuple(storage.shape) != tuple(self.storage.shape):
            raise UserError(f"the state holds a memory of {tuple(storage.shape)} rows x width, this one is "
                            f"{tuple(self.storage.shape)}: load it into an engine of the same memory_length and "
                            "corpus")
        self.storage.copy_(storage)
        self._start, self._count = int(state["start"]), int(state["count"])
        self.column_sum.copy_(state["column_sum"])
        self._chunks = deque([int(size), chunk_sum.to(self.device)]
                             for size, chunk_sum in zip(state["chunk_sizes"].tolist(), state["chunk_sums"]))

    def fill(self, rows: torch.Tensor) -> None:
        """Replace the contents by ``rows`` [R, N] (only the last ``capacity`` are kept, in order)."""
        self.clear()
        self.push(rows)

    def clear(self) -> None:
        """Hold no rows."""
        self._start = self._count = 0
        self._chunks.clear()
        self.column_sum.zero_()

    def push(self, rows: torch.Tensor) -> None:
        """Append ``rows`` [R, N] in order, evicting the oldest rows beyond ``capacity``."""
        kept = rows[-self.capacity:]
        if kept.shape[0]:
            self._append(kept.shape[0], lambda target, start, stop: target.copy_(kept[start:stop]))

    def push_selected(self, source: torch.Tensor, index: torch.Tensor, column: int = 0) -> torch.Tensor:
        """``push(source[index, column:])``, the rows gathered from ``source`` straight into the ring; returns the
        [N] float32 sum of those rows (the batch statistic the caller blends with the memory mean), past-capacity
        rows included.

        Args:
            source: [B, column + N] rows to choose from (e.g. the batch's softmax over [ID | corpus]); only read.
            index: [R] row indices into ``source``, in push order.
            column: first column of the pushed part.
        """
        if index.numel() == 0:
            return torch.zeros(self.width, dtype=torch.float32, device=self.device)
        part, kept = source[:, column:], index[-self.capacity:]
        total = self._append(kept.numel(),
                             lambda target, start, stop: torch.index_select(part, 0, kept[start:stop], out=target))
        if kept.numel() < index.numel():  # rows past capacity count in the batch statistic, not in the memory
            total = total + part.index_select(0, index[: index.numel() - kept.numel()]).sum(0)
        return total

    def rows(self) -> torch.Tensor:
        """The rows held, oldest first: [count, N] (a copy)."""
        return self.storage.index_select(0, self._positions(0, self._count))

    def mean(self) -> torch.Tensor:
        """Column mean of the rows held, [N] float32 (NaN when empty)."""
        if not self._count:
            return torch.full((self.width,), float("nan"), dtype=torch.float32, device=self.device)
        return (self.column_sum / self._count).float()

    # ------------------------------------------------------------------ the ring
    def _positions(self, offset: int, size: int) -> torch.Tensor:
        """Ring positions of the ``size`` rows from the ``offset``-th oldest on."""
        return (torch.arange(size, device=self.device) + (self._start + offset)) % self.capacity

    def _float64_sum(self, offset: int, size: int) -> torch.Tensor:
        """[N] float64 sum of the ``size`` rows from the ``offset``-th oldest on (one or, across the end of the ring,
        two slices)."""
        first = (self._start + offset) % self.capacity
        room = self.capacity - first
        total = self.storage[first:first + min(size, room)].sum(0, dtype=torch.float64)
        if size > room:
            total = total + self.storage[: size - room].sum(0, dtype=torch.float64)
        return total

    def _append(self, size: int, write) -> torch.Tensor:
        """Append ``size`` <= capacity rows, written by ``write(target, start, stop)`` (rows ``start:stop`` of them
        into the ring rows ``target``: one or, across the end of the ring, two slices); returns their float32 sum."""
        self._evict(size)
        first = (self._start + self._count) % self.capacity
        room = self.capacity - first
        rows_sum = None
        for position, start, stop in ((first, 0, min(size, room)), (0, room, size)):
            if stop > start:
                target = self.storage[position:position + stop - start]
                write(target, start, stop)
                rows_sum = target.sum(0) if rows_sum is None else rows_sum + target.sum(0)
        self._count += size
        self.column_sum.add_(rows_sum)
        if len(self._chunks) == self.max_chunks:  # the newest chunk absorbs the rows
            chunk_size, chunk_sum = self._chunks[-1]
            self._chunks[-1] = [chunk_size + size, chunk_sum.double() + rows_sum]
        else:
            self._chunks.append([size, rows_sum])
        return rows_sum

    def _evict(self, incoming: int) -> None:
        """Drop the oldest rows so that ``incoming`` more fit, taking their sum out of the running sum."""
        excess = self._count + incoming - self.capacity
        while excess > 0:
            size, chunk_sum = self._chunks[0]
            leaving = min(size, excess)
            if leaving == size:  # leaves whole: subtracted as it was added
                self.column_sum.sub_(chunk_sum)
                self._chunks.popleft()
            else:  # leaves in part: read the smaller part; float64 parts add up to what was added
                if leaving <= size - leaving:
                    evicted = self._float64_sum(0, leaving)
                    staying = chunk_sum.double() - evicted
                else:
                    staying = self._float64_sum(leaving, size - leaving)
                    evicted = chunk_sum.double() - staying
                self.column_sum.sub_(evicted)
                self._chunks[0] = [size - leaving, staying]
            self._start = (self._start + leaving) % self.capacity
            self._count -= leaving
            excess -= leaving
