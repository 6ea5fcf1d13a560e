"""The on-disk feature cache: one folder per image list and model, sharded, checksummed, resumable, safe to share.

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
  lock to detect by age or PID, which would be guesswork: an encode can legitimately hold a lock for minutes.
  Lock files are deleted by their holder before it releases them (a
  waiter checks that the locked file is still the one at that path and retries if not), and leftovers of killed
  processes are removed by the next run, so the folder holds only the manifest and the shards.
* Whoever holds shard ``i``'s lock is its only writer, so it deletes the shard's temporary files at once (they
  are leftovers of a killed writer); other temporary files are deleted after an hour.
* Where ``fcntl`` is missing (Windows) or the filesystem refuses ``flock`` (some network filesystems), the cache
  runs without locks (one warning): still correct, possibly with duplicated work.
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

from ..core.errors import UserTypeError
from ..embedding_cache import default_cache_dir, fingerprint, write_atomic
from .data import ImageList

try:
    import fcntl
except ImportError:  # Windows: no flock; the cache runs without locks
    fcntl = None

__all__ = ["CACHE_FORMAT", "FileLock", "feature_cache_folder", "cache_fingerprint", "describe_preprocess", "json_key",
           "files_stamp", "contents_stamp", "shard_lock", "save_shard", "load_shard", "prepare_folder",
           "remove_temporaries", "remove_stale_temporaries"]

CACHE_FORMAT = 2  # 2: shards record their images' size, modification time and contents
_STALE_TEMP_SECONDS = 3600


def describe_preprocess(preprocess: Callable) -> str:
    """``repr(preprocess)`` without memory addresses (``<function f at 0x7f...>``), stable across runs."""
    return re.sub(r" at 0x[0-9a-fA-F]+", "", repr(preprocess))


def cache_fingerprint(images: ImageList, model_key: dict, preprocess: str, shard_size: int) -> str:
    return fingerprint({"format": CACHE_FORMAT, "model_key": model_key, "preprocess": preprocess,
                        "paths": list(images.paths), "labels": list(images.labels), "shard_size": shard_size})


def feature_cache_folder(cache_dir: str | os.PathLike | None, images: ImageList, model_key: dict,
                         preprocess: Callable, shard_size: int = 4096) -> Path:
    """The folder that holds (or will hold) the features of ``images`` under this model and preprocessing."""
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    return root / "features" / cache_fingerprint(images, json_key(model_key), describe_preprocess(preprocess),
                                               shard_size)[:32]


def json_key(model_key: dict) -> dict:
    if not isinstance(model_key, dict):
        raise UserTypeError(f"model_key must be a dict (e.g. model_key_of(model_name, pretrained)), got "
                            f"{type(model_key).__name__}")
    try:
        return json.loads(json.dumps(model_key, sort_keys=True))
    except (TypeError, ValueError) as error:
        raise UserTypeError(f"model_key must be JSON-serialisable (strings, numbers, lists, dicts): {error}") from error


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


class FileLock:
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

    def __enter__(self) -> "FileLock":
        self.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def shard_lock(folder: Path, index: int) -> FileLock:
    return FileLock(folder / f".shard-{index:05d}.lock")


def remove_temporaries(folder: Path, name: str) -> None:
    """Delete the temporary files of ``name`` (call only while holding the lock of every writer of ``name``)."""
    for temporary in folder.glob(f".{name}.*.tmp"):
        temporary.unlink(missing_ok=True)


def remove_stale_temporaries(folder: Path) -> None:
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
        lock = FileLock(path)
        try:
            if lock.acquire(blocking=False) and lock.enforced:
                lock.release()
        except OSError:  # a read-only cache, ...
            pass


def save_shard(folder: Path, index: int, start: int, array: np.ndarray, fp: str, stamps: dict) -> None:
    npy, sidecar = _shard_paths(folder, index)
    sidecar.unlink(missing_ok=True)  # a stale sidecar must never vouch for the new shard
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    data = buffer.getvalue()
    write_atomic(npy, data)
    meta = {"sha256": hashlib.sha256(data).hexdigest(), "shape": list(array.shape), "dtype": "float32",
            "rows": [start, start + len(array)], "fingerprint": fp, **stamps}
    write_atomic(sidecar, json.dumps(meta).encode())


def load_shard(folder: Path, index: int, start: int, rows: int, fp: str, stamps: dict,
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


def prepare_folder(folder: Path, manifest: dict) -> None:
    """Create the folder and its manifest; a manifest that disagrees is replaced and its shards removed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    if _manifest_matches(path, manifest):  # the common case, and the only one on a read-only cache: no lock
        return
    with FileLock(folder / ".manifest.lock") as lock:
        if _manifest_matches(path, manifest):  # another process wrote it meanwhile
            return
        if lock.enforced:
            remove_temporaries(folder, path.name)
        if path.exists():
            warnings.warn(f"feature cache manifest {path} is damaged or does not match; its shards are discarded and "
                          "recomputed", RuntimeWarning, stacklevel=3)
            for stale in list(folder.glob("shard-*.npy")) + list(folder.glob("shard-*.json")):
                stale.unlink(missing_ok=True)
        write_atomic(path, json.dumps(manifest, ensure_ascii=False).encode("utf-8"))


