"""FIFO order, eviction and the running mean of the activation memory."""
import pytest
import torch

from openood_tanl.core import ActivationQueue


def _rows(start: int, count: int, width: int = 3) -> torch.Tensor:
    return torch.arange(start, start + count, dtype=torch.float32)[:, None].repeat(1, width)


def test_fifo_evicts_oldest_first():
    queue = ActivationQueue(capacity=4, width=3)
    queue.fill(_rows(0, 3))  # 0 1 2
    queue.push(_rows(3, 2))  # 0 1 2 3 4 -> 1 2 3 4
    assert queue.rows()[:, 0].tolist() == [1, 2, 3, 4]
    queue.push(_rows(5, 1))
    assert queue.rows()[:, 0].tolist() == [2, 3, 4, 5]
    queue.push(_rows(6, 6))  # more than capacity in one push: only the last four survive, in order
    assert queue.rows()[:, 0].tolist() == [8, 9, 10, 11]


def test_fill_keeps_the_last_rows():
    queue = ActivationQueue(capacity=2, width=3)
    queue.fill(_rows(0, 5))
    assert queue.rows()[:, 0].tolist() == [3, 4]
    queue.fill(_rows(10, 1))
    assert queue.rows()[:, 0].tolist() == [10]


def test_empty_push_changes_nothing():
    queue = ActivationQueue(capacity=3, width=3)
    queue.fill(_rows(0, 2))
    queue.push(torch.empty(0, 3))
    assert queue.rows()[:, 0].tolist() == [0, 1] and queue.count == 2


@pytest.mark.parametrize("max_pieces", [1, 2, 64])
def test_running_mean_equals_mean_of_held_rows_over_a_long_stream(max_pieces):
    """Whole pieces leaving, pieces leaving in part (either part read) and merged pieces all keep the sum."""
    g = torch.Generator().manual_seed(0)
    queue = ActivationQueue(capacity=7, width=5, max_pieces=max_pieces)
    reference = []
    for step in range(200):
        rows = torch.rand(int(torch.randint(0, 5, (1,), generator=g)), 5, generator=g)
        queue.push(rows)
        reference = (reference + list(rows))[-7:]
        if reference:
            torch.testing.assert_close(queue.mean(), torch.stack(reference).double().mean(0).float(), rtol=0, atol=5e-7)
            torch.testing.assert_close(queue.rows(), torch.stack(reference))
            sums = [piece_sum.double() for _, piece_sum in queue._pieces]
            assert len(sums) <= max_pieces and sum(size for size, _ in queue._pieces) == queue.count
            torch.testing.assert_close(torch.stack(sums).sum(0), queue.column_sum, rtol=0, atol=1e-12)


def test_push_selected_is_push_of_the_chosen_rows():
    """Rows taken straight from the source (across the wrap, past capacity) are those ``push(source[index])`` holds,
    with the same sums."""
    g = torch.Generator().manual_seed(1)
    taken, pushed = ActivationQueue(capacity=9, width=6), ActivationQueue(capacity=9, width=6)
    taken.fill(_rows(0, 4, 6))
    pushed.fill(_rows(0, 4, 6))
    source = torch.empty(12, 8)
    for step in range(60):
        source.copy_(torch.rand(12, 8, generator=g))  # one tensor written in place per batch, as a workspace
        index = torch.randperm(12, generator=g)[: int(torch.randint(0, 13, (1,), generator=g))]
        total = taken.push_selected(source, index, column=2)
        pushed.push(source[index, 2:])
        torch.testing.assert_close(total, source[index, 2:].sum(0), rtol=0, atol=1e-6)
        assert torch.equal(taken.rows(), pushed.rows()) and taken.count == pushed.count, f"step {step}"
        torch.testing.assert_close(taken.mean(), pushed.mean(), rtol=0, atol=1e-6)
    taken.resync()  # float32 sums of each piece's rows, added in float64
    torch.testing.assert_close(taken.column_sum, taken.rows().double().sum(0), rtol=0, atol=1e-6)
    torch.testing.assert_close(taken.column_sum, torch.stack([s.double() for _, s in taken._pieces]).sum(0),
                               rtol=0, atol=1e-12)


def test_memories_sharing_a_pool_store_each_row_once_and_stay_their_own():
    """Three memories on one pool (as the engines of a Lockstep) hold exactly what memories with pools of their
    own hold, bit for bit, while the pool stores a row taken by several of them once."""
    from openood_tanl.core.pool import ActivationPool

    g = torch.Generator().manual_seed(2)
    pool = ActivationPool(5, rows=3 * 6)
    shared = [ActivationQueue(capacity=6, width=5, pool=pool, max_pieces=2) for _ in range(3)]
    alone = [ActivationQueue(capacity=6, width=5, max_pieces=2) for _ in range(3)]
    for number, queue in enumerate(shared + alone):
        queue.fill(_rows(10 * (number % 3), 3, 5))  # distinct rows in each memory
    source = torch.empty(10, 7)
    for step in range(80):
        source.copy_(torch.rand(10, 7, generator=g))
        common = torch.randperm(10, generator=g)[:4].sort().values
        for number, (mine, reference) in enumerate(zip(shared, alone)):
            index = common if number < 2 else common[:2]  # two memories take the same rows, one fewer
            assert torch.equal(mine.push_selected(source, index, 2), reference.push_selected(source, index, 2))
            assert torch.equal(mine.rows(), reference.rows()), f"step {step}"
            assert torch.equal(mine.column_sum, reference.column_sum), f"step {step}"
        held = {tuple(row.tolist()) for queue in shared for row in queue.rows()}
        assert pool.rows_held == len(held)  # each distinct row stored once
    for queue in shared:
        queue.clear()
    assert pool.rows_held == 0


def test_a_memory_moves_to_another_pool_unchanged():
    from openood_tanl.core.pool import ActivationPool

    queue = ActivationQueue(capacity=4, width=3)
    queue.fill(_rows(0, 3))
    queue.push(_rows(3, 3))
    before, total = queue.rows(), queue.column_sum.clone()
    pool = ActivationPool(3)
    queue.move_to(pool)
    assert torch.equal(queue.rows(), before) and torch.equal(queue.column_sum, total)
    assert queue.pool is pool and pool.rows_held == 4
    with pytest.raises(ValueError, match="width 3, not 5"):
        ActivationQueue(capacity=2, width=5, pool=pool)
