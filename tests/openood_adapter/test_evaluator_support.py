"""The OpenOOD adapters' OpenOOD-free parts, everywhere: sweep grids, settings, encoding loaders, OpenOOD's table
layout, and the package without OpenOOD."""
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch

from openood_tanl.evaluation.protocols import check_protocol, check_seeds
from openood_tanl.openood import evaluator_support as tt

REPO = str(Path(__file__).resolve().parents[2])
OPENOOD_LAYOUT = ["FPR@95", "AUROC", "AUPR_IN", "AUPR_OUT", "ACC"]


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
    assert check_seeds([0, 1]) == [0, 1] and check_seeds(3) == [3] and check_seeds("0, 2") == [0, 2]
    with pytest.raises(ValueError, match="at least one"):
        check_seeds([])
    with pytest.raises(ValueError, match="repeat"):
        check_seeds([1, 1])
    with pytest.raises(ValueError, match="unknown protocol"):
        check_protocol("shuffled")
    with pytest.raises(TypeError, match="needs an openood_tanl postprocessor"):
        tt.require_engine_postprocessor(object())


def test_encode_loader_uses_the_networks_device_and_marks_ood():
    from helpers.doubles import TinyCLIPDouble

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


def test_the_package_works_without_openood_and_the_adapters_say_why(tmp_path):
    """With OpenOOD unimportable: openood_tanl imports and runs, registration is a no-op, the adapters say why."""
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
        from openood_tanl.openood import registration
        from openood_tanl.synthetic import make_bank
        from openood_tanl.bank import TextBank
        bank = make_bank(5, 300, 16, seed=0)
        engine = openood_tanl.create_engine("tanl", TextBank(bank.id_text, bank.corpus_text, bank.noise_features),
                                            num_negatives=50)
        assert registration.apply("all") is False
        for name in ("TestTimeEvaluator", "TANLPostprocessor"):
            try:
                getattr(openood_tanl, name)
            except ImportError as error:
                assert "openood blocked" in str(error), error
            else:
                raise AssertionError(name + " without OpenOOD")
        print("ok")
    """))
    run = subprocess.run([sys.executable, str(script)], env=_env(), capture_output=True, text=True, timeout=300)
    assert run.returncode == 0 and run.stdout.strip().endswith("ok"), run.stdout[-2000:] + run.stderr[-2000:]


# ------------------------------------------------------------------------------------------ APS search, in lockstep
@pytest.fixture(scope="module")
def small():
    from openood_tanl.synthetic import synthetic_benchmark

    return synthetic_benchmark(seed=2, num_classes=12, corpus_size=2500, dim=32, num_id=240, num_ood=80)


def test_the_search_grid_in_lockstep_equals_a_separate_replay_per_point(small):
    from openood_tanl import configure
    from openood_tanl.evaluation import StreamSettings, evaluate

    bank, benchmark = small
    args = dict(configure("tanl", num_negatives=60).hyperparameters)
    grid = {"gap": [0.1, 0.3], "num_negatives": [40, 120]}
    results = tt.search_grid("tanl", args, grid, bank, benchmark, StreamSettings("ood-first", 48), seeds=[0, 5])
    assert [combo for combo, _ in results] == tt.sweep_combinations(grid)
    names = [ood_set.name for _, ood_set in benchmark.ood_sets()]
    for combo, auroc in results:
        point = configure("tanl", args, **dict(zip(grid, combo)))
        summary, _ = evaluate(point.factory(bank), benchmark, "ood-first", seeds=[0, 5], batch_size=48)
        assert auroc == float(summary.loc[names, "AUROC"].mean()), combo  # bitwise


class _GridPostprocessor:
    """What ``search_sweep`` reads of an EnginePostprocessor (no OpenOOD needed)."""

    name = "neglabel"

    def __init__(self, args_dict):
        from openood_tanl import configure

        self.args = dict(configure("neglabel", num_negatives=200, num_groups=1).hyperparameters)
        self.args_dict = args_dict
        self.chosen = None

    def engine_for(self, bank):
        raise AssertionError("search_sweep builds its engines from the configuration")

    def _swept_arg(self, key):
        return key

    def set_hyperparam(self, combo):
        self.chosen = list(combo)

    def get_hyperparam(self):
        return self.chosen


def test_search_sweep_keeps_the_first_of_tied_points_and_says_so(small, capsys):
    bank, benchmark = small
    postprocessor = _GridPostprocessor({"seed": [0, 1, 2]})  # one group: the shuffle's seed changes nothing
    best, auroc, results = tt.search_sweep(postprocessor, bank, benchmark, batch_size=64)
    assert best == [0] and postprocessor.chosen == [0] and len({a for _, a in results}) == 1
    assert auroc == results[0][1]
    out = capsys.readouterr().out
    assert "3 combinations tie at the best AUROC" in out and "keeping the first" in out
    assert out.count("Hyperparam: [") == 3 and "Final hyperparam: [0]" in out


# ------------------------------------------------------------------------------------------ the network: section
def test_the_network_section_is_text_bank_settings():
    import openood_tanl
    from openood_tanl.networks import TextBankSettings
    from openood_tanl.openood import registration
    from openood_tanl.yaml_files import load_yaml

    shipped = dict(load_yaml(openood_tanl.config_root() / "networks" / "clip_tanl.yml")["network"], num_gpus=0)
    assert registration.network_settings(shipped) == TextBankSettings(device="cpu")  # the shipped values: defaults
    section = {**shipped, "model": "RN50", "weights": "none", "id_classes": "cifar10", "precision": "official-fp16",
               "quick_gelu": None, "device": "cuda:1", "negmining": "official"}
    assert registration.network_settings(section) == TextBankSettings("RN50", None, "cifar10", device="cuda:1",
                                                                      precision="official-fp16", negmining="official")
    with pytest.raises(ValueError, match=r"the network: section: unknown key 'presicion' \(did you mean "
                                         r"'precision'\?\). Valid keys: model, weights, id_classes"):
        registration.network_settings({**shipped, "presicion": "fp16"})
