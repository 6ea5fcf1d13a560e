"""``openood-tanl``: evaluate TANL and the baselines the way the paper does, from cached CLIP features.

Commands (``openood-tanl <command> --help`` for each):
  demo         the main job on an embedded synthetic benchmark (no download): leaderboard + label-count sweep
  extract      encode a benchmark's images once into the feature cache
  eval         one method on a benchmark under a test-time protocol; prints the table, writes CSV
  leaderboard  several methods x benchmarks x seeds -> leaderboard.csv and leaderboard.md (best in bold)
  sweep        methods over values of one argument (label counts by default) -> sweep.csv and sweep.png
  reproduce    the paper's setting on four-ood or imagenet; paper's numbers vs ours, per dataset

Every result file comes with ``<stem>.run.json`` (what produced it: versions, methods and hyperparameters, backbone,
weights, class names, corpus and its SHA-256, prompts, protocol, seeds, batch size, FPR@95 conventions) and every
CSV with a ``config_id`` column naming that configuration.

Real benchmarks: OpenOOD v1.5 names (imagenet, imagenet200, cifar10, cifar100; needs OpenOOD and its data under
--data-root), four-ood (image folders under --data-root), or a YAML spec of image lists/folders. Images are
encoded once per model and replayed from the cache for every OOD set, seed, protocol, method and sweep value.
"""
from __future__ import annotations

import argparse
import functools
import sys
from pathlib import Path
from typing import Any

import pandas as pd
import torch
import yaml

from .corpus import CORPUS_RULES
from .evaluation.leaderboard import (compare_methods, leaderboard_table, markdown_table, plot_sweep, sweep)
from .evaluation.protocols import PROTOCOLS, FeatureBenchmark, FeatureSet, evaluate
from .evaluation.reproduce import (EXPECTED_SPREAD, PAPER_SETTING, REPRODUCIBLE_BENCHMARKS, compare_with_paper,
                                   setting_differences)
from .postprocessors.config import load_yaml
from .protocol import TextBank
from .provenance import FPR_CONVENTIONS, run_record, write_run_record
from .registry import POSTPROCESSORS
from .synthetic import make_bank, make_stream

SYNTHETIC_NOTICE = ("THE DATA ARE SYNTHETIC (CLIP-like embeddings generated from a seed): the numbers show the "
                    "pipeline working, not results on any real benchmark.")
DEFAULT_SWEEP_VALUES = (100, 300, 1000, 3000, 10000)


# ---------------------------------------------------------------------------------------------- methods
def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["gap=0.5", "alpha=0"]`` -> ``{"gap": 0.5, "alpha": 0}`` (values parsed as YAML scalars)."""
    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise SystemExit(f"--set expects key=value, got '{pair}' (e.g. --set gap=0.5)")
        overrides[key.strip()] = yaml.safe_load(value)
    return overrides


def build_postprocessor(method: str, overrides: dict[str, Any] | None = None):
    """A postprocessor from a registry name (``tanl``, ``mcm``, ``neglabel``, ``adaneg``) or a YAML path."""
    overrides = overrides or {}
    if method.endswith((".yml", ".yaml")):
        config = load_yaml(method)
        name = (config.get("postprocessor") or {}).get("name")
        if name not in POSTPROCESSORS:
            raise SystemExit(f"{method}: postprocessor.name must be one of {', '.join(POSTPROCESSORS)}, got {name!r}")
        return POSTPROCESSORS[name](config, **overrides)
    if method not in POSTPROCESSORS:
        raise SystemExit(f"unknown method '{method}'; choose one of {', '.join(POSTPROCESSORS)} or a YAML path")
    return POSTPROCESSORS[method](None, **overrides)


def method_label(method: str) -> str:
    """How tables name a method: its registry name, or a YAML's file name without extension."""
    return Path(method).stem if method.endswith((".yml", ".yaml")) else method


# ---------------------------------------------------------------------------------------------- data
def _id_classes(args) -> Any:
    if args.id_classes:
        return args.id_classes
    name = Path(args.benchmark).name
    builtin = {"imagenet", "imagenet200", "cifar10", "cifar100"}
    if name in builtin:
        return name
    if name in ("four-ood", "imagenet-four-ood"):
        return "imagenet"
    raise SystemExit(f"pass --id-classes for benchmark '{args.benchmark}' (a built-in set name or a text file "
                     "with one class name a line, in label order)")


def load_features(args) -> tuple[TextBank, FeatureBenchmark]:
    """Network (text bank from its cache), benchmark images, features (encoded once, then from the cache)."""
    from .evaluation import distributed
    from .evaluation.benchmarks import load_benchmark
    from .evaluation.features import extract_benchmark
    from .networks import create_network
    from .textbank import default_cache_dir

    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    with distributed.main_process_first():  # under torchrun: rank 0 fills the text-bank cache, the others read it
        net, preprocess = create_network(args.model, args.pretrained, _id_classes(args), args.corpus,
                                         distributed.device_for(args.device), cache_dir,
                                         corpus_rules=args.corpus_rules, templates=args.templates,
                                         precision=args.precision, quick_gelu=args.quick_gelu,
                                         model_config=args.model_config)
    images = load_benchmark(args.benchmark, args.data_root)
    features = extract_benchmark(net, preprocess, images, cache_dir, net.model_key, batch_size=args.batch_size,
                                 num_workers=args.workers)
    return TextBank.of(net), features


def synthetic_benchmark(seed: int = 0, num_classes: int = 100, corpus_size: int = 20000, dim: int = 256,
                        num_id: int = 5000, num_ood: int = 1000) -> tuple[TextBank, FeatureBenchmark]:
    """The demo's benchmark: ID images near their class text, near-OOD mixed with ID texts, far-OOD not."""
    bank = make_bank(num_classes, corpus_size, dim, seed=seed)
    id_features, _, id_labels = make_stream(bank, num_id, 0, signal=0.4, seed=seed + 1, shuffle=False)
    minus_one = torch.full((num_ood,), -1)
    near = make_stream(bank, 0, num_ood, signal=0.4, id_mix=0.8, seed=seed + 2)[0]
    far = make_stream(bank, 0, num_ood, signal=0.4, seed=seed + 3)[0]
    benchmark = FeatureBenchmark("synthetic", FeatureSet("synthetic-id", id_features, id_labels), {
        "near": [FeatureSet("synthetic-near", near, minus_one)],
        "far": [FeatureSet("synthetic-far", far, minus_one)]})
    provenance = {"synthetic": {"seed": seed, "classes": num_classes, "corpus_words": corpus_size, "dim": dim,
                                "id_images": num_id, "ood_images_per_set": num_ood}}
    return TextBank(bank.id_text, bank.corpus_text, bank.noise_features, 100.0, provenance=provenance), benchmark


# ---------------------------------------------------------------------------------------------- output
def _show(table: pd.DataFrame) -> None:
    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.2f}".format):
        print(table)


def _write(table: pd.DataFrame, path: Path, record: dict, **kwargs) -> Path:
    """A CSV with a ``config_id`` column naming the run record it belongs to."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table.assign(config_id=record["config_id"]).to_csv(path, float_format="%.4f", **kwargs)
    print(f"wrote {path}")
    return path


def _write_markdown(text: str, path: Path, record: dict) -> Path:
    path.write_text(text + f"\n{provenance_line(record)}\n")
    print(f"wrote {path}")
    return path


def _write_record(out: Path, stem: str, record: dict, files: list[Path]) -> None:
    path = write_run_record(out / f"{stem}.run.json", record, files)
    print(f"wrote {path}: what produced {', '.join(f.name for f in files)} (config {record['config_id']})")


def provenance_line(record: dict) -> str:
    """One line naming a run's configuration, for markdown tables."""
    banks = []
    for name, entry in record["benchmarks"].items():
        bank = entry["text_bank"]
        if "synthetic" in bank:
            banks.append(f"{name}: synthetic embeddings (seed {bank['synthetic']['seed']})")
        elif bank.get("corpus"):
            corpus = bank["corpus"]
            weights = bank.get("pretrained", {})
            banks.append(f"{name}: {bank.get('backbone')} ({weights.get('tag') or weights.get('file')}, "
                         f"{bank.get('precision')}), classes {bank['class_names']['set']}, corpus "
                         f"{corpus['source']} ({corpus['rules']} rules, {corpus['words']} words, sha256 "
                         f"{corpus['sha256'][:12]})")
        else:
            banks.append(f"{name}: {bank}")
    protocol = record["protocol"]
    return (f"config {record['config_id']}: {'; '.join(banks)}; {protocol['name']} protocol, seeds "
            f"{' '.join(map(str, protocol['seeds']))}, batch {protocol['batch_size']}. FPR@95 is OpenOOD's (OOD "
            "positive), FPR@95(ID+) the CLIP-OOD papers' (ID positive). Details in the .run.json beside this file.")


def _conventions() -> None:
    print("FPR@95: OpenOOD's convention (OOD positive); FPR@95(ID+): the CLIP-OOD papers' (ID positive).")


# ---------------------------------------------------------------------------------------------- commands
def run_methods(methods: list[str], data: list[tuple[TextBank, FeatureBenchmark]], *, protocol: str,
                seeds: list[int], batch_size: int, workers: int = 1) -> tuple[pd.DataFrame, dict]:
    """Every method on every benchmark: ``compare_methods``' long table and the run record."""
    postprocessors = {method_label(m): build_postprocessor(m) for m in methods}
    if len(postprocessors) != len(methods):
        raise SystemExit(f"--methods names a method twice ({' '.join(methods)}); a YAML counts by its file name")
    results = pd.concat([compare_methods(postprocessors, bank, benchmark, protocol=protocol, seeds=seeds,
                                         batch_size=batch_size, workers=workers)
                         for bank, benchmark in data], ignore_index=True)
    record = run_record(methods=postprocessors, text_banks={benchmark.name: bank for bank, benchmark in data},
                        protocol=protocol, seeds=seeds, batch_size=batch_size)
    return results, record


def run_leaderboard(methods: list[str], data: list[tuple[TextBank, FeatureBenchmark]], out: Path, *,
                    protocol: str, seeds: list[int], batch_size: int, workers: int = 1) -> pd.DataFrame:
    results, record = run_methods(methods, data, protocol=protocol, seeds=seeds, batch_size=batch_size,
                                  workers=workers)
    board = leaderboard_table(results)
    _show(board)
    files = [_write(results, out / "results.csv", record, index=False), _write(board, out / "leaderboard.csv", record),
             _write_markdown(markdown_table(board), out / "leaderboard.md", record)]
    _write_record(out, "leaderboard", record, files)
    return board


def run_sweep(methods: list[str], argument: str, values: list[Any], bank, benchmark, out: Path, *, protocol: str,
              seeds: list[int], batch_size: int, workers: int = 1) -> dict[str, pd.DataFrame]:
    curves = {}
    for method in methods:
        curves[method] = sweep(lambda **kw: build_postprocessor(method, kw), argument, values, bank, benchmark,
                               protocol=protocol, seeds=seeds, batch_size=batch_size, workers=workers)
    curves = {method_label(m): curve for m, curve in curves.items()}
    table = pd.concat([c.assign(method=m) for m, c in curves.items()], ignore_index=True)
    _show(table.set_index(["method", argument]))
    record = run_record(methods={method_label(m): build_postprocessor(m) for m in methods},
                        text_banks={benchmark.name: bank},
                        protocol=protocol, seeds=seeds, batch_size=batch_size,
                        sweep={"argument": argument, "values": list(values)})
    files = [_write(table, out / "sweep.csv", record, index=False),
             plot_sweep(curves, argument, out / "sweep.png", title=f"{benchmark.name}: {protocol} protocol")]
    print(f"wrote {files[-1]}")
    _write_record(out, "sweep", record, files)
    return curves


def cmd_demo(args) -> None:
    print(f"openood-tanl demo: {SYNTHETIC_NOTICE}")
    bank, benchmark = synthetic_benchmark(seed=args.seed)
    print(f"benchmark: {len(benchmark.id_set)} ID embeddings (100 classes, D=256), near- and far-OOD sets of "
          f"{len(benchmark.ood_groups['near'][0])}, corpus of 20,000 words; mixed protocol, seed {args.seed}")
    run_leaderboard(["mcm", "neglabel", "adaneg", "tanl"], [(bank, benchmark)], args.out, protocol="mixed",
                    seeds=[args.seed], batch_size=256)
    _conventions()
    run_sweep(["tanl", "neglabel"], "num_negatives", list(DEFAULT_SWEEP_VALUES), bank, benchmark, args.out,
              protocol="mixed", seeds=[args.seed], batch_size=256)
    print(f"openood-tanl demo: done. {SYNTHETIC_NOTICE}")


def cmd_extract(args) -> None:
    from .evaluation import distributed

    distributed.init_from_env()  # under torchrun (WORLD_SIZE > 1): each rank encodes its share of the shards
    _, benchmark = load_features(args)
    if not distributed.is_main_process():
        return
    sets = [benchmark.id_set] + [s for _, s in benchmark.ood_sets()]
    for feature_set in sets:
        print(f"{feature_set.name}: {len(feature_set)} images -> features {tuple(feature_set.features.shape)}")


def cmd_eval(args) -> None:
    bank, benchmark = load_features(args)
    postprocessor = build_postprocessor(args.method, parse_overrides(args.set))
    summary, per_seed = evaluate(functools.partial(postprocessor.engine_for, bank), benchmark, args.protocol,
                                 seeds=args.seeds, batch_size=args.batch_size, order=args.order,
                                 workers=args.stream_workers)
    _show(summary)
    _conventions()
    record = run_record(methods={method_label(args.method): postprocessor}, text_banks={benchmark.name: bank},
                        protocol=args.protocol, seeds=args.seeds, batch_size=args.batch_size, order=args.order)
    stem = f"{method_label(args.method)}-{Path(args.benchmark).stem}-{args.protocol}"
    files = [_write(summary, args.out / f"{stem}.csv", record),
             _write(per_seed, args.out / f"{stem}-per-seed.csv", record, index=False)]
    _write_record(args.out, stem, record, files)


def cmd_leaderboard(args) -> None:
    data = []
    for benchmark in args.benchmarks:
        args.benchmark = benchmark
        data.append(load_features(args))
    run_leaderboard(args.methods, data, args.out, protocol=args.protocol, seeds=args.seeds,
                    batch_size=args.batch_size, workers=args.stream_workers)
    _conventions()


def cmd_reproduce(args) -> None:
    bank, benchmark = load_features(args)
    print(f"openood-tanl reproduce: {', '.join(args.methods)} on {benchmark.name}, {args.protocol} protocol, seeds "
          f"{' '.join(map(str, args.seeds))}, batch {args.batch_size} (tanl = the paper's preset, tanl.yml)")
    results, record = run_methods(args.methods, [(bank, benchmark)], protocol=args.protocol, seeds=args.seeds,
                                  batch_size=args.batch_size, workers=args.stream_workers)
    paper = "four-ood" if benchmark.name in ("four-ood", "imagenet-four-ood") else benchmark.name
    table = compare_with_paper(results, paper)
    setting = {"model": args.model, "pretrained": args.pretrained, "precision": args.precision,
               "templates": args.templates, "protocol": args.protocol, "seeds": args.seeds,
               "batch_size": args.batch_size}
    differences = setting_differences(setting, bank.provenance.get("corpus"))
    record = {**record, "reproduce": {"paper_benchmark": paper, "differences_from_paper": differences}}
    _show(table.set_index(["method", "dataset"]))
    print("Each FPR@95 is compared in the convention its paper printed it in (column 'convention'): "
          + "; ".join(f"{name}: {text}" for name, text in FPR_CONVENTIONS.items()) + ".")
    print(f"Differences are ours - paper; {EXPECTED_SPREAD}.")
    if differences:
        print("This run differs from the paper's setting: " + "; ".join(differences) + ".")
    files = [_write(table, args.out / "reproduce.csv", record, index=False),
             _write(results, args.out / "reproduce-results.csv", record, index=False),
             _write_markdown(markdown_table(table.set_index(["method", "dataset"]), bold=False)
                             + ("\nDiffers from the paper's setting: " + "; ".join(differences) + ".\n"
                                if differences else ""), args.out / "reproduce.md", record)]
    _write_record(args.out, "reproduce", record, files)


def cmd_sweep(args) -> None:
    bank, benchmark = load_features(args)
    values = [yaml.safe_load(v) for v in args.values]
    run_sweep(args.methods, args.argument, values, bank, benchmark, args.out, protocol=args.protocol,
              seeds=args.seeds, batch_size=args.batch_size, workers=args.stream_workers)


# ---------------------------------------------------------------------------------------------- parser
def _model_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("model and text bank")
    group.add_argument("--model", default="ViT-B-16", help="open_clip model name (default: %(default)s)")
    group.add_argument("--pretrained", default="openai",
                       help="open_clip pretrained tag or local checkpoint path (default: %(default)s)")
    group.add_argument("--model-config", default=None, help="open_clip model-config JSON for a custom architecture")
    group.add_argument("--id-classes", default=None,
                       help="imagenet | imagenet-disambiguated | imagenet200 | cifar10 | cifar100 | class-name file "
                            "(default: from --benchmark)")
    group.add_argument("--corpus", default="wordnet",
                       help="wordnet | wordnet-all-lemmas | a folder of adj*.txt/noun*.txt word lists (NegLabel's "
                            "txtfiles/ gives the official corpus) | a word-list file (default: %(default)s)")
    group.add_argument("--corpus-rules", default="official", choices=CORPUS_RULES,
                       help="official: exact de-duplication and the official file reading; clean: case-insensitive, "
                            "stripped lines (default: %(default)s)")
    group.add_argument("--templates", default="official", choices=("official", "openai-ensemble"))
    group.add_argument("--precision", default="fp32", choices=("fp32", "fp16"), help="fp16 needs CUDA")
    group.add_argument("--quick-gelu", default=None, action=argparse.BooleanOptionalAction,
                       help="force QuickGELU on/off (default: what the weights were trained with)")
    group.add_argument("--device", default="auto", help="auto (CUDA when present, else CPU), cpu, cuda, cuda:1 ...")
    group.add_argument("--cache-dir", default=None,
                       help="text-bank and feature cache (default: $OPENOOD_TANL_CACHE or ~/.cache/openood_tanl)")
    group.add_argument("--data-root", default=None, help="folder holding the benchmark's images and lists")
    group.add_argument("--workers", type=int, default=4, help="data-loader workers for encoding (default: %(default)s)")


def _protocol_arguments(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("protocol")
    group.add_argument("--protocol", default="mixed", choices=PROTOCOLS,
                       help="mixed: reset per OOD set, ID and OOD shuffled together (the paper's; default)")
    group.add_argument("--seeds", type=int, nargs="+", default=[0], help="stream orders to average (e.g. 0 1 2)")
    group.add_argument("--batch-size", type=int, default=256, help="test batch size (default: %(default)s)")
    group.add_argument("--order", nargs="+", default=None, help="temporal protocol: OOD set order")
    group.add_argument("--stream-workers", type=int, default=1,
                       help="processes for independent streams (each seed x OOD set; each seed of temporal); "
                            "same results as 1 (default: %(default)s)")
    group.add_argument("--out", type=Path, default=Path("openood-tanl-results"), help="output folder")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="openood-tanl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    demo = commands.add_parser("demo", help="the main job on an embedded synthetic benchmark (no download)")
    demo.add_argument("--out", type=Path, default=Path("tanl-demo"), help="output folder (default: %(default)s)")
    demo.add_argument("--seed", type=int, default=0)
    demo.set_defaults(run=cmd_demo)

    extract = commands.add_parser("extract", help="encode a benchmark's images into the feature cache")
    extract.add_argument("--benchmark", required=True, help="imagenet | imagenet200 | cifar10 | cifar100 | four-ood | spec.yml")
    _model_arguments(extract)
    extract.add_argument("--batch-size", type=int, default=256)
    extract.set_defaults(run=cmd_extract)

    evaluation = commands.add_parser("eval", help="one method on a benchmark under a protocol")
    evaluation.add_argument("--method", required=True, help=f"{' | '.join(POSTPROCESSORS)} | a postprocessor YAML")
    evaluation.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE", help="override arguments, e.g. gap=0.5")
    evaluation.add_argument("--benchmark", required=True)
    _model_arguments(evaluation)
    _protocol_arguments(evaluation)
    evaluation.set_defaults(run=cmd_eval)

    board = commands.add_parser("leaderboard", help="methods x benchmarks x seeds -> CSV + markdown")
    board.add_argument("--methods", nargs="+", default=["mcm", "neglabel", "adaneg", "tanl"])
    board.add_argument("--benchmarks", nargs="+", required=True)
    _model_arguments(board)
    _protocol_arguments(board)
    board.set_defaults(run=cmd_leaderboard)

    sweeping = commands.add_parser("sweep", help="methods over values of one argument -> CSV + PNG")
    sweeping.add_argument("--methods", nargs="+", default=["tanl", "neglabel"])
    sweeping.add_argument("--argument", default="num_negatives", help="argument to sweep (default: %(default)s)")
    sweeping.add_argument("--values", nargs="+", default=[str(v) for v in DEFAULT_SWEEP_VALUES])
    sweeping.add_argument("--benchmark", required=True)
    _model_arguments(sweeping)
    _protocol_arguments(sweeping)
    sweeping.set_defaults(run=cmd_sweep)

    reproducing = commands.add_parser("reproduce", help="the paper's setting; paper's numbers vs ours per dataset")
    reproducing.add_argument("--benchmark", required=True, choices=REPRODUCIBLE_BENCHMARKS,
                             help="four-ood (ImageNet val vs iNaturalist, SUN, Places, Textures folders) or imagenet "
                                  "(OpenOOD v1.5; needs OpenOOD and its data)")
    reproducing.add_argument("--methods", nargs="+", default=list(PAPER_SETTING["methods"]),
                             help="methods to run (default: %(default)s; tanl is the paper's preset)")
    _model_arguments(reproducing)
    _protocol_arguments(reproducing)
    reproducing.set_defaults(run=cmd_reproduce, seeds=list(PAPER_SETTING["seeds"]),
                             out=Path("openood-tanl-reproduce"))
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    torch.set_grad_enabled(False)
    args.run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
