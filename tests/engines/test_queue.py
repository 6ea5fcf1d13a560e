"""FIFO order, eviction and the running mean of the activation memory."""
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


def test_running_mean_equals_mean_of_held_rows_over_a_long_stream():
    g = torch.Generator().manual_seed(0)
    queue = ActivationQueue(capacity=7, width=5)
    reference = []
    for step in range(200):
        rows = torch.rand(int(torch.randint(0, 5, (1,), generator=g)), 5, generator=g)
        queue.push(rows)
        reference = (reference + list(rows))[-7:]
        if reference:
            torch.testing.assert_close(queue.mean(), torch.stack(reference).double().mean(0).float(), rtol=0, atol=5e-7)
            torch.testing.assert_close(queue.rows(), torch.stack(reference))


def test_push_selected_is_push_of_the_chosen_rows():
    """Gathering straight into the slots (in chunks, across the wrap, past capacity) holds the same rows as
    ``push(source[index])`` and returns their sum."""
    g = torch.Generator().manual_seed(1)
    gathered, pushed = ActivationQueue(capacity=9, width=6), ActivationQueue(capacity=9, width=6)
    gathered.fill(_rows(0, 4, 6))
    pushed.fill(_rows(0, 4, 6))
    for step in range(60):
        source = torch.rand(12, 8, generator=g)[:, 2:]  # a column slice, as TANL's corpus part of the softmax
        index = torch.randperm(12, generator=g)[: int(torch.randint(0, 13, (1,), generator=g))]
        total = gathered.push_selected(source, index, chunk_rows=int(torch.randint(1, 5, (1,), generator=g)))
        pushed.push(source[index])
        torch.testing.assert_close(total, source[index].sum(0), rtol=0, atol=1e-6)
        assert torch.equal(gathered.rows(), pushed.rows()) and gathered.count == pushed.count, f"step {step}"
        torch.testing.assert_close(gathered.mean(), pushed.mean(), rtol=0, atol=1e-6)
    gathered.resync()
    torch.testing.assert_close(gathered.column_sum, gathered.rows().double().sum(0), rtol=0, atol=1e-12)
