"""Encoding benchmark images once per model, through the feature cache (``feature_cache``).

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

import os
import warnings
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from ..core.errors import SetupError, UserError
from ..embedding_cache import default_cache_dir
from . import distributed as _distributed
from .data import FeatureBenchmark, FeatureSet, ImageBenchmark, ImageList
from .feature_cache import (
    CACHE_FORMAT,
    FileLock,
    cache_fingerprint,
    contents_stamp,
    describe_preprocess,
    files_stamp,
    json_key,
    load_shard,
    prepare_folder,
    remove_stale_temporaries,
    remove_temporaries,
    save_shard,
    shard_lock,
)

__all__ = ["extract_features", "extract_benchmark", "model_key_of", "ImageDataset"]


def model_key_of(model_name: str, pretrained: str | None, **extra) -> dict:
    """A cache key for an open_clip model: its name, its weights (tag, or file path + size + mtime) and ``extra``.

    Pass in ``extra`` whatever else changes the image features (``precision='fp16'``, ``quick_gelu=True``, ...).
    """
    from ..networks.clip_network import _weights_identity

    return {"model": model_name, "weights": _weights_identity(pretrained), **extra}


class ImageDataset(torch.utils.data.Dataset):
    """Images read as 8-bit RGB (``datasets.read_rgb``: 16-bit greyscale scaled, not clipped) and passed through
    ``preprocess``."""

    def __init__(self, paths, preprocess: Callable):
        self.paths = list(paths)
        self.preprocess = preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        from .datasets import UnreadableImageError, read_rgb

        path = self.paths[index]
        image = read_rgb(path)  # an UnreadableImageError names the file
        try:
            return self.preprocess(image)
        except Exception as error:
            raise UnreadableImageError(f"cannot preprocess image {path}: {type(error).__name__}: {error}. Replace "
                                       "the file, or remove it from the benchmark's list (images are never dropped "
                                       "silently)") from error



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
    for images in benchmark.sets():
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
        raise SetupError("distributed=True but no torch.distributed process group is initialised (start with "
                           "torchrun and call openood_tanl.evaluation.distributed.init_from_env() first)")
    return (_distributed.rank(), _distributed.world_size()) if distributed else (0, 1)


class _Extraction:
    """One image list through the cache: ``encode`` reads or encodes this process's shards, ``finish`` (after the
    barrier, under torchrun) reads the other ranks' shards and assembles the features."""

    def __init__(self, net, preprocess: Callable, images: ImageList, cache_dir, model_key: dict, *,
                 batch_size: int = 256, num_workers: int = 0, device=None, shard_size: int = 4096,
                 progress: bool = True, verify: bool = False):
        if batch_size < 1 or shard_size < 1:
            raise UserError(f"batch_size and shard_size must be >= 1, got {batch_size} and {shard_size}")
        if not len(images):
            raise UserError(f"image list '{images.name}' is empty")
        key = json_key(model_key)
        description = describe_preprocess(preprocess)
        self.fp = fp = cache_fingerprint(images, key, description, shard_size)
        root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        self.folder = folder = root / "features" / fp[:32]
        count = len(images)
        prepare_folder(folder, {"format": CACHE_FORMAT, "fingerprint": fp, "name": images.name, "model_key": key,
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
        return load_shard(self.folder, index, start, stop - start, self.fp, self.stamps[index])

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
            remove_stale_temporaries(self.folder)
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
    claimed: list[tuple[int, FileLock]] = []  # in the order their batches are yielded

    def batches():
        # runs in this process as the loader asks for batch indices, so shards are claimed one by one as the
        # encoding reaches them (a few batches ahead with loader workers) and concurrent processes share them
        for i in todo:
            start, stop = spans[i]
            lock = shard_lock(folder, i)
            if not lock.acquire(blocking=blocking):
                deferred.append(i)  # another process is encoding it
                continue
            again = None if i in force else load_shard(folder, i, start, stop - start, fp, stamps[i], warn=False)
            if again is not None:  # written by another process since we looked
                lock.release()
                shards[i] = again
                bar.update(stop - start)
                continue
            if lock.enforced:  # we are its only writer: temporary files of it are a killed writer's leftovers
                remove_temporaries(folder, f"shard-{i:05d}.npy")
                remove_temporaries(folder, f"shard-{i:05d}.json")
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
                save_shard(folder, index, start, array, fp, {"files": stamps[index]["files"], "contents": contents})
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
