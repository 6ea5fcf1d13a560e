"""Inside OpenOOD as its users meet it: every path gives the right result or says early why not.

Skipped where OpenOOD does not import (it is not on PyPI: pip install git+https://github.com/Jingkang50/OpenOOD).
"""
import warnings
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml

import openood_tanl

pytest.importorskip("openood.evaluation_api", reason="needs OpenOOD (pip install git+https://github.com/Jingkang50/OpenOOD)")

from helpers.doubles import TinyCLIPDouble  # noqa: E402
from openood_tanl.openood import evaluator_support, registration  # noqa: E402
from openood_tanl.openood import evaluators as tt  # noqa: E402
from openood_tanl.openood.main import cpu_only  # noqa: E402
from openood_tanl.openood.postprocessors import (  # noqa: E402
    MCMPostprocessor,
    StreamStateWarning,
    TANLOfficialPostprocessor,
    TANLPostprocessor,
)

TANL_ARGS = dict(num_negatives=40, memory_length=20)
PER_LIST = 6


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    from helpers.openood_data import make_openood_tree

    return str(make_openood_tree(tmp_path_factory.mktemp("openood") / "data", "cifar10", per_list=PER_LIST))


def _test_time(data_root, net=None, postprocessor=None, **kwargs):
    return tt.TestTimeEvaluator(TinyCLIPDouble(num_classes=10, corpus_size=600) if net is None else net, "cifar10",
                                data_root=data_root, preprocessor=None, batch_size=4, num_workers=0,
                                postprocessor=postprocessor or TANLPostprocessor(**TANL_ARGS), **kwargs)


def _openood_evaluator(data_root, net, postprocessor):
    from openood.evaluation_api import Evaluator

    return Evaluator(net, "cifar10", data_root=data_root, preprocessor=None, postprocessor=postprocessor,
                     batch_size=4, num_workers=0)


# ---------------------------------------------------------------------------------------------- 1. class names
def test_a_network_of_another_benchmark_is_refused_before_any_data(data_root, offline, monkeypatch):
    import openood.evaluation_api.evaluator as api

    monkeypatch.setattr(api, "data_setup", lambda *a: (_ for _ in ()).throw(AssertionError("data was read")))
    with pytest.raises(ValueError, match="scores 100 ID classes but benchmark 'cifar10' has 10: build it with "
                                         r"create_network\(\.\.\., id_classes='cifar10'\)"):
        _test_time(data_root, net=TinyCLIPDouble(num_classes=100, corpus_size=600))


def test_openoods_evaluator_refuses_it_at_setup(data_root, offline, tmp_path):
    from openood.evaluation_api import Evaluator

    net = TinyCLIPDouble(num_classes=1000, corpus_size=600)
    with pytest.raises(ValueError, match="scores 1000 ID classes but benchmark 'cifar10' has 10"):
        Evaluator(net, "cifar10", data_root=data_root, config_root=str(tmp_path), preprocessor=None,
                  postprocessor_name="tanl", batch_size=4, num_workers=0)  # by name: the config names the set
    with pytest.raises(ValueError, match=r"scores 3 ID classes but the ID labels of 'the ID test set' go up to 5"):
        _openood_evaluator(data_root, TinyCLIPDouble(num_classes=3, corpus_size=600), TANLPostprocessor())


def test_the_error_names_a_known_class_set(tmp_path):
    class Net:
        id_text_features = torch.zeros(10, 4)
        class_names = openood_tanl.class_names("cifar10")

    with pytest.raises(ValueError, match=r"10 ID classes \(the 'cifar10' class names\) but benchmark 'cifar100'"):
        evaluator_support.check_network_fits(Net(), "cifar100")


# ---------------------------------------------------------------------------------------------- 2. presets
def test_a_preset_name_with_another_presets_settings_is_refused():
    from openood.utils import Config

    paper = yaml.safe_load((openood_tanl.config_root() / "postprocessors" / "tanl.yml").read_text())
    paper["postprocessor"]["name"] = "tanl_official"  # main.py's --postprocessor.name tanl_official with tanl.yml
    with pytest.raises(ValueError, match=r"'tanl_official' is the preset gap=0.5, alpha=0.0 \(tanl_official.yml\), "
                                         r"but the config's postprocessor_args set gap=0.2, alpha=0.95.*"
                                         "postprocessor.name tanl"):
        TANLOfficialPostprocessor(Config(**paper))
    registration.apply("pipeline")
    from openood.postprocessors.utils import get_postprocessor

    with pytest.raises(ValueError, match="must be the preset"):
        get_postprocessor(Config(**paper))
    official = TANLOfficialPostprocessor()  # its own YAML
    assert (official.args["gap"], official.args["alpha"]) == (0.5, 0.0)
    assert TANLOfficialPostprocessor(num_negatives=50).args["num_negatives"] == 50  # other settings are free
    assert TANLPostprocessor(gap=0.5, alpha=0.0).name == "tanl"  # the method itself takes any settings


# ---------------------------------------------------------------------------------------------- 3. shuffle
def test_a_shuffling_loader_gives_the_seeds_stream(data_root, offline):
    tables = [_test_time(data_root, shuffle=shuffle, seeds=[0, 1]).eval_ood(progress=False)
              for shuffle in (True, True, False)]
    pd.testing.assert_frame_equal(tables[0], tables[1])
    pd.testing.assert_frame_equal(tables[0], tables[2])


def test_a_shuffling_loader_without_indices_is_refused():
    class Loader:
        sampler = torch.utils.data.RandomSampler(range(4))

        def __iter__(self):
            yield {"data": torch.rand(4, 3, 32, 32), "label": torch.zeros(4)}

    with pytest.raises(ValueError, match="shuffles and its batches carry no 'index'"):
        evaluator_support.encode_loader(TinyCLIPDouble(), Loader(), "id", progress=False)


# ---------------------------------------------------------------------------------------------- 4. carried state
def test_openoods_evaluator_run_warns_that_tanl_is_never_reset(data_root, offline):
    postprocessor = TANLPostprocessor(**TANL_ARGS)
    net = TinyCLIPDouble(num_classes=10, corpus_size=600)
    evaluator = _openood_evaluator(data_root, net, postprocessor)
    with pytest.warns(StreamStateWarning, match="OpenOOD's own Evaluator scores the whole ID test set") as caught:
        with cpu_only():
            evaluator.eval_ood(progress=False)
    assert len([w for w in caught if w.category is StreamStateWarning]) == 1  # once per run
    with pytest.warns(StreamStateWarning, match="this evaluator's run starts with the memories"):
        _openood_evaluator(data_root, net, postprocessor)  # the same instance, a second run
    postprocessor.reset()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StreamStateWarning)
        _openood_evaluator(data_root, net, postprocessor)
    stateless = MCMPostprocessor()
    with warnings.catch_warnings():
        warnings.simplefilter("error", StreamStateWarning)
        with cpu_only():
            _openood_evaluator(data_root, net, stateless).eval_ood(progress=False)


def test_the_test_time_evaluator_leaves_the_instance_reset(data_root, offline):
    postprocessor = TANLPostprocessor(**TANL_ARGS)
    _test_time(data_root, postprocessor=postprocessor).eval_ood(progress=False)
    fresh = TANLPostprocessor(**TANL_ARGS).engine_for(openood_tanl.TextBank.of(TinyCLIPDouble(10, 600)))
    engine = postprocessor.engine
    assert engine.memory_fill == fresh.memory_fill and torch.equal(engine.selected, fresh.selected)


# ---------------------------------------------------------------------------------------------- 5. preprocessing
def _pipeline_config(**network):
    from openood.utils import Config

    return Config(**{"network": {"name": "clip_tanl", "model": "ViT-B-16", "weights": "openai",
                                 "id_classes": "cifar10", **network},
                     "dataset": {"name": "cifar10", "pre_size": 32, "image_size": 32, "interpolation": "bilinear",
                                 "normalization_type": "cifar10"},
                     "preprocessor": {"name": "base"}})


def test_the_pipeline_feeds_the_network_its_own_transform():
    registration.apply("pipeline")
    from openood.preprocessors.utils import get_preprocessor

    preprocessor = get_preprocessor(_pipeline_config(), "test")
    assert isinstance(preprocessor, registration.NetworkPreprocessor)
    assert preprocessor.description["name"] == "official" and preprocessor.description["resize"] == 224  # CIFAR
    assert get_preprocessor(_pipeline_config(transform="official"), "val").description["family"] == "cifar"
    open_clip_one = get_preprocessor(_pipeline_config(transform="open_clip"), "test")
    assert "Resize(size=224, interpolation=bicubic" in repr(open_clip_one)
    with pytest.warns(UserWarning, match=r"OpenOOD's preprocessing: mean \[0.4914, 0.4822, 0.4465\].*bilinear"):
        theirs = get_preprocessor(_pipeline_config(transform="openood"), "test")
    assert not isinstance(theirs, registration.NetworkPreprocessor)


def test_openood_learns_clip_preprocessing_for_the_pipeline_and_forgets_it_on_restore():
    import openood.preprocessors.transform as tables

    registration.apply("pipeline")
    assert "bicubic" in tables.interpolation_modes and "clip" in tables.normalization_dict
    registration.restore()
    try:
        assert "bicubic" not in tables.interpolation_modes and "clip" not in tables.normalization_dict
    finally:
        registration.register()


# ---------------------------------------------------------------------------------------------- 6. config roots
def test_openoods_own_yaml_is_read_with_its_official_names(offline, tmp_path):
    from openood.evaluation_api.postprocessor import get_postprocessor

    registration.register()
    (tmp_path / "postprocessors").mkdir()
    (tmp_path / "postprocessors" / "mcm.yml").write_text(  # OpenOOD's configs/postprocessors/mcm.yml
        "postprocessor:\n  name: mcm\n  APS_mode: False\n  postprocessor_args:\n    tau: 2\n"
        "  postprocessor_sweep:\n    tau_list: [0.01, 1, 10]\n")
    postprocessor = get_postprocessor(str(tmp_path), "mcm", "cifar10")
    assert postprocessor.args["temperature"] == 2 and postprocessor.args_dict == {"temperature_list": [0.01, 1, 10]}
    assert postprocessor.translated_names == {"tau": "temperature", "tau_list": "temperature_list"}
    from openood_tanl.provenance import method_record

    assert method_record(postprocessor)["translated_from_official_names"]["tau"] == "temperature"
    with pytest.raises(ValueError, match="'tau' is the official name of 'temperature'"):
        openood_tanl.configure("mcm", tau=2)  # ours keep refusing them


def test_openoods_names_with_our_config_root_never_write_into_the_package(monkeypatch, tmp_path):
    import openood.evaluation_api.postprocessor as api

    registration.register()
    monkeypatch.setenv("OPENOOD_TANL_CACHE", str(tmp_path / "cache"))
    targets = []

    def download(url, path):
        targets.append(Path(path))
        Path(path).write_text("postprocessor:\n  name: msp\n  APS_mode: False\n")

    monkeypatch.setattr(api.urllib.request, "urlretrieve", download)
    postprocessor = api.get_postprocessor(str(openood_tanl.config_root()), "msp", "cifar10")
    assert type(postprocessor) is api.postprocessors["msp"]  # OpenOOD's own
    assert targets == [tmp_path / "cache" / "openood_configs" / "postprocessors" / "msp.yml"]
    assert not (openood_tanl.config_root() / "postprocessors" / "msp.yml").exists()


# ---------------------------------------------------------------------------------------------- 7. evaluator YAML
def test_the_evaluator_yaml_lets_the_command_line_set_every_key():
    from openood.utils import Config

    config = Config(str(openood_tanl.config_root() / "evaluators" / "test_time.yml"))
    config.parse_args(["--evaluator.seeds", "0 1 2", "--evaluator.protocol", "temporal", "--evaluator.order",
                       "svhn,mnist", "--evaluator.stream_batch_size", "64"])
    evaluator = tt.TestTimeOODEvaluator(config)
    assert (evaluator.protocol, evaluator.seeds, evaluator.order, evaluator.stream_batch_size) == (
        "temporal", [0, 1, 2], ["svhn", "mnist"], 64)
    defaults = tt.TestTimeOODEvaluator(Config(str(openood_tanl.config_root() / "evaluators" / "test_time.yml")))
    assert (defaults.protocol, defaults.seeds, defaults.order, defaults.stream_batch_size) == ("mixed", [0], None,
                                                                                               None)
    with pytest.raises(ValueError, match="evaluator.seeds must be whole numbers"):
        evaluator_support.evaluator_settings({"seeds": "zero"})
    with pytest.raises(ValueError, match=r"unknown evaluator key\(s\) \['seed'\]"):
        evaluator_support.evaluator_settings({"seed": 0})


# ---------------------------------------------------------------------------------------------- 8. features
@pytest.fixture(scope="module")
def clip_network(tmp_path_factory):
    pytest.importorskip("open_clip")
    from helpers.tiny_clip import TINY_MODEL, make_tiny_checkpoint

    folder = tmp_path_factory.mktemp("tiny")
    (folder / "words.txt").write_text("\n".join(f"word{i}" for i in range(300)) + "\n")
    net, _ = openood_tanl.create_network(TINY_MODEL, str(make_tiny_checkpoint(folder)), "cifar10",
                                         folder / "words.txt", "cpu", folder / "cache")
    return net


@torch.no_grad()
def test_the_network_speaks_openoods_feature_conventions(clip_network):
    images = torch.rand(3, 3, 32, 32)
    logits, features = clip_network(images, return_feature=True)
    assert torch.equal(features, clip_network(images, return_feat=True)) and logits.shape == (3, 10)
    logits_again, feature_list = clip_network(images, return_feature_list=True)
    assert torch.equal(logits_again, logits) and len(feature_list) == 1 and torch.equal(feature_list[0], features)
    weight, bias = clip_network.get_fc()
    torch.testing.assert_close(torch.from_numpy(features.numpy() @ weight.T + bias), logits)


def test_openoods_feature_based_methods_run_beside_ours(clip_network, offline, tmp_path):
    from openood.evaluation_api import Evaluator

    from helpers.openood_data import make_openood_tree

    data_root = str(make_openood_tree(tmp_path / "data", "cifar10", per_list=20))  # every class in train (MDS)

    (tmp_path / "postprocessors").mkdir()
    for name, args in (("knn", {"K": 2}), ("vim", {"dim": 8}), ("mds", {})):
        (tmp_path / "postprocessors" / f"{name}.yml").write_text(yaml.safe_dump(
            {"postprocessor": {"name": name, "APS_mode": False, "postprocessor_args": args}}))
    registration.register()
    rows = {}
    with cpu_only():
        for name in ("knn", "vim", "mds", "mcm"):
            evaluator = Evaluator(clip_network, "cifar10", data_root=data_root, config_root=str(tmp_path),
                                  preprocessor=None, postprocessor_name=name, batch_size=4, num_workers=0)
            rows[name] = evaluator.eval_ood(progress=False).loc["farood"]
    assert all(0 <= row["AUROC"] <= 100 for row in rows.values())


# ---------------------------------------------------------------------------------------------- 9. the rest
def test_cpu_only_restores_cuda_after_the_block(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    before = torch.Tensor.cuda, torch.nn.Module.cuda
    with pytest.warns(RuntimeWarning, match="no CUDA device"):
        with cpu_only():
            tensor = torch.ones(2)
            assert tensor.cuda() is tensor
    assert (torch.Tensor.cuda, torch.nn.Module.cuda) == before


def test_aps_ties_keep_the_first_combination_and_say_so(capsys):
    from openood_tanl.evaluation import FeatureBenchmark, FeatureSet
    from openood_tanl.synthetic import make_bank

    bank = make_bank(5, 200, 16, seed=0)
    generator = torch.Generator().manual_seed(0)
    id_set = FeatureSet("id", torch.nn.functional.normalize(torch.randn(20, 16, generator=generator), dim=1),
                        torch.arange(20) % 5)
    ood_set = FeatureSet("ood", torch.nn.functional.normalize(torch.randn(12, 16, generator=generator), dim=1),
                         torch.full((12,), -1))
    # gap 1: no sample is ever confident, so alpha (the weight of the memories against the batch) changes nothing
    config = {"postprocessor": {"name": "tanl", "APS_mode": True,
                                "postprocessor_args": {"gap": 1.0, "num_negatives": 20, "memory_length": 5},
                                "postprocessor_sweep": {"alpha_list": [0.3, 0.7]}}}
    postprocessor = TANLPostprocessor(config)
    net = openood_tanl.TextBank(bank.id_text, bank.corpus_text, bank.noise_features)
    best, auroc, results = evaluator_support.search_sweep(postprocessor, net, FeatureBenchmark("val", id_set,
                                                                                               {"val": [ood_set]}))
    assert len(results) == 2 and results[0][1] == results[1][1] == auroc
    assert best == [0.3] and postprocessor.args["alpha"] == 0.3
    assert "2 combinations tie at the best AUROC" in capsys.readouterr().out
