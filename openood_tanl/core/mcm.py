"""MCM (Ming et al., NeurIPS 2022): maximum concept matching, the zero-shot CLIP baseline."""
from __future__ import annotations

import torch

from .engine import OfficialName
from .errors import UserError
from .validation import as_rows, check_batch, check_hyperparameters, check_logit_scale, check_real

__all__ = ["MCM", "HYPERPARAMETER_CHECKS", "OFFICIAL_NAMES"]

HYPERPARAMETER_CHECKS = {"temperature": lambda name, value: check_real(name, value, 0.0, low_open=True)}
OFFICIAL_NAMES = {"temperature": OfficialName("tau")}


class MCM:
    """Score = max softmax over the ID classes of ``logit_scale * cos / temperature``; higher = more ID.

    Args:
        id_text: [C, D] L2-normalised ID class text embeddings.
        logit_scale: CLIP's ``logit_scale.exp()`` (100 for OpenAI CLIP).
        temperature: softmax temperature on the scaled logits (official ``tau``; 1 = CLIP's own scale).

    Stateless: ``reset`` does nothing; it exists so every engine shares one interface.
    """

    hyperparameter_checks = HYPERPARAMETER_CHECKS
    learned_state = ()
    official_names = OFFICIAL_NAMES

    def __init__(self, id_text: torch.Tensor, logit_scale: float = 100.0, *, temperature: float = 1.0):
        self.id_text = as_rows("id_text", id_text, owner=self)
        if self.id_text.shape[0] == 0:
            raise UserError("id_text is empty; it needs at least one row")
        self.logit_scale = check_logit_scale(logit_scale)
        self.bank_columns = torch.arange(self.id_text.shape[0])  # the ID columns of a bank (the Engine contract)
        self.temperature = check_hyperparameters(self.hyperparameter_checks, {"temperature": temperature},
                                                 "MCM")["temperature"]

    @property
    def device(self) -> torch.device:
        return self.id_text.device

    @property
    def num_classes(self) -> int:
        return self.id_text.shape[0]

    def reset(self) -> "MCM":
        return self

    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, D] image embeddings -> (pred [B] long, score [B] float32 in (1/C, 1])."""
        features = check_batch(image_features, self.id_text, owner=self)
        return self.step_logits(features, (self.logit_scale * features) @ self.id_text.T)

    @torch.no_grad()
    def step_logits(self, features: torch.Tensor, logits: torch.Tensor,
                    softmax=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``step`` on shared work: ``logits`` [B, C] = (logit_scale * features) @ id_text.T, only read."""
        score, pred = torch.softmax(logits / self.temperature, dim=1).max(dim=1)
        return pred, score
