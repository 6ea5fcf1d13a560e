"""The method registry: names, settings from the shipped YAMLs, checked hyperparameters, engines from a text bank."""
import functools
import pickle

import pytest
import torch

import openood_tanl
from openood_tanl import TANL, configure, create_engine, list_methods
from openood_tanl.bank import TextBank
from openood_tanl.core import Engine, OfficialName
from openood_tanl.core.neglabel import NegLabel, select_negative_labels
from openood_tanl.methods import METHODS, MethodConfig, get_method, method_config_path
from openood_tanl.synthetic import make_stream


@pytest.fixture(scope="module")
def bank(synthetic_bank):
    raw = synthetic_bank(10, 1200, 24, seed=2)
    return TextBank(raw.id_text, raw.corpus_text, raw.noise_features, 100.0,
                    corpus_is_adjective=torch.arange(1200) % 5 == 0)


@pytest.fixture(scope="module")
def features(synthetic_bank):
    return make_stream(synthetic_bank(10, 1200, 24, seed=2), 40, 24, seed=3)[0]


def test_every_method_has_a_shipped_yaml_and_builds_an_engine(bank, features):
    assert list_methods() == ["adaneg", "csp", "mcm", "mcm_oodd", "neglabel", "oodd", "tanl", "tanl_official"]
    small = {"num_negatives": 500}
    for name in list_methods():
        assert method_config_path(name).is_file()
        engine = create_engine(name, bank, **({} if name in ("mcm", "mcm_oodd", "oodd", "csp") else small))
        assert isinstance(engine, Engine) and engine.num_classes == 10 and engine.device.type == "cpu"
        pred, score = engine.step(features)
        assert pred.shape == score.shape == (64,) and torch.isfinite(score).all()
        assert engine.reset() is engine


def test_settings_are_the_engine_defaults_with_the_shipped_yaml():
    assert configure("tanl").hyperparameters == dict(num_negatives=1000, memory_length=300, gap=0.2, alpha=0.95,
                                                     score_step=1, score_memory_length=20000, seed=0)
    official = configure("tanl_official").hyperparameters
    assert (official["alpha"], official["gap"], official["memory_length"], official["num_negatives"]) == \
        (0.0, 0.5, 300, 1000)
    assert configure("neglabel").hyperparameters == dict(num_negatives=10000, percentile=0.95, num_groups=100, seed=0)
    assert configure("adaneg").hyperparameters["mix_weight"] == 0.1


def test_create_engine_equals_building_the_engine_by_hand(bank, features):
    by_registry = create_engine("tanl", bank, num_negatives=200, memory_length=30)
    by_hand = TANL(bank.id_text_features, bank.corpus_text_features, bank.noise_features, 100.0,
                   num_negatives=200, memory_length=30)
    for _ in range(3):
        assert all(torch.equal(a, b) for a, b in zip(by_registry.step(features), by_hand.step(features)))
    negatives = bank.corpus_text_features[select_negative_labels(
        bank.id_text_features, bank.corpus_text_features, bank.corpus_is_adjective, 300)]
    neglabel = NegLabel(bank.id_text_features, negatives, 100.0, num_groups=7)
    assert torch.equal(create_engine("neglabel", bank, num_negatives=300, num_groups=7).step(features)[1],
                       neglabel.step(features)[1])


@pytest.mark.parametrize("name, given, message", [
    ("tanl", {"beta": 10}, "'beta' is the official name of 'num_negatives'; use 'num_negatives'"),
    ("tanl", {"gama": 1}, "unknown key 'gama'.*Valid keys:.*num_negatives"),
    ("tanl", {"memory_lenght": 1}, "did you mean 'memory_length'"),
    ("mcm", {"tau": 2.0}, "'tau' is the official name of 'temperature'"),
    ("neglabel", {"ngroup": 2}, "'ngroup' is the official name of 'num_groups'"),
    ("neglabel", {"ood_number": 2}, "'ood_number' is the official name of 'num_negatives'"),
    ("adaneg", {"lambdaval": 1.0}, "'lambdaval' is the official name of 'mix_weight'"),
    ("oodd", {"neg_topk": 0.1}, "'neg_topk' is the official name of 'negative_fraction'"),
    ("oodd", {"pencentile": 0.9}, "'pencentile' is the official name of 'percentile'"),
    ("mcm_oodd", {"T": 2}, "'T' is the official name of 'temperature'"),
])
def test_official_and_misspelt_keys_are_named(name, given, message):
    with pytest.raises(ValueError, match=message):
        configure(name, **given)


def test_values_are_checked_before_any_bank_is_seen():
    with pytest.raises(TypeError, match="gap must be a number, got '0.5'"):
        configure("tanl", gap="0.5")
    with pytest.raises(ValueError, match=r"percentile must be in \[0, 1\], got 2"):
        configure("neglabel", percentile=2)
    with pytest.raises(ValueError, match="unknown method 'tnal' \\(did you mean 'tanl'\\?\\); choose one of adaneg"):
        configure("tnal")
    assert configure("tanl", num_negatives=3.0).hyperparameters["num_negatives"] == 3  # normalised to an int


def test_bounds_that_need_the_bank_are_checked_when_the_engine_is_built(bank):
    with pytest.raises(ValueError, match=r"num_negatives must be in \[1, 1200\], got 5000 \(the corpus has 1200"):
        create_engine("tanl", bank, num_negatives=5000)


def test_a_bank_without_its_text_embeddings_is_named():
    class NotABank:
        logit_scale = 100.0

    with pytest.raises(TypeError, match="NotABank lacks id_text_features, corpus_text_features, noise_features"):
        create_engine("mcm", NotABank())


def test_configs_from_yaml_in_openoods_schema(tmp_path):
    path = tmp_path / "mine.yml"
    path.write_text("postprocessor:\n  name: tanl_official\n  postprocessor_args:\n    num_negatives: 300\n")
    config = configure(str(path), memory_length=50)
    assert config.name == "tanl_official"
    assert (config.hyperparameters["num_negatives"], config.hyperparameters["memory_length"],
            config.hyperparameters["alpha"]) == (300, 50, 0.0)
    for text, message in (("postprocessor:\n  postprocesor_args: {}\n  name: tanl\n",
                           "did you mean 'postprocessor_args'"),
                          ("name: tanl\n", "'postprocessor' section"),
                          ("postprocessor:\n  name: msp\n", "unknown method 'msp'")):
        path.write_text(text)
        with pytest.raises(ValueError, match=message):
            configure(str(path))


def test_method_configs_replace_and_pickle(bank, features):
    config = configure("tanl", num_negatives=100)
    other = config.replace(gap=0.5)
    assert isinstance(other, MethodConfig) and other.hyperparameters["gap"] == 0.5
    assert config.hyperparameters["gap"] == 0.2
    with pytest.raises(ValueError, match="unknown key"):
        config.replace(gapp=0.5)
    factory = pickle.loads(pickle.dumps(config.factory(bank)))  # what process pools receive
    assert isinstance(factory, functools.partial)
    assert torch.equal(factory().step(features)[1], config.engine(bank).step(features)[1])


def test_official_names_are_structured_data():
    for name in list_methods():
        method = get_method(name)
        assert set(method.official_names) == set(method.hyperparameter_checks), name
        assert all(isinstance(official, OfficialName) for official in method.official_names.values())
    assert str(METHODS["tanl"].official_names["score_memory_length"]) == "(score_queue_len, hard-coded 20000)"
    assert METHODS["adaneg"].official_names["sharpness"].key == "beta"


def test_top_level_names():
    assert openood_tanl.config_root().joinpath("postprocessors", "tanl.yml").is_file()
    assert openood_tanl.config_root().joinpath("networks", "clip_tanl.yml").is_file()


def test_each_method_names_its_key_settings_from_its_config(monkeypatch):
    from openood_tanl import methods
    from openood_tanl.evaluation.tables import settings_markdown

    for name in list_methods():  # every method, those added later included, gets a line
        line = methods.settings_line(name, configure(name).hyperparameters)
        assert line and "seed" not in line.split(";")[0], name
    assert methods.settings_line("tanl", configure("tanl", gap=0.35).hyperparameters).startswith(
        "num_negatives 1000 [beta], memory_length 300 [memleng], gap 0.35, alpha 0.95, score_step 1 [gamma]")
    assert "gap 0.5, alpha 0.0" in methods.settings_line("tanl_official", configure("tanl_official").hyperparameters)
    mcm = methods.settings_line("mcm", configure("mcm", temperature=2.0).hyperparameters)
    assert mcm.startswith("temperature 2.0 [tau]; the temperature divides CLIP's scaled logits")
    assert "raw cosines" in mcm
    monkeypatch.delitem(methods.KEY_SETTINGS, "neglabel")  # a method without key settings: all but its seed
    assert methods.settings_line("neglabel", configure("neglabel").hyperparameters) == \
        "num_negatives 10000 [ood_number], percentile 0.95 [pct], num_groups 100 [ngroup]"
    text = settings_markdown({"ours": configure("mcm"), "b": {"method": "tanl", "hyperparameters":
                                                              dict(configure("tanl").hyperparameters)}})
    assert text.startswith("Settings:\n\n- `ours` (mcm): temperature 1.0 [tau]")
    assert "\n- `b` (tanl): num_negatives" in text
