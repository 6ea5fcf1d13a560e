"""openood-tanl: TANL (Test-time Activated Negative Labels, CVPR 2026) as an OpenOOD plugin.

Layers (see docs/DESIGN.md): ``core`` holds the pure-torch engines on embeddings; ``methods`` is the registry that
builds them by name from a text bank (``bank``); ``networks`` builds the open_clip network that carries the text
bank (``corpus``, ``classnames``); ``evaluation`` replays cached image embeddings under test-time protocols;
``openood`` is the only code that touches OpenOOD; ``cli`` is the ``openood-tanl`` command. Attributes are imported
on first use; with OpenOOD installed, our names become selectable in it when its evaluation API is imported.
"""
import importlib.util as _importlib_util

from ._lazy import lazy_exports
from .version import __version__  # noqa: F401 (the package version, openood_tanl.__version__)

_EXPORTS = {
    **dict.fromkeys(("Engine", "TANL", "OfficialFP16TANL", "MCM", "NegLabel", "AdaNeg", "CSP", "OODD", "MCMOODD",
                      "Lockstep"), ".core"),
    **dict.fromkeys(("list_methods", "configure", "create_engine", "create_lockstep", "config_root"), ".methods"),
    "TextBank": ".bank", "TextBankNetwork": ".bank", "create_network": ".networks", "CLIPNetwork": ".networks",
    "class_names": ".classnames", "TANLPostprocessor": ".openood", "TestTimeEvaluator": ".openood",
    "UserError": ".core.errors",
}
_SUBMODULES = ("bank", "classnames", "cli", "core", "corpus", "csp", "embedding_cache", "evaluation", "log", "methods",
               "metrics", "networks", "openood", "provenance", "synthetic", "yaml_files")
__all__ = list(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS, _SUBMODULES)

if _importlib_util.find_spec("openood") is not None:  # make our names selectable once OpenOOD's API is imported
    from .openood.registration import register_on_import as _register_on_import

    _register_on_import()
