#!/usr/bin/env python
"""Encoding the text bank: prompts trimmed to each batch's longest prompt against open_clip's full context.

Encodes a sample of the shipped WordNet corpus as "The nice {}." prompts with ViT-B-16 (random weights: the timing
does not depend on them, and nothing is downloaded), once with open_clip's ``build_zero_shot_classifier`` (every
prompt at the full 77-token context) and once with ``encode_class_texts`` (bucketed by length, trimmed), in the
same run, and prints the speedup and the largest difference between the two sets of embeddings.

    python benchmarks/bench_textbank.py                  # 2,000 prompts, CPU
    python benchmarks/bench_textbank.py --device cuda --prompts 20000
"""
from __future__ import annotations

import argparse
import random
import time

import open_clip
import torch

from openood_tanl.corpus import wordnet_words
from openood_tanl.networks.text_encoding import encode_class_texts, trims_exactly


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", default="ViT-B-16")
    parser.add_argument("--prompts", type=int, default=2000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    nouns, adjectives = wordnet_words()
    words = random.Random(args.seed).sample(nouns + adjectives, args.prompts)
    model = open_clip.create_model(args.model, device=args.device).eval()
    tokenizer = open_clip.get_tokenizer(args.model)
    templates = ["The nice {}."]
    assert trims_exactly(model), f"{args.model}'s text tower cannot be trimmed exactly"
    lengths = (tokenizer([templates[0].format(w) for w in words]) > 0).sum(dim=1)
    print(f"{args.model} (random weights) on {args.device}, threads={torch.get_num_threads()}: {args.prompts} prompts "
          f"of {int(lengths.min())}-{int(lengths.max())} tokens (context {tokenizer.context_length}), batch "
          f"{args.batch}")

    def timed(encode):
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        start = time.perf_counter()
        result = encode()
        if args.device.startswith("cuda"):
            torch.cuda.synchronize()
        return result, time.perf_counter() - start

    with torch.no_grad():
        encode_class_texts(model, tokenizer, words[:args.batch], templates, args.device, args.batch)  # warm-up
        trimmed, trimmed_s = timed(lambda: encode_class_texts(model, tokenizer, words, templates, args.device,
                                                              args.batch)[0])
        full, full_s = timed(lambda: open_clip.build_zero_shot_classifier(
            model, tokenizer, words, templates, num_classes_per_batch=args.batch, device=args.device).T.float().cpu())
    difference = (trimmed - full).abs().max().item()
    print(f"full context {full_s:.1f} s, trimmed {trimmed_s:.1f} s: speedup {full_s / trimmed_s:.1f}x; "
          f"max |difference| {difference:.2e} (target: >= 8x, <= 1e-5)")


if __name__ == "__main__":
    main()
