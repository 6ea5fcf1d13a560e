"""Feature extraction under torchrun (2 CPU processes, gloo): each rank encodes its share of the shards, and the
cache and every rank's features equal a single-process run's. Plus the process-group helpers without a group."""
import subprocess
import sys
import warnings

import pytest
import torch

pytest.importorskip("open_clip")

from helpers.extraction_setup import REPO, WORKER, worker_env, write_job  # noqa: E402
from openood_tanl.evaluation import distributed  # noqa: E402
from openood_tanl.evaluation.datasets import ImageBenchmark, ImageList  # noqa: E402
from openood_tanl.evaluation.extraction import extract_benchmark, extract_features  # noqa: E402

SHARD, BATCH = 2, 2  # one forward pass per shard; ID: 10 images in 5 shards; OOD: 5 images in 3 shards


pytestmark = pytest.mark.slow  # torchrun process groups

def _tree(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _benchmark(tiny, ood):
    return ImageBenchmark("bench", tiny.images, {"far": [ImageList(name, paths, [-1] * len(paths))
                                                         for name, paths in ood]})


def test_torchrun_two_ranks_equal_a_single_process(tiny, tmp_path):
    ood = [("one", tiny.images.paths[5:]), ("two", tiny.images.paths[5:])]  # "two" is read from the cache
    cache = tmp_path / "cache"
    job = write_job(tiny, tmp_path / "job.json", cache, shard_size=SHARD, batch_size=BATCH, ood=ood,
                    extra_shard_size=3, unshared_cache=str(tmp_path / "rank{rank}-cache"))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
               str(WORKER), str(job), "--distributed", "--out", str(tmp_path / "rank{rank}.pt")]
    run = subprocess.run(command, env=worker_env(), cwd=REPO, capture_output=True, timeout=120)
    assert run.returncode == 0, (run.stdout + run.stderr).decode(errors="replace")[-4000:]

    single_cache = tmp_path / "single"
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        single = extract_benchmark(tiny.net, tiny.preprocess, _benchmark(tiny, ood), single_cache, tiny.key,
                                   batch_size=BATCH, shard_size=SHARD, progress=False)
        extra = extract_features(tiny.net, tiny.preprocess, tiny.images, single_cache, tiny.key, batch_size=BATCH,
                                 shard_size=3, progress=False).features
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in range(2)]
    for r, result in enumerate(ranks):
        assert (result["rank"], result["world_size"]) == (r, 2)
        assert torch.equal(result["features"], single.id_set.features)
        assert result["labels"].tolist() == tiny.images.labels
        assert set(result["ood"]) == {"one", "two"}
        for _, feature_set in single.ood_sets():
            assert torch.equal(result["ood"][feature_set.name], feature_set.features)
        assert torch.equal(result["extra"], extra)
        # a cache folder that is not shared: each rank warns and encodes the other rank's shards itself
        assert torch.equal(result["unshared"], single.id_set.features)
        assert len(result["warnings"]) == 1
        assert f"rank {r}: {2 if r == 0 else 3} feature shard(s)" in result["warnings"][0]
        assert "is the cache folder shared by all ranks?" in result["warnings"][0]
    # each rank encoded only its shards. extract_benchmark deals them round-robin over its lists (ID shards 0-4,
    # OOD 5-7): rank 0 ID 0, 2, 4 and OOD 6; rank 1 ID 1, 3 and OOD 5, 7; the repeated OOD list is the same
    # folder. extract_features with shards of 3 images (2, 2, 2, 1 forward passes): rank 0 0 and 2, rank 1 1 and 3.
    # The unshared caches: all 5 shards on each rank
    assert [result["calls"] for result in ranks] == [3 + 1 + 2 + 2 + 5, 2 + 2 + 2 + 1 + 5]
    # the same cache, file for file and byte for byte (no lock or temporary file left)
    assert _tree(cache / "features") == _tree(single_cache / "features")


def test_without_a_process_group(tiny, tmp_path, monkeypatch):
    for name in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.init_from_env() is False  # a plain process: nothing to join
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert distributed.init_from_env() is False
    assert not distributed.is_distributed()
    assert (distributed.rank(), distributed.world_size(), distributed.local_rank()) == (0, 1, 0)
    assert distributed.is_main_process()
    distributed.barrier()  # no-op
    with distributed.main_process_first():
        pass
    assert distributed.device_for("cpu") == "cpu"
    assert distributed.device_for("auto") == ("cuda" if torch.cuda.is_available() else "cpu")
    assert distributed.device_for("cuda:1") == "cuda:1"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    with pytest.raises(RuntimeError, match="MASTER_ADDR, MASTER_PORT not set: start the program with torchrun"):
        distributed.init_from_env()
    monkeypatch.setenv("WORLD_SIZE", "two")
    with pytest.raises(RuntimeError, match="WORLD_SIZE='two' is not an integer"):
        distributed.init_from_env()
    with pytest.raises(RuntimeError, match="distributed=True but no torch.distributed process group"):
        extract_features(tiny.net, tiny.preprocess, tiny.images, tmp_path, tiny.key, distributed=True,
                         progress=False)
