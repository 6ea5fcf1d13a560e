"""OpenOOD adapters: postprocessors that wrap the pure-torch engines."""
from .base import OPENOOD_AVAILABLE, BasePostprocessor
from .engine_postprocessor import EnginePostprocessor
from .tanl import TANLOfficialPostprocessor, TANLPostprocessor

__all__ = ["BasePostprocessor", "EnginePostprocessor", "TANLPostprocessor", "TANLOfficialPostprocessor",
           "OPENOOD_AVAILABLE"]
