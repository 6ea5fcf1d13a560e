"""Named scratch buffers that persist across steps.

Large fresh allocations cost page faults on every step (the allocator hands big blocks back to the system when
they are freed), so an engine keeps its per-batch intermediates in buffers that only grow: for a steady batch size
each is allocated on the first step and reused for the rest of the stream. Buffers are scratch, never state:
a pickled ``Workspaces`` is an empty one.
"""
from __future__ import annotations

import torch

__all__ = ["Workspaces"]


class Workspaces:
    """``get(name, rows, width, dtype)`` -> a [rows, width] view of the buffer called ``name``, grown (never
    shrunk) to at least ``rows`` rows; reallocated when its width, dtype or device change."""

    def __init__(self):
        self._buffers: dict[str, torch.Tensor] = {}

    def __reduce__(self):
        return (Workspaces, ())

    def get(self, name: str, rows: int, width: int, dtype: torch.dtype = torch.float32,
            device: torch.device | str | None = None) -> torch.Tensor:
        buffer = self._buffers.get(name)
        device = torch.device(device) if device is not None else torch.device("cpu")
        if (buffer is None or buffer.shape[0] < rows or buffer.shape[1] != width or buffer.dtype != dtype
                or buffer.device != device):
            buffer = torch.empty(max(rows, 1), width, dtype=dtype, device=device)
            self._buffers[name] = buffer
        return buffer[:rows]

    def shapes(self) -> dict[str, tuple[tuple[int, ...], torch.dtype]]:
        """name -> (shape, dtype) of every buffer held."""
        return {name: (tuple(buffer.shape), buffer.dtype) for name, buffer in self._buffers.items()}
