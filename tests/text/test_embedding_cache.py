"""The embedding cache: hit, miss, mismatch, corruption, no pickle, atomic writes."""
import pickle
import zipfile

import numpy as np
import pytest
import torch

from openood_tanl.embedding_cache import EmbeddingCache
from openood_tanl.networks.noise import noise_images


def _counting(value):
    calls = []

    def compute():
        calls.append(1)
        return value

    return compute, calls


def test_second_call_reads_the_cache(tmp_path):
    cache = EmbeddingCache(tmp_path)
    compute, calls = _counting(torch.randn(5, 3))
    first = cache.get_or_compute("nouns", {"model": "m", "words": "abc"}, compute)
    second = cache.get_or_compute("nouns", {"model": "m", "words": "abc"}, compute)
    assert len(calls) == 1 and torch.equal(first, second)
    assert not list(tmp_path.glob("*.tmp"))  # no temporary file left behind


def test_another_key_is_another_entry(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.save("nouns", {"model": "a"}, torch.zeros(2, 2))
    assert cache.load("nouns", {"model": "b"}) is None


@pytest.mark.parametrize("damage", ["truncate", "edit", "wrong-key", "pickle"])
def test_damaged_entries_are_rebuilt_never_used(tmp_path, damage):
    cache = EmbeddingCache(tmp_path)
    key = {"model": "m"}
    path = cache.save("nouns", key, torch.arange(12.0).view(4, 3))
    if damage == "truncate":
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    elif damage == "edit":  # same manifest, different numbers
        with np.load(path) as archive:
            manifest = archive["manifest"]
        np.savez(path, embeddings=np.ones((4, 3), np.float32), manifest=manifest)
    elif damage == "wrong-key":  # a valid entry of another key copied over this one's name
        other = cache.save("nouns", {"model": "other"}, torch.ones(4, 3))
        path.write_bytes(other.read_bytes())
    else:  # a pickle where an array is expected: must not be unpickled
        class Boom:
            def __reduce__(self):
                return (exec, ("raise SystemExit('pickle executed')",))

        with zipfile.ZipFile(path, "w") as archive:
            archive.writestr("embeddings.npy", b"")
            archive.writestr("manifest.npy", pickle.dumps(Boom()))
    with pytest.warns(RuntimeWarning, match="is not used"):
        assert cache.load("nouns", key) is None
    fresh = torch.full((4, 3), 7.0)
    with pytest.warns(RuntimeWarning):
        assert torch.equal(cache.get_or_compute("nouns", key, lambda: fresh), fresh)
    assert torch.equal(cache.load("nouns", key), fresh)


def test_noise_images_are_seeded_and_in_unit_range():
    images = noise_images(32, seed=3)
    assert images.shape == (15, 3, 32, 32) and images.dtype == torch.float32
    assert images.min() >= 0 and images.max() <= 1
    assert torch.equal(images, noise_images(32, seed=3)) and not torch.equal(images, noise_images(32, seed=4))
    salt_and_pepper = images[12:]
    assert set(salt_and_pepper.unique().tolist()) == {0.0, 1.0}
