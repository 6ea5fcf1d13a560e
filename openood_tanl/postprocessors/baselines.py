"""The methods TANL is compared with, as OpenOOD postprocessors: ``mcm``, ``neglabel``, ``adaneg``."""
from __future__ import annotations

import torch

from ..core.adaneg import OFFICIAL_NAMES as ADANEG_NAMES
from ..core.adaneg import AdaNeg
from ..core.mcm import MCM
from ..core.neglabel import OFFICIAL_NAMES as NEGLABEL_NAMES
from ..core.neglabel import SELECTION_CHECKS, NegLabel, select_negative_labels
from .engine_postprocessor import EnginePostprocessor

__all__ = ["MCMPostprocessor", "NegLabelPostprocessor", "AdaNegPostprocessor", "negative_labels_of"]


def _logit_scale(net) -> float:
    return float(torch.as_tensor(net.logit_scale))


def negative_labels_of(net, num_negatives: int, percentile: float) -> torch.Tensor:
    """[M, D] NegLabel-selected negative texts of ``net``'s corpus (all words count as nouns when the network
    does not say which are adjectives)."""
    is_adjective = getattr(net, "corpus_is_adjective", None)
    if is_adjective is None:
        is_adjective = torch.zeros(len(net.corpus_text_features), dtype=torch.bool)
    selected = select_negative_labels(net.id_text_features, net.corpus_text_features, is_adjective,
                                      num_negatives, percentile)
    return net.corpus_text_features.index_select(0, selected.to(net.corpus_text_features.device))


class MCMPostprocessor(EnginePostprocessor):
    """MCM: max softmax over the ID classes (higher = more ID). Args: ``temperature`` (official ``tau``)."""

    name = "mcm"
    engine_class = MCM
    official_names = {"temperature": "tau"}

    def build_engine(self, net, **args) -> MCM:
        return MCM(net.id_text_features, _logit_scale(net), **args)


class NegLabelPostprocessor(EnginePostprocessor):
    """NegLabel: ID share of the softmax over [ID | negatives], averaged over groups (higher = more ID).

    Args: ``num_negatives`` (official ``ood_number``, 10,000), ``percentile`` (0.95), ``num_groups``
    (``ngroup``), ``seed``.
    """

    name = "neglabel"
    engine_class = NegLabel
    official_names = NEGLABEL_NAMES
    extra_parameters = {"num_negatives": 10000, "percentile": 0.95}
    extra_checks = SELECTION_CHECKS

    def build_engine(self, net, *, num_negatives, percentile, **args) -> NegLabel:
        negatives = negative_labels_of(net, int(num_negatives), float(percentile))
        return NegLabel(net.id_text_features, negatives, _logit_scale(net), **args)


class AdaNegPostprocessor(EnginePostprocessor):
    """AdaNeg (NeurIPS 2024): text proxies plus memories of test images per proxy (higher = more ID).

    Stateful like TANL: the memories live across ``postprocess`` calls until ``reset()``. Negatives are NegLabel's
    selection (``num_negatives``, ``percentile``); the engine's arguments and their official names are in
    ``openood_tanl.core.adaneg``.
    """

    name = "adaneg"
    engine_class = AdaNeg
    official_names = {**ADANEG_NAMES, **{k: v for k, v in NEGLABEL_NAMES.items() if k != "num_groups"}}
    extra_parameters = {"num_negatives": 10000, "percentile": 0.95}
    extra_checks = SELECTION_CHECKS

    def build_engine(self, net, *, num_negatives, percentile, **args) -> AdaNeg:
        negatives = negative_labels_of(net, int(num_negatives), float(percentile))
        return AdaNeg(net.id_text_features, negatives, _logit_scale(net), **args)
