"""Shared fixtures. Test helpers are the ``helpers`` package (doubles, the tiny open_clip model, generated OpenOOD
trees, extraction workers) and ``reference`` (slow literal implementations the engines are pinned against);
``pythonpath = tests`` in the pytest configuration makes both importable. Tests that need OpenOOD skip, saying why,
on ``pytest.importorskip("openood.evaluation_api")``; ``@pytest.mark.slow`` marks process pools, subprocess
pipelines and minute-long streams."""
import functools
import os

import pytest

#: Fixtures shared across folders: the tiny network and images of the extraction tests (``tiny``, ``one_thread``).
pytest_plugins = ["helpers.extraction_setup"]

# Tests never reach the network: open_clip's weight downloads fail at once instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

@pytest.fixture(scope="session")
def synthetic_bank():
    """``make_bank(num_classes, corpus_size, dim, seed=...)``, one bank per argument set (banks are read-only)."""
    from openood_tanl.synthetic import make_bank

    return functools.lru_cache(maxsize=None)(make_bank)


@pytest.fixture(scope="session")
def small_benchmark():
    """(TextBank, FeatureBenchmark): 15 classes, 3000 corpus words, dim 40, 400 ID and 150 near + 150 far OOD
    embeddings (``synthetic.synthetic_benchmark``, seed 1); read-only, shared by the replay and trace tests."""
    from openood_tanl.synthetic import synthetic_benchmark

    return synthetic_benchmark(seed=1, num_classes=15, corpus_size=3000, dim=40, num_id=400, num_ood=150)


@pytest.fixture(scope="session")
def tiny_checkpoint(tmp_path_factory):
    """The tiny random open_clip model registered with open_clip and saved to a checkpoint (its path)."""
    pytest.importorskip("open_clip")
    from helpers.tiny_clip import make_tiny_checkpoint

    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny-clip"))


@pytest.fixture
def offline(monkeypatch):
    """Fail loudly if OpenOOD reaches for the network (config or data download). Needs OpenOOD."""
    import openood.evaluation_api.datasets as datasets
    import openood.evaluation_api.postprocessor as api_postprocessor

    def refuse(*args, **kwargs):
        raise AssertionError(f"OpenOOD tried to download: {args} {kwargs}")

    monkeypatch.setattr(api_postprocessor.urllib.request, "urlretrieve", refuse)
    monkeypatch.setattr(datasets.gdown, "download", refuse)
