"""Running independent streams in processes: the same tables as one process, in less wall time.

The OOD streams of ``mixed``, ``id-first`` and ``ood-first`` are independent (a reset each), and so are the seeds:
they run in ``workers`` processes (started by a fork server, or ``spawn`` where there is none; never forked from
this process, which is unsafe once torch has run threads or CUDA), each building its own engine. The engine
factory must then be picklable (``functools.partial(create_engine, name, bank, ...)``, not a lambda).
"""
from __future__ import annotations

import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Callable

import torch

from ..core.errors import UserError, UserTypeError
from .data import FeatureBenchmark
from .streams import StreamSettings, run_stream

__all__ = ["run_tasks", "Given"]

# Per worker process: the payload sent once by the pool initialiser, and the engine built from it on first use.
_WORKER: dict = {}


def _init_worker(payload: bytes, threads: int) -> None:
    torch.set_num_threads(threads)
    _WORKER.clear()
    _WORKER["make_engine"], _WORKER["benchmark"], _WORKER["settings"] = pickle.loads(payload)


def _worker_task(task: tuple[int, int | None]) -> tuple[dict, list | None]:
    if "engine" not in _WORKER:
        _WORKER["engine"] = _WORKER["make_engine"]()
    return run_stream(_WORKER["engine"], _WORKER["benchmark"], _WORKER["settings"], *task)


class Given:
    """A picklable ``make_engine`` returning a given engine (in a worker: that process's own copy of it)."""

    def __init__(self, engine):
        self.engine = engine

    def __call__(self):
        return self.engine


def run_tasks(make_engine: Callable[[], object], benchmark: FeatureBenchmark, settings: StreamSettings,
              tasks: list[tuple[int, int | None]], workers: int,
              threads_per_worker: int | None) -> list[tuple[dict, list | None]]:
    """``run_stream``'s (rows, trace) of each task, in task order: in this process (one engine for all) or in a
    pool of processes."""
    if isinstance(workers, bool) or not float(workers).is_integer() or int(workers) < 1:
        raise UserError(f"workers must be an integer >= 1 (processes for independent streams), got {workers!r}")
    if threads_per_worker is not None and int(threads_per_worker) < 1:
        raise UserError(f"threads_per_worker must be >= 1 or None, got {threads_per_worker!r}")
    workers = min(int(workers), len(tasks))
    if workers <= 1:
        engine = make_engine()
        return [run_stream(engine, benchmark, settings, seed, index) for seed, index in tasks]
    try:
        payload = pickle.dumps((make_engine, benchmark, settings))
    except (pickle.PicklingError, TypeError, AttributeError) as error:
        raise UserTypeError(f"workers={workers} runs streams in other processes, so the engine (run_protocol) or "
                            f"engine factory (evaluate, replay) must be picklable ({error}); pass e.g. "
                            f"functools.partial(create_engine, name, bank), functools.partial(create_lockstep, "
                            f"methods, bank) or functools.partial(TANL, id_text, corpus_text, noise_features, ...) "
                            f"instead of a lambda, or use workers=1") from error
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


