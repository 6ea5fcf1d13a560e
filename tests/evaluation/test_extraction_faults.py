"""The feature cache under real process faults and concurrency: SIGKILL at several points of an extraction in
another process, then a rerun; two processes filling one cache at once; two processes writing one text-bank entry.

Workers are started ahead and held at a start line (--ready/--go), so their start-up overlaps the previous step.
"""
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import numpy as np
import pytest
import torch

pytest.importorskip("open_clip")
if sys.platform == "win32":
    pytest.skip("SIGKILL and flock are POSIX", allow_module_level=True)

from helpers.extraction_setup import REPO, folder_files, start_worker, wait_for, worker_env, write_job  # noqa: E402
from openood_tanl.evaluation.extraction import extract_features  # noqa: E402
from openood_tanl.evaluation.feature_cache import feature_cache_folder  # noqa: E402

SHARD, BATCH = 4, 2  # 10 images: shards of 4, 4, 2 images; 2 + 2 + 1 forward passes


pytestmark = pytest.mark.slow  # killed and concurrent extraction processes

class CountingNet(torch.nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net, self.calls = net, 0

    def forward(self, x, return_feat=False):
        self.calls += 1
        return self.net(x, return_feat=return_feat)


def extract(tiny, cache, net=None):
    return extract_features(net or tiny.net, tiny.preprocess, tiny.images, cache, tiny.key, batch_size=BATCH,
                            shard_size=SHARD, progress=False)


@pytest.fixture(scope="module")
def reference(tiny, tmp_path_factory):
    """An uninterrupted single-process run in a fresh cache: its features and its cache folder's files."""
    cache = tmp_path_factory.mktemp("clean")
    features = extract(tiny, cache).features
    return features, folder_files(feature_cache_folder(cache, tiny.images, tiny.key, tiny.preprocess, SHARD))


def _go(tmp_path, name):
    (tmp_path / f"{name}.go").touch()


def _held(tmp_path, job, name, *flags):
    """A worker started now that builds its network, then waits for ``<name>.go``."""
    return start_worker(job, *flags, "--ready", str(tmp_path / f"{name}.ready"), "--go", str(tmp_path / f"{name}.go"),
                        log=tmp_path / f"{name}.log")


def _killed(worker, tmp_path, name):
    worker.wait(timeout=60)
    log = (tmp_path / f"{name}.log").read_text(errors="replace")
    assert worker.returncode == -signal.SIGKILL, f"worker {name} exited with {worker.returncode}:\n{log}"


def test_sigkill_at_several_points_then_rerun_is_identical(tiny, reference, tmp_path):
    expected, expected_files = reference
    cache = tmp_path / "cache"
    job = write_job(tiny, tmp_path / "job.json", cache, shard_size=SHARD, batch_size=BATCH)
    folder = feature_cache_folder(cache, tiny.images, tiny.key, tiny.preprocess, SHARD)
    workers = {  # both start now; the second waits at its start line while the first runs
        "outside": _held(tmp_path, job, "outside", "--slow-fsync", "60:shard-00001.npy"),
        "before-sidecar": _held(tmp_path, job, "before-sidecar", "--die-after-rename", "shard-00001.npy"),
    }
    try:
        # 1. killed from outside once the first shard is in place, while the second one's temporary file exists
        #    (written and synced, not yet renamed)
        worker = workers["outside"]
        wait_for(lambda: (tmp_path / "outside.ready").exists(), [worker], what="worker 1 ready")
        _go(tmp_path, "outside")
        complete = 128 + SHARD * 32 * 4  # np.save's header and the float32 rows: written, then the slow fsync
        wait_for(lambda: any(t.stat().st_size >= complete for t in folder.glob(".shard-00001.npy.*.tmp")), [worker],
                 what="a complete temporary file")
        assert (folder / "shard-00000.json").exists()
        worker.send_signal(signal.SIGKILL)
        _killed(worker, tmp_path, "outside")
        assert (folder / "shard-00000.npy").read_bytes() == expected_files["shard-00000.npy"]
        assert not (folder / "shard-00001.npy").exists() and not (folder / "shard-00002.npy").exists()
        temporaries = list(folder.glob(".*.tmp"))
        assert [t.name.split(".")[1] for t in temporaries] == ["shard-00001"]
        assert np.load(temporaries[0], allow_pickle=False).shape == (SHARD, 32)  # complete, yet never read
        assert (folder / ".shard-00001.lock").exists()  # it died holding the lock: the next run must not wait

        # 2. killed between a shard and its sidecar: the shard is there, unvouched for
        worker = workers["before-sidecar"]
        wait_for(lambda: (tmp_path / "before-sidecar.ready").exists(), [worker], what="worker 2 ready")
        _go(tmp_path, "before-sidecar")
        _killed(worker, tmp_path, "before-sidecar")
        assert (folder / "shard-00001.npy").exists() and not (folder / "shard-00001.json").exists()
        assert not temporaries[0].exists()  # removed by the next holder of the shard's lock
    finally:
        for worker in workers.values():
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    # temporary files with valid data where shards 1 and 2 belong must be ignored too
    for index, rows in [(1, SHARD), (2, 2)]:
        with (folder / f".shard-{index:05d}.npy.decoy.tmp").open("wb") as stream:
            np.save(stream, np.zeros((rows, 32), np.float32), allow_pickle=False)

    # 3. the rerun recomputes shard 1 (no sidecar) and shard 2 only, and ends with a clean, identical cache
    counting = CountingNet(tiny.net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        resumed = extract(tiny, cache, counting).features
    assert counting.calls == 3
    assert torch.equal(resumed, expected)
    assert folder_files(folder) == expected_files  # no temporary or lock file left; the same bytes

    # 4. a truncated shard, even with its sidecar, is recomputed (and so is one that lost its sidecar)
    shard = folder / "shard-00002.npy"
    shard.write_bytes(shard.read_bytes()[:-16])
    (folder / "shard-00000.json").unlink()
    counting = CountingNet(tiny.net)
    with pytest.warns(RuntimeWarning, match="shard-00002.npy is not used: its checksum does not match"):
        again = extract(tiny, cache, counting).features
    assert counting.calls == 2 + 1 and torch.equal(again, expected)
    assert folder_files(folder) == expected_files


def test_two_processes_fill_one_cache_at_once(tiny, reference, tmp_path):
    expected, expected_files = reference
    cache = tmp_path / "cache"
    job = write_job(tiny, tmp_path / "job.json", cache, shard_size=SHARD, batch_size=BATCH)
    workers = [start_worker(job, "--delay", "0.1", "--ready", str(tmp_path / f"{i}.ready"), "--go",
                            str(tmp_path / "go"), "--out", str(tmp_path / f"{i}.pt"), log=tmp_path / f"{i}.log")
               for i in range(2)]
    try:
        wait_for(lambda: all((tmp_path / f"{i}.ready").exists() for i in range(2)), workers, what="both ready")
        (tmp_path / "go").touch()  # both start extracting now
        for worker in workers:
            worker.wait(timeout=60)
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
                worker.wait()
    for i, worker in enumerate(workers):
        assert worker.returncode == 0, (tmp_path / f"{i}.log").read_text(errors="replace")
    results = [torch.load(tmp_path / f"{i}.pt") for i in range(2)]
    for result in results:
        assert torch.equal(result["features"], expected)
        assert result["labels"].tolist() == tiny.images.labels
    # the shard locks split the work: every forward pass ran once, in one process or the other
    assert sum(r["calls"] for r in results) == 5
    folder = feature_cache_folder(cache, tiny.images, tiny.key, tiny.preprocess, SHARD)
    assert folder_files(folder) == expected_files
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(extract(tiny, cache, CountingNet(tiny.net)).features, expected)


TEXTBANK_WRITER = """
import sys, time
from pathlib import Path
import torch
from openood_tanl.embedding_cache import EmbeddingCache

root, go, count = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
cache = EmbeddingCache(root)
embeddings = torch.Generator().manual_seed(0)
embeddings = torch.randn(300, 64, generator=embeddings)
Path(sys.argv[4]).touch()
while not go.exists():
    time.sleep(0.005)
for _ in range(count):
    cache.save("nouns", {"model": "m", "words": "w"}, embeddings)
"""


def test_two_processes_write_one_text_bank_entry(tmp_path):
    from openood_tanl.embedding_cache import EmbeddingCache

    script = tmp_path / "writer.py"
    script.write_text(TEXTBANK_WRITER)
    root, go = tmp_path / "bank", tmp_path / "go"
    writers = [subprocess.Popen([sys.executable, str(script), str(root), str(go), "60", str(tmp_path / f"{i}.ready")],
                                env=worker_env(), cwd=REPO, stderr=subprocess.PIPE) for i in range(2)]
    cache = EmbeddingCache(root)
    key = {"model": "m", "words": "w"}
    expected = torch.randn(300, 64, generator=torch.Generator().manual_seed(0))
    reads = 0
    try:
        wait_for(lambda: all((tmp_path / f"{i}.ready").exists() for i in range(2)), writers, what="writers ready")
        go.touch()
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a partial entry would warn ("cannot be read", checksum)
            while any(w.poll() is None for w in writers):
                loaded = cache.load("nouns", key)
                if loaded is not None:
                    assert torch.equal(loaded, expected)
                    reads += 1
        for writer in writers:
            _, error = writer.communicate(timeout=60)
            assert writer.returncode == 0, error.decode(errors="replace")
    finally:
        for writer in writers:
            if writer.poll() is None:
                writer.kill()
                writer.wait()
    assert reads > 0
    assert torch.equal(cache.load("nouns", key), expected)
    assert [p.name for p in root.iterdir()] == [cache.path("nouns", key).name]  # no temporary file left


def test_a_shard_another_process_holds_is_waited_for_and_read(tiny, reference, tmp_path):
    """The extraction skips a shard whose lock is held, encodes the others, then waits for the lock and reads the
    shard its holder wrote, without encoding it."""
    from openood_tanl.evaluation.feature_cache import FileLock as _FileLock

    expected, expected_files = reference
    cache = tmp_path / "cache"
    folder = feature_cache_folder(cache, tiny.images, tiny.key, tiny.preprocess, SHARD)
    folder.mkdir(parents=True)
    holder = _FileLock(folder / ".shard-00001.lock")
    assert holder.acquire(blocking=False) and holder.enforced
    assert not _FileLock(folder / ".shard-00001.lock").acquire(blocking=False)  # flock excludes other descriptors
    counting, result = CountingNet(tiny.net), {}
    thread = threading.Thread(target=lambda: result.update(features=extract(tiny, cache, counting).features))
    thread.start()
    try:
        wait_for(lambda: (folder / "shard-00002.json").exists() or not thread.is_alive(), what="shard 2")
        time.sleep(0.1)
        assert thread.is_alive() and not (folder / "shard-00001.npy").exists()  # waiting for shard 1's lock
        for name in ("shard-00001.npy", "shard-00001.json"):  # the holder writes shard 1, then lets go
            (folder / name).write_bytes(expected_files[name])
    finally:
        holder.release()
        thread.join(timeout=30)
    assert counting.calls == 2 + 1  # shards 0 and 2
    assert torch.equal(result["features"], expected)
    assert folder_files(folder) == expected_files


def test_lock_file_replaced_under_a_waiter(tmp_path):
    """A waiter that gets the lock of a file its holder deleted retries on the file now at the path."""
    from openood_tanl.evaluation.feature_cache import FileLock as _FileLock

    path = tmp_path / ".x.lock"
    first = _FileLock(path)
    assert first.acquire()
    got = []
    waiter = threading.Thread(target=lambda: got.append(_FileLock(path)) or got[0].acquire())
    waiter.start()
    time.sleep(0.1)
    first.release()  # deletes the file, then unlocks it
    waiter.join(timeout=10)
    assert got[0].enforced and path.exists()
    assert os.path.samestat(os.fstat(got[0].fd), os.stat(path))
    assert not _FileLock(path).acquire(blocking=False)
    got[0].release()
    assert not path.exists()


@pytest.mark.parametrize("how", ["no fcntl", "flock refused"])
def test_without_locks_the_cache_still_works(tiny, reference, tmp_path, monkeypatch, how):
    import errno

    from openood_tanl.evaluation import feature_cache as features

    expected, expected_files = reference
    monkeypatch.setattr(features, "_locks_unsupported", False)
    if how == "no fcntl":  # Windows
        monkeypatch.setattr(features, "fcntl", None)
    else:  # a filesystem without flock

        class NoFlock:
            LOCK_EX, LOCK_NB = 2, 4

            @staticmethod
            def flock(fd, operation):
                raise OSError(errno.ENOLCK, "No locks available")

        monkeypatch.setattr(features, "fcntl", NoFlock)
    cache = tmp_path / "cache"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        first = extract(tiny, cache).features
        folder = feature_cache_folder(cache, tiny.images, tiny.key, tiny.preprocess, SHARD)
        (folder / "shard-00001.json").unlink()
        again = extract(tiny, cache).features
    messages = [str(w.message) for w in caught]
    assert len(messages) == (1 if how == "flock refused" else 0), messages
    assert all("runs without locks" in m for m in messages)
    assert torch.equal(first, expected) and torch.equal(again, expected)
    assert folder_files(folder) == expected_files
