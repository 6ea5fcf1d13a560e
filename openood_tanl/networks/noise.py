"""The noise images whose embeddings seed TANL's OOD memory (as the official network builds them)."""
from __future__ import annotations

import numpy as np
import torch

__all__ = ["noise_images", "NOISE_KINDS"]

NOISE_KINDS = ("gaussian", "uniform", "poisson", "gamma", "salt_and_pepper")


def _min_max(x: np.ndarray) -> np.ndarray:
    return (x - x.min()) / (x.max() - x.min())


def noise_images(image_size: int | tuple[int, int], per_kind: int = 3, seed: int = 0) -> torch.Tensor:
    """[5 * per_kind, 3, H, W] float32 images with values in [0, 1], from a seeded generator.

    ``per_kind`` images each of: Gaussian, uniform, Poisson (rate 5), Gamma (shape 2, scale 1) and salt-and-pepper
    noise; Gaussian, Poisson and Gamma are min-max scaled to [0, 1] over their block, as the official code does.
    The official code feeds them to the image encoder without CLIP's mean/std normalisation.
    """
    height, width = (image_size, image_size) if isinstance(image_size, int) else image_size
    shape = (per_kind, 3, height, width)
    rng = np.random.default_rng(seed)
    blocks = [
        _min_max(rng.standard_normal(shape)),
        rng.random(shape),
        _min_max(rng.poisson(5.0, shape).astype(np.float64)),
        _min_max(rng.gamma(2.0, 1.0, shape)),
        (rng.random(shape) >= 0.5).astype(np.float64),
    ]
    return torch.from_numpy(np.concatenate(blocks)).float()
