"""Counting what an eager step costs on a GPU, on the CPU: kernel-launching ops and host syncs at torch's dispatch
level (benchmarks/bench_step.py prints the same counts at ImageNet scale)."""
from __future__ import annotations

import torch
from torch.utils._python_dispatch import TorchDispatchMode

#: View and metadata ops that launch no kernel.
NO_KERNEL = ("view", "_unsafe_view", "slice", "select", "t", "transpose", "expand", "unsqueeze", "squeeze",
             "as_strided", "alias", "detach", "permute", "reshape", "split", "unbind", "empty", "lift_fresh",
             "_to_copy_noop", "unfold", "narrow", "diagonal", "set_", "resize_")
#: Ops that read a value back to the host (``Tensor.tolist`` dispatches none on the CPU: counted by hand).
SYNCS = ("_local_scalar_dense", "nonzero", "item", "is_nonzero", "equal", "allclose")


def count_dispatch(call) -> tuple[int, int]:
    """(kernel-launching ops, host syncs) of one ``call()``."""

    class Counter(TorchDispatchMode):
        ops = syncs = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            name = func.__name__.split(".")[0]
            self.ops += name not in NO_KERNEL
            self.syncs += name in SYNCS
            return func(*args, **(kwargs or {}))

    tolist = torch.Tensor.tolist

    def counted_tolist(tensor):
        counter.syncs += 1
        return tolist(tensor)

    torch.Tensor.tolist = counted_tolist
    try:
        with Counter() as counter:
            call()
    finally:
        torch.Tensor.tolist = tolist
    return counter.ops, counter.syncs
