"""MCM (Ming et al., NeurIPS 2022): maximum concept matching, the zero-shot CLIP baseline."""
from __future__ import annotations

import torch

from .validation import as_rows, check_batch

__all__ = ["MCM"]


class MCM:
    """Score = max softmax over the ID classes of ``logit_scale * cos / temperature``; higher = more ID.

    Args:
        id_text: [C, D] L2-normalised ID class text embeddings.
        logit_scale: CLIP's ``logit_scale.exp()`` (100 for OpenAI CLIP).
        temperature: softmax temperature on the scaled logits (official ``tau``; 1 = CLIP's own scale).

    Stateless: ``reset`` does nothing; it exists so every engine shares one interface.
    """

    def __init__(self, id_text: torch.Tensor, logit_scale: float = 100.0, *, temperature: float = 1.0):
        self.id_text = as_rows("id_text", id_text, owner=self)
        self.logit_scale = float(logit_scale)
        if not temperature > 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = float(temperature)

    def reset(self) -> "MCM":
        return self

    @torch.no_grad()
    def step(self, image_features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, D] image embeddings -> (pred [B] long, score [B] float32 in (1/C, 1])."""
        features = check_batch(image_features, self.id_text, owner=self)
        logits = (self.logit_scale * features) @ self.id_text.T
        score, pred = torch.softmax(logits / self.temperature, dim=1).max(dim=1)
        return pred, score
