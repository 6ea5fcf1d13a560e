"""The process group for encoding a benchmark with several processes under ``torchrun``.

``torchrun --nproc_per_node=N ...`` starts N copies of a program and describes them in environment variables
(``WORLD_SIZE``, ``RANK``, ``LOCAL_RANK``, ``MASTER_ADDR``, ``MASTER_PORT``). ``init_from_env()`` joins them into a
``torch.distributed`` process group: NCCL when CUDA is available (each process on GPU ``LOCAL_RANK``), gloo on CPUs;
it does nothing in a plain single process (``WORLD_SIZE`` unset or 1), so a program can call it unconditionally.
The group is destroyed when the interpreter exits (or by ``destroy()``).

Once a group is up, ``extract_features``/``extract_benchmark`` split the work: each rank encodes the shards
``i % world_size == rank`` into the shared cache (``extract_benchmark`` numbers the shards of all its lists in
one sequence), all ranks meet at a barrier, and each rank then reads the other ranks' shards from the cache, so
every rank returns the full features (identical to a single-process run).

The barrier waits for the slowest rank, so the group's timeout must cover an uneven share of the encoding:
``DEFAULT_TIMEOUT`` is 2 hours (``$OPENOOD_TANL_DIST_TIMEOUT`` seconds overrides it).
"""
from __future__ import annotations

import atexit
import contextlib
import datetime
import os

import torch

from ..core.errors import SetupError

__all__ = ["init_from_env", "is_initialised", "is_distributed", "rank", "world_size", "local_rank",
           "is_main_process", "barrier", "main_process_first", "device_for", "destroy", "DEFAULT_TIMEOUT"]

DEFAULT_TIMEOUT = datetime.timedelta(hours=2)
_owned = False  # whether init_from_env created the group (and so destroys it)


def _dist():
    import torch.distributed as dist

    return dist if dist.is_available() else None


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise SetupError(f"environment variable {name}={value!r} is not an integer") from None


def init_from_env(backend: str | None = None, timeout: datetime.timedelta | float | None = None) -> bool:
    """Join the process group that torchrun's environment variables describe, when there is more than one process.

    Args:
        backend: 'nccl' or 'gloo' (default: 'nccl' when CUDA is available, else 'gloo').
        timeout: how long a collective (the barrier after encoding) may wait; a timedelta or seconds (default:
            ``$OPENOOD_TANL_DIST_TIMEOUT`` seconds, else ``DEFAULT_TIMEOUT``).

    Returns:
        True when a process group of several processes is active (created now or before), False otherwise.
    """
    global _owned
    dist = _dist()
    if dist is not None and dist.is_initialized():
        return dist.get_world_size() > 1
    world = _env_int("WORLD_SIZE", 1)
    if world <= 1:
        return False
    if dist is None:
        raise SetupError(f"WORLD_SIZE={world} but this torch build has no torch.distributed support")
    missing = [name for name in ("RANK", "MASTER_ADDR", "MASTER_PORT") if not os.environ.get(name)]
    if missing:
        raise SetupError(f"WORLD_SIZE={world} but {', '.join(missing)} not set: start the program with torchrun "
                         "(e.g. torchrun --nproc_per_node=2 -m openood_tanl.cli extract ...)")
    cuda = torch.cuda.is_available()
    backend = backend or ("nccl" if cuda else "gloo")
    if backend == "nccl":
        if not cuda:
            raise SetupError("the nccl backend needs CUDA; use backend='gloo' on CPUs")
        if local_rank() >= torch.cuda.device_count():
            raise SetupError(f"LOCAL_RANK={local_rank()} but only {torch.cuda.device_count()} CUDA device(s) are "
                             "visible: start at most one process per GPU (--nproc_per_node)")
        torch.cuda.set_device(local_rank())
    if timeout is None:
        timeout = _env_int("OPENOOD_TANL_DIST_TIMEOUT", int(DEFAULT_TIMEOUT.total_seconds()))
    if not isinstance(timeout, datetime.timedelta):
        timeout = datetime.timedelta(seconds=float(timeout))
    dist.init_process_group(backend=backend, init_method="env://", timeout=timeout)
    _owned = True
    atexit.register(destroy)
    return dist.get_world_size() > 1


def is_initialised() -> bool:
    """Whether a torch.distributed process group (of any size) is initialised."""
    dist = _dist()
    return dist is not None and dist.is_initialized()


def is_distributed() -> bool:
    """Whether a process group of more than one process is initialised."""
    dist = _dist()
    return dist is not None and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank in the group (0 without one)."""
    dist = _dist()
    return dist.get_rank() if dist is not None and dist.is_initialized() else 0


def world_size() -> int:
    """The number of processes in the group (1 without one)."""
    dist = _dist()
    return dist.get_world_size() if dist is not None and dist.is_initialized() else 1


def local_rank() -> int:
    """This process's index on its machine (``$LOCAL_RANK``, set by torchrun; 0 otherwise)."""
    return _env_int("LOCAL_RANK", 0)


def is_main_process() -> bool:
    """True on rank 0 and in a single process: the one that prints and writes reports."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (nothing without a group)."""
    dist = _dist()
    if not (dist is not None and dist.is_initialized()):
        return
    if dist.get_backend() == "nccl":
        dist.barrier(device_ids=[torch.cuda.current_device()])
    else:
        dist.barrier()


@contextlib.contextmanager
def main_process_first():
    """Run the block on rank 0 first, then on the other ranks (e.g. to fill a shared cache once)."""
    if is_distributed() and not is_main_process():
        barrier()
    try:
        yield
    finally:
        if is_distributed() and is_main_process():
            barrier()


def device_for(name: str = "auto") -> str:
    """The device this process should use: 'auto' -> CUDA if available else CPU; in a group 'auto' and 'cuda'
    mean this process's GPU (``cuda:<LOCAL_RANK>``). Any other name is returned as is."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda" and is_distributed():
        return f"cuda:{local_rank()}"
    return name


def destroy() -> None:
    """Destroy the process group if ``init_from_env`` created it."""
    global _owned
    dist = _dist()
    if _owned and dist is not None and dist.is_initialized():
        dist.destroy_process_group()
    _owned = False
