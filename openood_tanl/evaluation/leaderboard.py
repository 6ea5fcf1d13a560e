"""Comparing methods: run several postprocessors on cached embeddings, leaderboard tables, label-count sweeps."""
from __future__ import annotations

import functools
import numbers as numbers_
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .protocols import FeatureBenchmark, evaluate, is_group_mean

__all__ = ["compare_methods", "leaderboard_table", "markdown_table", "sweep", "plot_sweep", "sweep_axis",
           "LEADERBOARD_COLUMNS", "HIGHER_IS_BETTER"]

#: Whether a higher value is better, per metric.
HIGHER_IS_BETTER = {"FPR@95": False, "FPR@95(ID+)": False, "AUROC": True, "AUPR_IN": True, "AUPR_OUT": True,
                    "ACC": True}

#: Leaderboard columns: OpenOOD's (near/far-OOD AUROC, ID accuracy) plus both FPR@95 conventions.
LEADERBOARD_COLUMNS = (("nearood", "AUROC"), ("farood", "AUROC"), ("nearood", "FPR@95"), ("farood", "FPR@95"),
                       ("nearood", "FPR@95(ID+)"), ("farood", "FPR@95(ID+)"), ("id", "ACC"))


def compare_methods(postprocessors: Mapping[str, Any], bank, benchmark: FeatureBenchmark, *, protocol: str = "mixed",
                    seeds: Iterable[int] = (0,), batch_size: int = 256, order: Sequence[str] | None = None,
                    workers: int = 1) -> pd.DataFrame:
    """Every method on one benchmark: long table (method, benchmark, dataset, group, metrics [, *_std]).

    ``postprocessors`` maps a display name to an openood_tanl postprocessor; its engine is built from ``bank``
    (a ``TextBank`` or a network) and replayed under ``protocol`` for each seed (``workers`` processes run
    independent streams in parallel, with the same results).
    """
    frames = []
    for method, postprocessor in postprocessors.items():
        summary, _ = evaluate(functools.partial(postprocessor.engine_for, bank), benchmark, protocol,
                              seeds=list(seeds), batch_size=batch_size, order=order, workers=workers)
        frames.append(summary.reset_index().assign(method=method, benchmark=benchmark.name))
    table = pd.concat(frames, ignore_index=True)
    first = ["method", "benchmark", "dataset", "group"]
    return table[first + [c for c in table.columns if c not in first]]


def leaderboard_table(results: pd.DataFrame) -> pd.DataFrame:
    """One row per method, columns ``<benchmark> <split> <metric>`` from ``compare_methods`` results.

    ID accuracy is the mean over the OOD runs of the ACC column (the ID set is scored once per OOD set).
    """
    rows: dict[str, dict[str, float]] = {}
    for (method, benchmark), part in results.groupby(["method", "benchmark"], sort=False):
        row = rows.setdefault(method, {})
        indexed = part.set_index("dataset")
        for split, metric in LEADERBOARD_COLUMNS:
            if split == "id":
                value = part.loc[~is_group_mean(part), metric].mean()
            elif split in indexed.index:
                value = indexed.loc[split, metric]
            else:
                continue
            row[f"{benchmark} {split} {metric}"] = float(value)
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "method"
    return table


def markdown_table(table: pd.DataFrame, digits: int = 2, bold: bool = True) -> str:
    """Markdown of a leaderboard (or any table indexed by method, or by several keys); with ``bold``, the best value
    of each metric column in bold. Numbers get ``digits`` decimals, empty cells stay empty."""
    header = [name or "" for name in table.index.names] + [str(c) for c in table.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    best = {}
    for column in table.columns if bold else ():
        metric = next((m for m in sorted(HIGHER_IS_BETTER, key=len, reverse=True) if str(column).endswith(m)), None)
        values = table[column].dropna()
        if metric and len(values):
            best[column] = values.max() if HIGHER_IS_BETTER[metric] else values.min()
    for key, row in table.iterrows():
        cells = [str(k) for k in (key if isinstance(key, tuple) else (key,))]
        for column in table.columns:
            value = row[column]
            if isinstance(value, str):
                text = value
            else:
                text = "" if pd.isna(value) else f"{value:.{digits}f}"
            cells.append(f"**{text}**" if column in best and value == best[column] else text)
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def sweep(make_postprocessor, argument: str, values: Sequence[Any], bank, benchmark: FeatureBenchmark, *,
          protocol: str = "mixed", seeds: Iterable[int] = (0,), batch_size: int = 256,
          order: Sequence[str] | None = None, workers: int = 1) -> pd.DataFrame:
    """One method over values of one argument: a row per value with near/far/all-OOD mean AUROC and FPR@95.

    ``make_postprocessor(**{argument: value})`` builds the postprocessor; embeddings are replayed, never
    re-encoded, so a sweep of k values costs about k replays.
    """
    rows = []
    for value in values:
        postprocessor = make_postprocessor(**{argument: value})
        summary, _ = evaluate(functools.partial(postprocessor.engine_for, bank), benchmark, protocol,
                              seeds=list(seeds), batch_size=batch_size, order=order, workers=workers)
        means = is_group_mean(summary)
        datasets = summary[~means]
        row = {argument: value, "AUROC": datasets["AUROC"].mean(), "FPR@95": datasets["FPR@95"].mean(),
               "FPR@95(ID+)": datasets["FPR@95(ID+)"].mean()}
        for split in summary.index[means]:
            row.update({f"{split} AUROC": summary.loc[split, "AUROC"], f"{split} FPR@95": summary.loc[split, "FPR@95"]})
        rows.append(row)
    return pd.DataFrame(rows)


def sweep_axis(values: Sequence[Any]) -> str:
    """The x axis for swept ``values``: ``log`` for positive numbers spanning a factor of 10 or more (label counts),
    ``linear`` for other numbers (e.g. alpha 0, 0.5, 0.95: zero has no place on a log axis), ``category`` for
    anything else (e.g. stream orders)."""
    numbers = [float(v) for v in values if isinstance(v, numbers_.Real) and not isinstance(v, bool)]
    if len(numbers) != len(values):
        return "category"
    if numbers and min(numbers) > 0 and max(numbers) / min(numbers) >= 10:
        return "log"
    return "linear"


def plot_sweep(curves: Mapping[str, pd.DataFrame], argument: str, path: str | Path, title: str = "") -> Path:
    """PNG of mean FPR@95 and AUROC over all OOD sets against ``argument``, one line per method."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    values = [v for frame in curves.values() for v in frame[argument]]
    scale = sweep_axis(values)
    categories = list(dict.fromkeys(values)) if scale == "category" else None
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for method, frame in curves.items():
        x = [categories.index(v) for v in frame[argument]] if categories else frame[argument]
        for axis, metric in zip(axes, ("FPR@95", "AUROC")):
            axis.plot(x, frame[metric], marker="o", label=method)
    for axis, metric in zip(axes, ("FPR@95 (%, OOD positive; lower is better)", "AUROC (%; higher is better)")):
        if categories:
            axis.set_xticks(range(len(categories)), [str(c) for c in categories])
        else:
            axis.set_xscale(scale)
        axis.set_xlabel(argument)
        axis.set_ylabel(metric)
        axis.grid(alpha=0.3)
        axis.legend()
    if title:
        figure.suptitle(title)
    figure.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=120)
    plt.close(figure)
    return path
