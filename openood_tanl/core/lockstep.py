"""Several engines reading the same stream, stepping on shared work (the methods of a leaderboard, the values of a
sweep, both at once).

The whole cost floor of a batch is one matrix product against the text bank and its softmax; engines built from
one bank multiply the same batch by the same text. ``Lockstep`` checks each batch once, computes the logits
``(logit_scale * features) @ [ID | corpus].T`` once, gathers the columns each engine scores against once per
distinct set of columns, and computes the softmax of the logits once, on first use. Every engine's ``step_logits``
only reads them, so each engine's results are those of its own ``step`` on the same stream (bitwise on the CPU,
where a matrix product's columns do not depend on which other columns are computed; docs/DESIGN.md).
"""
from __future__ import annotations

from typing import Mapping

import torch

from .errors import UserError
from .scoring import gather_columns
from .validation import as_rows, check_batch, check_logit_scale
from .workspace import Workspaces

__all__ = ["Lockstep", "Locksteps"]


class Lockstep:
    """Engines on one stream: ``step(features) -> {label: (pred, score)}``.

    Args:
        engines: label -> engine built from the bank whose texts follow (each engine's ``bank_columns``, the
            ``Engine`` contract, says which columns of the bank's [ID | corpus] logits it scores against).
        id_text: [C, D] and corpus_text: [N, D], the bank's L2-normalised texts; logit_scale: its multiplier.

    ``reset()`` resets every engine; ``engines`` is the mapping (read-only use: each engine's documented state).
    Each engine keeps its own state (TANL's memories): it does the same operations here as alone.
    """

    def __init__(self, engines: Mapping[str, object], id_text: torch.Tensor, corpus_text: torch.Tensor,
                 logit_scale: float):
        self.engines = dict(engines)
        if not self.engines:
            raise UserError("Lockstep needs at least one engine")
        id_text = as_rows("id_text", id_text, owner=self)
        self._text = torch.cat([id_text, as_rows("corpus_text", corpus_text, id_text.device, owner=self)])
        self.logit_scale = check_logit_scale(logit_scale)
        self._num_classes = id_text.shape[0]
        self._distinct: list[torch.Tensor] = []  # the distinct column sets
        self._column_set: dict[str, int | None] = {}  # label -> index into _distinct, None = every column
        for label, engine in self.engines.items():
            if engine.num_classes != self._num_classes or engine.device != self.device:
                raise UserError(f"engine '{label}' has {engine.num_classes} classes on {engine.device}; the bank "
                                f"has {self._num_classes} on {self.device}: build every engine from the same bank")
            self._column_set[label] = self._index_of(engine.bank_columns)
        self._workspaces = Workspaces()

    def _index_of(self, columns) -> int | None:
        if columns is None:
            return None
        columns = torch.as_tensor(columns, dtype=torch.long).to(self.device)
        for index, known in enumerate(self._distinct):
            if known.shape == columns.shape and torch.equal(known, columns):
                return index
        self._distinct.append(columns)
        return len(self._distinct) - 1

    @property
    def device(self) -> torch.device:
        return self._text.device

    @property
    def num_classes(self) -> int:
        return self._num_classes

    def reset(self) -> "Lockstep":
        for engine in self.engines.values():
            engine.reset()
        return self

    def _workspace(self, name: str, rows: int) -> torch.Tensor:
        return self._workspaces.get(name, rows, self._text.shape[0], device=self.device)

    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        """[B, D] image embeddings -> {label: (pred [B] long, score [B] float32)}, every engine learning from the
        batch as its own ``step`` would."""
        features = check_batch(image_features, self._text, owner=self)
        rows = features.shape[0]
        logits = torch.matmul(self.logit_scale * features, self._text.T, out=self._workspace("logits", rows))
        shared: dict[str, torch.Tensor] = {}

        def softmax() -> torch.Tensor:
            if "softmax" not in shared:
                shared["softmax"] = torch.softmax(logits, 1, out=self._workspace("softmax", rows))
            return shared["softmax"]

        gathered: dict[int, torch.Tensor] = {}
        outputs = {}
        for label, engine in self.engines.items():
            index = self._column_set[label]
            if index is None:
                outputs[label] = engine.step_logits(features, logits, softmax)
                continue
            if index not in gathered:
                gathered[index] = gather_columns(logits, self._distinct[index], self._workspaces, f"columns {index}")
            outputs[label] = engine.step_logits(features, gathered[index])
        return outputs


class Locksteps:
    """Several ``Lockstep``s on one stream, one per text bank (methods with their own prompts: CSP's bank beside
    the others'): ``step(features) -> {label: (pred, score)}`` over all their engines, in ``order``.

    Each ``Lockstep`` computes its own bank's logits; each engine's results are those of its own run.
    """

    def __init__(self, locksteps, order=None):
        self.locksteps = list(locksteps)
        if not self.locksteps:
            raise UserError("Locksteps needs at least one Lockstep")
        members = {label: engine for lockstep in self.locksteps for label, engine in lockstep.engines.items()}
        if len(members) != sum(len(lockstep.engines) for lockstep in self.locksteps):
            raise UserError("Locksteps: every engine label must be unique across the Locksteps")
        self.order = list(members) if order is None else list(order)
        if sorted(self.order) != sorted(members):
            raise UserError(f"Locksteps: order {self.order} must name every engine ({sorted(members)}) once")
        self.engines = {label: members[label] for label in self.order}

    @property
    def device(self) -> torch.device:
        return self.locksteps[0].device

    @property
    def num_classes(self) -> int:
        return self.locksteps[0].num_classes

    def reset(self) -> "Locksteps":
        for lockstep in self.locksteps:
            lockstep.reset()
        return self

    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
        outputs = {}
        for lockstep in self.locksteps:
            outputs.update(lockstep.step(image_features))
        return {label: outputs[label] for label in self.order}
