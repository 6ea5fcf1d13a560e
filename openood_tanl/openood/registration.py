"""Making our names selectable inside OpenOOD, which has no plugin discovery.

OpenOOD looks names up in functions whose tables are local to them, and its modules import those functions into
their own namespaces. ``LOOKUPS`` lists every lookup we wrap; ``apply(scope)`` replaces each function, at every
``openood.*`` module that imported it, with a wrapper that resolves our names and hands every other name to
OpenOOD unchanged; ``restore()`` puts the originals back.

* ``api`` (what ``Evaluator(postprocessor_name="tanl")`` needs): our postprocessors in
  ``openood.evaluation_api.postprocessor.postprocessors`` and its ``get_postprocessor`` (with the YAML shipped in
  this package when ``config_root`` lacks one; never a download). ``import openood_tanl`` arranges for this to
  happen when OpenOOD's evaluation API is imported (``register_on_import``), and touches OpenOOD no further.
* ``pipeline`` (what OpenOOD's ``main.py`` pipeline needs; applied by ``python -m openood_tanl.openood.main``):
  ``get_postprocessor``, ``get_network`` (``network.name: clip_tanl``) and ``get_evaluator``
  (``evaluator.name: test_time``).
"""
from __future__ import annotations

import functools
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

__all__ = ["Lookup", "LOOKUPS", "apply", "restore", "register", "register_on_import", "network_from_config",
           "built_by_pipeline", "NETWORKS", "EVALUATORS", "NETWORK_KEYS"]

#: OpenOOD ``network.name`` values we build (configs/networks/<name>.yml) and ``evaluator.name`` values we add.
NETWORKS = ("clip_tanl",)
EVALUATORS = ("test_time",)

#: ``network:`` keys of ours -> ``create_network`` arguments (OpenOOD's own keys, e.g. num_gpus, are ignored).
NETWORK_KEYS = ("model", "weights", "id_classes", "corpus", "corpus_rules", "cache_dir", "templates", "transform",
                "precision", "quick_gelu", "noise_seed", "normalize_noise", "batch_size", "model_config")

_WRAPPER_FLAG = "_openood_tanl_wrapper"

# The network and postprocessor of ours that OpenOOD's pipeline built last in this process (for the run record).
_BUILT: dict = {}


def built_by_pipeline() -> dict:
    """``{'network': ..., 'postprocessor': ...}``: ours that OpenOOD's ``main.py`` pipeline built in this process."""
    return dict(_BUILT)


# ---------------------------------------------------------------------------------------------- the wrappers
def _evaluation_api_lookup(original):
    def get_postprocessor(config_root: str, postprocessor_name: str, id_data_name: str):
        from ..methods import method_config_path
        from .postprocessors import POSTPROCESSORS

        if postprocessor_name not in POSTPROCESSORS:
            return original(config_root, postprocessor_name, id_data_name)
        from openood.utils.config import Config, merge_configs

        path = Path(config_root or "", "postprocessors", f"{postprocessor_name}.yml")
        if not path.is_file():  # never download: our YAML ships with the package
            path = method_config_path(postprocessor_name)
        config = merge_configs(Config(os.fspath(path)), Config(**{"dataset": {"name": id_data_name}}))
        postprocessor = POSTPROCESSORS[postprocessor_name](config)
        postprocessor.APS_mode = bool(config.postprocessor.APS_mode)
        postprocessor.hyperparam_search_done = False
        return postprocessor

    return get_postprocessor


def _pipeline_postprocessor_lookup(original):
    def get_postprocessor(config):
        from .postprocessors import POSTPROCESSORS

        name = config.postprocessor.name
        if name in POSTPROCESSORS:
            _BUILT["postprocessor"] = POSTPROCESSORS[name](config)
            return _BUILT["postprocessor"]
        return original(config)

    return get_postprocessor


def _network_lookup(original):
    def get_network(network_config):
        if network_config.name in NETWORKS:
            _BUILT["network"] = network_from_config(network_config)
            return _BUILT["network"]
        return original(network_config)

    return get_network


def _evaluator_lookup(original):
    def get_evaluator(config):
        if config.evaluator.name in EVALUATORS:
            from .evaluators import TestTimeOODEvaluator

            return TestTimeOODEvaluator(config)
        return original(config)

    return get_evaluator


@dataclass(frozen=True)
class Lookup:
    """One OpenOOD lookup function we wrap: ``home`` module, ``attribute``, the wrapper factory and its scope."""

    home: str
    attribute: str
    wrap: Callable
    scope: str  # "api" or "pipeline"
    loads: str = ""  # a module to import first, so that every module referencing the function is loaded


LOOKUPS = (
    Lookup("openood.evaluation_api.postprocessor", "get_postprocessor", _evaluation_api_lookup, "api"),
    Lookup("openood.postprocessors.utils", "get_postprocessor", _pipeline_postprocessor_lookup, "pipeline",
           "openood.pipelines"),
    Lookup("openood.networks.utils", "get_network", _network_lookup, "pipeline", "openood.pipelines"),
    Lookup("openood.evaluators.utils", "get_evaluator", _evaluator_lookup, "pipeline", "openood.pipelines"),
)

# (module name, attribute) -> the original function we replaced there
_REPLACED: dict[tuple[str, str], Callable] = {}


def _wrap_everywhere(lookup: Lookup) -> None:
    import importlib

    if lookup.loads:
        importlib.import_module(lookup.loads)
    home = importlib.import_module(lookup.home)
    original = getattr(home, lookup.attribute)
    if getattr(original, _WRAPPER_FLAG, False):
        return  # applied already
    wrapper = functools.wraps(original)(lookup.wrap(original))
    setattr(wrapper, _WRAPPER_FLAG, True)
    for module_name, module in list(sys.modules.items()):
        if (module_name == "openood" or module_name.startswith("openood.")) and \
                getattr(module, lookup.attribute, None) is original:
            _REPLACED[(module_name, lookup.attribute)] = original
            setattr(module, lookup.attribute, wrapper)


def apply(scope: str = "api") -> bool:
    """Wrap the lookups of ``scope`` (``api``, ``pipeline`` or ``all``) and add our postprocessors to OpenOOD's
    evaluation API table. Idempotent; returns False (and changes nothing) when OpenOOD does not import."""
    if scope not in ("api", "pipeline", "all"):
        raise ValueError(f"scope must be 'api', 'pipeline' or 'all', got '{scope}'")
    try:
        import openood.evaluation_api.postprocessor as api_postprocessor

        from .postprocessors import POSTPROCESSORS
    except ImportError:
        return False
    api_postprocessor.postprocessors.update(POSTPROCESSORS)
    for lookup in LOOKUPS:
        if scope in ("all", lookup.scope):
            _wrap_everywhere(lookup)
    return True


def restore() -> None:
    """Undo ``apply``: every original lookup back in place, our names out of OpenOOD's table."""
    for (module_name, attribute), original in _REPLACED.items():
        module = sys.modules.get(module_name)
        if module is not None:
            setattr(module, attribute, original)
    _REPLACED.clear()
    api_postprocessor = sys.modules.get("openood.evaluation_api.postprocessor")
    if api_postprocessor is not None:
        from .postprocessors import POSTPROCESSORS

        for name in POSTPROCESSORS:
            api_postprocessor.postprocessors.pop(name, None)


def register() -> bool:
    """Make our names selectable everywhere in OpenOOD (``apply('all')``). Idempotent; False without OpenOOD."""
    return apply("all")


def register_on_import() -> None:
    """Apply the ``api`` scope as soon as OpenOOD's evaluation API is imported (now, if it already is)."""
    import wrapt

    for module in ("openood.evaluation_api.postprocessor", "openood.evaluation_api.evaluator"):
        wrapt.register_post_import_hook(lambda _module: apply("api"), module)


# ---------------------------------------------------------------------------------------------- our network
def network_from_config(network_config):
    """Build our CLIP network from an OpenOOD ``network:`` section (see configs/networks/clip_tanl.yml).

    Keys: ``model`` (open_clip name), ``weights`` (pretrained tag or checkpoint path; OpenOOD's own ``pretrained``
    and ``checkpoint`` keys are ignored), ``id_classes``, ``corpus``, ``corpus_rules``, ``cache_dir``, ``templates``,
    ``transform``, ``precision``, ``quick_gelu``, ``noise_seed``, ``normalize_noise``, ``batch_size``,
    ``model_config``, and ``device`` (default: CUDA when ``num_gpus`` > 0 and available, else CPU).
    """
    import torch

    from ..networks import create_network

    settings = {key: network_config[key] for key in NETWORK_KEYS if network_config.get(key) is not None}
    for key in ("cache_dir", "model_config"):  # OpenOOD's command-line overrides need string-typed defaults
        if str(settings.get(key, "")).lower() in ("default", "none"):
            settings.pop(key)
    if "model" in settings:
        settings["model_name"] = settings.pop("model")
    if "weights" in settings:
        weights = settings.pop("weights")
        settings["pretrained"] = None if str(weights).lower() == "none" else weights
    wants_gpu = int(network_config.get("num_gpus") or 0) > 0 and torch.cuda.is_available()
    device = network_config.get("device") or ("cuda" if wants_gpu else "cpu")
    net, _ = create_network(device=device, **settings)
    return net
