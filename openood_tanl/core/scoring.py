"""Closed-form scoring pieces of TANL: the prefix (activation-aware) score and the adaptive threshold.

Pure torch, no state. Shapes use B = batch, C = ID classes, M = ranked negatives.
"""
from __future__ import annotations

import torch

from .workspace import Workspaces

__all__ = ["prefix_lengths", "activation_aware_score", "literal_activation_aware_score", "shifted_exponentials",
           "negative_groups", "gather_columns",
           "grouped_id_share", "otsu_threshold", "threshold_grid", "THRESHOLD_GRID_STEP", "FLOAT32_EXPONENT_RANGE"]

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
                           id_lse: torch.Tensor | None = None, workspaces: Workspaces | None = None,
                           float32_exponentials: bool | None = None) -> torch.Tensor:
    """Mean ID share of the softmax over [ID | first n ranked negatives], over the prefix lengths n.

    Args:
        id_logits: [B, C] scaled logits against the ID class texts.
        negative_logits: [B, M] scaled logits against the selected negatives, strongest first.
        score_step: prefix step k (official ``gamma``); 0 scores once with all M negatives.
        id_lse: [B, 1] float64 ``logsumexp(id_logits)`` when the caller already has it (one batch, two scores).
        workspaces: where to keep the [B, M] intermediates between calls (fresh memory when None).
        float32_exponentials: whether every row of ``negative_logits`` spans less than ``FLOAT32_EXPONENT_RANGE``,
            when the caller knows it (a bound on wider rows will do); None reads it from the rows (one host sync).

    Returns:
        [B] float64 scores in (0, 1); higher = more in-distribution.

    The ID share of a softmax is ``sigmoid(LSE(id) - LSE(neg[:n]))`` = ``1 / (1 + S_n exp(m - LSE(id)))``, with
    ``S_n`` the prefix sums of ``exp(neg - m)`` (m the row maximum): every prefix comes from one cumulative sum, in
    float64, in place, with no logarithm or sigmoid per prefix (an overflow of the exponential gives the exact
    limit, 0). The exponentials are float32 (``shifted_exponentials``); the sums and the rest float64.
    """
    if id_lse is None:
        id_lse = id_logsumexp(id_logits)
    lengths = prefix_lengths(negative_logits.shape[1], score_step)
    if score_step == 0 or score_step >= negative_logits.shape[1]:
        negatives = _as_float64(negative_logits, "prefix sums", workspaces)
        return torch.sigmoid(id_lse - torch.logsumexp(negatives, dim=1, keepdim=True)).mean(dim=1)
    exponentials, shift = shifted_exponentials(negative_logits, workspaces, "prefix exponentials",
                                               float32=float32_exponentials)
    cumulative = _as_float64(exponentials, "prefix sums", workspaces).cumsum_(dim=1)  # [B, M]: S_n for every n
    if score_step > 1:  # the columns n - 1 of the prefix lengths n = k, 2k, ... (and M, when k does not divide it)
        every_kth = cumulative[:, score_step - 1::score_step]
        cumulative = (torch.cat([every_kth, cumulative[:, -1:]], dim=1) if len(lengths) > every_kth.shape[1]
                      else every_kth.contiguous())
    return cumulative.mul_(torch.exp(shift - id_lse)).add_(1).reciprocal_().mean(dim=1)


def literal_activation_aware_score(logits: torch.Tensor, num_classes: int, score_step: int) -> torch.Tensor:
    """The activation-aware score as the official code computes it, in ``logits``' own dtype: one softmax per
    prefix over [ID | first n negatives], its ID part summed, the prefixes' shares averaged.

    Args:
        logits: [B, C + M] scaled logits, the ranked negatives after the C ID columns (float16 for the official
            fp16 run: each softmax, sum and the mean are then rounded to float16 as there).
        num_classes: C; score_step: prefix step k (official ``gamma``; 0 = one softmax over all M).

    Returns:
        [B] in ``logits``' dtype, higher = more in-distribution. One softmax per prefix: M of them for k = 1.
    """
    if score_step == 0:
        return logits.softmax(dim=-1)[:, :num_classes].sum(dim=-1)
    shares = [logits[:, :num_classes + n].softmax(dim=-1)[:, :num_classes].sum(dim=-1)
              for n in prefix_lengths(logits.shape[1] - num_classes, score_step)]
    return torch.stack(shares, dim=-1).mean(dim=-1)


#: A row whose logits span this much or more takes float64 exponentials: within it, exp(-80) is still a normal
#: float32, so float32 exponentials lose no term that a float64 sum would keep.
FLOAT32_EXPONENT_RANGE = 80.0


def shifted_exponentials(logits: torch.Tensor, workspaces: Workspaces | None = None, name: str = "exponentials",
                         *, float32: bool | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """``exp(logits - m)`` for [R, K] float32 logits, m [R, 1] the row maximum; returns (exponentials, m as
    float64).

    float32 (each term within an ulp or two, at a third of float64's cost) when every row spans less than
    ``FLOAT32_EXPONENT_RANGE``, so that no term underflows; float64 otherwise (in ``name + "/float64"``).
    ``float32`` is that decision when the caller has made it (None: read from the rows, one host sync).
    """
    shift = logits.amax(dim=1, keepdim=True)
    if float32 is None:
        float32 = bool((shift - logits.amin(dim=1, keepdim=True) < FLOAT32_EXPONENT_RANGE).all())
    if float32:
        out = None if workspaces is None else workspaces.get(name, *logits.shape, logits.dtype, logits.device)
        return torch.sub(logits, shift, out=out).exp_(), shift.double()
    shift = shift.double()
    return _as_float64(logits, name + "/float64", workspaces).sub_(shift).exp_(), shift


def negative_groups(num_negatives: int, num_groups: int, seed: int = 0, shuffle: bool = True) -> torch.Tensor:
    """NegLabel's grouping of M negatives: [G, M // G] indices into the negatives, on the CPU.

    As the official code: the last ``M % G`` negatives are dropped first, then the rest are permuted
    (``torch.randperm`` seeded with ``seed``, official seed 0) when ``shuffle`` (official ``random_permute``),
    and cut into G equal groups.
    """
    kept = num_negatives - num_negatives % num_groups
    order = torch.randperm(kept, generator=torch.Generator().manual_seed(seed)) if shuffle else torch.arange(kept)
    return order.view(num_groups, kept // num_groups)


def _as_float64(values: torch.Tensor, name: str, workspaces: Workspaces | None) -> torch.Tensor:
    """A float64 copy of [R, K] ``values``, in the workspace ``name`` when given."""
    if workspaces is None:
        return values.to(torch.float64, copy=True)
    return workspaces.get(name, values.shape[0], values.shape[1], torch.float64, values.device).copy_(values)


def gather_columns(matrix: torch.Tensor, columns: torch.Tensor, workspaces: Workspaces | None = None,
                   name: str = "gathered") -> torch.Tensor:
    """``matrix[:, columns]``: [R, K] -> [R, len(columns)], in the order of ``columns`` (the values of
    ``index_select(1, columns)``, by ``torch.gather``).

    Thousands of columns scattered over a much wider matrix are gathered in ascending order (each row read front
    to back) and then permuted within the small result: about twice as fast on the CPU. With ``workspaces``, the
    result (and that intermediate) live in its buffers ``name`` (and ``name + "/ascending"``).
    """
    rows, width = matrix.shape[0], columns.numel()

    def buffer(suffix: str):
        return None if workspaces is None else workspaces.get(name + suffix, rows, width, matrix.dtype, matrix.device)

    if width < 2048 or matrix.shape[1] < 4 * width:
        return torch.gather(matrix, 1, columns.expand(rows, -1), out=buffer(""))
    ascending, order = torch.sort(columns)
    block = torch.gather(matrix, 1, ascending.expand(rows, -1), out=buffer("/ascending"))
    return torch.gather(block, 1, torch.argsort(order).expand(rows, -1), out=buffer(""))


def grouped_id_share(logits: torch.Tensor, num_classes: int, group_columns: torch.Tensor,
                     workspaces: Workspaces | None = None) -> torch.Tensor:
    """NegLabel's grouped score: mean over groups of the ID share of the softmax over [ID | group].

    Args:
        logits: [B, P] scaled logits, the first ``num_classes`` columns against the ID classes.
        group_columns: [G, S] column indices of ``logits`` forming each group of negatives.
        workspaces: where to keep the [B, G * S] intermediates between calls (fresh memory when None).

    Returns:
        [B] float64, higher = more in-distribution. Each share is ``sigmoid(LSE(ID) - LSE(group))`` =
        ``1 / (1 + E_g exp(m_g - LSE(ID)))`` with ``E_g`` the group's sum of ``exp(x - m_g)``, m_g the group's
        maximum: one float32 exponential per negative (E_g >= 1, so a term float32 loses is below 1e-37 of its
        sum), all groups at once; the sums and the rest in float64.
    """
    id_lse = id_logsumexp(logits[:, :num_classes])  # [B, 1]
    rows = logits.shape[0]
    negatives = gather_columns(logits, group_columns.flatten(), workspaces, "groups")  # [B, G * S]
    grouped = negatives.view(rows, *group_columns.shape)  # [B, G, S]
    shift = grouped.amax(dim=2, keepdim=True)  # [B, G, 1]
    out = None if workspaces is None else workspaces.get("groups/exponentials", rows, negatives.shape[1],
                                                         negatives.dtype, negatives.device)
    exponentials = torch.sub(grouped, shift, out=None if out is None else out.view_as(grouped)).exp_()
    sums = exponentials.sum(dim=2).double()  # [B, G]
    return sums.mul_(torch.exp(shift.squeeze(2).double() - id_lse)).add_(1).reciprocal_().mean(dim=1)


def threshold_grid(device: torch.device | str | None = None) -> torch.Tensor:
    """[G] the grid values 0.00, 0.01, ..., 0.99 of the threshold search (float32, as ``torch.arange(0, 1, 0.01)``)."""
    return torch.arange(0, 1, THRESHOLD_GRID_STEP, dtype=torch.float32, device=device)


def otsu_threshold(scores: torch.Tensor, grid: torch.Tensor | None = None) -> torch.Tensor:
    """Adaptive threshold of TANL: Otsu-style search over the score memory.

    For each grid value t in 0.00..0.99 the memory splits into "high" (score >= t) and "low"; the criterion is the
    population-weighted within-class variance (infinite when a side is empty). Returns, as a 0-d float32 tensor on
    the scores' device, the middle one (index ``len // 2``) of all grid values that reach the minimum. No host sync.

    Args:
        scores: [S] score memory.
        grid: ``threshold_grid(scores.device)``, when the caller keeps it.
    """
    grid = threshold_grid(scores.device) if grid is None else grid  # [G]
    values = scores.float()
    # bin b(s) = number of grid values <= s, so "s >= grid[j]" <=> b(s) > j.
    bins = torch.bucketize(values, grid, right=True)  # [S] in 0..G
    wide = values.double()
    centred = wide - wide.mean()  # centring keeps sum-of-squares cancellation small
    moments = torch.stack([torch.ones_like(centred), centred, centred * centred])  # [3, S]: count, sum, squares
    per_bin = torch.zeros(3, grid.numel() + 1, dtype=torch.float64, device=scores.device).index_add_(1, bins, moments)
    low = per_bin.cumsum(1)[:, :-1]  # [3, G]: grid j's low side = bins 0..j; its high side = bins j+1..G
    count, total, squares = torch.stack([low, per_bin.sum(1, keepdim=True) - low]).unbind(1)  # each [2 sides, G]
    within = (squares - total**2 / count.clamp(min=1)).sum(0)
    criterion = torch.where((count > 0).all(0), within / values.numel(), torch.inf)
    ties = criterion == criterion.min()
    middle = torch.searchsorted(ties.cumsum(0), (ties.sum() // 2).view(1), right=True)  # the middle tie's index
    return grid.index_select(0, middle).squeeze(0)
