"""Stream traces: how a test-time method behaves along a stream, batch by batch.

Per batch of each stream and each engine: the adaptive threshold (``threshold``), the ID and OOD memory fill
(``memory_fill``), the overlap of the negatives that scored the batch with the previous batch's (``selected``), and
windowed AUROC and FPR@95 over the last W samples of the current OOD set's segment (the window restarts at each
OOD-set switch of the temporal protocol, so it never mixes two OOD sets). The first three are read from what the
engine lists in ``learned_state`` (its documented read-only state); NaN where it lists none. For the temporal
protocol each switch is marked with its recovery time: the samples after the switch until the windowed AUROC comes
within ``RECOVERY_TOLERANCE`` points of the value it settles at (its median over the second half of that OOD set's
batches).

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

__all__ = ["Tracer", "TRACE_COLUMNS", "RECOVERY_TOLERANCE", "write_traces", "plot_trace"]

#: Columns of ``trace.csv`` (after ``method``).
TRACE_COLUMNS = ("stream", "segment", "batch", "seen", "threshold", "id_memory", "ood_memory", "selection_overlap",
                 "window_auroc", "window_fpr95", "recovery_samples")

#: AUROC points within which the windowed AUROC counts as recovered after an OOD-set switch.
RECOVERY_TOLERANCE = 1.0

_NAN = float("nan")


def _state(engine, previous: torch.Tensor | None) -> tuple[dict, torch.Tensor | None]:
    """The engine's documented learned state after a step (``learned_state``), and its ``selected`` (for the next
    overlap)."""
    names = getattr(engine, "learned_state", ())
    threshold, fill, selected = (getattr(engine, name) if name in names else None
                                 for name in ("threshold", "memory_fill", "selected"))
    overlap = _NAN
    if isinstance(selected, torch.Tensor):
        selected = selected.cpu()
        if previous is not None and previous.numel():
            overlap = float(torch.isin(selected, previous).float().mean())
    return {"threshold": float(threshold) if threshold is not None else _NAN,
            "id_memory": float(fill[0]) if fill is not None else _NAN,
            "ood_memory": float(fill[1]) if fill is not None else _NAN,
            "selection_overlap": overlap}, selected if isinstance(selected, torch.Tensor) else None


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
        self._scores: dict = {member: [] for member in self.members}
        self._records: dict = {member: [] for member in self.members}
        self._selected: dict = {}
        self._seen = 0

    def segment(self, name: str, is_id_in_order: torch.Tensor) -> None:
        self._segments.append((name, self._seen))
        self._is_id.append(is_id_in_order)

    def after_batch(self, rows: int) -> None:
        self._seen += rows
        for member, engine in self.members.items():
            state, self._selected[member] = _state(engine, self._selected.get(member))
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
            out += [{"method": member, **record} for record in records]
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


def plot_trace(trace: pd.DataFrame, path: Path, title: str) -> Path:
    """One stream's PNG: threshold and selection overlap, memory fill, windowed AUROC and FPR@95 against the
    samples seen; a dashed line at each OOD-set switch, with its recovery time."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(3, 1, figsize=(10, 8), sharex=True)
    x = trace["seen"]
    axes[0].plot(x, trace["threshold"], label="adaptive threshold")
    axes[0].plot(x, trace["selection_overlap"], label="overlap of the selected negatives with the last batch's")
    axes[0].set_ylim(-0.02, 1.02)
    axes[1].plot(x, trace["id_memory"], label="ID memory")
    axes[1].plot(x, trace["ood_memory"], label="OOD memory")
    axes[1].set_ylabel("rows held")
    axes[2].plot(x, trace["window_auroc"], label="AUROC")
    axes[2].plot(x, trace["window_fpr95"], label="FPR@95 (OOD positive)")
    axes[2].set_ylabel("% over the window")
    axes[2].set_xlabel("samples seen")
    starts = trace["seen"].shift(fill_value=0)
    for index in trace.index[trace["segment"] != trace["segment"].shift()][1:]:  # each OOD-set switch
        row, start = trace.loc[index], starts[index]
        for axis in axes:
            axis.axvline(start, color="grey", linestyle="--", linewidth=0.8)
        samples = row["recovery_samples"]
        recovery = "" if math.isnan(samples) else "not recovered" if math.isinf(samples) else \
            f"recovered in {int(samples)} samples"
        axes[2].annotate(f"switch to {row['segment']}\n{recovery}", (start, 0.03), xycoords=("data", "axes fraction"),
                         xytext=(4, 0), textcoords="offset points", fontsize=8, va="bottom")
    for axis, columns in zip(axes, (["threshold", "selection_overlap"], ["id_memory", "ood_memory"])):
        if trace[columns].isna().all().all():
            axis.text(0.5, 0.5, "no adaptive threshold or selection in this method", transform=axis.transAxes,
                      ha="center", va="center", color="grey")
    for axis in axes:
        axis.grid(alpha=0.3)
        axis.legend(loc="best", fontsize=8)
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
