import os
import sys
from pathlib import Path

import pytest

# tests import their slow reference helpers by module name
sys.path.insert(0, str(Path(__file__).parent))

# Tests never reach the network: open_clip's weight downloads fail at once instead of retrying for a minute.
os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture
def offline(monkeypatch):
    """Fail loudly if OpenOOD reaches for the network (config or data download). Needs OpenOOD."""
    import openood.evaluation_api.datasets as datasets
    import openood.evaluation_api.postprocessor as api_postprocessor

    def refuse(*args, **kwargs):
        raise AssertionError(f"OpenOOD tried to download: {args} {kwargs}")

    monkeypatch.setattr(api_postprocessor.urllib.request, "urlretrieve", refuse)
    monkeypatch.setattr(datasets.gdown, "download", refuse)
