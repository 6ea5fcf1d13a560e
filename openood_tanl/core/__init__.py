"""Pure-torch engines on embeddings (TANL and the baselines) and TANL's scoring pieces; no OpenOOD, no open_clip."""
from .adaneg import AdaNeg
from .mcm import MCM
from .neglabel import NegLabel, select_negative_labels
from .queue import ActivationQueue
from .scoring import activation_aware_score, otsu_threshold, prefix_lengths
from .tanl import OFFICIAL_NAMES, TANL

__all__ = ["TANL", "MCM", "NegLabel", "AdaNeg", "select_negative_labels", "OFFICIAL_NAMES", "ActivationQueue", "activation_aware_score", "otsu_threshold",
           "prefix_lengths"]
