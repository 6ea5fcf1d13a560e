"""Making our postprocessors selectable by name inside OpenOOD.

OpenOOD has no plugin discovery: ``openood.evaluation_api`` looks names up in its module-level ``postprocessors``
dict and reads ``<config_root>/postprocessors/<name>.yml``; the ``main.py`` pipeline calls
``openood.postprocessors.get_postprocessor(config)``, whose table is local to the function. ``register()`` adds
our names to the dict and wraps both lookup functions where OpenOOD's modules imported them, so that our names
resolve (with the YAML shipped in this package when ``config_root`` lacks one) and every other name goes to
OpenOOD unchanged.
"""
from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

from .postprocessors.base import OPENOOD_AVAILABLE
from .postprocessors.config import CONFIG_ROOT, packaged_config_path
from .postprocessors.baselines import AdaNegPostprocessor, MCMPostprocessor, NegLabelPostprocessor
from .postprocessors.tanl import TANLOfficialPostprocessor, TANLPostprocessor

__all__ = ["POSTPROCESSORS", "NETWORKS", "register", "config_root", "get_postprocessor", "network_from_config",
           "built_by_pipeline"]

#: Registry name -> postprocessor class (``tanl`` is the paper's setting, ``tanl_official`` the authors' script's).
POSTPROCESSORS = {"tanl": TANLPostprocessor, "tanl_official": TANLOfficialPostprocessor, "mcm": MCMPostprocessor,
                  "neglabel": NegLabelPostprocessor, "adaneg": AdaNegPostprocessor}

#: OpenOOD ``network.name`` values we build (configs/networks/<name>.yml).
NETWORKS = ("clip_tanl",)

#: ``network:`` keys of ours -> ``create_network`` arguments (OpenOOD's own keys, e.g. num_gpus, are ignored).
NETWORK_KEYS = ("model", "weights", "id_classes", "corpus", "corpus_rules", "cache_dir", "templates", "precision",
                "quick_gelu", "noise_seed", "normalize_noise", "batch_size", "model_config")

_WRAPPER_FLAG = "_openood_tanl_wrapper"

# The network and postprocessor of ours that OpenOOD's pipeline built last in this process (for the run record).
_BUILT: dict = {}


def built_by_pipeline() -> dict:
    """``{'network': ..., 'postprocessor': ...}``: ours that OpenOOD's ``main.py`` pipeline built in this process."""
    return dict(_BUILT)


def config_root() -> str:
    """Folder with ``postprocessors/<name>.yml`` for every postprocessor here; pass as ``Evaluator(config_root=)``."""
    return str(CONFIG_ROOT)


def get_postprocessor(name: str, config=None, **overrides):
    """Build one of our postprocessors by registry name (from its shipped YAML unless ``config`` is given)."""
    if name not in POSTPROCESSORS:
        raise KeyError(f"unknown postprocessor '{name}'; openood_tanl provides: {', '.join(POSTPROCESSORS)}")
    return POSTPROCESSORS[name](config, **overrides)


def register() -> bool:
    """Make our postprocessors selectable by name in OpenOOD. Idempotent; returns False when OpenOOD is absent.

    Called on ``import openood_tanl`` when OpenOOD imports.
    """
    if not OPENOOD_AVAILABLE:
        return False
    import openood.evaluation_api.postprocessor as api_postprocessor
    import openood.pipelines  # noqa: F401  (imports every pipeline module, so their references can be wrapped)
    import openood.postprocessors.utils as pipeline_postprocessor

    import openood.networks.utils as pipeline_networks

    api_postprocessor.postprocessors.update(POSTPROCESSORS)
    _wrap_everywhere(api_postprocessor, "get_postprocessor", _evaluation_api_lookup)
    _wrap_everywhere(pipeline_postprocessor, "get_postprocessor", _pipeline_lookup)
    _wrap_everywhere(pipeline_networks, "get_network", _network_lookup)
    from .evaluation.openood_evaluators import register_evaluators

    register_evaluators()  # evaluator.name: test_time
    return True


def network_from_config(network_config):
    """Build our CLIP network from an OpenOOD ``network:`` section (see configs/networks/clip_tanl.yml).

    Keys: ``model`` (open_clip name), ``weights`` (pretrained tag or checkpoint path; OpenOOD's own ``pretrained``
    and ``checkpoint`` keys are ignored), ``id_classes``, ``corpus``, ``corpus_rules``, ``cache_dir``, ``templates``,
    ``precision``, ``quick_gelu``, ``noise_seed``, ``normalize_noise``, ``batch_size``, ``model_config``, and
    ``device`` (default: CUDA when ``num_gpus`` > 0 and available, else CPU).
    """
    import torch

    from .networks import create_network

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


def _wrap_everywhere(home, attribute: str, make_wrapper) -> None:
    """Replace ``home.<attribute>`` and every ``openood.*`` module's reference to the same function."""
    original = getattr(home, attribute)
    if getattr(original, _WRAPPER_FLAG, False):
        return  # already registered
    wrapper = functools.wraps(original)(make_wrapper(original))
    setattr(wrapper, _WRAPPER_FLAG, True)
    for module_name, module in list(sys.modules.items()):
        if (module_name == "openood" or module_name.startswith("openood.")) and \
                getattr(module, attribute, None) is original:
            setattr(module, attribute, wrapper)


def _evaluation_api_lookup(original):
    def get_postprocessor(config_root: str, postprocessor_name: str, id_data_name: str):
        if postprocessor_name not in POSTPROCESSORS:
            return original(config_root, postprocessor_name, id_data_name)
        from openood.utils.config import Config, merge_configs

        path = Path(config_root or "", "postprocessors", f"{postprocessor_name}.yml")
        if not path.is_file():  # never download: our YAML ships with the package
            path = packaged_config_path(postprocessor_name)
        config = merge_configs(Config(os.fspath(path)), Config(**{"dataset": {"name": id_data_name}}))
        postprocessor = POSTPROCESSORS[postprocessor_name](config)
        postprocessor.APS_mode = bool(config.postprocessor.APS_mode)
        postprocessor.hyperparam_search_done = False
        return postprocessor

    return get_postprocessor


def _network_lookup(original):
    def get_network(network_config):
        if network_config.name in NETWORKS:
            _BUILT["network"] = network_from_config(network_config)
            return _BUILT["network"]
        return original(network_config)

    return get_network


def _pipeline_lookup(original):
    def get_postprocessor(config):
        name = config.postprocessor.name
        if name in POSTPROCESSORS:
            _BUILT["postprocessor"] = POSTPROCESSORS[name](config)
            return _BUILT["postprocessor"]
        return original(config)

    return get_postprocessor
