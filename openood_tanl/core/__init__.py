"""Pure-torch engines on embeddings (TANL and the baselines) and TANL's scoring pieces; no OpenOOD, no open_clip.

Every engine follows the contract of ``core.engine.Engine``: ``reset()``, ``step(features) -> (pred, score)`` with
higher scores more in-distribution, ``device``, ``num_classes``, and its hyperparameters' checks and official names.
Names are imported on first use, so ``core.errors`` (the package's ``UserError``) loads without torch.
"""
import importlib as _importlib

_EXPORTS = {
    "AdaNeg": "adaneg", "Engine": "engine", "OfficialName": "engine", "Lockstep": "lockstep", "MCM": "mcm",
    "ActivationMemory": "memory", "NegLabel": "neglabel", "select_negative_labels": "neglabel",
    "OfficialFP16TANL": "official_fp16", "activation_aware_score": "scoring",
    "literal_activation_aware_score": "scoring", "otsu_threshold": "scoring", "prefix_lengths": "scoring",
    "TANL": "tanl", "UserError": "errors", "UserTypeError": "errors", "MissingFileError": "errors",
    "MissingDependencyError": "errors",
}
_SUBMODULES = ("adaneg", "engine", "errors", "lockstep", "mcm", "memory", "neglabel", "official_fp16", "scoring",
               "tanl", "validation", "workspace")

__all__ = ["Engine", "OfficialName", "Lockstep", "TANL", "OfficialFP16TANL", "MCM", "NegLabel", "AdaNeg",
           "select_negative_labels", "ActivationMemory", "activation_aware_score",
           "literal_activation_aware_score", "otsu_threshold", "prefix_lengths", "UserError", "UserTypeError",
           "MissingFileError", "MissingDependencyError"]


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
