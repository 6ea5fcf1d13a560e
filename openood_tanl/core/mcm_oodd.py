"""OODD (Yang et al., CVPR 2025) on the MCM base: OODD's dictionary (``core.oodd``) beside MCM's score of its code."""
from __future__ import annotations

import torch

from .engine import OfficialName
from .mcm import MCM
from .oodd import DICTIONARY_CHECKS, DICTIONARY_OFFICIAL_NAMES, DictionaryEngine, OODDictionary
from .validation import check_hyperparameters, check_real

__all__ = ["MCMOODD", "HYPERPARAMETER_CHECKS", "OFFICIAL_NAMES"]

HYPERPARAMETER_CHECKS = {"temperature": lambda name, value: check_real(name, value, 0.0, low_open=True),
                         **DICTIONARY_CHECKS}
OFFICIAL_NAMES = {"temperature": OfficialName("T", "--T, an int, default 1, on the raw cosines"),
                  **DICTIONARY_OFFICIAL_NAMES}


class MCMOODD(DictionaryEngine):
    """OODD on the MCM base: score = max softmax over the ID classes of ``cos / temperature`` minus the k-th largest
    cosine to the OOD dictionary; higher = more ID.

    The base is OODD's MCM: the softmax of the RAW cosines (``logits / logit_scale``) at T = 1, 100x flatter than
    ``mcm`` (CLIP's scaled logits, as the TANL fork), so the dictionary term dominates the score.

    Args:
        id_text: [C, D] L2-normalised ID class texts; logit_scale: CLIP's ``logit_scale.exp()`` (divided out).
        temperature: official ``T`` (1). queue_size: official 2048; k: official 5 (see ``core.oodd``).

    Stateful like ``OODD``: learned state ``memory_fill`` ((0, rows held)), ``dictionary_scores``.
    """

    hyperparameter_checks = HYPERPARAMETER_CHECKS
    official_names = OFFICIAL_NAMES

    def __init__(self, id_text: torch.Tensor, logit_scale: float = 100.0, *, temperature: float = 1.0,
                 queue_size: int = 2048, k: int = 5):
        values = check_hyperparameters(self.hyperparameter_checks,
                                       {"temperature": temperature, "queue_size": queue_size, "k": k}, "MCMOODD")
        self.temperature, self.queue_size, self.k = values["temperature"], values["queue_size"], values["k"]
        probe = MCM(id_text, logit_scale)  # checks the texts and the scale
        # MCM's softmax of logits / (logit_scale * T) = softmax(cos / T): the official raw-cosine base
        self.base = MCM(probe.id_text, probe.logit_scale, temperature=probe.logit_scale * self.temperature)
        self.logit_scale = self.base.logit_scale
        self.bank_columns = self.base.bank_columns
        self.dictionary = OODDictionary(self.base.id_text.shape[1], self.queue_size, self.k, self.device)

    @property
    def scored_text(self) -> torch.Tensor:
        """[C, D]: the ID texts."""
        return self.base.id_text
