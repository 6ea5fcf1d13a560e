"""Input checks shared by the engines: errors that name the problem and the fix."""
from __future__ import annotations

import torch

__all__ = ["as_rows", "check_batch", "check_int", "check_unit"]


def as_rows(name: str, tensor: torch.Tensor, device: torch.device | None = None) -> torch.Tensor:
    """Check ``tensor`` is a finite 2-D floating matrix and return it in float32 on ``device``."""
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor of shape [rows, dim], got {type(tensor).__name__}")
    if tensor.ndim != 2:
        raise ValueError(f"{name} must be 2-D [rows, dim], got shape {tuple(tensor.shape)}")
    if not tensor.is_floating_point():
        raise TypeError(f"{name} must be floating point (float32/float16/bfloat16), got {tensor.dtype}")
    tensor = tensor.to(device=device, dtype=torch.float32)
    if not bool(torch.isfinite(tensor).all()):
        raise ValueError(f"{name} contains NaN or Inf; check the encoder output (e.g. float16 overflow)")
    return tensor


def check_batch(image_features: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    """A non-empty [B, D] batch of finite image embeddings matching ``text`` [*, D], as float32 on its device."""
    features = as_rows("image_features", image_features, text.device)
    if features.shape[1] != text.shape[1]:
        raise ValueError(f"image_features have dimension {features.shape[1]} but the text bank has "
                         f"{text.shape[1]}; encode images and texts with the same model")
    if features.shape[0] == 0:
        raise ValueError("image_features is an empty batch; pass at least one row")
    return features


def check_int(name: str, value, low: int, high: int | None = None, hint: str = "") -> int:
    if isinstance(value, bool) or not float(value).is_integer():
        raise TypeError(f"{name} must be an integer, got {value!r}")
    value = int(value)
    if value < low or (high is not None and value > high):
        bound = f">= {low}" if high is None else f"in [{low}, {high}]"
        raise ValueError(f"{name} must be {bound}, got {value}" + (f" ({hint})" if hint else ""))
    return value


def check_unit(name: str, value) -> float:
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"{name} must be in [0, 1], got {value}")
    return value
