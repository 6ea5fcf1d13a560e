"""CSP (Chen et al., NeurIPS 2024, "Conjugated Semantic Pool"): NegLabel's grouped score on negatives selected
by a quantile of their similarity to the ID classes, nouns and adjectives apart."""
from __future__ import annotations

import torch

from .engine import OfficialName
from .errors import UserError
from .neglabel import NegLabel, adjective_flags
from .validation import as_rows, check_hyperparameters, check_int, check_real, check_same_dim, check_seed

__all__ = ["CSP", "select_csp_negatives", "OFFICIAL_NAMES", "HYPERPARAMETER_CHECKS", "CLOSE_TO_ID"]

#: A negative whose largest cosine to an ID class exceeds this is ranked last (its quantile set to 1).
CLOSE_TO_ID = 0.95


def _check_fraction(name, value):
    return check_real(name, value, 0.0, 1.0, low_open=True)


HYPERPARAMETER_CHECKS = {"num_groups": lambda name, value: check_int(name, value, 1),
                         "negative_fraction": _check_fraction,
                         "percentile": lambda name, value: check_real(name, value, 0.0, 1.0),
                         "seed": lambda name, value: check_seed(value)}
#: Our names -> the official config's (``custom_config/clip-ViT-B16.py``).
OFFICIAL_NAMES = {
    "num_groups": OfficialName("ngroup"),
    "negative_fraction": OfficialName("neg_topk"),
    "percentile": OfficialName("pencentile", "spelt so"),
    "seed": OfficialName(None, "hard-coded SEED = 0 in the grouping, a torch.randperm on the CUDA generator; ours "
                               "draws on a CPU torch.Generator. The official 'seed' seeds the adjectives' phrases: "
                               "openood_tanl.csp.csp_text_bank(seed=...)"),
}


@torch.no_grad()
def select_csp_negatives(id_text: torch.Tensor, corpus_text: torch.Tensor, is_adjective: torch.Tensor | None = None,
                         negative_fraction: float = 0.15, percentile: float = 0.95) -> torch.Tensor:
    """CSP's selection: the ``int(N * negative_fraction)`` nouns and ``int(A * negative_fraction)`` adjectives
    farthest from the ID classes.

    A candidate's closeness is the ``percentile`` quantile (``torch.quantile``, linear interpolation) of its cosines
    to the C ID texts, set to 1 when its largest cosine exceeds ``CLOSE_TO_ID``; nouns and adjectives are ranked
    apart, ascending (a stable sort: ties keep corpus order).

    Args:
        id_text: [C, D] L2-normalised ID texts; corpus_text: [W, D] L2-normalised candidates.
        is_adjective: [W] bool (None: every candidate is a noun).

    Returns:
        [M] LongTensor of corpus indices: the selected nouns, then the selected adjectives, each farthest first.
    """
    id_text = as_rows("id_text", id_text)
    corpus_text = as_rows("corpus_text", corpus_text, id_text.device)
    if is_adjective is None:
        is_adjective = torch.zeros(corpus_text.shape[0], dtype=torch.bool)
    is_adjective = adjective_flags(is_adjective, corpus_text)
    negative_fraction = _check_fraction("negative_fraction", negative_fraction)
    percentile = check_real("percentile", percentile, 0.0, 1.0)
    rows = max(1, min(1000, (1 << 24) // id_text.shape[0]))  # torch.quantile takes at most 2**24 elements
    closeness = []
    for chunk in corpus_text.split(rows):
        cosines = chunk @ id_text.T
        value = torch.quantile(cosines, percentile, dim=1)
        closeness.append(value.masked_fill_(cosines.amax(dim=1) > CLOSE_TO_ID, 1.0))
    closeness = torch.cat(closeness)
    chosen = []
    for mask in (~is_adjective, is_adjective):
        indices = mask.nonzero().squeeze(1)
        order = torch.sort(closeness[indices], stable=True).indices[:int(indices.numel() * negative_fraction)]
        chosen.append(indices[order])
    return torch.cat(chosen).cpu()


class CSP:
    """CSP's score; higher = more ID.

    The negatives are ``select_csp_negatives`` of the corpus; the score is NegLabel's grouped score on them
    (``core.neglabel.NegLabel``: the last ``M mod num_groups`` dropped, the rest shuffled by ``seed`` and cut into
    ``num_groups`` groups, the mean ID share of the softmax over [ID | group]) at temperature 1, as the official
    ``t=1``.

    Args:
        id_text: [C, D] L2-normalised ID texts (CSP's prompts: ``openood_tanl.csp.csp_text_bank``).
        corpus_text: [W, D] L2-normalised candidates; is_adjective: [W] bool (None: all nouns).
        logit_scale: CLIP's ``logit_scale.exp()`` (the official code multiplies by 100).
        num_groups: official ``ngroup`` (100); negative_fraction: official ``neg_topk`` (0.15, the share kept of each
            kind); percentile: official ``pencentile`` (0.95); seed: seeds the shuffle into groups.

    ``selected`` ([M] corpus indices, nouns then adjectives) is what ``bank_columns`` holds after the C ID columns.
    """

    hyperparameter_checks = HYPERPARAMETER_CHECKS
    learned_state = ()
    official_names = OFFICIAL_NAMES

    def __init__(self, id_text: torch.Tensor, corpus_text: torch.Tensor, logit_scale: float = 100.0,
                 is_adjective: torch.Tensor | None = None, *, num_groups: int = 100, negative_fraction: float = 0.15,
                 percentile: float = 0.95, seed: int = 0):
        check_same_dim(id_text, corpus_text)
        values = check_hyperparameters(self.hyperparameter_checks, {
            "num_groups": num_groups, "negative_fraction": negative_fraction, "percentile": percentile, "seed": seed},
            "CSP")
        id_text = as_rows("id_text", id_text, owner=self)
        corpus_text = as_rows("corpus_text", corpus_text, id_text.device, owner=self)
        self.negative_fraction, self.percentile = values["negative_fraction"], values["percentile"]
        self.selected = select_csp_negatives(id_text, corpus_text, is_adjective, self.negative_fraction,
                                             self.percentile)
        if self.selected.numel() < values["num_groups"]:
            raise UserError(f"CSP selects {self.selected.numel()} negatives (negative_fraction="
                            f"{self.negative_fraction} of each kind of the {corpus_text.shape[0]} words), fewer than "
                            f"num_groups={values['num_groups']}: lower num_groups or raise negative_fraction")
        negatives = corpus_text.index_select(0, self.selected.to(corpus_text.device))
        self._scorer = NegLabel(id_text, negatives, logit_scale, num_groups=values["num_groups"], seed=values["seed"])
        self.num_groups, self.seed = self._scorer.num_groups, self._scorer.seed
        self.bank_columns = torch.cat([torch.arange(id_text.shape[0]), self.selected + id_text.shape[0]])

    @property
    def device(self) -> torch.device:
        return self._scorer.device

    @property
    def num_classes(self) -> int:
        return self._scorer.num_classes

    def reset(self) -> "CSP":
        return self

    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, D] image embeddings -> (pred [B] long, score [B] float32 in (0, 1))."""
        return self._scorer.step(image_features)

    @torch.no_grad()
    def step_logits(self, features: torch.Tensor, logits: torch.Tensor,
                    softmax=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` on shared work: ``logits`` [B, C + M] = (logit_scale * features) @ [ID | selected].T, only
        read."""
        return self._scorer.step_logits(features, logits)
