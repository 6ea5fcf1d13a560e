"""The L2 policy shared by every engine (openood_tanl.core.validation): off-norm rows are normalised with one
warning per engine and input, zero rows are refused, normalised inputs are untouched."""
import re
import warnings

import pytest
import torch
import torch.nn.functional as F

from openood_tanl import TANL
from openood_tanl.core import MCM, AdaNeg, NegLabel
from openood_tanl.core.validation import NORM_TOLERANCE, NormalisationWarning, as_rows
from openood_tanl.synthetic import make_bank, make_stream

BANK = make_bank(10, 300, 16, seed=0)
FEATURES = make_stream(BANK, 90, 30, seed=1)[0]
SCALES = torch.linspace(0.5, 3.0, 300)[:, None]  # rows of every norm from 0.5 to 3


def tanl(id_text=BANK.id_text, corpus=BANK.corpus_text, noise=BANK.noise_features):
    return TANL(id_text, corpus, noise, num_negatives=50, memory_length=20, score_memory_length=500)


ENGINES = {
    "tanl": (lambda id_text, negatives: TANL(id_text, negatives, BANK.noise_features, num_negatives=50,
                                             memory_length=20)),
    "mcm": (lambda id_text, negatives: MCM(id_text)),
    "neglabel": (lambda id_text, negatives: NegLabel(id_text, negatives, num_groups=5)),
    "adaneg": (lambda id_text, negatives: AdaNeg(id_text, negatives, memory_length=3)),
}


def _run(engine, batches):
    outputs = [engine.step(batch) for batch in batches]
    return torch.cat([p for p, _ in outputs]), torch.cat([s for _, s in outputs])


def _norm_warnings(record):
    return [str(w.message) for w in record if issubclass(w.category, NormalisationWarning)]


def test_the_warning_names_the_input_the_norm_range_and_the_fix():
    engine = tanl()
    with pytest.warns(NormalisationWarning) as record:
        engine.step(FEATURES[:40] * SCALES[:40])
    (message,) = _norm_warnings(record)
    assert message.startswith("image_features rows are not L2-normalised")
    low, high = (float(x) for x in re.search(r"row norms in \[([0-9.e+-]+), ([0-9.e+-]+)\]", message).groups())
    norms = (FEATURES[:40] * SCALES[:40]).norm(dim=1)
    assert low == pytest.approx(float(norms.min()), rel=1e-5) and high == pytest.approx(float(norms.max()), rel=1e-5)
    assert "pass F.normalize(x, dim=-1)" in message


def test_the_warning_is_given_once_per_engine_and_input():
    engine = tanl()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for batch in FEATURES.split(30):
            engine.step(2 * batch)
        tanl().step(2 * FEATURES[:30])  # another engine warns again
        TANL(2 * BANK.id_text, BANK.corpus_text, BANK.noise_features, num_negatives=50)
    messages = _norm_warnings(record)
    assert [m.split()[0] for m in messages] == ["image_features", "image_features", "id_text"]


@pytest.mark.parametrize("name", list(ENGINES))
def test_unnormalised_inputs_give_the_results_of_normalised_ones(name):
    build = ENGINES[name]
    id_text, negatives = BANK.id_text * SCALES[:10], BANK.corpus_text * SCALES
    batches = [FEATURES[:50] * SCALES[:50], FEATURES[50:] * 7.0]
    with pytest.warns(NormalisationWarning) as record:
        pred, score = _run(build(id_text, negatives), batches)
    warned = {m.split()[0] for m in _norm_warnings(record)}
    assert {"id_text", "image_features"} <= warned
    with warnings.catch_warnings():
        warnings.simplefilter("error", NormalisationWarning)  # normalised inputs: no warning at all
        ref_pred, ref_score = _run(build(F.normalize(id_text, dim=-1), F.normalize(negatives, dim=-1)),
                                   [F.normalize(b, dim=-1) for b in batches])
    assert torch.equal(pred, ref_pred) and torch.equal(score, ref_score)


def test_rows_within_tolerance_are_left_untouched():
    rows = F.normalize(torch.randn(50, 16, generator=torch.Generator().manual_seed(0)), dim=-1)
    nudged = rows * (1 + 0.9 * NORM_TOLERANCE)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NormalisationWarning)
        assert as_rows("x", nudged) is nudged  # no copy, no change
    with pytest.warns(NormalisationWarning):
        out = as_rows("x", rows * (1 + 1.1 * NORM_TOLERANCE))
    assert torch.equal(out, F.normalize(rows * (1 + 1.1 * NORM_TOLERANCE), dim=-1))


@pytest.mark.parametrize("where", ["id_text", "corpus_text", "noise_features", "image_features"])
def test_a_zero_row_is_refused_with_its_name(where):
    inputs = {"id_text": BANK.id_text.clone(), "corpus_text": BANK.corpus_text.clone(),
              "noise_features": BANK.noise_features.clone(), "image_features": FEATURES[:8].clone()}
    inputs[where][3] = 0
    with pytest.raises(ValueError, match=rf"{where} has 1 zero row\(s\) \(e.g. row 3"):
        tanl(inputs["id_text"], inputs["corpus_text"], inputs["noise_features"]).step(inputs["image_features"])


def test_nan_is_still_named_before_anything_else():
    batch = FEATURES[:4].clone()
    batch[1, 2] = float("nan")
    with pytest.raises(ValueError, match="image_features contains NaN or Inf"):
        tanl().step(batch)
    batch[1, 2] = float("inf")
    with pytest.raises(ValueError, match="contains NaN or Inf"):
        tanl().step(batch)


def test_huge_and_tiny_rows_are_normalised_without_overflow():
    rows = torch.cat([FEATURES[:3] * 1e30, FEATURES[3:6] * 1e-30])  # squared norms over- / underflow float32
    with pytest.warns(NormalisationWarning):
        out = as_rows("x", rows)
    torch.testing.assert_close(out, F.normalize(FEATURES[:6].double(), dim=-1).float(), rtol=0, atol=1e-6)


def test_a_batch_of_one_works():
    engine, ref = tanl(), tanl()
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        for row in FEATURES[:5]:
            pred, score = engine.step(3 * row[None])
            ref_pred, ref_score = ref.step(F.normalize(3 * row[None], dim=-1))
            assert pred.shape == score.shape == (1,)
            assert torch.equal(pred, ref_pred) and torch.equal(score, ref_score)
    assert len(_norm_warnings(record)) == 1


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_inputs(dtype):
    # normalised in float32, stored in low precision: the dtype never matters, only the values (upcast first).
    # bfloat16 rounding moves norms by up to ~4e-3 (> 1e-3): those rows are renormalised, with the warning.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore" if dtype == torch.bfloat16 else "error", NormalisationWarning)
        low = tanl(BANK.id_text.to(dtype), BANK.corpus_text.to(dtype), BANK.noise_features.to(dtype))
        ref = tanl(BANK.id_text.to(dtype).float(), BANK.corpus_text.to(dtype).float(),
                   BANK.noise_features.to(dtype).float())
        for batch in FEATURES.split(40):
            pred, score = low.step(batch.to(dtype))
            ref_pred, ref_score = ref.step(batch.to(dtype).float())
            assert score.dtype == torch.float32
            assert torch.equal(pred, ref_pred) and torch.equal(score, ref_score)
    # unnormalised low-precision rows: normalised after the upcast, with the warning
    with pytest.warns(NormalisationWarning, match="image_features"):
        pred, score = tanl().step((5 * FEATURES[:40]).to(dtype))
    ref_pred, ref_score = tanl().step(F.normalize((5 * FEATURES[:40]).to(dtype).float(), dim=-1))
    assert torch.equal(pred, ref_pred) and torch.equal(score, ref_score)


def test_float16_normalised_rows_pass_silently():
    rows = F.normalize(torch.randn(2000, 512, generator=torch.Generator().manual_seed(0)), dim=-1)
    with warnings.catch_warnings():
        warnings.simplefilter("error", NormalisationWarning)
        as_rows("x", rows.half())
        as_rows("x", F.normalize(rows.half(), dim=-1))
