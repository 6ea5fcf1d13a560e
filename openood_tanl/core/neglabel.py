"""NegLabel (Jiang et al., ICLR 2024): negative-label selection and the grouped NegLabel score."""
from __future__ import annotations

import torch

from .engine import OfficialName, check_bank_columns
from .errors import UserError
from .scoring import grouped_id_share, negative_groups
from .validation import (
    as_rows,
    check_batch,
    check_hyperparameters,
    check_int,
    check_logit_scale,
    check_real,
    check_same_dim,
    check_seed,
)
from .workspace import Workspaces

__all__ = ["NegLabel", "adjective_flags", "select_negative_labels", "official_corpus_layout", "OFFICIAL_LAYOUT",
           "OFFICIAL_NAMES",
           "HYPERPARAMETER_CHECKS", "SELECTION_CHECKS", "SELECTION_OFFICIAL_NAMES", "SELECTION_DEFAULTS"]

#: The engine's hyperparameters (``num_groups`` is also bounded by the number of negatives).
HYPERPARAMETER_CHECKS = {"num_groups": lambda name, value: check_int(name, value, 1),
                         "seed": lambda name, value: check_seed(value)}
#: NegLabel's selection (``select_negative_labels``; ``num_negatives`` is also bounded by the corpus size).
SELECTION_CHECKS = {"num_negatives": lambda name, value: check_int(name, value, 1),
                    "percentile": lambda name, value: check_real(name, value, 0.0, 1.0)}

#: The engine's hyperparameters -> NegLabel's official names; the selection's likewise.
OFFICIAL_NAMES = {"num_groups": OfficialName("ngroup"), "seed": OfficialName(None, "hard-coded 0")}
SELECTION_OFFICIAL_NAMES = {"num_negatives": OfficialName("ood_number"), "percentile": OfficialName("pct", "0.95")}
#: The selection's defaults (NegLabel's: 10,000 negatives, the 95th percentile).
SELECTION_DEFAULTS = {"num_negatives": 10000, "percentile": 0.95}
#: The selection that comes first in the official network's corpus layout (``ood_number`` 10,000 in every TANL
#: script, the 0.95 percentile): ``official_corpus_layout``'s defaults.
OFFICIAL_LAYOUT = {"num_negatives": 10000, "percentile": 0.95}


@torch.no_grad()
def adjective_flags(is_adjective, corpus_text: torch.Tensor) -> torch.Tensor:
    """``is_adjective`` as a [W] bool tensor on ``corpus_text``'s device, one flag per corpus row, or a UserError."""
    flags = torch.as_tensor(is_adjective, dtype=torch.bool, device=corpus_text.device)
    if flags.shape != (corpus_text.shape[0],):
        raise UserError(f"is_adjective must have one flag per corpus word ({corpus_text.shape[0]}), "
                        f"got shape {tuple(flags.shape)}")
    return flags


def _closeness(id_text: torch.Tensor, corpus_text: torch.Tensor, percentile: float, chunk_size: int) -> torch.Tensor:
    """[W]: each candidate's ``percentile`` similarity to the ID texts, the element at index ``int(C * percentile)``
    of its ascending cosine similarities (the inputs checked)."""
    percentile = check_real("percentile", percentile, 0.0, 1.0)
    if percentile == 1.0:
        raise UserError("percentile must be below 1 (the similarity rank int(C * percentile) must exist)")
    rank = int(id_text.shape[0] * percentile) + 1  # kthvalue is 1-based
    return torch.cat([torch.kthvalue(chunk @ id_text.T, rank, dim=1).values for chunk in corpus_text.split(chunk_size)])


def _ranked_kinds(id_text, corpus_text, is_adjective, percentile, chunk_size):
    """(adjectives, nouns): the corpus indices of each kind from farthest to nearest the ID texts (a stable sort:
    ties in corpus order)."""
    closeness = _closeness(id_text, corpus_text, percentile, chunk_size)
    ranked = []
    for mask in (is_adjective, ~is_adjective):
        indices = mask.nonzero().squeeze(1)
        ranked.append(indices[torch.sort(closeness[indices], stable=True).indices])
    return ranked


@torch.no_grad()
def select_negative_labels(id_text: torch.Tensor, corpus_text: torch.Tensor, is_adjective: torch.Tensor,
                           num_negatives: int = 10000, percentile: float = 0.95,
                           chunk_size: int = 8192) -> torch.Tensor:
    """NegLabel's selection: the corpus words farthest from the ID classes, nouns and adjectives in proportion.

    For each candidate, its ``percentile`` similarity to the ID texts is the element at index
    ``int(C * percentile)`` of its ascending cosine similarities; the candidates with the lowest values are kept:
    ``int(M * (A / (A + N)))`` adjectives (the division first, in floating point, as the official
    ``get_selected_ood_text_list``) and the rest nouns (A, N = adjective and noun counts).

    Args:
        id_text: [C, D] L2-normalised ID class texts.
        corpus_text: [W, D] L2-normalised candidate words.
        is_adjective: [W] bool.
        num_negatives: M (official ``ood_number``, 10,000).

    Returns:
        [M] LongTensor of corpus indices: adjectives then nouns, each from farthest to nearest.
    """
    id_text = as_rows("id_text", id_text)
    corpus_text = as_rows("corpus_text", corpus_text, id_text.device)
    is_adjective = adjective_flags(is_adjective, corpus_text)
    num_negatives = check_int("num_negatives", num_negatives, 1, corpus_text.shape[0],
                              hint=f"the corpus has {corpus_text.shape[0]} words")
    adjectives, nouns = _ranked_kinds(id_text, corpus_text, is_adjective, percentile, chunk_size)
    adjective_count = int(num_negatives * (len(adjectives) / corpus_text.shape[0]))
    noun_count = num_negatives - adjective_count
    if noun_count > len(nouns):
        raise UserError(f"the corpus has {len(nouns)} nouns, fewer than the {noun_count} NegLabel's proportion "
                        "asks for; lower num_negatives")
    return torch.cat([adjectives[:adjective_count], nouns[:noun_count]])


@torch.no_grad()
def official_corpus_layout(id_text: torch.Tensor, corpus_text: torch.Tensor, is_adjective: torch.Tensor,
                           num_negatives: int = OFFICIAL_LAYOUT["num_negatives"],
                           percentile: float = OFFICIAL_LAYOUT["percentile"], chunk_size: int = 8192) -> torch.Tensor:
    """The corpus in the order the official network lays it out (``text_features_all``): NegLabel's selection of
    ``num_negatives`` (official ``ood_number``, 10,000 in every TANL script), then the unselected words, each part
    adjectives then nouns from farthest to nearest the ID texts.

    Args as ``select_negative_labels`` (a corpus smaller than ``num_negatives`` is laid out whole).

    Returns:
        [W] LongTensor: a permutation of the corpus indices.
    """
    id_text = as_rows("id_text", id_text)
    corpus_text = as_rows("corpus_text", corpus_text, id_text.device)
    is_adjective = adjective_flags(is_adjective, corpus_text)
    num_negatives = min(check_int("num_negatives", num_negatives, 1), corpus_text.shape[0])
    adjectives, nouns = _ranked_kinds(id_text, corpus_text, is_adjective, percentile, chunk_size)
    adjective_count = int(num_negatives * (len(adjectives) / corpus_text.shape[0]))
    noun_count = min(num_negatives - adjective_count, len(nouns))
    return torch.cat([adjectives[:adjective_count], nouns[:noun_count], adjectives[adjective_count:],
                      nouns[noun_count:]])


class NegLabel:
    """The NegLabel score with its grouping strategy; higher = more ID.

    As the official code, the last ``M mod num_groups`` negatives are dropped, the rest shuffled by a generator
    seeded with ``seed`` and split into ``num_groups`` equal groups (``scoring.negative_groups``); the score is the
    mean over groups of the ID share of the softmax over [ID | group].

    Args:
        id_text: [C, D] L2-normalised ID class texts.
        negative_text: [M, D] L2-normalised negative-label texts (e.g. from ``select_negative_labels``).
        logit_scale: CLIP's ``logit_scale.exp()``.
        bank_columns: [C + M] the columns of a text bank's [ID | corpus] logits that [ID | negatives] are (the
            ``Engine`` contract); None: the negatives are the bank's whole corpus.
        num_groups: official ``ngroup`` (1 = no grouping).
        seed: seeds the shuffle into groups.
    """

    hyperparameter_checks = HYPERPARAMETER_CHECKS
    learned_state = ()
    official_names = OFFICIAL_NAMES

    def __init__(self, id_text: torch.Tensor, negative_text: torch.Tensor, logit_scale: float = 100.0,
                 bank_columns: torch.Tensor | None = None, *, num_groups: int = 100, seed: int = 0):
        check_same_dim(id_text, negative_text)
        self.id_text = as_rows("id_text", id_text, owner=self)
        self.negative_text = as_rows("negative_text", negative_text, self.id_text.device, owner=self)
        self.logit_scale = check_logit_scale(logit_scale)
        self.num_groups = check_int("num_groups", num_groups, 1, self.negative_text.shape[0],
                                    hint=f"there are {self.negative_text.shape[0]} negatives")
        values = check_hyperparameters(self.hyperparameter_checks, {"num_groups": num_groups, "seed": seed},
                                       "NegLabel")
        self.seed = values["seed"]
        groups = negative_groups(self.negative_text.shape[0], self.num_groups, self.seed)
        self._group_columns = (groups + self.id_text.shape[0]).to(self.id_text.device)  # columns of [ID | negatives]
        self._text = torch.cat([self.id_text, self.negative_text])
        self.bank_columns = check_bank_columns(bank_columns, self._text.shape[0], "NegLabel")
        self._workspaces = Workspaces()

    @property
    def device(self) -> torch.device:
        return self.id_text.device

    @property
    def num_classes(self) -> int:
        return self.id_text.shape[0]

    def reset(self) -> "NegLabel":
        return self

    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, D] image embeddings -> (pred [B] long, score [B] float32 in (0, 1))."""
        features = check_batch(image_features, self._text, owner=self)
        return self.step_logits(features, (self.logit_scale * features) @ self._text.T)

    @torch.no_grad()
    def step_logits(self, features: torch.Tensor, logits: torch.Tensor,
                    softmax=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` on shared work: ``logits`` [B, C + M] = (logit_scale * features) @ [ID | negatives].T, only
        read."""
        num_classes = self.id_text.shape[0]
        score = grouped_id_share(logits, num_classes, self._group_columns, self._workspaces)
        return logits[:, :num_classes].argmax(dim=1), score.float()
