"""Leaderboards and sweeps in lockstep: the tables of separate runs, bit for bit; protocol sweeps; ID:OOD ratio."""
import dataclasses

import pandas as pd
import pytest
import torch

from openood_tanl import configure
from openood_tanl.evaluation import STREAM_ARGUMENTS, FeatureSet, StreamSettings, compare_methods, evaluate
from openood_tanl.evaluation.comparison import sweep_methods
from openood_tanl.evaluation.streams import _ratio_subsample, run_stream


@pytest.fixture(scope="module")
def methods():
    return {"mcm": configure("mcm"), "neglabel": configure("neglabel", num_negatives=300, num_groups=10),
            "adaneg": configure("adaneg", num_negatives=300, num_groups=5), "tanl": configure("tanl", num_negatives=80),
            "tanl_official": configure("tanl_official", num_negatives=80)}


def test_a_lockstep_leaderboard_equals_separate_runs(small_benchmark, methods):
    bank, benchmark = small_benchmark
    settings = dict(seeds=[0, 3], batch_size=48)
    together = compare_methods(methods, bank, benchmark, **settings)
    alone = compare_methods(methods, bank, benchmark, lockstep=False, **settings)
    pd.testing.assert_frame_equal(together, alone, check_exact=True)


@pytest.mark.slow  # a process pool
def test_a_lockstep_leaderboard_in_processes_equals_separate_runs(small_benchmark, methods):
    bank, benchmark = small_benchmark
    settings = dict(seeds=[0, 3], batch_size=48)
    alone = compare_methods(methods, bank, benchmark, lockstep=False, **settings)
    parallel = compare_methods(methods, bank, benchmark, workers=2, **settings)  # processes on top of lockstep
    pd.testing.assert_frame_equal(parallel, alone, check_exact=True)


@pytest.mark.parametrize("argument, values", [("batch_size", [16, 100]), ("id_ood_ratio", [0.5, 2.0]),
                                              ("order", ["mixed", "id-first", "ood-first", "temporal"]),
                                              ("num_negatives", [40, 160]), ("gap", [0.1, 0.4])])
def test_sweeps_in_lockstep_equal_separate_runs(small_benchmark, argument, values):
    bank, benchmark = small_benchmark
    methods = {"tanl": configure("tanl", num_negatives=80), "adaneg": configure("adaneg", num_negatives=200,
                                                                                 num_groups=4)}
    settings = dict(seeds=[2], batch_size=64)
    together = sweep_methods(methods, argument, values, bank, benchmark, **settings)
    alone = sweep_methods(methods, argument, values, bank, benchmark, lockstep=False, **settings)
    for label in methods:
        assert list(together[label][argument]) == values
        pd.testing.assert_frame_equal(together[label], alone[label], check_exact=True)


def test_a_protocol_sweep_point_is_that_protocol_run(small_benchmark):
    bank, benchmark = small_benchmark
    tanl = configure("tanl", num_negatives=80)
    curves = sweep_methods({"tanl": tanl}, "batch_size", [32], bank, benchmark, protocol="ood-first",
                           id_ood_ratio=0.5)
    summary, _ = evaluate(tanl.factory(bank), benchmark, "ood-first", batch_size=32, id_ood_ratio=0.5)
    datasets = summary[~summary.index.isin(["nearood", "farood"])]
    assert curves["tanl"]["AUROC"].item() == datasets["AUROC"].mean()


class Recorder:
    def __init__(self, engine):
        self.engine, self.batches = engine, []

    def reset(self):
        return self.engine.reset()

    def step(self, features):
        self.batches.append(features)
        return self.engine.step(features)


def _seen(small_benchmark, ratio, index=0, seed=0):
    bank, benchmark = small_benchmark
    recorder = Recorder(configure("mcm").engine(bank))
    run_stream(recorder, benchmark, StreamSettings("mixed", 50, None, ratio), seed, index)
    stream = torch.cat(recorder.batches)
    id_rows = {tuple(r.tolist()) for r in benchmark.id_set.features}
    is_id = torch.tensor([tuple(r.tolist()) in id_rows for r in stream])
    return stream, int(is_id.sum()), int((~is_id).sum())


@pytest.mark.parametrize("ratio, expected", [(None, (400, 150)), (1.0, (150, 150)), (2.0, (300, 150)),
                                             (0.25, (38, 150)), (10.0, (400, 40))])
def test_the_id_ood_ratio_subsamples_the_larger_side(small_benchmark, ratio, expected):
    _, id_count, ood_count = _seen(small_benchmark, ratio)
    assert (id_count, ood_count) == expected


def test_the_subsample_is_seeded_per_stream(small_benchmark):
    first, _, _ = _seen(small_benchmark, 1.0, seed=5)
    assert torch.equal(first, _seen(small_benchmark, 1.0, seed=5)[0])
    assert not torch.equal(first, _seen(small_benchmark, 1.0, seed=6)[0])
    assert not torch.equal(first, _seen(small_benchmark, 1.0, index=1, seed=5)[0])


def test_stream_arguments_are_checked(small_benchmark):
    bank, benchmark = small_benchmark
    tanl = configure("tanl", num_negatives=80)
    with pytest.raises(ValueError, match="not 'temporal'"):
        evaluate(tanl.factory(bank), benchmark, "temporal", id_ood_ratio=1.0)
    with pytest.raises(ValueError, match="id_ood_ratio must be a number > 0"):
        evaluate(tanl.factory(bank), benchmark, "mixed", id_ood_ratio=0)
    with pytest.raises(ValueError, match="batch_size must be a whole number >= 1"):
        sweep_methods({"tanl": tanl}, "batch_size", [64, 2.5], bank, benchmark)
    with pytest.raises(ValueError, match="choose among mixed, id-first, ood-first, temporal"):
        sweep_methods({"tanl": tanl}, "order", ["random"], bank, benchmark)
    base = StreamSettings("temporal", 64, ("synthetic-far", "synthetic-near"))
    assert base.with_value("order", "mixed") == dataclasses.replace(base, protocol="mixed", order=None)
    assert base.with_value("order", "temporal") == base
    assert base.with_value("batch_size", 32.0).batch_size == 32
    assert set(STREAM_ARGUMENTS) == {"batch_size", "id_ood_ratio", "order"}


def test_an_extreme_ratio_never_empties_a_side():
    ood = FeatureSet("far", torch.nn.functional.normalize(torch.randn(4, 8), dim=1), torch.full((4,), -1))
    id_rows, kept = _ratio_subsample(10, ood, 1000.0, torch.Generator().manual_seed(0))
    assert len(id_rows) == 10 and len(kept) == 1
    id_rows, kept = _ratio_subsample(10, ood, 0.001, torch.Generator().manual_seed(0))
    assert len(id_rows) == 1 and len(kept) == 4
