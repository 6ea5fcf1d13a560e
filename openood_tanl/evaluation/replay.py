"""Replaying cached embeddings through an engine under a protocol: the tables of one run.

``evaluate`` runs a protocol for each seed (the independent streams in processes with ``workers`` > 1, the same
tables as one process) and returns the summary and the per-seed table; ``run_protocol`` is one engine, one seed.
"""
from __future__ import annotations

from typing import Callable, Iterable, Sequence

import pandas as pd

from .data import FeatureBenchmark
from .parallel import Given, run_tasks
from .protocols import check_protocol
from .streams import stream_tasks
from .tables import metrics_table, seed_summary, summarise

__all__ = ["evaluate", "run_protocol"]


def _check(benchmark: FeatureBenchmark, protocol: str, order, seeds) -> None:
    check_protocol(protocol, [ood_set.name for _, ood_set in benchmark.ood_sets()], order, seeds)


def run_protocol(engine, benchmark: FeatureBenchmark, protocol: str = "mixed", *, seed: int = 0,
                 batch_size: int = 256, order: Sequence[str] | None = None, workers: int = 1,
                 threads_per_worker: int | None = None) -> pd.DataFrame:
    """Metrics (percent) of one engine on one benchmark under one protocol and seed.

    Returns a DataFrame indexed by OOD dataset name, with a ``group`` column and ``METRIC_COLUMNS``.

    ``workers`` > 1 runs the OOD streams of ``mixed``/``id-first``/``ood-first`` in that many processes, each
    on its own (unpickled) copy of ``engine``, which must be picklable; the table is that of ``workers=1``, but
    ``engine`` itself is then left as it was (the copies learnt, not it). ``temporal`` (one stream) always runs
    here. ``threads_per_worker``: torch intra-op threads of each worker (see ``evaluate``).
    """
    _check(benchmark, protocol, order, [seed])
    tasks = stream_tasks(benchmark, protocol, [seed])
    parts = run_tasks(Given(engine), benchmark, protocol, tasks, batch_size, order, workers, threads_per_worker)
    return metrics_table({name: row for part in parts for name, row in part.items()})


def evaluate(make_engine: Callable[[], object], benchmark: FeatureBenchmark, protocol: str = "mixed", *,
             seeds: Iterable[int] = (0,), batch_size: int = 256, order: Sequence[str] | None = None,
             workers: int = 1, threads_per_worker: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``protocol`` for each seed; return (summary, per_seed).

    ``summary``: one row per OOD dataset plus group means, the mean over seeds of each metric and, with several
    seeds, ``<metric>_std`` (sample standard deviation). ``per_seed``: the long table.

    ``workers``: processes for the independent streams (each (seed, OOD set) of ``mixed``/``id-first``/
    ``ood-first``; each seed of ``temporal``); the tables equal those of ``workers=1``. With more than one,
    ``make_engine`` must be picklable (``MethodConfig.factory(bank)``, ``functools.partial(create_engine, name,
    bank)``; not a lambda) and is sent with the benchmark to each worker (one copy of the features per worker).
    ``threads_per_worker``: torch intra-op threads of each worker (default ``torch.get_num_threads() // workers``,
    at least 1); docs/DESIGN.md says why, and what thread counts can change.
    """
    seeds = list(seeds)
    _check(benchmark, protocol, order, seeds)
    tasks = stream_tasks(benchmark, protocol, seeds)
    parts = run_tasks(make_engine, benchmark, protocol, tasks, batch_size, order, workers, threads_per_worker)
    per_run = len(tasks) // max(len(seeds), 1)  # each seed's tasks are contiguous, in order
    per_seed = [summarise(metrics_table({name: row for part in parts[i * per_run:(i + 1) * per_run]
                                         for name, row in part.items()})) for i in range(len(seeds))]
    return seed_summary(per_seed, seeds)
