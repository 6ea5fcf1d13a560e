"""Stream traces: how a test-time method behaves along a stream, batch by batch.

Per batch of each stream and each engine: the adaptive threshold (``threshold``), the ID and OOD memory fill
(``memory_fill``), the overlap of the negatives that scored the batch with the previous batch's (``selected``), and
windowed AUROC and FPR@95 over the last W samples of the current OOD set's segment (the window restarts at each
OOD-set switch of the temporal protocol, so it never mixes two OOD sets); then what the state is worth against the
truth (``trace_inside``: memory purity, admission precision and recall, survival of the first selection, distinct
negatives and their tenure, overlap with the oracle selection) and per-stream summaries of those. The state is read
from what the engine lists in ``learned_state`` (its documented read-only state); NaN where it lists none. For the
temporal protocol each switch is marked with its recovery time: the samples after the switch until the windowed
AUROC comes within ``RECOVERY_TOLERANCE`` points of the value it settles at (its median over the second half of
that OOD set's batches).

``Tracer`` collects (only when a trace is asked for: otherwise nothing is read from the engines between steps),
``write_traces`` writes ``trace.csv`` and one PNG per stream.
"""
from __future__ import annotations

import math
import re
import statistics
from pathlib import Path

import pandas as pd
import torch

from ..core.errors import UserError
from ..metrics import auroc_and_fpr95
from .tables import save_figure
from .trace_inside import (
    INSIDE_COLUMNS,
    STATE_COLUMNS,
    SUMMARY_COLUMNS,
    MemberTrace,
    OracleSums,
    oracle_key,
    stream_summary,
)

__all__ = ["Tracer", "TRACE_COLUMNS", "RECOVERY_TOLERANCE", "write_traces", "plot_trace"]

#: Columns of ``trace.csv`` (after ``method``).
TRACE_COLUMNS = ("stream", "segment", "batch", "seen", *STATE_COLUMNS, "window_auroc", "window_fpr95",
                 "recovery_samples", *INSIDE_COLUMNS, *SUMMARY_COLUMNS)

#: AUROC points within which the windowed AUROC counts as recovered after an OOD-set switch.
RECOVERY_TOLERANCE = 1.0

_NAN = float("nan")


class Tracer:
    """One stream's trace: ``segment`` at each OOD set, ``after_batch`` after each step, ``scores`` once a segment
    is scored, then ``rows()``.

    Args:
        engine: the engine stepping the stream (a ``Lockstep``'s members are traced one by one).
        stream: the stream's name in the table (e.g. "seed 0, SUN").
        window: W, samples in the windowed metrics.
    """

    def __init__(self, engine, stream: str, window: int):
        if int(window) < 2:
            raise UserError(f"the trace window must hold at least 2 samples, got {window}")
        self.members = dict(getattr(engine, "engines", None) or {None: engine})
        self.stream, self.window = stream, int(window)
        self._segments: list[tuple[str, int]] = []  # (OOD set, first sample)
        self._is_id: list[torch.Tensor] = []  # per segment, in stream order
        self._truth = torch.zeros(0, dtype=torch.bool)  # the whole stream's so far, in order
        self._scores: dict = {member: [] for member in self.members}
        self._records: dict = {member: [] for member in self.members}
        self._inside = {member: MemberTrace(engine) for member, engine in self.members.items()}
        self._oracles: dict = {}  # oracle_key -> OracleSums, shared by the members it serves
        self._seen = 0

    def segment(self, name: str, is_id_in_order: torch.Tensor) -> None:
        """The next OOD set's segment starts (the first one right after the engine's ``reset``)."""
        if not self._segments:
            for inside in self._inside.values():
                inside.start()
        self._segments.append((name, self._seen))
        self._is_id.append(is_id_in_order.cpu().bool())
        self._truth = torch.cat(self._is_id)

    def after_batch(self, batch: torch.Tensor) -> None:
        """After each step on ``batch`` [B, D] (the features the engine was given)."""
        start, rows = self._seen, batch.shape[0]
        self._seen += rows
        truth = self._truth[start:self._seen]
        oracles = {}
        for member, engine in self.members.items():
            key = oracle_key(engine)
            if key is not None and key not in oracles:
                oracles[key] = self._oracles.setdefault(key, OracleSums(engine))
                oracles[key].add(batch, truth)
            state = self._inside[member].after_step(truth, self._truth[: self._seen], oracles.get(key))
            self._records[member].append({"stream": self.stream, "segment": self._segments[-1][0],
                                          "batch": len(self._records[member]), "seen": self._seen, **state})

    def scores(self, member, score_in_order: torch.Tensor) -> None:
        self._scores[member].append(score_in_order)

    def rows(self) -> list[dict]:
        """Every member's rows (``method`` is the member label), windowed metrics and recovery times filled in."""
        is_id = torch.cat(self._is_id).numpy()
        starts = dict(self._segments)
        out = []
        for member, records in self._records.items():
            scores = torch.cat(self._scores[member]).numpy()
            for record in records:
                window = slice(max(starts[record["segment"]], record["seen"] - self.window), record["seen"])
                both = is_id[window].any() and not is_id[window].all()
                auroc, fpr = auroc_and_fpr95(scores[window], is_id[window]) if both else (_NAN, _NAN)
                record.update(window_auroc=auroc, window_fpr95=fpr, recovery_samples=_NAN)
            self._recovery(records)
            summary = stream_summary(records)
            out += [{"method": member, **{column: {**record, **summary}[column] for column in TRACE_COLUMNS}}
                    for record in records]
        return out

    def _recovery(self, records: list[dict]) -> None:
        """On the first batch after each switch: samples until the windowed AUROC is within tolerance of the
        value it settles at (median over the second half of that OOD set's batches); inf when it never comes
        within it (not recovered), NaN when there is no windowed AUROC."""
        for name, start in self._segments[1:]:
            batches = [r for r in records if r["segment"] == name and r["seen"] > start]
            late = [r["window_auroc"] for r in batches[len(batches) // 2:] if not math.isnan(r["window_auroc"])]
            if not late:
                continue
            settled = statistics.median(late)
            recovered = next((r for r in batches if not math.isnan(r["window_auroc"])
                              and abs(r["window_auroc"] - settled) <= RECOVERY_TOLERANCE), None)
            batches[0]["recovery_samples"] = math.inf if recovered is None else recovered["seen"] - start


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9.+_-]+", "-", str(text)).strip("-")


#: (column, label, matplotlib format) per line of each panel of a trace PNG, top to bottom (the windowed metrics last).
_PANELS = (
    ((("threshold", "adaptive threshold", "C0-"),
      ("selection_overlap", "selection overlap with the last batch's", "C1-"),
      ("first_selection_survival", "survival of the first batch's selection", "C2-"),
      ("oracle_overlap", "overlap with the oracle top-M (true ID/OOD activations)", "C3-")), "share"),
    ((("id_memory", "ID memory", "C0-"), ("ood_memory", "OOD memory", "C1-"),
      ("id_pseudo", "ID memory: initial pseudo rows", "C0:"), ("ood_pseudo", "OOD memory: initial pseudo rows", "C1:")),
     "rows held"),
    ((("id_purity", "ID memory purity (true ID share)", "C0-"),
      ("ood_purity", "OOD memory purity (true OOD share)", "C1-"),
      ("id_admission_precision", "ID admission precision", "C0--"),
      ("ood_admission_precision", "OOD admission precision", "C1--"),
      ("id_admission_recall", "ID admission recall", "C0:"), ("ood_admission_recall", "OOD admission recall", "C1:")),
     "share of test rows"),
)


def _summary_text(trace: pd.DataFrame) -> str:
    """The stream's summary columns as two lines (those that are defined)."""
    row = trace.iloc[-1]
    parts = [f"{label} {row[column]:{spec}}" for column, label, spec in (
        ("stream_id_purity", "final purity: ID", ".2f"), ("stream_ood_purity", "OOD", ".2f"),
        ("stream_selection_survival", "first selection surviving", ".1%"),
        ("stream_distinct_selected", "distinct negatives", ".0f"), ("stream_mean_tenure", "mean tenure", ".1f"),
        ("stream_oracle_overlap", "mean oracle overlap", ".2f"))
        if column in row and not pd.isna(row[column])]
    return "; ".join(parts[:2]) + ("\n" + "; ".join(parts[2:]) if parts[2:] else "")


def _mark_switches(trace: pd.DataFrame, axes) -> None:
    """A dashed line at each OOD-set switch, annotated with its recovery time on the last panel."""
    starts = trace["seen"].shift(fill_value=0)
    for index in trace.index[trace["segment"] != trace["segment"].shift()][1:]:  # each OOD-set switch
        row, start = trace.loc[index], starts[index]
        for axis in axes:
            axis.axvline(start, color="grey", linestyle="--", linewidth=0.8)
        samples = row["recovery_samples"]
        recovery = "" if math.isnan(samples) else "not recovered" if math.isinf(samples) else \
            f"recovered in {int(samples)} samples"
        axes[-1].annotate(f"switch to {row['segment']}\n{recovery}", (start, 0.03),
                          xycoords=("data", "axes fraction"), xytext=(4, 0), textcoords="offset points", fontsize=8,
                          va="bottom")


def plot_trace(trace: pd.DataFrame, path: Path, title: str) -> Path:
    """One stream's PNG against the samples seen: the threshold and the selection (overlap with the last batch's,
    survival of the first, overlap with the oracle), the memories' fill (and distinct negatives ever selected),
    memory purity and admission precision/recall, the windowed AUROC and FPR@95; a dashed line at each OOD-set
    switch, with its recovery time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(len(_PANELS) + 1, 1, figsize=(10, 13), sharex=True)
    x = trace["seen"]
    for axis, (lines, ylabel) in zip(axes, _PANELS):
        shown = [(column, label, style) for column, label, style in lines
                 if column in trace and trace[column].notna().any()]
        for column, label, style in shown:
            axis.plot(x, trace[column], style, label=label)
        axis.set_ylabel(ylabel)
        if not shown:
            axis.text(0.5, 0.5, "not exposed by this method", transform=axis.transAxes, ha="center",
                      va="center", color="grey")
    for axis in (axes[0], axes[2]):
        axis.set_ylim(-0.02, 1.02)
    if "distinct_selected" in trace and trace["distinct_selected"].notna().any():
        twin = axes[1].twinx()
        twin.plot(x, trace["distinct_selected"], color="black", linewidth=0.8, label="distinct negatives ever selected")
        twin.set_ylabel("negatives")
        twin.legend(loc="lower right", fontsize=8)
    summary = _summary_text(trace)
    if summary:
        axes[2].set_title(summary, fontsize=8, loc="left")
    axes[-1].plot(x, trace["window_auroc"], label="AUROC")
    axes[-1].plot(x, trace["window_fpr95"], label="FPR@95 (OOD positive)")
    axes[-1].set_ylabel("% over the window")
    axes[-1].set_xlabel("samples seen")
    _mark_switches(trace, axes)
    for axis in axes:
        axis.grid(alpha=0.3)
        if axis.get_legend_handles_labels()[0]:
            axis.legend(loc="best", fontsize=7)
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    save_figure(figure, path, dpi=100)
    return path


def write_traces(trace: pd.DataFrame, folder: str | Path) -> list[Path]:
    """``trace.csv`` and one PNG per (method, stream) in ``folder``; returns the files written."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = [folder / "trace.csv"]
    trace.to_csv(files[0], index=False, float_format="%.4f")
    for (method, stream), part in trace.groupby(["method", "stream"], sort=False):
        name = f"trace-{_slug(method)}-{_slug(stream)}.png"
        files.append(plot_trace(part.reset_index(drop=True), folder / name, f"{method}: {stream}"))
    return files
