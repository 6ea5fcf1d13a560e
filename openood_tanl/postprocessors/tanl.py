"""``tanl`` (the paper's setting) and ``tanl_official`` (the authors' script): the TANL engine for OpenOOD."""
from __future__ import annotations

import torch

from ..core import OFFICIAL_NAMES, TANL
from .engine_postprocessor import EnginePostprocessor

__all__ = ["TANLPostprocessor", "TANLOfficialPostprocessor"]


class TANLPostprocessor(EnginePostprocessor):
    """Test-time Activated Negative Labels (CVPR 2026) for OpenOOD.

    Reads ``postprocessor.postprocessor_args`` (``num_negatives``, ``memory_length``, ``gap``, ``alpha``,
    ``score_step``, ``score_memory_length``, ``seed``; official names in ``OFFICIAL_NAMES``). The engine is built
    from the network's text bank on the first ``postprocess`` and keeps its memories across calls until
    ``reset()``. ``conf`` is the activation-aware score: higher = more in-distribution.
    """

    name = "tanl"
    engine_class = TANL
    official_names = OFFICIAL_NAMES

    def build_engine(self, net, **args) -> TANL:
        return TANL(net.id_text_features, net.corpus_text_features, net.noise_features,
                    float(torch.as_tensor(net.logit_scale)), **args)


class TANLOfficialPostprocessor(TANLPostprocessor):
    """TANL preset ``tanl_official``: the authors' shipped script (``official.sh``: alpha 0.0, gap 0.5, memleng 300,
    beta 1000, gamma 1), from ``configs/postprocessors/tanl_official.yml``; ``tanl`` is the paper's setting."""

    name = "tanl_official"
