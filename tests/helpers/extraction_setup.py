"""Shared setup for the extraction fault and distributed tests: the tiny model, images, worker processes."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

HELPERS = Path(__file__).resolve().parent
REPO = HELPERS.parents[1]
WORKER = HELPERS / "extraction_worker.py"
CLASSES = ["cat", "dog", "fox"]  # as in extraction_worker.py


@pytest.fixture(scope="module")
def one_thread():
    """Run this module's torch work on one thread, like the workers: CPU results can differ in the last bits
    between thread counts, and the tests compare features bitwise across processes."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(one_thread, tmp_path_factory):
    """The tiny network (built as the workers build it), its folder, and 10 generated images."""
    from PIL import Image

    from helpers.tiny_clip import TINY_MODEL, make_tiny_checkpoint
    from openood_tanl.evaluation.data import ImageList
    from openood_tanl.networks import create_network

    folder = tmp_path_factory.mktemp("tiny")
    checkpoint = make_tiny_checkpoint(folder)
    corpus = folder / "nouns.txt"
    corpus.write_text("".join(f"word{i}\n" for i in range(20)))
    textcache = folder / "textcache"
    net, preprocess = create_network(TINY_MODEL, str(checkpoint), CLASSES, corpus, "cpu", textcache,
                                     model_config=folder / f"{TINY_MODEL}.json")
    rng = np.random.default_rng(1)
    paths = []
    for i in range(10):
        path = folder / f"img{i}.png"
        Image.fromarray(rng.integers(0, 256, (int(rng.integers(20, 50)), int(rng.integers(20, 50)), 3),
                                     dtype=np.uint8)).save(path)
        paths.append(str(path))
    images = ImageList("toy", paths, [i % 3 for i in range(10)])
    return SimpleNamespace(folder=folder, corpus=corpus, textcache=textcache, net=net, preprocess=preprocess,
                           key=net.model_key, images=images)


def write_job(tiny, path: Path, cache: Path, *, shard_size: int, batch_size: int, ood=(),
              extra_shard_size: int | None = None, unshared_cache: str | None = None) -> Path:
    path.write_text(json.dumps({
        "tiny": str(tiny.folder), "corpus": str(tiny.corpus), "textcache": str(tiny.textcache),
        "name": tiny.images.name, "paths": tiny.images.paths, "labels": tiny.images.labels, "cache": str(cache),
        "batch_size": batch_size, "shard_size": shard_size,
        "ood": [{"name": name, "paths": paths} for name, paths in ood], "extra_shard_size": extra_shard_size,
        "unshared_cache": unshared_cache}))
    return path


def worker_env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), str(HELPERS.parent)] + [p for p in [env.get("PYTHONPATH")] if p])
    env.update(HF_HUB_OFFLINE="1", OMP_NUM_THREADS="1", TQDM_DISABLE="1")
    return env


def start_worker(job: Path, *flags: str, log: Path | None = None) -> subprocess.Popen:
    stream = open(log, "wb") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen([sys.executable, str(WORKER), str(job), *flags], env=worker_env(), cwd=REPO,
                                stdout=stream, stderr=subprocess.STDOUT)
    finally:
        if log:
            stream.close()  # the worker has its own copy


def wait_for(condition, processes=(), timeout: float = 60.0, what: str = "condition") -> None:
    """Poll ``condition`` until true; fail early if one of ``processes`` exits first."""
    deadline = time.monotonic() + timeout
    while not condition():
        for process in processes:
            if process.poll() is not None:
                raise AssertionError(f"worker exited with {process.returncode} before {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.005)


def folder_files(folder: Path) -> dict[str, bytes]:
    """Every file of a cache folder by name, with its bytes."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}
