"""Closed-form scoring pieces of TANL: the prefix (activation-aware) score and the adaptive threshold.

Pure torch, no state. Shapes use B = batch, C = ID classes, M = ranked negatives.
"""
from __future__ import annotations

import torch

__all__ = ["prefix_lengths", "activation_aware_score", "negative_groups", "grouped_id_share", "otsu_threshold",
           "THRESHOLD_GRID_STEP"]

#: The threshold search visits 0.00, 0.01, ..., 0.99 (float32, as ``torch.arange(0, 1, 0.01)`` makes them).
THRESHOLD_GRID_STEP = 0.01


def prefix_lengths(num_negatives: int, score_step: int) -> list[int]:
    """Prefix lengths n = k, 2k, ... (the last capped at M) averaged by the score; ``[M]`` for step 0.

    ``score_step`` is the official ``gamma``: 0 gives the plain NegLabel sum score, 1 the paper's
    activation-aware score.
    """
    if score_step == 0:
        return [num_negatives]
    return [min(n, num_negatives) for n in range(score_step, num_negatives + score_step, score_step)]


def id_logsumexp(id_logits: torch.Tensor) -> torch.Tensor:
    """[B, C] ID logits -> [B, 1] float64 log-sum-exp, the ID part of every softmax share."""
    return torch.logsumexp(id_logits.double(), dim=1, keepdim=True)


def activation_aware_score(id_logits: torch.Tensor, negative_logits: torch.Tensor, score_step: int, *,
                           id_lse: torch.Tensor | None = None) -> torch.Tensor:
    """Mean ID share of the softmax over [ID | first n ranked negatives], over the prefix lengths n.

    Args:
        id_logits: [B, C] scaled logits against the ID class texts.
        negative_logits: [B, M] scaled logits against the selected negatives, strongest first.
        score_step: prefix step k (official ``gamma``); 0 scores once with all M negatives.
        id_lse: [B, 1] float64 ``logsumexp(id_logits)`` when the caller already has it (one batch, two scores).

    Returns:
        [B] float64 scores in (0, 1); higher = more in-distribution.

    The ID share of a softmax is ``sigmoid(LSE(id) - LSE(neg[:n]))``; every prefix sum comes from one cumulative
    sum of ``exp`` (shifted by the row maximum, in float64), not from a loop of softmaxes.
    """
    if id_lse is None:
        id_lse = id_logsumexp(id_logits)
    negatives = negative_logits.double()
    shift = negatives.amax(dim=1, keepdim=True)
    lengths = prefix_lengths(negatives.shape[1], score_step)
    if score_step == 0 or score_step >= negatives.shape[1]:
        neg_lse = torch.logsumexp(negatives, dim=1, keepdim=True)
    else:
        cumulative = torch.cumsum(torch.exp(negatives - shift), dim=1)  # [B, M]
        columns = torch.tensor(lengths, device=negatives.device) - 1
        neg_lse = torch.log(cumulative.index_select(1, columns)) + shift  # [B, len(lengths)]
    return torch.sigmoid(id_lse - neg_lse).mean(dim=1)


def negative_groups(num_negatives: int, num_groups: int, seed: int = 0, shuffle: bool = True) -> torch.Tensor:
    """NegLabel's grouping of M negatives: [G, M // G] indices into the negatives, on the CPU.

    As the official code: the last ``M % G`` negatives are dropped first, then the rest are permuted
    (``torch.randperm`` seeded with ``seed``, official seed 0) when ``shuffle`` (official ``random_permute``),
    and cut into G equal groups.
    """
    kept = num_negatives - num_negatives % num_groups
    order = torch.randperm(kept, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(kept)
    return order.view(num_groups, kept // num_groups)


def grouped_id_share(logits: torch.Tensor, num_classes: int, group_columns: torch.Tensor) -> torch.Tensor:
    """NegLabel's grouped score: mean over groups of the ID share of the softmax over [ID | group].

    Args:
        logits: [B, P] scaled logits, the first ``num_classes`` columns against the ID classes.
        group_columns: [G, S] column indices of ``logits`` forming each group of negatives.

    Returns:
        [B] float64, higher = more in-distribution. Each share is ``sigmoid(LSE(ID) - LSE(group))``, all groups
        at once.
    """
    id_lse = id_logsumexp(logits[:, :num_classes])  # [B, 1]
    grouped = logits.index_select(1, group_columns.flatten()).view(logits.shape[0], *group_columns.shape)
    return torch.sigmoid(id_lse - torch.logsumexp(grouped.double(), dim=2)).mean(dim=1)


def otsu_threshold(scores: torch.Tensor) -> torch.Tensor:
    """Adaptive threshold of TANL: Otsu-style search over the score memory.

    For each grid value t in 0.00..0.99 the memory splits into "high" (score >= t) and "low"; the criterion is the
    population-weighted within-class variance (infinite when a side is empty). Returns, as a 0-d float32 tensor on
    the scores' device, the middle one (index ``len // 2``) of all grid values that reach the minimum. No host sync.

    Args:
        scores: [S] score memory.
    """
    grid = torch.arange(0, 1, THRESHOLD_GRID_STEP, dtype=torch.float32, device=scores.device)  # [G]
    values = scores.float()
    # bin b(s) = number of grid values <= s, so "s >= grid[j]" <=> b(s) > j.
    bins = torch.bucketize(values, grid, right=True)  # [S] in 0..G
    centred = values.double() - values.double().mean()  # centring keeps sum-of-squares cancellation small
    num_bins = grid.numel() + 1
    count = torch.bincount(bins, minlength=num_bins).double()
    total = torch.bincount(bins, weights=centred, minlength=num_bins)
    squares = torch.bincount(bins, weights=centred * centred, minlength=num_bins)
    # low side of grid j = bins 0..j; high side = bins j+1..G.
    low_count, low_sum, low_squares = (x.cumsum(0)[:-1] for x in (count, total, squares))
    high_count, high_sum, high_squares = (x.sum() - y for x, y in zip((count, total, squares),
                                                                        (low_count, low_sum, low_squares)))
    within = (low_squares - low_sum**2 / low_count.clamp(min=1)) + \
        (high_squares - high_sum**2 / high_count.clamp(min=1))
    criterion = torch.where((low_count > 0) & (high_count > 0), within / values.numel(), torch.inf)
    ties = criterion == criterion.min()
    rank_of_tie = ties.cumsum(0)
    middle = torch.argmax((rank_of_tie == ties.sum() // 2 + 1).int())  # first index holding the middle tie
    return grid[middle]
