"""The commands, each a declaration of the steps of ``pipeline.Pipeline`` it needs: ``cmd_<name>(args)`` runs it."""
from __future__ import annotations

import json
import re
from typing import Any

from ..evaluation.datasets import FOUR_OOD_NAMES
from ..evaluation.protocols import BACKBONE_AXIS, STREAM_ARGUMENTS
from ..evaluation.reproduce import EXPECTED_SPREAD
from . import writers
from .pipeline import (
    Pipeline,
    configure_methods,
    load_features,
    method_label,
    parse_overrides,
    plan_benchmark,
    run_methods,
    run_record_of,
    stream_settings,
)
from .status import UsageError
from .writers import Output

__all__ = ["cmd_demo", "cmd_extract", "cmd_eval", "cmd_leaderboard", "cmd_sweep", "cmd_reproduce", "sweep_values",
           "SYNTHETIC_NOTICE", "DEFAULT_SWEEP_VALUES", "DEFAULT_TRACE_WINDOW"]

SYNTHETIC_NOTICE = ("THE DATA ARE SYNTHETIC (CLIP-like embeddings generated from a seed): the numbers show the "
                    "pipeline working, not results on any real benchmark.")
DEFAULT_SWEEP_VALUES = (100, 300, 1000, 3000, 10000)
DEFAULT_TRACE_WINDOW = 1000
LEADERBOARD_FILES = ["results.csv", "leaderboard.csv", "leaderboard.md"]
SWEEP_FILES = ["sweep.csv", "sweep.png"]
DEMO_ORDER_SWEEP = ("order", ["mixed", "id-first", "ood-first"])
DEMO_TRACE_WINDOW = 500
REPRODUCE_FILES = ["reproduce.csv", "reproduce-results.csv", "reproduce.md"]


def _sweep_title(benchmark, argument: str, protocol: str) -> str:
    return f"{benchmark.name}: " + ("sample order (protocol)" if argument == "order" else f"{protocol} protocol")


def _replay(methods: dict, bank, benchmark, settings, seeds, workers: int = 1):
    """One lockstep replay of ``methods`` (label -> MethodConfig) on ``benchmark``: a ``Replay``."""
    import functools

    from ..evaluation.replay import replay
    from ..methods import create_lockstep

    return replay(functools.partial(create_lockstep, methods, bank), benchmark, settings, seeds=seeds, workers=workers)


class Demo(Pipeline):
    """The main job on the embedded synthetic benchmark: leaderboard, label-count sweep, sample-order sweep,
    stream trace (no benchmark to plan, no model to load)."""

    def configure(self) -> dict:
        from ..evaluation.protocols import StreamSettings
        from ..synthetic import synthetic_benchmark

        print(f"openood-tanl demo: {SYNTHETIC_NOTICE}")
        self.bank, self.benchmark = synthetic_benchmark(seed=self.args.seed)
        methods = configure_methods(["mcm", "neglabel", "csp", "adaneg", "oodd", "tanl"])
        self.stream = StreamSettings("mixed", 256)
        self.settings = dict(protocol=self.stream.protocol, seeds=[self.args.seed], batch_size=self.stream.batch_size)
        self.sweep_methods = configure_methods(["tanl", "neglabel"])
        self.values = list(DEFAULT_SWEEP_VALUES)
        self.trace_methods = configure_methods(["tanl", "adaneg"])
        self.trace_settings = StreamSettings("temporal", 128, trace_window=DEMO_TRACE_WINDOW)
        return methods

    def plan(self) -> list:
        return []

    def records(self) -> list[Output]:
        from ..provenance import run_record

        banks = {self.benchmark.name: self.bank}
        argument, orders = DEMO_ORDER_SWEEP
        seeds = [self.args.seed]
        return [Output(self.out, "leaderboard", LEADERBOARD_FILES,
                       run_record(methods=self.methods, text_banks=banks, **self.settings)),
                Output(self.out, "sweep", SWEEP_FILES,
                       run_record(methods=self.sweep_methods, text_banks=banks,
                                  sweep={"argument": "num_negatives", "values": self.values}, **self.settings)),
                Output(self.out, "sweep-order", ["sweep-order.csv", "sweep-order.png"],
                       run_record(methods=self.sweep_methods, text_banks=banks,
                                  sweep={"argument": argument, "values": orders}, **self.settings)),
                Output(self.out / "trace", "trace", ["trace.csv"],
                       run_record(methods=self.trace_methods, text_banks=banks, protocol="temporal", seeds=seeds,
                                  batch_size=self.trace_settings.batch_size, trace={"window": DEMO_TRACE_WINDOW}))]

    def announce(self) -> None:
        print(f"benchmark: {len(self.benchmark.id_set)} ID embeddings (100 classes, D=256), near- and far-OOD sets "
              f"of {len(self.benchmark.ood_groups['near'][0])}, corpus of 20,000 words; mixed protocol, seed "
              f"{self.args.seed}")

    def load(self) -> list:
        return [(self.bank, self.benchmark)]

    def bank_labels(self) -> list[str]:
        return [self.benchmark.name]

    def replay(self) -> dict:
        from ..evaluation.comparison import sweep

        argument, orders = DEMO_ORDER_SWEEP
        seeds = [self.args.seed]
        return {"leaderboard": run_methods(self.methods, self.data, self.stream, seeds=seeds),
                "sweep": sweep(self.sweep_methods, "num_negatives", self.values, self.bank, self.benchmark,
                               self.stream, seeds=seeds),
                "sweep-order": sweep(self.sweep_methods, argument, orders, self.bank, self.benchmark, self.stream,
                                     seeds=seeds),
                "trace": _replay(self.trace_methods, self.bank, self.benchmark, self.trace_settings,
                                 [self.args.seed])}

    def write(self, result: dict) -> None:
        board, sweep, order, trace = (output.record for output in self.outputs)
        argument, orders = DEMO_ORDER_SWEEP
        print(f"leaderboard: {', '.join(self.methods)} in lockstep on one replay (csp on the synthetic bank, which has "
              "no adjectives: CSP's selection takes 15% of its words)")
        writers.write_leaderboard(result["leaderboard"], self.out, board)
        writers.print_conventions()
        print(f"sweep: {', '.join(self.sweep_methods)} over {len(self.values)} label counts, every point in lockstep "
              "on one replay")
        writers.write_sweep(result["sweep"], "num_negatives", _sweep_title(self.benchmark, "num_negatives", "mixed"),
                            self.out, sweep)
        print(f"protocol sweep: {', '.join(self.sweep_methods)} over the sample orders {', '.join(orders)}")
        writers.write_sweep(result["sweep-order"], argument, _sweep_title(self.benchmark, argument, "mixed"),
                            self.out, order, stem="sweep-order")
        print(f"stream trace: {', '.join(self.trace_methods)} on the temporal protocol (near-OOD, then far-OOD), "
              f"batches of {self.trace_settings.batch_size}, windowed metrics over the last {DEMO_TRACE_WINDOW} "
              "samples")
        writers.write_trace(result["trace"], self.out / "trace", trace)
        print(f"openood-tanl demo: done. {SYNTHETIC_NOTICE}")


class Extract(Pipeline):
    """Encode a benchmark's images into the feature cache (each torchrun rank its share): no output folder, no
    method, no replay."""

    def out_folder(self) -> None:
        return None

    def configure(self) -> dict:
        return {}

    def benchmarks(self) -> list[str]:
        return [self.args.benchmark]

    def announce(self) -> None:
        from ..evaluation import distributed

        distributed.init_from_env()  # under torchrun (WORLD_SIZE > 1): each rank encodes its share of the shards

    def replay(self) -> None:
        return None

    def write(self, result) -> None:
        from ..evaluation import distributed

        if not distributed.is_main_process():
            return
        _, benchmark = self.data[0]
        for feature_set in [benchmark.id_set] + [s for _, s in benchmark.ood_sets()]:
            print(f"{feature_set.name}: {len(feature_set)} images -> features {tuple(feature_set.features.shape)}")


class Eval(Pipeline):
    """One method on a benchmark under a protocol: ``<stem>.csv``, ``<stem>-per-seed.csv`` (and a trace)."""

    def configure(self) -> dict:
        from ..methods import configure

        method = configure(self.args.method, **parse_overrides(self.args.set))
        if self.args.trace_window != DEFAULT_TRACE_WINDOW and self.args.trace is None:
            raise UsageError("--trace-window sets the window of a stream trace: add --trace DIR")
        return {method_label(self.args.method): method}

    def benchmarks(self) -> list[str]:
        return [self.args.benchmark]

    def records(self) -> list[Output]:
        args, (job,) = self.args, self.jobs
        settings = "".join(f"-{key}{re.sub(r'[^A-Za-z0-9.+_-]', '_', str(value))}"
                           for key, value in sorted(parse_overrides(args.set).items()))
        benchmark_name = re.sub(r"[^A-Za-z0-9.+_-]", "_", job.name)  # a spec's own name:, not its file's
        self.stem = f"{method_label(args.method)}{settings}-{benchmark_name}-{args.protocol}"
        outputs = [Output(self.out, self.stem, [f"{self.stem}.csv", f"{self.stem}-per-seed.csv"],
                          run_record_of(self.methods, [job], args))]
        if args.trace is not None:
            outputs.append(Output(args.trace, "trace", ["trace.csv"],
                                  run_record_of(self.methods, [job], args, trace={"window": args.trace_window}),
                                  flag="--trace"))
        return outputs

    def replay(self):
        (bank, benchmark), args = self.data[0], self.args
        settings = stream_settings(args, args.trace_window if args.trace is not None else None)
        return _replay(self.methods, bank, benchmark, settings, args.seeds, args.stream_workers)

    def write(self, result) -> None:
        (label,), record = self.methods, self.outputs[0].record
        summary, per_seed = result.tables[label]
        writers.show(summary)
        writers.print_conventions()
        files = [writers.write_csv(summary, self.out / f"{self.stem}.csv", record),
                 writers.write_csv(per_seed, self.out / f"{self.stem}-per-seed.csv", record, index=False)]
        writers.write_record(self.out, self.stem, record, files)
        if self.args.trace is not None:
            writers.write_trace(result, self.args.trace, self.outputs[1].record)


class Leaderboard(Pipeline):
    """Methods x benchmarks x seeds: results.csv, leaderboard.csv, leaderboard.md."""

    def records(self) -> list[Output]:
        return [Output(self.out, "leaderboard", LEADERBOARD_FILES, run_record_of(self.methods, self.jobs, self.args))]

    def write(self, result) -> None:
        writers.write_leaderboard(result, self.out, self.outputs[0].record)
        writers.print_conventions()


def sweep_values(args, methods: dict) -> list[Any]:
    """--values parsed (YAML scalars) and checked for --argument: stream values against the protocol options,
    hyperparameter values against every method."""
    import yaml

    from ..evaluation.protocols import check_settings

    try:
        values = [yaml.safe_load(v) for v in args.values]
    except yaml.YAMLError as error:
        raise UsageError(f"--values: not a list of numbers or words ({error})") from None

    def same(value):  # 100 and 100.0 are one value
        return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else value

    if len({json.dumps(same(v), sort_keys=True, default=str) for v in values}) != len(values):
        raise UsageError(f"--values {' '.join(args.values)} repeat a value; give each value once")
    if args.argument == BACKBONE_AXIS:
        for value in args.values:
            _backbone(value)  # MODEL:WEIGHTS, or a one-line error
        return list(args.values)
    if args.argument in STREAM_ARGUMENTS:
        base = stream_settings(args)
        for value in values:
            check_settings(base.with_value(args.argument, value))
        return values
    for method in methods.values():
        for value in values:
            method.replace(**{args.argument: value})
    return values


def _backbone(value: str) -> tuple[str, str | None]:
    """``--values`` of ``--argument backbone``: "MODEL:WEIGHTS" -> (model, weights) (``parse_backbone``)."""
    from ..networks.settings import parse_backbone

    return parse_backbone(value, "--argument backbone")


def _with_backbone(args, value: str):
    """``args`` with --model and --pretrained of the backbone ``value``."""
    import argparse

    model, weights = _backbone(value)
    return argparse.Namespace(**{**vars(args), "model": model, "pretrained": weights})


class Sweep(Pipeline):
    """Methods over values of one argument (a hyperparameter: one lockstep replay; a stream argument: one replay
    per value; backbones: a text bank and feature cache each, the methods in lockstep on each): sweep.csv,
    sweep.png."""

    @property
    def over_backbones(self) -> bool:
        return self.args.argument == BACKBONE_AXIS

    def plan(self) -> list:
        if not self.over_backbones:
            return super().plan()
        return [plan_benchmark(_with_backbone(self.args, value), self.args.benchmark) for value in self.values]

    def load(self) -> list:
        if not self.over_backbones:
            return super().load()
        return [load_features(_with_backbone(self.args, value), job, self.methods.values())
                for value, job in zip(self.values, self.jobs)]

    def configure(self) -> dict:
        methods = configure_methods(self.args.methods)
        self.values = sweep_values(self.args, methods)
        return methods

    def benchmarks(self) -> list[str]:
        return [self.args.benchmark]

    def bank_labels(self) -> list[str]:
        """Over backbones, each text bank under its ``MODEL:WEIGHTS`` value."""
        return list(self.values) if self.over_backbones else super().bank_labels()

    def records(self) -> list[Output]:
        return [Output(self.out, "sweep", SWEEP_FILES, run_record_of(
            self.methods, self.jobs, self.args, labels=self.bank_labels(),
            sweep={"argument": self.args.argument, "values": self.values}))]

    def engines(self) -> list:
        """Every sweep point against the text bank."""
        if self.args.argument in STREAM_ARGUMENTS or self.over_backbones:
            return list(self.methods.values())
        return [method.replace(**{self.args.argument: v}) for method in self.methods.values() for v in self.values]

    def replay(self) -> dict:
        from ..evaluation.comparison import sweep, sweep_backbones

        (bank, benchmark), args = self.data[0], self.args
        if self.over_backbones:
            return sweep_backbones(self.methods, self.values, self.data, stream_settings(args), seeds=args.seeds,
                                   workers=args.stream_workers)
        return sweep(self.methods, args.argument, self.values, bank, benchmark, stream_settings(args),
                     seeds=args.seeds, workers=args.stream_workers)

    def write(self, result: dict) -> None:
        _, benchmark = self.data[0]
        writers.write_sweep(result, self.args.argument, _sweep_title(benchmark, self.args.argument, self.args.protocol),
                            self.out, self.outputs[0].record)


class Reproduce(Pipeline):
    """The paper's setting on four-ood or imagenet: the paper's numbers vs ours, per dataset."""

    def benchmarks(self) -> list[str]:
        return [self.args.benchmark]

    def records(self) -> list[Output]:
        from ..evaluation.reproduce import setting_differences

        args, (job,) = self.args, self.jobs
        self.paper = "four-ood" if job.name in FOUR_OOD_NAMES else job.name
        setting = {"model": args.model, "pretrained": args.pretrained, "precision": args.precision,
                   "transform": job.plan.provenance["image_transform"]["name"],
                   "templates": args.templates, "negmining": args.negmining, "protocol": args.protocol,
                   "seeds": args.seeds,
                   "batch_size": args.batch_size}
        self.differences = setting_differences(setting, job.plan.provenance.get("corpus"))
        record = run_record_of(self.methods, [job], args,
                               reproduce={"paper_benchmark": self.paper, "differences_from_paper": self.differences})
        return [Output(self.out, "reproduce", REPRODUCE_FILES, record)]

    def announce(self) -> None:
        args = self.args
        from ..evaluation.reproduce import published_results

        published, where = published_results(args.model, args.pretrained)
        print(f"openood-tanl reproduce: {', '.join(self.methods)} on {self.jobs[0].name}, {args.protocol} protocol, "
              f"seeds {' '.join(map(str, args.seeds))}, batch {args.batch_size} (tanl = the paper's preset, tanl.yml); "
              f"against {where} (methods with numbers: {', '.join(published.get(self.paper, {})) or 'none'})")

    def write(self, results) -> None:
        from ..evaluation.reproduce import compare_with_paper
        from ..evaluation.tables import markdown_table
        from ..provenance import FPR_CONVENTIONS

        args = self.args
        table = compare_with_paper(results, self.paper, args.model, args.pretrained)
        record, differences = self.outputs[0].record, self.differences
        writers.show(table.set_index(["method", "dataset"]))
        print("Each FPR@95 is compared in the convention its paper printed it in (column 'convention'): "
              + "; ".join(f"{name}: {text}" for name, text in FPR_CONVENTIONS.items()) + ".")
        print(f"Differences are ours - paper; {EXPECTED_SPREAD}.")
        if differences:
            print("This run differs from the paper's setting: " + "; ".join(differences) + ".")
        markdown = markdown_table(table.set_index(["method", "dataset"]), bold=False) \
            + ("\nDiffers from the paper's setting: " + "; ".join(differences) + ".\n" if differences else "")
        files = [writers.write_csv(table, self.out / "reproduce.csv", record, index=False),
                 writers.write_csv(results, self.out / "reproduce-results.csv", record, index=False),
                 writers.write_markdown(markdown, self.out / "reproduce.md", record)]
        writers.write_record(self.out, "reproduce", record, files)


def cmd_demo(args) -> None:
    Demo(args).run()


def cmd_extract(args) -> None:
    Extract(args).run()


def cmd_eval(args) -> None:
    Eval(args).run()


def cmd_leaderboard(args) -> None:
    Leaderboard(args).run()


def cmd_sweep(args) -> None:
    Sweep(args).run()


def cmd_reproduce(args) -> None:
    Reproduce(args).run()
