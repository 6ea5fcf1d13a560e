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
  ``get_postprocessor``, ``get_network`` (``network.name: clip_tanl``), ``get_evaluator``
  (``evaluator.name: test_time``) and ``get_preprocessor`` (images reach our network through its own transform
  unless ``network.transform: openood``); OpenOOD's preprocessing tables learn ``bicubic`` and ``clip``.
"""
from __future__ import annotations

import functools
import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.errors import UserError

__all__ = ["Lookup", "LOOKUPS", "apply", "restore", "register", "register_on_import", "network_from_config",
           "openood_config_root", "network_preprocessor", "NetworkPreprocessor",
           "built_by_pipeline", "network_settings", "NETWORKS", "EVALUATORS", "NETWORK_KEY_NAMES",
           "OPENOOD_NETWORK_KEYS"]

logger = logging.getLogger(__name__)

#: OpenOOD ``network.name`` values we build (configs/networks/<name>.yml) and ``evaluator.name`` values we add.
NETWORKS = ("clip_tanl",)
EVALUATORS = ("test_time",)

#: ``network:`` keys of ours named otherwise than their ``create_network`` argument (``TextBankSettings`` field);
#: every other field is a key under its own name.
NETWORK_KEY_NAMES = {"model": "model_name", "weights": "pretrained"}
#: OpenOOD's own ``network:`` keys, not read (its checkpoint loading is not used: ``weights`` is).
OPENOOD_NETWORK_KEYS = ("name", "num_classes", "num_gpus", "pretrained", "checkpoint")

_WRAPPER_FLAG = "_openood_tanl_wrapper"

# The network, postprocessor and image transform of ours that OpenOOD's pipeline built last in this process (for
# the run record).
_BUILT: dict = {}


def built_by_pipeline() -> dict:
    """``{'network': ..., 'postprocessor': ..., 'image_transform': ...}``: ours that OpenOOD's ``main.py`` pipeline
    built in this process."""
    return dict(_BUILT)


def openood_config_root() -> Path:
    """Where OpenOOD's own postprocessor YAMLs are kept when ``config_root`` is this package's
    (``openood_tanl.config_root()``): ``$OPENOOD_TANL_CACHE/openood_configs`` (default
    ``~/.cache/openood_tanl/openood_configs``). OpenOOD downloads a missing one there, as it would into any
    config root; copy OpenOOD's ``configs/postprocessors/*.yml`` there to work offline."""
    from ..embedding_cache import default_cache_dir

    return Path(default_cache_dir()) / "openood_configs"


# ---------------------------------------------------------------------------------------------- the wrappers
def _evaluation_api_lookup(original):
    def get_postprocessor(config_root: str, postprocessor_name: str, id_data_name: str):
        from ..methods import config_root as package_config_root
        from ..methods import method_config_path
        from .postprocessors import POSTPROCESSORS

        if postprocessor_name not in POSTPROCESSORS:
            if config_root and Path(config_root).resolve() == package_config_root().resolve():
                config_root = os.fspath(openood_config_root())  # OpenOOD's YAML, never into the installed package
            return original(config_root, postprocessor_name, id_data_name)
        from openood.utils.config import Config, merge_configs

        path = Path(config_root or "", "postprocessors", f"{postprocessor_name}.yml")
        if not path.is_file():  # never download: our YAML ships with the package
            path = method_config_path(postprocessor_name)
        config = merge_configs(Config(os.fspath(path)), Config(**{"dataset": {"name": id_data_name}}))
        postprocessor = POSTPROCESSORS[postprocessor_name].from_openood_config(config)
        postprocessor.APS_mode = bool(config.postprocessor.APS_mode)
        postprocessor.hyperparam_search_done = False
        return postprocessor

    return get_postprocessor


def _pipeline_postprocessor_lookup(original):
    def get_postprocessor(config):
        from .postprocessors import POSTPROCESSORS

        name = config.postprocessor.name
        if name in POSTPROCESSORS:
            _BUILT["postprocessor"] = POSTPROCESSORS[name].from_openood_config(config)
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


class NetworkPreprocessor:
    """OpenOOD's preprocessor interface (``setup``, ``__call__(image)``) around our network's own transform."""

    def __init__(self, transform, description: dict):
        self.transform, self.description = transform, description

    def setup(self, **kwargs) -> None:
        """Nothing to set up."""

    def __call__(self, image):
        return self.transform(image)

    def __repr__(self) -> str:
        return f"NetworkPreprocessor({self.transform!r})"


def _given(value):
    """A ``network:`` value, or None for OpenOOD's placeholders ``none`` / ``default`` (its command-line overrides
    need string-typed YAML defaults)."""
    return None if value is None or str(value).lower() in ("none", "default") else value


def network_preprocessor(config) -> NetworkPreprocessor:
    """The images' transform for our network in an OpenOOD pipeline config: ``network.transform`` (``auto``:
    the official one for OpenOOD's benchmarks and the official class sets, see ``networks.transforms``)."""
    import open_clip

    from ..networks.transforms import build_transform, model_image_size, open_clip_eval_transform, resolve_transform

    settings = network_settings(config.network)
    if settings.model_config is not None:
        open_clip.add_model_config(str(settings.model_config))
    model, weights = settings.model_name, settings.pretrained
    name = resolve_transform(settings.transform, settings.id_classes, config.dataset.name, model, weights)
    transform, description = build_transform(name, settings.id_classes, model_image_size(model),
                                             open_clip_eval_transform(model, weights) if name == "open_clip" else None,
                                             config.dataset.name)
    return NetworkPreprocessor(transform, description)


def _warn_openood_statistics(config) -> None:
    """``network.transform: openood`` feeds the CLIP network OpenOOD's preprocessing: say where it is not CLIP's."""
    import warnings

    from openood.preprocessors.transform import normalization_dict

    dataset = config.dataset
    mean, std = normalization_dict.get(dataset.get("normalization_type"), ([0.5] * 3, [0.5] * 3))
    clip_mean, clip_std = normalization_dict["clip"]
    if list(mean) != list(clip_mean) or list(std) != list(clip_std) or dataset.get("interpolation") != "bicubic":
        warnings.warn(f"network.transform: openood feeds the CLIP network OpenOOD's preprocessing: mean {list(mean)}, "
                      f"std {list(std)} (normalization_type {dataset.get('normalization_type')!r}), "
                      f"{dataset.get('interpolation')} resize to {dataset.get('pre_size')}, crop "
                      f"{dataset.get('image_size')}; CLIP's are mean {list(clip_mean)}, std {list(clip_std)}, "
                      "bicubic. Its features degrade: set network.transform auto (the network's own transform) or "
                      "dataset.normalization_type clip and dataset.interpolation bicubic", UserWarning, stacklevel=3)


def _preprocessor_lookup(original):
    def get_preprocessor(config, split):
        network = config.get("network") or {}
        if network.get("name") not in NETWORKS:
            return original(config, split)
        if str(network.get("transform") or "auto") == "openood":
            _warn_openood_statistics(config)
            _BUILT["image_transform"] = {"name": "openood", **{key: config.dataset.get(key) for key in (
                "pre_size", "image_size", "interpolation", "normalization_type")}}
            return original(config, split)
        preprocessor = network_preprocessor(config)
        _BUILT["image_transform"] = preprocessor.description
        if split == "test":
            logger.info(f"{network.get('name')}: images reach the network through its own transform "
                        f"({preprocessor.description['name']}); the dataset config's pre_size, image_size, "
                        "interpolation and normalization_type are not used for them (network.transform: openood "
                        "uses them)")
        return preprocessor

    return get_preprocessor


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
    Lookup("openood.preprocessors.utils", "get_preprocessor", _preprocessor_lookup, "pipeline", "openood.pipelines"),
)

#: What OpenOOD's preprocessing tables lack for CLIP (its configs' ``interpolation: bicubic`` and
#: ``normalization_type: clip``): added with the pipeline scope, removed by ``restore``.
CLIP_PREPROCESSING = {"interpolation_modes": ("bicubic", "BICUBIC"),
                      "normalization_dict": ("clip", [[0.48145466, 0.4578275, 0.40821073],
                                                      [0.26862954, 0.26130258, 0.27577711]])}
_ADDED: list[tuple[dict, str]] = []  # (table, key) we added


def _teach_clip_preprocessing() -> None:
    import openood.preprocessors.transform as tables
    import torchvision.transforms as T

    for table_name, (key, value) in CLIP_PREPROCESSING.items():
        table = getattr(tables, table_name)
        if key not in table:
            table[key] = T.InterpolationMode[value] if table_name == "interpolation_modes" else value
            _ADDED.append((table, key))

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
        raise UserError(f"scope must be 'api', 'pipeline' or 'all', got '{scope}'")
    try:
        import openood.evaluation_api.postprocessor as api_postprocessor

        from .postprocessors import POSTPROCESSORS
    except ImportError:
        return False
    api_postprocessor.postprocessors.update(POSTPROCESSORS)
    for lookup in LOOKUPS:
        if scope in ("all", lookup.scope):
            _wrap_everywhere(lookup)
    if scope in ("all", "pipeline"):
        _teach_clip_preprocessing()
    return True


def restore() -> None:
    """Undo ``apply``: every original lookup back in place, our names out of OpenOOD's table."""
    for (module_name, attribute), original in _REPLACED.items():
        module = sys.modules.get(module_name)
        if module is not None:
            setattr(module, attribute, original)
    _REPLACED.clear()
    for table, key in _ADDED:
        table.pop(key, None)
    _ADDED.clear()
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
def network_settings(network_config):
    """The ``TextBankSettings`` of an OpenOOD ``network:`` section (see configs/networks/clip_tanl.yml).

    Keys: ``create_network``'s arguments (``model`` and ``weights`` for ``model_name`` and ``pretrained``,
    ``NETWORK_KEY_NAMES``); OpenOOD's own keys (``OPENOOD_NETWORK_KEYS``) are not read and any other key is a
    ValueError naming the valid ones. A key set to None is left at its default; ``weights``, ``cache_dir`` and
    ``model_config`` set to ``none``/``default`` are None (random weights, the default cache, none). ``device``
    defaults to CUDA when ``num_gpus`` > 0 and CUDA is available, else CPU.
    """
    import torch

    from ..networks import TextBankSettings

    values = {key: value for key, value in dict(network_config).items()
              if key not in OPENOOD_NETWORK_KEYS and value is not None}
    for key in ("weights", "cache_dir", "model_config"):
        if key in values:
            values[key] = _given(values[key])
    if "device" not in values:
        wants_gpu = int(network_config.get("num_gpus") or 0) > 0 and torch.cuda.is_available()
        values["device"] = "cuda" if wants_gpu else "cpu"
    return TextBankSettings.from_mapping(values, "the network: section", NETWORK_KEY_NAMES)


def network_from_config(network_config):
    """Build our CLIP network from an OpenOOD ``network:`` section (``network_settings``); ``transform: openood``
    (the pipeline preprocesses with OpenOOD's own, ``get_preprocessor``) builds it with the default transform."""
    from ..networks import build_network

    settings = network_settings(network_config)
    if settings.transform == "openood":
        settings = settings.replace(transform="auto")
    net, _ = build_network(settings)
    return net
