"""The AdaNeg engine against a slow literal reference, and small cases checkable by hand."""
import math

import pytest
import torch
import torch.nn.functional as F

from openood_tanl.core.adaneg import OFFICIAL_NAMES, SCORE_MODES, AdaNeg
from openood_tanl.synthetic import make_stream
from reference.slow_adaneg import SlowAdaNeg


def _run(engine, features, batch_size):
    preds, scores = zip(*(engine.step(batch) for batch in features.split(batch_size)))
    return torch.cat(preds), torch.cat(scores)


def _same_rows(a, b):
    """Equal as sets of rows."""
    if a.shape != b.shape:
        return False
    order = lambda t: t[torch.argsort(t[:, 0])]  # noqa: E731
    return torch.equal(order(a.double()), order(b.double()))


@pytest.fixture(scope="module")
def bank(synthetic_bank):
    return synthetic_bank(num_classes=12, corpus_size=240, dim=32, seed=4)


@pytest.fixture(scope="module")
def stream(bank):
    return make_stream(bank, 330, 170, seed=6)


@pytest.mark.parametrize("params", [
    dict(),                                                        # shipped ImageNet defaults
    dict(memory_length=3),                                         # memories overflow, replacement every batch
    dict(memory_length=4, sample_adaptive=True, sharpness=5.0),    # samada with overflow
    dict(memory_length=2, sample_adaptive=True, sharpness=12.0, score_mode="multiply", mix_weight=1.0),
    dict(gap=0.0, threshold=0.6, num_groups=7, shuffle_groups=False, score_mode="adaonly"),  # 240 % 7 != 0
    dict(memory_length=1, score_mode="vanillaonly"),               # no image is ever stored
])
def test_engine_matches_slow_reference(bank, stream, params):
    features, _, _ = stream
    fast = AdaNeg(bank.id_text, bank.corpus_text, **params)
    slow = SlowAdaNeg(bank.id_text, bank.corpus_text, **params)
    pred, score = _run(fast, features, 50)
    slow_pred, slow_score = _run(slow, features, 50)
    assert score.dtype == torch.float32 and pred.dtype == torch.long
    torch.testing.assert_close(score.double(), slow_score, rtol=0, atol=1e-5)
    assert torch.equal(pred, slow_pred)
    counts = fast.memory_counts
    assert counts.tolist() == [i - 1 for i in slow.index]
    assert int(counts.max()) <= fast.capacity
    for p in counts.nonzero().squeeze(1).tolist():
        assert _same_rows(fast.memory_of(p)[0], slow.memory_of(p))


def test_stream_overflows_the_memory(bank, stream):
    """The overflow case above really replaces: more images are confident than the memories can hold."""
    engine = AdaNeg(bank.id_text, bank.corpus_text, memory_length=3)
    upper, lower = 0.75, 0.25
    offered = 0
    for batch in stream[0].split(50):
        probe = AdaNeg(bank.id_text, bank.corpus_text, score_mode="vanillaonly", memory_length=1)
        text_score = probe.step(batch)[1]
        offered += int(((text_score > upper) | (text_score < lower)).sum())
        engine.step(batch)
    assert offered > 2 * int(engine.memory_counts.sum())
    assert int((engine.memory_counts == 2).sum()) > 10


# --------------------------------------------------------------------------- hand-checkable cases
def _unit(*values):
    return F.normalize(torch.tensor([values], dtype=torch.float32), dim=1)


def test_score_on_a_toy_example():
    """One class, one negative, scale 10. x = (0.8, 0.6, 0): text logits (8, 0), text score sigmoid(8) > 0.75,
    so x is cached under the class; the class proxy becomes (1.8, 0.6, 0)/|.|, x . proxy = 1.8/sqrt(3.6)."""
    id_text, negative = _unit(1, 0, 0), _unit(0, 0, 1)
    engine = AdaNeg(id_text, negative, 10.0, num_groups=1)
    pred, score = engine.step(_unit(0.8, 0.6, 0))
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    expected = sigmoid(10 * 1.8 / math.sqrt(3.6)) + 0.1 * sigmoid(8.0)
    assert pred.tolist() == [0]
    assert score.item() == pytest.approx(expected, abs=1e-6)
    assert engine.memory_counts.tolist() == [1, 0]


def test_toy_example_ood_side_and_no_gate():
    """x near the negative is cached under it; x in the gap (0.25 <= text score <= 0.75) is not cached."""
    id_text, negative = _unit(1, 0, 0), _unit(0, 0, 1)
    engine = AdaNeg(id_text, negative, 10.0, num_groups=1)
    x = _unit(0.6, 0, 0.8)  # text logits (6, 8): text score sigmoid(-2) = 0.12 < 0.25
    _, score = engine.step(x)
    assert engine.memory_counts.tolist() == [0, 1]
    sigmoid = lambda z: 1 / (1 + math.exp(-z))  # noqa: E731
    negative_proxy_cos = (0.8 + 1.0) / math.sqrt(0.36 + 1.8 ** 2)  # x . normalise(n + x)
    assert score.item() == pytest.approx(sigmoid(6 - 10 * negative_proxy_cos) + 0.1 * sigmoid(-2.0), abs=1e-6)
    engine.reset()
    engine.step(_unit(1, 0, 1))  # text logits equal: score 0.5, in the gap
    assert engine.memory_counts.tolist() == [0, 0]


def test_without_memory_the_memory_score_is_the_text_score(bank, stream):
    """memory_length 1 stores nothing: memory proxies = texts, so 'combine' = (1 + lambda) * text score."""
    features = stream[0][:64]
    combined = AdaNeg(bank.id_text, bank.corpus_text, memory_length=1).step(features)[1]
    text = AdaNeg(bank.id_text, bank.corpus_text, memory_length=1, score_mode="vanillaonly").step(features)[1]
    torch.testing.assert_close(combined, 1.1 * text, rtol=1e-6, atol=1e-6)


def _class_zero_images(angles_deg):
    """Images at angle theta from class 0 towards class 1 (classes e1, e2; negative e3): all confidently ID and
    predicted class 0 for theta < 45; the entropy of the ID softmax grows with theta."""
    theta = torch.tensor(angles_deg, dtype=torch.float64) * math.pi / 180
    rows = torch.zeros(len(angles_deg), 4, dtype=torch.float64)
    rows[:, 0], rows[:, 1] = torch.cos(theta), torch.sin(theta)
    return rows.float()


@pytest.fixture()
def two_classes():
    eye = torch.eye(4)
    return eye[:2], eye[2:3]  # id_text e1, e2; negative e3


@pytest.mark.parametrize("batch_size", [1, 2, 5])
def test_fill_and_replacement_order(two_classes, batch_size):
    """memory_length 3 holds 2 images. 30, 10 are appended; 20 replaces 30 (highest entropy, strictly lower);
    5 replaces 20; 25 is worse than both and is dropped. Same memory whatever the batching."""
    id_text, negative = two_classes
    engine = AdaNeg(id_text, negative, 10.0, memory_length=3, num_groups=1)
    angles = [30, 10, 20, 5, 25]
    images = _class_zero_images(angles)
    history = []
    for batch in images.split(batch_size):
        engine.step(batch)
        history.append(engine.memory_counts[0].item())
    held, entropy = engine.memory_of(0)
    assert _same_rows(held, _class_zero_images([5, 10]))
    assert entropy[0] < entropy[1]  # best first
    if batch_size == 1:
        assert history == [1, 2, 2, 2, 2]


def test_equal_entropy_does_not_replace():
    """The rule is strict: a newcomer exactly as uncertain as the worst held image is dropped; one a little more
    certain replaces it. Images (0.8 cos t, 0.8 sin t, 0, 0.6, 0) and (..., 0, 0.6) give identical logits."""
    eye = torch.eye(5)
    engine = AdaNeg(eye[:2], eye[2:3], 10.0, memory_length=3, num_groups=1)

    def image(degrees, free_axis):
        row = torch.zeros(5, dtype=torch.float64)
        row[0], row[1] = 0.8 * math.cos(math.radians(degrees)), 0.8 * math.sin(math.radians(degrees))
        row[free_axis] = 0.6
        return row.float()[None]

    held = torch.cat([image(20, 3), image(10, 3)])
    engine.step(held)
    engine.step(image(20, 4))  # same entropy as the worst held (20 degrees): dropped
    assert _same_rows(engine.memory_of(0)[0], held)
    engine.step(image(19.9, 4))  # lower entropy: replaces the 20-degree image
    assert _same_rows(engine.memory_of(0)[0], torch.cat([image(19.9, 4), image(10, 3)]))


def test_keep_first_without_entropy_replacement(two_classes):
    """replace_by_entropy=False (what the float16 official run does): the first images stay."""
    id_text, negative = two_classes
    engine = AdaNeg(id_text, negative, 10.0, memory_length=3, num_groups=1, replace_by_entropy=False)
    engine.step(_class_zero_images([30, 10, 20, 5, 25]))
    assert _same_rows(engine.memory_of(0)[0], _class_zero_images([30, 10]))


def test_memory_is_filled_before_the_batch_is_scored(two_classes):
    """An image is scored against a memory that already holds it (official order)."""
    id_text, negative = two_classes
    image = _class_zero_images([10])
    learning = AdaNeg(id_text, negative, 10.0, num_groups=1)
    frozen = AdaNeg(id_text, negative, 10.0, num_groups=1, memory_length=1)
    assert learning.step(image)[1].item() > frozen.step(image)[1].item()
    assert learning.memory_counts.tolist() == [1, 0, 0]


# --------------------------------------------------------------------------- state, dtypes, properties
def test_reset_is_deterministic(bank, stream):
    features = stream[0]
    engine = AdaNeg(bank.id_text, bank.corpus_text, memory_length=4, seed=3)
    first = _run(engine, features, 64)
    engine.reset()
    assert int(engine.memory_counts.sum()) == 0
    second = _run(engine, features, 64)
    third = _run(AdaNeg(bank.id_text, bank.corpus_text, memory_length=4, seed=3), features, 64)
    for a, b in ((first, second), (first, third)):
        assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_seed_changes_only_the_grouping(bank, stream):
    features = stream[0][:100]
    a = AdaNeg(bank.id_text, bank.corpus_text, seed=0).step(features)[1]
    b = AdaNeg(bank.id_text, bank.corpus_text, seed=1).step(features)[1]
    c = AdaNeg(bank.id_text, bank.corpus_text, seed=1, num_groups=1).step(features)[1]
    d = AdaNeg(bank.id_text, bank.corpus_text, seed=0, num_groups=1).step(features)[1]
    assert not torch.equal(a, b)
    torch.testing.assert_close(c, d, rtol=0, atol=1e-6)  # one group: the shuffle does not matter


@pytest.mark.filterwarnings("ignore:.*not L2-normalised")  # bf16 rounding moves norms by ~4e-3
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs_are_upcast(bank, stream, dtype):
    features = stream[0][:120]
    low = AdaNeg(bank.id_text.to(dtype), bank.corpus_text.to(dtype), memory_length=3)
    ref = AdaNeg(bank.id_text.to(dtype).float(), bank.corpus_text.to(dtype).float(), memory_length=3)
    for batch in features.split(40):
        pred, score = low.step(batch.to(dtype))
        ref_pred, ref_score = ref.step(batch.to(dtype).float())
        assert score.dtype == torch.float32
        assert torch.equal(pred, ref_pred) and torch.equal(score, ref_score)


def _probe_world(id_weight, negative_weight, count=0):
    """Orthonormal toy world, D = 10: ID classes e0, e1; negatives e2..e6 (one per group with the default 5
    groups); images share the direction e7 (the modality gap) and spread along e8, e9.

    Images are ``id_weight e0 + negative_weight (e2 + ... + e6) + 0.005 e2 + 0.93 e7`` (+ a little spread when
    ``count`` > 0): every group's ID share is about sigmoid(100 (id_weight - negative_weight) / 1.1), and e2 is
    the arg-max negative. Returns (id_text, negatives, probe) when ``count`` is 0, else the images.
    """
    eye = torch.eye(10)
    base = id_weight * eye[0] + negative_weight * eye[2:7].sum(0) + 0.005 * eye[2] + 0.93 * eye[7]
    if count == 0:
        return eye[:2], eye[2:7], F.normalize(base, dim=0)[None]
    g = torch.Generator().manual_seed(0)
    spread = 0.05 * torch.randn(count, 2, generator=g) @ eye[8:10]
    return F.normalize(base + spread, dim=1)


@pytest.mark.parametrize("adaptive", [False, True])
def test_score_falls_when_similar_images_are_learnt_as_ood(adaptive):
    """The probe ties its class e0 with the negatives (text score in the gap). Images like it but leaning to the
    negatives are confidently OOD and cached under e2; e2's proxy then moves towards images like the probe, whose
    score falls (its e2 group share collapses) although its text score is unchanged."""
    id_text, negatives, probe = _probe_world(0.25, 0.25)
    neighbours = _probe_world(0.22, 0.28, count=8)
    text_only = AdaNeg(id_text, negatives, score_mode="vanillaonly", memory_length=1)
    assert bool((text_only.step(neighbours)[1] < 0.25).all())
    assert 0.25 < text_only.step(probe)[1].item() < 0.75
    fresh = AdaNeg(id_text, negatives, sample_adaptive=adaptive)
    taught = AdaNeg(id_text, negatives, sample_adaptive=adaptive)
    taught.step(neighbours)
    assert taught.memory_counts.tolist() == [0, 0, 8, 0, 0, 0, 0]  # memory_length 10 holds 9
    before, after = fresh.step(probe)[1].item(), taught.step(probe)[1].item()
    assert after < before - 0.05
    taught_text = AdaNeg(id_text, negatives, score_mode="vanillaonly")
    taught_text.step(neighbours)
    assert taught_text.step(probe)[1].item() == pytest.approx(text_only.step(probe)[1].item(), abs=1e-7)


@pytest.mark.parametrize("adaptive", [False, True])
def test_score_rises_when_similar_images_are_learnt_as_id(adaptive):
    id_text, negatives, probe = _probe_world(0.25, 0.25)
    neighbours = _probe_world(0.28, 0.22, count=8)
    fresh = AdaNeg(id_text, negatives, sample_adaptive=adaptive)
    taught = AdaNeg(id_text, negatives, sample_adaptive=adaptive)
    taught.step(neighbours)
    assert taught.memory_counts.tolist() == [8, 0, 0, 0, 0, 0, 0]
    assert taught.step(probe)[1].item() > fresh.step(probe)[1].item() + 0.05


# --------------------------------------------------------------------------- API
def test_official_names_cover_the_hyperparameters():
    assert set(OFFICIAL_NAMES) == {"threshold", "gap", "memory_length", "mix_weight", "num_groups",
                                   "shuffle_groups", "sample_adaptive", "sharpness", "score_mode", "seed",
                                   "replace_by_entropy"}
    assert set(SCORE_MODES) == {"combine", "adaonly", "vanillaonly", "multiply"}


@pytest.mark.parametrize("kwargs, error", [
    (dict(score_mode="sum"), ValueError),            # mcm.yml's in_score; the official class rejects it too
    (dict(num_groups=0), ValueError),
    (dict(num_groups=241), ValueError),
    (dict(memory_length=0), ValueError),
    (dict(threshold=1.5), ValueError),
    (dict(mix_weight=-1.0), ValueError),
    (dict(logit_scale=0.0), ValueError),
])
def test_invalid_arguments(bank, kwargs, error):
    with pytest.raises(error):
        AdaNeg(bank.id_text, bank.corpus_text, **kwargs)


def test_invalid_inputs(bank):
    with pytest.raises(ValueError):
        AdaNeg(bank.id_text, bank.corpus_text[:, :16])
    engine = AdaNeg(bank.id_text, bank.corpus_text)
    with pytest.raises(ValueError):
        engine.step(torch.zeros(0, 32))
    with pytest.raises(ValueError):
        engine.step(torch.zeros(2, 16))
    with pytest.raises(ValueError):
        engine.step(torch.full((2, 32), float("nan")))
    with pytest.raises(TypeError):
        engine.step(torch.zeros(2, 32, dtype=torch.long))
