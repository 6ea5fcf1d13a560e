"""What a stream does inside: memory purity, admission, selection survival and tenure, the oracle; tracing is
passive."""
import functools
import math

import pandas as pd
import pytest
import torch

from openood_tanl import configure, create_engine, create_lockstep, list_methods
from openood_tanl.evaluation import StreamSettings, replay_streams
from openood_tanl.evaluation.streams import _score_members
from openood_tanl.evaluation.trace_inside import INSIDE_COLUMNS, SUMMARY_COLUMNS, MemberTrace, OracleSums
from openood_tanl.evaluation.traces import Tracer

SMALL = {"tanl": dict(num_negatives=80, memory_length=30), "tanl_official": dict(num_negatives=80, memory_length=30),
         "neglabel": dict(num_negatives=300, num_groups=10), "adaneg": dict(num_negatives=300, memory_length=4)}


def _stream(benchmark, seed=0):
    """A mixed stream of the small benchmark's ID and near-OOD sets: (features [S, D], is_id [S])."""
    near = benchmark.ood_sets()[0][1]
    features = torch.cat([benchmark.id_set.features, near.features])
    is_id = torch.arange(len(features)) < len(benchmark.id_set)
    order = torch.randperm(len(features), generator=torch.Generator().manual_seed(seed))
    return features[order], is_id[order]


def _methods():
    """Every registered method (those added later join), small where the defaults need a big corpus."""
    return {name: configure(name, **SMALL.get(name, {})) for name in list_methods()}


def test_tracing_changes_no_score_bitwise(small_benchmark):
    bank, benchmark = small_benchmark
    features, is_id = _stream(benchmark)
    plain = create_lockstep(_methods(), bank)
    traced = create_lockstep(_methods(), bank)
    tracer = Tracer(traced, "s", 100)
    tracer.segment("near", is_id)
    expected = _score_members(plain, features, 64)
    got = _score_members(traced, features, 64, tracer.after_batch)
    assert set(got) == set(expected)
    for member in expected:
        assert torch.equal(expected[member][0], got[member][0]) and torch.equal(expected[member][1], got[member][1])
    alone = create_engine("tanl", bank, **SMALL["tanl"])
    alone_tracer = Tracer(alone, "s", 100)
    alone_tracer.segment("near", is_id)
    assert torch.equal(_score_members(alone, features, 64, alone_tracer.after_batch)[None][1], expected["tanl"][1])


def test_a_traced_replay_has_the_tables_of_an_untraced_one(small_benchmark):
    bank, benchmark = small_benchmark
    factory = functools.partial(create_lockstep, _methods(), bank)
    plain = replay_streams(factory, benchmark, StreamSettings("temporal", 50), seeds=[0])
    traced = replay_streams(factory, benchmark, StreamSettings("temporal", 50, trace_window=100), seeds=[0])
    for member, (summary, per_seed) in plain.tables.items():
        pd.testing.assert_frame_equal(summary, traced.tables[member][0], check_exact=True)
        pd.testing.assert_frame_equal(per_seed, traced.tables[member][1], check_exact=True)


def _origin(held: torch.Tensor, candidates: torch.Tensor, truth: torch.Tensor) -> list:
    """For each held activation row, the truth of the stream sample it equals (None: a pseudo row)."""
    if not len(held):
        return []
    held, candidates = held.double(), candidates.double()  # compared as distributions over the corpus
    distance = torch.cdist(held / held.sum(1, keepdim=True), candidates / candidates.sum(1, keepdim=True), p=1)
    nearest = distance.min(1)
    return [bool(truth[i]) if d < 1e-4 else None for d, i in zip(nearest.values.tolist(), nearest.indices.tolist())]


def test_tanl_purity_and_admission_are_those_of_the_memories_rows(small_benchmark):
    """The tracer's mirror of the FIFOs (from ``admitted`` and ``memory_fill``) against the rows the memories hold,
    each traced back to the sample whose activations it is; the oracle against its definition."""
    bank, benchmark = small_benchmark
    features, is_id = _stream(benchmark, seed=3)
    engine = create_engine("tanl", bank, num_negatives=80, memory_length=30)
    tracer = Tracer(engine, "s", 100)
    tracer.segment("near", is_id)
    activations = engine.corpus_activations(features)
    expected, seen = [], 0
    for batch in features.split(50):
        engine.step(batch)
        tracer.after_batch(batch)
        truth, seen = is_id[seen:seen + len(batch)], seen + len(batch)
        row = {}
        for prefix, memory, wanted in (("id", engine.memories[0], True), ("ood", engine.memories[1], False)):
            origin = _origin(memory.rows(), activations[:seen], is_id[:seen])
            tests = [o for o in origin if o is not None]
            row[f"{prefix}_pseudo"] = float(origin.count(None))
            row[f"{prefix}_purity"] = sum(o == wanted for o in tests) / len(tests) if tests else math.nan
        for side, prefix, true_rows in ((0, "id", truth), (1, "ood", ~truth)):
            admitted = engine.admitted[side]
            hits = int((admitted & true_rows).sum())
            row[f"{prefix}_admission_precision"] = hits / int(admitted.sum()) if admitted.any() else math.nan
            row[f"{prefix}_admission_recall"] = hits / int(true_rows.sum()) if true_rows.any() else math.nan
        mean = [activations[:seen][is_id[:seen] == side].double().mean(0) for side in (True, False)]
        oracle = torch.topk(mean[1] - mean[0], 80).indices
        row["oracle_overlap"] = float(torch.isin(engine.selected, oracle).float().mean())
        expected.append(row)
    tracer.scores(None, torch.zeros(len(features)))
    rows = pd.DataFrame(tracer.rows())
    assert rows["id_pseudo"].iloc[0] == 15 and rows["ood_pseudo"].iloc[0] == 0  # ID texts in a memory of 30
    assert (rows["ood_pseudo"].diff().dropna() <= 0).all()
    for column in expected[0]:
        pd.testing.assert_series_equal(rows[column], pd.Series([r[column] for r in expected], name=column),
                                       check_exact=False, rtol=0, atol=1e-12)


def test_adaneg_purity_follows_its_held_images(small_benchmark):
    bank, benchmark = small_benchmark
    features, is_id = _stream(benchmark, seed=5)
    engine = create_engine("adaneg", bank, num_negatives=300, memory_length=3)  # 2 images a proxy: replacements
    tracer = Tracer(engine, "s", 100)
    tracer.segment("near", is_id)
    purities = []
    for batch in features.split(64):
        engine.step(batch)
        tracer.after_batch(batch)
        arrivals = engine.memory_arrivals
        held = torch.cat([engine.memory_of(proxy)[0] for proxy in range(engine.num_proxies)])
        assert torch.equal(held, features[arrivals])  # the arrivals name the held images
        id_count = engine.memory_fill[0]
        purities.append((float(is_id[arrivals[:id_count]].double().mean()),
                         float((~is_id[arrivals[id_count:]]).double().mean())))
    tracer.scores(None, torch.zeros(len(features)))
    rows = pd.DataFrame(tracer.rows())
    assert rows[["id_purity", "ood_purity"]].to_numpy().tolist() == [list(p) for p in purities]
    assert (rows[["id_pseudo", "ood_pseudo"]] == 0).all().all()  # its proxies' texts are not held rows
    assert rows["first_selection_survival"].isna().all() and rows["oracle_overlap"].isna().all()  # fixed negatives


class _Scripted:
    """An engine double whose documented state follows a script, one entry per step."""

    learned_state = ("selected", "memory_fill", "admitted")

    def __init__(self, script):
        self.script, self.memory_fill = iter(script), (2, 0)  # two pseudo rows in the ID memory

    def step(self):
        self.selected, self.admitted, self.memory_fill = next(self.script)


def test_selection_survival_distinct_negatives_tenure_and_admission():
    admitted = torch.tensor([[True, True, False, False], [False, False, True, True]])
    script = [(torch.tensor([3, 0, 1, 2]), admitted, (3, 2)),  # a FIFO of 3: one pseudo row left
              (torch.tensor([0, 1, 4, 5]), admitted, (3, 3)),
              (torch.tensor([0, 4, 6, 7]), torch.zeros(2, 4, dtype=torch.bool), (3, 3))]
    engine = _Scripted(script)
    trace = MemberTrace(engine)
    trace.start()
    truth = torch.tensor([True, False, True, False])  # rows 0 and 2 are ID
    records = []
    for _ in script:
        engine.step()
        records.append(trace.after_step(truth, truth, None))
    assert [r["first_selection_survival"] for r in records] == [1.0, 0.5, 0.25]
    assert [r["distinct_selected"] for r in records] == [4, 6, 8]
    # runs ended: 2 and 3 after 1 batch (step 2); then 1 after 2 batches and 5 after 1 (step 3)
    assert math.isnan(records[0]["mean_tenure"]) and records[1]["mean_tenure"] == 1.0
    assert records[2]["mean_tenure"] == (1 + 1 + 2 + 1) / 4
    assert math.isnan(records[0]["selection_overlap"]) and records[1]["selection_overlap"] == 0.5
    first = records[0]
    assert first["id_admission_precision"] == 0.5 and first["id_admission_recall"] == 0.5  # rows 0 (ID), 1 (OOD)
    assert first["ood_admission_precision"] == 0.5 and first["ood_admission_recall"] == 0.5  # rows 2 (ID), 3 (OOD)
    # ID memory: pseudo, pseudo + rows 0 (ID), 1 (OOD) -> the newest 3: pseudo, ID, OOD
    assert first["id_pseudo"] == 1 and first["id_purity"] == 0.5
    assert first["ood_pseudo"] == 0 and first["ood_purity"] == 0.5
    assert records[1]["id_pseudo"] == 0 and records[1]["id_purity"] == 1 / 3  # OOD, ID, OOD
    assert math.isnan(records[2]["id_admission_precision"])  # nothing admitted
    assert math.isnan(records[0]["oracle_overlap"])  # no oracle for this engine


def test_the_oracle_ranks_by_mean_ood_minus_mean_id_activation():
    class Double:
        def corpus_activations(self, batch):
            return batch

    oracle = OracleSums(Double())
    oracle.add(torch.tensor([[0.9, 0.0, 0.1]]), torch.tensor([True]))
    assert oracle.top(1) is None  # no OOD sample yet
    oracle.add(torch.tensor([[0.1, 0.5, 0.4], [0.1, 0.1, 0.8]]), torch.tensor([False, False]))
    assert oracle.top(2).tolist() == [2, 1]  # differences -0.8, 0.3, 0.5


def test_summary_columns_are_the_streams_last_or_mean_values(small_benchmark):
    bank, benchmark = small_benchmark
    result = replay_streams(functools.partial(create_lockstep, _methods(), bank), benchmark,
                            StreamSettings("mixed", 100, trace_window=200), seeds=[0])
    trace = result.trace
    for (method, _), part in trace.groupby(["method", "stream"]):
        assert (part[list(SUMMARY_COLUMNS)].nunique(dropna=False) == 1).all()  # one value per stream
        last = part.iloc[-1]
        for column, source in (("stream_ood_purity", "ood_purity"), ("stream_selection_survival",
                                                                       "first_selection_survival")):
            assert last[column] == last[source] or math.isnan(last[column]) and math.isnan(last[source])
        mean = part["id_admission_precision"].mean()
        assert last["stream_id_admission_precision"] == pytest.approx(mean) or math.isnan(mean)
        if method in ("mcm", "neglabel"):  # no memory, no selection of their own: nothing to show
            assert part[list(INSIDE_COLUMNS) + list(SUMMARY_COLUMNS)].isna().all().all()
    tanl = trace[trace.method == "tanl"]
    assert tanl.groupby("stream").tail(1)[["id_purity", "ood_purity", "first_selection_survival",
                                            "oracle_overlap"]].notna().all().all()
    for _, part in tanl.groupby("stream"):
        assert part["distinct_selected"].is_monotonic_increasing and part["distinct_selected"].iloc[0] == 80
