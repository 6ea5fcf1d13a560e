"""``openood-tanl``: evaluate TANL and the baselines the way the paper does, from cached CLIP features.

Commands (``openood-tanl <command> --help`` for each):
  demo         the main job on an embedded synthetic benchmark (no download): leaderboard, label-count sweep,
               sample-order sweep, stream trace
  extract      encode a benchmark's images once into the feature cache
  eval         one method on a benchmark under a test-time protocol; prints the table, writes CSV (--trace DIR:
               the stream batch by batch, trace.csv and a PNG per stream)
  leaderboard  several methods x benchmarks x seeds -> leaderboard.csv and leaderboard.md (best in bold)
  sweep        methods over values of one argument (label counts by default; any hyperparameter, or the stream's
               batch_size, id_ood_ratio or order) -> sweep.csv and sweep.png
  reproduce    the paper's setting on four-ood or imagenet; paper's numbers vs ours, per dataset

Every result file comes with ``<stem>.run.json`` (what produced it: versions, methods and hyperparameters, backbone,
weights and their logit scale, class names, corpus and its SHA-256, prompts, protocol, seeds, batch size, FPR@95
conventions) and every CSV with a ``config_id`` column naming that configuration. Results of another configuration
are never overwritten without ``--overwrite``.

Real benchmarks: OpenOOD v1.5 names (imagenet, imagenet200, cifar10, cifar100; needs OpenOOD and its data under
--data-root), four-ood (image folders under --data-root), or a YAML spec of image lists/folders. Images are
encoded once per model and replayed from the cache for every OOD set, seed, protocol, method and sweep value; the
methods of a leaderboard and the points of a sweep step in lockstep on one replay (one logits matrix and softmax
per batch; each method's results bitwise those of a run on its own).

Everything is checked before any model is loaded (arguments, methods and hyperparameters, output folder, images,
class names against the ID labels, corpus); a mistake ends with one line on stderr and exit code 2, an internal
error (a bug to report) with one line and exit code 1 (``--debug`` or ``OPENOOD_TANL_DEBUG=1`` shows the
traceback).
"""
from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import Callable

from ..corpus import CORPUS_RULES
from ..evaluation.datasets import KNOWN_BENCHMARKS
from ..evaluation.protocols import BACKBONE_AXIS, PROTOCOLS, STREAM_ARGUMENTS
from ..evaluation.reproduce import PAPER_SETTING, REPRODUCIBLE_BENCHMARKS
from ..methods import list_methods
from . import commands
from .commands import DEFAULT_SWEEP_VALUES, DEFAULT_TRACE_WINDOW

__all__ = ["build_parser", "default_workers"]

#: What --benchmark(s) takes: the benchmark loader's names or a spec file.
BENCHMARK_HELP = " | ".join(KNOWN_BENCHMARKS) + " | spec.yml"


def default_workers() -> int:
    """Image-decoding workers: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus))


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""
    bounds = f">= {low}" if high is None else f"in [{low}, {high}]"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number {bounds}, got '{text}'") from None
        if value < low or (high is not None and value > high):
            raise argparse.ArgumentTypeError(f"expected a whole number {bounds}, got {value}")
        return value

    return parse


_positive_int, _count, _seed = _whole_number(1), _whole_number(0), _whole_number(0, 2**63 - 1)


def _positive_real(text: str) -> float:
    """An argparse type: a finite number > 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number > 0, got '{text}'") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number > 0, got {text}")
    return value


class _Formatter(argparse.RawDescriptionHelpFormatter):
    """Shows each option's default (unless None, a flag's False, or already worded in its help) and keeps the
    description's line breaks."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS)) or "default" in text \
                or not action.option_strings:
            return text
        return text + " (default: %(default)s)"


def _common_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help="show the traceback of an error (also OPENOOD_TANL_DEBUG=1)")


def _output_arguments(parser: argparse.ArgumentParser, default: str) -> None:
    parser.add_argument("--out", type=Path, default=Path(default), help="output folder")
    parser.add_argument("--overwrite", action="store_true",
                        help="replace results of another configuration in --out (otherwise refused)")


def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and text bank")
    group.add_argument("--model", default="ViT-B-16", help="open_clip model name")
    group.add_argument("--pretrained", default="openai", help="open_clip pretrained tag or local checkpoint path")
    group.add_argument("--model-config", default=None, help="open_clip model-config JSON for a custom architecture")
    group.add_argument("--id-classes", default=None,
                       help="imagenet | imagenet-disambiguated | imagenet200 | cifar10 | cifar100 | class-name file "
                            "(default: from --benchmark)")
    group.add_argument("--corpus", default="wordnet",
                       help="wordnet | wordnet-all-lemmas | a folder of adj*.txt/noun*.txt word lists (NegLabel's "
                            "txtfiles/ gives the official corpus) | a word-list file")
    group.add_argument("--corpus-rules", default="official", choices=CORPUS_RULES,
                       help="official: exact de-duplication and the official file reading; clean: case-insensitive, "
                            "stripped lines")
    group.add_argument("--templates", default="official", choices=("official", "openai-ensemble"),
                       help="prompts: the official single templates or open_clip's OpenAI ensemble")
    group.add_argument("--precision", default="fp32", choices=("fp32", "fp16", "official-fp16"),
                       help="fp32; fp16 (CUDA): a half-precision model, features normalised in float32; "
                            "official-fp16 (CUDA or CPU): the authors' float16 run, TANL's scores in float16 too")
    group.add_argument("--transform", default="auto", choices=("auto", "official", "open_clip"),
                       help="image preprocessing: auto = the official one (short side to 256 bicubic, crop 224, CLIP "
                            "mean/std; 224 for CIFAR) for ImageNet, ImageNet-200, Four-OOD and CIFAR, open_clip's "
                            "eval transform for anything else")
    group.add_argument("--negmining", default="own", metavar="own|official|MODEL:WEIGHTS",
                       help="what ranks the corpus for NegLabel's selection and TANL's corpus layout: own (this "
                            "model), official (OpenAI ViT-B-16 in float16, as the official code whatever the "
                            "backbone) or another open_clip MODEL:WEIGHTS")
    group.add_argument("--quick-gelu", default=None, action=argparse.BooleanOptionalAction,
                       help="force QuickGELU on/off (default: what the weights were trained with)")
    group.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ...")
    group.add_argument("--cache-dir", default=None,
                       help="text-bank and feature cache (default: $OPENOOD_TANL_CACHE or ~/.cache/openood_tanl)")
    group.add_argument("--data-root", default=None, help="folder holding the benchmark's images and lists")
    group.add_argument("--workers", type=_count, default=default_workers(),
                       help="image-decoding workers for encoding (default: this machine's CPUs, at most 4)")
    group.add_argument("--verify", action="store_true",
                       help="hash every image's bytes and re-encode the cached features of changed images even "
                            "where size and modification time were kept (always done for those that changed)")


def _protocol_arguments(parser: argparse.ArgumentParser, default_out: str) -> None:
    group = parser.add_argument_group("protocol")
    group.add_argument("--protocol", default="mixed", choices=PROTOCOLS,
                       help="mixed: reset per OOD set, ID and OOD shuffled together (the paper's)")
    group.add_argument("--seeds", type=_seed, nargs="+", default=[0], help="stream orders to average (e.g. 0 1 2)")
    group.add_argument("--batch-size", type=_positive_int, default=256, help="test batch size")
    group.add_argument("--order", nargs="+", default=None,
                       help="temporal protocol: every OOD set once, in arrival order")
    group.add_argument("--id-ood-ratio", type=_positive_real, default=None,
                       help="ID samples per OOD sample in each stream (reset protocols): the larger side is "
                            "subsampled, seeded (default: both sets whole)")
    group.add_argument("--stream-workers", type=_positive_int, default=1,
                       help="processes for independent streams (each seed x OOD set; each seed of temporal); same "
                            "results as 1")
    _output_arguments(group, default_out)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openood-tanl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    _common_arguments(parser)
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = subparsers.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
        _common_arguments(sub)
        return sub

    demo = command("demo", "the main job on an embedded synthetic benchmark (no download)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the synthetic data and of the stream order")
    _output_arguments(demo, "tanl-demo")
    demo.set_defaults(run=commands.cmd_demo)

    extract = command("extract", "encode a benchmark's images into the feature cache")
    extract.add_argument("--benchmark", required=True, help=BENCHMARK_HELP)
    _model_arguments(extract)
    extract.add_argument("--batch-size", type=_positive_int, default=256, help="images per forward pass")
    extract.set_defaults(run=commands.cmd_extract)

    methods = " | ".join(list_methods())
    evaluation = command("eval", "one method on a benchmark under a protocol")
    evaluation.add_argument("--method", required=True, help=f"{methods} | a postprocessor YAML")
    evaluation.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                            help="override hyperparameters, e.g. gap=0.5 alpha=0")
    evaluation.add_argument("--benchmark", required=True, help=BENCHMARK_HELP)
    _model_arguments(evaluation)
    _protocol_arguments(evaluation, "openood-tanl-results")
    tracing = evaluation.add_argument_group("stream trace")
    tracing.add_argument("--trace", type=Path, default=None, metavar="DIR",
                         help="write the stream batch by batch to DIR: trace.csv (adaptive threshold, memory fill, "
                              "overlap of the selected negatives with the last batch's, windowed AUROC and FPR@95) "
                              "and a PNG per stream")
    tracing.add_argument("--trace-window", type=_whole_number(2), default=DEFAULT_TRACE_WINDOW, metavar="W",
                         help="samples in the trace's windowed metrics")
    evaluation.set_defaults(run=commands.cmd_eval)

    board = command("leaderboard", "methods x benchmarks x seeds -> CSV + markdown")
    board.add_argument("--methods", nargs="+", default=["mcm", "neglabel", "adaneg", "oodd", "tanl"],
                       help=f"{methods} | postprocessor YAMLs")
    board.add_argument("--benchmarks", nargs="+", required=True,
                       help=f"benchmark names ({' | '.join(KNOWN_BENCHMARKS)}) or spec files")
    _model_arguments(board)
    _protocol_arguments(board, "openood-tanl-results")
    board.set_defaults(run=commands.cmd_leaderboard)

    sweeping = command("sweep", "methods over values of one argument -> CSV + PNG")
    sweeping.add_argument("--methods", nargs="+", default=["tanl", "neglabel"], help=f"{methods} | postprocessor YAMLs")
    sweeping.add_argument("--argument", default="num_negatives",
                          help="a hyperparameter of every method (one lockstep replay for all values), a stream "
                               "argument (one replay per value): "
                               + "; ".join(f"{name}: {text}" for name, text in STREAM_ARGUMENTS.items())
                               + f"; or {BACKBONE_AXIS}: MODEL:WEIGHTS values (a text bank and feature cache each, "
                               "e.g. ViT-B-16:openai ViT-B-16:laion2b_s34b_b88k)")
    sweeping.add_argument("--values", nargs="+", default=[str(v) for v in DEFAULT_SWEEP_VALUES],
                          help="values of --argument (numbers or words)")
    sweeping.add_argument("--benchmark", required=True, help=BENCHMARK_HELP)
    _model_arguments(sweeping)
    _protocol_arguments(sweeping, "openood-tanl-results")
    sweeping.set_defaults(run=commands.cmd_sweep)

    reproducing = command("reproduce", "the paper's setting; paper's numbers vs ours per dataset")
    reproducing.add_argument("--benchmark", required=True, choices=REPRODUCIBLE_BENCHMARKS,
                             help="four-ood (ImageNet val vs iNaturalist, SUN, Places, Textures folders) or imagenet "
                                  "(OpenOOD v1.5; needs OpenOOD and its data)")
    reproducing.add_argument("--methods", nargs="+", default=list(PAPER_SETTING["methods"]),
                             help="methods to run (tanl is the paper's preset)")
    _model_arguments(reproducing)
    _protocol_arguments(reproducing, "openood-tanl-reproduce")
    reproducing.set_defaults(run=commands.cmd_reproduce, seeds=list(PAPER_SETTING["seeds"]))
    return parser
