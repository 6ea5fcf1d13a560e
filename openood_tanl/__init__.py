"""openood-tanl: TANL (Test-time Activated Negative Labels, CVPR 2026) as an OpenOOD postprocessor.

Layout: ``core`` is the pure-torch engine on embeddings; ``postprocessors`` adapts it to OpenOOD's
``BasePostprocessor``; ``registry`` makes the names selectable inside OpenOOD (done on import when OpenOOD is
installed).
"""
from .core import TANL
from .postprocessors import OPENOOD_AVAILABLE, TANLPostprocessor
from .protocol import CLIPNetwork
from .registry import POSTPROCESSORS, config_root, get_postprocessor, register

__all__ = ["TANL", "TANLPostprocessor", "CLIPNetwork", "POSTPROCESSORS", "config_root", "get_postprocessor",
           "register", "OPENOOD_AVAILABLE"]
__version__ = "0.1.0"

if OPENOOD_AVAILABLE:
    register()
