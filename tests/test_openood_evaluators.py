"""OpenOOD evaluators that run the test-time protocol: Evaluator API, main.py's evaluator, registration.

The OpenOOD tests are skipped where OpenOOD does not import (it is not on PyPI:
pip install git+https://github.com/Jingkang50/OpenOOD); the OpenOOD-free helpers are tested everywhere.
"""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

import openood_tanl
from openood_tanl.evaluation import FeatureBenchmark, evaluate
from openood_tanl.evaluation import openood_evaluators as tt
from openood_tanl.postprocessors.base import OPENOOD_IMPORT_ERROR
from openood_tanl.protocol import TextBank

needs_openood = pytest.mark.skipif(not openood_tanl.OPENOOD_AVAILABLE,
                                   reason=f"needs OpenOOD: {OPENOOD_IMPORT_ERROR}")

REPO = str(Path(__file__).resolve().parents[1])
OPENOOD_LAYOUT = ["FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC"]
CIFAR10_INDEX = ["cifar100", "tin", "nearood", "mnist", "svhn", "texture", "places365", "farood"]
PER_LIST = 6  # images per generated image list
TANL_ARGS = dict(num_negatives=40, memory_length=20)


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}


# ------------------------------------------------------------------------------------------ OpenOOD-free helpers
def test_sweep_combinations_follow_openoods_order():
    # OpenOOD's recursive_generator: values in key order, the last key varying slowest
    assert tt.sweep_combinations({"a": [1, 2], "b": ["x", "y"]}) == [[1, "x"], [2, "x"], [1, "y"], [2, "y"]]
    assert tt.sweep_combinations({"a": [1, 2]}) == [[1], [2]]
    assert tt.sweep_combinations({}) == []


def test_settings_are_checked():
    assert tt.check_seeds([0, 1]) == (0, 1) and tt.check_seeds(3) == (3,) and tt.check_seeds("0, 2") == (0, 2)
    with pytest.raises(ValueError, match="at least one"):
        tt.check_seeds([])
    with pytest.raises(ValueError, match="distinct"):
        tt.check_seeds([1, 1])
    with pytest.raises(ValueError, match="unknown protocol"):
        tt.check_protocol("shuffled")
    with pytest.raises(TypeError, match="needs an openood_tanl postprocessor"):
        tt.require_engine_postprocessor(object())


def test_encode_loader_uses_the_networks_device_and_marks_ood():
    from doubles import TinyCLIPDouble

    net = TinyCLIPDouble().eval()
    images = torch.randn(10, 3, 32, 32)
    loader = [{"data": images[:4], "label": torch.arange(4)}, {"data": images[4:], "label": torch.arange(4, 10)}]
    id_set = tt.encode_loader(net, loader, "id", progress=False)
    assert torch.allclose(id_set.features, net(images, return_feat=True))
    assert id_set.labels.tolist() == list(range(10)) and id_set.name == "id"
    ood_set = tt.encode_loader(net, loader, "ood", ood=True, progress=False)
    assert (ood_set.labels == -1).all()


def test_openood_table_layout():
    summary = pd.DataFrame({"group": ["near", "near"], "FPR@95": [1.0, 1.0], "FPR@95(ID+)": [2.0, 2.0],
                            "AUROC": [3.0, 3.0], "AUPR_IN": [4.0, 4.0], "AUPR_OUT": [5.0, 5.0], "ACC": [6.0, 6.0],
                            "AUROC_std": [0.1, 0.1]}, index=pd.Index(["a", "nearood"], name="dataset"))
    table = tt.openood_table(summary)
    assert list(table.columns) == OPENOOD_LAYOUT + ["FPR@95(ID+)", "AUROC_std"]
    assert list(table.index) == ["a", "nearood"] and table.index.name is None


def test_module_imports_without_openood(tmp_path):
    """With OpenOOD unimportable the module imports, register_evaluators() is False, the classes say why."""
    script = tmp_path / "no_openood.py"
    script.write_text(textwrap.dedent("""
        import importlib.abc, importlib.machinery, sys, warnings

        class Broken(importlib.abc.MetaPathFinder, importlib.abc.Loader):
            def find_spec(self, name, path=None, target=None):
                if name == "openood" or name.startswith("openood."):
                    return importlib.machinery.ModuleSpec(name, self)
            def create_module(self, spec):
                raise ImportError("openood blocked for this test")
            def exec_module(self, module):
                pass

        sys.meta_path.insert(0, Broken())
        warnings.simplefilter("ignore")
        import openood_tanl
        from openood_tanl.evaluation import openood_evaluators as tt
        assert not openood_tanl.OPENOOD_AVAILABLE
        assert tt.register_evaluators() is False
        assert "TestTimeEvaluator" not in tt.__all__
        try:
            from openood_tanl.evaluation.openood_evaluators import TestTimeEvaluator
        except ImportError as error:
            assert "needs OpenOOD" in str(error), error
        else:
            raise AssertionError("TestTimeEvaluator without OpenOOD")
        print("ok")
    """))
    run = subprocess.run([sys.executable, str(script)], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout[-2000:] + run.stderr[-2000:]


# ------------------------------------------------------------------------------------------ Evaluator API
class CountingCLIP(torch.nn.Module):
    """TinyCLIPDouble that records how many images each kind of call saw."""

    def __init__(self):
        super().__init__()
        from doubles import TinyCLIPDouble

        self.inner = TinyCLIPDouble(num_classes=10, corpus_size=1200).eval()
        for name in ("id_text_features", "corpus_text_features", "noise_features", "logit_scale"):
            setattr(self, name, getattr(self.inner, name))
        self.feature_rows, self.logit_rows = 0, 0

    def forward(self, x, return_feat=False):
        if return_feat:
            self.feature_rows += len(x)
        else:
            self.logit_rows += len(x)
        return self.inner(x, return_feat=return_feat)


class ResetRecorder:
    """Wraps an engine: records each reset and the rows stepped since the last one."""

    def __init__(self, engine):
        self.engine, self.segments = engine, []

    def reset(self):
        self.segments.append([])
        return self.engine.reset()

    def step(self, features):
        self.segments[-1].append(features)
        return self.engine.step(features)


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    if not openood_tanl.OPENOOD_AVAILABLE:
        pytest.skip(f"needs OpenOOD: {OPENOOD_IMPORT_ERROR}")
    from openood_data import make_openood_tree

    return str(make_openood_tree(tmp_path_factory.mktemp("openood") / "data", "cifar10", per_list=PER_LIST))


@pytest.fixture
def no_cuda(monkeypatch):
    """Everything must run on the network's device: any .cuda() call fails the test."""

    def refuse(self, *args, **kwargs):
        raise AssertionError(".cuda() called")

    monkeypatch.setattr(torch.Tensor, "cuda", refuse)
    monkeypatch.setattr(torch.nn.Module, "cuda", refuse)


def _evaluator(data_root, net=None, postprocessor=None, **kwargs):
    net = CountingCLIP() if net is None else net
    postprocessor = openood_tanl.TANLPostprocessor(**TANL_ARGS) if postprocessor is None else postprocessor
    return tt.TestTimeEvaluator(net, "cifar10", data_root=data_root, preprocessor=None, batch_size=4,
                                num_workers=0, postprocessor=postprocessor, **kwargs)


def _record_resets(postprocessor):
    recorders = []
    build = postprocessor.build_engine

    def build_engine(net, **args):
        recorders.append(ResetRecorder(build(net, **args)))
        return recorders[-1]

    postprocessor.build_engine = build_engine
    return recorders


@needs_openood
def test_table_layout_on_cpu(data_root, offline, no_cuda):
    from openood.evaluation_api import Evaluator

    evaluator = _evaluator(data_root)
    assert isinstance(evaluator, Evaluator)
    table = evaluator.eval_ood(fsood=False, progress=False)
    assert list(table.index) == CIFAR10_INDEX
    assert list(table.columns) == OPENOOD_LAYOUT + ["FPR@95(ID+)"]
    assert table.notna().all().all() and ((table >= 0) & (table <= 100)).all().all()
    assert evaluator.metrics["ood"] is table
    assert table.loc["nearood"].tolist() == pytest.approx(table.loc[["cifar100", "tin"]].mean().tolist())
    # OpenOOD's classifier accuracy, on the CPU too (OpenOOD's own hard-codes .cuda())
    assert 0 <= evaluator.eval_acc("id") <= 100


@needs_openood
def test_each_image_is_encoded_once(data_root, offline):
    evaluator = _evaluator(data_root)
    net = evaluator.net
    evaluator.eval_ood(progress=False)
    images = PER_LIST * (1 + 2 + 4)  # ID test, near (cifar100, tin), far (mnist, svhn, texture, places365)
    assert (net.feature_rows, net.logit_rows) == (images, 0)
    evaluator.protocol, evaluator.seeds = "temporal", (0, 1)  # re-scored from the cache
    evaluator.eval_ood(progress=False)
    evaluator.eval_ood(fsood=True, progress=False)  # adds the CSID set only
    assert net.feature_rows == images + PER_LIST and net.logit_rows == 0


@needs_openood
def test_mixed_resets_once_per_ood_set_and_mixes_id_with_it(data_root, offline):
    postprocessor = openood_tanl.TANLPostprocessor(**TANL_ARGS)
    recorders = _record_resets(postprocessor)
    evaluator = _evaluator(data_root, postprocessor=postprocessor)
    evaluator.eval_ood(progress=False)
    assert len(recorders) == 1
    segments = recorders[0].segments  # recorded from the engine's construction on
    benchmark = evaluator.benchmarks["ood"]
    named = benchmark.ood_sets()
    assert len(segments) == len(named) == 6
    for rows, (_, ood_set) in zip(segments, named):
        assert all(len(batch) <= 4 for batch in rows)  # stream_batch_size defaults to the loader's
        seen = torch.cat(rows)
        expected = torch.cat([benchmark.id_set.features, ood_set.features])
        assert len(seen) == 2 * PER_LIST
        assert torch.equal(seen.sort(0).values, expected.sort(0).values)


@needs_openood
def test_temporal_resets_once_per_seed(data_root, offline):
    postprocessor = openood_tanl.TANLPostprocessor(**TANL_ARGS)
    recorders = _record_resets(postprocessor)
    _evaluator(data_root, postprocessor=postprocessor, protocol="temporal", seeds=[0, 1]).eval_ood(progress=False)
    assert len(recorders) == 1 and len(recorders[0].segments) == 2


@needs_openood
@pytest.mark.parametrize("protocol", ["mixed", "ood-first", "temporal"])
def test_results_equal_a_direct_evaluate(data_root, offline, protocol):
    evaluator = _evaluator(data_root, protocol=protocol, seeds=[3])
    table = evaluator.eval_ood(progress=False)
    # the cached embeddings are the network's, in loader order
    net = evaluator.net.inner
    for key, loader in [(("id", "test"), evaluator.dataloader_dict["id"]["test"]),
                        (("far", "svhn"), evaluator.dataloader_dict["ood"]["far"]["svhn"])]:
        direct = torch.cat([net(batch["data"], return_feat=True) for batch in loader])
        assert torch.allclose(evaluator.features[key].features, direct)
    benchmark = FeatureBenchmark("cifar10", evaluator.features[("id", "test")], {
        split: [evaluator.features[(split, name)] for name in evaluator.dataloader_dict["ood"][split]]
        for split in ("near", "far")})
    fresh = openood_tanl.TANLPostprocessor(**TANL_ARGS)
    summary, _ = evaluate(lambda: fresh.engine_for(TextBank.of(net)), benchmark, protocol, seeds=[3], batch_size=4)
    pd.testing.assert_frame_equal(table, tt.openood_table(summary))


@needs_openood
def test_several_seeds_give_means_and_std_columns(data_root, offline):
    evaluator = _evaluator(data_root, seeds=[0, 1])
    table = evaluator.eval_ood(progress=False)
    columns = OPENOOD_LAYOUT + ["FPR@95(ID+)"]
    assert list(table.columns) == columns + [f"{c}_std" for c in columns]
    assert sorted(evaluator.per_seed["ood"]["seed"].unique()) == [0, 1]
    single = [_evaluator(data_root, seeds=[seed]).eval_ood(progress=False) for seed in (0, 1)]
    mean = (single[0] + single[1]) / 2
    pd.testing.assert_frame_equal(table[columns], mean[columns])
    spread = (single[0] - single[1]).abs() / 2 ** 0.5
    pd.testing.assert_frame_equal(table[[f"{c}_std" for c in columns]].set_axis(columns, axis=1), spread[columns],
                                  check_exact=False, atol=1e-9)


@needs_openood
def test_fsood_adds_the_csid_sets_to_the_id_side(data_root, offline):
    evaluator = _evaluator(data_root)
    table = evaluator.eval_ood(fsood=True, progress=False)
    assert list(table.index) == CIFAR10_INDEX and evaluator.metrics["fsood"] is table
    assert len(evaluator.benchmarks["fsood"].id_set) == 2 * PER_LIST  # cifar10 test + cifar10c


@needs_openood
def test_other_postprocessors_are_refused(data_root, offline, tmp_path):
    from openood.postprocessors import BasePostprocessor

    with pytest.raises(TypeError, match="needs an openood_tanl postprocessor"):
        _evaluator(data_root, postprocessor=BasePostprocessor(None))
    (tmp_path / "postprocessors").mkdir()
    (tmp_path / "postprocessors" / "msp.yml").write_text("postprocessor:\n  name: msp\n  APS_mode: False\n")
    with pytest.raises(TypeError, match="needs an openood_tanl postprocessor"):
        tt.TestTimeEvaluator(CountingCLIP(), "cifar10", data_root=data_root, config_root=str(tmp_path),
                             preprocessor=None, postprocessor_name="msp", batch_size=4, num_workers=0)
    with pytest.raises(ValueError, match="unknown protocol"):
        _evaluator(data_root, protocol="random")


@needs_openood
def test_by_name_with_the_shipped_config(data_root, offline, tmp_path):
    evaluator = tt.TestTimeEvaluator(CountingCLIP(), "cifar10", data_root=data_root, config_root=str(tmp_path),
                                     preprocessor=None, postprocessor_name="tanl", batch_size=4, num_workers=0)
    assert list(evaluator.eval_ood(progress=False).index) == CIFAR10_INDEX


@needs_openood
def test_hyperparameter_search_runs_under_the_protocol(data_root, offline):
    config = {"postprocessor": {"name": "tanl", "APS_mode": True, "postprocessor_args": dict(TANL_ARGS),
                                "postprocessor_sweep": {"gap_list": [0.0, 0.3, 0.6]}}}
    postprocessor = openood_tanl.TANLPostprocessor(config)
    evaluator = _evaluator(data_root, postprocessor=postprocessor, seeds=[0, 1])  # the search runs in __init__
    assert postprocessor.hyperparam_search_done
    assert {("id", "val"), ("ood", "val")} <= set(evaluator.features)
    benchmark = FeatureBenchmark("val", evaluator.features[("id", "val")], {"val": [evaluator.features[("ood", "val")]]})
    aurocs = []
    for gap in (0.0, 0.3, 0.6):
        fresh = openood_tanl.TANLPostprocessor(config, gap=gap)
        summary, _ = evaluate(lambda: fresh.engine_for(TextBank.of(evaluator.net)), benchmark, "mixed",
                              seeds=[0, 1], batch_size=4)
        aurocs.append(summary.loc["ood_val", "AUROC"])
    assert postprocessor.args["gap"] == (0.0, 0.3, 0.6)[aurocs.index(max(aurocs))]
    assert list(evaluator.eval_ood(progress=False).index) == CIFAR10_INDEX


# ------------------------------------------------------------------------------------------ main.py pipeline
@needs_openood
def test_register_evaluators_is_idempotent_and_keeps_openoods_names():
    import openood.evaluators as evaluators
    import openood.pipelines.test_ood_pipeline as pipeline
    from openood.evaluators.ood_evaluator import OODEvaluator
    from openood.utils import Config

    assert tt.register_evaluators() and tt.register_evaluators()
    wrapped = pipeline.get_evaluator
    assert tt.register_evaluators() and pipeline.get_evaluator is wrapped is evaluators.get_evaluator
    config = Config(**{"evaluator": {"name": "test_time", "protocol": "temporal", "seeds": [1, 2]}})
    evaluator = pipeline.get_evaluator(config)
    assert isinstance(evaluator, tt.TestTimeOODEvaluator) and isinstance(evaluator, OODEvaluator)
    assert (evaluator.protocol, evaluator.seeds) == ("temporal", (1, 2))
    defaults = pipeline.get_evaluator(Config(**{"evaluator": {"name": "test_time"}}))
    assert (defaults.protocol, defaults.seeds) == ("mixed", (0,))
    assert type(pipeline.get_evaluator(Config(**{"evaluator": {"name": "ood"}}))) is OODEvaluator
    with pytest.raises(ValueError, match="unknown protocol"):
        pipeline.get_evaluator(Config(**{"evaluator": {"name": "test_time", "protocol": "nope"}}))


@needs_openood
def test_openood_tanl_registers_the_evaluator_on_import():
    """``import openood_tanl`` (registry.register) makes ``evaluator.name: test_time`` resolve, in a fresh process."""
    code = ("import openood_tanl, openood.pipelines.test_ood_pipeline as p; from openood.utils import Config; "
            "print(type(p.get_evaluator(Config(**{'evaluator': {'name': 'test_time'}}))).__name__)")
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-1] == "TestTimeOODEvaluator"


def _write_yaml(path, data):
    import yaml

    path.write_text(yaml.safe_dump(data))
    return str(path)


@needs_openood
def test_main_pipeline_runs_the_test_time_evaluator(tmp_path):
    """python -m openood_tanl.main with evaluator.name: test_time writes OpenOOD's ood.csv from the mixed protocol."""
    pytest.importorskip("open_clip")
    from openood_data import main_pipeline_command

    command, results = main_pipeline_command(tmp_path, exp_name="tanl_tt", near=["cifar100", "tin"], far=["svhn"],
                                             evaluator={"protocol": "mixed", "seeds": [0, 1]}, per_list=PER_LIST)
    run = subprocess.run([*command, "--evaluator.name", "test_time"], cwd=tmp_path, env=_env(), capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert "Replaying the mixed protocol (seeds [0, 1], 4 per step)" in run.stdout
    table = pd.read_csv(results / "ood.csv")
    assert list(table.columns) == ["dataset"] + OPENOOD_LAYOUT
    assert list(table["dataset"]) == ["cifar100", "tin", "nearood", "svhn", "farood"]
    assert table[OPENOOD_LAYOUT].notna().all().all()
    full = pd.read_csv(results / "ood_test_time.csv", index_col="dataset")
    assert {"FPR@95(ID+)", "AUROC_std", "FPR@95(ID+)_std"} <= set(full.columns)
    assert table.set_index("dataset")[OPENOOD_LAYOUT].values == pytest.approx(full[OPENOOD_LAYOUT].values, abs=0.006)
    per_seed = pd.read_csv(results / "ood_test_time_per_seed.csv")
    assert sorted(per_seed["seed"].unique()) == [0, 1] and set(per_seed["protocol"]) == {"mixed"}
    import json

    record = json.loads((results / "ood.run.json").read_text())
    assert record["files"] == ["ood.csv", "ood_test_time.csv", "ood_test_time_per_seed.csv"]
    assert record["evaluator"] == "test_time"
    assert record["protocol"] == {"name": "mixed", "seeds": [0, 1], "batch_size": 4, "order": None}
    assert record["benchmarks"]["cifar10"]["text_bank"]["corpus"]["sha256"]
