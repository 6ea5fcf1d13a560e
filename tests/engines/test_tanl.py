"""The TANL engine against the slow literal reference, plus its documented behaviours."""
import pytest
import torch

from helpers.dispatch import count_dispatch
from openood_tanl import TANL
from openood_tanl.synthetic import make_bank, make_stream
from reference.slow_tanl import SlowTANL


@pytest.fixture(scope="module")
def bank():
    return make_bank(num_classes=30, corpus_size=1500, dim=48, seed=3)


def _run(engine, features, batch_size):
    preds, scores, thresholds, selections = [], [], [], []
    for batch in features.split(batch_size):
        pred, score = engine.step(batch)
        preds.append(pred)
        scores.append(score)
        thresholds.append(engine.threshold)
        selections.append(engine.selected.clone())
    return torch.cat(preds), torch.cat(scores), thresholds, selections


@pytest.mark.parametrize("params", [
    dict(num_negatives=100, memory_length=300, gap=0.2, alpha=0.95, score_step=1),   # paper defaults, no overflow
    dict(num_negatives=100, memory_length=12, gap=0.2, alpha=0.95, score_step=1),    # queues overflow every batch
    dict(num_negatives=77, memory_length=40, gap=0.5, alpha=0.0, score_step=0),      # authors' script, sum score
    dict(num_negatives=50, memory_length=25, gap=0.3, alpha=0.5, score_step=3, score_memory_length=150),
])
def test_engine_matches_slow_reference(bank, params):
    features, _, _ = make_stream(bank, 400, 150, seed=5)
    fast = TANL(bank.id_text, bank.corpus_text, bank.noise_features, seed=7, **params)
    slow = SlowTANL(bank.id_text, bank.corpus_text, bank.noise_features, seed=7, **params)
    pred, score, thresholds, selections = _run(fast, features, 50)
    slow_pred, slow_score, slow_thresholds, slow_selections = _run(slow, features, 50)
    assert torch.equal(pred, slow_pred)
    assert thresholds == slow_thresholds
    torch.testing.assert_close(score, slow_score, rtol=0, atol=1e-6)
    for got, want in zip(selections, slow_selections):
        assert torch.equal(got, want)


def test_scores_separate_id_from_ood(bank):
    features, is_id, labels = make_stream(bank, 600, 200, seed=1)
    pred, score, _, _ = _run(TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=100), features, 64)
    assert score[is_id].mean() > score[~is_id].mean() + 0.3  # higher = more in-distribution
    assert (pred[is_id] == labels[is_id]).float().mean() > 0.8


def test_empty_side_blends_memory_alone(bank):
    """With gap 1 no sample is ever confident: the selection stays the initial one, memories never change."""
    engine = TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=60, gap=1.0)
    initial_selection, initial_sizes = engine.selected.clone(), engine.memory_fill
    features, _, _ = make_stream(bank, 100, 50, seed=2)
    _run(engine, features, 32)
    assert torch.equal(engine.selected, initial_selection)
    assert engine.memory_fill == initial_sizes


def test_alpha_one_ignores_the_batch_for_selection(bank):
    """alpha = 1 keeps the memory mean: the selection scoring a batch is the one from the memories alone."""
    engine = TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=60, alpha=1.0)
    features, _, _ = make_stream(bank, 100, 50, seed=2)
    before = engine.selected.clone()
    engine.step(features[:64])
    assert torch.equal(engine.selected, before)  # first batch: memories are still the initial ones


def test_reset_is_deterministic_and_seeded(bank):
    features, _, _ = make_stream(bank, 200, 100, seed=4)
    # memory_length < num_classes: the seed decides which shuffled ID rows survive the cut
    engine = TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=60, memory_length=10, seed=1)
    first = _run(engine, features, 40)[1]
    engine.reset()
    assert torch.equal(_run(engine, features, 40)[1], first)
    twin = _run(TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=60, memory_length=10,
                     seed=1), features, 40)[1]
    assert torch.equal(twin, first)
    other = _run(TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=60, memory_length=10,
                      seed=2), features, 40)[1]
    assert not torch.equal(other, first)


def test_initial_state(bank):
    engine = TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=60, memory_length=20)
    assert engine.memory_fill == (20, bank.noise_features.shape[0])
    assert engine.selected.shape == (60,) and engine.selected.dtype == torch.long
    assert len(set(engine.selected.tolist())) == 60
    assert engine.threshold != engine.threshold  # NaN before the first step
@pytest.mark.filterwarnings("ignore:.*not L2-normalised")  # bf16 rounding moves norms by ~4e-3
def test_low_precision_inputs_are_computed_in_float32(bank):
    features, _, _ = make_stream(bank, 64, 0, seed=1)
    full = TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=60)
    half = TANL(bank.id_text.half(), bank.corpus_text.half(), bank.noise_features.half(), num_negatives=60)
    _, score_full = full.step(features)
    pred, score_half = half.step(features.bfloat16())
    assert score_half.dtype == torch.float32 and pred.dtype == torch.long
    torch.testing.assert_close(score_half, score_full, rtol=0, atol=0.05)


@pytest.mark.parametrize("kwargs, message", [
    (dict(num_negatives=0), "num_negatives must be in [1, 1500]"),
    (dict(num_negatives=1501), "corpus has 1500 words"),
    (dict(memory_length=0), "memory_length must be >= 1"),
    (dict(gap=1.5), "gap must be in [0, 1]"),
    (dict(alpha=-0.1), "alpha must be in [0, 1]"),
    (dict(score_step=-1), "score_step must be >= 0"),
    (dict(score_step=1.5), "score_step must be an integer"),
    (dict(logit_scale=0.0), "logit_scale must be a positive"),
])
def test_bad_hyperparameters_are_named(bank, kwargs, message):
    with pytest.raises((ValueError, TypeError), match=message.replace("[", r"\[").replace("]", r"\]")):
        TANL(bank.id_text, bank.corpus_text, bank.noise_features, **kwargs)


def test_bad_features_are_named(bank):
    engine = TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=60)
    with pytest.raises(ValueError, match="dimension 47 but the text bank has 48"):
        engine.step(torch.randn(4, 47))
    with pytest.raises(ValueError, match="NaN or Inf"):
        engine.step(torch.full((2, 48), float("nan")))
    with pytest.raises(ValueError, match="empty batch"):
        engine.step(torch.empty(0, 48))
    with pytest.raises(ValueError, match="embedding dimensions differ"):
        TANL(bank.id_text, bank.corpus_text[:, :10], bank.noise_features)


@pytest.mark.parametrize("preset", [dict(gap=0.2, alpha=0.95), dict(gap=0.5, alpha=0.0)], ids=["tanl", "tanl_official"])
@pytest.mark.parametrize("score_step", [1, 0, 3])
def test_a_step_is_a_few_dozen_ops_and_two_host_reads(bank, preset, score_step):
    """Steady state (memories full): the batch's norm and logit extremes, then the confident-row counts; nothing
    else is read back, and the op count (kernel launches on a GPU) stays what the method needs."""
    engine = TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=100, memory_length=60,
                  score_step=score_step, **preset)
    features, _, _ = make_stream(bank, 300, 100, seed=2)
    batches = features.split(64)
    for batch in batches[:-1]:
        engine.step(batch)
    ops, syncs = count_dispatch(lambda: engine.step(batches[-1]))
    assert syncs <= 2 and ops <= 120, (ops, syncs)
