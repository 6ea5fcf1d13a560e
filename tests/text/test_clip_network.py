"""The open_clip network on a tiny random model: loading, text bank cache, corpus, postprocessors end to end."""
import warnings

import pytest
import torch

open_clip = pytest.importorskip("open_clip")

import openood_tanl  # noqa: E402
from helpers.tiny_clip import TINY_MODEL, make_tiny_checkpoint  # noqa: E402
from openood_tanl.networks import create_network  # noqa: E402

CLASSES = ["golden retriever", "tabby cat", "red fox", "school bus", "pizza"]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return make_tiny_checkpoint(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    nouns = [f"noun{i}" for i in range(150)] + ["pizza"]  # 'pizza' is an ID class: dropped
    adjectives = [f"adj{i}" for i in range(50)] + ["noun3"]  # also a noun: dropped
    (folder / "nouns.txt").write_text("\n".join(nouns) + "\n")
    (folder / "adjectives.txt").write_text("\n".join(adjectives) + "\n")
    return folder


@pytest.fixture(scope="module")
def built(checkpoint, corpus_dir, tmp_path_factory):
    cache = tmp_path_factory.mktemp("cache")
    net, preprocess = create_network(TINY_MODEL, str(checkpoint), CLASSES, corpus_dir, "cpu", cache)
    return net, preprocess, cache


def test_network_carries_the_protocol(built):
    net, preprocess, _ = built
    assert isinstance(net, openood_tanl.CLIPNetwork)
    assert net.id_text_features.shape == (5, 32) and net.noise_features.shape == (15, 32)
    assert net.corpus_text_features.shape == (150 + 50, 32)  # 'pizza' and the adjective 'noun3' dropped
    assert "pizza" not in net.corpus.words and net.corpus.words.count("noun3") == 1
    for bank in (net.id_text_features, net.corpus_text_features, net.noise_features):
        torch.testing.assert_close(bank.norm(dim=1), torch.ones(len(bank)))
    assert net.logit_scale == pytest.approx(1 / 0.07, rel=1e-4)


def test_forward_gives_id_logits_and_features(built):
    net, preprocess, _ = built
    from PIL import Image

    image = preprocess(Image.new("RGB", (50, 40), (200, 30, 30))).unsqueeze(0)
    assert image.shape == (1, 3, 32, 32)
    features = net(image, return_feat=True)
    logits = net(image)
    assert logits.shape == (1, 5)
    torch.testing.assert_close(logits, net.logit_scale * features @ net.id_text_features.T)


def test_text_bank_is_the_open_clip_zero_shot_classifier(built, checkpoint):
    net, _, _ = built
    model, _, _ = open_clip.create_model_and_transforms(TINY_MODEL, pretrained=str(checkpoint))
    tokenizer = open_clip.get_tokenizer(TINY_MODEL)
    expected = open_clip.build_zero_shot_classifier(model, tokenizer, CLASSES, ["The nice {}."]).T
    torch.testing.assert_close(net.id_text_features, expected)
    adjective = net.corpus.words.index("adj7")
    expected_adj = open_clip.build_zero_shot_classifier(model, tokenizer, ["adj7"], ["This is a {} photo."]).T
    torch.testing.assert_close(net.corpus_text_features[adjective], expected_adj[0])


def test_cache_is_reused_and_a_damaged_entry_rebuilt(built, checkpoint, corpus_dir, monkeypatch):
    net, _, cache = built
    entries = sorted(cache.glob("*.npz"))
    assert {p.name.split("-")[0] for p in entries} == {"id", "nouns", "adjectives", "noise"}

    def no_encoding(*args, **kwargs):
        raise AssertionError("the text bank was re-encoded although it is cached")

    import openood_tanl.networks.clip_network as clip_network
    monkeypatch.setattr(clip_network, "encode_class_texts", no_encoding)
    again, _ = create_network(TINY_MODEL, str(checkpoint), CLASSES, corpus_dir, "cpu", cache)
    assert torch.equal(again.corpus_text_features, net.corpus_text_features)
    assert torch.equal(again.noise_features, net.noise_features)

    monkeypatch.undo()
    nouns_entry = next(p for p in entries if p.name.startswith("nouns"))
    nouns_entry.write_bytes(nouns_entry.read_bytes()[:100])
    with pytest.warns(RuntimeWarning, match="is not used"):
        rebuilt, _ = create_network(TINY_MODEL, str(checkpoint), CLASSES, corpus_dir, "cpu", cache)
    torch.testing.assert_close(rebuilt.corpus_text_features, net.corpus_text_features)


def test_network_records_what_built_its_text_bank(built, checkpoint, corpus_dir):
    net = built[0]
    record = net.provenance
    assert record["backbone"] == TINY_MODEL and record["pretrained"]["file"] == str(checkpoint)
    assert record["precision"] == "fp32" and record["quick_gelu"] is False
    assert record["class_names"]["set"] == "list" and record["class_names"]["count"] == 5
    assert record["corpus"] == net.corpus.provenance()
    assert record["corpus"]["source"] == str(corpus_dir.resolve()) and record["corpus"]["words"] == 200
    assert record["prompts"] == {"templates": "official", "classes": ["The nice {}."], "nouns": ["The nice {}."],
                                 "adjectives": ["This is a {} photo."]}
    assert record["package"]["version"] == openood_tanl.__version__
    assert openood_tanl.bank.TextBank.of(net).provenance == record


def test_another_word_list_is_never_served_from_the_cache(built, checkpoint, corpus_dir, tmp_path):
    net, _, cache = built
    other = tmp_path / "corpus"
    other.mkdir()
    nouns = [f"noun{i}" for i in range(150)]
    nouns[7] = "kettle"  # one word differs, same sizes
    (other / "nouns.txt").write_text("\n".join(nouns) + "\n")
    (other / "adjectives.txt").write_text((corpus_dir / "adjectives.txt").read_text())
    again, _ = create_network(TINY_MODEL, str(checkpoint), CLASSES, other, "cpu", cache)
    assert again.corpus.provenance()["sha256"] != net.corpus.provenance()["sha256"]
    row = again.corpus.words.index("kettle")
    assert not torch.equal(again.corpus_text_features[row], net.corpus_text_features[row])
    unchanged = again.corpus.words.index("noun8")
    torch.testing.assert_close(again.corpus_text_features[unchanged], net.corpus_text_features[unchanged])


def test_another_class_list_encodes_only_the_class_names(built, checkpoint, corpus_dir, monkeypatch):
    import openood_tanl.networks.clip_network as clip_network

    net, _, cache = built
    encoded = []
    original = clip_network.encode_class_texts
    monkeypatch.setattr(clip_network, "encode_class_texts",
                        lambda model, tokenizer, names, *a, **kw: encoded.append(list(names))
                        or original(model, tokenizer, names, *a, **kw))
    other, _ = create_network(TINY_MODEL, str(checkpoint), CLASSES[:3], corpus_dir, "cpu", cache)
    assert encoded == [CLASSES[:3]]  # the word lists come from the cache: the class names only select rows
    assert other.id_text_features.shape[0] == 3
    assert other.corpus_text_features.shape[0] == 201  # 'pizza' is no longer an ID class: kept
    for word in ("noun5", "adj7"):
        torch.testing.assert_close(other.corpus_text_features[other.corpus.words.index(word)],
                                   net.corpus_text_features[net.corpus.words.index(word)])


def test_every_method_runs_on_the_real_network(built):
    net, preprocess, _ = built
    images = torch.rand(12, 3, 32, 32)
    settings = {"tanl": dict(num_negatives=40, memory_length=20), "mcm": {},
                "tanl_official": dict(num_negatives=40, memory_length=20),
                "neglabel": dict(num_negatives=60, num_groups=3), "adaneg": dict(num_negatives=60, num_groups=3),
                "oodd": dict(negative_fraction=0.5, num_groups=3), "mcm_oodd": {}, "csp": dict(num_groups=3)}
    for name in openood_tanl.list_methods():
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", "CSP is built from a text bank with the 'official' prompts")
            engine = openood_tanl.create_engine(name, net, **settings[name])  # the network is its own text bank
        pred, conf = engine.step(net(images, return_feat=True))
        assert pred.shape == conf.shape == (12,) and torch.isfinite(conf).all(), name
        assert int(pred.max()) < 5


def test_unknown_model_and_tag_are_named(checkpoint):
    with pytest.raises(ValueError, match="unknown open_clip model 'ViT-Q-99'"):
        create_network("ViT-Q-99", None, CLASSES)
    with pytest.raises(ValueError, match="neither a file nor a pretrained tag"):
        create_network("ViT-B-16", "no-such-tag", CLASSES)


def test_offline_download_failure_says_how_to_pass_a_checkpoint():
    with pytest.raises(RuntimeError, match="pass its file path as pretrained="):
        create_network("ViT-B-16", "openai", CLASSES)


def test_quick_gelu_follows_the_weights():
    from openood_tanl.networks.clip_network import _resolve_quick_gelu

    assert _resolve_quick_gelu("ViT-B-16", "openai", None) == (True, "the 'openai' weights")
    assert _resolve_quick_gelu("ViT-B-16", "laion2b_s34b_b88k", None)[0] is False
    with pytest.warns(UserWarning, match="trained with quick_gelu=True"):
        assert _resolve_quick_gelu("ViT-B-16", "openai", False)[0] is False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _resolve_quick_gelu("ViT-B-16", "openai", True) == (True, "quick_gelu=True")


@pytest.mark.slow
def test_whole_chain_with_the_shipped_wordnet_corpus(checkpoint, tmp_path):
    """corpus -> text bank cache -> network -> every method at its shipped settings (about a minute)."""
    net, _ = create_network(TINY_MODEL, str(checkpoint), "cifar10", "wordnet", "cpu", tmp_path)
    nouns, adjectives = openood_tanl.corpus.wordnet_words()
    assert (len(nouns), len(adjectives)) == (58514, 14006)
    assert len(net.corpus.words) == net.corpus_text_features.shape[0] == 70787  # for the CIFAR-10 names
    assert int(net.corpus_is_adjective.sum()) == net.corpus.kinds.count("adjective") == 12280
    images = torch.rand(16, 3, 32, 32)
    features = net(images, return_feat=True)
    for name in openood_tanl.list_methods():
        pred, conf = openood_tanl.create_engine(name, net).step(features)  # shipped settings (M = 1000, 10000)
        assert pred.shape == conf.shape == (16,) and torch.isfinite(conf).all(), name


def test_csp_text_bank_from_open_clip(checkpoint, tmp_path):
    """templates='csp': CSP's corpus rules and prompts, raw embeddings averaged, cached by prompts."""
    from openood_tanl.corpus import load_corpus
    from openood_tanl.csp import csp_prompts, csp_text_bank

    folder = tmp_path / "txtfiles"
    folder.mkdir()
    (folder / "noun.artifact.txt").write_text("".join(f"thing_{i}\n" for i in range(120)) + "pizza\n")
    (folder / "adj.all.txt").write_text("".join(f"shade{i}\n" for i in range(40)) + "thing 3\n")
    (folder / "noun.person.txt").write_text("driver\n")
    cache = tmp_path / "cache"
    net, _ = create_network(TINY_MODEL, str(checkpoint), CLASSES, folder, "cpu", cache, templates="csp")
    corpus = load_corpus(folder, CLASSES, rules="csp")
    assert net.corpus.words == corpus.words and "pizza" in corpus.words and "driver" not in corpus.words
    assert net.corpus_is_adjective.tolist() == [kind == "adjective" for kind in corpus.kinds]
    assert net.corpus.words.index("thing 3") >= 120  # read first from adj.all.txt: an adjective
    model, _, _ = open_clip.create_model_and_transforms(TINY_MODEL, pretrained=str(checkpoint))
    tokenizer = open_clip.get_tokenizer(TINY_MODEL)
    with torch.no_grad():
        expected = csp_text_bank(corpus, CLASSES, lambda prompts: model.encode_text(tokenizer(prompts)))
    torch.testing.assert_close(net.id_text_features, expected.id_text_features, rtol=0, atol=2e-6)
    torch.testing.assert_close(net.corpus_text_features, expected.corpus_text_features, rtol=0, atol=2e-6)
    prompts = csp_prompts(corpus, CLASSES)
    assert net.provenance["prompts"]["templates"] == "csp" and net.provenance["corpus"]["rules"] == "csp"
    assert prompts.adjectives[0][0] in [p.format("shade0") for p in net.provenance["prompts"]["superclass_phrases"]]
    assert {p.name.split("-")[0] for p in cache.glob("*.npz")} >= {"csp"}
    import openood_tanl.networks.clip_network as clip_network

    def no_encoding(*args, **kwargs):
        raise AssertionError("CSP's text bank was re-encoded although it is cached")

    original = clip_network.encode_raw_prompts
    clip_network.encode_raw_prompts = no_encoding
    try:
        again, _ = create_network(TINY_MODEL, str(checkpoint), CLASSES, folder, "cpu", cache, templates="csp")
    finally:
        clip_network.encode_raw_prompts = original
    assert torch.equal(again.corpus_text_features, net.corpus_text_features)
    engine = openood_tanl.create_engine("csp", net, num_groups=5)
    assert engine.selected.numel() == int(120 * 0.15) + int(41 * 0.15)  # thing 3 is an adjective
    with pytest.raises(ValueError, match="does not go with it"):
        create_network(TINY_MODEL, str(checkpoint), CLASSES, folder, "cpu", cache, templates="csp",
                       corpus_rules="clean")
    with pytest.raises(ValueError, match="rules='csp' reads a folder"):
        create_network(TINY_MODEL, str(checkpoint), CLASSES, "wordnet", "cpu", cache, templates="csp")
