"""Test-time protocols on cached embeddings: build the stream, replay it through an engine, split the scores back.

A test-time method adapts to what it has seen, so the order of the test stream matters. The paper's protocol
(``mixed``) resets the method for each OOD dataset and interleaves the ID test set with that OOD set in one
seeded shuffle. Others:

- ``id-first``: reset per OOD set; the (shuffled) ID set, then the (shuffled) OOD set.
- ``ood-first``: reset per OOD set; the OOD set, then the ID set.
- ``temporal``: one reset only; the OOD sets arrive one after another (benchmark order unless ``order`` is
  given), each shuffled together with its own equal share of the (shuffled) ID set; each OOD set is scored
  against the ID samples of its own segment.

Every protocol is a pure function of the features, the engine and the seed, so one encoding serves all OOD
sets, seeds, protocols, methods and sweep points.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import pandas as pd
import torch

from ..metrics import METRIC_COLUMNS, ood_metrics

__all__ = ["FeatureSet", "FeatureBenchmark", "PROTOCOLS", "score_stream", "run_protocol", "evaluate",
           "summarise", "is_group_mean", "group_mean_name"]

PROTOCOLS = ("mixed", "id-first", "ood-first", "temporal")


@dataclass
class FeatureSet:
    """Embeddings of one dataset: ``features`` [S, D]; ``labels`` [S] (ID class, or -1 for OOD)."""

    name: str
    features: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)


@dataclass
class FeatureBenchmark:
    """An ID test set and OOD sets grouped by split (e.g. ``{'near': [...], 'far': [...]}``)."""

    name: str
    id_set: FeatureSet
    ood_groups: Mapping[str, Sequence[FeatureSet]] = field(default_factory=dict)

    def ood_sets(self) -> list[tuple[str, FeatureSet]]:
        return [(group, ood) for group, sets in self.ood_groups.items() for ood in sets]


@torch.no_grad()
def score_stream(engine, features: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Feed ``features`` [S, D] to ``engine.step`` in order, ``batch_size`` rows at a time.

    Returns (pred [S] long, score [S] float32) on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    preds, scores = [], []
    for batch in features.split(batch_size):
        pred, score = engine.step(batch)
        preds.append(pred.cpu())
        scores.append(score.cpu())
    return torch.cat(preds), torch.cat(scores)


def _shuffled(count: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(count, generator=generator)


def _segment_metrics(engine, id_set: FeatureSet, id_rows: torch.Tensor, ood_set: FeatureSet, order: str,
                     generator: torch.Generator, batch_size: int) -> dict[str, float]:
    """Score ID rows ``id_rows`` and the whole OOD set as one stream (no reset here), return the metrics."""
    n_id, n_ood = len(id_rows), len(ood_set)
    pool = torch.cat([id_set.features[id_rows], ood_set.features])
    if order == "mixed":
        sequence = _shuffled(n_id + n_ood, generator)
    elif order == "id-first":
        sequence = torch.cat([_shuffled(n_id, generator), n_id + _shuffled(n_ood, generator)])
    else:  # ood-first
        sequence = torch.cat([n_id + _shuffled(n_ood, generator), _shuffled(n_id, generator)])
    pred, score = score_stream(engine, pool[sequence], batch_size)
    back = torch.empty_like(sequence)
    back[sequence] = torch.arange(len(sequence))
    pred, score = pred[back], score[back]
    is_id = torch.arange(n_id + n_ood) < n_id
    labels = torch.cat([id_set.labels[id_rows].cpu(), torch.full((n_ood,), -1, dtype=torch.long)])
    return ood_metrics(score.numpy(), is_id.numpy(), pred.numpy(), labels.numpy())


def run_protocol(engine, benchmark: FeatureBenchmark, protocol: str = "mixed", *, seed: int = 0,
                 batch_size: int = 256, order: Sequence[str] | None = None) -> pd.DataFrame:
    """Metrics (percent) of one engine on one benchmark under one protocol and seed.

    Returns a DataFrame indexed by OOD dataset name, with a ``group`` column and ``METRIC_COLUMNS``.
    """
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")
    named = benchmark.ood_sets()
    if not named:
        raise ValueError(f"benchmark '{benchmark.name}' has no OOD set")
    generator = torch.Generator().manual_seed(seed)
    all_id = torch.arange(len(benchmark.id_set))
    rows = {}
    if protocol != "temporal":
        for group, ood_set in named:
            engine.reset()
            rows[ood_set.name] = {"group": group, **_segment_metrics(
                engine, benchmark.id_set, all_id, ood_set, protocol, generator, batch_size)}
    else:
        by_name = {ood_set.name: (group, ood_set) for group, ood_set in named}
        order = list(order) if order else list(by_name)
        unknown = [name for name in order if name not in by_name]
        if unknown:
            raise ValueError(f"temporal order names unknown OOD sets {unknown}; the benchmark has {list(by_name)}")
        engine.reset()
        id_chunks = _shuffled(len(all_id), generator).tensor_split(len(order))
        for name, id_rows in zip(order, id_chunks):
            group, ood_set = by_name[name]
            rows[name] = {"group": group, **_segment_metrics(
                engine, benchmark.id_set, id_rows, ood_set, "mixed", generator, batch_size)}
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "dataset"
    return table


def group_mean_name(group: str) -> str:
    """Row name of a group's mean: 'near' -> 'nearood', as OpenOOD names them."""
    return str(group) if str(group).endswith("ood") else f"{group}ood"


def is_group_mean(table: pd.DataFrame) -> pd.Series:
    """Boolean mask of the group-mean rows of a ``summarise``d table (index or ``dataset`` column holds names)."""
    names = table["dataset"] if "dataset" in table.columns else pd.Series(table.index, index=table.index)
    return names == table["group"].map(group_mean_name)


def summarise(table: pd.DataFrame) -> pd.DataFrame:
    """Add one mean row per group (``nearood``, ``farood``, ...) after that group's datasets, OpenOOD style."""
    parts = []
    for group, members in table.groupby("group", sort=False):
        parts.append(members)
        mean = members[list(METRIC_COLUMNS)].mean().to_frame().T
        mean.index = [group_mean_name(group)]
        mean.insert(0, "group", group)
        parts.append(mean)
    out = pd.concat(parts)
    out.index.name = "dataset"
    return out


def evaluate(make_engine: Callable[[], object], benchmark: FeatureBenchmark, protocol: str = "mixed", *,
             seeds: Iterable[int] = (0,), batch_size: int = 256,
             order: Sequence[str] | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``protocol`` for each seed; return (summary, per_seed).

    ``summary`` has one row per OOD dataset plus group means, the mean over seeds of each metric and, with
    several seeds, ``<metric>_std`` columns (sample standard deviation). ``per_seed`` is the long table.
    """
    engine = make_engine()
    per_seed = []
    for seed in seeds:
        table = summarise(run_protocol(engine, benchmark, protocol, seed=seed, batch_size=batch_size, order=order))
        per_seed.append(table.assign(seed=seed).reset_index())
    long = pd.concat(per_seed, ignore_index=True)
    grouped = long.groupby(["dataset", "group"], sort=False)[list(METRIC_COLUMNS)]
    summary = grouped.mean()
    if long["seed"].nunique() > 1:
        spread = grouped.std(ddof=1).add_suffix("_std")
        summary = summary.join(spread)
    summary = summary.reset_index(level="group")
    return summary, long
