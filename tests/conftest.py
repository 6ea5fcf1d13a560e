"""Shared fixtures. Test helpers are the ``helpers`` package (doubles, the tiny open_clip model, generated OpenOOD
trees, extraction workers) and ``reference`` (slow literal implementations the engines are pinned against);
``pythonpath = tests`` in the pytest configuration makes both importable."""
import functools
import importlib.util
import os

import pytest

#: Fixtures shared across folders: the tiny network and images of the extraction tests (``tiny``, ``one_thread``).
pytest_plugins = ["helpers.extraction_setup"]

# Tests never reach the network: open_clip's weight downloads fail at once instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")

#: Tests of the OpenOOD adapters run where OpenOOD is installed, and are skipped (saying so) elsewhere.
needs_openood = pytest.mark.skipif(importlib.util.find_spec("openood") is None,
                                   reason="OpenOOD is not installed (pip install git+https://github.com/Jingkang50/OpenOOD)")


@pytest.fixture(scope="session")
def synthetic_bank():
    """``make_bank(num_classes, corpus_size, dim, seed=...)``, one bank per argument set (banks are read-only)."""
    from openood_tanl.synthetic import make_bank

    return functools.lru_cache(maxsize=None)(make_bank)


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
