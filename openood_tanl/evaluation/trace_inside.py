"""What a stream does inside an engine, batch by batch: the engine's documented state read against the truth.

The evaluation knows which samples are ID; the engines do not. ``MemberTrace`` reads, after each step, only what an
engine lists in ``learned_state`` (``core.engine``) and, for the oracle, its ``corpus_activations``, and keeps the
truth beside it:

* memory purity (``id_purity``, ``ood_purity``): the share of true ID rows among the test rows the ID memory holds,
  of true OOD rows among those of the OOD memory. TANL's memories start full of pseudo rows (ID texts, noise
  images): they are no test sample, so they count in neither share; ``id_pseudo`` / ``ood_pseudo`` say how many
  are still held (purity is NaN while a memory holds no test row). The truth of what a FIFO memory holds is
  mirrored here from ``admitted`` and ``memory_fill``; an engine that lists ``memory_arrivals`` (AdaNeg) says
  where each held row came from;
* admission precision and recall of the confident sets (``admitted``): of the batch's rows that entered the ID
  (OOD) memory, the share truly ID (OOD); of the batch's true ID (OOD) rows, the share that entered it;
* the selection (``selected``): overlap with the previous batch's, survival of the first step's selection (the
  share of it still selected), negatives ever selected (``distinct_selected``) and the mean tenure, in batches, of
  the selection runs that ended so far (a negative that leaves and comes back starts a new run);
* ``oracle_overlap``: the share of the selection in the oracle's top M, the oracle ranking the corpus by
  mean activation over the true OOD samples seen so far minus that over the true ID samples (the current batch
  included, as the selection that scored it blends it in).

Every value is NaN where the engine lists no such state. Nothing here writes to an engine.
"""
from __future__ import annotations

import math

import torch

__all__ = ["MemberTrace", "OracleSums", "STATE_COLUMNS", "INSIDE_COLUMNS", "SUMMARY_COLUMNS", "stream_summary",
           "oracle_key"]

_NAN = float("nan")
_PSEUDO, _OOD, _ID = -1, 0, 1  # what a mirrored memory row is

#: Per-batch columns read from ``learned_state`` as before: threshold, memory fill, overlap with the last selection.
STATE_COLUMNS = ("threshold", "id_memory", "ood_memory", "selection_overlap")
#: Per-batch columns of the engine's state against the truth.
INSIDE_COLUMNS = ("id_purity", "ood_purity", "id_pseudo", "ood_pseudo", "id_admission_precision",
                  "id_admission_recall", "ood_admission_precision", "ood_admission_recall",
                  "first_selection_survival", "distinct_selected", "mean_tenure", "oracle_overlap")
#: Per-stream columns (one value on every row of a (method, stream)): the last batch's purity, survival, distinct
#: negatives and mean tenure; the mean over the batches (where defined) of admission precision/recall and of the
#: oracle overlap.
SUMMARY_COLUMNS = ("stream_id_purity", "stream_ood_purity", "stream_id_admission_precision",
                   "stream_id_admission_recall", "stream_ood_admission_precision", "stream_ood_admission_recall",
                   "stream_selection_survival", "stream_distinct_selected", "stream_mean_tenure",
                   "stream_oracle_overlap")
_FINAL = {"stream_id_purity": "id_purity", "stream_ood_purity": "ood_purity",
          "stream_selection_survival": "first_selection_survival", "stream_distinct_selected": "distinct_selected",
          "stream_mean_tenure": "mean_tenure"}
_MEAN = {"stream_id_admission_precision": "id_admission_precision",
         "stream_id_admission_recall": "id_admission_recall",
         "stream_ood_admission_precision": "ood_admission_precision",
         "stream_ood_admission_recall": "ood_admission_recall", "stream_oracle_overlap": "oracle_overlap"}


def _share(hits, total) -> float:
    total = int(total)
    return int(hits) / total if total else _NAN


def oracle_key(engine) -> tuple | None:
    """Engines with the same key see the same corpus activations (one oracle serves them all); None: no oracle
    (the engine lists no ``selected`` or has no ``corpus_activations``)."""
    if "selected" not in getattr(engine, "learned_state", ()) or not hasattr(engine, "corpus_activations"):
        return None
    return (type(engine).corpus_activations, id(engine.id_text), id(engine.corpus_text), float(engine.logit_scale))


class OracleSums:
    """Running float64 sums of the corpus activations of the true ID and true OOD samples seen so far."""

    def __init__(self, engine):
        self.engine = engine
        self.sums: list[torch.Tensor | float] = [0.0, 0.0]  # OOD, ID
        self.counts = [0, 0]

    def add(self, batch: torch.Tensor, truth: torch.Tensor) -> None:
        activations = self.engine.corpus_activations(batch)
        is_id = truth.to(activations.device)
        for side, rows in ((_OOD, ~is_id), (_ID, is_id)):
            count = int(rows.sum())
            if count:
                self.sums[side] = self.sums[side] + activations[rows].sum(0, dtype=torch.float64)
                self.counts[side] += count

    def top(self, m: int) -> torch.Tensor | None:
        """The oracle's top ``m`` corpus indices (None before both sides were seen)."""
        if not all(self.counts):
            return None
        preference = self.sums[_OOD] / self.counts[_OOD] - self.sums[_ID] / self.counts[_ID]
        return torch.topk(preference, m).indices


class MemberTrace:
    """One engine's state along one stream against the truth: ``start()`` after ``reset``, ``after_step`` after
    each step (returns that batch's ``STATE_COLUMNS`` and ``INSIDE_COLUMNS``)."""

    def __init__(self, engine):
        self.engine = engine
        self.names = set(getattr(engine, "learned_state", ()))
        self._held: list[torch.Tensor] | None = None  # FIFO mirror: per memory, what each held row is
        self._previous = self._first = self._current = self._starts = None
        self._ever = torch.zeros(0, dtype=torch.bool)
        self._tenures = [0, 0]  # total batches, runs ended
        self._batch = 0

    def start(self) -> None:
        """Before the first step: a FIFO mirror of the memories as ``reset`` leaves them (pseudo rows only)."""
        if {"admitted", "memory_fill"} <= self.names and "memory_arrivals" not in self.names:
            self._held = [torch.full((int(n),), _PSEUDO, dtype=torch.int8) for n in self.engine.memory_fill]

    def after_step(self, truth: torch.Tensor, stream_truth: torch.Tensor, oracle: OracleSums | None) -> dict:
        """``truth``: [B] bool, the batch's rows truly ID; ``stream_truth``: [S] bool, every sample of the stream
        so far (this batch last)."""
        engine, names = self.engine, self.names
        threshold = float(engine.threshold) if "threshold" in names else _NAN
        fill = tuple(int(n) for n in engine.memory_fill) if "memory_fill" in names else None
        record = {"threshold": threshold, "id_memory": float(fill[0]) if fill else _NAN,
                  "ood_memory": float(fill[1]) if fill else _NAN}
        record.update(self._memories(truth, stream_truth, fill))
        record.update(self._selection(oracle))
        self._batch += 1
        return record

    # ------------------------------------------------------------------ memories
    def _memories(self, truth: torch.Tensor, stream_truth: torch.Tensor, fill) -> dict:
        out = dict.fromkeys(("id_purity", "ood_purity", "id_pseudo", "ood_pseudo", "id_admission_precision",
                             "id_admission_recall", "ood_admission_precision", "ood_admission_recall"), _NAN)
        admitted = self.engine.admitted.cpu() if "admitted" in self.names else None
        if admitted is not None and admitted.shape[1] == truth.shape[0]:
            for side, prefix, true_rows in ((0, "id", truth), (1, "ood", ~truth)):
                hits = int((admitted[side] & true_rows).sum())
                out[f"{prefix}_admission_precision"] = _share(hits, admitted[side].sum())
                out[f"{prefix}_admission_recall"] = _share(hits, true_rows.sum())
        held = self._held_rows(admitted, truth, stream_truth, fill)
        if held is not None:
            for side, prefix, wanted in ((0, "id", _ID), (1, "ood", _OOD)):
                out[f"{prefix}_purity"] = _share((held[side] == wanted).sum(), (held[side] != _PSEUDO).sum())
                out[f"{prefix}_pseudo"] = float((held[side] == _PSEUDO).sum())
        return out

    def _held_rows(self, admitted, truth, stream_truth, fill) -> list[torch.Tensor] | None:
        """What each memory holds (``_ID``, ``_OOD`` or ``_PSEUDO`` per row), or None when it cannot be known."""
        if fill is None:
            return None
        if "memory_arrivals" in self.names:
            kinds = stream_truth[self.engine.memory_arrivals.cpu()].to(torch.int8)  # 1 ID, 0 OOD
            return [kinds[: fill[0]], kinds[fill[0]:]]
        if self._held is None or admitted is None:
            return None
        kinds = truth.to(torch.int8)
        for side in (0, 1):  # a FIFO holds its newest memory_fill rows
            entered = torch.cat([self._held[side], kinds[admitted[side]]])
            self._held[side] = entered[entered.shape[0] - fill[side]:]
        return self._held

    # ------------------------------------------------------------------ selection
    def _selection(self, oracle: OracleSums | None) -> dict:
        out = dict.fromkeys(("selection_overlap", "first_selection_survival", "distinct_selected", "mean_tenure",
                             "oracle_overlap"), _NAN)
        if "selected" not in self.names or not isinstance(self.engine.selected, torch.Tensor):
            return out
        selected = self.engine.selected
        ranked = selected.cpu()
        current = torch.sort(ranked).values
        if self._previous is not None and self._previous.numel():
            out["selection_overlap"] = float(torch.isin(current, self._previous).float().mean())
        if self._first is None:
            self._first = current
        out["first_selection_survival"] = float(torch.isin(self._first, current).float().mean())
        out.update(self._tenure(current))
        if oracle is not None:
            top = oracle.top(selected.numel())
            if top is not None:
                out["oracle_overlap"] = float(torch.isin(selected, top).float().mean())
        self._previous = current
        return out

    def _tenure(self, current: torch.Tensor) -> dict:
        """Negatives ever selected and the mean length (batches) of the selection runs that ended so far."""
        if current.numel() and int(current[-1]) >= self._ever.numel():
            self._ever = torch.cat([self._ever, torch.zeros(int(current[-1]) + 1 - self._ever.numel(),
                                                            dtype=torch.bool)])
        self._ever[current] = True
        starts = torch.full(current.shape, self._batch, dtype=torch.long)
        if self._current is not None:
            stays = torch.isin(current, self._current)
            starts[stays] = self._starts[torch.searchsorted(self._current, current[stays])]
            left = ~torch.isin(self._current, current)
            self._tenures[0] += int((self._batch - self._starts[left]).sum())
            self._tenures[1] += int(left.sum())
        self._current, self._starts = current, starts
        return {"distinct_selected": float(self._ever.sum()),
                "mean_tenure": self._tenures[0] / self._tenures[1] if self._tenures[1] else _NAN}


def stream_summary(records: list[dict]) -> dict:
    """``SUMMARY_COLUMNS`` of one (method, stream)'s records: the last batch's value, or the mean over the batches
    where it is defined (NaN where it never is)."""
    summary = {}
    for column, source in _FINAL.items():
        summary[column] = records[-1][source] if records else _NAN
    for column, source in _MEAN.items():
        values = [r[source] for r in records if not math.isnan(r[source])]
        summary[column] = sum(values) / len(values) if values else _NAN
    return {column: summary[column] for column in SUMMARY_COLUMNS}
