"""OOD metrics in OpenOOD's definitions, plus the ID-positive FPR@95 of the CLIP-OOD papers.

Scores follow OpenOOD's sign: higher = more in-distribution.
"""
from __future__ import annotations

import numpy as np
from sklearn.metrics import auc, precision_recall_curve, roc_auc_score, roc_curve

from .core.errors import UserError

__all__ = ["ood_metrics", "auroc_and_fpr95", "METRIC_COLUMNS"]

#: Column order of the metric tables (percent).
METRIC_COLUMNS = ("FPR@95", "FPR@95(ID+)", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC")


def _fpr_at_95_tpr(positive: np.ndarray, score: np.ndarray) -> float:
    fpr, tpr, _ = roc_curve(positive, score)
    return float(fpr[np.argmax(tpr >= 0.95)])


def auroc_and_fpr95(score, is_id) -> tuple[float, float]:
    """(AUROC, FPR@95 in OpenOOD's convention), in percent: the two numbers of a stream trace's window."""
    score, is_id = np.asarray(score, dtype=np.float64), np.asarray(is_id, dtype=bool)
    return 100.0 * float(roc_auc_score(is_id, score)), 100.0 * _fpr_at_95_tpr(~is_id, -score)


def ood_metrics(score, is_id, pred=None, label=None) -> dict[str, float]:
    """Metrics in percent for one ID-vs-OOD split.

    Args:
        score: [S] higher = more in-distribution.
        is_id: [S] bool, True for ID samples.
        pred, label: [S] predicted and true ID class (ACC over ID samples); optional.

    Returns:
        ``FPR@95`` (OpenOOD: OOD positive, the share of ID flagged OOD when 95% of OOD is caught),
        ``FPR@95(ID+)`` (MCM/NegLabel/TANL tables: ID positive, the share of OOD kept when 95% of ID is kept),
        ``AUROC``, ``AUPR_IN``, ``AUPR_OUT``, ``ACC`` (NaN without labels).
    """
    score = np.asarray(score, dtype=np.float64)
    is_id = np.asarray(is_id, dtype=bool)
    if score.shape != is_id.shape or score.ndim != 1:
        raise UserError(f"score {score.shape} and is_id {is_id.shape} must be 1-D of the same length")
    if is_id.all() or not is_id.any():
        raise UserError("metrics need both ID and OOD samples; got only " + ("ID" if is_id.all() else "OOD"))
    is_ood = ~is_id
    precision_in, recall_in, _ = precision_recall_curve(is_id, score)
    precision_out, recall_out, _ = precision_recall_curve(is_ood, -score)
    accuracy = float("nan")
    if pred is not None and label is not None:
        accuracy = float(np.mean(np.asarray(pred)[is_id] == np.asarray(label)[is_id]))
    values = {
        "FPR@95": _fpr_at_95_tpr(is_ood, -score),
        "FPR@95(ID+)": _fpr_at_95_tpr(is_id, score),
        "AUROC": float(roc_auc_score(is_id, score)),
        "AUPR_IN": float(auc(recall_in, precision_in)),
        "AUPR_OUT": float(auc(recall_out, precision_out)),
        "ACC": accuracy,
    }
    return {name: 100.0 * value for name, value in values.items()}
