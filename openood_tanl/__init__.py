"""openood-tanl: TANL (Test-time Activated Negative Labels, CVPR 2026) as an OpenOOD postprocessor.

Layout: ``core`` holds the pure-torch engines on embeddings (TANL and the baselines); ``postprocessors`` adapts
them to OpenOOD's ``BasePostprocessor``; ``networks`` builds the open_clip network that carries the text bank;
``corpus`` and ``classnames`` ship the word lists; ``registry`` makes the names selectable inside OpenOOD (done on
import when OpenOOD is installed). Attributes are imported on first use.
"""
import importlib.util as _importlib_util

from ._lazy import lazy_exports

__version__ = "0.2.0"

_EXPORTS = {
    "TANL": ".core", "TANLPostprocessor": ".postprocessors", "OPENOOD_AVAILABLE": ".postprocessors",
    "CLIPNetwork": ".protocol", "POSTPROCESSORS": ".registry", "NETWORKS": ".registry", "config_root": ".registry",
    "get_postprocessor": ".registry", "register": ".registry", "create_network": ".networks",
    "class_names": ".classnames", "Corpus": ".corpus", "build_corpus": ".corpus", "load_corpus": ".corpus",
    "read_word_list": ".corpus", "wordnet_words": ".corpus",
}
_SUBMODULES = ("classnames", "cli", "core", "corpus", "evaluation", "metrics", "networks", "postprocessors",
               "protocol", "provenance", "registry", "synthetic", "textbank")
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)

if _importlib_util.find_spec("openood") is not None:  # OpenOOD installed: make our names selectable in it
    from .registry import register as _register

    _register()
