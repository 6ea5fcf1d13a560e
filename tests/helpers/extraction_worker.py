"""A feature extraction in its own process, for the fault and distributed tests (not a test module).

    python tests/extraction_worker.py JOB.json [--delay S] [--slow-fsync S:NAME] [--die-after-rename NAME]
                                      [--ready FILE --go FILE] [--out FILE] [--distributed]

JOB.json (written by the test): {"tiny": folder with tiny-test-clip.json and tiny-random.pt, "corpus": word list,
"textcache": folder, "name", "paths", "labels", "cache": feature cache root, "batch_size", "shard_size"} and
optionally "ood": [{"name", "paths"}, ...]. The benchmark (ID list and OOD lists) goes through extract_benchmark;
with "extra_shard_size", the ID list then goes through extract_features with that shard size too; with
"unshared_cache" (a path with "{rank}"), once more into a cache folder of its own per rank.

Fault injection: --delay sleeps before each forward pass (so a test can kill the run between shards);
--slow-fsync S:NAME sleeps S seconds after the fsync of the temporary file of NAME (e.g. shard-00001.npy), which
then exists, complete but not renamed, for that long; --die-after-rename kills this process with SIGKILL right
after the file NAME is renamed into place (e.g. a shard before its sidecar).

--ready/--go: create READY once the network is built, then wait for GO to exist (so that several workers start
extracting at the same moment). --out: torch.save a dict with the features, labels, OOD features by name, the
extra and unshared features (and the warnings of the latter), the number of forward passes and the rank ("{rank}"
in FILE is replaced by the rank). --distributed: join the torchrun process group.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/, for the helpers package
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository, for openood_tanl

from helpers.tiny_clip import TINY_MODEL  # noqa: E402
from openood_tanl.evaluation import distributed  # noqa: E402
from openood_tanl.evaluation.data import ImageBenchmark, ImageList  # noqa: E402
from openood_tanl.evaluation.extraction import extract_benchmark, extract_features  # noqa: E402
from openood_tanl.networks import create_network  # noqa: E402

CLASSES = ["cat", "dog", "fox"]


class Counting(torch.nn.Module):
    def __init__(self, net, delay: float):
        super().__init__()
        self.net, self.delay, self.calls = net, delay, 0

    def forward(self, x, return_feat=False):
        if self.delay:
            time.sleep(self.delay)
        self.calls += 1
        return self.net(x, return_feat=return_feat)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("job", type=Path)
    parser.add_argument("--delay", type=float, default=0.0)
    parser.add_argument("--slow-fsync", default=None)
    parser.add_argument("--die-after-rename", default=None)
    parser.add_argument("--ready", type=Path)
    parser.add_argument("--go", type=Path)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--distributed", action="store_true")
    args = parser.parse_args()
    job = json.loads(args.job.read_text())
    torch.set_num_threads(1)  # several workers share a small machine; results do not depend on it
    if args.distributed:
        assert distributed.init_from_env(), "--distributed needs torchrun with more than one process"
    tiny = Path(job["tiny"])
    with distributed.main_process_first():  # rank 0 fills the text-bank cache, the others read it
        net, preprocess = create_network(TINY_MODEL, str(tiny / "tiny-random.pt"), CLASSES, job["corpus"], "cpu",
                                         job["textcache"], model_config=tiny / f"{TINY_MODEL}.json")
    counting = Counting(net, args.delay)
    images = ImageList(job["name"], job["paths"], job["labels"])
    benchmark = ImageBenchmark("bench", images, {"far": [ImageList(o["name"], o["paths"], [-1] * len(o["paths"]))
                                                         for o in job.get("ood", [])]})

    if args.slow_fsync:
        seconds, _, name = args.slow_fsync.partition(":")
        mkstemp, fsync, slow = tempfile.mkstemp, os.fsync, set()

        def recording_mkstemp(*a, **kw):  # write_atomic's temporary files are ".<name>.<random>.tmp"
            fd, path = mkstemp(*a, **kw)
            if Path(path).name.startswith(f".{name}."):
                slow.add(fd)
            return fd, path

        def slow_fsync(fd):
            fsync(fd)
            if fd in slow:
                time.sleep(float(seconds))

        tempfile.mkstemp, os.fsync = recording_mkstemp, slow_fsync
    if args.die_after_rename:
        replace = os.replace

        def replace_then_die(source, target):
            replace(source, target)
            if Path(target).name == args.die_after_rename:
                os.kill(os.getpid(), signal.SIGKILL)

        os.replace = replace_then_die
    if args.ready:
        args.ready.write_text("ready")
        while not args.go.exists():
            time.sleep(0.01)

    result = extract_benchmark(counting, preprocess, benchmark, job["cache"], net.model_key,
                               batch_size=job["batch_size"], shard_size=job["shard_size"], progress=False)
    extra = None
    if job.get("extra_shard_size"):  # the ID list once more, through extract_features, in other shards
        extra = extract_features(counting, preprocess, images, job["cache"], net.model_key,
                                 batch_size=job["batch_size"], shard_size=job["extra_shard_size"],
                                 progress=False).features
    unshared, warned = None, []
    if job.get("unshared_cache"):  # a cache folder per rank ("{rank}" in it): each must encode the others' shards
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            unshared = extract_features(counting, preprocess, images,
                                        job["unshared_cache"].replace("{rank}", str(distributed.rank())),
                                        net.model_key, batch_size=job["batch_size"], shard_size=job["shard_size"],
                                        progress=False).features
        warned = [str(w.message) for w in caught]
    if args.out:
        out = Path(str(args.out).replace("{rank}", str(distributed.rank())))
        torch.save({"features": result.id_set.features, "labels": result.id_set.labels, "calls": counting.calls,
                    "ood": {s.name: s.features for _, s in result.ood_sets()}, "extra": extra,
                    "unshared": unshared, "warnings": warned,
                    "rank": distributed.rank(), "world_size": distributed.world_size()}, out)


if __name__ == "__main__":
    main()
