"""Encode benchmark images once per model: a sharded, checksummed, resumable on-disk feature cache.

Layout, one folder per (model key, preprocessing, image list, shard size)::

    <cache_dir>/features/<fingerprint[:32]>/
        manifest.json        format, name, model_key, preprocess (its repr), paths, labels, count, shard_size,
                             fingerprint
        shard-00000.npy      float32 [rows, D] for images [0, shard_size) (np.save; read with allow_pickle=False)
        shard-00000.json     sidecar, written after its shard: sha256 of the .npy file, shape, dtype, rows, fingerprint,
                             and what identifies its images: ``files`` (a hash of each image's path, size and
                             modification time) and ``contents`` (a hash of the images' bytes)
        shard-00001.npy ...

Images are identified by their content, not only their paths: a shard whose images' sizes or modification times
changed since it was encoded is re-encoded (with a warning naming them), so replacing the files of a folder never
serves stale features. ``verify=True`` (CLI ``--verify``) also hashes every image's bytes and re-encodes a shard
whose contents changed even where size and time were kept (``cp -p``, ``rsync -a``); it reads every image once.
Only the shards whose images changed are re-encoded.

Every file is written to a temporary ``.<name>.<random>.tmp`` file in the folder and renamed into place, so a
reader never sees a partial file and never reads a temporary one. On a rerun, a shard with a valid sidecar
(checksum, shape, dtype, fingerprint) is read, not recomputed; a damaged one warns and is recomputed; a missing
one (or one without its sidecar, i.e. interrupted between the two writes) is computed. Batches never cross a
shard boundary, so a resumed run does the same forward passes as an uninterrupted one and gives identical
features.

Several processes may fill one cache at once (two jobs on the same benchmark, or the ranks of a ``torchrun``
job). Correctness never depends on a lock: files appear only by atomic rename and a shard is used only when its
sidecar vouches for its checksum, so the worst a race can do is compute a shard twice. The locks only keep
processes from doing the same work and let a process remove the temporary files of a killed one:

* Before computing shard ``i`` a process takes an exclusive ``fcntl.flock`` on ``.shard-0000i.lock`` (and on
  ``.manifest.lock`` before writing the manifest), then checks the shard again: another process may have just
  written it. A shard whose lock another process holds is skipped and revisited at the end, waiting for the lock
  and then reading the shard (or computing it, if that process died). So concurrent processes share the shards.
* ``flock`` rather than ``O_EXCL`` lock files: the kernel releases an flock when its process dies, even by
  SIGKILL (on NFS, the server drops a crashed client's locks when its lease expires), so there is never a stale
  lock to detect by age or PID, which would be guesswork: an encode can legitimately hold a lock for minutes. Lock files are deleted by their holder before it releases them (a
  waiter checks that the locked file is still the one at that path and retries if not), and leftovers of killed
  processes are removed by the next run, so the folder holds only the manifest and the shards.
* Whoever holds shard ``i``'s lock is its only writer, so it deletes the shard's temporary files at once (they
  are leftovers of a killed writer); other temporary files are deleted after an hour.
* Where ``fcntl`` is missing (Windows) or the filesystem refuses ``flock`` (some network filesystems), the cache
  runs without locks (one warning): still correct, possibly with duplicated work.

Under ``torchrun`` (a ``torch.distributed`` process group initialised, see ``distributed.init_from_env``), each
rank encodes the shards ``i % world_size == rank`` into the shared cache (``extract_benchmark`` numbers the shards
of all its image lists in one sequence, so small OOD sets do not leave ranks idle), all ranks meet at a barrier,
and each rank reads the other shards from the cache: the cache and the returned features are those of a
single-process run (the same forward passes on the same batches; bitwise equal where the devices and thread
settings are). The shard is the unit of work: a list of fewer than ``shard_size`` images is one shard, encoded by
one rank. ``cache_dir`` must be on a filesystem all ranks share (a shard a rank cannot find after the barrier is
encoded again by that rank, with a warning).
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import re
import time
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..textbank import default_cache_dir, fingerprint, write_atomic
from . import distributed as _distributed
from .benchmarks import ImageBenchmark, ImageList
from .protocols import FeatureBenchmark, FeatureSet

try:
    import fcntl
except ImportError:  # Windows: no flock; the cache runs without locks
    fcntl = None

__all__ = ["extract_features", "extract_benchmark", "model_key_of", "feature_cache_folder", "describe_preprocess",
           "ImageDataset", "CACHE_FORMAT", "files_stamp", "contents_stamp"]

CACHE_FORMAT = 2  # 2: shards record their images' size, modification time and contents
_STALE_TEMP_SECONDS = 3600


def model_key_of(model_name: str, pretrained: str | None, **extra) -> dict:
    """A cache key for an open_clip model: its name, its weights (tag, or file path + size + mtime) and ``extra``.

    Pass in ``extra`` whatever else changes the image features (``precision='fp16'``, ``quick_gelu=True``, ...).
    """
    from ..networks.clip_network import _weights_identity

    return {"model": model_name, "weights": _weights_identity(pretrained), **extra}


def describe_preprocess(preprocess: Callable) -> str:
    """``repr(preprocess)`` without memory addresses (``<function f at 0x7f...>``), stable across runs."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(preprocess))


def _fingerprint_of(images: ImageList, model_key: dict, preprocess: str, shard_size: int) -> str:
    return fingerprint({"format": CACHE_FORMAT, "model_key": model_key, "preprocess": preprocess,
                        "paths": list(images.paths), "labels": list(images.labels), "shard_size": shard_size})


def feature_cache_folder(cache_dir: str | os.PathLike | None, images: ImageList, model_key: dict,
                         preprocess: Callable, shard_size: int = 4096) -> Path:
    """The folder that holds (or will hold) the features of ``images`` under this model and preprocessing."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "features" / _fingerprint_of(images, _json_key(model_key), describe_preprocess(preprocess),
                                               shard_size)[:32]


def _json_key(model_key: dict) -> dict:
    if not isinstance(model_key, dict):
        raise TypeError(f"model_key must be a dict (e.g. model_key_of(model_name, pretrained)), got "
                        f"{type(model_key).__name__}")
    try:
        return json.loads(json.dumps(model_key, sort_keys=True))
    except (TypeError, ValueError) as error:
        raise TypeError(f"model_key must be JSON-serialisable (strings, numbers, lists, dicts): {error}") from error


class ImageDataset(torch.utils.data.Dataset):
    """Images opened with PIL, converted to RGB and passed through ``preprocess``."""

    def __init__(self, paths, preprocess: Callable):
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from PIL import Image

        path = self.paths[index]
        try:
            with Image.open(path) as image:
                return self.preprocess(image.convert("RGB"))
        except Exception as error:
            raise RuntimeError(f"cannot read or preprocess image {path}: {type(error).__name__}: {error}. Replace the "
                               "file, or remove it from the benchmark's list (images are never dropped silently)"
                               ) from error



# ----------------------------------------------------------------------------------------------------------------
# atomic files and locks


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def files_stamp(paths) -> str:
    """SHA-256 of each file's path, size and modification time (ns): cheap, one ``stat`` per image."""
    digest = hashlib.sha256()
    for path in paths:
        stat = os.stat(path)
        digest.update(f"{path}\t{stat.st_size}\t{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def contents_stamp(paths) -> str:
    """SHA-256 over the SHA-256 of each file's bytes (reads every file)."""
    digest = hashlib.sha256()
    for path in paths:
        digest.update(hashlib.sha256(Path(path).read_bytes()).digest())
    return digest.hexdigest()


def _shard_paths(folder: Path, index: int) -> tuple[Path, Path]:
    return folder / f"shard-{index:05d}.npy", folder / f"shard-{index:05d}.json"


_locks_unsupported = False  # set when flock fails (once a process: one warning)


class _FileLock:
    """An exclusive ``flock`` on ``path`` (created if needed; deleted by its holder on release).

    ``acquire`` returns False when ``blocking`` is False and another process holds the lock. ``enforced`` tells
    whether the lock really excludes others: False where flock is unavailable (then acquire always succeeds).
    """

    def __init__(self, path: Path):
        self.path = path
        self.fd: int | None = None
        self.enforced = False

    def acquire(self, blocking: bool = True) -> bool:
        global _locks_unsupported
        if fcntl is None or _locks_unsupported:
            return True
        while True:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | (0 if blocking else fcntl.LOCK_NB))
            except BlockingIOError:
                os.close(fd)
                return False
            except OSError as error:  # ENOLCK, EOPNOTSUPP, ...: a filesystem without flock
                os.close(fd)
                self.path.unlink(missing_ok=True)
                _locks_unsupported = True
                warnings.warn(f"cannot lock {self.path} ({error}); the feature cache runs without locks in this "
                              "process (still correct; concurrent processes may encode the same shards)",
                              RuntimeWarning, stacklevel=2)
                return True
            try:  # the previous holder deletes the file before releasing it: lock the file now at that path
                current = os.stat(self.path)
            except FileNotFoundError:
                current = None
            if current is not None and os.path.samestat(os.fstat(fd), current):
                self.fd, self.enforced = fd, True
                return True
            os.close(fd)

    def release(self) -> None:
        if self.fd is None:
            return
        fd, self.fd, self.enforced = self.fd, None, False
        try:
            self.path.unlink(missing_ok=True)  # while still held: a waiter that then locks this inode retries
        except OSError:
            pass
        finally:
            os.close(fd)

    def __del__(self):
        if self.fd is not None:  # never keep a lock past its owner (e.g. interrupted between acquire and use)
            try:
                self.release()
            except Exception:
                pass

    def __enter__(self) -> "_FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _shard_lock(folder: Path, index: int) -> _FileLock:
    return _FileLock(folder / f".shard-{index:05d}.lock")


def _remove_temporaries(folder: Path, name: str) -> None:
    """Delete the temporary files of ``name`` (call only while holding the lock of every writer of ``name``)."""
    for temporary in folder.glob(f".{name}.*.tmp"):
        temporary.unlink(missing_ok=True)


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files left by interrupted runs (only old ones: another process may be writing), and the
    lock files of killed processes (those nobody holds)."""
    now = time.time()
    for temporary in folder.glob(".*.tmp"):
        try:
            if now - temporary.stat().st_mtime > _STALE_TEMP_SECONDS:
                temporary.unlink()
        except OSError:
            pass
    for path in folder.glob(".*.lock"):
        lock = _FileLock(path)
        try:
            if lock.acquire(blocking=False) and lock.enforced:
                lock.release()
        except OSError:  # a read-only cache, ...
            pass


def _save_shard(folder: Path, index: int, start: int, array: np.ndarray, fp: str, stamps: dict) -> None:
    npy, sidecar = _shard_paths(folder, index)
    sidecar.unlink(missing_ok=True)  # a stale sidecar must never vouch for the new shard
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    data = buffer.getvalue()
    write_atomic(npy, data)
    meta = {"sha256": hashlib.sha256(data).hexdigest(), "shape": list(array.shape), "dtype": "float32",
            "rows": [start, start + len(array)], "fingerprint": fp, **stamps}
    write_atomic(sidecar, json.dumps(meta).encode())


def _load_shard(folder: Path, index: int, start: int, rows: int, fp: str, stamps: dict,
                warn: bool = True) -> np.ndarray | None:
    """The shard's array if it is present, valid and of the same images (``stamps``: ``files`` and, when
    verifying, ``contents``); None (with a warning when it is damaged or its images changed) otherwise."""
    npy, sidecar = _shard_paths(folder, index)
    if not npy.exists() or not sidecar.exists():
        return None  # never written, or interrupted before its sidecar: compute it
    problem = None
    meta = _read_json(sidecar)
    if not isinstance(meta, dict):
        problem = "its sidecar cannot be read"
    elif meta.get("fingerprint") != fp or meta.get("rows") != [start, start + rows]:
        problem = "its sidecar belongs to another image list, model or shard size"
    elif meta.get("files") != stamps["files"]:
        problem = (f"its images (rows {start}-{start + rows - 1}) changed on disk since they were encoded (size or "
                   "modification time)")
    elif "contents" in stamps and meta.get("contents") != stamps["contents"]:
        problem = f"the contents of its images (rows {start}-{start + rows - 1}) changed since they were encoded"
    else:
        try:
            data = npy.read_bytes()
            if hashlib.sha256(data).hexdigest() != meta.get("sha256"):
                problem = "its checksum does not match (edited or corrupted)"
            else:
                array = np.load(io.BytesIO(data), allow_pickle=False)
                if array.dtype != np.float32 or array.ndim != 2 or array.shape[0] != rows \
                        or list(array.shape) != meta.get("shape"):
                    problem = f"it has shape {array.shape}, dtype {array.dtype}; expected {rows} float32 rows"
        except Exception as error:  # truncated header, unreadable file, ...
            problem = f"it cannot be read ({type(error).__name__}: {error})"
    if problem:
        if warn:
            warnings.warn(f"feature shard {npy} is not used: {problem}; it will be recomputed", RuntimeWarning,
                          stacklevel=3)
        return None
    return array


_MANIFEST_CHECKED = ("format", "fingerprint", "model_key", "preprocess", "paths", "labels", "shard_size")


def _manifest_matches(path: Path, manifest: dict) -> bool:
    existing = _read_json(path) if path.exists() else None
    return isinstance(existing, dict) and all(existing.get(k) == manifest[k] for k in _MANIFEST_CHECKED)


def _prepare_folder(folder: Path, manifest: dict) -> None:
    """Create the folder and its manifest; a manifest that disagrees is replaced and its shards removed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    if _manifest_matches(path, manifest):  # the common case, and the only one on a read-only cache: no lock
        return
    with _FileLock(folder / ".manifest.lock") as lock:
        if _manifest_matches(path, manifest):  # another process wrote it meanwhile
            return
        if lock.enforced:
            _remove_temporaries(folder, path.name)
        if path.exists():
            warnings.warn(f"feature cache manifest {path} is damaged or does not match; its shards are discarded and "
                          "recomputed", RuntimeWarning, stacklevel=3)
            for stale in list(folder.glob("shard-*.npy")) + list(folder.glob("shard-*.json")):
                stale.unlink(missing_ok=True)
        write_atomic(path, json.dumps(manifest, ensure_ascii=False).encode("utf-8"))


def _net_device(net) -> torch.device:
    for tensor in list(net.parameters()) + list(net.buffers()):
        return tensor.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------------------------


def extract_features(net, preprocess: Callable, images: ImageList, cache_dir: str | os.PathLike | None,
                     model_key: dict, *, batch_size: int = 256, num_workers: int = 0,
                     device: str | torch.device | None = None, shard_size: int = 4096,
                     progress: bool = True, distributed: bool | None = None, verify: bool = False) -> FeatureSet:
    """Encode ``images`` with ``net(x, return_feat=True)``, through the feature cache (see the module doc).

    Args:
        net: the image encoder (e.g. ``create_network(...)[0]``), used as is (eval mode is the caller's).
        preprocess: PIL image -> [3, H, W] tensor (the transform ``create_network`` returns).
        images: the image list; its labels are returned with the features.
        cache_dir: cache root (None: ``default_cache_dir()``); features go to ``<cache_dir>/features/<key>/``.
        model_key: a JSON-serialisable dict naming everything about the model that changes the features
            (``model_key_of(model_name, pretrained)``).
        batch_size: images per forward pass; num_workers: DataLoader workers decoding images.
        device: where inputs go (default: the device of ``net``'s parameters).
        shard_size: images per shard file (part of the cache key); also the unit of work split between ranks.
        progress: show a tqdm progress bar where stderr is a terminal (on rank 0 only under torchrun).
        distributed: split the shards between the ranks of the initialised ``torch.distributed`` process group
            (every rank must then call this with the same arguments; see ``distributed.init_from_env``). None
            (default): when a group of several processes is initialised; False: encode everything in this
            process even then (e.g. when only one rank extracts); True: require a group.
        verify: hash every image's bytes and re-encode the shards whose contents changed, also where their sizes
            and modification times did not (always: those shards whose sizes or times changed).

    Returns:
        FeatureSet(images.name, features [S, D] float32 on the CPU, labels [S] long), the same on every rank.
    """
    rank, world = _group(distributed)
    job = _Extraction(net, preprocess, images, cache_dir, model_key, batch_size=batch_size,
                      num_workers=num_workers, device=device, shard_size=shard_size, progress=progress,
                      verify=verify)
    job.encode([i for i in range(len(job.spans)) if i % world == rank], rank=rank, world=world)
    if world > 1:
        _distributed.barrier()  # every rank's shards are in the cache
    return job.finish(rank=rank, world=world)


def extract_benchmark(net, preprocess: Callable, benchmark: ImageBenchmark, cache_dir: str | os.PathLike | None,
                      model_key: dict, **kw) -> FeatureBenchmark:
    """Encode the ID set and each OOD set of ``benchmark`` through the cache; ``kw`` as in ``extract_features``.

    Lists with the same images and labels (the same cache folder) are encoded once. Under torchrun the shards of
    all the lists are dealt round-robin to the ranks together (so small sets keep every rank busy), with one
    barrier at the end; every rank returns the whole benchmark.
    """
    rank, world = _group(kw.pop("distributed", None))
    jobs: dict[str, _Extraction] = {}  # by fingerprint
    folder_of: dict[int, str] = {}
    dealt = 0  # shards of the lists before this one
    for images in benchmark.image_lists():
        job = _Extraction(net, preprocess, images, cache_dir, model_key, **kw)
        folder_of[id(images)] = job.fp
        if job.fp in jobs:
            continue
        jobs[job.fp] = job
        job.encode([i for i in range(len(job.spans)) if (dealt + i) % world == rank], rank=rank, world=world)
        dealt += len(job.spans)
    if world > 1:
        _distributed.barrier()
    results = {fp: job.finish(rank=rank, world=world) for fp, job in jobs.items()}

    def result(images: ImageList) -> FeatureSet:
        found = results[folder_of[id(images)]]
        return FeatureSet(images.name, found.features, found.labels)

    groups = {group: [result(images) for images in sets] for group, sets in benchmark.ood_groups.items()}
    return FeatureBenchmark(benchmark.name, result(benchmark.id_set), groups)


def _group(distributed: bool | None) -> tuple[int, int]:
    """(rank, world size) of the extraction: (0, 1) unless it is split between the ranks of a process group."""
    if distributed is None:
        distributed = _distributed.is_distributed()
    elif distributed and not _distributed.is_initialised():
        raise RuntimeError("distributed=True but no torch.distributed process group is initialised (start with "
                           "torchrun and call openood_tanl.evaluation.distributed.init_from_env() first)")
    return (_distributed.rank(), _distributed.world_size()) if distributed else (0, 1)


class _Extraction:
    """One image list through the cache: ``encode`` reads or encodes this process's shards, ``finish`` (after the
    barrier, under torchrun) reads the other ranks' shards and assembles the features."""

    def __init__(self, net, preprocess: Callable, images: ImageList, cache_dir, model_key: dict, *,
                 batch_size: int = 256, num_workers: int = 0, device=None, shard_size: int = 4096,
                 progress: bool = True, verify: bool = False):
        if batch_size < 1 or shard_size < 1:
            raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size} and {shard_size}")
        if not len(images):
            raise ValueError(f"image list '{images.name}' is empty")
        key = _json_key(model_key)
        description = describe_preprocess(preprocess)
        self.fp = fp = _fingerprint_of(images, key, description, shard_size)
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.folder = folder = root / "features" / fp[:32]
        count = len(images)
        _prepare_folder(folder, {"format": CACHE_FORMAT, "fingerprint": fp, "name": images.name, "model_key": key,
                                 "preprocess": description, "count": count, "shard_size": shard_size,
                                 "paths": list(images.paths), "labels": list(images.labels)})
        self.images, self.progress, self.encoded = images, progress, False
        self.spans = [(start, min(start + shard_size, count)) for start in range(0, count, shard_size)]
        self.shards: list[np.ndarray | None] = [None] * len(self.spans)
        self.force: set[int] = set()  # shards to recompute even if valid
        paths = images.paths
        self.stamps = [{"files": files_stamp(paths[a:b]), **({"contents": contents_stamp(paths[a:b])} if verify
                                                              else {})} for a, b in self.spans]
        self.encode_kw = dict(net=net, preprocess=preprocess, images=images, folder=folder, fp=fp, spans=self.spans,
                              shards=self.shards, force=self.force, stamps=self.stamps, batch_size=batch_size,
                              num_workers=num_workers, device=device)

    def _load(self, index: int) -> np.ndarray | None:
        start, stop = self.spans[index]
        return _load_shard(self.folder, index, start, stop - start, self.fp, self.stamps[index])

    def encode(self, mine: list[int], *, rank: int, world: int) -> None:
        for i in mine:
            self.shards[i] = self._load(i)
        dims = {s.shape[1] for s in self.shards if s is not None}
        if len(dims) > 1:
            warnings.warn(f"feature shards in {self.folder} disagree on the feature size {sorted(dims)}; all are "
                          "recomputed", RuntimeWarning, stacklevel=3)
            self.force.update(i for i in mine if self.shards[i] is not None)
            for i in mine:
                self.shards[i] = None
        todo = [i for i in mine if self.shards[i] is None]
        if todo:
            self.encoded = True
            _encode(todo, progress=self.progress and rank == 0, description=f"encoding {self.images.name}" + (
                f" (rank {rank} of {world})" if world > 1 else ""), **self.encode_kw)

    def finish(self, *, rank: int, world: int) -> FeatureSet:
        others = [i for i, shard in enumerate(self.shards) if shard is None]  # the other ranks' shards
        for i in others:
            self.shards[i] = self._load(i)
        lost = [i for i in others if self.shards[i] is None]
        if lost:
            warnings.warn(f"rank {rank}: {len(lost)} feature shard(s) in {self.folder} that other ranks encoded are "
                          "missing or damaged (is the cache folder shared by all ranks?); they are encoded here",
                          RuntimeWarning, stacklevel=3)
            self.encoded = True
            _encode(lost, progress=False, description=f"encoding {self.images.name} (rank {rank})", **self.encode_kw)
        if self.encoded or world > 1:
            _remove_stale_temporaries(self.folder)
        dims = {shard.shape[1] for shard in self.shards}
        if len(dims) > 1:
            raise RuntimeError(f"feature shards in {self.folder} disagree on the feature size {sorted(dims)} "
                               "(written by another model?); delete the folder and extract again")
        features = torch.from_numpy(np.concatenate(self.shards))
        return FeatureSet(self.images.name, features, torch.tensor(self.images.labels, dtype=torch.long))


def _encode(todo: list[int], *, progress: bool, description: str, images: ImageList, spans, shards, **kw) -> None:
    """Fill ``shards[i]`` for ``i`` in ``todo``: encode the shards no other process is encoding, then wait for the
    others' and read them (or encode them, if their process died)."""
    from tqdm import tqdm

    rows = sum(spans[i][1] - spans[i][0] for i in todo)
    done = sum(len(s) for s in shards if s is not None)  # this process's share that is already in the cache
    bar = tqdm(total=rows + done, initial=done, desc=description, unit="img",
               disable=None if progress else True, dynamic_ncols=True)  # None: no bar where stderr is no terminal
    try:
        blocking = False
        while todo:
            todo = _encode_pass(todo, blocking=blocking, bar=bar, images=images, spans=spans, shards=shards, **kw)
            blocking = True  # what is left is locked by other processes: wait for them
    finally:
        bar.close()


@torch.no_grad()
def _encode_pass(todo: list[int], *, blocking: bool, bar, net, preprocess, images: ImageList, folder: Path, fp: str,
                 spans, shards, force: set[int], stamps: list[dict], batch_size: int, num_workers: int,
                 device) -> list[int]:
    """One pass over ``todo``: claim each shard (its lock), check it again, encode it; return the shards another
    process holds (only when not ``blocking``)."""
    from torch.utils.data import DataLoader

    device = torch.device(device) if device is not None else _net_device(net)
    deferred: list[int] = []
    claimed: list[tuple[int, _FileLock]] = []  # in the order their batches are yielded

    def batches():
        # runs in this process as the loader asks for batch indices, so shards are claimed one by one as the
        # encoding reaches them (a few batches ahead with loader workers) and concurrent processes share them
        for i in todo:
            start, stop = spans[i]
            lock = _shard_lock(folder, i)
            if not lock.acquire(blocking=blocking):
                deferred.append(i)  # another process is encoding it
                continue
            again = None if i in force else _load_shard(folder, i, start, stop - start, fp, stamps[i], warn=False)
            if again is not None:  # written by another process since we looked
                lock.release()
                shards[i] = again
                bar.update(stop - start)
                continue
            if lock.enforced:  # we are its only writer: temporary files of it are a killed writer's leftovers
                _remove_temporaries(folder, f"shard-{i:05d}.npy")
                _remove_temporaries(folder, f"shard-{i:05d}.json")
            claimed.append((i, lock))
            # batches start at the shard's first row, so a resumed run repeats an uninterrupted run's forward passes
            yield from (list(range(b, min(b + batch_size, stop))) for b in range(start, stop, batch_size))

    loader = DataLoader(ImageDataset(images.paths, preprocess), batch_sampler=_Batches(batches),
                        num_workers=num_workers, pin_memory=device.type == "cuda")
    pending: list[np.ndarray] = []
    position = 0
    try:
        for batch in loader:
            output = net(batch.to(device, non_blocking=True), return_feat=True)
            if output.ndim != 2 or output.shape[0] != len(batch):
                raise RuntimeError(f"net(x, return_feat=True) returned shape {tuple(output.shape)} for a batch of "
                                   f"{len(batch)}; expected [{len(batch)}, D]")
            pending.append(output.detach().float().cpu().numpy())
            bar.update(len(batch))
            index, lock = claimed[position]
            start, stop = spans[index]
            if sum(len(p) for p in pending) == stop - start:
                array = np.concatenate(pending)
                # the files stamp was taken before encoding: an image changed meanwhile is re-encoded next time
                contents = stamps[index].get("contents") or contents_stamp(images.paths[start:stop])
                _save_shard(folder, index, start, array, fp, {"files": stamps[index]["files"], "contents": contents})
                lock.release()
                shards[index] = array
                pending = []
                position += 1
    finally:
        for _, lock in claimed:
            lock.release()
    return deferred


class _Batches:
    """A batch sampler from a generator function (iterated once per pass)."""

    def __init__(self, generate: Callable):
        self.generate = generate

    def __iter__(self):
        return self.generate()
