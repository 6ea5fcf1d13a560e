"""TANL.step against the unavoidable work of one batch, measured in the same run.

Floor = one [B, D] x [D, C + N] matmul, its softmax, one top-M over N. The engine's step is timed on a synthetic
stream at ImageNet scale (defaults: C=1000, N=70,000, D=512, B=256, M=1000, L=300, step 1). Floor and step
alternate, and the medians are compared, so load on the machine hits both alike. Each row also counts one
steady-state step's kernel-launching ops and host syncs at torch's dispatch level (what bounds an eager step on a
GPU), for both presets (``tanl``, the paper; ``tanl_official``, the authors' script: gap 0.5, alpha 0). Targets
(issue 18): ops <= 120, syncs <= 2, ratio <= 1.1 on the CPU.

    python benchmarks/bench_step.py                 # CPU, paper setting
    python benchmarks/bench_step.py --device cuda   # GPU (synchronised timings)
    python benchmarks/bench_step.py --precision official-fp16 --reps 4   # the authors' float16 numerics
"""
from __future__ import annotations

import argparse
import itertools
import resource
import statistics
import sys
import time
from pathlib import Path

import torch

from openood_tanl import TANL
from openood_tanl.core import OfficialFP16TANL
from openood_tanl.methods import preset_settings
from openood_tanl.synthetic import make_bank, make_stream

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the counter the tests bound a step with
from helpers.dispatch import count_dispatch  # noqa: E402


def _timed(fn, device) -> float:
    if device.type == "cuda":
        torch.cuda.synchronize()
    start = time.perf_counter()
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--corpus", type=int, default=70000)
    parser.add_argument("--dim", type=int, default=512)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--negatives", type=int, default=1000)
    parser.add_argument("--memory", type=int, nargs="+", default=[300])
    parser.add_argument("--steps", type=int, nargs="+", default=[1, 0])
    parser.add_argument("--presets", nargs="+", default=["tanl", "tanl_official"], choices=("tanl", "tanl_official"))
    parser.add_argument("--reps", type=int, default=12)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--precision", default="fp32", choices=("fp32", "official-fp16"),
                        help="official-fp16: OfficialFP16TANL on float16-valued embeddings (its per-prefix loop)")
    args = parser.parse_args()
    device = torch.device(args.device)

    bank = make_bank(args.classes, args.corpus, args.dim, seed=0)
    half = args.precision == "official-fp16"
    engine_class = OfficialFP16TANL if half else TANL
    id_text, corpus, noise = (t.to(device).half().float() if half else t.to(device)
                              for t in (bank.id_text, bank.corpus_text, bank.noise_features))
    features, _, _ = make_stream(bank, num_id=args.batch * (args.reps + 2) * 3 // 4,
                                 num_ood=args.batch * (args.reps + 2) // 4, seed=1)
    batches = [b.to(device).half().float() if half else b.to(device) for b in features.split(args.batch)]
    text = torch.cat([id_text, corpus])
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    def floor(batch):
        logits = (100.0 * batch) @ text.T
        probs = torch.softmax(logits, dim=1)
        torch.topk(probs[0, args.classes:], args.negatives)

    print(f"device={device} threads={torch.get_num_threads()} C={args.classes} N={args.corpus} D={args.dim} "
          f"B={args.batch} M={args.negatives} engine={engine_class.__name__}")
    print(f"{'preset':>13} {'L':>5} {'step':>4} {'floor ms':>9} {'step ms':>8} {'ratio':>6} {'ops':>5} {'syncs':>5}")
    rows = []  # (ratio, ops, syncs) per row
    for preset, memory, score_step in itertools.product(args.presets, args.memory, args.steps):
        engine = engine_class(id_text, corpus, noise, num_negatives=args.negatives, memory_length=memory,
                              score_step=score_step, **preset_settings(preset))
        floor(batches[0]), engine.step(batches[0])  # warm-up
        floors, steps = [], []
        for batch in batches[1:]:
            floors.append(_timed(lambda: floor(batch), device))
            steps.append(_timed(lambda: engine.step(batch), device))
        f, s = statistics.median(floors), statistics.median(steps)
        ops, syncs = count_dispatch(lambda: engine.step(batches[-1]))  # memories full: the steady state
        rows.append((s / f, ops, syncs))
        print(f"{preset:>13} {memory:>5} {score_step:>4} {1e3 * f:>9.2f} {1e3 * s:>8.2f} {s / f:>6.2f} {ops:>5} "
              f"{syncs:>5}")
    ratio, ops, syncs = (max(column) for column in zip(*rows))
    print(f"worst row: ratio {ratio:.2f} (CPU target <= 1.1), ops {ops} (<= 120), syncs {syncs} (<= 2)")
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"peak RSS {peak:.0f} MiB, of which {peak - rss_before:.0f} MiB after the data were generated "
          f"(text bank {text.numel() * 4 / 2**20:.0f} MiB, "
          f"two queues of L={max(args.memory)}: {2 * max(args.memory) * args.corpus * 4 / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
