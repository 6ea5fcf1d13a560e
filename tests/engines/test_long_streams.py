"""A million samples through TANL.step: the state stays the same size, memory does not grow, the running sums stay
exact, and ``reset`` really returns to the initial state."""
import gc
import os
import resource

import pytest
import torch

from openood_tanl import TANL
from openood_tanl.core.memory import ActivationMemory
from openood_tanl.core.workspace import Workspaces
from openood_tanl.synthetic import make_bank, make_stream

C, N, D, M, L = 10, 500, 16, 50, 100
SCORE_MEMORY, BATCH, STEPS = 2000, 1000, 1000  # 1,000,000 samples
pytestmark = pytest.mark.slow  # a million samples through the engines

BANK = make_bank(C, N, D, seed=0)


def _engine():
    return TANL(BANK.id_text, BANK.corpus_text, BANK.noise_features, num_negatives=M, memory_length=L,
                score_memory_length=SCORE_MEMORY, seed=3)


def _batch(step):
    """Step ``step``'s batch: 750 ID and 250 OOD samples, fresh for every step (0.2 ms to make)."""
    return make_stream(BANK, BATCH * 3 // 4, BATCH // 4, seed=step)[0]


def _state_tensors(engine):
    """Every tensor the engine holds: (name, shape, dtype, bytes)."""
    found = {}

    def visit(prefix, obj):
        if isinstance(obj, torch.Tensor):
            found[prefix] = (tuple(obj.shape), obj.dtype, obj.untyped_storage().nbytes())
        elif isinstance(obj, ActivationMemory):
            for key, value in vars(obj).items():
                visit(f"{prefix}.{key}", value)
        elif isinstance(obj, Workspaces):
            visit(prefix, obj._buffers)
        elif isinstance(obj, dict):
            for key, value in obj.items():
                visit(f"{prefix}[{key!r}]", value)
        elif isinstance(obj, (list, tuple, set)):
            found[prefix] = (len(obj),)

    for key, value in vars(engine).items():
        visit(key, value)
    return found


def _rss_bytes():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.fixture(scope="module")
def long_run():
    """The engine after 1,000 steps of 1,000 samples, with what was measured along the way.

    RSS is sampled every 50 steps from step 100 (the queues and the score memory are full by then).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # ~5 s; one thread also keeps it quick when other jobs share the cores
    try:
        return _long_run()
    finally:
        torch.set_num_threads(threads)


def _long_run():
    engine = _engine()
    record = {"rss": []}
    for step in range(1, STEPS + 1):
        engine.step(_batch(step - 1))
        if step == 100:
            record["state_100"] = _state_tensors(engine)
            record["peak_100"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        if step >= 100 and step % 50 == 0:
            gc.collect()
            record["rss"].append(_rss_bytes())
    record["state_1000"] = _state_tensors(engine)
    record["peak_1000"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return engine, record


def test_state_has_a_constant_size_after_the_queues_fill(long_run):
    engine, record = long_run
    assert engine.memory_fill == (L, L)
    assert engine.state_dict()["score_count"] == SCORE_MEMORY
    assert set(engine._workspaces.shapes()) <= {"logits", "softmax", "negatives", "negatives/ascending",
                                                "prefix sums", "prefix exponentials",
                                                "prefix exponentials/float64"}
    assert record["state_100"] == record["state_1000"]
    sizes = record["state_1000"]
    assert sizes["_score_memory"][0] == (SCORE_MEMORY,)
    assert sizes["_id_memory.storage"][0] == sizes["_ood_memory.storage"][0] == (L, N)  # the rows, in place
    workspaces = engine._workspaces.shapes()
    assert workspaces["logits"] == workspaces["softmax"] == ((BATCH, C + N), torch.float32)
    assert workspaces["prefix sums"] == ((BATCH, engine.num_negatives), torch.float64)


def test_resident_memory_does_not_grow(long_run):
    # The allocator moves RSS by a few MiB either way from one sample to the next; a leak grows it steadily.
    # Medians of the first and last third compare like with like (a 4 KiB-per-step leak, one score list, shows).
    _, record = long_run
    rss = torch.tensor(record["rss"], dtype=torch.float64) / 2**20  # 19 samples, MiB
    third = len(rss) // 3
    early, late = rss[:third].median(), rss[-third:].median()
    assert late - early < 2, f"RSS grew from {early:.1f} to {late:.1f} MiB between steps 100 and 1000"
    assert rss.max() - rss[0] < 8, f"RSS samples (MiB): {rss.tolist()}"
    assert record["peak_1000"] - record["peak_100"] < 8 * 1024  # ru_maxrss is in KiB


def test_running_sums_stay_exact(long_run):
    """After a million samples the running sum is still the sum of the held pieces' sums (no drift), and those
    are float32 sums of the held rows."""
    engine, _ = long_run
    for memory in engine.memories:
        exact = memory.rows().double().mean(0)
        torch.testing.assert_close(memory.mean().double(), exact, rtol=0, atol=1e-7)
        chunks = torch.stack([chunk_sum.double() for _, chunk_sum in memory.chunk_sums()]).sum(0)
        torch.testing.assert_close(memory.column_sum, chunks, rtol=0, atol=1e-12)  # float64 rounding only
        torch.testing.assert_close(memory.column_sum, memory.rows().double().sum(0), rtol=1e-6, atol=1e-12)


def test_reset_after_a_long_stream_is_a_fresh_engine(long_run):
    engine, _ = long_run
    fresh = _engine()
    engine.reset()
    for memory, fresh_memory in zip(engine.memories, fresh.memories):
        assert torch.equal(memory.rows(), fresh_memory.rows())
        assert torch.equal(memory.column_sum, fresh_memory.column_sum)
        assert memory.count == fresh_memory.count
    state, fresh_state = engine.state_dict(), fresh.state_dict()
    assert torch.equal(state["score_memory"], fresh_state["score_memory"])
    assert (state["score_count"], state["score_head"]) == (fresh_state["score_count"], fresh_state["score_head"])
    assert torch.equal(engine.selected, fresh.selected)
    for step in range(20):
        batch = _batch(step)
        pred, score = engine.step(batch)
        ref_pred, ref_score = fresh.step(batch)
        assert torch.equal(pred, ref_pred) and torch.equal(score, ref_score), f"step {step}"
        assert engine.threshold == fresh.threshold or (engine.threshold != engine.threshold
                                                      and fresh.threshold != fresh.threshold)
        assert torch.equal(engine.selected, fresh.selected), f"step {step}"
        assert engine.memory_fill == fresh.memory_fill
