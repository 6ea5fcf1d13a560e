"""Test doubles: a tiny CLIP-like network that satisfies openood_tanl.protocol.CLIPNetwork."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from openood_tanl.synthetic import make_bank


class TinyCLIPDouble(nn.Module):
    """Random linear image encoder on 3x32x32 images plus a synthetic text bank (C classes, N corpus words)."""

    def __init__(self, num_classes: int = 10, corpus_size: int = 400, dim: int = 32, seed: int = 0):
        super().__init__()
        bank = make_bank(num_classes, corpus_size, dim, seed=seed)
        generator = torch.Generator().manual_seed(seed)
        self.encoder = nn.Linear(3 * 32 * 32, dim)
        with torch.no_grad():
            self.encoder.weight.copy_(torch.randn(dim, 3 * 32 * 32, generator=generator) / 32)
            self.encoder.bias.copy_(bank.image_offset * 2)
        self.register_buffer("id_text_features", bank.id_text)
        self.register_buffer("corpus_text_features", bank.corpus_text)
        self.register_buffer("noise_features", bank.noise_features)
        self.logit_scale = 100.0

    def forward(self, x: torch.Tensor, return_feat: bool = False) -> torch.Tensor:
        features = F.normalize(self.encoder(x.flatten(1).float()), dim=-1)
        if return_feat:
            return features
        return self.logit_scale * features @ self.id_text_features.T
