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

Stream order. In ``mixed``, ``id-first`` and ``ood-first`` the stream of the i-th OOD set (``ood_sets()`` order)
is shuffled by its own generator, seeded from ``(seed, i)`` (numpy ``SeedSequence(seed, spawn_key=(i,))``), so
it does not depend on which OOD sets were scored before it. ``temporal`` is one stream shuffled by one generator
seeded with ``seed``.

Parallel streams (``workers`` > 1). The OOD streams of ``mixed``, ``id-first`` and ``ood-first`` are independent
(a reset each), and so are the seeds of ``evaluate``: they run in ``workers`` processes (started by a fork
server, or ``spawn`` where there is none; never forked from this process, which is unsafe once torch has run
threads or CUDA), each building its own engine, and the tables are those of ``workers=1``: each stream is the
same computation on the same data in the same order (see ``evaluate`` on thread counts). The engine
(``run_protocol``) or engine factory (``evaluate``) must then be picklable: ``functools.partial(TANL, id_text,
corpus, noise, num_negatives=...)`` or ``functools.partial(postprocessor.engine_for, bank)``, not a lambda.
``temporal`` is a single stream: with one seed it runs sequentially whatever ``workers`` says, without error (its
seeds still run in parallel).
"""
from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from typing import Callable, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from ..metrics import METRIC_COLUMNS, ood_metrics
from .protocol_names import PROTOCOLS

__all__ = ["FeatureSet", "FeatureBenchmark", "PROTOCOLS", "check_protocol", "score_stream", "run_protocol", "evaluate",
           "summarise", "is_group_mean", "group_mean_name", "stream_generator"]



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


def stream_generator(seed: int, ood_index: int) -> torch.Generator:
    """The generator that shuffles the stream of the ``ood_index``-th OOD set under ``seed`` (reset protocols).

    Seeded from ``(seed, ood_index)`` alone (numpy ``SeedSequence(seed, spawn_key=(ood_index,))``), so a set's
    stream does not depend on the order in which the sets are run (the condition for running them in parallel).
    """
    state = np.random.SeedSequence(int(seed) % 2**64, spawn_key=(int(ood_index),)).generate_state(2, np.uint32)
    return torch.Generator().manual_seed(int(state[0]) | int(state[1]) << 32)


def check_protocol(protocol: str, ood_set_names: Sequence[str], order: Sequence[str] | None = None,
                   seeds: Sequence[int] | None = None) -> None:
    """Refuse an unknown protocol, an ``order`` that is not a permutation of every OOD set (it would drop or repeat
    sets), ``order`` without the temporal protocol, and repeated seeds (a stream averaged with itself)."""
    if protocol not in PROTOCOLS:
        raise ValueError(f"unknown protocol '{protocol}'; choose one of {', '.join(PROTOCOLS)}")
    if not ood_set_names:
        raise ValueError("the benchmark has no OOD set")
    if order:
        if protocol != "temporal":
            raise ValueError(f"an OOD set order applies to the temporal protocol only, not '{protocol}'")
        known = list(ood_set_names)
        unknown = [name for name in order if name not in known]
        repeated = sorted({name for name in order if list(order).count(name) > 1})
        missing = [name for name in known if name not in order]
        problems = ([f"unknown OOD sets {unknown}"] if unknown else []) + \
            ([f"repeats {repeated}"] if repeated else []) + ([f"leaves out {missing}"] if missing else [])
        if problems:
            raise ValueError(f"the temporal order {list(order)} " + "; ".join(problems) + f": list every OOD set "
                             f"once, e.g. --order {' '.join(known)}")
    if seeds is not None:
        seeds = list(seeds)
        if not seeds:
            raise ValueError("seeds must name at least one seed")
        repeated = sorted({s for s in seeds if seeds.count(s) > 1})
        if repeated:
            raise ValueError(f"seeds {seeds} repeat {repeated}: the same stream would be averaged with itself; give "
                             "distinct seeds (e.g. 0 1 2)")


def _check_protocol(benchmark: FeatureBenchmark, protocol: str, order: Sequence[str] | None,
                    seeds: Sequence[int] | None = None) -> None:
    check_protocol(protocol, [ood_set.name for _, ood_set in benchmark.ood_sets()], order, seeds)


def _tasks(benchmark: FeatureBenchmark, protocol: str, seeds: Sequence[int]) -> list[tuple[int, int | None]]:
    """Independent units of work, in table order: (seed, OOD index) per reset stream; (seed, None) for temporal."""
    if protocol == "temporal":
        return [(seed, None) for seed in seeds]
    return [(seed, index) for seed in seeds for index in range(len(benchmark.ood_sets()))]


def _run_task(engine, benchmark: FeatureBenchmark, protocol: str, seed: int, index: int | None, batch_size: int,
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


# Per worker process: the payload sent once by the pool initialiser, and the engine built from it on first use.
_WORKER: dict = {}


def _init_worker(payload: bytes, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.clear()
    _WORKER["make_engine"], _WORKER["benchmark"], _WORKER["args"] = pickle.loads(payload)


def _worker_task(task: tuple[int, int | None]) -> dict[str, dict]:
    if "engine" not in _WORKER:
        _WORKER["engine"] = _WORKER["make_engine"]()
    protocol, batch_size, order = _WORKER["args"]
    return _run_task(_WORKER["engine"], _WORKER["benchmark"], protocol, *task, batch_size, order)


class _Given:
    """A picklable ``make_engine`` returning a given engine (in a worker: that process's own copy of it)."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self):
        return self.engine


def _run_tasks(make_engine: Callable[[], object], benchmark: FeatureBenchmark, protocol: str,
               tasks: list[tuple[int, int | None]], batch_size: int, order: Sequence[str] | None, workers: int,
               threads_per_worker: int | None) -> list[dict[str, dict]]:
    """Rows of each task, in task order: in this process (one engine for all) or in a pool of processes."""
    if isinstance(workers, bool) or not float(workers).is_integer() or int(workers) < 1:
        raise ValueError(f"workers must be an integer >= 1 (processes for independent streams), got {workers!r}")
    if threads_per_worker is not None and int(threads_per_worker) < 1:
        raise ValueError(f"threads_per_worker must be >= 1 or None, got {threads_per_worker!r}")
    workers = min(int(workers), len(tasks))
    if workers <= 1:
        engine = make_engine()
        return [_run_task(engine, benchmark, protocol, seed, index, batch_size, order) for seed, index in tasks]
    try:
        payload = pickle.dumps((make_engine, benchmark, (protocol, batch_size, tuple(order or ()))))
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise TypeError(f"workers={workers} runs streams in other processes, so the engine (run_protocol) or "
                        f"engine factory (evaluate) must be picklable ({error}); pass e.g. "
                        f"functools.partial(postprocessor.engine_for, bank) or functools.partial(TANL, id_text, "
                        f"corpus_text, noise_features, ...) instead of a lambda, or use workers=1") from error
    threads = threads_per_worker or max(1, torch.get_num_threads() // workers)
    with ProcessPoolExecutor(max_workers=workers, mp_context=_context(), initializer=_init_worker,
                             initargs=(payload, int(threads))) as pool:
        return list(pool.map(_worker_task, tasks))


def _context() -> multiprocessing.context.BaseContext:
    """``forkserver`` where there is one (Linux, macOS), else ``spawn``; never plain ``fork``.

    A forked copy of a process that has run torch ops (its OpenMP pool) or touched CUDA can deadlock, so workers
    never fork from this process. The fork server is a fresh single-threaded interpreter that imports this module
    (hence torch) once; each worker forks from it, ready in a fraction of the seconds a ``spawn`` import takes.
    As with ``spawn``, the main script is imported there (as ``__mp_main__``), so factories defined in it unpickle
    in the workers; a script must guard its entry point with ``if __name__ == "__main__":``.
    """
    if "forkserver" in multiprocessing.get_all_start_methods():
        context = multiprocessing.get_context("forkserver")
        context.set_forkserver_preload(["__main__", __name__])
        return context
    return multiprocessing.get_context("spawn")


def _table(rows: dict[str, dict]) -> pd.DataFrame:
    table = pd.DataFrame.from_dict(rows, orient="index")
    table.index.name = "dataset"
    return table


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
    _check_protocol(benchmark, protocol, order)
    tasks = _tasks(benchmark, protocol, [seed])
    parts = _run_tasks(_Given(engine), benchmark, protocol, tasks, batch_size, order, workers, threads_per_worker)
    return _table({name: row for part in parts for name, row in part.items()})


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
             seeds: Iterable[int] = (0,), batch_size: int = 256, order: Sequence[str] | None = None,
             workers: int = 1, threads_per_worker: int | None = None) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Run ``protocol`` for each seed; return (summary, per_seed).

    ``summary`` has one row per OOD dataset plus group means, the mean over seeds of each metric and, with
    several seeds, ``<metric>_std`` columns (sample standard deviation). ``per_seed`` is the long table.

    ``workers``: processes for the independent streams (each (seed, OOD set) of ``mixed``/``id-first``/
    ``ood-first``; each seed of ``temporal``). 1 (default) runs everything here on one engine. With more, each
    worker process builds its own engine with ``make_engine``, which must then be picklable (e.g.
    ``functools.partial(postprocessor.engine_for, bank)``, not a lambda) and is sent, with the benchmark, once to
    each worker (memory: one copy of the features per worker). The results are those of ``workers=1``, exactly.
    ``threads_per_worker``: torch intra-op threads of each worker; default ``torch.get_num_threads() // workers``
    (at least 1), so the workers share this process's cores instead of oversubscribing them (2 workers x 2
    threads on 2 cores ran 3x slower than the sequential run). Each stream is the same computation on the same
    data in the same order as in the sequential run; the one thing that differs is the thread count, and the
    engines' CPU results did not change with it in our checks (TANL, NegLabel, AdaNeg: 1 vs 2 threads, bitwise,
    up to ImageNet-size banks), but torch does not promise thread-count-independent rounding in general: pass
    ``threads_per_worker=torch.get_num_threads()`` to rule it out, at the cost of oversubscription.
    """
    seeds = list(seeds)
    _check_protocol(benchmark, protocol, order, seeds)
    tasks = _tasks(benchmark, protocol, seeds)
    parts = _run_tasks(make_engine, benchmark, protocol, tasks, batch_size, order, workers, threads_per_worker)
    per_seed, per_run = [], len(tasks) // max(len(seeds), 1)  # each seed's tasks are contiguous, in order
    for position, seed in enumerate(seeds):
        rows = {name: row for part in parts[position * per_run:(position + 1) * per_run] for name, row in part.items()}
        table = summarise(_table(rows))
        per_seed.append(table.assign(seed=seed).reset_index())
    long = pd.concat(per_seed, ignore_index=True)
    grouped = long.groupby(["dataset", "group"], sort=False)[list(METRIC_COLUMNS)]
    summary = grouped.mean()
    if long["seed"].nunique() > 1:
        spread = grouped.std(ddof=1).add_suffix("_std")
        summary = summary.join(spread)
    summary = summary.reset_index(level="group")
    return summary, long
