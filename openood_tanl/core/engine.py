"""The engine contract: what every OOD scorer on CLIP embeddings provides (TANL, MCM, NegLabel, AdaNeg).

An engine is built from text embeddings and hyperparameters (keyword-only, each checked by the engine's
``hyperparameter_checks``), then fed batches of image embeddings:

* ``step(image_features [B, D]) -> (pred [B] long, score [B] float32)``: the ID class prediction and the OOD
  score, **higher = more in-distribution**; a stateful engine (TANL, AdaNeg) also learns from the batch;
* ``step_logits(features, logits, softmax=None)``: the same step on shared work, the batch's logits against the
  engine's text (and, for engines that use it, their softmax, or a function computing it) computed by the caller
  and only read (``core.lockstep.Lockstep`` steps several engines this way);
* ``reset() -> self``: back to the state of a new test stream (deterministic given the seed);
* a stateful engine (one with ``learned_state``) also has ``state_dict()`` (its stream state as tensors and ints)
  and ``load_state_dict(state) -> self`` (continue that stream, bitwise), torch's convention;
* ``device`` (where it computes, the device of its text embeddings) and ``num_classes`` (C).

``learned_state`` names the engine's read-only learned state (properties valid after ``reset``/``step``; stream
traces read them): ``threshold`` (an adaptive threshold), ``selected`` (corpus indices of the negatives that scored
the last step), ``memory_fill`` ((ID, OOD) rows held), ``admitted`` ([2, B] bool: the rows of the last batch that
entered the (ID, OOD) memories), ``memory_arrivals`` ([n] stream positions since ``reset`` of the held rows, the ID
memory's first; an engine with ``admitted`` but no ``memory_arrivals`` keeps FIFO memories: they hold the newest
``memory_fill`` rows), and any engine-specific names. An engine whose selection follows corpus activations (TANL)
also has ``corpus_activations(features [B, D]) -> [B, N]``, reading no state: traces build an oracle from it.

``bank_columns``, set at construction: which columns of a text bank's [ID | corpus] logits the engine's text is,
in the engine's order: None for all of them (TANL by default: its text is the bank's), a [K] LongTensor of column
indices otherwise (MCM: the C ID columns; NegLabel and AdaNeg take theirs as a constructor argument, the ID columns
then their negatives' corpus columns, as ``openood_tanl.create_engine`` passes them; TANL on a bank with
``negmining_text``: every column, the corpus in the official layout). ``core.Lockstep`` reads it to hand
each engine its columns of the shared logits.

``official_names`` maps each hyperparameter to where it comes from in the official code (``OfficialName``), so a
config written with the official keys gets a translation instead of a bare "unknown key".
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, ClassVar, Mapping, Protocol, runtime_checkable

import torch

from .errors import UserError

__all__ = ["Engine", "OfficialName", "HyperparameterCheck", "check_bank_columns"]

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
    learned_state: ClassVar[tuple[str, ...]]
    bank_columns: torch.Tensor | None

    def reset(self) -> Engine: ...

    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]: ...

    def step_logits(self, features: torch.Tensor, logits: torch.Tensor,
                    softmax=None) -> tuple[torch.Tensor, torch.Tensor]: ...

    @property
    def device(self) -> torch.device: ...

    @property
    def num_classes(self) -> int: ...


def check_bank_columns(columns, width: int, owner: str) -> torch.Tensor | None:
    """``bank_columns`` of an engine whose text has ``width`` rows: None, or ``width`` distinct column indices >= 0
    (a [width] LongTensor)."""
    if columns is None:
        return None
    columns = torch.as_tensor(columns).cpu()
    if columns.dtype.is_floating_point or columns.dtype == torch.bool or columns.shape != (width,):
        raise UserError(f"{owner}: bank_columns must be {width} column indices (one per row of its text), got "
                        f"{columns.dtype} of shape {tuple(columns.shape)}")
    columns = columns.long()
    if width and (int(columns.min()) < 0 or len(torch.unique(columns)) != width):
        raise UserError(f"{owner}: bank_columns must be distinct column indices >= 0")
    return columns
