"""Replaying test streams of cached embeddings through a stateful engine (the paper's mixed protocol)."""
from __future__ import annotations

import torch

from .metrics import ood_metrics

__all__ = ["score_stream", "evaluate_mixed"]


@torch.no_grad()
def score_stream(engine, features: torch.Tensor, batch_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Feed ``features`` [S, D] to ``engine.step`` in order, ``batch_size`` rows at a time.

    Returns (pred [S] long, score [S] float32) on the CPU.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    preds, scores = [], []
    for batch in features.split(batch_size):
        pred, score = engine.step(batch)
        preds.append(pred.cpu())
        scores.append(score.cpu())
    return torch.cat(preds), torch.cat(scores)


def evaluate_mixed(engine, id_features: torch.Tensor, ood_features: torch.Tensor, *, batch_size: int = 256,
                   seed: int = 0, id_labels: torch.Tensor | None = None) -> dict[str, float]:
    """Reset ``engine``, score one seeded shuffle of ID and OOD embeddings, and return the metrics (percent)."""
    engine.reset()
    features = torch.cat([id_features, ood_features])
    is_id = torch.cat([torch.ones(len(id_features), dtype=torch.bool), torch.zeros(len(ood_features), dtype=torch.bool)])
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
    pred, score = score_stream(engine, features[order], batch_size)
    restore = torch.argsort(order)
    pred, score = pred[restore], score[restore]
    labels = None
    if id_labels is not None:
        labels = torch.cat([id_labels.cpu(), torch.full((len(ood_features),), -1, dtype=torch.long)]).numpy()
    return ood_metrics(score.numpy(), is_id.numpy(), pred.numpy(), labels)
