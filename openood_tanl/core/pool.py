"""Activation rows held by FIFO memories, stored once however many memories hold them."""
from __future__ import annotations

import heapq

import torch

__all__ = ["ActivationPool", "SUM_BLOCK"]

#: Source rows per block of ``ActivationPool.pieces`` (the unit of summing shared between memories).
SUM_BLOCK = 64


class ActivationPool:
    """Slots of float32 rows of width N, each counted by the memories that hold it (``ActivationQueue``).

    Engines stepping on one stream in lockstep (``core.Lockstep``) push the same batch's softmax rows into their
    memories: sharing one pool, a row several memories take is copied once, and a piece of rows several memories
    push is summed once. A batch is told apart by its source tensor (the object and its in-place version), so a
    new batch never reuses the previous one's rows or sums.

    Args:
        width: row width (N, the corpus size).
        device: where the rows live.
        rows: slots allocated up front (more are added as needed; untouched CPU pages cost no memory).
    """

    def __init__(self, width: int, device: torch.device | str | None = None, rows: int = 0):
        self.width = int(width)
        self.storage = torch.empty(0, self.width, dtype=torch.float32, device=device)
        self._holders: list[int] = []  # memories holding each slot's row (0 = free)
        self._free: list[int] = []  # heap of free slots: the lowest first, so a batch's rows land side by side
        self._source: torch.Tensor | None = None
        self._source_version = -1
        self._slot_of: dict[int, int] = {}  # row of the current source -> its slot
        self._row_in: dict[int, int] = {}  # the reverse
        self._sums: dict[tuple[int, ...], torch.Tensor] = {}  # rows of the current source -> their sum
        self.reserve(rows)

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state.update(_source=None, _source_version=-1, _slot_of={}, _row_in={}, _sums={})  # per-batch only
        return state

    @property
    def device(self) -> torch.device:
        return self.storage.device

    @property
    def rows_held(self) -> int:
        """Slots holding a row."""
        return len(self._holders) - len(self._free)

    def reserve(self, rows: int) -> None:
        """Make room for at least ``rows`` slots in all."""
        old = self.storage.shape[0]
        if rows <= old:
            return
        storage = torch.empty(rows, self.width, dtype=torch.float32, device=self.device)
        held = [slot for slot, holders in enumerate(self._holders) if holders]
        if held:
            index = torch.tensor(held, device=self.device)
            storage.index_copy_(0, index, self.storage.index_select(0, index))
        self.storage = storage
        self._holders += [0] * (rows - old)
        for slot in range(old, rows):
            heapq.heappush(self._free, slot)

    def add(self, rows: torch.Tensor) -> list[int]:
        """Copy [R, N] ``rows`` into new slots, held once each; returns the slots."""
        slots = self._allocate(rows.shape[0])
        for slot in slots:
            self._holders[slot] = 1
        if slots:
            self.storage.index_copy_(0, torch.tensor(slots, device=self.device), rows.to(self.storage))
        return slots

    def take(self, source: torch.Tensor, piece: tuple[int, ...], column: int = 0) -> tuple[list[int], torch.Tensor]:
        """Hold ``source[piece, column:]`` once more each; returns their slots (a row already taken from this
        source shares its slot) and the piece's sum (``piece_sum``).

        Args:
            source: [B, column + N] the batch's rows (e.g. the softmax over [ID | corpus]); only read.
            piece: distinct row indices into ``source`` (a piece of ``pieces``).
            column: first column of the held part.
        """
        self._use(source)
        new = [row for row in piece if row not in self._slot_of]
        for row, slot in zip(new, self._allocate(len(new))):
            self._slot_of[row], self._row_in[slot] = slot, row
        total = self._sums.get(piece)
        if self.device.type == "cpu":  # row after row: a new row is summed while in cache, right after its copy
            fresh = set(new)
            for row in piece:
                held = self.storage[self._slot_of[row]]
                if row in fresh:
                    held.copy_(source[row, column:])
                if piece not in self._sums:
                    total = held.clone() if total is None else total.add_(held)
        elif new:
            index = torch.tensor([self._slot_of[row] for row in new], device=self.device)
            self.storage.index_copy_(0, index, source[torch.tensor(new, device=source.device), column:])
        if piece not in self._sums:
            self._sums[piece] = total if total is not None else self._sum_rows(source, piece, column)
        slots = [self._slot_of[row] for row in piece]
        for slot in slots:
            self._holders[slot] += 1
        return slots, self._sums[piece]

    @staticmethod
    def pieces(rows: list[int]) -> list[tuple[int, ...]]:
        """``rows`` cut into pieces: the runs of rows in one block of ``SUM_BLOCK`` consecutive source rows."""
        pieces, start = [], 0
        while start < len(rows):
            end, block = start + 1, rows[start] // SUM_BLOCK
            while end < len(rows) and rows[end] // SUM_BLOCK == block:
                end += 1
            pieces.append(tuple(rows[start:end]))
            start = end
        return pieces

    def piece_sum(self, source: torch.Tensor, piece: tuple[int, ...], column: int = 0) -> torch.Tensor:
        """[N] float32 sum of ``source[piece, column:]`` (a piece of ``pieces``, summed row after row), computed
        once per source and piece: memories taking nearly the same rows share most of the work, and a sum never
        depends on who else summed what. The sum is shared: only read it."""
        self._use(source)
        if piece not in self._sums:
            self._sums[piece] = self._sum_rows(source, piece, column)
        return self._sums[piece]

    def slot_sum(self, slots: list[int]) -> torch.Tensor:
        """[N] float32 sum of the rows in ``slots``, row after row (as ``piece_sum``)."""
        total = torch.zeros(self.width, dtype=torch.float32, device=self.device)
        for slot in slots:
            total.add_(self.storage[slot])
        return total

    def rows(self, slots: list[int]) -> torch.Tensor:
        """[len(slots), N] copy of the rows in ``slots``."""
        return self.storage.index_select(0, torch.tensor(slots, dtype=torch.long, device=self.device))

    def release(self, slots: list[int]) -> None:
        """Hold each slot's row once less; a row no memory holds frees its slot."""
        for slot in slots:
            self._holders[slot] -= 1
            if self._holders[slot] == 0:
                heapq.heappush(self._free, slot)
                if slot in self._row_in:  # a freed row of this batch is taken afresh
                    del self._slot_of[self._row_in.pop(slot)]

    # ------------------------------------------------------------------ pieces
    def _use(self, source: torch.Tensor) -> None:
        """Start a new batch when ``source`` is not the current one (another tensor, or written since)."""
        if source is not self._source or source._version != self._source_version:
            self._source, self._source_version = source, source._version
            self._slot_of, self._row_in, self._sums = {}, {}, {}

    def _sum_rows(self, source: torch.Tensor, rows: tuple[int, ...], column: int) -> torch.Tensor:
        """[N] float32 sum of ``source[rows, column:]``: on the CPU row after row (element-wise adds in a fixed
        order, the same bits wherever the rows are read from, as ``take``); elsewhere one reduction."""
        if self.device.type != "cpu":
            return source[torch.tensor(rows, device=source.device), column:].sum(0)
        total = source[rows[0], column:].clone()
        for row in rows[1:]:
            total.add_(source[row, column:])
        return total

    def _allocate(self, count: int) -> list[int]:
        """``count`` free slots, lowest first (the pool grows when it has too few)."""
        if count > len(self._free):
            self.reserve(max(2 * self.storage.shape[0], self.rows_held + count))
        return [heapq.heappop(self._free) for _ in range(count)]
