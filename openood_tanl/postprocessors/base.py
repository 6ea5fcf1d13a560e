"""OpenOOD's ``BasePostprocessor`` when OpenOOD imports, else a small compatible stand-in.

OpenOOD is not on PyPI; the package must work without it. With OpenOOD installed, our postprocessors subclass the
real base, so ``Evaluator(postprocessor=...)``'s isinstance check passes.
"""
from __future__ import annotations

import importlib.util
import warnings
from typing import Any

__all__ = ["BasePostprocessor", "OPENOOD_AVAILABLE", "OPENOOD_IMPORT_ERROR"]

OPENOOD_IMPORT_ERROR: str | None = None

if importlib.util.find_spec("openood") is not None:
    try:
        from openood.postprocessors import BasePostprocessor  # noqa: F401
    except Exception as error:  # an installed but broken OpenOOD must not break this package
        OPENOOD_IMPORT_ERROR = f"{type(error).__name__}: {error}"
        warnings.warn(f"OpenOOD is installed but failed to import ({OPENOOD_IMPORT_ERROR}); openood_tanl works "
                      "without it, and the postprocessors do not subclass OpenOOD's BasePostprocessor",
                      RuntimeWarning, stacklevel=2)
else:
    OPENOOD_IMPORT_ERROR = "OpenOOD is not installed (pip install git+https://github.com/Jingkang50/OpenOOD)"

OPENOOD_AVAILABLE = OPENOOD_IMPORT_ERROR is None

if not OPENOOD_AVAILABLE:

    class BasePostprocessor:  # type: ignore[no-redef]
        """Stand-in with OpenOOD's ``BasePostprocessor`` interface (config, setup, postprocess, inference)."""

        def __init__(self, config: Any):
            self.config = config

        def setup(self, net, id_loader_dict, ood_loader_dict):
            pass

        def postprocess(self, net, data):
            raise NotImplementedError

        def inference(self, net, data_loader, progress: bool = True):
            raise NotImplementedError
