"""openood-tanl: TANL (Test-time Activated Negative Labels, CVPR 2026) as an OpenOOD postprocessor.

Layout: ``core`` holds the pure-torch engines on embeddings (TANL and the baselines); ``postprocessors`` adapts
them to OpenOOD's ``BasePostprocessor``; ``networks`` builds the open_clip network that carries the text bank;
``corpus`` and ``classnames`` ship the word lists; ``registry`` makes the names selectable inside OpenOOD (done on
import when OpenOOD is installed).
"""
__version__ = "0.2.0"

from .classnames import class_names
from .core import TANL
from .corpus import Corpus, build_corpus, load_corpus, read_word_list, wordnet_words
from .postprocessors import OPENOOD_AVAILABLE, TANLPostprocessor
from .protocol import CLIPNetwork
from .registry import NETWORKS, POSTPROCESSORS, config_root, get_postprocessor, register

__all__ = ["TANL", "TANLPostprocessor", "CLIPNetwork", "POSTPROCESSORS", "NETWORKS", "config_root",
           "get_postprocessor", "register", "create_network", "wordnet_words", "class_names", "Corpus",
           "build_corpus", "load_corpus", "read_word_list", "OPENOOD_AVAILABLE"]


def create_network(*args, **kwargs):
    """Build the open_clip network and its eval transform; see ``openood_tanl.networks.create_network``."""
    from .networks import create_network as _create_network

    return _create_network(*args, **kwargs)


if OPENOOD_AVAILABLE:
    register()
