"""OpenOOD evaluators that run the test-time protocol: Evaluator API, main.py's evaluator, registration.

Skipped where OpenOOD does not import (it is not on PyPI: pip install git+https://github.com/Jingkang50/OpenOOD);
the OpenOOD-free helpers are tested everywhere (test_evaluator_support.py).
"""
import os
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from openood_tanl.bank import TextBank
from openood_tanl.evaluation import FeatureBenchmark, evaluate

pytest.importorskip("openood.evaluation_api", reason="needs OpenOOD (pip install git+https://github.com/Jingkang50/OpenOOD)")

from openood_tanl.openood import evaluator_support, registration  # noqa: E402
from openood_tanl.openood import evaluators as tt  # noqa: E402
from openood_tanl.openood.postprocessors import TANLPostprocessor  # noqa: E402

REPO = str(Path(__file__).resolve().parents[2])
OPENOOD_LAYOUT = ["FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC"]
CIFAR10_INDEX = ["cifar100", "tin", "nearood", "mnist", "svhn", "texture", "places365", "farood"]
PER_LIST = 6  # images per generated image list
TANL_ARGS = dict(num_negatives=40, memory_length=20)


def _env():
    return {**os.environ, "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([REPO, os.environ.get("PYTHONPATH", "")])}


# ------------------------------------------------------------------------------------------ Evaluator API
class CountingCLIP(torch.nn.Module):
    """TinyCLIPDouble that records how many images each kind of call saw."""

    def __init__(self):
        super().__init__()
        from helpers.doubles import TinyCLIPDouble

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
    from helpers.openood_data import make_openood_tree

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
    postprocessor = TANLPostprocessor(**TANL_ARGS) if postprocessor is None else postprocessor
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


def test_mixed_resets_once_per_ood_set_and_mixes_id_with_it(data_root, offline):
    postprocessor = TANLPostprocessor(**TANL_ARGS)
    recorders = _record_resets(postprocessor)
    evaluator = _evaluator(data_root, postprocessor=postprocessor)
    evaluator.eval_ood(progress=False)
    assert len(recorders) == 1
    segments = recorders[0].segments  # recorded from the engine's construction on
    assert segments[-1] == []  # reset after the run: no stream's state outlives it
    segments = segments[:-1]
    benchmark = evaluator.benchmarks["ood"]
    named = benchmark.ood_sets()
    assert len(segments) == len(named) == 6
    for rows, (_, ood_set) in zip(segments, named):
        assert all(len(batch) <= 4 for batch in rows)  # stream_batch_size defaults to the loader's
        seen = torch.cat(rows)
        expected = torch.cat([benchmark.id_set.features, ood_set.features])
        assert len(seen) == 2 * PER_LIST
        assert torch.equal(seen.sort(0).values, expected.sort(0).values)


def test_temporal_resets_once_per_seed(data_root, offline):
    postprocessor = TANLPostprocessor(**TANL_ARGS)
    recorders = _record_resets(postprocessor)
    _evaluator(data_root, postprocessor=postprocessor, protocol="temporal", seeds=[0, 1]).eval_ood(progress=False)
    assert len(recorders) == 1 and len(recorders[0].segments) == 2 + 1  # + the reset after the run
    assert recorders[0].segments[-1] == []


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
    fresh = TANLPostprocessor(**TANL_ARGS)
    summary, _ = evaluate(lambda: fresh.engine_for(TextBank.of(net)), benchmark, protocol, seeds=[3], batch_size=4)
    pd.testing.assert_frame_equal(table, evaluator_support.openood_table(summary))


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


def test_fsood_adds_the_csid_sets_to_the_id_side(data_root, offline):
    evaluator = _evaluator(data_root)
    table = evaluator.eval_ood(fsood=True, progress=False)
    assert list(table.index) == CIFAR10_INDEX and evaluator.metrics["fsood"] is table
    assert len(evaluator.benchmarks["fsood"].id_set) == 2 * PER_LIST  # cifar10 test + cifar10c


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


def test_by_name_with_the_shipped_config(data_root, offline, tmp_path):
    evaluator = tt.TestTimeEvaluator(CountingCLIP(), "cifar10", data_root=data_root, config_root=str(tmp_path),
                                     preprocessor=None, postprocessor_name="tanl", batch_size=4, num_workers=0)
    assert list(evaluator.eval_ood(progress=False).index) == CIFAR10_INDEX


def test_hyperparameter_search_runs_under_the_protocol(data_root, offline):
    config = {"postprocessor": {"name": "tanl", "APS_mode": True, "postprocessor_args": dict(TANL_ARGS),
                                "postprocessor_sweep": {"gap_list": [0.0, 0.3, 0.6]}}}
    postprocessor = TANLPostprocessor(config)
    evaluator = _evaluator(data_root, postprocessor=postprocessor, seeds=[0, 1])  # the search runs in __init__
    assert postprocessor.hyperparam_search_done
    assert {("id", "val"), ("ood", "val")} <= set(evaluator.features)
    benchmark = FeatureBenchmark("val", evaluator.features[("id", "val")],
                                 {"val": [evaluator.features[("ood", "val")]]})
    aurocs = []
    for gap in (0.0, 0.3, 0.6):
        fresh = TANLPostprocessor(config, gap=gap)
        summary, _ = evaluate(lambda: fresh.engine_for(TextBank.of(evaluator.net)), benchmark, "mixed",
                              seeds=[0, 1], batch_size=4)
        aurocs.append(summary.loc["ood_val", "AUROC"])
    assert postprocessor.args["gap"] == (0.0, 0.3, 0.6)[aurocs.index(max(aurocs))]
    assert list(evaluator.eval_ood(progress=False).index) == CIFAR10_INDEX


# ------------------------------------------------------------------------------------------ main.py pipeline
def test_the_pipeline_registration_is_idempotent_and_keeps_openoods_names():
    import openood.evaluators as evaluators
    import openood.pipelines.test_ood_pipeline as pipeline
    from openood.evaluators.ood_evaluator import OODEvaluator
    from openood.utils import Config

    assert registration.apply("pipeline") and registration.apply("pipeline")
    wrapped = pipeline.get_evaluator
    assert registration.apply("all") and pipeline.get_evaluator is wrapped is evaluators.get_evaluator
    config = Config(**{"evaluator": {"name": "test_time", "protocol": "temporal", "seeds": [1, 2]}})
    evaluator = pipeline.get_evaluator(config)
    assert isinstance(evaluator, tt.TestTimeOODEvaluator) and isinstance(evaluator, OODEvaluator)
    assert (evaluator.protocol, evaluator.seeds) == ("temporal", [1, 2])
    defaults = pipeline.get_evaluator(Config(**{"evaluator": {"name": "test_time"}}))
    assert (defaults.protocol, defaults.seeds) == ("mixed", [0])
    assert type(pipeline.get_evaluator(Config(**{"evaluator": {"name": "ood"}}))) is OODEvaluator
    with pytest.raises(ValueError, match="unknown protocol"):
        pipeline.get_evaluator(Config(**{"evaluator": {"name": "test_time", "protocol": "nope"}}))


def test_import_touches_openood_only_when_its_evaluation_api_is_imported():
    """In a fresh process: ``import openood_tanl`` imports no OpenOOD; importing OpenOOD's evaluation API then makes
    ``postprocessor_name="tanl"`` resolve; the pipeline lookups stay OpenOOD's until the entry point applies them."""
    code = ("import sys, openood_tanl; print('openood' in sys.modules); "
            "from openood.evaluation_api import Evaluator; import openood.evaluation_api.postprocessor as api; "
            "import openood.evaluation_api.evaluator as ev; "
            "print('tanl' in api.postprocessors, hasattr(ev.get_postprocessor, '_openood_tanl_wrapper')); "
            "import openood.pipelines.test_ood_pipeline as p; "
            "print(hasattr(p.get_evaluator, '_openood_tanl_wrapper'))")
    run = subprocess.run([sys.executable, "-c", code], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stdout.strip().splitlines()[-3:] == ["False", "True True", "False"]


def _write_yaml(path, data):
    import yaml

    path.write_text(yaml.safe_dump(data))
    return str(path)


@pytest.mark.slow  # OpenOOD's main.py pipeline in a subprocess
def test_main_pipeline_runs_the_test_time_evaluator(tmp_path):
    """python -m openood_tanl.main with evaluator.name: test_time writes OpenOOD's ood.csv from the mixed protocol."""
    pytest.importorskip("open_clip")
    from helpers.openood_data import main_pipeline_command

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
    # the images reached the CLIP network through its own (official CIFAR) transform, not OpenOOD's statistics
    assert "images reach the network through its own transform (official)" in run.stdout
    assert record["benchmarks"]["cifar10"]["text_bank"]["image_transform"]["family"] == "cifar"
