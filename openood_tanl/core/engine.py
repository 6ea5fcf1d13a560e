"""The engine contract: what every OOD scorer on CLIP embeddings provides (TANL, MCM, NegLabel, AdaNeg).

An engine is built from text embeddings and hyperparameters (keyword-only, each checked by the engine's
``hyperparameter_checks``), then fed batches of image embeddings:

* ``step(image_features [B, D]) -> (pred [B] long, score [B] float32)``: the ID class prediction and the OOD
  score, **higher = more in-distribution**; a stateful engine (TANL, AdaNeg) also learns from the batch;
* ``reset() -> self``: back to the state of a new test stream (deterministic given the seed);
* ``device`` (where it computes, the device of its text embeddings) and ``num_classes`` (C).

``official_names`` maps each hyperparameter to where it comes from in the official code (``OfficialName``), so a
config written with the official keys gets a translation instead of a bare "unknown key".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

import torch

__all__ = ["Engine", "OfficialName", "HyperparameterCheck"]

#: ``check(name, value) -> normalised value``; raises TypeError/ValueError naming ``name``.
HyperparameterCheck = Callable[[str, Any], Any]


@dataclass(frozen=True)
class OfficialName:
    """Where a hyperparameter of ours lives in the official code.

    Attributes:
        key: the official config key (``postprocessor_args``), or None where the official code has none.
        note: how the official code sets or uses it, where that is not simply ``key`` (e.g. "hard-coded 20000").
    """

    key: str | None
    note: str = ""

    def __str__(self) -> str:
        return " ".join(part for part in (self.key or "", f"({self.note})" if self.note else "") if part)


@runtime_checkable
class Engine(Protocol):
    """An OOD scorer on L2-normalised CLIP embeddings (see the module docstring for the contract)."""

    hyperparameter_checks: ClassVar[Mapping[str, HyperparameterCheck]]
    official_names: ClassVar[Mapping[str, OfficialName]]

    def reset(self) -> Engine: ...

    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def num_classes(self) -> int: ...
