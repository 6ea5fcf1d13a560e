"""Encode benchmark images once per model: a sharded, checksummed, resumable on-disk feature cache.

Layout, one folder per (model key, preprocessing, image list, shard size)::

    <cache_dir>/features/<fingerprint[:32]>/
        manifest.json        format, name, model_key, preprocess (its repr), paths, labels, count, shard_size,
                             fingerprint
        shard-00000.npy      float32 [rows, D] for images [0, shard_size) (np.save; read with allow_pickle=False)
        shard-00000.json     sidecar, written after its shard: sha256 of the .npy file, shape, dtype, rows, fingerprint
        shard-00001.npy ...

Every file is written to a temporary ``.<name>.<random>.tmp`` file in the folder and renamed into place, so a
reader never sees a partial file and never reads a temporary one. On a rerun, a shard with a valid sidecar
(checksum, shape, dtype, fingerprint) is read, not recomputed; a damaged one warns and is recomputed; a missing
one (or one without its sidecar, i.e. interrupted between the two writes) is computed. Batches never cross a
shard boundary, so a resumed run does the same forward passes as an uninterrupted one and gives identical
features.
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
from .benchmarks import ImageBenchmark, ImageList
from .protocols import FeatureBenchmark, FeatureSet

__all__ = ["extract_features", "extract_benchmark", "model_key_of", "feature_cache_folder", "describe_preprocess",
           "ImageDataset", "CACHE_FORMAT"]

CACHE_FORMAT = 1
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
            raise RuntimeError(f"cannot read or preprocess image {path}: {type(error).__name__}: {error}") from error


# ----------------------------------------------------------------------------------------------------------------
# atomic files


def _read_json(path: Path):
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _shard_paths(folder: Path, index: int) -> tuple[Path, Path]:
    return folder / f"shard-{index:05d}.npy", folder / f"shard-{index:05d}.json"


def _save_shard(folder: Path, index: int, start: int, array: np.ndarray, fp: str) -> None:
    npy, sidecar = _shard_paths(folder, index)
    sidecar.unlink(missing_ok=True)  # a stale sidecar must never vouch for the new shard
    buffer = io.BytesIO()
    np.save(buffer, np.ascontiguousarray(array, dtype=np.float32), allow_pickle=False)
    data = buffer.getvalue()
    write_atomic(npy, data)
    meta = {"sha256": hashlib.sha256(data).hexdigest(), "shape": list(array.shape), "dtype": "float32",
            "rows": [start, start + len(array)], "fingerprint": fp}
    write_atomic(sidecar, json.dumps(meta).encode())


def _load_shard(folder: Path, index: int, start: int, rows: int, fp: str) -> np.ndarray | None:
    """The shard's array if it is present and valid; None (with a warning when it is damaged) otherwise."""
    npy, sidecar = _shard_paths(folder, index)
    if not npy.exists() or not sidecar.exists():
        return None  # never written, or interrupted before its sidecar: compute it
    problem = None
    meta = _read_json(sidecar)
    if not isinstance(meta, dict):
        problem = "its sidecar cannot be read"
    elif meta.get("fingerprint") != fp or meta.get("rows") != [start, start + rows]:
        problem = "its sidecar belongs to another image list, model or shard size"
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
        warnings.warn(f"feature shard {npy} is not used: {problem}; it will be recomputed", RuntimeWarning,
                      stacklevel=3)
        return None
    return array


def _prepare_folder(folder: Path, manifest: dict) -> None:
    """Create the folder and its manifest; a manifest that disagrees is replaced and its shards removed."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "manifest.json"
    existing = _read_json(path) if path.exists() else None
    checked = ("format", "fingerprint", "model_key", "preprocess", "paths", "labels", "shard_size")
    if isinstance(existing, dict) and all(existing.get(k) == manifest[k] for k in checked):
        return
    if path.exists():
        warnings.warn(f"feature cache manifest {path} is damaged or does not match; its shards are discarded and "
                      "recomputed", RuntimeWarning, stacklevel=3)
        for stale in list(folder.glob("shard-*.npy")) + list(folder.glob("shard-*.json")):
            stale.unlink(missing_ok=True)
    write_atomic(path, json.dumps(manifest, ensure_ascii=False).encode("utf-8"))


def _remove_stale_temporaries(folder: Path) -> None:
    """Delete temporary files left by interrupted runs (only old ones: another process may be writing)."""
    now = time.time()
    for temporary in folder.glob(".*.tmp"):
        try:
            if now - temporary.stat().st_mtime > _STALE_TEMP_SECONDS:
                temporary.unlink()
        except OSError:
            pass


def _net_device(net) -> torch.device:
    for tensor in list(net.parameters()) + list(net.buffers()):
        return tensor.device
    return torch.device("cpu")


# ----------------------------------------------------------------------------------------------------------------


def extract_features(net, preprocess: Callable, images: ImageList, cache_dir: str | os.PathLike | None,
                     model_key: dict, *, batch_size: int = 256, num_workers: int = 0,
                     device: str | torch.device | None = None, shard_size: int = 4096,
                     progress: bool = True) -> FeatureSet:
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
        shard_size: images per shard file (part of the cache key).
        progress: show a tqdm progress bar.

    Returns:
        FeatureSet(images.name, features [S, D] float32 on the CPU, labels [S] long).
    """
    if batch_size < 1 or shard_size < 1:
        raise ValueError(f"batch_size and shard_size must be >= 1, got {batch_size} and {shard_size}")
    if not len(images):
        raise ValueError(f"image list '{images.name}' is empty")
    key = _json_key(model_key)
    description = describe_preprocess(preprocess)
    fp = _fingerprint_of(images, key, description, shard_size)
    root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    folder = root / "features" / fp[:32]
    count = len(images)
    _prepare_folder(folder, {"format": CACHE_FORMAT, "fingerprint": fp, "name": images.name, "model_key": key,
                             "preprocess": description, "count": count, "shard_size": shard_size,
                             "paths": list(images.paths), "labels": list(images.labels)})

    spans = [(start, min(start + shard_size, count)) for start in range(0, count, shard_size)]
    shards: list[np.ndarray | None] = [_load_shard(folder, i, start, stop - start, fp)
                                       for i, (start, stop) in enumerate(spans)]
    dims = {s.shape[1] for s in shards if s is not None}
    if len(dims) > 1:
        warnings.warn(f"feature shards in {folder} disagree on the feature size {sorted(dims)}; all are recomputed",
                      RuntimeWarning, stacklevel=2)
        shards = [None] * len(spans)
    missing = [i for i, shard in enumerate(shards) if shard is None]
    if missing:
        _encode_missing(net, preprocess, images, folder, fp, spans, shards, missing, batch_size=batch_size,
                        num_workers=num_workers, device=device, progress=progress)
        _remove_stale_temporaries(folder)
    features = torch.from_numpy(np.concatenate(shards))
    return FeatureSet(images.name, features, torch.tensor(images.labels, dtype=torch.long))


@torch.no_grad()
def _encode_missing(net, preprocess, images: ImageList, folder: Path, fp: str, spans, shards, missing, *,
                    batch_size: int, num_workers: int, device, progress: bool) -> None:
    from torch.utils.data import DataLoader
    from tqdm import tqdm

    device = torch.device(device) if device is not None else _net_device(net)
    # batches start at each shard's first row, so a resumed run repeats an uninterrupted run's forward passes
    batches = [list(range(b, min(b + batch_size, stop))) for i in missing
               for start, stop in [spans[i]] for b in range(start, stop, batch_size)]
    loader = DataLoader(ImageDataset(images.paths, preprocess), batch_sampler=batches, num_workers=num_workers,
                        pin_memory=device.type == "cuda")
    done = sum(stop - start for i, (start, stop) in enumerate(spans) if shards[i] is not None)
    bar = tqdm(total=len(images), initial=done, desc=f"encoding {images.name}", unit="img", disable=not progress,
               dynamic_ncols=True)
    pending: list[np.ndarray] = []
    queue = iter(missing)
    current = next(queue)
    try:
        for batch in loader:
            output = net(batch.to(device, non_blocking=True), return_feat=True)
            if output.ndim != 2 or output.shape[0] != len(batch):
                raise RuntimeError(f"net(x, return_feat=True) returned shape {tuple(output.shape)} for a batch of "
                                   f"{len(batch)}; expected [{len(batch)}, D]")
            pending.append(output.detach().float().cpu().numpy())
            bar.update(len(batch))
            start, stop = spans[current]
            if sum(len(p) for p in pending) == stop - start:
                array = np.concatenate(pending)
                _save_shard(folder, current, start, array, fp)
                shards[current] = array
                pending = []
                current = next(queue, None)
    finally:
        bar.close()


def extract_benchmark(net, preprocess: Callable, benchmark: ImageBenchmark, cache_dir: str | os.PathLike | None,
                      model_key: dict, **kw) -> FeatureBenchmark:
    """Encode the ID set and each OOD set of ``benchmark`` (once each, through the cache); ``kw`` as in
    ``extract_features``."""
    encoded: dict[int, FeatureSet] = {}

    def encode(images: ImageList) -> FeatureSet:
        if id(images) not in encoded:
            encoded[id(images)] = extract_features(net, preprocess, images, cache_dir, model_key, **kw)
        return encoded[id(images)]

    id_set = encode(benchmark.id_set)
    groups = {group: [encode(images) for images in sets] for group, sets in benchmark.ood_groups.items()}
    return FeatureBenchmark(benchmark.name, id_set, groups)
