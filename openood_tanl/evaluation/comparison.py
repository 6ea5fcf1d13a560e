"""Comparing methods on cached embeddings: several methods on one stream, and methods over values of one argument.

Methods are ``openood_tanl.methods.MethodConfig`` (a registry method with its hyperparameters, from
``configure``); embeddings are replayed, never re-encoded. By default every engine that reads the same stream steps
in lockstep (``core.Lockstep``: one logits matrix and one softmax per batch for all of them, each engine's results
bitwise those of a separate run), so a leaderboard or a hyperparameter sweep costs about one replay; a sweep of a
stream argument (``protocols.STREAM_ARGUMENTS``: batch size, ID:OOD ratio, sample order) replays once per value,
every method in lockstep. ``lockstep=False`` runs each engine on its own (the reference the lockstep is tested
against).

``replay_methods`` replays methods under one ``StreamSettings``; ``sweep`` replays them over the values of one axis;
``compare_methods`` (the long table) and ``sweep_methods`` take the stream settings as keywords.
"""
from __future__ import annotations

import functools
import numbers
import warnings
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import pandas as pd

from ..core.errors import UserError, UserTypeError
from ..methods import create_lockstep
from .data import FeatureBenchmark
from .protocols import BACKBONE_AXIS, STREAM_ARGUMENTS, StreamSettings
from .replay import replay
from .tables import is_group_mean, save_figure

__all__ = ["replay_methods", "compare", "compare_methods", "sweep", "sweep_methods", "sweep_backbones",
           "BACKBONE_AXIS", "sweep_axis", "plot_sweep"]


def replay_methods(methods: Mapping[Any, Any], bank, benchmark: FeatureBenchmark,
                   settings: StreamSettings = StreamSettings(), *, seeds: Iterable[int] = (0,), workers: int = 1,
                   lockstep: bool = True) -> dict:
    """label -> (summary, per_seed) of every method (label -> ``MethodConfig``) on one replay of ``settings``: one
    ``Lockstep`` of all of them, or (``lockstep=False``) one replay each."""
    seeds = list(seeds)
    if lockstep:
        return replay(functools.partial(create_lockstep, dict(methods), bank), benchmark, settings, seeds=seeds,
                      workers=workers).tables
    return {label: replay(method.factory(bank), benchmark, settings, seeds=seeds, workers=workers).tables[None]
            for label, method in methods.items()}


def compare_methods(methods: Mapping[str, Any], bank, benchmark: FeatureBenchmark, *, protocol: str = "mixed",
                    seeds: Iterable[int] = (0,), batch_size: int = 256, order: Sequence[str] | None = None,
                    id_ood_ratio: float | None = None, workers: int = 1, lockstep: bool = True) -> pd.DataFrame:
    """Every method on one benchmark: long table (method, benchmark, dataset, group, metrics [, *_std]).

    ``methods`` maps a display name to a ``MethodConfig``; the engines are built from ``bank`` (a ``TextBank`` or a
    network) and replayed under the stream settings (``StreamSettings.from_keywords``) for each seed, in lockstep
    unless ``lockstep=False`` (``replay_methods``; ``workers`` processes run independent streams in parallel, with
    the same results).
    """
    settings = StreamSettings.from_keywords(protocol, batch_size, order, id_ood_ratio)
    return compare(methods, bank, benchmark, settings, seeds=seeds, workers=workers, lockstep=lockstep)


def compare(methods: Mapping[str, Any], bank, benchmark: FeatureBenchmark, settings: StreamSettings = StreamSettings(),
            *, seeds: Iterable[int] = (0,), workers: int = 1, lockstep: bool = True) -> pd.DataFrame:
    """``compare_methods`` under ``settings``: the long table (method, benchmark, dataset, group, metrics
    [, *_std]) of ``replay_methods``."""
    tables = replay_methods(methods, bank, benchmark, settings, seeds=seeds, workers=workers, lockstep=lockstep)
    table = pd.concat([tables[label][0].reset_index().assign(method=label, benchmark=benchmark.name)
                       for label in methods], ignore_index=True)
    first = ["method", "benchmark", "dataset", "group"]
    return table[first + [c for c in table.columns if c not in first]]


def _curve_row(summary: pd.DataFrame, argument: str, value: Any) -> dict:
    """One sweep point: near/far/all-OOD mean AUROC and FPR@95 of a summary."""
    means = is_group_mean(summary)
    datasets = summary[~means]
    row = {argument: value, "AUROC": datasets["AUROC"].mean(), "FPR@95": datasets["FPR@95"].mean(),
           "FPR@95(ID+)": datasets["FPR@95(ID+)"].mean()}
    for split in summary.index[means]:
        row.update({f"{split} AUROC": summary.loc[split, "AUROC"], f"{split} FPR@95": summary.loc[split, "FPR@95"]})
    return row


def sweep(methods: Mapping[str, Any], axis: str, values: Sequence[Any], bank, benchmark: FeatureBenchmark,
          settings: StreamSettings = StreamSettings(), *, seeds: Iterable[int] = (0,), workers: int = 1,
          lockstep: bool = True, **single_method_settings) -> dict[str, pd.DataFrame]:
    """Methods (label -> ``MethodConfig``) over ``values`` of ``axis``: label -> a row per value with
    near/far/all-OOD mean AUROC and FPR@95.

    ``axis``: a hyperparameter of every method (all (method, value) engines in one lockstep replay of
    ``settings``), or a stream argument (``STREAM_ARGUMENTS``: ``batch_size``, ``id_ood_ratio``, ``order`` = the
    protocol; one replay per value of ``settings.with_value(axis, value)``, the methods in lockstep).
    ``lockstep=False`` replays every engine on its own (the same tables).

    Deprecated form: ``sweep(method, argument, values, bank, benchmark, protocol=..., batch_size=..., ...)`` with
    one ``MethodConfig`` returns its one curve.
    """
    if not isinstance(methods, Mapping):
        warnings.warn("sweep(method, ...) with one method is deprecated: pass {label: method} and StreamSettings "
                      "(it returns label -> curve), or use sweep_methods", DeprecationWarning, stacklevel=2)
        return sweep_methods({"method": methods}, axis, values, bank, benchmark, seeds=seeds, workers=workers,
                             lockstep=lockstep, **single_method_settings)["method"]
    if single_method_settings:
        raise UserTypeError(f"sweep() got {sorted(single_method_settings)}: pass the stream settings as "
                            "StreamSettings(...) (or use sweep_methods, which takes them as keywords)")
    values = list(values)
    rows: dict[str, list[dict]] = {label: [] for label in methods}
    if axis in STREAM_ARGUMENTS:
        for value in values:
            tables = replay_methods(methods, bank, benchmark, settings.with_value(axis, value), seeds=seeds,
                                    workers=workers, lockstep=lockstep)
            for label in methods:
                rows[label].append(_curve_row(tables[label][0], axis, value))
    else:
        points = {(label, index): method.replace(**{axis: value})
                  for label, method in methods.items() for index, value in enumerate(values)}
        tables = replay_methods(points, bank, benchmark, settings, seeds=seeds, workers=workers, lockstep=lockstep)
        for (label, index) in points:
            rows[label].append(_curve_row(tables[(label, index)][0], axis, values[index]))
    return {label: pd.DataFrame(curve) for label, curve in rows.items()}


def sweep_backbones(methods: Mapping[str, Any], values: Sequence[str], data: Sequence[tuple[Any, FeatureBenchmark]],
                    settings: StreamSettings = StreamSettings(), *, seeds: Iterable[int] = (0,), workers: int = 1,
                    lockstep: bool = True) -> dict[str, pd.DataFrame]:
    """Methods over backbones: ``data[i]`` is the (text bank, features) of the benchmark under backbone
    ``values[i]`` ("MODEL:WEIGHTS"); the methods step in lockstep on each. label -> a row per backbone, as
    ``sweep``'s."""
    if len(values) != len(data):
        raise UserError(f"sweep_backbones got {len(values)} backbones and {len(data)} (bank, features) pairs")
    seeds = list(seeds)
    rows: dict[str, list[dict]] = {label: [] for label in methods}
    for value, (bank, benchmark) in zip(values, data):
        tables = replay_methods(methods, bank, benchmark, settings, seeds=seeds, workers=workers, lockstep=lockstep)
        for label in methods:
            rows[label].append(_curve_row(tables[label][0], BACKBONE_AXIS, value))
    return {label: pd.DataFrame(curve) for label, curve in rows.items()}


def sweep_methods(methods: Mapping[str, Any], argument: str, values: Sequence[Any], bank,
                  benchmark: FeatureBenchmark, *, protocol: str = "mixed", seeds: Iterable[int] = (0,),
                  batch_size: int = 256, order: Sequence[str] | None = None, id_ood_ratio: float | None = None,
                  workers: int = 1, lockstep: bool = True) -> dict[str, pd.DataFrame]:
    """``sweep`` with the stream settings as keywords (those of ``compare_methods``)."""
    settings = StreamSettings.from_keywords(protocol, batch_size, order, id_ood_ratio)
    return sweep(methods, argument, values, bank, benchmark, settings, seeds=seeds, workers=workers,
                 lockstep=lockstep)


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
    save_figure(figure, path, dpi=120)
    return path
