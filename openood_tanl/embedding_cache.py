"""On-disk cache of embeddings (text banks, noise features), keyed by everything that changes them.

Format: one ``.npz`` per entry, read with ``allow_pickle=False`` (nothing executes on load), holding the float32
array and a JSON manifest (the key, shape and SHA-256 of the array). Entries are written to a temporary file
and renamed into place, so a reader never sees a partial file. A corrupted or mismatched entry is reported and
rebuilt, never used.
"""
from __future__ import annotations

import hashlib
import io
import json
import os
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

__all__ = ["EmbeddingCache", "default_cache_dir", "fingerprint", "write_atomic"]


def default_cache_dir() -> Path:
    """``$OPENOOD_TANL_CACHE``, else ``$XDG_CACHE_HOME/openood_tanl``, else ``~/.cache/openood_tanl``."""
    if os.environ.get("OPENOOD_TANL_CACHE"):
        return Path(os.environ["OPENOOD_TANL_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "openood_tanl"


def fingerprint(value) -> str:
    """SHA-256 of a JSON-serialisable value (canonical form)."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, fsync it, then rename it over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.fchmod(handle, 0o666 & ~_umask())  # as open() would create it (mkstemp makes it 0600): caches can be shared
        with os.fdopen(handle, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


class EmbeddingCache:
    """A folder of cached [rows, dim] float32 embeddings.

    Args:
        root: the folder (created on first write).
    """

    def __init__(self, root: str | os.PathLike):
        self.root = Path(root)

    def path(self, kind: str, key: dict) -> Path:
        return self.root / f"{kind}-{fingerprint(key)[:32]}.npz"

    def load(self, kind: str, key: dict) -> torch.Tensor | None:
        """The cached array for ``key``, or None when absent; a damaged or mismatched entry warns and is None."""
        path = self.path(kind, key)
        if not path.exists():
            return None
        try:
            with np.load(path, allow_pickle=False) as archive:
                manifest = json.loads(str(archive["manifest"]))
                array = np.ascontiguousarray(archive["embeddings"])
            problem = None
            if manifest.get("key") != json.loads(json.dumps(key)):
                problem = "it was written for another model, word list or template set"
            elif list(array.shape) != manifest.get("shape") or array.dtype != np.float32:
                problem = (f"its array has shape {array.shape}, dtype {array.dtype}; the manifest says "
                           f"{manifest.get('shape')}")
            elif hashlib.sha256(array.tobytes()).hexdigest() != manifest.get("sha256"):
                problem = "its checksum does not match (edited or corrupted)"
        except Exception as error:  # truncated zip, missing member, bad JSON, ...
            problem = f"it cannot be read ({type(error).__name__}: {error})"
        if problem:
            warnings.warn(f"cache entry {path} is not used: {problem}; it will be rebuilt", RuntimeWarning,
                          stacklevel=3)
            return None
        return torch.from_numpy(array)

    def save(self, kind: str, key: dict, embeddings: torch.Tensor) -> Path:
        """Write atomically (temporary file, then rename)."""
        array = embeddings.detach().to("cpu", torch.float32).contiguous().numpy()
        manifest = {"key": key, "shape": list(array.shape), "sha256": hashlib.sha256(array.tobytes()).hexdigest()}
        path = self.path(kind, key)
        buffer = io.BytesIO()
        np.savez(buffer, embeddings=array, manifest=np.array(json.dumps(manifest, ensure_ascii=False)))
        write_atomic(path, buffer.getvalue())
        return path

    def get_or_compute(self, kind: str, key: dict, compute: Callable[[], torch.Tensor]) -> torch.Tensor:
        """Load ``key``'s embeddings, or compute and store them."""
        cached = self.load(kind, key)
        if cached is not None:
            return cached
        embeddings = compute()
        self.save(kind, key, embeddings)
        return embeddings.detach().to("cpu", torch.float32)
