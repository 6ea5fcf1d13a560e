"""The openood-tanl commands end to end on a generated image tree with the tiny random open_clip model."""
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

pytest.importorskip("open_clip")

from openood_tanl import cli  # noqa: E402
from tiny_clip import TINY_MODEL, make_tiny_checkpoint  # noqa: E402


@pytest.fixture(scope="module")
def workspace(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    rng = np.random.default_rng(0)

    def images(folder, count, tint):
        folder.mkdir(parents=True)
        for i in range(count):
            pixels = np.clip(rng.normal(tint, 40, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(folder / f"{i}.png")

    for label, tint in enumerate((60, 120, 180)):
        images(root / "data" / "id" / f"class{label}", 12, tint)
    images(root / "data" / "near", 10, 100)
    images(root / "data" / "far", 10, 240)
    spec = {"name": "toy", "id": {"folder": "id"}, "ood": {"near": {"toy-near": {"folder": "near"}},
                                                            "far": {"toy-far": {"folder": "far"}}}}
    (root / "data" / "toy.yml").write_text(yaml.safe_dump(spec, sort_keys=False))
    (root / "classes.txt").write_text("red thing\ngreen thing\nblue thing\n")
    (root / "words.txt").write_text("".join(f"word{i}\n" for i in range(1200)))
    checkpoint = make_tiny_checkpoint(root / "tiny")
    for name, args in {"neglabel": {"num_negatives": 200, "num_groups": 4},
                       "adaneg": {"num_negatives": 200, "num_groups": 4}}.items():
        (root / f"{name}-small.yml").write_text(yaml.safe_dump(
            {"postprocessor": {"name": name, "postprocessor_args": args}}))
    common = ["--model", TINY_MODEL, "--model-config", str(root / "tiny" / f"{TINY_MODEL}.json"),
              "--pretrained", str(checkpoint), "--id-classes", str(root / "classes.txt"),
              "--corpus", str(root / "words.txt"), "--cache-dir", str(root / "cache"), "--device", "cpu",
              "--workers", "0", "--data-root", str(root / "data")]
    return root, common


def test_extract_then_eval_reads_the_cache(workspace, monkeypatch, capsys):
    root, common = workspace
    benchmark = str(root / "data" / "toy.yml")
    assert cli.main(["extract", "--benchmark", benchmark, *common]) == 0
    assert "toy-near: 10 images" in capsys.readouterr().out
    assert list((root / "cache" / "features").iterdir())

    import openood_tanl.evaluation.features as features

    monkeypatch.setattr(features.ImageDataset, "__getitem__",
                        lambda *a: (_ for _ in ()).throw(AssertionError("re-encoded an image")))
    out = root / "eval"
    assert cli.main(["eval", "--method", "tanl", "--set", "num_negatives=100", "memory_length=20",
                     "--benchmark", benchmark, *common, "--seeds", "0", "1", "--batch-size", "8",
                     "--out", str(out)]) == 0
    table = pd.read_csv(out / "tanl-toy-mixed.csv", index_col="dataset")
    assert list(table.index) == ["toy-near", "nearood", "toy-far", "farood"]
    assert {"AUROC", "FPR@95", "FPR@95(ID+)", "AUROC_std"} <= set(table.columns)
    per_seed = pd.read_csv(out / "tanl-toy-mixed-per-seed.csv")
    assert sorted(per_seed["seed"].unique()) == [0, 1]


def test_leaderboard_and_sweep(workspace):
    root, common = workspace
    benchmark = str(root / "data" / "toy.yml")
    out = root / "board"
    methods = ["mcm", "tanl", str(root / "neglabel-small.yml"), str(root / "adaneg-small.yml")]
    assert cli.main(["leaderboard", "--methods", *methods, "--benchmarks", benchmark, *common,
                     "--batch-size", "8", "--out", str(out)]) == 0
    board = pd.read_csv(out / "leaderboard.csv", index_col="method")
    assert len(board) == 4 and "toy farood AUROC" in board.columns
    assert "**" in (out / "leaderboard.md").read_text()

    out = root / "sweep"
    assert cli.main(["sweep", "--methods", "tanl", str(root / "neglabel-small.yml"), "--values", "50", "200",
                     "--benchmark", benchmark, *common, "--batch-size", "8", "--out", str(out)]) == 0
    curve = pd.read_csv(out / "sweep.csv")
    assert list(curve["num_negatives"]) == [50, 200, 50, 200]
    assert (out / "sweep.png").stat().st_size > 10000


def test_temporal_protocol_and_bad_input(workspace, capsys):
    root, common = workspace
    benchmark = str(root / "data" / "toy.yml")
    assert cli.main(["eval", "--method", "mcm", "--benchmark", benchmark, *common, "--protocol", "temporal",
                     "--order", "toy-far", "toy-near", "--out", str(root / "temporal")]) == 0
    with pytest.raises(SystemExit):
        cli.main(["eval", "--method", "mcm", "--benchmark", benchmark, *common, "--protocol", "shuffled"])
    with pytest.raises(SystemExit, match="pass --id-classes"):
        cli.main(["eval", "--method", "mcm", "--benchmark", benchmark, *common[:6]])


def test_help_is_readable(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in ("demo", "extract", "eval", "leaderboard", "sweep"):
        assert command in text
