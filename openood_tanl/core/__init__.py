"""Pure-torch TANL core: the engine and its scoring pieces (no OpenOOD, no open_clip)."""
from .queue import ActivationQueue
from .scoring import activation_aware_score, otsu_threshold, prefix_lengths
from .tanl import OFFICIAL_NAMES, TANL

__all__ = ["TANL", "OFFICIAL_NAMES", "ActivationQueue", "activation_aware_score", "otsu_threshold",
           "prefix_lengths"]
