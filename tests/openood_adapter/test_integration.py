"""The postprocessor inside a real OpenOOD: registration by name, Evaluator on a generated tree, main.py lookup.

Skipped where OpenOOD does not import (it is not on PyPI: pip install git+https://github.com/Jingkang50/OpenOOD).
"""
import pytest
import torch

import openood_tanl

pytest.importorskip("openood.evaluation_api", reason="needs OpenOOD (pip install git+https://github.com/Jingkang50/OpenOOD)")

from openood_tanl.openood import registration  # noqa: E402
from openood_tanl.openood.postprocessors import POSTPROCESSORS, TANLPostprocessor  # noqa: E402


@pytest.fixture
def cuda_calls_on_cpu(monkeypatch):
    """OpenOOD's Evaluator.eval_acc hard-codes .cuda(); on a machine without CUDA make it a no-op."""
    if not torch.cuda.is_available():
        monkeypatch.setattr(torch.Tensor, "cuda", lambda self, *args, **kwargs: self)


def test_subclasses_openood_base():
    from openood.postprocessors import BasePostprocessor

    assert issubclass(TANLPostprocessor, BasePostprocessor) and openood_tanl.TANLPostprocessor is TANLPostprocessor


def test_register_is_idempotent_and_adds_the_name():
    import openood.evaluation_api.postprocessor as api_postprocessor
    import openood.pipelines.test_ood_pipeline as pipeline

    assert registration.register() and registration.register()
    wrapped_api, wrapped_pipeline = api_postprocessor.get_postprocessor, pipeline.get_postprocessor
    assert registration.register()
    for name, postprocessor_class in POSTPROCESSORS.items():
        assert api_postprocessor.postprocessors[name] is postprocessor_class
    assert api_postprocessor.get_postprocessor is wrapped_api and pipeline.get_postprocessor is wrapped_pipeline


def test_restore_puts_openoods_lookups_back():
    import openood.evaluation_api.postprocessor as api_postprocessor
    import openood.pipelines.test_ood_pipeline as pipeline

    registration.register()
    registration.restore()
    try:
        assert "tanl" not in api_postprocessor.postprocessors
        assert not hasattr(api_postprocessor.get_postprocessor, "_openood_tanl_wrapper")
        assert not hasattr(pipeline.get_postprocessor, "_openood_tanl_wrapper")
        assert not hasattr(pipeline.get_network, "_openood_tanl_wrapper")
    finally:
        registration.register()
    assert "tanl" in api_postprocessor.postprocessors and hasattr(pipeline.get_network, "_openood_tanl_wrapper")


def test_evaluation_api_lookup_uses_shipped_yaml_when_config_root_lacks_it(tmp_path, offline):
    from openood.evaluation_api.evaluator import get_postprocessor

    postprocessor = get_postprocessor(str(tmp_path), "tanl", "cifar10")  # empty config_root: no download
    assert isinstance(postprocessor, TANLPostprocessor)
    assert postprocessor.args["num_negatives"] == 1000 and postprocessor.APS_mode is False
    assert postprocessor.config.dataset.name == "cifar10"


def test_the_official_script_preset_is_one_name_in_both_lookups(tmp_path, offline):
    from openood.evaluation_api.evaluator import get_postprocessor
    from openood.pipelines.test_ood_pipeline import get_postprocessor as pipeline_lookup
    from openood.utils import Config

    preset = get_postprocessor(str(tmp_path), "tanl_official", "imagenet")
    assert isinstance(preset, TANLPostprocessor) and preset.name == "tanl_official"
    assert (preset.args["alpha"], preset.args["gap"], preset.args["memory_length"]) == (0.0, 0.5, 300)
    config = Config(str(openood_tanl.config_root() / "postprocessors" / "tanl_official.yml"))
    assert pipeline_lookup(config).args == preset.args


def test_evaluation_api_lookup_prefers_the_users_yaml(tmp_path, offline):
    from openood.evaluation_api.evaluator import get_postprocessor

    (tmp_path / "postprocessors").mkdir()
    (tmp_path / "postprocessors" / "tanl.yml").write_text(
        "postprocessor:\n  name: tanl\n  APS_mode: False\n  postprocessor_args:\n    gap: 0.5\n    alpha: 0.0\n")
    postprocessor = get_postprocessor(str(tmp_path), "tanl", "cifar10")
    assert postprocessor.args["gap"] == 0.5 and postprocessor.args["alpha"] == 0.0


def test_pipeline_get_postprocessor_resolves_tanl_and_keeps_the_rest():
    from openood.pipelines.test_ood_pipeline import get_postprocessor
    from openood.postprocessors import BasePostprocessor
    from openood.utils import Config

    config = Config(str(openood_tanl.config_root() / "postprocessors" / "tanl.yml"))
    assert isinstance(get_postprocessor(config), TANLPostprocessor)
    msp = get_postprocessor(Config(**{"postprocessor": {"name": "msp", "APS_mode": False}}))
    assert type(msp) is BasePostprocessor


@pytest.mark.parametrize("by_name", [True, False])
def test_evaluator_runs_tanl_on_a_generated_tree(tmp_path, offline, cuda_calls_on_cpu, by_name):
    from openood.evaluation_api import Evaluator

    from helpers.doubles import TinyCLIPDouble
    from helpers.openood_data import make_openood_tree

    net = TinyCLIPDouble(num_classes=10, corpus_size=1200).eval()  # >= the shipped M = 1000
    data_root = make_openood_tree(tmp_path / "data", "cifar10", per_list=6)
    if by_name:
        kwargs = dict(postprocessor_name="tanl", config_root=openood_tanl.config_root())
    else:
        kwargs = dict(postprocessor=TANLPostprocessor(num_negatives=40, memory_length=20))
    evaluator = Evaluator(net, id_name="cifar10", data_root=str(data_root), preprocessor=None, batch_size=4,
                          num_workers=0, **kwargs)
    table = evaluator.eval_ood(fsood=False, progress=False)
    assert list(table.columns) == ["FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC"]
    assert {"nearood", "farood", "cifar100", "tin", "mnist", "svhn", "texture", "places365"} <= set(table.index)
    assert table.notna().all().all()
    engine = evaluator.postprocessor.engine
    assert isinstance(engine, openood_tanl.TANL) and engine.num_negatives == (1000 if by_name else 40)
    id_scores = evaluator.scores["id"]["test"][1]
    assert id_scores.shape == (6,) and ((id_scores > 0) & (id_scores < 1)).all()


@pytest.mark.slow  # OpenOOD's main.py pipeline in a subprocess
def test_main_pipeline_runs_tanl_with_the_clip_network(tmp_path):
    """python -m openood_tanl.main: OpenOOD's test_ood pipeline with our network and postprocessor by name."""
    import subprocess

    import pandas as pd

    from helpers.openood_data import main_pipeline_command, subprocess_env

    pytest.importorskip("open_clip")
    command, results = main_pipeline_command(tmp_path, exp_name="tanl_test", near=["cifar100"], far=["svhn"])
    run = subprocess.run(command, cwd=tmp_path, env=subprocess_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    table = pd.read_csv(results / "ood.csv")
    assert {"cifar100", "nearood", "svhn", "farood"} <= set(table["dataset"])
    assert table[["FPR@95", "AUROC"]].notna().all().all()
    import json

    record = json.loads((results / "ood.run.json").read_text())  # what produced ood.csv
    assert record["files"] == ["ood.csv"] and record["evaluator"] == "ood"
    assert record["methods"]["tanl"]["hyperparameters"]["num_negatives"] == 50  # the command-line override
    bank = record["benchmarks"]["cifar10"]["text_bank"]
    assert bank["class_names"]["set"] == "cifar10" and bank["corpus"]["words"] > 0
    assert record["protocol"]["name"].startswith("openood")
