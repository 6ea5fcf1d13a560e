"""The closed-form score and the threshold search against slow, literal loops."""
import pytest
import torch

from openood_tanl.core.scoring import (
    activation_aware_score,
    grouped_id_share,
    negative_groups,
    otsu_threshold,
    prefix_lengths,
)
from reference.slow_tanl import slow_prefix_score, slow_threshold


@pytest.mark.parametrize("step", [0, 1, 3, 4, 10, 25])
def test_prefix_score_matches_loop_of_softmaxes(step):
    g = torch.Generator().manual_seed(step)
    num_classes, num_negatives = 7, 10  # 10 is not a multiple of 3 or 4: the last prefix is capped at M
    logits = 30 * torch.randn(5, num_classes + num_negatives, generator=g)
    fast = activation_aware_score(logits[:, :num_classes], logits[:, num_classes:], step)
    torch.testing.assert_close(fast, slow_prefix_score(logits, num_classes, step), rtol=0, atol=1e-12)


@pytest.mark.parametrize("step", [1, 4])
def test_prefix_score_with_float32_exponentials_matches_the_loop(step):
    """Rows spanning less than FLOAT32_EXPONENT_RANGE take float32 exponentials: within float32 rounding."""
    g = torch.Generator().manual_seed(step)
    logits = 20 + 6 * torch.rand(16, 7 + 600, generator=g)  # CLIP-like: 100 x cosines of 0.20 .. 0.26
    fast = activation_aware_score(logits[:, :7], logits[:, 7:], step)
    torch.testing.assert_close(fast, slow_prefix_score(logits, 7, step), rtol=2e-6, atol=0)


def test_prefix_score_keeps_terms_float32_would_lose():
    """A negative 105 below its row maximum underflows in float32, yet it decides the first prefix's share (the ID
    logits are as low): such rows take float64 exponentials."""
    logits = torch.tensor([[-100.0, -100.0, -100.0, 5.0, 5.0]])
    fast = activation_aware_score(logits[:, :2], logits[:, 2:], 1)
    torch.testing.assert_close(fast, slow_prefix_score(logits, 2, 1), rtol=0, atol=1e-12)
    assert fast.item() > 2 / 3 / 3  # prefix 1: share 2/3, of three prefixes


@pytest.mark.parametrize("spread", [6.0, 150.0])
def test_grouped_share_matches_a_loop_of_softmaxes(spread):
    g = torch.Generator().manual_seed(int(spread))
    logits = 20 + spread * torch.rand(9, 5 + 40, generator=g)
    groups = negative_groups(40, 4) + 5
    torch.testing.assert_close(grouped_id_share(logits, 5, groups), _slow_grouped_share(logits, 5, groups),
                               rtol=2e-6, atol=0)


def test_grouped_share_keeps_a_group_far_below_the_others():
    """Group 2 sits 105 below group 1 (beyond float32's exponent range from it) and level with the ID logits:
    its share is 1/2, not 1."""
    logits = torch.tensor([[-100.0, -100.0, 5.0, 5.0, -100.0, -100.0]])
    groups = torch.tensor([[2, 3], [4, 5]])
    torch.testing.assert_close(grouped_id_share(logits, 2, groups), _slow_grouped_share(logits, 2, groups),
                               rtol=1e-6, atol=0)
    assert grouped_id_share(logits, 2, groups).item() == pytest.approx(0.25, rel=1e-6)


def _slow_grouped_share(logits, num_classes, groups):
    """Mean over groups of the ID share of a float64 softmax over [ID | group]."""
    ids = torch.arange(num_classes)
    shares = [logits.double()[:, torch.cat([ids, group])].softmax(1)[:, :num_classes].sum(1) for group in groups]
    return torch.stack(shares, 1).mean(1)


def test_prefix_lengths_cap_the_last_prefix():
    assert prefix_lengths(10, 3) == [3, 6, 9, 10]
    assert prefix_lengths(10, 1) == list(range(1, 11))
    assert prefix_lengths(10, 0) == [10]
    assert prefix_lengths(10, 20) == [10]


def test_prefix_score_by_hand():
    # one ID logit 0, negatives 0 and log(3): prefix 1 -> 1/2, prefix 2 -> 1/5; step 1 averages, step 0 takes 1/5
    id_logits = torch.zeros(1, 1)
    negatives = torch.tensor([[0.0, torch.log(torch.tensor(3.0)).item()]])
    assert activation_aware_score(id_logits, negatives, 1).item() == pytest.approx((1 / 2 + 1 / 5) / 2)
    assert activation_aware_score(id_logits, negatives, 0).item() == pytest.approx(1 / 5)


def test_prefix_score_survives_extreme_logits():
    logits = torch.tensor([[200.0, -200.0, 150.0, -300.0]])
    score = activation_aware_score(logits[:, :2], logits[:, 2:], 1)
    assert torch.isfinite(score).all() and 0.99 < score.item() <= 1.0


@pytest.mark.parametrize("seed", range(6))
def test_threshold_matches_grid_loop(seed):
    g = torch.Generator().manual_seed(seed)
    # a bimodal memory, as TANL sees it: ID scores near 1, OOD near 0
    scores = torch.cat([0.9 + 0.1 * torch.rand(300 + 50 * seed, generator=g),
                        0.3 * torch.rand(100 + 40 * seed, generator=g)])
    assert otsu_threshold(scores).item() == slow_threshold(scores)


def test_threshold_takes_the_middle_of_tied_grid_values():
    # two clusters at 0.1 and 0.9: every grid value in (0.1, 0.9] gives the same split -> 0.11 .. 0.90 tie
    scores = torch.tensor([0.1] * 5 + [0.9] * 5)
    expected = slow_threshold(scores)
    assert otsu_threshold(scores).item() == expected
    assert expected == pytest.approx(0.51, abs=1e-6)  # ties are indices 11..90, the middle one (index 40) is 0.51


def test_threshold_when_every_split_is_one_sided():
    # all scores >= 0.99: every grid value puts them on one side, all criteria infinite, middle of 100 is 0.50
    assert otsu_threshold(torch.full((10,), 0.995)).item() == pytest.approx(0.5)
    assert otsu_threshold(torch.full((10,), 0.995)).item() == slow_threshold(torch.full((10,), 0.995))


def test_threshold_single_step_split():
    # scores 0.2 and 0.7 in a 1:3 ratio: any t in (0.2, 0.7] has zero within-class variance
    scores = torch.tensor([0.2, 0.7, 0.7, 0.7])
    assert otsu_threshold(scores).item() == slow_threshold(scores)


@pytest.mark.parametrize("width, count", [(50, 20), (12000, 2500), (3000, 2900)])
def test_gather_columns_is_index_select(width, count):
    from openood_tanl.core.scoring import gather_columns
    from openood_tanl.core.workspace import Workspaces

    matrix = torch.randn(7, width)
    columns = torch.randperm(width)[:count]  # scattered, in no order (both gather paths)
    expected = matrix.index_select(1, columns)
    assert torch.equal(gather_columns(matrix, columns), expected)
    workspaces = Workspaces()
    assert torch.equal(gather_columns(matrix, columns, workspaces, "x"), expected)
    assert torch.equal(gather_columns(matrix[:3], columns, workspaces, "x"), expected[:3])  # reused, smaller batch
