"""``negmining``: what ranks the corpus for NegLabel's selection and TANL's corpus layout (the official code uses
OpenAI ViT-B/16 whatever the backbone), on tiny random models: the network's own texts by default, another model's
by name."""
import pytest
import torch

open_clip = pytest.importorskip("open_clip")

import openood_tanl  # noqa: E402
from helpers.tiny_clip import TINY_MODEL, make_tiny_checkpoint  # noqa: E402
from openood_tanl.core.errors import UserError, UserTypeError  # noqa: E402
from openood_tanl.core.neglabel import official_corpus_layout, select_negative_labels  # noqa: E402
from openood_tanl.networks import create_network, plan_text_bank  # noqa: E402

CLASSES = ["golden retriever", "tabby cat", "red fox", "school bus", "pizza"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """(own checkpoint, another model's checkpoint, corpus folder, cache)."""
    own = make_tiny_checkpoint(tmp_path_factory.mktemp("own"), seed=0)
    other = make_tiny_checkpoint(tmp_path_factory.mktemp("other"), seed=5)
    corpus = tmp_path_factory.mktemp("corpus")
    (corpus / "nouns.txt").write_text("\n".join(f"noun{i}" for i in range(150)) + "\n")
    (corpus / "adjectives.txt").write_text("\n".join(f"adj{i}" for i in range(50)) + "\n")
    return own, other, corpus, tmp_path_factory.mktemp("cache")


@pytest.fixture(scope="module")
def networks(setup):
    """(own network, the other model's network, the own network ranked by the other model)."""
    own, other, corpus, cache = setup
    build = lambda weights, **kw: create_network(TINY_MODEL, str(weights), CLASSES, corpus, "cpu", cache, **kw)[0]  # noqa: E731
    return build(own), build(other), build(own, negmining=f"{TINY_MODEL}:{other}")


def test_the_default_ranks_with_the_network_s_own_texts(networks):
    plain, _, _ = networks
    assert plain.negmining_text is None and openood_tanl.TextBank.of(plain).negmining_text is None
    assert plain.provenance["negmining"] == {"source": "own"}
    engine = openood_tanl.create_engine("tanl", plain, num_negatives=40, memory_length=20)
    assert engine.bank_columns is None  # the corpus in its own order


def test_another_model_s_texts_rank_the_corpus(networks, setup):
    plain, other, ranked = networks
    torch.testing.assert_close(ranked.negmining_text[0], other.id_text_features, rtol=0, atol=0)
    torch.testing.assert_close(ranked.negmining_text[1], other.corpus_text_features, rtol=0, atol=0)
    torch.testing.assert_close(ranked.corpus_text_features, plain.corpus_text_features, rtol=0, atol=0)  # own texts
    record = ranked.provenance["negmining"]
    assert record["source"] == f"{TINY_MODEL}:{setup[1]}" and record["backbone"] == TINY_MODEL
    assert record["pretrained"]["file"] == str(setup[1]) and record["tanl_layout"] == {"num_negatives": 10000,
                                                                                        "percentile": 0.95}
    assert record["prompts"] == {"classes": ["The nice {}."], "nouns": ["The nice {}."],
                                 "adjectives": ["This is a {} photo."]}


def test_neglabel_and_adaneg_select_by_the_ranking_model(networks):
    plain, other, ranked = networks
    flags = plain.corpus_is_adjective
    by_other = select_negative_labels(other.id_text_features, other.corpus_text_features, flags, 60)
    by_own = select_negative_labels(plain.id_text_features, plain.corpus_text_features, flags, 60)
    assert set(by_other.tolist()) != set(by_own.tolist())  # the test can tell the two rankings apart
    classes = len(CLASSES)
    for name in ("neglabel", "adaneg"):
        engine = openood_tanl.create_engine(name, openood_tanl.TextBank.of(ranked), num_negatives=60, num_groups=3)
        assert engine.bank_columns[classes:].tolist() == (by_other + classes).tolist(), name
        plain_engine = openood_tanl.create_engine(name, plain, num_negatives=60, num_groups=3)
        assert plain_engine.bank_columns[classes:].tolist() == (by_own + classes).tolist(), name


def test_official_layout_puts_the_selection_first(networks):
    plain, other, _ = networks
    flags = plain.corpus_is_adjective
    layout = official_corpus_layout(other.id_text_features, other.corpus_text_features, flags, num_negatives=60)
    assert sorted(layout.tolist()) == list(range(len(flags)))  # a permutation
    assert layout[:60].tolist() == select_negative_labels(other.id_text_features, other.corpus_text_features, flags,
                                                          60).tolist()
    rest = layout[60:]
    assert flags[rest].tolist() == sorted(flags[rest].tolist(), reverse=True)  # unselected adjectives, then nouns
    whole = official_corpus_layout(other.id_text_features, other.corpus_text_features, flags)  # 10,000 > corpus
    assert whole.tolist() == select_negative_labels(other.id_text_features, other.corpus_text_features, flags,
                                                    len(flags)).tolist()


@pytest.mark.parametrize("name, precision", [("tanl", "fp32"), ("tanl_official", "fp32"), ("tanl", "official-fp16")])
def test_tanl_scores_the_corpus_in_the_official_layout(networks, name, precision):
    plain, other, ranked = networks
    layout = official_corpus_layout(other.id_text_features, other.corpus_text_features, plain.corpus_is_adjective)
    settings = dict(num_negatives=40, memory_length=20)
    bank = openood_tanl.TextBank.of(ranked)
    bank.precision = precision
    engine = openood_tanl.create_engine(name, bank, **settings)
    assert type(engine) is (openood_tanl.OfficialFP16TANL if precision == "official-fp16" else openood_tanl.TANL)
    classes = len(CLASSES)
    assert engine.bank_columns.tolist() == list(range(classes)) + (layout + classes).tolist()
    laid_out = openood_tanl.TextBank(plain.id_text_features, plain.corpus_text_features[layout], plain.noise_features,
                                     plain.logit_scale, precision=precision)
    reference = openood_tanl.create_engine(name, laid_out, **settings)
    lockstep = openood_tanl.Lockstep({name: openood_tanl.create_engine(name, bank, **settings)},
                                     bank.id_text_features, bank.corpus_text_features, bank.logit_scale)
    torch.manual_seed(3)
    for _ in range(4):
        features = torch.nn.functional.normalize(torch.randn(16, plain.id_text_features.shape[1]), dim=1)
        pred, score = engine.step(features)
        expected_pred, expected_score = reference.step(features)
        in_lockstep = lockstep.step(features)[name]
        assert torch.equal(pred, expected_pred) and torch.equal(score, expected_score)
        assert torch.equal(in_lockstep[0], pred) and torch.equal(in_lockstep[1], score)  # the gathered columns
        assert torch.equal(engine.selected, reference.selected)  # rows of the laid-out corpus


def test_the_network_s_own_model_ranks_as_itself(setup):
    own, _, corpus, cache = setup
    net, _ = create_network(TINY_MODEL, str(own), CLASSES, corpus, "cpu", cache, negmining=f"{TINY_MODEL}:{own}")
    assert net.negmining_text[0] is net.id_text_features and net.negmining_text[1] is net.corpus_text_features


def test_official_names_openai_vit_b16_in_float16(setup):
    own, _, corpus, _ = setup
    record = plan_text_bank(TINY_MODEL, str(own), CLASSES, corpus, negmining="official").provenance["negmining"]
    assert (record["source"], record["backbone"], record["pretrained"], record["precision"], record["quick_gelu"]) \
        == ("official", "ViT-B-16", {"tag": "openai"}, "official-fp16", True)


def test_bad_negmining_values_are_named(setup):
    own, _, corpus, _ = setup
    plan = lambda **kw: plan_text_bank(TINY_MODEL, str(own), CLASSES, corpus, **kw)  # noqa: E731
    with pytest.raises(UserError, match=r"negmining .* takes MODEL:WEIGHTS values"):
        plan(negmining="ViT-B-16")
    with pytest.raises(UserTypeError, match="negmining must be 'own', 'official' or 'MODEL:WEIGHTS', not int"):
        plan(negmining=3)
    with pytest.raises(UserError, match="unknown open_clip model 'ViT-Q-99'"):
        plan(negmining="ViT-Q-99:openai")
    with pytest.raises(UserError, match="leave negmining='own' there"):
        plan(negmining="official", templates="csp")
