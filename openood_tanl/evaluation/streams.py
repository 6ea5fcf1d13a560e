"""Building and replaying one test stream: the order of the samples, the engine's scores, the metrics.

A stream is one reset of the engine followed by batches of embeddings in a seeded order (``protocols`` names the
protocols built from streams; ``replay`` runs them). The engine may be a ``core.Lockstep`` of several engines
(members), each scored as if alone. Every function here is a pure function of the features, the engine, the
settings and the seed.
"""
from __future__ import annotations

import warnings
from typing import Callable, Mapping, Sequence

import numpy as np
import torch

from ..core.errors import UserError
from ..metrics import ood_metrics
from .data import FeatureBenchmark, FeatureSet
from .protocols import StreamSettings
from .traces import Tracer

__all__ = ["StreamSettings", "stream_generator", "score_stream", "stream_tasks", "run_stream", "stream_sizes",
           "DegenerateStreamWarning", "MIN_STREAM_SIDE"]


def _members(output) -> dict:
    """An engine's step output as {member: (pred, score)} (a single engine is member None)."""
    return output if isinstance(output, dict) else {None: output}


@torch.no_grad()
def _score_members(engine, features: torch.Tensor, batch_size: int,
                   on_batch: Callable[[torch.Tensor], None] | None = None) -> dict:
    """{member: (pred [S] long, score [S] float32)} on the CPU, ``features`` fed in order, ``batch_size`` rows a
    step; ``on_batch(batch)`` after each step (the [B, D] rows just fed)."""
    if batch_size < 1:
        raise UserError(f"batch_size must be >= 1, got {batch_size}")
    outputs: dict = {}
    for batch in features.split(batch_size):
        for member, (pred, score) in _members(engine.step(batch)).items():
            outputs.setdefault(member, ([], []))
            outputs[member][0].append(pred.cpu())
            outputs[member][1].append(score.cpu())
        if on_batch is not None:
            on_batch(batch)
    return {member: (torch.cat(preds), torch.cat(scores)) for member, (preds, scores) in outputs.items()}


def score_stream(engine, features: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Feed ``features`` [S, D] to ``engine.step`` in order, ``batch_size`` rows at a time.

    Returns (pred [S] long, score [S] float32) on the CPU.
    """
    return _score_members(engine, features, batch_size)[None]


def _shuffled(count: int, generator: torch.Generator) -> torch.Tensor:
    return torch.randperm(count, generator=generator)


def _segment_metrics(engine, id_set: FeatureSet, id_rows: torch.Tensor, ood_set: FeatureSet, order: str,
                     generator: torch.Generator, batch_size: int, tracer: Tracer | None) -> dict:
    """Score ID rows ``id_rows`` and the whole OOD set as one stream (no reset here): {member: metrics}."""
    n_id, n_ood = len(id_rows), len(ood_set)
    pool = torch.cat([id_set.features[id_rows], ood_set.features])
    if order == "mixed":
        sequence = _shuffled(n_id + n_ood, generator)
    elif order == "id-first":
        sequence = torch.cat([_shuffled(n_id, generator), n_id + _shuffled(n_ood, generator)])
    else:  # ood-first
        sequence = torch.cat([n_id + _shuffled(n_ood, generator), _shuffled(n_id, generator)])
    is_id = torch.arange(n_id + n_ood) < n_id
    if tracer is not None:
        tracer.segment(ood_set.name, is_id[sequence])
    outputs = _score_members(engine, pool[sequence], batch_size, tracer.after_batch if tracer else None)
    back = torch.empty_like(sequence)
    back[sequence] = torch.arange(len(sequence))
    labels = torch.cat([id_set.labels[id_rows].cpu(), torch.full((n_ood,), -1, dtype=torch.long)])
    metrics = {}
    for member, (pred, score) in outputs.items():
        if tracer is not None:
            tracer.scores(member, score)
        metrics[member] = ood_metrics(score[back].numpy(), is_id.numpy(), pred[back].numpy(), labels.numpy())
    return metrics


def stream_generator(seed: int, ood_index: int, purpose: int = 0) -> torch.Generator:
    """The generator of the ``ood_index``-th OOD set's stream under ``seed`` (reset protocols): ``purpose`` 0
    shuffles it, 1 subsamples it (``id_ood_ratio``).

    Seeded from ``(seed, ood_index)`` alone (numpy ``SeedSequence(seed, spawn_key=(ood_index,))``), so a set's
    stream does not depend on the order in which the sets are run (the condition for running them in parallel).
    """
    spawn_key = (int(ood_index),) if purpose == 0 else (int(ood_index), int(purpose))
    state = np.random.SeedSequence(int(seed) % 2**64, spawn_key=spawn_key).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) | int(state[1]) << 32)


def stream_tasks(benchmark: FeatureBenchmark, protocol: str, seeds: Sequence[int]) -> list[tuple[int, int | None]]:
    """Independent units of work, in table order: (seed, OOD index) per reset stream; (seed, None) for temporal."""
    if protocol == "temporal":
        return [(seed, None) for seed in seeds]
    return [(seed, index) for seed in seeds for index in range(len(benchmark.ood_sets()))]


#: Fewer samples than this on either side of a stream and its metrics mean little (FPR@95 moves in steps of 1/n).
MIN_STREAM_SIDE = 20


class DegenerateStreamWarning(UserWarning):
    """A stream holds too few ID or OOD samples for its metrics to mean much."""


def _kept(id_count: int, ood_count: int, ratio: float | None) -> tuple[int, int]:
    """(ID, OOD) samples a stream keeps with ``ratio`` ID samples per OOD sample (None: all of both)."""
    if ratio is None:
        return id_count, ood_count
    if ratio * ood_count <= id_count:
        return max(1, round(ratio * ood_count)), ood_count
    return id_count, max(1, round(id_count / ratio))


def stream_sizes(id_count: int, ood_counts: Mapping[str, int], settings) -> dict[str, dict[str, int]]:
    """{OOD set: {"id": n, "ood": m}}: the samples of each stream (each OOD set's segment, for ``temporal``) under
    ``settings``' protocol, order and ID:OOD ratio; warns (``DegenerateStreamWarning``) with the counts where a side
    has fewer than ``MIN_STREAM_SIDE``."""
    if settings.protocol == "temporal":
        order = list(settings.order) if settings.order else list(ood_counts)
        chunks = torch.arange(id_count).tensor_split(len(order))
        sizes = {name: {"id": len(chunk), "ood": ood_counts[name]} for name, chunk in zip(order, chunks)}
    else:
        sizes = {name: dict(zip(("id", "ood"), _kept(id_count, count, settings.id_ood_ratio)))
                 for name, count in ood_counts.items()}
    thin = {name: size for name, size in sizes.items() if min(size.values()) < MIN_STREAM_SIDE}
    if thin:
        warnings.warn("streams with fewer than {} samples of a side, whose metrics mean little: {}".format(
            MIN_STREAM_SIDE, ", ".join(f"{name} ({size['id']} ID, {size['ood']} OOD)" for name, size in thin.items()))
            + (f" (--id-ood-ratio {settings.id_ood_ratio} cuts them)" if settings.id_ood_ratio is not None else ""),
            DegenerateStreamWarning, stacklevel=2)
    return sizes


def _ratio_subsample(id_count: int, ood_set: FeatureSet, ratio: float,
                     generator: torch.Generator) -> tuple[torch.Tensor, FeatureSet]:
    """ID rows and OOD set with ``ratio`` ID samples per OOD sample: the larger side subsampled, at random."""
    ood_count = len(ood_set)
    id_keep, ood_keep = _kept(id_count, ood_count, ratio)
    id_rows = torch.sort(_shuffled(id_count, generator)[:id_keep]).values
    if ood_keep < ood_count:
        rows = torch.sort(_shuffled(ood_count, generator)[:ood_keep]).values
        ood_set = FeatureSet(ood_set.name, ood_set.features[rows], ood_set.labels[rows])
    return id_rows, ood_set


def run_stream(engine, benchmark: FeatureBenchmark, settings: StreamSettings, seed: int,
               index: int | None) -> tuple[dict, list[dict] | None]:
    """One task's rows ({member: {OOD set name: {group, metrics}}}) and trace (None unless
    ``settings.trace_window``); resets ``engine`` first."""
    named = benchmark.ood_sets()
    all_id = torch.arange(len(benchmark.id_set))
    engine.reset()
    rows: dict = {}
    if index is not None:
        group, ood_set = named[index]
        tracer = Tracer(engine, f"seed {seed}, {ood_set.name}", settings.trace_window) \
            if settings.trace_window else None
        id_rows = all_id
        if settings.id_ood_ratio is not None:
            id_rows, ood_set = _ratio_subsample(len(all_id), ood_set, settings.id_ood_ratio,
                                                stream_generator(seed, index, purpose=1))
        for member, metrics in _segment_metrics(engine, benchmark.id_set, id_rows, ood_set, settings.protocol,
                                                stream_generator(seed, index), settings.batch_size,
                                                tracer).items():
            rows.setdefault(member, {})[ood_set.name] = {"group": group, **metrics}
        return rows, tracer.rows() if tracer else None
    by_name = {ood_set.name: (group, ood_set) for group, ood_set in named}
    order = list(settings.order) if settings.order else list(by_name)
    tracer = Tracer(engine, f"seed {seed}, temporal", settings.trace_window) if settings.trace_window else None
    generator = torch.Generator().manual_seed(seed)
    id_chunks = _shuffled(len(all_id), generator).tensor_split(len(order))
    for name, id_rows in zip(order, id_chunks):
        group, ood_set = by_name[name]
        for member, metrics in _segment_metrics(engine, benchmark.id_set, id_rows, ood_set, "mixed", generator,
                                                settings.batch_size, tracer).items():
            rows.setdefault(member, {})[name] = {"group": group, **metrics}
    return rows, tracer.rows() if tracer else None
