"""openood-tanl: TANL (Test-time Activated Negative Labels) as an OpenOOD postprocessor."""
from .core import TANL

__all__ = ["TANL"]
__version__ = "0.1.0"
