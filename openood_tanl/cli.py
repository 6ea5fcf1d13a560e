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
weights, class names, corpus and its SHA-256, prompts, protocol, seeds, batch size, FPR@95 conventions) and every
CSV with a ``config_id`` column naming that configuration. Results of another configuration are never overwritten
without ``--overwrite``.

Real benchmarks: OpenOOD v1.5 names (imagenet, imagenet200, cifar10, cifar100; needs OpenOOD and its data under
--data-root), four-ood (image folders under --data-root), or a YAML spec of image lists/folders. Images are
encoded once per model and replayed from the cache for every OOD set, seed, protocol, method and sweep value; the
methods of a leaderboard and the points of a sweep step in lockstep on one replay (one logits matrix and softmax
per batch; each method's results bitwise those of a run on its own).

Everything is checked before any model is loaded (arguments, methods and hyperparameters, output folder, images,
class names against the ID labels, corpus); a mistake ends with one line on stderr and exit code 2 (``--debug``
or ``OPENOOD_TANL_DEBUG=1`` shows the traceback).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from .corpus import CORPUS_RULES
from .evaluation.protocols import PROTOCOLS, STREAM_ARGUMENTS
from .evaluation.reproduce import EXPECTED_SPREAD, PAPER_SETTING, REPRODUCIBLE_BENCHMARKS
from .methods import configure, list_methods

SYNTHETIC_NOTICE = ("THE DATA ARE SYNTHETIC (CLIP-like embeddings generated from a seed): the numbers show the "
                    "pipeline working, not results on any real benchmark.")
DEFAULT_SWEEP_VALUES = (100, 300, 1000, 3000, 10000)
DEFAULT_TRACE_WINDOW = 1000


class UsageError(ValueError):
    """A mistake in the command line or its files: reported in one line, exit code 2."""


def default_workers() -> int:
    """Image-decoding workers: the CPUs this process may use, at most 4."""
    try:
        cpus = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cpus = os.cpu_count() or 1
    return max(0, min(4, cpus))


# ---------------------------------------------------------------------------------------------- methods
def parse_overrides(pairs: list[str]) -> dict[str, Any]:
    """``["gap=0.5", "alpha=0"]`` -> ``{"gap": 0.5, "alpha": 0}`` (values parsed as YAML scalars)."""
    import yaml

    overrides = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise UsageError(f"--set expects key=value, got '{pair}' (e.g. --set gap=0.5)")
        if key.strip() in overrides:
            raise UsageError(f"--set gives '{key.strip()}' twice ({pair} and {key.strip()}="
                             f"{overrides[key.strip()]}); give it once")
        try:
            overrides[key.strip()] = yaml.safe_load(value)
        except yaml.YAMLError as error:
            raise UsageError(f"--set {pair}: the value of '{key.strip()}' is not a number or word ({error})") from None
    return overrides


def method_label(method: str) -> str:
    """How tables name a method: its registry name, or a YAML's file name without extension."""
    return Path(method).stem if method.endswith((".yml", ".yaml")) else method


def _methods(methods: list[str]) -> dict[str, Any]:
    """--methods -> {table label: MethodConfig} (every name and hyperparameter checked)."""
    labels = [method_label(m) for m in methods]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UsageError(f"--methods names {repeated} more than once (a YAML counts by its file name); name each "
                         "method once")
    return {label: configure(method) for label, method in zip(labels, methods)}


# ---------------------------------------------------------------------------------------------- data
def _id_classes(args, benchmark: str) -> Any:
    if args.id_classes:
        return args.id_classes
    name = Path(benchmark).name
    if name in ("imagenet", "imagenet200", "cifar10", "cifar100"):
        return name
    if name in ("four-ood", "imagenet-four-ood"):
        return "imagenet"
    raise UsageError(f"pass --id-classes for benchmark '{benchmark}' (a built-in set name or a text file with one "
                     "class name a line, in label order)")


@dataclass
class Job:
    """One benchmark, checked and described before any model is loaded."""

    images: Any  # ImageBenchmark, its ID labels matched to the class names
    id_classes: Any  # the class-name spec
    plan: Any  # TextBankPlan: class names, corpus, provenance of the text bank and the image transform
    benchmark: str  # as named on the command line (decides the image transform)
    stream_sizes: Any = None  # {OOD set: {"id": n, "ood": m}} for runs that stream

    @property
    def name(self) -> str:
        return self.images.name


def _check_cache_dir(args) -> None:
    """The cache folder (--cache-dir, else the default) is a folder this run can create and write, or a
    UsageError naming it and the fix, before any model loads."""
    from .embedding_cache import default_cache_dir

    folder = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    flag = "--cache-dir" if args.cache_dir else "the cache folder ($OPENOOD_TANL_CACHE or ~/.cache/openood_tanl)"
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {folder} is a file; point --cache-dir at a folder")
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {folder} is not writable ({existing} is not); point --cache-dir at a folder you "
                         "can write")


def plan_benchmark(args, benchmark: str) -> Job:
    """Device, cache folder, images (every file listed, present and opening), class names against the ID labels,
    protocol and stream sizes, text bank: all checked, nothing encoded."""
    from .classnames import class_names
    from .evaluation.datasets import check_images_open, load_benchmark, match_id_classes
    from .evaluation.protocols import check_settings
    from .networks import plan_text_bank

    _device(args)  # a device this machine lacks is named before anything else
    _check_cache_dir(args)
    images = load_benchmark(benchmark, args.data_root)
    spec = _id_classes(args, benchmark)
    images, mapping = match_id_classes(images, class_names(spec))
    print(mapping)
    check_settings(stream_settings(args), [s.name for _, s in images.ood_sets()], getattr(args, "seeds", None))
    sizes = None
    if hasattr(args, "protocol"):  # a run that streams (not extract): its streams' sizes, thin ones warned about
        from .evaluation.streams import stream_sizes

        sizes = stream_sizes(len(images.id_set), {s.name: len(s) for _, s in images.ood_sets()},
                             stream_settings(args))
    check_images_open(images)
    plan = plan_text_bank(args.model, args.pretrained, spec, args.corpus, corpus_rules=args.corpus_rules,
                          templates=args.templates, transform=args.transform, benchmark=benchmark,
                          precision=args.precision, quick_gelu=args.quick_gelu,
                          model_config=args.model_config)
    return Job(images, spec, plan, benchmark, sizes)


def stream_settings(args, trace_window: int | None = None):
    """The command line's protocol options as ``StreamSettings``."""
    from .evaluation.protocols import StreamSettings

    order = getattr(args, "order", None)
    return StreamSettings(getattr(args, "protocol", "mixed"), getattr(args, "batch_size", 256),
                          tuple(order) if order else None, getattr(args, "id_ood_ratio", None), trace_window)


def _device(args):
    import torch

    from .evaluation import distributed

    try:
        device = torch.device(distributed.device_for(args.device))
    except RuntimeError as error:
        raise UsageError(f"--device {args.device}: {error}") from None
    if device.type == "cuda" and (not torch.cuda.is_available() or (device.index or 0) >= torch.cuda.device_count()):
        found = torch.cuda.device_count() if torch.cuda.is_available() else 0
        raise UsageError(f"--device {args.device}: this machine has {found} CUDA device(s) that torch can use; pass "
                         "--device cpu (or auto)")
    if args.precision == "fp16" and device.type != "cuda":
        raise UsageError(f"--precision fp16 needs a CUDA device; this run uses {device} (use fp32, or official-fp16 "
                         "for the authors' numerics)")
    return device


def load_features(args, job: Job, methods=()) -> tuple[Any, Any]:
    """The network (text bank from its cache), each method's engine (built once against the text bank, before any
    image is encoded, for the bounds that need it), then the benchmark's features (encoded once, then cached)."""
    from .bank import TextBank
    from .embedding_cache import default_cache_dir
    from .evaluation import distributed
    from .evaluation.extraction import extract_benchmark
    from .networks import create_network

    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    with distributed.main_process_first():  # under torchrun: rank 0 fills the text-bank cache, the others read it
        net, preprocess = create_network(args.model, args.pretrained, job.id_classes, args.corpus, _device(args),
                                         cache_dir, corpus_rules=args.corpus_rules, templates=args.templates,
                                         transform=args.transform, benchmark=job.benchmark, precision=args.precision,
                                         quick_gelu=args.quick_gelu,
                                         model_config=args.model_config)
    bank = TextBank.of(net)
    for method in methods:
        method.engine(bank)  # bounds that need the text bank (e.g. num_negatives <= corpus size)
    features = extract_benchmark(net, preprocess, job.images, cache_dir, net.model_key, batch_size=args.batch_size,
                                 num_workers=args.workers, verify=args.verify)
    return bank, features


# ---------------------------------------------------------------------------------------------- output
#: The output folders this command created and the locks it holds on them (released when it ends; a folder it
#: created is removed again when the command fails and leaves it empty).
_OUTPUTS: dict[str, list] = {"created": [], "locks": []}
OUTPUT_LOCK = ".openood-tanl.lock"


def check_out(out: Path, flag: str = "--out") -> Path:
    """The output folder, created, writable and claimed for this run (one run writes into a folder at a time), or
    a UsageError naming ``flag``."""
    from .evaluation.feature_cache import FileLock

    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file; give a folder for the results")
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {flag} {out} ({error.strerror}); choose another") from None
    if not existed:
        _OUTPUTS["created"].append(out)
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"the output folder {flag} {out} is not writable; choose another")
    lock = FileLock(out / OUTPUT_LOCK)
    if not lock.acquire(blocking=False):
        raise UsageError(f"another openood-tanl run is writing into {flag} {out}; wait for it to finish or choose "
                         "another folder")
    _OUTPUTS["locks"].append(lock)
    return out


def _release_outputs(failed: bool) -> None:
    for lock in _OUTPUTS["locks"]:
        lock.release()
    for folder in reversed(_OUTPUTS["created"]) if failed else ():
        try:
            folder.rmdir()  # only when empty: nothing of this run is lost
        except OSError:
            pass
    _OUTPUTS["locks"].clear()
    _OUTPUTS["created"].clear()


def claim_outputs(out: Path, stem: str, files: list[str], record: dict, overwrite: bool) -> None:
    """Refuse to overwrite results of another configuration (another ``config_id``, or none) unless ``overwrite``."""
    sidecar = out / f"{stem}.run.json"
    present = [name for name in [*files, sidecar.name] if (out / name).exists()]
    if not present:
        return
    try:
        previous = json.loads(sidecar.read_text()).get("config_id") if sidecar.exists() else None
    except (OSError, ValueError):
        previous = None
    if overwrite or previous == record["config_id"]:  # replaced: no record vouches for them until the new one
        sidecar.unlink(missing_ok=True)
        return
    what = f"another configuration (config {previous})" if previous else "a run of unknown configuration"
    raise UsageError(f"{out} already holds {', '.join(present)} from {what}; this run is config "
                     f"{record['config_id']}. Pass --overwrite to replace them, or choose another --out")


def _show(table) -> None:
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.2f}".format):
        print(table)


def _write(table, path: Path, record: dict, **kwargs) -> Path:
    """A CSV with a ``config_id`` column naming the run record it belongs to, written atomically."""
    from .embedding_cache import write_atomic

    text = table.assign(config_id=record["config_id"]).to_csv(float_format="%.4f", **kwargs)
    write_atomic(path, text.encode("utf-8"))
    print(f"wrote {path}")
    return path


def _write_markdown(text: str, path: Path, record: dict) -> Path:
    from .embedding_cache import write_atomic

    write_atomic(path, (text + f"\n{provenance_line(record)}\n").encode("utf-8"))
    print(f"wrote {path}")
    return path


def _write_record(out: Path, stem: str, record: dict, files: list[Path]) -> None:
    from .provenance import write_run_record

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


def _record(methods: dict, jobs: list, args, **extra) -> dict:
    """The run record of ``methods`` on the benchmarks of ``jobs``: text banks, images per set, the protocol."""
    from .evaluation.datasets import image_summary
    from .provenance import run_record

    return run_record(methods=methods, text_banks={job.name: job.plan.provenance for job in jobs},
                      images={job.name: image_summary(job.images) for job in jobs},
                      streams={job.name: job.stream_sizes for job in jobs if job.stream_sizes}, protocol=args.protocol,
                      seeds=args.seeds, batch_size=args.batch_size, order=getattr(args, "order", None),
                      id_ood_ratio=getattr(args, "id_ood_ratio", None), **extra)


# ---------------------------------------------------------------------------------------------- runs
def run_methods(methods: dict, data: list, *, protocol: str, seeds: list[int], batch_size: int, order=None,
                id_ood_ratio=None, workers: int = 1):
    """Every method (label -> MethodConfig) on every (text bank, features) pair, in lockstep: ``compare_methods``'
    long table."""
    import pandas as pd

    from .evaluation.comparison import compare_methods

    return pd.concat([compare_methods(methods, bank, benchmark, protocol=protocol, seeds=seeds,
                                      batch_size=batch_size, order=order, id_ood_ratio=id_ood_ratio, workers=workers)
                      for bank, benchmark in data], ignore_index=True)


def write_leaderboard(results, out: Path, record: dict):
    from .evaluation.tables import leaderboard_table, markdown_table

    board = leaderboard_table(results)
    _show(board)
    files = [_write(results, out / "results.csv", record, index=False), _write(board, out / "leaderboard.csv", record),
             _write_markdown(markdown_table(board), out / "leaderboard.md", record)]
    _write_record(out, "leaderboard", record, files)
    return board


def run_sweep(methods: dict, argument: str, values: list[Any], bank, benchmark, out: Path, record: dict, *,
              protocol: str, seeds: list[int], batch_size: int, order=None, id_ood_ratio=None, workers: int = 1,
              stem: str = "sweep"):
    """``methods``: label -> MethodConfig; one curve per method over ``values`` of ``argument`` (a hyperparameter:
    one lockstep replay; a stream argument: one replay per value) -> ``<stem>.csv``, ``<stem>.png``."""
    import pandas as pd

    from .evaluation.comparison import plot_sweep, sweep_methods

    curves = sweep_methods(methods, argument, values, bank, benchmark, protocol=protocol, seeds=seeds,
                           batch_size=batch_size, order=order, id_ood_ratio=id_ood_ratio, workers=workers)
    table = pd.concat([c.assign(method=m) for m, c in curves.items()], ignore_index=True)
    _show(table.set_index(["method", argument]))
    title = f"{benchmark.name}: " + ("sample order (protocol)" if argument == "order" else f"{protocol} protocol")
    files = [_write(table, out / f"{stem}.csv", record, index=False),
             plot_sweep(curves, argument, out / f"{stem}.png", title=title)]
    print(f"wrote {files[-1]}")
    _write_record(out, stem, record, files)
    return curves


def write_trace(result, folder: Path, record: dict) -> list[Path]:
    """A replay's trace as ``trace.csv`` and a PNG per stream in ``folder``, with ``trace.run.json``."""
    from .evaluation.traces import write_traces

    files = write_traces(result.trace, folder)
    print(f"wrote {folder / 'trace.csv'} and {len(files) - 1} stream plot(s) in {folder}")
    _write_record(folder, "trace", record, files)
    return files


# ---------------------------------------------------------------------------------------------- commands
LEADERBOARD_FILES = ["results.csv", "leaderboard.csv", "leaderboard.md"]
SWEEP_FILES = ["sweep.csv", "sweep.png"]
DEMO_ORDER_SWEEP = ("order", ["mixed", "id-first", "ood-first"])
DEMO_TRACE_WINDOW = 500
REPRODUCE_FILES = ["reproduce.csv", "reproduce-results.csv", "reproduce.md"]


def cmd_demo(args) -> None:
    import functools

    from .evaluation.protocols import StreamSettings
    from .evaluation.replay import replay_streams
    from .methods import create_lockstep
    from .provenance import run_record
    from .synthetic import synthetic_benchmark

    out = check_out(args.out)
    print(f"openood-tanl demo: {SYNTHETIC_NOTICE}")
    bank, benchmark = synthetic_benchmark(seed=args.seed)
    methods = _methods(["mcm", "neglabel", "adaneg", "tanl"])
    settings = dict(protocol="mixed", seeds=[args.seed], batch_size=256)
    sweep_methods = _methods(["tanl", "neglabel"])
    values = list(DEFAULT_SWEEP_VALUES)
    order_argument, orders = DEMO_ORDER_SWEEP
    trace_methods = _methods(["tanl", "adaneg"])
    trace_settings = StreamSettings("temporal", 128, trace_window=DEMO_TRACE_WINDOW)
    banks = {benchmark.name: bank}
    board_record = run_record(methods=methods, text_banks=banks, **settings)
    sweep_record = run_record(methods=sweep_methods, text_banks=banks,
                              sweep={"argument": "num_negatives", "values": values}, **settings)
    order_record = run_record(methods=sweep_methods, text_banks=banks,
                              sweep={"argument": order_argument, "values": orders}, **settings)
    trace_record = run_record(methods=trace_methods, text_banks=banks, protocol="temporal", seeds=[args.seed],
                              batch_size=trace_settings.batch_size, trace={"window": DEMO_TRACE_WINDOW})
    claim_outputs(out, "leaderboard", LEADERBOARD_FILES, board_record, args.overwrite)
    claim_outputs(out, "sweep", SWEEP_FILES, sweep_record, args.overwrite)
    claim_outputs(out, "sweep-order", ["sweep-order.csv", "sweep-order.png"], order_record, args.overwrite)
    claim_outputs(out / "trace", "trace", ["trace.csv"], trace_record, args.overwrite)
    print(f"benchmark: {len(benchmark.id_set)} ID embeddings (100 classes, D=256), near- and far-OOD sets of "
          f"{len(benchmark.ood_groups['near'][0])}, corpus of 20,000 words; mixed protocol, seed {args.seed}")
    print("leaderboard: the four methods in lockstep on one replay")
    write_leaderboard(run_methods(methods, [(bank, benchmark)], **settings), out, board_record)
    _conventions()
    print(f"sweep: {', '.join(sweep_methods)} over {len(values)} label counts, every point in lockstep on one replay")
    run_sweep(sweep_methods, "num_negatives", values, bank, benchmark, out, sweep_record, **settings)
    print(f"protocol sweep: {', '.join(sweep_methods)} over the sample orders {', '.join(orders)}")
    run_sweep(sweep_methods, order_argument, orders, bank, benchmark, out, order_record, stem="sweep-order",
              **settings)
    print(f"stream trace: {', '.join(trace_methods)} on the temporal protocol (near-OOD, then far-OOD), batches of "
          f"{trace_settings.batch_size}, windowed metrics over the last {DEMO_TRACE_WINDOW} samples")
    result = replay_streams(functools.partial(create_lockstep, trace_methods, bank), benchmark, trace_settings,
                    seeds=[args.seed])
    write_trace(result, out / "trace", trace_record)
    print(f"openood-tanl demo: done. {SYNTHETIC_NOTICE}")


def cmd_extract(args) -> None:
    from .evaluation import distributed

    job = plan_benchmark(args, args.benchmark)
    distributed.init_from_env()  # under torchrun (WORLD_SIZE > 1): each rank encodes its share of the shards
    _, benchmark = load_features(args, job)
    if not distributed.is_main_process():
        return
    sets = [benchmark.id_set] + [s for _, s in benchmark.ood_sets()]
    for feature_set in sets:
        print(f"{feature_set.name}: {len(feature_set)} images -> features {tuple(feature_set.features.shape)}")


def cmd_eval(args) -> None:
    import functools

    from .evaluation.replay import replay_streams
    from .methods import create_lockstep

    out = check_out(args.out)
    overrides = parse_overrides(args.set)
    method = configure(args.method, **overrides)
    if args.trace_window != DEFAULT_TRACE_WINDOW and args.trace is None:
        raise UsageError("--trace-window sets the window of a stream trace: add --trace DIR")
    job = plan_benchmark(args, args.benchmark)
    label = method_label(args.method)
    record = _record({label: method}, [job], args)
    settings = "".join(f"-{key}{re.sub(r'[^A-Za-z0-9.+_-]', '_', str(value))}"
                       for key, value in sorted(overrides.items()))
    benchmark_name = re.sub(r"[^A-Za-z0-9.+_-]", "_", job.name)  # a spec's own name:, not its file's
    stem = f"{label}{settings}-{benchmark_name}-{args.protocol}"
    claim_outputs(out, stem, [f"{stem}.csv", f"{stem}-per-seed.csv"], record, args.overwrite)
    trace_record = None
    if args.trace is not None:
        trace_record = _record({label: method}, [job], args,
                               trace={"window": args.trace_window})
        claim_outputs(check_out(args.trace, "--trace"), "trace", ["trace.csv"], trace_record, args.overwrite)
    bank, benchmark = load_features(args, job, [method])
    result = replay_streams(functools.partial(create_lockstep, {label: method}, bank), benchmark,
                    stream_settings(args, args.trace_window if args.trace is not None else None), seeds=args.seeds,
                    workers=args.stream_workers)
    summary, per_seed = result.tables[label]
    _show(summary)
    _conventions()
    files = [_write(summary, out / f"{stem}.csv", record),
             _write(per_seed, out / f"{stem}-per-seed.csv", record, index=False)]
    _write_record(out, stem, record, files)
    if trace_record is not None:
        write_trace(result, args.trace, trace_record)


def _plan_benchmarks(args, names: list[str]) -> list[Job]:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"--benchmarks names {repeated} more than once; name each benchmark once")
    jobs = [plan_benchmark(args, name) for name in names]
    labels = [job.name for job in jobs]
    clashes = sorted({label for label in labels if labels.count(label) > 1})
    if clashes:
        raise UsageError(f"two benchmarks are both called {clashes}; give each spec its own 'name'")
    return jobs


def cmd_leaderboard(args) -> None:
    out = check_out(args.out)
    methods = _methods(args.methods)
    jobs = _plan_benchmarks(args, args.benchmarks)
    record = _record(methods, jobs, args)
    claim_outputs(out, "leaderboard", LEADERBOARD_FILES, record, args.overwrite)
    data = [load_features(args, job, methods.values()) for job in jobs]
    write_leaderboard(run_methods(methods, data, protocol=args.protocol, seeds=args.seeds,
                                  batch_size=args.batch_size, order=args.order, id_ood_ratio=args.id_ood_ratio,
                                  workers=args.stream_workers), out, record)
    _conventions()


def sweep_values(args, methods: dict) -> list[Any]:
    """--values parsed (YAML scalars) and checked for --argument: stream values against the protocol options,
    hyperparameter values against every method."""
    import yaml

    from .evaluation.protocols import check_settings

    try:
        values = [yaml.safe_load(v) for v in args.values]
    except yaml.YAMLError as error:
        raise UsageError(f"--values: not a list of numbers or words ({error})") from None
    def same(value):  # 100 and 100.0 are one value
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    if len({json.dumps(same(v), sort_keys=True, default=str) for v in values}) != len(values):
        raise UsageError(f"--values {' '.join(args.values)} repeat a value; give each value once")
    if args.argument in STREAM_ARGUMENTS:
        base = stream_settings(args)
        for value in values:
            check_settings(base.with_value(args.argument, value))
        return values
    for method in methods.values():
        for value in values:
            method.replace(**{args.argument: value})
    return values


def cmd_sweep(args) -> None:
    out = check_out(args.out)
    methods = _methods(args.methods)
    values = sweep_values(args, methods)
    stream_sweep = args.argument in STREAM_ARGUMENTS
    points = list(methods.values()) if stream_sweep else \
        [method.replace(**{args.argument: v}) for method in methods.values() for v in values]
    job = plan_benchmark(args, args.benchmark)
    record = _record(methods, [job], args,
                     sweep={"argument": args.argument, "values": values})
    claim_outputs(out, "sweep", SWEEP_FILES, record, args.overwrite)
    bank, benchmark = load_features(args, job, points)  # every sweep point against the text bank
    run_sweep(methods, args.argument, values, bank, benchmark, out, record, protocol=args.protocol, seeds=args.seeds,
              batch_size=args.batch_size, order=args.order, id_ood_ratio=args.id_ood_ratio,
              workers=args.stream_workers)


def cmd_reproduce(args) -> None:
    from .evaluation.reproduce import compare_with_paper, setting_differences
    from .evaluation.tables import markdown_table
    from .provenance import FPR_CONVENTIONS

    out = check_out(args.out)
    methods = _methods(args.methods)
    job = plan_benchmark(args, args.benchmark)
    paper = "four-ood" if job.name in ("four-ood", "imagenet-four-ood") else job.name
    setting = {"model": args.model, "pretrained": args.pretrained, "precision": args.precision,
               "transform": job.plan.provenance["image_transform"]["name"],
               "templates": args.templates, "protocol": args.protocol, "seeds": args.seeds,
               "batch_size": args.batch_size}
    differences = setting_differences(setting, job.plan.provenance.get("corpus"))
    record = _record(methods, [job], args,
                     reproduce={"paper_benchmark": paper, "differences_from_paper": differences})
    claim_outputs(out, "reproduce", REPRODUCE_FILES, record, args.overwrite)
    print(f"openood-tanl reproduce: {', '.join(methods)} on {job.name}, {args.protocol} protocol, seeds "
          f"{' '.join(map(str, args.seeds))}, batch {args.batch_size} (tanl = the paper's preset, tanl.yml)")
    bank, benchmark = load_features(args, job, methods.values())
    results = run_methods(methods, [(bank, benchmark)], protocol=args.protocol, seeds=args.seeds,
                          batch_size=args.batch_size, order=args.order, id_ood_ratio=args.id_ood_ratio,
                          workers=args.stream_workers)
    table = compare_with_paper(results, paper)
    _show(table.set_index(["method", "dataset"]))
    print("Each FPR@95 is compared in the convention its paper printed it in (column 'convention'): "
          + "; ".join(f"{name}: {text}" for name, text in FPR_CONVENTIONS.items()) + ".")
    print(f"Differences are ours - paper; {EXPECTED_SPREAD}.")
    if differences:
        print("This run differs from the paper's setting: " + "; ".join(differences) + ".")
    files = [_write(table, out / "reproduce.csv", record, index=False),
             _write(results, out / "reproduce-results.csv", record, index=False),
             _write_markdown(markdown_table(table.set_index(["method", "dataset"]), bold=False)
                             + ("\nDiffers from the paper's setting: " + "; ".join(differences) + ".\n"
                                if differences else ""), out / "reproduce.md", record)]
    _write_record(out, "reproduce", record, files)


# ---------------------------------------------------------------------------------------------- parser
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
    commands = parser.add_subparsers(dest="command", required=True, metavar="command")

    def command(name: str, help_text: str) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text, formatter_class=_Formatter)
        _common_arguments(sub)
        return sub

    demo = command("demo", "the main job on an embedded synthetic benchmark (no download)")
    demo.add_argument("--seed", type=_seed, default=0, help="seed of the synthetic data and of the stream order")
    _output_arguments(demo, "tanl-demo")
    demo.set_defaults(run=cmd_demo)

    extract = command("extract", "encode a benchmark's images into the feature cache")
    extract.add_argument("--benchmark", required=True,
                         help="imagenet | imagenet200 | cifar10 | cifar100 | four-ood | spec.yml")
    _model_arguments(extract)
    extract.add_argument("--batch-size", type=_positive_int, default=256, help="images per forward pass")
    extract.set_defaults(run=cmd_extract)

    methods = " | ".join(list_methods())
    evaluation = command("eval", "one method on a benchmark under a protocol")
    evaluation.add_argument("--method", required=True, help=f"{methods} | a postprocessor YAML")
    evaluation.add_argument("--set", nargs="+", default=[], metavar="KEY=VALUE",
                            help="override hyperparameters, e.g. gap=0.5 alpha=0")
    evaluation.add_argument("--benchmark", required=True,
                            help="imagenet | imagenet200 | cifar10 | cifar100 | four-ood | spec.yml")
    _model_arguments(evaluation)
    _protocol_arguments(evaluation, "openood-tanl-results")
    tracing = evaluation.add_argument_group("stream trace")
    tracing.add_argument("--trace", type=Path, default=None, metavar="DIR",
                         help="write the stream batch by batch to DIR: trace.csv (adaptive threshold, memory fill, "
                              "overlap of the selected negatives with the last batch's, windowed AUROC and FPR@95) "
                              "and a PNG per stream")
    tracing.add_argument("--trace-window", type=_whole_number(2), default=DEFAULT_TRACE_WINDOW, metavar="W",
                         help="samples in the trace's windowed metrics")
    evaluation.set_defaults(run=cmd_eval)

    board = command("leaderboard", "methods x benchmarks x seeds -> CSV + markdown")
    board.add_argument("--methods", nargs="+", default=["mcm", "neglabel", "adaneg", "tanl"],
                       help=f"{methods} | postprocessor YAMLs")
    board.add_argument("--benchmarks", nargs="+", required=True, help="benchmark names or spec files")
    _model_arguments(board)
    _protocol_arguments(board, "openood-tanl-results")
    board.set_defaults(run=cmd_leaderboard)

    sweeping = command("sweep", "methods over values of one argument -> CSV + PNG")
    sweeping.add_argument("--methods", nargs="+", default=["tanl", "neglabel"], help=f"{methods} | postprocessor YAMLs")
    sweeping.add_argument("--argument", default="num_negatives",
                          help="a hyperparameter of every method (one lockstep replay for all values), or a stream "
                               "argument (one replay per value): "
                               + "; ".join(f"{name}: {text}" for name, text in STREAM_ARGUMENTS.items()))
    sweeping.add_argument("--values", nargs="+", default=[str(v) for v in DEFAULT_SWEEP_VALUES],
                          help="values of --argument (numbers or words)")
    sweeping.add_argument("--benchmark", required=True,
                          help="imagenet | imagenet200 | cifar10 | cifar100 | four-ood | spec.yml")
    _model_arguments(sweeping)
    _protocol_arguments(sweeping, "openood-tanl-results")
    sweeping.set_defaults(run=cmd_sweep)

    reproducing = command("reproduce", "the paper's setting; paper's numbers vs ours per dataset")
    reproducing.add_argument("--benchmark", required=True, choices=REPRODUCIBLE_BENCHMARKS,
                             help="four-ood (ImageNet val vs iNaturalist, SUN, Places, Textures folders) or imagenet "
                                  "(OpenOOD v1.5; needs OpenOOD and its data)")
    reproducing.add_argument("--methods", nargs="+", default=list(PAPER_SETTING["methods"]),
                             help="methods to run (tanl is the paper's preset)")
    _model_arguments(reproducing)
    _protocol_arguments(reproducing, "openood-tanl-reproduce")
    reproducing.set_defaults(run=cmd_reproduce, seeds=list(PAPER_SETTING["seeds"]))
    return parser


#: Errors that are the user's to fix (exit code 2); anything else is reported the same way with exit code 1.
USER_ERRORS = (ValueError, TypeError, LookupError, OSError, ImportError)


def _one_line(error: Exception) -> str:
    """The error's message; for one re-raised from a DataLoader worker (whose message carries the worker's
    traceback), the worker's own message."""
    text = str(error)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)  # argparse reports its own usage errors (exit code 2)
    debug = getattr(args, "debug", False) or os.environ.get("OPENOOD_TANL_DEBUG", "") not in ("", "0")
    try:
        import torch

        torch.set_grad_enabled(False)
        args.run(args)
    except KeyboardInterrupt:
        _release_outputs(failed=True)
        print(f"openood-tanl {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as error:  # noqa: BLE001 - every error becomes one readable message
        _release_outputs(failed=True)
        if debug:
            raise
        import yaml

        user = isinstance(error, USER_ERRORS + (yaml.YAMLError,))
        kind = "error" if user else f"internal error ({type(error).__name__}; please report it)"
        print(f"openood-tanl {args.command}: {kind}: {_one_line(error)}", file=sys.stderr)
        print("(run with --debug, or OPENOOD_TANL_DEBUG=1, for the traceback)", file=sys.stderr)
        return 2 if user else 1
    _release_outputs(failed=False)
    return 0


if __name__ == "__main__":
    sys.exit(main())
