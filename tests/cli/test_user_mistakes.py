"""What a new user gets wrong, and what the package does about it: never a silent wrong answer, every mistake caught
before the expensive work, one readable line instead of a traceback."""
import os
import re
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

pytest.importorskip("open_clip")

from helpers.tiny_clip import TINY_MODEL, make_tiny_checkpoint  # noqa: E402
from openood_tanl import cli  # noqa: E402

CLASSES = ("class0", "class1", "class2")


def _images(folder: Path, count: int, tint: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(count):
        pixels = np.clip(rng.normal(tint, 40, (24, 24, 3)), 0, 255).astype(np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def _spec(path: Path, **id_entry) -> str:
    spec = {"name": "toy", "id": {"folder": "id", **id_entry},
            "ood": {"near": {"toy-near": {"folder": "near"}}, "far": {"toy-far": {"folder": "far"}}}}
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    return str(path)


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    root = tmp_path_factory.mktemp("mistakes")
    data = root / "data"
    for label, tint in enumerate((60, 120, 180)):
        _images(data / "id" / CLASSES[label], 8, tint, seed=label)
    _images(data / "near", 6, 100, seed=10)
    _images(data / "far", 6, 240, seed=11)
    (data / "empty").mkdir()
    _spec(data / "sorted.yml")
    _spec(data / "stated.yml", classes=list(CLASSES))
    for name, lines in {"colours.txt": ["red thing", "green thing", "blue thing"],
                        "two.txt": ["red thing", "green thing"],
                        "five.txt": ["a", "b", "c", "d", "e"],
                        "shuffled.txt": ["Class2", "class0", "CLASS1"]}.items():
        (root / name).write_text("\n".join(lines) + "\n")
    (root / "words.txt").write_text("".join(f"word{i}\n" for i in range(1200)))
    checkpoint = make_tiny_checkpoint(root / "tiny")
    common = ["--model", TINY_MODEL, "--model-config", str(root / "tiny" / f"{TINY_MODEL}.json"),
              "--pretrained", str(checkpoint), "--corpus", str(root / "words.txt"), "--cache-dir",
              str(root / "cache"), "--device", "cpu", "--workers", "0", "--data-root", str(data)]
    return root, common


def _run(args, capsys) -> tuple[int, str, str]:
    capsys.readouterr()
    code = cli.main(args)
    out, err = capsys.readouterr()
    return code, out, err


def _eval(tree, *extra, spec="stated.yml", classes="colours.txt"):
    root, common = tree
    return ["eval", "--method", "tanl", "--benchmark", str(root / "data" / spec), "--id-classes",
            str(root / classes), *common, "--batch-size", "8", *extra]


def _eval_on_a_copy(tree, tmp_path, *extra) -> tuple[list[str], Path]:
    """``_eval`` on a copy of the data tree (its images may be changed): (arguments, the copy)."""
    root, _ = tree
    data = tmp_path / "data"
    shutil.copytree(root / "data", data)
    args = _eval(tree, "--out", str(tmp_path / "out"), *extra)
    args[args.index("--benchmark") + 1] = str(data / "stated.yml")
    args[args.index("--data-root") + 1] = str(data)
    return args, data


@pytest.fixture
def no_model(monkeypatch):
    """Fail the test if a model is loaded or an image encoded: the checks must come first."""
    import openood_tanl.evaluation.extraction as features
    import openood_tanl.networks as networks

    def refuse(*args, **kwargs):
        raise AssertionError("a model was loaded before the arguments were checked")

    monkeypatch.setattr(networks, "create_network", refuse)
    monkeypatch.setattr(features, "extract_benchmark", refuse)


# ---------------------------------------------------------------------------- 1. the feature cache sees content
def test_replaced_images_are_re_encoded_not_served_from_the_cache(tree, capsys, tmp_path):
    args, data = _eval_on_a_copy(tree, tmp_path, "--set", "num_negatives=100")
    assert _run(args, capsys)[0] == 0
    table = tmp_path / "out" / "tanl-num_negatives100-toy-mixed.csv"
    before = pd.read_csv(table, index_col="dataset")
    shutil.rmtree(data / "far")
    _images(data / "far", 6, 20, seed=99)  # other images at the same paths
    code, _, err = _run(args, capsys)  # other images: another configuration, whose results are not the old ones
    assert code == 2 and "already holds" in err and "Pass --overwrite" in err
    args.append("--overwrite")
    with pytest.warns(RuntimeWarning, match="changed on disk since they were encoded"):
        assert _run(args, capsys)[0] == 0
    after = pd.read_csv(table, index_col="dataset")
    assert after.loc["toy-far", "AUROC"] != before.loc["toy-far", "AUROC"]
    fresh = [*args[:args.index("--cache-dir") + 1], str(tmp_path / "fresh"), *args[args.index("--cache-dir") + 2:]]
    fresh[fresh.index("--out") + 1] = str(tmp_path / "fresh-out")
    assert _run(fresh, capsys)[0] == 0
    expected = pd.read_csv(tmp_path / "fresh-out" / table.name, index_col="dataset")
    pd.testing.assert_frame_equal(after.drop(columns="config_id"), expected.drop(columns="config_id"))


# ------------------------------------------------------------------------ 2. ID labels against the class names
def test_class_folders_that_do_not_name_the_classes_are_refused(tree, capsys, no_model, tmp_path):
    for classes in ("two.txt", "five.txt", "colours.txt"):  # sorted folders class0..2 named by none of these
        code, _, err = _run(_eval(tree, "--out", str(tmp_path), spec="sorted.yml", classes=classes), capsys)
        assert code == 2
        assert "labelled by its 3 class folders in sorted order (class0, class1, class2), which do not name" in err
        assert "with 'classes' in the spec's id entry" in err


def test_a_stated_folder_order_needs_one_name_per_folder(tree, capsys, no_model, tmp_path):
    for classes, fragment in (("two.txt", "has 3 class folders but there are 2 class names"),
                              ("five.txt", "has 3 class folders but there are 5 class names")):
        code, _, err = _run(_eval(tree, "--out", str(tmp_path), classes=classes), capsys)
        assert code == 2 and fragment in err


def test_mappings_are_printed_and_folders_named_like_classes_are_matched_by_name(tree):
    from openood_tanl.classnames import class_names
    from openood_tanl.evaluation.datasets import load_benchmark, match_id_classes

    root, _ = tree
    stated = load_benchmark(root / "data" / "stated.yml")
    kept, line = match_id_classes(stated, class_names(root / "colours.txt"))
    assert kept is stated and "class0 -> 'red thing', class1 -> 'green thing', class2 -> 'blue thing'" in line
    # folders class0..2 against the names Class2, class0, CLASS1: the same names in another order
    relabelled, line = match_id_classes(load_benchmark(root / "data" / "sorted.yml"),
                                        class_names(root / "shuffled.txt"))
    assert "matched to the class names by name" in line and "class2 -> 'Class2'" in line
    folders = [Path(p).parent.name for p in relabelled.id_set.paths]
    assert [CLASSES.index(f) for f in folders] != relabelled.id_set.labels  # not the sorted order any more
    assert all(label == {"class2": 0, "class0": 1, "class1": 2}[folder]
               for folder, label in zip(folders, relabelled.id_set.labels))


def test_a_listed_label_outside_the_class_names_is_refused(tree, tmp_path):
    from openood_tanl.evaluation.datasets import load_benchmark, match_id_classes

    root, _ = tree
    image = next((root / "data" / "id" / "class0").iterdir())
    (tmp_path / "ids.txt").write_text(f"{image} 0\n{image} 3\n")
    spec = {"id": {"list": str(tmp_path / "ids.txt")}, "ood": {"far": {"far": {"folder": str(root / "data" / "far")}}}}
    (tmp_path / "list.yml").write_text(yaml.safe_dump(spec))
    with pytest.raises(ValueError, match=r"has label 3, but there are only 3 class names \(labels 0..2\)"):
        match_id_classes(load_benchmark(tmp_path / "list.yml"), ["a", "b", "c"])


# ---------------------------------------------------------------------------- 3. orders and seeds
@pytest.mark.parametrize("extra, fragment", [
    (["--protocol", "temporal", "--order", "toy-far"], "leaves out ['toy-near']"),
    (["--protocol", "temporal", "--order", "toy-far", "toy-far", "toy-near"], "repeats ['toy-far']"),
    (["--protocol", "temporal", "--order", "toy-far", "toy-nowhere", "toy-near"], "unknown OOD sets ['toy-nowhere']"),
    (["--order", "toy-far", "toy-near"], "applies to the temporal protocol only"),
    (["--seeds", "0", "0"], "repeat [0]: the same stream would be averaged with itself"),
])
def test_orders_and_seeds_that_would_drop_or_repeat_streams_are_refused(tree, capsys, no_model, tmp_path, extra,
                                                                        fragment):
    code, _, err = _run(_eval(tree, *extra, "--out", str(tmp_path)), capsys)
    assert code == 2 and fragment in err


# ---------------------------------------------------------------------------- 4. the sweep plot's axis
def test_the_sweep_axis_follows_the_values(tmp_path):
    from openood_tanl.evaluation.comparison import plot_sweep, sweep_axis

    assert sweep_axis([100, 300, 1000, 3000, 10000]) == "log"
    assert sweep_axis([0, 0.5, 0.95]) == "linear"  # alpha = 0 has no place on a log axis
    assert sweep_axis([1, 2, 4]) == "linear" and sweep_axis(["mixed", "id-first"]) == "category"
    import matplotlib.pyplot as plt

    seen = {}
    original = plt.Figure.savefig

    def record(figure, *args, **kwargs):
        seen["scales"] = [axis.get_xscale() for axis in figure.axes]
        seen["limits"] = figure.axes[0].get_xlim()
        return original(figure, *args, **kwargs)

    curve = pd.DataFrame({"alpha": [0.0, 0.5, 0.95], "FPR@95": [30.0, 20.0, 25.0], "AUROC": [90.0, 93.0, 92.0]})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(plt.Figure, "savefig", record)
        plot_sweep({"tanl": curve}, "alpha", tmp_path / "alpha.png")
    assert seen["scales"] == ["linear", "linear"] and seen["limits"][0] < 0.0 < seen["limits"][1]


# ---------------------------------------------------------------------------- 5. results are never overwritten
def test_results_of_another_configuration_are_never_overwritten(tree, capsys, tmp_path):
    out = str(tmp_path / "out")
    assert _run(_eval(tree, "--set", "num_negatives=100", "gap=0.5", "--out", out), capsys)[0] == 0
    assert _run(_eval(tree, "--set", "num_negatives=100", "gap=0.2", "--out", out), capsys)[0] == 0
    names = sorted(p.name for p in (tmp_path / "out").glob("*.csv"))
    assert "tanl-gap0.5-num_negatives100-toy-mixed.csv" in names  # the file names carry the settings
    assert "tanl-gap0.2-num_negatives100-toy-mixed.csv" in names
    first = (tmp_path / "out" / "tanl-gap0.5-num_negatives100-toy-mixed.csv").read_text()
    other_rules = _eval(tree, "--set", "num_negatives=100", "gap=0.5", "--corpus-rules", "clean", "--out", out)
    code, _, err = _run(other_rules, capsys)
    assert code == 2 and "already holds tanl-gap0.5-num_negatives100-toy-mixed.csv" in err
    assert "Pass --overwrite to replace them" in err
    assert (tmp_path / "out" / "tanl-gap0.5-num_negatives100-toy-mixed.csv").read_text() == first
    assert _run(_eval(tree, "--set", "num_negatives=100", "gap=0.5", "--out", out), capsys)[0] == 0  # same config
    assert _run([*other_rules, "--overwrite"], capsys)[0] == 0


# ---------------------------------------------------------------------------- 6. symbolic links
def test_symlink_loops_are_refused_and_every_real_file_is_listed_once(tmp_path):
    from openood_tanl.evaluation.datasets import scan_folder

    _images(tmp_path / "ood" / "sub", 5, 100, seed=3)
    (tmp_path / "ood" / "alias").symlink_to(tmp_path / "ood" / "sub")  # the same folder twice
    (tmp_path / "ood" / "sub" / "copy.png").symlink_to(tmp_path / "ood" / "sub" / "0.png")  # a file twice
    paths = scan_folder(tmp_path / "ood")
    assert len(paths) == 5 and len({Path(p).parent for p in paths}) == 1  # under one of the two folder paths
    (tmp_path / "ood" / "again").symlink_to(".")
    with pytest.raises(ValueError, match=r"symbolic link loop: .*again leads back to"):
        scan_folder(tmp_path / "ood")


def test_one_image_linked_into_two_classes_is_refused(tmp_path):
    from openood_tanl.evaluation.datasets import _folder_set

    _images(tmp_path / "id" / "cat", 2, 100, seed=4)
    (tmp_path / "id" / "dog").mkdir()
    (tmp_path / "id" / "dog" / "x.png").symlink_to(tmp_path / "id" / "cat" / "0.png")
    with pytest.raises(ValueError, match="is also linked under class folder"):
        _folder_set(tmp_path / "id", name="id", ood=False)


# ---------------------------------------------------------------------------- 7. numbers that are not numbers
def test_a_log_logit_scale_warns_and_strings_are_refused():
    from openood_tanl import TANL, configure
    from openood_tanl.synthetic import make_bank

    bank = make_bank(5, 300, 16, seed=0)
    args = (bank.id_text, bank.corpus_text, bank.noise_features)
    with pytest.warns(UserWarning, match=r"logit_scale=4.605 looks like CLIP's log scale .* e.g. 100"):
        TANL(*args, 4.605, num_negatives=100)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        TANL(*args, 100.0, num_negatives=100)
    cases = ((dict(gap="0.5"), TypeError, "gap must be a number, got '0.5'"),
             (dict(num_negatives="abc"), TypeError, "num_negatives must be an integer, got 'abc'"),
             (dict(seed=2**70), ValueError, r"seed must be in \[0, 9223372036854775807\]"),
             (dict(memory_length=None), TypeError, "memory_length must be an integer, got empty"))
    for kwargs, error, message in cases:
        with pytest.raises(error, match=message):
            TANL(*args, 100.0, **{"num_negatives": 100, **kwargs})
    with pytest.raises(TypeError, match="gap must be a number, got '0.5'"):  # refused before any bank is seen
        configure("tanl", gap="0.5")


# ---------------------------------------------------------------------------- 8. paths with '..'
def test_paths_with_dotdot_are_resolved(tree, tmp_path, monkeypatch):
    from openood_tanl.evaluation.datasets import load_benchmark

    root, _ = tree
    (tmp_path / "specs").mkdir()
    spec = {"id": {"folder": "../data/id", "classes": list(CLASSES)},
            "ood": {"far": {"far": {"folder": "../data/far"}}}}
    (tmp_path / "specs" / "up.yml").write_text(yaml.safe_dump(spec))
    shutil.copytree(root / "data", tmp_path / "data")
    benchmark = load_benchmark(tmp_path / "specs" / "up.yml")
    assert len(benchmark.id_set) == 24 and sorted(set(benchmark.id_set.labels)) == [0, 1, 2]
    monkeypatch.chdir(tmp_path / "specs")
    assert len(load_benchmark("up.yml", "../data/../data").id_set) == 24


def test_four_ood_data_root_with_dotdot(tmp_path, monkeypatch):
    from openood_tanl.evaluation.datasets import load_benchmark

    for index in range(1000):
        (tmp_path / "data" / "imagenet" / "val" / f"n{index:08d}").mkdir(parents=True)
    _images(tmp_path / "data" / "imagenet" / "val" / "n00000000", 1, 100, seed=5)
    for name in ("iNaturalist", "SUN", "Places", "Textures"):
        _images(tmp_path / "data" / name, 1, 100, seed=6)
    (tmp_path / "work").mkdir()
    monkeypatch.chdir(tmp_path / "work")
    benchmark = load_benchmark("four-ood", "../data")
    assert len(benchmark.id_set) == 1 and benchmark.id_set.labels == [0]


# ---------------------------------------------------------------------------- 9. and 10. checked before the work
def test_everything_is_checked_before_a_model_is_loaded(tree, capsys, no_model, tmp_path):
    root, common = tree
    (tmp_path / "file").write_text("not a folder")
    (tmp_path / "broken.yml").write_text("id: {folder: id\nood: [\n")
    (tmp_path / "keys.yml").write_text("id: {folder: id}\nood: {far: {f: {folder: far}}}\ncolour: red\n")
    (tmp_path / "gone.yml").write_text("id: {folder: nowhere}\nood: {far: {f: {folder: far}}}\n")
    (tmp_path / "empty.yml").write_text(f"id: {{folder: {root / 'data' / 'id'}}}\nood: {{far: {{f: {{folder: "
                                        f"{root / 'data' / 'empty'}}}}}}}\n")
    spec = str(root / "data" / "stated.yml")
    cases = [
        (["--benchmark", "imagenet-21k"], "unknown benchmark 'imagenet-21k'"),
        (["--method", "tnal"], "unknown method 'tnal'"),
        (["--set", "gapp=0.5"], "unknown key 'gapp' (did you mean 'gap'?)"),
        (["--set", "gap=abc"], "gap must be a number, got 'abc'"),
        (["--set", "gap="], "gap must be a number, got empty"),
        (["--set", "seed=[1,2]"], "seed must be an integer, got [1, 2]"),
        (["--set", "beta=10"], "'beta' is the official name of 'num_negatives'"),
        (["--out", str(tmp_path / "file")], "is a file; give a folder"),
        (["--benchmark", str(tmp_path / "broken.yml")], "is not valid YAML at line 2"),
        (["--benchmark", str(tmp_path / "keys.yml")], "unknown keys ['colour']"),
        (["--benchmark", str(tmp_path / "gone.yml")], "does not exist"),
        (["--benchmark", str(tmp_path / "empty.yml")], "has empty sets ['f']"),
        (["--corpus", str(tmp_path / "no-words")], "is neither a built-in corpus"),
        (["--model", "ViT-Q-99"], "unknown open_clip model 'ViT-Q-99'"),
        (["--precision", "fp16"], "needs a CUDA device"),
    ]
    for extra, fragment in cases:
        args = ["eval", "--method", "tanl", "--benchmark", spec, "--id-classes", str(root / "colours.txt"), *common,
                "--out", str(tmp_path / "out")]
        for flag, value in zip(extra[::2], extra[1::2]):
            if flag in args:
                args[args.index(flag) + 1] = value
            else:
                args += [flag, value]
        code, _, err = _run(args, capsys)
        lines = err.strip().splitlines()
        assert code == 2, (extra, err)
        assert lines[0].startswith("openood-tanl eval: error: ") and fragment in lines[0], (extra, err)
        assert lines[1:] == ["(run with --debug, or OPENOOD_TANL_DEBUG=1, for the traceback)"], (extra, err)
    code, _, err = _run(["leaderboard", "--methods", "mcm", "--benchmarks", spec, spec, "--id-classes",
                         str(root / "colours.txt"), *common, "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and "--benchmarks names" in err and "more than once" in err
    with pytest.raises(ValueError, match="unknown benchmark"):  # --debug: the traceback
        cli.main(["eval", "--method", "tanl", "--benchmark", "imagenet-21k", *common, "--debug"])


def test_bounds_that_need_the_text_bank_are_checked_before_any_image_is_encoded(tree, capsys, monkeypatch, tmp_path):
    import openood_tanl.evaluation.extraction as features

    monkeypatch.setattr(features, "extract_benchmark", lambda *a, **k: pytest.fail("encoded images"))
    code, _, err = _run(_eval(tree, "--set", "num_negatives=5000", "--out", str(tmp_path)), capsys)
    assert code == 2 and "num_negatives must be in [1, 1200], got 5000 (the corpus has 1200 words)" in err


def test_usage_errors_exit_with_code_2(tree, capsys):
    with pytest.raises(SystemExit) as exited:
        cli.main(_eval(tree, "--batch-size", "0"))
    assert exited.value.code == 2 and "expected a whole number >= 1, got 0" in capsys.readouterr().err


# ---------------------------------------------------------------------------- 12. the command itself
def test_help_is_fast_and_imports_no_heavy_library():
    code = ("import sys, time; t = time.time(); from openood_tanl.cli import build_parser; "
            "build_parser().format_help(); "
            "print(sorted(m for m in ('torch', 'pandas', 'sklearn') if m in sys.modules))")
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    import importlib.util

    if importlib.util.find_spec("openood") is None:  # with OpenOOD, importing the package registers with it
        assert result.stdout.strip() == "[]"


def test_help_texts_show_their_defaults(capsys):
    for command, fragments in (("extract", ["images per forward pass (default: 256)"]),
                               ("sweep", ["(default: ['100', '300', '1000', '3000', '10000'])",
                                          "(default: ['tanl', 'neglabel'])"]),
                               ("demo", ["(default: 0)", "(default: tanl-demo)"]),
                               ("eval", ["--verify", "--overwrite", "(default: 256)"])):
        with pytest.raises(SystemExit):
            cli.main([command, "--help"])
        text = " ".join(capsys.readouterr().out.split())
        for fragment in fragments:
            assert fragment in text, (command, fragment)


def test_no_progress_bars_in_logs(tree, capsys, tmp_path):
    root, common = tree
    args = ["extract", "--benchmark", str(root / "data" / "stated.yml"), "--id-classes", str(root / "colours.txt"),
            *common]
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cache")
    code, out, err = _run(args, capsys)  # stderr is not a terminal here, as in a log file
    assert code == 0 and "toy-far: 6 images" in out
    assert "it/s" not in err and "img/s" not in err and "%|" not in err


def test_no_test_names_a_machine_specific_path():
    for path in Path(__file__).parents[1].rglob("*.py"):
        assert "/opt/" + "openood-venv" not in path.read_text(), path.name


# ---------------------------------------------------------------------------- 13. the README's examples
def _readme() -> str:
    return (Path(__file__).resolve().parents[2] / "README.md").read_text()


def test_readme_spec_example_loads(tmp_path):
    from openood_tanl.evaluation.datasets import load_benchmark

    blocks = re.findall(r"```yaml\n(.*?)```", _readme(), re.S)
    spec = next(b for b in blocks if "ood:" in b and "classes:" in b)
    parsed = yaml.safe_load(spec)
    for name in parsed["id"]["classes"]:
        _images(tmp_path / parsed["id"]["folder"] / name, 1, 100, seed=7)
    for group in parsed["ood"].values():
        for entry in group.values():
            _images(tmp_path / entry["folder"], 1, 100, seed=8)
    (tmp_path / "bench.yml").write_text(spec)
    benchmark = load_benchmark(tmp_path / "bench.yml", tmp_path)
    assert benchmark.id_set.class_order_given and set(benchmark.ood_groups) == set(parsed["ood"])


def test_readme_openood_snippets_pass_the_clip_preprocessor():
    snippets = [s for s in re.findall(r"```python\n(.*?)```", _readme(), re.S) if "Evaluator(" in s]
    assert snippets and all("preprocessor=preprocess" in s for s in snippets)
    assert _readme().index("TestTimeEvaluator(") < _readme().index("from openood.evaluation_api import Evaluator")


# ---------------------------------------------------------------------------------------------------------------
# round two: an adversarial user
def _spec_file(path: Path, ood: dict, **extra) -> str:
    path.write_text(yaml.safe_dump({"name": "toy", "id": {"folder": "id", "classes": list(CLASSES)}, "ood": ood,
                                    **extra}, sort_keys=False))
    return str(path)


@pytest.mark.parametrize("ood, clash", [
    ({"near": {"x": {"folder": "near"}}, "far": {"x": {"folder": "far"}}}, "'x' appears twice"),
    ({"near": {"farood": {"folder": "near"}}, "far": {"y": {"folder": "far"}}}, "named like the mean row"),
    ({"near": {"a": {"folder": "near"}}, "nearood": {"b": {"folder": "far"}}}, "would share the mean row"),
])
def test_set_names_that_would_collide_in_the_tables_are_refused(tree, capsys, no_model, tmp_path, ood, clash):
    root, _ = tree
    spec = _spec_file(root / "data" / f"clash-{abs(hash(clash))}.yml", ood)
    code, _, err = _run(_eval(tree, "--out", str(tmp_path / "out"), spec=Path(spec).name), capsys)
    assert code == 2 and clash in err and "Traceback" not in err


def test_a_leaderboard_has_the_columns_of_every_group(tree, capsys, tmp_path):
    root, common = tree
    spec = _spec_file(root / "data" / "groups.yml",
                      {"hard": {"h": {"folder": "near"}}, "easy": {"e": {"folder": "far"}}})
    args = ["leaderboard", "--methods", "mcm", "--benchmarks", spec, "--id-classes", str(root / "colours.txt"),
            *common, "--batch-size", "8", "--out", str(tmp_path / "board")]
    assert _run(args, capsys)[0] == 0
    board = pd.read_csv(tmp_path / "board" / "leaderboard.csv", index_col="method")
    for column in ("toy hardood AUROC", "toy easyood AUROC", "toy hardood FPR@95", "toy easyood FPR@95(ID+)",
                   "toy id ACC"):
        assert column in board.columns and board[column].notna().all(), column


def test_the_run_identity_follows_its_images(tree, capsys, tmp_path):
    args, data = _eval_on_a_copy(tree, tmp_path, "--set", "num_negatives=100")
    assert _run(args, capsys)[0] == 0
    record = yaml.safe_load((tmp_path / "out" / "tanl-num_negatives100-toy-mixed.run.json").read_text())
    images = record["benchmarks"]["toy"]["images"]
    assert images["toy-far"]["images"] == 6 and images["toy"]["group"] == "id"
    assert len(images["toy"]["files_sha256"]) == 64
    assert record["benchmarks"]["toy"]["streams"]["toy-far"] == {"id": 24, "ood": 6}
    _images(data / "far" / "more", 1, 200, seed=5)  # one more OOD image: another run
    code, _, err = _run(args, capsys)
    assert code == 2 and "already holds" in err


def test_files_of_other_types_are_reported_and_16_bit_images_scaled(tmp_path):
    from openood_tanl.evaluation.datasets import SkippedFileWarning, read_rgb, scan_folder

    (tmp_path / "a.png").write_bytes(b"")
    Image.new("RGB", (4, 4)).save(tmp_path / "b.gif")
    (tmp_path / ".hidden").write_text("x")
    with pytest.warns(SkippedFileWarning, match=r"1 file\(s\) not read as images \(1 \.gif\).*only \.jpg"):
        assert scan_folder(tmp_path) == [str(tmp_path / "a.png")]
    deep = np.full((6, 6), 60000, np.uint16)
    Image.fromarray(deep).save(tmp_path / "deep.png")
    pixels = np.asarray(read_rgb(str(tmp_path / "deep.png")))
    assert pixels.shape == (6, 6, 3) and int(pixels.max()) == 60000 * 255 // 65535  # not clipped to white


def test_unreadable_images_are_named_before_any_model_loads(tree, capsys, no_model, tmp_path):
    args, data = _eval_on_a_copy(tree, tmp_path)
    (data / "far" / "0.png").write_bytes(b"")  # empty
    (data / "near" / "0.png").write_text("not an image")
    code, _, err = _run(args, capsys)
    assert code == 2 and "2 image(s) of benchmark 'toy' cannot be read" in err and "0.png" in err
    assert len(err.strip().splitlines()) == 2  # the message and the --debug hint


def test_a_thin_stream_is_warned_about_with_its_counts(tree, capsys, tmp_path):
    from openood_tanl.evaluation.streams import DegenerateStreamWarning

    with pytest.warns(DegenerateStreamWarning, match=r"toy-near \(24 ID, 1 OOD\).*--id-ood-ratio 1000"):
        assert _run(_eval(tree, "--out", str(tmp_path / "out"), "--id-ood-ratio", "1000",
                          "--set", "num_negatives=100"), capsys)[0] == 0


def test_one_run_writes_into_a_folder_at_a_time_and_a_failed_one_leaves_no_folder(tree, capsys, no_model, tmp_path):
    from openood_tanl.evaluation.feature_cache import FileLock

    out = tmp_path / "busy"
    out.mkdir()
    held = FileLock(out / cli.OUTPUT_LOCK)
    assert held.acquire(blocking=False)
    try:
        code, _, err = _run(_eval(tree, "--out", str(out)), capsys)
        assert code == 2 and "another openood-tanl run is writing into --out" in err
    finally:
        held.release()
    fresh = tmp_path / "never"
    code, _, _ = _run(_eval(tree, "--out", str(fresh), "--set", "gap=7"), capsys)
    assert code == 2 and not fresh.exists()


def test_overwriting_removes_the_old_record_before_writing(tree, capsys, tmp_path, monkeypatch):
    out = tmp_path / "out"
    assert _run(_eval(tree, "--out", str(out), "--set", "num_negatives=100"), capsys)[0] == 0
    record = out / "tanl-num_negatives100-toy-mixed.run.json"
    from openood_tanl.embedding_cache import _umask

    assert record.exists() and oct(record.stat().st_mode & 0o777) == oct(0o666 & ~_umask())

    def fail(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(cli.writers, "write_record", fail)
    code, _, err = _run(_eval(tree, "--out", str(out), "--set", "num_negatives=100", "--overwrite"), capsys)
    assert code == 2 and "disk full" in err
    assert not record.exists()  # no record vouches for files of another run


@pytest.mark.parametrize("spec_text, message", [
    ("name: [1, 2]\nid: {folder: id}\nood: {far: {x: {folder: far}}}\n", "'name' must be a string, got list"),
    ("name: toy\nid: {folder: [id]}\nood: {far: {x: {folder: far}}}\n", "'folder' must be a path"),
    ("a: &a [x, x]\nb: &b [*a, *a]\nname: toy\n", "YAML aliases"),
])
def test_spec_values_are_type_checked_and_aliases_refused(tree, capsys, no_model, tmp_path, spec_text, message):
    root, _ = tree
    spec = root / "data" / f"typed-{abs(hash(message))}.yml"
    spec.write_text(spec_text)
    code, _, err = _run(_eval(tree, "--out", str(tmp_path / "out"), spec=spec.name), capsys)
    assert code == 2 and message in err


def test_smaller_mistakes_get_one_line_each(tree, capsys, no_model, tmp_path):
    root, _ = tree
    (tmp_path / "cache-file").write_text("x")
    args = _eval(tree, "--out", str(tmp_path / "o1"))
    args[args.index("--cache-dir") + 1] = str(tmp_path / "cache-file")
    code, _, err = _run(args, capsys)
    assert code == 2 and "--cache-dir" in err and "is a file" in err
    (tmp_path / "trace-file").write_text("x")
    code, _, err = _run(_eval(tree, "--out", str(tmp_path / "o2"), "--trace", str(tmp_path / "trace-file")), capsys)
    assert code == 2 and "--trace" in err and "is a file" in err
    code, _, err = _run(_eval(tree, "--out", str(tmp_path / "o3"), "--set", "gap=0.1", "gap=0.9"), capsys)
    assert code == 2 and "gives 'gap' twice" in err


def test_a_bom_is_not_part_of_the_first_class_name(tmp_path):
    import openood_tanl

    (tmp_path / "names.txt").write_bytes("\ufeffred thing\ngreen thing\n".encode("utf-8"))
    assert openood_tanl.class_names(tmp_path / "names.txt") == ["red thing", "green thing"]


def test_interrupting_prints_one_line(tree, capsys, monkeypatch):
    def interrupted(args):
        raise KeyboardInterrupt

    monkeypatch.setattr(cli.commands, "cmd_eval", interrupted)  # the parser binds the command when main() builds it
    code, _, err = _run(_eval(tree), capsys)
    assert code == 130 and err.strip() == "openood-tanl eval: interrupted"


def test_a_missing_gpu_is_named_before_the_model(tree, capsys, no_model, tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    code, _, err = _run([*_eval(tree, "--out", str(tmp_path / "out")), "--device", "cuda"], capsys)
    assert code == 2 and "--device cuda" in err and "download" not in err


def test_a_trace_that_never_settles_says_not_recovered():
    from openood_tanl.evaluation.traces import Tracer

    tracer = Tracer.__new__(Tracer)
    tracer._segments = [("a", 0), ("b", 10)]
    records = [{"segment": "b", "seen": 10 + 5 * i, "window_auroc": 50.0 if i % 2 else 90.0,
                "recovery_samples": float("nan")} for i in range(1, 9)]
    tracer._recovery(records)
    assert records[0]["recovery_samples"] == float("inf")


def test_a_text_bank_of_mismatched_dimensions_is_refused():
    import torch

    import openood_tanl

    bank = openood_tanl.TextBank(torch.randn(3, 8), torch.randn(20, 16), torch.randn(4, 8))
    for method in ("mcm", "neglabel", "tanl"):
        with pytest.raises(ValueError, match=r"does not fit together: id_text_features \[3, 8\], "
                                             r"corpus_text_features \[20, 16\]"):
            openood_tanl.create_engine(method, bank)


def test_the_openood_adapter_names_its_install_command_without_openood():
    import importlib.util

    if importlib.util.find_spec("openood") is not None:
        pytest.skip("OpenOOD is installed here")
    import openood_tanl

    with pytest.raises(ImportError, match="pip install git\\+https://github.com/Jingkang50/OpenOOD"):
        openood_tanl.TANLPostprocessor()


def test_a_sweep_value_given_twice_is_refused(tree, capsys, no_model, tmp_path):
    root, common = tree
    args = ["sweep", "--methods", "tanl", "--argument", "num_negatives", "--values", "100", "100.0", "--benchmark",
            str(root / "data" / "stated.yml"), "--id-classes", str(root / "colours.txt"), *common,
            "--out", str(tmp_path / "sweep")]
    code, _, err = _run(args, capsys)
    assert code == 2 and "repeat a value" in err
