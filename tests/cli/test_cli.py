"""The openood-tanl commands end to end on a generated image tree with the tiny random open_clip model."""
import numpy as np
import pandas as pd
import pytest
import yaml
from PIL import Image

pytest.importorskip("open_clip")

from helpers.tiny_clip import TINY_CONFIG, TINY_MODEL, make_tiny_checkpoint  # noqa: E402

TINY_TEXT = TINY_CONFIG["text_cfg"]
from openood_tanl import cli  # noqa: E402


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
    spec = {"name": "toy", "id": {"folder": "id", "classes": ["class0", "class1", "class2"]},
            "ood": {"near": {"toy-near": {"folder": "near"}}, "far": {"toy-far": {"folder": "far"}}}}
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

    import openood_tanl.evaluation.extraction as features

    monkeypatch.setattr(features.ImageDataset, "__getitem__",
                        lambda *a: (_ for _ in ()).throw(AssertionError("re-encoded an image")))
    out = root / "eval"
    assert cli.main(["eval", "--method", "tanl", "--set", "num_negatives=100", "memory_length=20",
                     "--benchmark", benchmark, *common, "--seeds", "0", "1", "--batch-size", "8",
                     "--out", str(out)]) == 0
    table = pd.read_csv(out / "tanl-memory_length20-num_negatives100-toy-mixed.csv", index_col="dataset")
    assert list(table.index) == ["toy-near", "nearood", "toy-far", "farood"]
    assert {"AUROC", "FPR@95", "FPR@95(ID+)", "AUROC_std"} <= set(table.columns)
    per_seed = pd.read_csv(out / "tanl-memory_length20-num_negatives100-toy-mixed-per-seed.csv")
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
    markdown = (out / "leaderboard.md").read_text()
    assert "**" in markdown
    # a line per method naming its key settings, the YAML's values included (neglabel-small: 200 negatives)
    assert "- `neglabel-small` (neglabel): num_negatives 200 [ood_number], num_groups" in markdown
    assert "- `mcm`: temperature 1.0 [tau]; the temperature divides CLIP's scaled logits" in markdown
    assert "- `tanl`: num_negatives 1000 [beta], memory_length 300 [memleng], gap 0.2, alpha 0.95" in markdown
    assert "- `adaneg-small` (adaneg): num_negatives" in markdown

    out = root / "sweep"
    assert cli.main(["sweep", "--methods", "tanl", str(root / "neglabel-small.yml"), "--values", "50", "200",
                     "--benchmark", benchmark, *common, "--batch-size", "8", "--out", str(out)]) == 0
    curve = pd.read_csv(out / "sweep.csv")
    assert list(curve["num_negatives"]) == [50, 200, 50, 200]
    assert (out / "sweep.png").stat().st_size > 10000


def test_leaderboard_with_csp_builds_its_own_text_bank(workspace, capsys):
    """csp beside the other five in one replay: CSP's text bank from the same --corpus folder, its rules and
    prompts; the run record names both banks; a corpus CSP cannot read is named before any model loads."""
    import json

    root, common = workspace
    folder = root / "txtfiles"
    folder.mkdir(exist_ok=True)
    (folder / "noun.artifact.txt").write_text("".join(f"thing{i}\n" for i in range(900)))
    (folder / "adj.all.txt").write_text("".join(f"shade{i}\n" for i in range(300)))
    (folder / "noun.person.txt").write_text("driver\n")
    common = [*common[:common.index("--corpus") + 1], str(folder), *common[common.index("--corpus") + 2:]]
    benchmark = str(root / "data" / "toy.yml")
    out = root / "board-csp"
    methods = ["mcm", str(root / "neglabel-small.yml"), "csp", str(root / "adaneg-small.yml"), "oodd", "tanl"]
    assert cli.main(["leaderboard", "--methods", *methods, "--benchmarks", benchmark, *common,
                     "--batch-size", "8", "--out", str(out)]) == 0  # the paper's six, on a YAML spec
    board = pd.read_csv(out / "leaderboard.csv", index_col="method")
    assert list(board.index) == ["mcm", "neglabel-small", "csp", "adaneg-small", "oodd", "tanl"]
    assert board.notna().all().all()
    record = json.loads((out / "leaderboard.run.json").read_text())
    text_bank = record["benchmarks"]["toy"]["text_bank"]
    assert text_bank["prompts"]["templates"] == "official" and text_bank["corpus"]["words"] == 1201
    own = text_bank["method_banks"]["csp"]
    assert own["prompts"]["templates"] == "csp" and own["corpus"]["rules"] == "csp" and own["corpus"]["words"] == 1200
    checkpoint = common[common.index("--pretrained") + 1]
    assert text_bank["logit_scale"] == own["logit_scale"] == _logit_scale(TINY_MODEL, checkpoint)  # one model
    capsys.readouterr()
    wordnet = [*common[:common.index("--corpus") + 1], "wordnet", *common[common.index("--corpus") + 2:]]
    assert cli.main(["leaderboard", "--methods", "mcm", "csp", "--benchmarks", benchmark, *wordnet,
                     "--out", str(root / "board-csp-wordnet")]) == 2
    assert "rules='csp' reads a folder" in capsys.readouterr().err


@pytest.mark.parametrize("argument, values, expected", [("batch_size", ["4", "16"], [4, 16, 4, 16]),
                                                        ("id_ood_ratio", ["0.5", "2"], [0.5, 2.0, 0.5, 2.0]),
                                                        ("order", ["mixed", "ood-first", "temporal"],
                                                         ["mixed", "ood-first", "temporal"] * 2)])
def test_protocol_sweeps_on_cached_features(workspace, monkeypatch, argument, values, expected):
    root, common = workspace
    benchmark = str(root / "data" / "toy.yml")
    assert cli.main(["extract", "--benchmark", benchmark, *common]) == 0

    import openood_tanl.evaluation.extraction as features

    monkeypatch.setattr(features.ImageDataset, "__getitem__",
                        lambda *a: (_ for _ in ()).throw(AssertionError("re-encoded an image")))
    out = root / f"sweep-{argument}"
    assert cli.main(["sweep", "--methods", "tanl", "mcm", "--argument", argument, "--values", *values,
                     "--benchmark", benchmark, *common, "--batch-size", "8", "--out", str(out)]) == 0
    curve = pd.read_csv(out / "sweep.csv")
    assert list(curve[argument]) == expected and list(curve["method"]) == ["tanl"] * len(values) + ["mcm"] * len(values)
    assert (out / "sweep.png").stat().st_size > 10000
    assert _record(out / "sweep.run.json")["sweep"] == {"argument": argument, "values": [
        yaml.safe_load(v) for v in values]}


def test_a_backbone_sweep_builds_a_text_bank_and_features_per_backbone(workspace, capsys):
    """Two families (the tiny ViT from its checkpoint, a tiny ResNet with random weights): a text bank and a feature
    cache each, the methods in lockstep on each, one curve row per (method, backbone)."""
    import json

    import open_clip

    root, common = workspace
    resnet = root / "tiny-sweep-resnet.json"
    resnet.write_text(json.dumps({"embed_dim": 32, "quick_gelu": True, "text_cfg": TINY_TEXT,
                                  "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8}}))
    open_clip.add_model_config(resnet)
    checkpoint = common[common.index("--pretrained") + 1]
    values = [f"{TINY_MODEL}:{checkpoint}", "tiny-sweep-resnet:none"]
    out = root / "sweep-backbone"
    assert cli.main(["sweep", "--methods", "tanl", "mcm", "--argument", "backbone", "--values", *values,
                     "--benchmark", str(root / "data" / "toy.yml"), *common, "--batch-size", "8",
                     "--out", str(out)]) == 0
    curve = pd.read_csv(out / "sweep.csv")
    assert list(curve["backbone"]) == values * 2 and list(curve["method"]) == ["tanl", "tanl", "mcm", "mcm"]
    assert curve["AUROC"].notna().all() and (out / "sweep.png").stat().st_size > 10000
    record = _record(out / "sweep.run.json")
    assert record["sweep"] == {"argument": "backbone", "values": values}
    banks = {value: record["benchmarks"][value]["text_bank"] for value in values}
    assert [banks[v]["family"] for v in values] == ["vit", "resnet"] and banks[values[0]]["backbone"] == TINY_MODEL
    assert banks[values[1]]["activation"] == {"name": "QuickGELU", "chosen_by": "the model config"}
    assert banks[values[0]]["logit_scale"] == _logit_scale(TINY_MODEL, checkpoint)  # the weights', once built
    assert banks[values[1]]["logit_scale"] == _logit_scale("tiny-sweep-resnet")
    models = {json.loads(path.read_text())["model_key"]["model"]
              for path in (root / "cache" / "features").rglob("manifest.json")}
    assert {TINY_MODEL, "tiny-sweep-resnet"} <= models  # a feature cache per backbone
    assert cli.main(["sweep", "--methods", "tanl", "--argument", "backbone", "--values", "ViT-B-16",
                     "--benchmark", str(root / "data" / "toy.yml"), *common, "--out", str(root / "x")]) == 2
    assert "takes MODEL:WEIGHTS values" in capsys.readouterr().err


def test_negmining_ranks_the_corpus_with_another_model(workspace, capsys):
    """--negmining MODEL:WEIGHTS: NegLabel selects by that model's texts; the record names it; a bad value exits 2."""
    root, common = workspace
    other = make_tiny_checkpoint(root / "tiny-other", seed=5)
    out = root / "eval-negmining"
    run = ["eval", "--method", "neglabel", "--set", "num_negatives=200", "num_groups=4", "--benchmark",
           str(root / "data" / "toy.yml"), *common, "--seeds", "0", "--batch-size", "8"]
    assert cli.main([*run, "--negmining", f"{TINY_MODEL}:{other}", "--out", str(out)]) == 0
    record = _record(next(out.glob("*.run.json")))
    negmining = next(iter(record["benchmarks"].values()))["text_bank"]["negmining"]
    assert negmining["source"] == f"{TINY_MODEL}:{other}" and negmining["pretrained"]["file"] == str(other)
    assert cli.main([*run, "--out", str(root / "eval-own")]) == 0
    own = _record(next((root / "eval-own").glob("*.run.json")))
    assert next(iter(own["benchmarks"].values()))["text_bank"]["negmining"] == {"source": "own"}
    assert own["config_id"] != record["config_id"]
    ranked = pd.read_csv(next(out.glob("neglabel-*toy-mixed.csv")), index_col="dataset")
    plain = pd.read_csv(next((root / "eval-own").glob("neglabel-*toy-mixed.csv")), index_col="dataset")
    assert not np.allclose(ranked["AUROC"], plain["AUROC"])  # another selection, other scores
    capsys.readouterr()
    assert cli.main([*run, "--negmining", "ViT-B-16", "--out", str(root / "x")]) == 2
    assert "negmining ('own', 'official' or MODEL:WEIGHTS) takes MODEL:WEIGHTS values" in capsys.readouterr().err


def test_run_records_name_the_logit_scale_of_the_weights_outside_the_config_id(workspace):
    """Two checkpoints of the tiny ViT, one with its logit scale set to 50: the backbone sweep's record names each
    bank's scale as its weights have it; the config_id digests the settings without the scales, so the same run
    again into the same folder is the same configuration."""
    import math

    import torch

    from openood_tanl.provenance import config_id

    root, common = workspace
    checkpoint = common[common.index("--pretrained") + 1]
    weights = torch.load(checkpoint)
    weights["logit_scale"] = torch.tensor(math.log(50.0))
    scaled = root / "tiny" / "tiny-scale-50.pt"
    torch.save(weights, scaled)
    values = [f"{TINY_MODEL}:{checkpoint}", f"{TINY_MODEL}:{scaled}"]
    out = root / "sweep-logit-scale"
    command = ["sweep", "--methods", "mcm", "--argument", "backbone", "--values", *values,
               "--benchmark", str(root / "data" / "toy.yml"), *common, "--batch-size", "8", "--out", str(out)]
    assert cli.main(command) == 0
    record = _record(out / "sweep.run.json")
    scales = [record["benchmarks"][value]["text_bank"]["logit_scale"] for value in values]
    assert scales == [_logit_scale(TINY_MODEL, checkpoint), _logit_scale(TINY_MODEL, scaled)]
    assert scales[0] != scales[1] and scales[1] == pytest.approx(50.0, rel=1e-6)
    for value in values:
        del record["benchmarks"][value]["text_bank"]["logit_scale"]
    assert config_id(record) == record["config_id"]
    assert cli.main(command) == 0  # no --overwrite: the same configuration
    assert _record(out / "sweep.run.json")["config_id"] == record["config_id"]


def test_protocol_sweep_values_are_checked_before_any_model_loads(workspace, capsys):
    root, common = workspace
    benchmark = str(root / "data" / "toy.yml")
    for argument, values, message in (("batch_size", ["8", "0"], "batch_size must be a whole number >= 1"),
                                      ("order", ["mixed", "shuffled"], "choose among mixed"),
                                      ("id_ood_ratio", ["-1"], "id_ood_ratio must be a number > 0")):
        assert cli.main(["sweep", "--methods", "tanl", "--argument", argument, "--values", *values,
                         "--benchmark", benchmark, *common, "--model", "no-such-model",
                         "--out", str(root / "refused")]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["sweep", "--methods", "tanl", "--argument", "order", "--values", "mixed", "temporal",
                     "--id-ood-ratio", "1", "--benchmark", benchmark, *common, "--model", "no-such-model",
                     "--out", str(root / "refused")]) == 2
    assert "not 'temporal'" in capsys.readouterr().err


def test_eval_writes_a_stream_trace(workspace, capsys):
    root, common = workspace
    benchmark = str(root / "data" / "toy.yml")
    trace = root / "trace"
    assert cli.main(["eval", "--method", "tanl", "--set", "num_negatives=100", "memory_length=20",
                     "--benchmark", benchmark, *common, "--protocol", "temporal", "--batch-size", "8",
                     "--trace", str(trace), "--trace-window", "16", "--out", str(root / "traced")]) == 0
    table = pd.read_csv(trace / "trace.csv")
    assert set(table["method"]) == {"tanl"} and list(table["segment"].unique()) == ["toy-near", "toy-far"]
    assert table["threshold"].notna().all() and table["recovery_samples"].notna().sum() == 1
    assert (trace / "trace-tanl-seed-0-temporal.png").stat().st_size > 10000
    traced = _record(trace / "trace.run.json")
    assert traced["trace"] == {"window": 16}
    checkpoint = common[common.index("--pretrained") + 1]
    assert traced["benchmarks"]["toy"]["text_bank"]["logit_scale"] == _logit_scale(TINY_MODEL, checkpoint)
    capsys.readouterr()
    assert cli.main(["eval", "--method", "tanl", "--benchmark", benchmark, *common, "--trace-window", "16",
                     "--out", str(root / "traced")]) == 2
    assert "add --trace DIR" in capsys.readouterr().err


def test_temporal_protocol_and_bad_input(workspace, capsys):
    root, common = workspace
    benchmark = str(root / "data" / "toy.yml")
    assert cli.main(["eval", "--method", "mcm", "--benchmark", benchmark, *common, "--protocol", "temporal",
                     "--order", "toy-far", "toy-near", "--out", str(root / "temporal")]) == 0
    with pytest.raises(SystemExit):
        cli.main(["eval", "--method", "mcm", "--benchmark", benchmark, *common, "--protocol", "shuffled"])
    capsys.readouterr()
    assert cli.main(["eval", "--method", "mcm", "--benchmark", benchmark, *common[:6]]) == 2
    assert "error: pass --id-classes" in capsys.readouterr().err


def test_help_is_readable(capsys):
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    text = capsys.readouterr().out
    for command in ("demo", "extract", "eval", "leaderboard", "sweep"):
        assert command in text


def _record(path):
    import json

    return json.loads(path.read_text())


def _logit_scale(model_name: str, weights=None) -> float:
    """``clip_model.logit_scale.exp()`` of the open_clip model ``model_name`` with ``weights`` (a checkpoint file;
    None: the random initialisation, whose scale open_clip fixes)."""
    import open_clip

    model = open_clip.create_model(model_name, pretrained=None if weights is None else str(weights))
    return model.logit_scale.exp().item()


def test_every_result_file_carries_its_provenance(workspace):
    root, common = workspace
    benchmark = str(root / "data" / "toy.yml")
    out = root / "provenance"
    assert cli.main(["eval", "--method", "tanl_official", "--set", "num_negatives=100", "--benchmark", benchmark,
                     *common, "--seeds", "3", "4", "--batch-size", "8", "--out", str(out)]) == 0
    record = _record(out / "tanl_official-num_negatives100-toy-mixed.run.json")
    stem = "tanl_official-num_negatives100-toy-mixed"
    assert record["files"] == [f"{stem}.csv", f"{stem}-per-seed.csv"]
    hyper = record["methods"]["tanl_official"]
    assert hyper["method"] == "tanl_official"
    assert hyper["hyperparameters"] == {"num_negatives": 100, "memory_length": 300, "gap": 0.5, "alpha": 0.0,
                                        "score_step": 1, "score_memory_length": 20000, "seed": 0}
    bank = record["benchmarks"]["toy"]["text_bank"]
    assert bank["backbone"] == TINY_MODEL and bank["pretrained"]["file"].endswith("tiny-random.pt")
    assert bank["family"] == "vit" and bank["activation"]["name"] == "GELU" and bank["image_transform"]["name"]
    assert bank["logit_scale"] == _logit_scale(TINY_MODEL, bank["pretrained"]["file"])
    assert bank["precision"] == "fp32" and bank["class_names"]["set"] == str(root / "classes.txt")
    assert bank["corpus"]["source"] == str((root / "words.txt").resolve()) and bank["corpus"]["words"] == 1200
    assert len(bank["corpus"]["sha256"]) == 64 and bank["prompts"]["nouns"] == ["The nice {}."]
    assert record["protocol"] == {"name": "mixed", "seeds": [3, 4], "batch_size": 8, "order": None}
    assert set(record["metrics"]) == {"FPR@95", "FPR@95(ID+)"} and "OOD positive" in record["metrics"]["FPR@95"]
    assert record["libraries"]["openood-tanl"] and record["libraries"]["torch"]
    for name in record["files"]:
        assert set(pd.read_csv(out / name)["config_id"]) == {record["config_id"]}

    # the same run on another corpus can never be mistaken for it
    folder = root / "other-corpus"
    folder.mkdir()
    (folder / "noun.all.txt").write_text("".join(f"thing{i}\n" for i in range(300)))
    (folder / "adj.all.txt").write_text("".join(f"odd{i}\n" for i in range(100)))
    other = [*common[:common.index("--corpus") + 1], str(folder), *common[common.index("--corpus") + 2:]]
    assert cli.main(["eval", "--method", "tanl_official", "--set", "num_negatives=100", "--benchmark", benchmark,
                     *other, "--corpus-rules", "clean", "--seeds", "3", "4", "--batch-size", "8",
                     "--out", str(root / "provenance-2")]) == 0
    second = _record(root / "provenance-2" / "tanl_official-num_negatives100-toy-mixed.run.json")
    assert second["config_id"] != record["config_id"]
    corpus = second["benchmarks"]["toy"]["text_bank"]["corpus"]
    assert (corpus["words"], corpus["nouns"], corpus["rules"]) == (400, 300, "clean")

    board = root / "board"  # written by test_leaderboard_and_sweep, or written now
    if not (board / "leaderboard.run.json").exists():
        test_leaderboard_and_sweep(workspace)
    for stem, files in (("leaderboard", ["results.csv", "leaderboard.csv", "leaderboard.md"]),
                        ("sweep", ["sweep.csv", "sweep.png"])):
        folder = root / ("board" if stem == "leaderboard" else "sweep")
        written = _record(folder / f"{stem}.run.json")
        assert written["files"] == files and written["protocol"]["batch_size"] == 8
        assert written["benchmarks"]["toy"]["text_bank"]["corpus"]["words"] == 1200
        assert written["benchmarks"]["toy"]["text_bank"]["logit_scale"] == bank["logit_scale"]
        assert set(pd.read_csv(folder / files[0])["config_id"]) == {written["config_id"]}
    board_record = _record(board / "leaderboard.run.json")
    assert set(board_record["methods"]) == {"mcm", "tanl", "neglabel-small", "adaneg-small"}
    assert board_record["methods"]["neglabel-small"]["hyperparameters"]["num_negatives"] == 200
    assert f"config {board_record['config_id']}" in (board / "leaderboard.md").read_text()
    assert _record(root / "sweep" / "sweep.run.json")["sweep"] == {"argument": "num_negatives", "values": [50, 200]}


@pytest.fixture(scope="module")
def four_ood_root(tmp_path_factory):
    """The four-OOD folder layout with one image per ImageNet class and five per OOD set."""
    root = tmp_path_factory.mktemp("four-ood")
    rng = np.random.default_rng(1)
    for index in range(1000):
        folder = root / "imagenet" / "val" / f"n{index:08d}"
        folder.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 255, (24, 24, 3), dtype=np.uint8)).save(folder / "0.png")
    for name, tint in (("iNaturalist", 30), ("SUN", 90), ("Places", 150), ("Textures", 210)):
        (root / name).mkdir()
        for i in range(5):
            pixels = np.clip(rng.normal(tint, 30, (24, 24, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{i}.png")
    return root


def test_reproduce_sets_paper_and_ours_side_by_side(workspace, four_ood_root, capsys):
    root, common = workspace
    settings = dict(zip(common[::2], common[1::2]))
    for key in ("--id-classes", "--data-root"):
        settings.pop(key)
    out = root / "reproduce"
    args = ["reproduce", "--benchmark", "four-ood", "--data-root", str(four_ood_root), "--methods", "tanl", "mcm",
            *[item for pair in settings.items() for item in pair], "--out", str(out)]
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "compared in the convention its paper printed it in" in printed
    assert "differs from the paper's setting" in printed and "point --corpus at NegLabel's txtfiles/" in printed

    table = pd.read_csv(out / "reproduce.csv")
    results = pd.read_csv(out / "reproduce-results.csv")
    tanl = table[table["method"] == "tanl"].set_index("dataset")
    assert list(tanl.index) == ["iNaturalist", "SUN", "Places", "Textures", "mean"]
    assert set(tanl["convention"]) == {"FPR@95"}
    assert tanl.loc["mean", "paper FPR@95"] == 9.81 and tanl.loc["Places", "paper AUROC"] == 95.87
    ours = results[(results["method"] == "tanl")].set_index("dataset")
    assert tanl.loc["SUN", "ours FPR@95"] == pytest.approx(ours.loc["SUN", "FPR@95"], abs=1e-3)
    assert tanl.loc["mean", "ours AUROC"] == pytest.approx(ours.loc["farood", "AUROC"], abs=1e-3)
    assert "ours FPR@95 std" in tanl.columns  # three seeds by default
    diff = tanl["ours FPR@95"] - tanl["paper FPR@95"]
    assert (tanl["diff FPR@95"] - diff).abs().max() < 1e-3

    mcm = table[table["method"] == "mcm"].set_index("dataset")
    assert set(mcm["convention"]) == {"FPR@95(ID+)"}  # the TANL paper prints MCM's Four-OOD row ID-positive
    mcm_ours = results[results["method"] == "mcm"].set_index("dataset")
    assert mcm.loc["mean", "paper FPR@95"] == 43.93
    assert mcm.loc["mean", "ours FPR@95"] == pytest.approx(mcm_ours.loc["farood", "FPR@95(ID+)"], abs=1e-3)
    assert pd.isna(mcm.loc["SUN", "paper FPR@95"])  # the paper gives MCM's mean only

    record = _record(out / "reproduce.run.json")
    assert record["files"] == ["reproduce.csv", "reproduce-results.csv", "reproduce.md"]
    assert record["protocol"] == {"name": "mixed", "seeds": [0, 1, 2], "batch_size": 256, "order": None}
    assert record["methods"]["tanl"]["hyperparameters"]["alpha"] == 0.95  # the paper's preset
    differences = " ".join(record["reproduce"]["differences_from_paper"])
    assert f"model '{TINY_MODEL}'" in differences and "corpus" in differences
    assert "negmining 'own' (paper: 'official')" in differences
    (text_bank,) = (entry["text_bank"] for entry in record["benchmarks"].values())
    assert text_bank["logit_scale"] == _logit_scale(TINY_MODEL, settings["--pretrained"])
    markdown = (out / "reproduce.md").read_text()
    assert "| tanl | mean | FPR@95 | 9.81 |" in markdown and f"config {record['config_id']}" in markdown


@pytest.mark.slow  # float16 matrix products on the CPU: about 12 s alone, minutes on a busy machine
def test_reproduce_runs_the_authors_float16_numerics_with_the_official_transform(workspace, four_ood_root, capsys):
    root, common = workspace
    settings = dict(zip(common[::2], common[1::2]))
    for key in ("--id-classes", "--data-root"):
        settings.pop(key)
    out = root / "reproduce-fp16"
    args = ["reproduce", "--benchmark", "four-ood", "--data-root", str(four_ood_root), "--methods", "tanl",
            "--seeds", "0", "--precision", "official-fp16", *[item for pair in settings.items() for item in pair],
            "--out", str(out)]
    assert cli.main(args) == 0
    record = _record(out / "reproduce.run.json")
    benchmark = next(iter(record["benchmarks"].values()))["text_bank"]
    assert benchmark["precision"] == "official-fp16"
    assert benchmark["image_transform"]["name"] == "official" and benchmark["image_transform"]["resize"] == 37
    differences = " ".join(record["reproduce"]["differences_from_paper"])
    assert "precision" not in differences and "transform" not in differences
    scores = pd.read_csv(out / "reproduce-results.csv")
    assert scores[scores["method"] == "tanl"]["AUROC"].notna().all()
    cached = list((root / "cache" / "features").glob("*/manifest.json"))
    assert any("Resize(size=37" in path.read_text() for path in cached)  # encoded with the official transform
