"""Building and replaying one test stream: the order of the samples, the engine's scores, the metrics.

A stream is one reset of the engine followed by batches of embeddings in a seeded order (``protocols`` names the
protocols built from streams; ``replay`` runs them). Every function here is a pure function of the features, the
engine and the seed.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..metrics import ood_metrics
from .data import FeatureBenchmark, FeatureSet

__all__ = ["stream_generator", "score_stream", "stream_tasks", "run_stream"]


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


def stream_generator(seed: int, ood_index: int) -> torch.Generator:
    """The generator that shuffles the stream of the ``ood_index``-th OOD set under ``seed`` (reset protocols).

    Seeded from ``(seed, ood_index)`` alone (numpy ``SeedSequence(seed, spawn_key=(ood_index,))``), so a set's
    stream does not depend on the order in which the sets are run (the condition for running them in parallel).
    """
    state = np.random.SeedSequence(int(seed) % 2**64, spawn_key=(int(ood_index),)).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) | int(state[1]) << 32)


def stream_tasks(benchmark: FeatureBenchmark, protocol: str, seeds: Sequence[int]) -> list[tuple[int, int | None]]:
    """Independent units of work, in table order: (seed, OOD index) per reset stream; (seed, None) for temporal."""
    if protocol == "temporal":
        return [(seed, None) for seed in seeds]
    return [(seed, index) for seed in seeds for index in range(len(benchmark.ood_sets()))]


def run_stream(engine, benchmark: FeatureBenchmark, protocol: str, seed: int, index: int | None, batch_size: int,
              order: Sequence[str] | None) -> dict[str, dict]:
    """Rows (OOD set name -> group and metrics) of one task; resets ``engine`` first."""
    named = benchmark.ood_sets()
    all_id = torch.arange(len(benchmark.id_set))
    engine.reset()
    if index is not None:
        group, ood_set = named[index]
        return {ood_set.name: {"group": group, **_segment_metrics(
            engine, benchmark.id_set, all_id, ood_set, protocol, stream_generator(seed, index), batch_size)}}
    by_name = {ood_set.name: (group, ood_set) for group, ood_set in named}
    order = list(order) if order else list(by_name)
    generator = torch.Generator().manual_seed(seed)
    id_chunks = _shuffled(len(all_id), generator).tensor_split(len(order))
    rows = {}
    for name, id_rows in zip(order, id_chunks):
        group, ood_set = by_name[name]
        rows[name] = {"group": group, **_segment_metrics(
            engine, benchmark.id_set, id_rows, ood_set, "mixed", generator, batch_size)}
    return rows


