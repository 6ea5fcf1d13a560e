"""Stream protocols on cached embeddings: stream order, resets, splitting back, seeds, group means."""
import numpy as np
import pytest
import torch

from openood_tanl import TANL
from openood_tanl.evaluation import FeatureBenchmark, FeatureSet, evaluate, run_protocol, score_stream
from openood_tanl.metrics import METRIC_COLUMNS, ood_metrics
from openood_tanl.synthetic import make_bank, make_stream


@pytest.fixture(scope="module")
def setup():
    bank = make_bank(20, 800, 32, seed=0)
    id_features, _, id_labels = make_stream(bank, 300, 0, seed=1, shuffle=False)
    near = make_stream(bank, 0, 100, id_mix=0.8, seed=2)[0]
    far = make_stream(bank, 0, 80, seed=3)[0]
    benchmark = FeatureBenchmark("toy", FeatureSet("id", id_features, id_labels), {
        "near": [FeatureSet("near1", near, torch.full((100,), -1))],
        "far": [FeatureSet("far1", far, torch.full((80,), -1))]})
    return bank, benchmark


def _engine(bank):
    return TANL(bank.id_text, bank.corpus_text, bank.noise_features, num_negatives=50)


class Recorder:
    """Wraps an engine and records what it sees."""

    def __init__(self, engine):
        self.engine, self.batches, self.resets = engine, [], 0

    def reset(self):
        self.resets += 1
        self.batches.append("reset")
        return self.engine.reset()

    def step(self, features):
        self.batches.append(features)
        return self.engine.step(features)


def test_mixed_equals_a_hand_built_stream(setup):
    bank, benchmark = setup
    table = run_protocol(_engine(bank), benchmark, "mixed", seed=4, batch_size=32)
    # by hand: the i-th OOD set's stream is drawn by its own generator, seeded from (seed, i) by numpy's
    # SeedSequence, so the order in which the sets run does not matter (here: far first)
    engine = _engine(bank)
    near, far = benchmark.ood_groups["near"][0], benchmark.ood_groups["far"][0]
    for index, name, ood in ((1, "far1", far), (0, "near1", near)):
        state = np.random.SeedSequence(4, spawn_key=(index,)).generate_state(2, np.uint32)
        generator = torch.Generator().manual_seed(int(state[0]) | int(state[1]) << 32)
        engine.reset()
        pool = torch.cat([benchmark.id_set.features, ood.features])
        order = torch.randperm(len(pool), generator=generator)
        pred, score = score_stream(engine, pool[order], 32)
        s, p = torch.empty(len(pool)), torch.empty(len(pool), dtype=torch.long)
        s[order], p[order] = score, pred
        labels = torch.cat([benchmark.id_set.labels, torch.full((len(ood),), -1)])
        expected = ood_metrics(s.numpy(), (torch.arange(len(pool)) < 300).numpy(), p.numpy(), labels.numpy())
        assert table.loc[name, list(METRIC_COLUMNS)].to_dict() == pytest.approx(expected)


@pytest.mark.parametrize("protocol, resets", [("mixed", 2), ("id-first", 2), ("ood-first", 2), ("temporal", 1)])
def test_protocols_reset_and_order_as_documented(setup, protocol, resets):
    bank, benchmark = setup
    recorder = Recorder(_engine(bank))
    run_protocol(recorder, benchmark, protocol, seed=0, batch_size=50)
    assert recorder.resets == resets
    streams = [torch.cat(list(group)) for group in _split_at_resets(recorder.batches)]
    id_rows = {tuple(r.tolist()) for r in benchmark.id_set.features}
    is_id = [torch.tensor([tuple(r.tolist()) in id_rows for r in stream]) for stream in streams]
    if protocol == "id-first":
        assert all(flags[: flags.sum()].all() for flags in is_id)  # every ID row comes before any OOD row
    if protocol == "ood-first":
        assert all((~flags[: (~flags).sum()]).all() for flags in is_id)
    if protocol == "temporal":
        assert len(streams) == 1 and is_id[0].sum() == 300 and len(streams[0]) == 300 + 100 + 80
    else:
        assert [len(s) for s in streams] == [400, 380]


def _split_at_resets(events):
    groups, current = [], None
    for event in events:
        if isinstance(event, str):
            current = []
            groups.append(current)
        else:
            current.append(event)
    return groups


def test_evaluate_adds_group_means_and_seed_spread(setup):
    bank, benchmark = setup
    summary, per_seed = evaluate(lambda: _engine(bank), benchmark, "mixed", seeds=[0, 1, 2], batch_size=64)
    assert list(summary.index) == ["near1", "nearood", "far1", "farood"]
    assert {f"{m}_std" for m in METRIC_COLUMNS} <= set(summary.columns)
    assert summary.loc["nearood", "AUROC"] == pytest.approx(summary.loc["near1", "AUROC"])
    assert len(per_seed) == 3 * 4
    seed0 = per_seed[(per_seed.seed == 0) & (per_seed.dataset == "far1")]["AUROC"].item()
    alone = run_protocol(_engine(bank), benchmark, "mixed", seed=0, batch_size=64)
    assert seed0 == pytest.approx(alone.loc["far1", "AUROC"])
    means = per_seed[per_seed.dataset == "far1"]["AUROC"]
    assert summary.loc["far1", "AUROC"] == pytest.approx(means.mean())
    assert summary.loc["far1", "AUROC_std"] == pytest.approx(means.std(ddof=1))


def test_bad_protocol_and_order_are_named(setup):
    bank, benchmark = setup
    with pytest.raises(ValueError, match="choose one of mixed, id-first, ood-first, temporal"):
        run_protocol(_engine(bank), benchmark, "shuffled")
    with pytest.raises(ValueError, match="unknown OOD sets"):
        run_protocol(_engine(bank), benchmark, "temporal", order=["far1", "nope"])
