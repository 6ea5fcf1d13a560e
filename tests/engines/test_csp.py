"""The CSP engine and its selection, pinned against a literal transcription of the official code."""
import pytest
import torch
import torch.nn.functional as F

from openood_tanl import TextBank, configure, create_engine
from openood_tanl.core.csp import CSP, select_csp_negatives
from openood_tanl.synthetic import make_stream
from reference.official_csp import official_csp_score, official_csp_selection


@pytest.fixture(scope="module")
def raw(synthetic_bank):
    return synthetic_bank(20, 2600, 48, seed=5)


@pytest.fixture(scope="module")
def is_adjective(raw):
    flags = torch.zeros(raw.corpus_text.shape[0], dtype=torch.bool)
    flags[1900:] = True  # nouns first, as CSP's bank holds them
    return flags


def _with_close_words(raw):
    """The corpus with a few words within 0.95 of an ID class (ranked last whatever their quantile)."""
    corpus = raw.corpus_text.clone()
    corpus[[3, 1950]] = F.normalize(raw.id_text[[0, 1]] + 0.05 * raw.corpus_text[[3, 1950]], dim=1)
    return corpus


@pytest.mark.parametrize("neg_topk, pencentile", [(0.15, 0.95), (0.4, 0.5), (1.0, 0.95), (0.001, 0.0)])
def test_selection_equals_the_official(raw, is_adjective, neg_topk, pencentile):
    corpus = _with_close_words(raw)
    expected = official_csp_selection(corpus @ raw.id_text.T, 1900, neg_topk, pencentile)
    got = select_csp_negatives(raw.id_text, corpus, is_adjective, neg_topk, pencentile)
    assert got.tolist() == expected
    if neg_topk == 1.0:  # everything kept: the close words come last of their kind
        assert got[1899] == 3 and got[-1] == 1950


def test_selection_of_interleaved_flags_is_that_of_the_words_sorted_by_kind(raw):
    flags = torch.arange(raw.corpus_text.shape[0]) % 3 == 0
    order = torch.cat([(~flags).nonzero().squeeze(1), flags.nonzero().squeeze(1)])
    by_kind = select_csp_negatives(raw.id_text, raw.corpus_text[order], flags[order], 0.2)
    assert select_csp_negatives(raw.id_text, raw.corpus_text, flags, 0.2).tolist() == order[by_kind].tolist()


def test_counts_are_the_official_int_of_the_share(raw, is_adjective):
    chosen = select_csp_negatives(raw.id_text, raw.corpus_text, is_adjective, 0.15)
    assert int((~is_adjective[chosen]).sum()) == int(1900 * 0.15) and int(is_adjective[chosen].sum()) == int(700 * 0.15)
    assert is_adjective[chosen].tolist() == sorted(is_adjective[chosen].tolist())  # nouns, then adjectives


@pytest.mark.parametrize("neg_topk, num_groups", [(0.15, 100), (0.15, 7), (0.05, 1), (0.3, 64)])
def test_engine_equals_the_official_score(raw, is_adjective, neg_topk, num_groups):
    corpus = _with_close_words(raw)
    features, _, _ = make_stream(raw, 40, 30, seed=2)
    engine = CSP(raw.id_text, corpus, 100.0, is_adjective, num_groups=num_groups, negative_fraction=neg_topk)
    picks = official_csp_selection(corpus @ raw.id_text.T, 1900, neg_topk)
    assert engine.selected.tolist() == picks
    expected = official_csp_score(100.0 * features @ raw.id_text.T, 100.0 * features @ corpus[picks].T, num_groups)
    pred, score = engine.step(features)
    torch.testing.assert_close(score, expected, rtol=0, atol=2e-6)
    assert torch.equal(pred, (features @ raw.id_text.T).argmax(1)) and score.dtype == torch.float32


def test_registry_entry_defaults_names_and_columns(raw, is_adjective):
    method = configure("csp")
    assert method.hyperparameters == {"num_groups": 100, "negative_fraction": 0.15, "percentile": 0.95, "seed": 0}
    official = {name: value.key for name, value in CSP.official_names.items()}
    assert official == {"num_groups": "ngroup", "negative_fraction": "neg_topk", "percentile": "pencentile",
                        "seed": None}
    assert "'seed'" in CSP.official_names["seed"].note
    with pytest.raises(ValueError, match="'pencentile' is the official name of 'percentile'"):
        configure("csp", pencentile=0.9)
    bank = TextBank(raw.id_text, raw.corpus_text, raw.noise_features, 100.0, corpus_is_adjective=is_adjective)
    engine = create_engine("csp", bank)
    classes = raw.id_text.shape[0]
    assert torch.equal(engine.bank_columns, torch.cat([torch.arange(classes), engine.selected + classes]))
    assert engine.selected.numel() == int(1900 * 0.15) + int(700 * 0.15)
    assert engine.learned_state == () and engine.reset() is engine


def test_engine_refuses_fewer_negatives_than_groups(raw):
    with pytest.raises(ValueError, match="fewer than num_groups=100: lower num_groups or raise negative_fraction"):
        CSP(raw.id_text, raw.corpus_text[:300], negative_fraction=0.1)
    with pytest.raises(ValueError, match="negative_fraction must be in"):
        CSP(raw.id_text, raw.corpus_text, negative_fraction=0.0)


def test_a_bank_with_other_prompts_warns(raw):
    bank = TextBank(raw.id_text, raw.corpus_text, raw.noise_features, 100.0,
                    provenance={"prompts": {"templates": "official"}})
    with pytest.warns(UserWarning, match="not CSP's own"):
        create_engine("csp", bank)
