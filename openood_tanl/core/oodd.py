"""OODD (Yang et al., CVPR 2025): a per-stream dictionary of the most OOD-like test features, on a NegLabel base.

The dictionary (``OODDictionary``) holds at most ``queue_size`` image features, those with the lowest base scores
seen in the stream; each batch enters it *before* it is scored, so a row can be its own neighbour. The score is
the base score minus the k-th largest cosine of the row to the held features: near many OOD-like features = lower.

The NegLabel base (``OODD``, registered ``oodd``) scores against negatives chosen by OODD's copy of NegLabel
(``select_oodd_negatives``: ``int(fraction * N)`` nouns and ``int(fraction * A)`` adjectives by the linear
``percentile`` quantile of their cosines to the ID texts, [nouns | adjectives]); the MCM base is ``core.mcm_oodd``.
"""
from __future__ import annotations

import torch

from .engine import OfficialName
from .errors import UserError
from .neglabel import HYPERPARAMETER_CHECKS as NEGLABEL_CHECKS
from .neglabel import OFFICIAL_NAMES as NEGLABEL_OFFICIAL_NAMES
from .neglabel import NegLabel, adjective_flags
from .validation import as_rows, check_batch, check_hyperparameters, check_int, check_real

__all__ = ["OODD", "DictionaryEngine", "OODDictionary", "select_oodd_negatives", "DICTIONARY_CHECKS",
           "DICTIONARY_OFFICIAL_NAMES", "HYPERPARAMETER_CHECKS", "OFFICIAL_NAMES", "SELECTION_CHECKS",
           "SELECTION_OFFICIAL_NAMES", "SELECTION_DEFAULTS"]

#: The dictionary's hyperparameters (both OODD bases).
DICTIONARY_CHECKS = {"queue_size": lambda name, value: check_int(name, value, 1),
                     "k": lambda name, value: check_int(name, value, 1)}
DICTIONARY_OFFICIAL_NAMES = {
    "queue_size": OfficialName("queue_size", "hard-coded 2048 in tools/ood_test.py / eval_ood_detection.py"),
    "k": OfficialName("K", "batched_matrix_multiply(..., 5): the k-th largest cosine"),
}
HYPERPARAMETER_CHECKS = {**NEGLABEL_CHECKS, **DICTIONARY_CHECKS}
OFFICIAL_NAMES = {**NEGLABEL_OFFICIAL_NAMES, **DICTIONARY_OFFICIAL_NAMES}

#: OODD's NegLabel selection (``select_oodd_negatives``).
SELECTION_CHECKS = {"negative_fraction": lambda name, value: check_real(name, value, 0.0, 1.0, low_open=True),
                    "percentile": lambda name, value: check_real(name, value, 0.0, 1.0)}
SELECTION_OFFICIAL_NAMES = {"negative_fraction": OfficialName("neg_topk", "0.15"),
                            "percentile": OfficialName("pencentile", "0.95")}
SELECTION_DEFAULTS = {"negative_fraction": 0.15, "percentile": 0.95}


@torch.no_grad()
def select_oodd_negatives(id_text: torch.Tensor, corpus_text: torch.Tensor, is_adjective: torch.Tensor,
                          negative_fraction: float = 0.15, percentile: float = 0.95,
                          chunk_size: int = 1000) -> torch.Tensor:
    """OODD's NegLabel selection (its ``CLIPScalableClassifier``): per kind, the words farthest from the ID texts.

    A word's closeness is ``torch.quantile`` (linear interpolation) at ``percentile`` of its [C] cosines to the ID
    texts; nouns and adjectives are ranked apart, ascending (ties in corpus order), keeping ``int(N * fraction)``
    nouns and ``int(A * fraction)`` adjectives (official ``neg_topk``): 10,499 of NegLabel's 70,000 words.

    Returns:
        [int(N f) + int(A f)] LongTensor of corpus indices: nouns then adjectives, each farthest first.
    """
    id_text = as_rows("id_text", id_text)
    corpus_text = as_rows("corpus_text", corpus_text, id_text.device)
    is_adjective = adjective_flags(is_adjective, corpus_text)
    negative_fraction = SELECTION_CHECKS["negative_fraction"]("negative_fraction", negative_fraction)
    percentile = SELECTION_CHECKS["percentile"]("percentile", percentile)
    closeness = torch.cat([torch.quantile(chunk @ id_text.T, percentile, dim=1)
                           for chunk in corpus_text.split(chunk_size)])
    chosen = []
    for mask in (~is_adjective, is_adjective):
        indices = mask.nonzero().squeeze(1)
        count = int(len(indices) * negative_fraction)
        chosen.append(indices[torch.sort(closeness[indices], stable=True).indices[:count]])
    chosen = torch.cat(chosen)
    if chosen.numel() == 0:
        raise UserError(f"negative_fraction {negative_fraction:g} of {corpus_text.shape[0]} corpus words selects "
                        "no negative; raise negative_fraction or use a larger corpus")
    return chosen


class OODDictionary:
    """OODD's queue: at most ``queue_size`` [D] features, those of the lowest base scores seen since ``reset``.

    ``add(features [B, D], scores [B])`` keeps the ``queue_size`` lowest of held + new (as the official priority
    queue evicting its highest score after each insertion; among equal scores the earliest-inserted leaves first:
    the official heap's order among ties depends on its layout and is not reproduced); ``kth_similarity(features)``
    is each row's k-th largest cosine to the held features (k capped at the fill, where the official code fails).
    Rows are held in insertion order.
    """

    def __init__(self, dim: int, queue_size: int, k: int, device: torch.device):
        self.dim, self.queue_size, self.k, self.device = int(dim), int(queue_size), int(k), device
        self.reset()

    def reset(self) -> "OODDictionary":
        self.features = torch.empty(0, self.dim, dtype=torch.float32, device=self.device)
        self.scores = torch.empty(0, dtype=torch.float32, device=self.device)
        return self

    @property
    def fill(self) -> int:
        return self.features.shape[0]

    def add(self, features: torch.Tensor, scores: torch.Tensor) -> None:
        held = torch.cat([self.features, features])
        values = torch.cat([self.scores, scores.to(torch.float32)])
        if held.shape[0] > self.queue_size:
            # lowest first; the stable sort of the reversed rows keeps the later-inserted among equal scores
            lowest = torch.sort(values.flip(0), stable=True).indices[: self.queue_size]
            keep = torch.sort(held.shape[0] - 1 - lowest).values
            held, values = held.index_select(0, keep), values.index_select(0, keep)
        self.features, self.scores = held, values

    def kth_similarity(self, features: torch.Tensor) -> torch.Tensor:
        """[B, D] -> [B] float32: the k-th largest of each row's cosines to the held rows (official layout: the
        [Q, B] product of the held rows by the batch, its k-th largest per column)."""
        similarities = self.features @ features.T
        k = min(self.k, self.fill)
        return torch.kthvalue(similarities, self.fill - k + 1, dim=0).values

    def state_dict(self) -> dict:
        return {"features": self.features.clone(), "scores": self.scores.clone()}

    def load_state_dict(self, state: dict) -> "OODDictionary":
        features = state["features"]
        if features.ndim != 2 or features.shape[1] != self.dim or features.shape[0] > self.queue_size:
            raise UserError(f"the state holds {tuple(features.shape)} features; this engine holds at most "
                            f"{self.queue_size} of dimension {self.dim}: load it into one built the same way")
        self.features = features.to(self.device, torch.float32).clone()
        self.scores = state["scores"].to(self.device, torch.float32).clone()
        return self


class DictionaryEngine:
    """OODD's dictionary around a base engine (``base``: NegLabel for ``OODD``, MCM for ``MCMOODD``): each batch
    enters the dictionary, then scores base score - k-th largest cosine to the held features; higher = more ID.
    Subclasses set ``base``, ``dictionary`` and ``scored_text`` (the [*, D] texts of the base's logits)."""

    learned_state = ("memory_fill", "dictionary_scores")
    base: object
    dictionary: "OODDictionary"

    @property
    def scored_text(self) -> torch.Tensor:
        raise NotImplementedError

    @property
    def device(self) -> torch.device:
        return self.base.device

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    @property
    def memory_fill(self) -> tuple[int, int]:
        return 0, self.dictionary.fill

    @property
    def dictionary_scores(self) -> torch.Tensor:
        return self.dictionary.scores

    def reset(self):
        self.dictionary.reset()
        return self

    def state_dict(self) -> dict:
        """The stream state (the held features and scores); ``load_state_dict`` continues the stream bitwise."""
        return self.dictionary.state_dict()

    def load_state_dict(self, state: dict):
        self.dictionary.load_state_dict(state)
        return self

    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, D] image embeddings -> (pred [B] long, score [B] float32); the batch enters the dictionary first."""
        text = self.scored_text
        features = check_batch(image_features, text, owner=self)
        return self.step_logits(features, (self.logit_scale * features) @ text.T)

    @torch.no_grad()
    def step_logits(self, features: torch.Tensor, logits: torch.Tensor,
                    softmax=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` on shared work: ``logits`` = (logit_scale * features) @ ``scored_text``.T, only read."""
        pred, base = self.base.step_logits(features, logits)
        self.dictionary.add(features, base)
        return pred, base - self.dictionary.kth_similarity(features)


class OODD(DictionaryEngine):
    """OODD on the NegLabel base: score = NegLabel grouped score - k-th largest cosine to the OOD dictionary;
    higher = more ID.

    Args:
        id_text: [C, D] and negative_text: [M, D] L2-normalised texts (``select_oodd_negatives``' choice).
        logit_scale: CLIP's ``logit_scale.exp()`` (official 100).
        bank_columns: [C + M] columns of a bank's [ID | corpus] logits (the ``Engine`` contract).
        num_groups: official ``ngroup`` (100); seed: the grouping's shuffle (official hard-coded 0).
        queue_size: the dictionary's size (official hard-coded 2048); k: the neighbour rank (official 5).

    Stateful: the dictionary is reset per stream. Learned state: ``memory_fill`` ((0, rows held): the dictionary
    holds OOD-like rows), ``dictionary_scores`` ([fill] base scores held).
    """

    hyperparameter_checks = HYPERPARAMETER_CHECKS
    official_names = OFFICIAL_NAMES

    def __init__(self, id_text: torch.Tensor, negative_text: torch.Tensor, logit_scale: float = 100.0,
                 bank_columns: torch.Tensor | None = None, *, num_groups: int = 100, seed: int = 0,
                 queue_size: int = 2048, k: int = 5):
        values = check_hyperparameters(DICTIONARY_CHECKS, {"queue_size": queue_size, "k": k}, "OODD")
        self.base = NegLabel(id_text, negative_text, logit_scale, bank_columns, num_groups=num_groups, seed=seed)
        self.num_groups, self.seed, self.logit_scale = self.base.num_groups, self.base.seed, self.base.logit_scale
        self.queue_size, self.k = values["queue_size"], values["k"]
        self.bank_columns = self.base.bank_columns
        self.dictionary = OODDictionary(self.base.id_text.shape[1], self.queue_size, self.k, self.device)

    @property
    def scored_text(self) -> torch.Tensor:
        """[C + M, D]: the ID texts and the negatives."""
        return self.base._text
