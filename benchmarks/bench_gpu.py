"""The prepared GPU check: run it first wherever a GPU is lent (a few minutes), then give the GPU back.

Runs, on one device, in this order (each a fresh process; the output of each is printed as it comes):

1. ``bench_step.py``: one TANL step against its fp32 floor (ratio, kernel-launching ops, host syncs), both score
   steps;
2. ``bench_step.py --precision official-fp16``: the authors' float16 numerics against the same floor;
3. ``bench_replay.py --scale``: one TANL replay against its floor, the 5-value label-count sweep and the
   four-method leaderboard against that replay (all in lockstep), at a fraction of Four-OOD's size.

    python benchmarks/bench_gpu.py                       # CUDA, replay at scale 0.5
    python benchmarks/bench_gpu.py --device cpu --scale 0.05 --reps 2    # the same script on a CPU (a dry run)
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--scale", type=float, default=0.5, help="fraction of Four-OOD's size for the replays")
    parser.add_argument("--reps", type=int, default=12, help="steps timed per bench_step row")
    args = parser.parse_args()
    if args.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            sys.exit("bench_gpu: no CUDA device here; pass --device cpu for a dry run")
    runs = [
        ["bench_step.py", "--device", args.device, "--reps", str(args.reps)],
        ["bench_step.py", "--device", args.device, "--reps", str(max(2, args.reps // 3)), "--steps", "1",
         "--precision", "official-fp16"],
        ["bench_replay.py", "--device", args.device, "--scale", str(args.scale), "--repeat", "1"],
    ]
    failed = 0
    for script, *options in runs:
        print(f"\n=== {script} {' '.join(options)}", flush=True)
        start = time.perf_counter()
        failed += subprocess.run([sys.executable, str(HERE / script), *options]).returncode != 0
        print(f"=== {time.perf_counter() - start:.0f} s", flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
