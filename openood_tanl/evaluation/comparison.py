"""Comparing methods on cached embeddings: several methods on one stream, and one method over a hyperparameter.

Methods are ``openood_tanl.methods.MethodConfig`` (a registry method with its hyperparameters, from
``configure``); embeddings are replayed, never re-encoded, so a sweep of k values costs about k replays.
"""
from __future__ import annotations

import numbers
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from .data import FeatureBenchmark
from .replay import evaluate
from .tables import is_group_mean

__all__ = ["compare_methods", "sweep", "sweep_axis", "plot_sweep"]


def compare_methods(methods: Mapping[str, Any], bank, benchmark: FeatureBenchmark, *, protocol: str = "mixed",
                    seeds: Iterable[int] = (0,), batch_size: int = 256, order: Sequence[str] | None = None,
                    workers: int = 1) -> pd.DataFrame:
    """Every method on one benchmark: long table (method, benchmark, dataset, group, metrics [, *_std]).

    ``methods`` maps a display name to a ``MethodConfig``; its engine is built from ``bank`` (a ``TextBank`` or a
    network) and replayed under ``protocol`` for each seed (``workers`` processes run independent streams in
    parallel, with the same results).
    """
    frames = []
    for label, method in methods.items():
        summary, _ = evaluate(method.factory(bank), benchmark, protocol, seeds=list(seeds), batch_size=batch_size,
                              order=order, workers=workers)
        frames.append(summary.reset_index().assign(method=label, benchmark=benchmark.name))
    table = pd.concat(frames, ignore_index=True)
    first = ["method", "benchmark", "dataset", "group"]
    return table[first + [c for c in table.columns if c not in first]]


def sweep(method, argument: str, values: Sequence[Any], bank, benchmark: FeatureBenchmark, *,
          protocol: str = "mixed", seeds: Iterable[int] = (0,), batch_size: int = 256,
          order: Sequence[str] | None = None, workers: int = 1) -> pd.DataFrame:
    """One method (a ``MethodConfig``) over values of one hyperparameter: a row per value with near/far/all-OOD
    mean AUROC and FPR@95."""
    rows = []
    for value in values:
        summary, _ = evaluate(method.replace(**{argument: value}).factory(bank), benchmark, protocol,
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
    reals = [float(v) for v in values if isinstance(v, numbers.Real) and not isinstance(v, bool)]
    if len(reals) != len(values):
        return "category"
    if reals and min(reals) > 0 and max(reals) / min(reals) >= 10:
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
