"""Stream traces: per-batch engine state and windowed metrics, recovery after OOD-set switches, CSV and PNGs."""
import functools
import math

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from openood_tanl import configure, create_lockstep
from openood_tanl.evaluation import StreamSettings, replay_streams, write_traces
from openood_tanl.evaluation.traces import TRACE_COLUMNS
from openood_tanl.metrics import auroc_and_fpr95


@pytest.fixture(scope="module")
def temporal_trace(small_benchmark):
    bank, benchmark = small_benchmark
    methods = {"tanl": configure("tanl", num_negatives=80, memory_length=60), "mcm": configure("mcm")}
    result = replay_streams(functools.partial(create_lockstep, methods, bank), benchmark,
                    StreamSettings("temporal", 50, trace_window=120), seeds=[0])
    return result


def test_a_trace_row_per_batch_with_the_engines_state(temporal_trace):
    trace = temporal_trace.trace
    assert list(trace.columns) == ["method", *TRACE_COLUMNS]
    # temporal: two segments of 200 ID + 150 OOD, in batches of 50 -> 7 each, for each method
    assert trace.groupby("method").size().to_dict() == {"tanl": 14, "mcm": 14}
    tanl = trace[trace.method == "tanl"]
    assert list(tanl["seen"]) == list(range(50, 701, 50))
    assert tanl["threshold"].notna().all() and tanl["id_memory"].max() <= 60 and tanl["ood_memory"].max() <= 60
    assert tanl["id_memory"].is_monotonic_increasing  # a FIFO that fills up, then holds memory_length rows
    assert tanl["selection_overlap"].iloc[1:].between(0, 1).all() and math.isnan(tanl["selection_overlap"].iloc[0])
    mcm = trace[trace.method == "mcm"]
    assert mcm[["threshold", "id_memory", "ood_memory", "selection_overlap"]].isna().all().all()  # no state
    assert mcm["window_auroc"].notna().all()


def test_windows_hold_the_last_samples_of_their_own_segment(small_benchmark):
    """With a window longer than the stream, the last window of each segment is that whole segment: its AUROC is
    the table's AUROC of that OOD set (a window reaching back over the switch would not be)."""
    bank, benchmark = small_benchmark
    result = replay_streams(configure("tanl", num_negatives=80).factory(bank), benchmark,
                    StreamSettings("temporal", 50, trace_window=10_000), seeds=[0])
    summary, _ = result.tables[None]
    last = result.trace.groupby("segment").tail(1).set_index("segment")
    for name in ("synthetic-near", "synthetic-far"):
        assert last.loc[name, "window_auroc"] == pytest.approx(summary.loc[name, "AUROC"], abs=1e-9)
    switch = result.trace[result.trace["segment"] == "synthetic-far"].iloc[0]
    assert switch["seen"] == 400 and switch["recovery_samples"] >= 50
    assert result.trace["recovery_samples"].notna().sum() == 1  # one switch


def test_windowed_metrics_are_those_of_the_window():
    score = np.array([0.9, 0.8, 0.3, 0.7, 0.1, 0.2])
    is_id = np.array([True, True, False, True, False, False])
    auroc, fpr = auroc_and_fpr95(score, is_id)
    assert auroc == 100.0 and fpr == 0.0
    auroc, _ = auroc_and_fpr95(-score, is_id)
    assert auroc == 0.0


def test_no_trace_reads_nothing_between_steps(small_benchmark, monkeypatch):
    bank, benchmark = small_benchmark
    reads = []
    from openood_tanl.core import TANL

    original = TANL.memory_fill
    monkeypatch.setattr(TANL, "memory_fill", property(lambda self: reads.append(1) or original.fget(self)))
    methods = {"tanl": configure("tanl", num_negatives=80)}
    result = replay_streams(functools.partial(create_lockstep, methods, bank), benchmark, StreamSettings("mixed", 64))
    assert result.trace is None and not reads
    replay_streams(functools.partial(create_lockstep, methods, bank), benchmark, StreamSettings("mixed", 64,
                                                                                        trace_window=100))
    assert reads  # read when asked for


def test_reset_protocol_streams_are_traced_one_per_ood_set(small_benchmark):
    bank, benchmark = small_benchmark
    result = replay_streams(configure("tanl", num_negatives=80).factory(bank), benchmark,
                    StreamSettings("mixed", 100, trace_window=200), seeds=[0, 1])
    streams = result.trace.groupby("stream").size()
    assert sorted(streams.index) == ["seed 0, synthetic-far", "seed 0, synthetic-near", "seed 1, synthetic-far",
                                     "seed 1, synthetic-near"]
    assert (streams == 6).all()  # 550 samples in batches of 100
    assert set(result.trace["method"]) == {"engine"} and result.trace["recovery_samples"].isna().all()


def test_write_traces_writes_the_csv_and_a_png_per_stream(temporal_trace, tmp_path):
    files = write_traces(temporal_trace.trace, tmp_path / "trace")
    assert [f.name for f in files] == ["trace.csv", "trace-tanl-seed-0-temporal.png", "trace-mcm-seed-0-temporal.png"]
    written = pd.read_csv(files[0])
    assert len(written) == 28 and list(written.columns) == ["method", *TRACE_COLUMNS]
    for png in files[1:]:
        with Image.open(png) as image:
            assert image.size == (1000, 1300)  # four panels
