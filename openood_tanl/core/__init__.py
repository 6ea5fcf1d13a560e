"""Pure-torch engines on embeddings (TANL and the baselines) and ``Lockstep``; no OpenOOD, no open_clip.

Their machinery (``scoring``, ``memory``, ``workspace``, ``validation``) and the package's errors (``errors``) are
imported from their modules. Every engine follows the contract of ``core.engine.Engine``: ``reset()``,
``step(features) -> (pred, score)`` with higher scores more in-distribution, ``device``, ``num_classes``, and its
hyperparameters' checks and official names. Names load on first use, so ``core.errors`` loads without torch.
"""
import importlib as _importlib

_EXPORTS = {
    "AdaNeg": "adaneg", "CSP": "csp", "Engine": "engine", "OfficialName": "engine", "Lockstep": "lockstep",
    "MCM": "mcm", "NegLabel": "neglabel", "OfficialFP16TANL": "official_fp16", "TANL": "tanl",
    "OODD": "oodd", "MCMOODD": "mcm_oodd",
}
_SUBMODULES = ("adaneg", "csp", "engine", "errors", "lockstep", "mcm", "mcm_oodd", "memory", "neglabel",
               "official_fp16", "oodd", "scoring", "tanl", "validation", "workspace")

__all__ = ["Engine", "OfficialName", "Lockstep", "TANL", "OfficialFP16TANL", "MCM", "NegLabel", "AdaNeg", "CSP",
           "OODD", "MCMOODD"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(_importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    elif name in _SUBMODULES:
        value = _importlib.import_module(f".{name}", __name__)
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(_EXPORTS) | set(_SUBMODULES))
