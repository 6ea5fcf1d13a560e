"""The image feature cache on the tiny open_clip model: correctness, reuse, resume, corruption, keys."""
import json
import warnings

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("open_clip")

from helpers.tiny_clip import TINY_MODEL, make_tiny_checkpoint  # noqa: E402
from openood_tanl.evaluation import FeatureBenchmark, FeatureSet  # noqa: E402
from openood_tanl.evaluation.datasets import ImageList, load_benchmark  # noqa: E402
from openood_tanl.evaluation.extraction import extract_benchmark, extract_features, model_key_of  # noqa: E402
from openood_tanl.evaluation.feature_cache import feature_cache_folder  # noqa: E402
from openood_tanl.networks import create_network  # noqa: E402

CLASSES = ["cat", "dog", "fox"]
N_IMAGES = 10
BATCH, SHARD = 2, 4  # shards of 4, 4, 2 images; two batches per full shard


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny")
    checkpoint = make_tiny_checkpoint(folder)
    corpus = folder / "nouns.txt"
    corpus.write_text("".join(f"word{i}\n" for i in range(20)))
    net, preprocess = create_network(TINY_MODEL, str(checkpoint), CLASSES, corpus, "cpu", folder / "textcache")
    return net, preprocess, model_key_of(TINY_MODEL, str(checkpoint))


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i in range(N_IMAGES):
        size = (int(rng.integers(20, 60)), int(rng.integers(20, 60)))
        path = folder / f"img{i}.png"
        mode = "L" if i == 3 else "RGB"  # a greyscale image is converted to RGB
        array = rng.integers(0, 256, (size[1], size[0]) + (() if mode == "L" else (3,)), dtype=np.uint8)
        Image.fromarray(array).save(path)
        paths.append(str(path))
    return ImageList("toy", paths, [i % 3 for i in range(N_IMAGES)])


class CountingNet(torch.nn.Module):
    """Wraps the net; counts forward passes and raises after ``fail_after`` of them."""

    def __init__(self, net, fail_after=None):
        super().__init__()
        self.net, self.fail_after, self.calls = net, fail_after, 0

    def forward(self, x, return_feat=False):
        if self.fail_after is not None and self.calls >= self.fail_after:
            raise KeyboardInterrupt("simulated interruption")
        self.calls += 1
        return self.net(x, return_feat=return_feat)


def extract(net, preprocess, images, cache, key, **kw):
    return extract_features(net, preprocess, images, cache, key, batch_size=BATCH, shard_size=SHARD,
                            progress=False, **kw)


def test_features_equal_the_network_by_hand(built, images, tmp_path):
    net, preprocess, key = built
    result = extract(net, preprocess, images, tmp_path, key)
    assert isinstance(result, FeatureSet) and result.name == "toy"
    assert result.features.dtype == torch.float32 and result.features.device.type == "cpu"
    assert result.features.shape == (N_IMAGES, 32)
    assert result.labels.dtype == torch.long and result.labels.tolist() == images.labels
    with torch.no_grad():
        batch = torch.stack([preprocess(Image.open(p).convert("RGB")) for p in images.paths])
        expected = net(batch, return_feat=True)
    torch.testing.assert_close(result.features, expected)
    # the layout: a manifest, one .npy and one sidecar per shard
    folder = feature_cache_folder(tmp_path, images, key, preprocess, SHARD)
    assert sorted(p.name for p in folder.iterdir()) == [
        "manifest.json", "shard-00000.json", "shard-00000.npy", "shard-00001.json", "shard-00001.npy",
        "shard-00002.json", "shard-00002.npy"]
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["paths"] == images.paths and manifest["labels"] == images.labels
    assert manifest["model_key"] == key and manifest["preprocess"] == repr(preprocess)
    assert manifest["count"] == N_IMAGES and manifest["shard_size"] == SHARD
    assert np.load(folder / "shard-00002.npy", allow_pickle=False).shape == (2, 32)


def test_second_extraction_reads_the_cache(built, images, tmp_path, monkeypatch):
    net, preprocess, key = built
    first = extract(net, preprocess, images, tmp_path, key)

    def fail(*args, **kwargs):
        raise AssertionError("the net must not run on a cache hit")

    monkeypatch.setattr(net, "forward", fail)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        second = extract(net, preprocess, images, tmp_path, key)
    assert torch.equal(first.features, second.features) and torch.equal(first.labels, second.labels)


def test_resume_after_an_interruption_is_identical(built, images, tmp_path):
    net, preprocess, key = built
    reference = extract(net, preprocess, images, tmp_path / "clean", key).features
    cache = tmp_path / "resumed"
    with pytest.raises(KeyboardInterrupt):
        extract(CountingNet(net, fail_after=3), preprocess, images, cache, key)  # fails inside shard 1
    folder = feature_cache_folder(cache, images, key, preprocess, SHARD)
    assert (folder / "shard-00000.npy").exists() and not (folder / "shard-00001.npy").exists()
    counting = CountingNet(net)
    resumed = extract(counting, preprocess, images, cache, key).features
    assert counting.calls == 3  # shard 1 (2 batches) and shard 2 (1 batch) only
    assert torch.equal(resumed, reference)


def test_deleted_shard_and_leftover_temporary_file(built, images, tmp_path):
    net, preprocess, key = built
    reference = extract(net, preprocess, images, tmp_path, key).features
    folder = feature_cache_folder(tmp_path, images, key, preprocess, SHARD)
    (folder / "shard-00001.npy").unlink()
    (folder / ".shard-00001.npy.abc123.tmp").write_bytes(b"partial garbage")  # an interrupted write
    (folder / "shard-00002.json").unlink()  # interrupted between a shard and its sidecar
    counting = CountingNet(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        again = extract(counting, preprocess, images, tmp_path, key).features
    assert counting.calls == 3
    assert torch.equal(again, reference)
    assert (folder / "shard-00001.json").exists() and (folder / "shard-00002.json").exists()


def test_corrupted_shard_is_recomputed(built, images, tmp_path):
    net, preprocess, key = built
    reference = extract(net, preprocess, images, tmp_path, key).features
    folder = feature_cache_folder(tmp_path, images, key, preprocess, SHARD)
    shard = folder / "shard-00000.npy"
    data = bytearray(shard.read_bytes())
    data[-5] ^= 0xFF  # flip bits in the array body
    shard.write_bytes(bytes(data))
    counting = CountingNet(net)
    with pytest.warns(RuntimeWarning, match="shard-00000.npy is not used: its checksum does not match"):
        again = extract(counting, preprocess, images, tmp_path, key).features
    assert counting.calls == 2 and torch.equal(again, reference)
    # a shard of the wrong shape, even with a matching checksum, is recomputed too
    np.save(shard, np.zeros((3, 32), np.float32))
    sidecar = folder / "shard-00000.json"
    meta = json.loads(sidecar.read_text())
    import hashlib
    meta["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()
    sidecar.write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="shape"):
        again = extract(net, preprocess, images, tmp_path, key).features
    assert torch.equal(again, reference)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert torch.equal(extract(net, preprocess, images, tmp_path, key).features, reference)


def test_changed_list_or_model_key_uses_another_folder(built, images, tmp_path):
    net, preprocess, key = built
    full = extract(net, preprocess, images, tmp_path, key).features
    subset = ImageList("toy", images.paths[:5], images.labels[:5])
    relabelled = ImageList("toy", images.paths, [0] * N_IMAGES)
    other_key = dict(key, precision="fp16")
    folders = {feature_cache_folder(tmp_path, x, k, preprocess, SHARD)
               for x, k in [(images, key), (subset, key), (relabelled, key), (images, other_key)]}
    assert len(folders) == 4
    assert feature_cache_folder(tmp_path, ImageList("renamed", images.paths, images.labels), key, preprocess,
                                SHARD) == feature_cache_folder(tmp_path, images, key, preprocess, SHARD)
    part = extract(net, preprocess, subset, tmp_path, key).features
    torch.testing.assert_close(part, full[:5])
    counting = CountingNet(net)
    extract(counting, preprocess, images, tmp_path, other_key)
    assert counting.calls == 5  # nothing reused across model keys
    assert len(list((tmp_path / "features").iterdir())) == 3


def test_bad_arguments(built, images, tmp_path):
    net, preprocess, key = built
    with pytest.raises(ValueError, match="empty"):
        extract(net, preprocess, ImageList("none", [], []), tmp_path, key)
    with pytest.raises(TypeError, match="JSON-serialisable"):
        extract(net, preprocess, images, tmp_path, {"model": object()})
    broken = ImageList("broken", [images.paths[0], str(tmp_path / "not-an-image.png")], [0, 0])
    (tmp_path / "not-an-image.png").write_text("text")
    with pytest.raises(ValueError, match="cannot read image .*not-an-image.png"):  # a user's error (exit 2)
        extract(net, preprocess, broken, tmp_path / "c", key)


def test_extract_benchmark(built, images, tmp_path):
    net, preprocess, key = built
    spec = tmp_path / "bench.yaml"
    (tmp_path / "ood.txt").write_text("".join(f"{p}\n" for p in images.paths[6:]))
    spec.write_text("""
name: toybench
id: {list: ids.txt}
ood:
  near: {one: {list: ood.txt}}
  far: {two: {list: ood.txt}, three: {list: ood.txt}}
""")
    (tmp_path / "ids.txt").write_text("".join(f"{p} {label}\n" for p, label in zip(images.paths[:6],
                                                                                      images.labels[:6])))
    bench = load_benchmark(spec)
    counting = CountingNet(net)
    features = extract_benchmark(counting, preprocess, bench, tmp_path / "cache", key, batch_size=BATCH,
                                 shard_size=SHARD, progress=False)
    assert isinstance(features, FeatureBenchmark) and features.name == "toybench"
    assert features.id_set.labels.tolist() == images.labels[:6]
    assert [(g, s.name, len(s)) for g, s in features.ood_sets()] == [
        ("near", "one", 4), ("far", "two", 4), ("far", "three", 4)]
    assert all(s.labels.tolist() == [-1] * 4 for _, s in features.ood_sets())
    assert counting.calls == 3 + 2  # ID (6 images) and the OOD list once: the same list reuses the cache
    torch.testing.assert_close(features.ood_groups["far"][1].features,
                               extract(net, preprocess, images, tmp_path / "cache2", key).features[6:])


class _Bomb:
    """Unpickling this would create a marker file: the cache must never unpickle anything."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickle_bomb_shard_is_refused_and_recomputed(built, images, tmp_path):
    import hashlib

    net, preprocess, key = built
    clean = extract(net, preprocess, images, tmp_path, key)
    folder = feature_cache_folder(tmp_path, images, key, preprocess, SHARD)
    marker = tmp_path / "bomb-went-off"
    shard, sidecar = folder / "shard-00000.npy", folder / "shard-00000.json"
    np.save(shard, np.array([_Bomb(marker)], dtype=object), allow_pickle=True)
    meta = json.loads(sidecar.read_text())
    meta["sha256"] = hashlib.sha256(shard.read_bytes()).hexdigest()  # a forged sidecar that matches the bomb
    sidecar.write_text(json.dumps(meta))
    with pytest.warns(RuntimeWarning, match="shard-00000"):
        again = extract(net, preprocess, images, tmp_path, key)
    assert not marker.exists()
    assert torch.equal(again.features, clean.features)


def _copy_images(images, folder):
    import shutil

    folder.mkdir()
    paths = [shutil.copy2(p, folder / f"img{i}.png") for i, p in enumerate(images.paths)]
    return ImageList("toy", [str(p) for p in paths], images.labels)


def _replace_image(path, seed, keep_size_and_time=False):
    """Write other pixels at ``path`` (same format); optionally keep its size and modification time."""
    import os

    before = os.stat(path)
    with Image.open(path) as image:
        size, mode = image.size, image.mode
    rng = np.random.default_rng(seed)
    pixels = rng.integers(0, 256, (size[1], size[0]) + (() if mode == "L" else (3,)), dtype=np.uint8)
    Image.fromarray(pixels).save(path, format="BMP")  # uncompressed: the size depends on the image size only
    if keep_size_and_time:  # as cp -p or rsync -a would leave it (a BMP's size depends on its dimensions only)
        os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
        assert os.stat(path).st_size == before.st_size and os.stat(path).st_mtime_ns == before.st_mtime_ns


def test_replaced_images_are_re_encoded_shard_by_shard(built, images, tmp_path):
    net, preprocess, key = built
    images = _copy_images(images, tmp_path / "images")
    first = extract(net, preprocess, images, tmp_path / "cache", key)
    _replace_image(images.paths[5], seed=11)  # in shard 1 (rows 4-7)
    counting = CountingNet(net)
    with pytest.warns(RuntimeWarning, match=r"rows 4-7\) changed on disk since they were encoded"):
        again = extract(counting, preprocess, images, tmp_path / "cache", key)
    assert counting.calls == SHARD // BATCH  # that shard's forward passes only
    fresh = extract(net, preprocess, images, tmp_path / "fresh-cache", key)
    torch.testing.assert_close(again.features, fresh.features)  # what a new cache gives
    assert not torch.equal(again.features[5], first.features[5])
    torch.testing.assert_close(again.features[:4], first.features[:4])


def test_verify_catches_contents_changed_under_the_same_size_and_time(built, images, tmp_path):
    net, preprocess, key = built
    images = _copy_images(images, tmp_path / "images")
    for path in images.paths:  # BMP files: a changed image can keep its file size exactly
        with Image.open(path) as image:
            image.save(path, format="BMP")
    extract(net, preprocess, images, tmp_path / "cache", key)
    _replace_image(images.paths[9], seed=12, keep_size_and_time=True)  # shard 2 (rows 8-9)
    counting = CountingNet(net)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # without verify, size and time are all that is checked
        extract(counting, preprocess, images, tmp_path / "cache", key)
    assert counting.calls == 0
    with pytest.warns(RuntimeWarning, match=r"the contents of its images \(rows 8-9\) changed"):
        verified = extract(counting, preprocess, images, tmp_path / "cache", key, verify=True)
    assert counting.calls == 1
    torch.testing.assert_close(verified.features,
                               extract(net, preprocess, images, tmp_path / "fresh-cache", key).features)
