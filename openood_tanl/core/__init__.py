"""Pure-torch engines on embeddings (TANL and the baselines) and ``Lockstep``; no OpenOOD, no open_clip.

Their machinery (``scoring``, ``memory``, ``workspace``, ``validation``) is imported from its module. Every engine
follows the contract of ``core.engine.Engine``: ``reset()``, ``step(features) -> (pred, score)`` with higher scores
more in-distribution, ``device``, ``num_classes``, and its hyperparameters' checks and official names.
"""
from .adaneg import AdaNeg
from .engine import Engine, OfficialName
from .lockstep import Lockstep
from .mcm import MCM
from .neglabel import NegLabel
from .official_fp16 import OfficialFP16TANL
from .tanl import TANL

__all__ = ["Engine", "OfficialName", "Lockstep", "TANL", "OfficialFP16TANL", "MCM", "NegLabel", "AdaNeg"]
