"""FIFO order, eviction and the running mean of TANL's activation memory, and what one update costs."""
import pytest
import torch

from openood_tanl.core.memory import ActivationMemory


def _rows(start: int, count: int, width: int = 3) -> torch.Tensor:
    return torch.arange(start, start + count, dtype=torch.float32)[:, None].repeat(1, width)


def test_fifo_evicts_oldest_first():
    memory = ActivationMemory(capacity=4, width=3)
    memory.fill(_rows(0, 3))  # 0 1 2
    memory.push(_rows(3, 2))  # 0 1 2 3 4 -> 1 2 3 4
    assert memory.rows()[:, 0].tolist() == [1, 2, 3, 4]
    memory.push(_rows(5, 1))
    assert memory.rows()[:, 0].tolist() == [2, 3, 4, 5]
    memory.push(_rows(6, 6))  # more than capacity in one push: only the last four survive, in order
    assert memory.rows()[:, 0].tolist() == [8, 9, 10, 11]


def test_fill_keeps_the_last_rows():
    memory = ActivationMemory(capacity=2, width=3)
    memory.fill(_rows(0, 5))
    assert memory.rows()[:, 0].tolist() == [3, 4]
    memory.fill(_rows(10, 1))
    assert memory.rows()[:, 0].tolist() == [10]
    memory.clear()
    assert memory.count == 0 and memory.mean().isnan().all()


def test_empty_push_changes_nothing():
    memory = ActivationMemory(capacity=3, width=3)
    memory.fill(_rows(0, 2))
    memory.push(torch.empty(0, 3))
    assert torch.equal(memory.push_selected(torch.ones(4, 3), torch.empty(0, dtype=torch.long)), torch.zeros(3))
    assert memory.rows()[:, 0].tolist() == [0, 1] and memory.count == 2


@pytest.mark.parametrize("max_chunks", [1, 2, 64])
def test_running_mean_equals_mean_of_held_rows_over_a_long_stream(max_chunks):
    """Whole chunks leaving, chunks leaving in part (either part read) and merged chunks all keep the sum."""
    g = torch.Generator().manual_seed(0)
    memory = ActivationMemory(capacity=7, width=5, max_chunks=max_chunks)
    reference = []
    for step in range(200):
        rows = torch.rand(int(torch.randint(0, 5, (1,), generator=g)), 5, generator=g)
        memory.push(rows)
        reference = (reference + list(rows))[-7:]
        if reference:
            torch.testing.assert_close(memory.mean(), torch.stack(reference).double().mean(0).float(), rtol=0,
                                       atol=5e-7)
            torch.testing.assert_close(memory.rows(), torch.stack(reference))
            chunks = memory.chunk_sums()
            assert len(chunks) <= max_chunks and sum(size for size, _ in chunks) == memory.count
            torch.testing.assert_close(torch.stack([s.double() for _, s in chunks]).sum(0), memory.column_sum,
                                       rtol=0, atol=1e-12)


def test_push_selected_is_push_of_the_chosen_rows():
    """Rows taken straight from the source (across the wrap, past capacity) are those ``push(source[index])`` holds,
    and the sum returned is that of every chosen row."""
    g = torch.Generator().manual_seed(1)
    taken, pushed = ActivationMemory(capacity=9, width=6), ActivationMemory(capacity=9, width=6)
    taken.fill(_rows(0, 4, 6))
    pushed.fill(_rows(0, 4, 6))
    source = torch.empty(12, 8)
    for step in range(60):
        source.copy_(torch.rand(12, 8, generator=g))
        index = torch.randperm(12, generator=g)[: int(torch.randint(0, 13, (1,), generator=g))]
        total = taken.push_selected(source, index, column=2)
        pushed.push(source[index, 2:])
        torch.testing.assert_close(total, source[index, 2:].sum(0), rtol=0, atol=1e-6)
        assert torch.equal(taken.rows(), pushed.rows()) and taken.count == pushed.count, f"step {step}"
        torch.testing.assert_close(taken.mean(), pushed.mean(), rtol=0, atol=1e-6)
    torch.testing.assert_close(taken.column_sum, taken.rows().double().sum(0), rtol=0, atol=1e-6)


def test_an_update_is_a_few_ops_and_no_host_sync():
    """One push with an eviction in part: a bounded number of tensor ops, none of which reads a value back."""
    from torch.utils._python_dispatch import TorchDispatchMode

    class Count(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.ops, self.syncs = 0, 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            self.ops += 1
            self.syncs += func.__name__.startswith(("_local_scalar_dense", "nonzero", "item"))
            return func(*args, **(kwargs or {}))

    memory = ActivationMemory(capacity=300, width=1000)
    memory.fill(torch.rand(290, 1000))
    source, index = torch.rand(256, 1100), torch.arange(0, 256, 3)
    with Count() as counted:
        memory.push_selected(source, index, column=100)  # 86 rows: 76 of the oldest chunk leave, in part
    assert counted.syncs == 0 and counted.ops <= 24, (counted.ops, counted.syncs)
