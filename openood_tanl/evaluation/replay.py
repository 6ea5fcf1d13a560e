"""Replaying cached embeddings through an engine under a protocol: the tables of one run.

``replay`` runs the streams of ``StreamSettings`` for each seed (the independent streams in processes with
``workers`` > 1, the same tables as one process) through one engine or a ``core.Lockstep`` of several, and returns
the summary and per-seed tables of each, plus the stream trace when one is asked for. ``evaluate`` is ``replay``
for one engine with the settings as keywords (its two tables); ``run_protocol`` is one given engine, one seed.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Iterable, Sequence

import pandas as pd

from ..core.errors import UserTypeError
from .data import FeatureBenchmark
from .parallel import Given, run_tasks
from .protocols import StreamSettings, check_settings
from .streams import stream_tasks
from .tables import metrics_table, seed_summary, summarise

__all__ = ["Replay", "replay", "replay_streams", "evaluate", "run_protocol"]


@dataclass
class Replay:
    """What one replay produced.

    Attributes:
        tables: member -> (summary, per_seed) as ``evaluate`` returns them; the member is the ``Lockstep`` label,
            or None for a single engine.
        trace: the stream trace (``traces.TRACE_COLUMNS`` after ``method``), or None when none was asked for.
    """

    tables: dict[Any, tuple[pd.DataFrame, pd.DataFrame]]
    trace: pd.DataFrame | None = None


def _ood_names(benchmark: FeatureBenchmark) -> list[str]:
    return [ood_set.name for _, ood_set in benchmark.ood_sets()]


def replay(make_engine: Callable[[], object], benchmark: FeatureBenchmark, settings: StreamSettings = StreamSettings(),
           *, seeds: Iterable[int] = (0,), workers: int = 1, threads_per_worker: int | None = None) -> Replay:
    """Run ``settings`` for each seed through the engine ``make_engine()`` builds (one engine, or a
    ``Lockstep`` whose members are each scored as if alone).

    ``workers``: processes for the independent streams (each (seed, OOD set) of ``mixed``/``id-first``/
    ``ood-first``; each seed of ``temporal``); the tables equal those of ``workers=1``. With more than one,
    ``make_engine`` must be picklable (``MethodConfig.factory(bank)``, ``functools.partial(create_lockstep,
    methods, bank)``; not a lambda) and is sent with the benchmark to each worker (one copy of the features per
    worker). ``threads_per_worker``: torch intra-op threads of each worker (default ``torch.get_num_threads() //
    workers``, at least 1); docs/DESIGN.md says why, and what thread counts can change.
    """
    seeds = list(seeds)
    check_settings(settings, _ood_names(benchmark), seeds)
    tasks = stream_tasks(benchmark, settings.protocol, seeds)
    parts = run_tasks(make_engine, benchmark, settings, tasks, workers, threads_per_worker)
    per_run = len(tasks) // len(seeds)  # each seed's tasks are contiguous, in order
    tables = {}
    for member in parts[0][0]:
        per_seed = [summarise(metrics_table({name: row for rows, _ in parts[i * per_run:(i + 1) * per_run]
                                             for name, row in rows[member].items()})) for i in range(len(seeds))]
        tables[member] = seed_summary(per_seed, seeds)
    trace = None
    if settings.trace_window:
        trace = pd.DataFrame([row for _, rows in parts for row in rows or []])
        trace["method"] = trace["method"].fillna("engine")
    return Replay(tables, trace)


#: ``replay`` under its earlier name (``openood_tanl.evaluation.replay_streams``; ``evaluation.replay`` is this
#: module).
replay_streams = replay


def run_protocol(engine, benchmark: FeatureBenchmark, protocol: str = "mixed", *, seed: int = 0,
                 batch_size: int = 256, order: Sequence[str] | None = None, id_ood_ratio: float | None = None,
                 workers: int = 1, threads_per_worker: int | None = None) -> pd.DataFrame:
    """Metrics (percent) of one engine on one benchmark under one protocol and seed.

    Returns a DataFrame indexed by OOD dataset name, with a ``group`` column and ``METRIC_COLUMNS``.

    ``workers`` > 1 runs the OOD streams of ``mixed``/``id-first``/``ood-first`` in that many processes, each
    on its own (unpickled) copy of ``engine``, which must be picklable; the table is that of ``workers=1``, but
    ``engine`` itself is then left as it was (the copies learnt, not it). ``temporal`` (one stream) always runs
    here. ``threads_per_worker``: torch intra-op threads of each worker (see ``replay``).
    """
    settings = StreamSettings.from_keywords(protocol, batch_size, order, id_ood_ratio)
    check_settings(settings, _ood_names(benchmark), [seed])
    tasks = stream_tasks(benchmark, protocol, [seed])
    parts = run_tasks(Given(engine), benchmark, settings, tasks, workers, threads_per_worker)
    return metrics_table({name: row for rows, _ in parts for name, row in rows[None].items()})


def evaluate(make_engine: Callable[[], object], benchmark: FeatureBenchmark, protocol: str = "mixed", *,
             seeds: Iterable[int] = (0,), batch_size: int = 256, order: Sequence[str] | None = None,
             id_ood_ratio: float | None = None, workers: int = 1,
             threads_per_worker: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``protocol`` for each seed through one engine; return (summary, per_seed).

    ``summary``: one row per OOD dataset plus group means, the mean over seeds of each metric and, with several
    seeds, ``<metric>_std`` (sample standard deviation). ``per_seed``: the long table. ``id_ood_ratio``: ID samples
    per OOD sample in each stream (``StreamSettings``). ``workers``, ``threads_per_worker``: see ``replay``.
    """
    result = replay(make_engine, benchmark, StreamSettings.from_keywords(protocol, batch_size, order, id_ood_ratio),
                    seeds=seeds, workers=workers, threads_per_worker=threads_per_worker)
    if set(result.tables) != {None}:
        raise UserTypeError("evaluate replays one engine; for a Lockstep of several use replay(), which returns the "
                            "tables of each")
    return result.tables[None]
