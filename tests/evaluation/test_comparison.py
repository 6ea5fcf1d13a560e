"""Methods side by side, leaderboards, markdown, sweeps and the demo command, on small synthetic embeddings."""
import pandas as pd
import pytest
from PIL import Image

import openood_tanl.synthetic
from openood_tanl import cli, configure
from openood_tanl.evaluation import (
    StreamSettings,
    compare_methods,
    leaderboard_table,
    markdown_table,
    plot_sweep,
    sweep,
)
from openood_tanl.synthetic import synthetic_benchmark


@pytest.fixture(scope="module")
def small():
    return synthetic_benchmark(seed=0, num_classes=20, corpus_size=12000, dim=48, num_id=400, num_ood=120)


def test_compare_methods_and_leaderboard(small):
    bank, benchmark = small
    results = compare_methods({"mcm": configure("mcm"), "tanl": configure("tanl", num_negatives=100)}, bank,
                              benchmark, seeds=[0, 1], batch_size=64)
    assert set(results["method"]) == {"mcm", "tanl"}
    assert list(results[results.method == "tanl"]["dataset"]) == ["synthetic-near", "nearood", "synthetic-far",
                                                                   "farood"]
    assert "AUROC_std" in results.columns
    board = leaderboard_table(results)
    assert list(board.index) == ["mcm", "tanl"]
    tanl_near = results[(results.method == "tanl") & (results.dataset == "nearood")]["AUROC"].item()
    assert board.loc["tanl", "synthetic nearood AUROC"] == pytest.approx(tanl_near)
    id_acc = results[(results.method == "mcm") & results.dataset.str.startswith("synthetic-")]["ACC"].mean()
    assert board.loc["mcm", "synthetic id ACC"] == pytest.approx(id_acc)


def test_markdown_marks_the_best_of_each_column():
    table = pd.DataFrame({"b nearood AUROC": [90.0, 95.0], "b nearood FPR@95": [20.0, 30.0]},
                         index=pd.Index(["x", "y"], name="method"))
    text = markdown_table(table)
    assert "| x | 90.00 | **20.00** |" in text and "| y | **95.00** | 30.00 |" in text


def test_sweep_and_plot(small, tmp_path):
    bank, benchmark = small
    curve = sweep({"tanl": configure("tanl")}, "num_negatives", [20, 200], bank, benchmark,
                  StreamSettings(batch_size=64))["tanl"]
    assert list(curve["num_negatives"]) == [20, 200]
    assert {"AUROC", "FPR@95", "FPR@95(ID+)", "nearood AUROC", "farood FPR@95"} <= set(curve.columns)
    path = plot_sweep({"tanl": curve}, "num_negatives", tmp_path / "sweep.png")
    with Image.open(path) as image:
        assert image.size[0] > 500


def test_the_single_method_sweep_still_works_and_warns(small):
    bank, benchmark = small
    with pytest.warns(DeprecationWarning, match="one method is deprecated"):
        old = sweep(configure("mcm"), "temperature", [1.0, 2.0], bank, benchmark, batch_size=64)
    new = sweep({"m": configure("mcm")}, "temperature", [1.0, 2.0], bank, benchmark, StreamSettings(batch_size=64))
    pd.testing.assert_frame_equal(old, new["m"], check_exact=True)
    with pytest.raises(TypeError, match="StreamSettings"):
        sweep({"m": configure("mcm")}, "temperature", [1.0], bank, benchmark, batch_size=64)


def test_demo_command_writes_its_files(small, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(openood_tanl.synthetic, "synthetic_benchmark", lambda seed=0: small)
    monkeypatch.setattr(cli.commands, "DEFAULT_SWEEP_VALUES", (100, 500))
    assert cli.main(["demo", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "SYNTHETIC" in out
    for name in ("leaderboard.csv", "leaderboard.md", "results.csv", "sweep.csv", "sweep.png", "sweep-order.csv",
                 "sweep-order.png", "sweep-order.run.json", "trace/trace.csv", "trace/trace.run.json",
                 "trace/trace-tanl-seed-0-temporal.png", "trace/trace-adaneg-seed-0-temporal.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    board = pd.read_csv(tmp_path / "leaderboard.csv", index_col="method")
    assert list(board.index) == ["mcm", "neglabel", "csp", "adaneg", "oodd", "tanl"]
    orders = pd.read_csv(tmp_path / "sweep-order.csv")
    assert list(orders["order"]) == ["mixed", "id-first", "ood-first"] * 2
    trace = pd.read_csv(tmp_path / "trace" / "trace.csv")
    assert set(trace["method"]) == {"tanl", "adaneg"} and set(trace["segment"]) == {"synthetic-near", "synthetic-far"}
    assert trace["recovery_samples"].notna().sum() == 2  # one switch, per method
    last = trace.groupby("method").tail(1).set_index("method")
    assert last[["stream_id_purity", "stream_ood_purity", "stream_ood_admission_precision"]].notna().all().all()
    assert last.loc["tanl", ["stream_selection_survival", "stream_oracle_overlap"]].notna().all()
    assert "Settings:" in (tmp_path / "leaderboard.md").read_text()


def test_overrides_on_the_command_line():
    assert cli.parse_overrides(["gap=0.5", "seed=3", "score_step=0"]) == {"gap": 0.5, "seed": 3, "score_step": 0}
    with pytest.raises(cli.UsageError, match="key=value"):
        cli.parse_overrides(["gap"])
