"""Independent OOD streams (and seeds) in worker processes give exactly the tables of the sequential run."""
import functools

import pandas as pd
import pytest
import torch

from openood_tanl import TANL, configure
from openood_tanl.bank import TextBank
from openood_tanl.evaluation import FeatureBenchmark, FeatureSet, evaluate, run_protocol
from openood_tanl.evaluation.streams import stream_generator
from openood_tanl.synthetic import make_bank, make_stream

pytestmark = pytest.mark.slow  # process pools

BANK = make_bank(20, 800, 32, seed=0)


@pytest.fixture(scope="module")
def toy():
    id_features, _, id_labels = make_stream(BANK, 300, 0, seed=1, shuffle=False)
    sets = {name: make_stream(BANK, 0, count, id_mix=mix, seed=seed)[0]
            for name, count, mix, seed in (("near1", 100, 0.8, 2), ("near2", 60, 0.5, 3), ("far1", 80, 0.0, 4))}
    minus_one = {name: torch.full((len(f),), -1) for name, f in sets.items()}
    return FeatureBenchmark("toy", FeatureSet("id", id_features, id_labels), {
        "near": [FeatureSet(n, sets[n], minus_one[n]) for n in ("near1", "near2")],
        "far": [FeatureSet("far1", sets["far1"], minus_one["far1"])]})


def make_tanl():
    """A picklable factory: functools.partial of the engine class with its bank."""
    return functools.partial(TANL, BANK.id_text, BANK.corpus_text, BANK.noise_features, num_negatives=50,
                             memory_length=40)


@pytest.mark.parametrize("protocol", ["mixed", "id-first", "ood-first", "temporal"])
def test_two_workers_equal_one(toy, protocol):
    sequential = evaluate(make_tanl(), toy, protocol, seeds=[0, 5], batch_size=32)
    parallel = evaluate(make_tanl(), toy, protocol, seeds=[0, 5], batch_size=32, workers=2)
    for a, b in zip(sequential, parallel):
        pd.testing.assert_frame_equal(a, b, check_exact=True)
    assert list(sequential[0].index) == ["near1", "near2", "nearood", "far1", "farood"]


def test_a_registry_factory_and_more_workers_than_streams(toy):
    bank = TextBank(BANK.id_text, BANK.corpus_text, BANK.noise_features)
    factory = configure("tanl", num_negatives=50, memory_length=40).factory(bank)  # create_engine, pickled
    sequential = evaluate(factory, toy, "mixed", seeds=[1], batch_size=50)
    parallel = evaluate(factory, toy, "mixed", seeds=[1], batch_size=50, workers=8, threads_per_worker=1)
    for a, b in zip(sequential, parallel):
        pd.testing.assert_frame_equal(a, b, check_exact=True)


def test_run_protocol_in_workers_leaves_the_engine_alone(toy):
    engine = make_tanl()()
    before = engine.state_dict()["score_memory"]
    parallel = run_protocol(engine, toy, "ood-first", seed=2, batch_size=40, workers=3)
    assert torch.equal(engine.state_dict()["score_memory"], before)  # the workers stepped their own copies
    sequential = run_protocol(engine, toy, "ood-first", seed=2, batch_size=40)
    pd.testing.assert_frame_equal(sequential, parallel, check_exact=True)


def test_temporal_with_one_seed_runs_here_without_pickling(toy):
    unpicklable = make_tanl()()
    unpicklable.hook = lambda: None  # a lambda attribute: pickling this engine would fail
    table = run_protocol(unpicklable, toy, "temporal", seed=0, batch_size=64, workers=4)
    expected = run_protocol(make_tanl()(), toy, "temporal", seed=0, batch_size=64)
    pd.testing.assert_frame_equal(table, expected, check_exact=True)


def test_an_unpicklable_factory_is_named_with_the_fix(toy):
    with pytest.raises(TypeError, match=r"must be picklable.*functools.partial\(create_engine, name, bank\)"):
        evaluate(lambda: make_tanl()(), toy, "mixed", workers=2)


def test_each_stream_has_its_own_generator(toy):
    # the stream of a set depends on (seed, set index) only: running a set alone gives its row of the full table
    full = run_protocol(make_tanl()(), toy, "mixed", seed=7, batch_size=32)
    alone = FeatureBenchmark("alone", toy.id_set, {"near": toy.ood_groups["near"]})
    part = run_protocol(make_tanl()(), alone, "mixed", seed=7, batch_size=32)
    pd.testing.assert_frame_equal(part, full.loc[["near1", "near2"]], check_exact=True)
    draws = {(seed, index): torch.randperm(1000, generator=stream_generator(seed, index))[:8].tolist()
             for seed in range(4) for index in range(4)}
    assert len({tuple(d) for d in draws.values()}) == len(draws)
    assert draws[(1, 2)] == torch.randperm(1000, generator=stream_generator(1, 2))[:8].tolist()


@pytest.mark.parametrize("workers", [0, -1, 1.5, True])
def test_bad_worker_counts_are_named(toy, workers):
    with pytest.raises(ValueError, match="workers must be an integer >= 1"):
        evaluate(make_tanl(), toy, "mixed", workers=workers)
