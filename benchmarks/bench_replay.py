"""Replaying one four-OOD-sized stream from cached features through TANL, against its unavoidable work.

Stream: 50,000 ID + 10,000 OOD embeddings (D=512), corpus 70,000 words, C=1000, batch 256, mixed protocol.
Floor = for every batch of the stream, the [B, D] x [D, C + N] matmul and its softmax. Both are timed in the
same run and printed as a ratio. With --sweep K, a sweep of K label counts is timed too and compared with K
replays (embeddings are never re-encoded: a sweep is K replays).

    python benchmarks/bench_replay.py            # full size (a few minutes on 2 cores)
    python benchmarks/bench_replay.py --scale 0.1 --sweep 3
"""
from __future__ import annotations

import argparse
import time

import torch

from openood_tanl import configure
from openood_tanl.bank import TextBank
from openood_tanl.evaluation import FeatureBenchmark, FeatureSet, evaluate, sweep
from openood_tanl.synthetic import make_bank, make_stream


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="fraction of the stream and corpus sizes")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--sweep", type=int, default=0, help="also time a sweep of this many label counts")
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    device = torch.device(args.device)
    num_id, num_ood, corpus = (int(args.scale * n) for n in (50000, 10000, 70000))
    bank = make_bank(1000, corpus, 512, seed=0)
    id_features, _, id_labels = make_stream(bank, num_id, 0, signal=0.4, seed=1, shuffle=False)
    ood_features = make_stream(bank, 0, num_ood, signal=0.4, seed=2)[0]
    benchmark = FeatureBenchmark("four-ood-sized", FeatureSet("id", id_features.to(device), id_labels), {
        "far": [FeatureSet("ood", ood_features.to(device), torch.full((num_ood,), -1))]})
    text_bank = TextBank(*(t.to(device) for t in (bank.id_text, bank.corpus_text, bank.noise_features)), 100.0)
    text = torch.cat([text_bank.id_text_features, text_bank.corpus_text_features])
    stream = torch.cat([benchmark.id_set.features, benchmark.ood_groups["far"][0].features])
    print(f"device={device} threads={torch.get_num_threads()} stream {num_id} ID + {num_ood} OOD, D=512, "
          f"C=1000, N={corpus}, batch {args.batch}")

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    method = configure("tanl")  # the paper's setting: M=1000, L=300, step 1
    engine = method.engine(text_bank)  # built once, as a replay reuses it (reset per stream)
    evaluate(lambda: engine, FeatureBenchmark("warm-up", FeatureSet(
        "id", stream[:512], id_labels[:512]), {"far": [FeatureSet("o", stream[-256:], torch.full((256,), -1))]}))
    sync()
    start = time.perf_counter()
    for batch in stream.split(args.batch):
        torch.softmax((100.0 * batch) @ text.T, dim=1)
    sync()
    floor = time.perf_counter() - start
    start = time.perf_counter()
    summary, _ = evaluate(lambda: engine, benchmark, "mixed", batch_size=args.batch)
    sync()
    replay = time.perf_counter() - start
    print(f"floor (matmul + softmax per batch) {floor:.1f} s, TANL replay {replay:.1f} s: ratio {replay / floor:.2f}"
          f" (AUROC {summary.loc['ood', 'AUROC']:.2f})")
    if args.sweep:
        values = [250 * 2 ** i for i in range(args.sweep)]
        start = time.perf_counter()
        sweep(method, "num_negatives", values, text_bank, benchmark, batch_size=args.batch)
        sync()
        swept = time.perf_counter() - start
        print(f"sweep of {len(values)} label counts {values}: {swept:.1f} s = {swept / replay:.2f} replays")


if __name__ == "__main__":
    main()
