"""Pure-torch engines on embeddings (TANL and the baselines) and TANL's scoring pieces; no OpenOOD, no open_clip.

Every engine follows the contract of ``core.engine.Engine``: ``reset()``, ``step(features) -> (pred, score)`` with
higher scores more in-distribution, ``device``, ``num_classes``, and its hyperparameters' checks and official names.
"""
from .adaneg import AdaNeg
from .engine import Engine, OfficialName
from .lockstep import Lockstep
from .mcm import MCM
from .memory import ActivationMemory
from .neglabel import NegLabel, select_negative_labels
from .official_fp16 import OfficialFP16TANL
from .scoring import activation_aware_score, literal_activation_aware_score, otsu_threshold, prefix_lengths
from .tanl import TANL

__all__ = ["Engine", "OfficialName", "Lockstep", "TANL", "OfficialFP16TANL", "MCM", "NegLabel", "AdaNeg",
           "select_negative_labels", "ActivationMemory", "activation_aware_score",
           "literal_activation_aware_score", "otsu_threshold", "prefix_lengths"]
