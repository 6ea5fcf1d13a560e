"""OODD (NegLabel base ``oodd``, MCM base ``mcm_oodd``): the engines equal the literal transcription of the official
loop batch by batch, and the dictionary keeps what it says (size, lowest scores, ties, reset, resume)."""
import io
import math

import numpy as np
import pytest
import torch

from openood_tanl import MCMOODD, OODD, TextBank, configure, create_engine
from openood_tanl.core.oodd import OODDictionary, select_oodd_negatives
from openood_tanl.synthetic import make_stream
from reference.official_oodd import (
    official_oodd_mcm_base,
    official_oodd_neglabel_base,
    official_oodd_scores,
    official_oodd_selection,
)

BATCHES = (64, 64, 13, 64, 64, 64, 31)  # the official loop's 64, a short last batch


@pytest.fixture(scope="module")
def raw(synthetic_bank):
    return synthetic_bank(12, 900, 32, seed=5)


@pytest.fixture(scope="module")
def bank(raw):
    is_adjective = torch.zeros(900, dtype=torch.bool)
    is_adjective[700:] = True  # a corpus laid out [nouns | adjectives], as the official one
    return TextBank(raw.id_text, raw.corpus_text, raw.noise_features, 100.0, corpus_is_adjective=is_adjective)


@pytest.fixture(scope="module")
def features(raw):
    return make_stream(raw, 260, 104, signal=0.5, seed=6)[0]


def _engine_scores(engine, features, batches=BATCHES):
    engine.reset()
    return [engine.step(batch)[1] for batch in features.split(list(batches))]


def test_the_selection_is_oodds_copy_of_neglabel(bank):
    chosen = select_oodd_negatives(bank.id_text_features, bank.corpus_text_features, bank.corpus_is_adjective)
    expected = official_oodd_selection(bank.corpus_text_features, bank.id_text_features, 700)
    assert chosen.tolist() == expected
    assert len(chosen) == int(700 * 0.15) + int(200 * 0.15)  # 105 nouns, then 30 adjectives
    registry = create_engine("oodd", bank, num_groups=10)
    assert registry.bank_columns[12:].tolist() == [index + 12 for index in expected]


def test_oodd_equals_the_official_loop_batch_by_batch(raw, bank, features):
    """At logit scale 30 every base score of the stream is distinct (at 100 many round to 1.0 in float32, and
    the official heap's order among ties is its own): the queue is then compared exactly."""
    scaled = TextBank(raw.id_text, raw.corpus_text, raw.noise_features, 30.0,
                      corpus_is_adjective=bank.corpus_is_adjective)
    engine = create_engine("oodd", scaled, num_groups=10, queue_size=150)
    chosen = engine.bank_columns[12:] - 12
    numpy_features = features.numpy()
    official_base = official_oodd_neglabel_base(numpy_features, scaled.id_text_features,
                                                scaled.corpus_text_features[chosen], 10, scale=30.0)
    base = torch.cat([engine.base.step(batch)[1] for batch in features.split(64)]).numpy()
    np.testing.assert_allclose(base, official_base, rtol=0, atol=1e-6)
    assert len(np.unique(base)) == len(base)
    for official in (official_base, base):  # the official base, and ours through the official queue
        expected = official_oodd_scores(numpy_features, official, 64, queue_size=150, k=5)
        got = _engine_scores(engine, features, [64] * 5 + [44])
        for index, (mine, theirs) in enumerate(zip(got, expected)):
            assert mine.dtype == torch.float32
            np.testing.assert_allclose(mine.numpy(), theirs, rtol=0, atol=1e-6, err_msg=f"batch {index}")
    assert engine.memory_fill == (0, 150)


@pytest.mark.parametrize("temperature", [1.0, 2.0])
def test_mcm_oodd_equals_the_official_loop_batch_by_batch(bank, features, temperature):
    engine = create_engine("mcm_oodd", bank, queue_size=100, k=3, temperature=temperature)
    numpy_features = features.numpy()
    base = official_oodd_mcm_base(numpy_features, bank.id_text_features, temperature)
    expected = official_oodd_scores(numpy_features, base, 64, queue_size=100, k=3)
    got = _engine_scores(engine, features, [64] * 5 + [44])
    for index, (mine, theirs) in enumerate(zip(got, expected)):
        np.testing.assert_allclose(mine.numpy(), theirs, rtol=0, atol=1e-6, err_msg=f"batch {index}")


def test_the_mcm_base_is_the_raw_cosine_softmax(bank, features):
    """T = 1 on the raw cosines (in [-1, 1]): every base score below e^2 / (e^2 + C - 1), far flatter than mcm's."""
    engine = create_engine("mcm_oodd", bank)
    engine.step(features[:64])
    held = engine.dictionary_scores
    assert float(held.max()) < math.exp(2) / (math.exp(2) + 11) and float(held.min()) > 1 / 12
    mcm = create_engine("mcm", bank).step(features[:64])[1]
    assert float(mcm.max() - mcm.min()) > 10 * float(held.max() - held.min())


@pytest.mark.parametrize("name, args", [("oodd", {"num_groups": 10}), ("mcm_oodd", {})])
def test_the_dictionary_holds_the_lowest_base_scores_and_never_more_than_its_size(bank, features, name, args):
    engine = create_engine(name, bank, queue_size=90, **args)
    batches = list(features.split(list(BATCHES)))
    for batch in batches:
        engine.step(batch)
        assert engine.memory_fill[0] == 0 and engine.memory_fill[1] <= 90
    assert engine.memory_fill == (0, 90)
    everything = torch.cat([engine.base.step(batch)[1] for batch in batches])  # the base engine is stateless
    assert torch.equal(engine.dictionary_scores.sort().values, everything.sort().values[:90])
    held = engine.dictionary.features  # and the features are those rows', in stream order
    lowest = torch.sort(everything, stable=True).indices[:90].sort().values
    assert torch.equal(held, features[lowest])


def test_each_batch_enters_before_it_is_scored(bank, features):
    """A first batch of one row with k = 1: its own cosine (1) is its nearest neighbour's."""
    engine = create_engine("mcm_oodd", bank, k=1)
    pred, score = engine.step(features[:1])
    base = official_oodd_mcm_base(features[:1].numpy(), bank.id_text_features)
    assert abs(float(score) - (base[0] - 1.0)) < 1e-6
    assert engine.memory_fill == (0, 1)


def test_k_is_capped_at_the_fill_where_the_official_code_fails(bank, features):
    engine = create_engine("mcm_oodd", bank, k=5)
    engine.step(features[:2])  # two held rows: the 2nd largest (the smallest) cosine is subtracted
    expected = official_oodd_scores(features[:2].numpy(),
                                    official_oodd_mcm_base(features[:2].numpy(), bank.id_text_features), 2, k=2)
    engine.reset()
    np.testing.assert_allclose(engine.step(features[:2])[1].numpy(), expected[0], atol=1e-6)


def test_equal_scores_leave_earliest_first():
    dictionary = OODDictionary(6, 3, 1, torch.device("cpu"))
    rows = torch.eye(6)  # row i is tagged by its one-hot position

    def held() -> list[int]:
        return dictionary.features.argmax(dim=1).tolist()

    dictionary.add(rows[:4], torch.tensor([0.5, 0.25, 0.5, 0.5]))
    assert held() == [1, 2, 3]  # the first 0.5 (row 0) left
    dictionary.add(rows[4:], torch.tensor([0.5, 0.125]))
    assert held() == [1, 4, 5]  # then the next earliest 0.5s (rows 2, 3)
    assert dictionary.scores.tolist() == [0.25, 0.5, 0.125]


@pytest.mark.parametrize("name, args", [("oodd", {"num_groups": 10}), ("mcm_oodd", {})])
def test_reset_is_a_fresh_engine(bank, features, name, args):
    used = create_engine(name, bank, queue_size=70, **args)
    _engine_scores(used, features)
    again = _engine_scores(used, features)
    fresh = _engine_scores(create_engine(name, bank, queue_size=70, **args), features)
    assert all(torch.equal(a, b) for a, b in zip(again, fresh))


@pytest.mark.parametrize("name, args", [("oodd", {"num_groups": 10}), ("mcm_oodd", {})])
def test_a_resumed_stream_continues_bitwise(bank, features, name, args):
    batches = list(features.split(list(BATCHES)))
    original = create_engine(name, bank, queue_size=70, **args)
    for batch in batches[:3]:
        original.step(batch)
    buffer = io.BytesIO()
    torch.save(original.state_dict(), buffer)
    buffer.seek(0)
    resumed = create_engine(name, bank, queue_size=70, **args).load_state_dict(torch.load(buffer, weights_only=True))
    for batch in batches[3:]:
        (p1, s1), (p2, s2) = original.step(batch), resumed.step(batch)
        assert torch.equal(p1, p2) and torch.equal(s1, s2)
        assert torch.equal(original.dictionary_scores, resumed.dictionary_scores)
    with pytest.raises(ValueError, match="built the same way"):
        create_engine(name, bank, queue_size=10, **args).load_state_dict(original.state_dict())


def test_official_names_and_shipped_defaults():
    assert configure("oodd").hyperparameters == {"negative_fraction": 0.15, "percentile": 0.95, "num_groups": 100,
                                                 "seed": 0, "queue_size": 2048, "k": 5}
    assert configure("mcm_oodd").hyperparameters == {"temperature": 1.0, "queue_size": 2048, "k": 5}
    assert OODD.official_names["queue_size"].key == "queue_size" and OODD.official_names["k"].key == "K"
    assert OODD.official_names["num_groups"].key == "ngroup"
    assert MCMOODD.official_names["temperature"].key == "T"
    with pytest.raises(ValueError, match="official name of 'negative_fraction'"):
        configure("oodd", neg_topk=0.2)
    for bad in ({"queue_size": 0}, {"k": 0}, {"negative_fraction": 0.0}):
        with pytest.raises(ValueError):
            configure("oodd", **bad)
