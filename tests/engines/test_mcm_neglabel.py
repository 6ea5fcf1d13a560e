"""MCM and NegLabel engines and NegLabel's selection on synthetic embeddings, pinned against literal transcriptions
of the official code where it matters."""
import pytest
import torch
import torch.nn.functional as F

from openood_tanl.core.mcm import MCM
from openood_tanl.core.neglabel import NegLabel, select_negative_labels
from openood_tanl.synthetic import make_stream
from reference.official_neglabel import official_neglabel_score, official_selection


@pytest.fixture(scope="module")
def bank(synthetic_bank):
    return synthetic_bank(20, 1000, 48, seed=1)


def test_mcm_is_max_softmax_with_temperature(bank):
    features, _, _ = make_stream(bank, 30, 10, seed=0)
    pred, score = MCM(bank.id_text, 100.0, temperature=2.0).step(features)
    probs = torch.softmax(100.0 * features @ bank.id_text.T / 2.0, dim=1)
    torch.testing.assert_close(score, probs.max(1).values)
    assert torch.equal(pred, probs.argmax(1))


def test_mcm_separates_id_from_far_ood(bank):
    features, is_id, _ = make_stream(bank, 300, 100, seed=0)
    _, score = MCM(bank.id_text).step(features)
    assert score[is_id].mean() > score[~is_id].mean()


def test_neglabel_score_falls_when_an_image_matches_a_negative_label(bank):
    engine = NegLabel(bank.id_text, bank.corpus_text[:200], 100.0, num_groups=1)
    id_image = F.normalize(bank.image_offset + bank.id_text[3], dim=0)
    matching_negative = F.normalize(bank.image_offset + bank.id_text[3] + 1.5 * bank.corpus_text[17], dim=0)
    _, scores = engine.step(torch.stack([id_image, matching_negative]))
    assert scores[1] < scores[0] - 0.1


@pytest.mark.parametrize("num_negatives, num_groups", [(103, 4), (1000, 7), (999, 100), (500, 100)])
def test_neglabel_equals_the_official_score_when_m_is_not_a_multiple_of_the_groups(bank, num_negatives, num_groups):
    features, _, _ = make_stream(bank, 40, 24, seed=2)
    negatives = bank.corpus_text[:num_negatives]
    engine = NegLabel(bank.id_text, negatives, 100.0, num_groups=num_groups, seed=0)
    logits = 100.0 * features @ torch.cat([bank.id_text, negatives]).T
    expected = official_neglabel_score(logits, bank.id_text.shape[0], num_groups)
    torch.testing.assert_close(engine.step(features)[1], expected, rtol=0, atol=2e-6)


def test_neglabel_grouping_by_hand(bank):
    features, _, _ = make_stream(bank, 8, 4, seed=0)
    negatives = bank.corpus_text[:103]  # 103 = 4 groups of 25 + 3 dropped
    engine = NegLabel(bank.id_text, negatives, 100.0, num_groups=4, seed=5)
    order = torch.randperm(100, generator=torch.Generator().manual_seed(5)).view(4, 25)  # the last 3 dropped first
    logits_id = 100.0 * features @ bank.id_text.T
    expected = torch.stack([torch.softmax(torch.cat([logits_id, 100.0 * features @ negatives[g].T], 1).double(),
                                          1)[:, :20].sum(1) for g in order], 1).mean(1)
    torch.testing.assert_close(engine.step(features)[1], expected.float(), rtol=0, atol=1e-6)


def test_selection_keeps_the_farthest_words_in_proportion():
    id_text = F.normalize(torch.eye(4, 8)[:, :], dim=1)  # 4 classes on the first 4 axes
    # 6 nouns and 4 adjectives; similarity to the ID classes grows with the index
    corpus = []
    for i in range(10):
        v = torch.zeros(8)
        v[i % 4] = i / 10
        v[7] = 1.0
        corpus.append(F.normalize(v, dim=0))
    corpus = torch.stack(corpus)
    is_adjective = torch.tensor([False] * 6 + [True] * 4)
    chosen = select_negative_labels(id_text, corpus, is_adjective, num_negatives=5, percentile=0.95)
    # int(5 * 4 / 10) = 2 adjectives (6, 7: the farthest), then 3 nouns (0, 1, 2)
    assert chosen.tolist() == [6, 7, 0, 1, 2]


def test_selection_adjective_share_is_the_official_formula():
    # 58 adjectives of 200 words: int(100 * 58 / 200) = 29, but the official int(100 * (58 / 200)) = 28
    torch.manual_seed(0)
    id_text = F.normalize(torch.randn(30, 16), dim=1)
    corpus = F.normalize(torch.randn(200, 16), dim=1)
    is_adjective = torch.zeros(200, dtype=torch.bool)
    is_adjective[torch.randperm(200)[:58]] = True
    chosen = select_negative_labels(id_text, corpus, is_adjective, num_negatives=100)
    assert int(is_adjective[chosen].sum()) == 28
    for total in (1, 7, 50, 100, 133, 199):
        assert chosen.new_tensor(official_selection(corpus @ id_text.T, is_adjective, total)).tolist() == \
            select_negative_labels(id_text, corpus, is_adjective, num_negatives=total).tolist()


def test_selection_rejects_bad_sizes(bank):
    with pytest.raises(ValueError, match="num_negatives must be in"):
        select_negative_labels(bank.id_text, bank.corpus_text, torch.zeros(1000, dtype=torch.bool), 1001)
    with pytest.raises(ValueError, match="one flag per corpus word"):
        select_negative_labels(bank.id_text, bank.corpus_text, torch.zeros(3, dtype=torch.bool), 10)
