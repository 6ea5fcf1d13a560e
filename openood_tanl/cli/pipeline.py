"""The one run every command is: out folder -> methods -> plan (device, images, class names, text bank) -> record
-> claim -> load (the records gain the weights' logit scale) -> replay -> write. ``Pipeline.run`` sequences the
steps; a command declares what its steps do.

Everything is checked before any model is loaded; the load step builds each method's engine against the text bank
before any image is encoded.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable

from ..methods import configure
from . import writers
from .status import UsageError

__all__ = ["Pipeline", "Job", "parse_overrides", "method_label", "configure_methods", "plan_benchmark",
           "plan_benchmarks", "stream_settings", "load_features", "run_record_of", "record_weights", "run_methods"]


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


def configure_methods(methods: list[str]) -> dict[str, Any]:
    """--methods -> {table label: MethodConfig} (every name and hyperparameter checked)."""
    labels = [method_label(m) for m in methods]
    repeated = sorted({label for label in labels if labels.count(label) > 1})
    if repeated:
        raise UsageError(f"--methods names {repeated} more than once (a YAML counts by its file name); name each "
                         "method once")
    return {label: configure(method) for label, method in zip(labels, methods)}


# ---------------------------------------------------------------------------------------------- plan
@dataclass
class Job:
    """One benchmark, checked and described before any model is loaded."""

    images: Any  # ImageBenchmark, its ID labels matched to the class names
    id_classes: Any  # the class-name spec
    plan: Any  # TextBankPlan: class names, corpus, provenance of the text bank and the image transform
    text_bank: Any  # TextBankSettings: the network and text bank the command line asks for (device and cache apart)
    stream_sizes: Any = None  # {OOD set: {"id": n, "ood": m}} for runs that stream
    #: method name -> (TextBankSettings, TextBankPlan) of a method with its own text bank (CSP's prompts)
    method_banks: dict = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.images.name


def _id_classes(args, benchmark: str) -> Any:
    if args.id_classes:
        return args.id_classes
    from ..evaluation.datasets import FOUR_OOD_NAMES, OPENOOD_BENCHMARKS

    name = Path(benchmark).name
    if name in OPENOOD_BENCHMARKS:
        return name
    if name in FOUR_OOD_NAMES:
        return "imagenet"
    raise UsageError(f"pass --id-classes for benchmark '{benchmark}' (a built-in set name or a text file with one "
                     "class name a line, in label order)")


def _check_cache_dir(args) -> None:
    """The cache folder (--cache-dir, else the default) is a folder this run can create and write, or a
    UsageError naming it and the fix, before any model loads."""
    from ..embedding_cache import default_cache_dir

    folder = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    flag = "--cache-dir" if args.cache_dir else "the cache folder ($OPENOOD_TANL_CACHE or ~/.cache/openood_tanl)"
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"{flag} {folder} is a file; point --cache-dir at a folder")
    existing = next((parent for parent in (folder, *folder.parents) if parent.exists()), None)
    if existing is not None and not os.access(existing, os.W_OK | os.X_OK):
        raise UsageError(f"{flag} {folder} is not writable ({existing} is not); point --cache-dir at a folder you "
                         "can write")


def _device(args):
    import torch

    from ..evaluation import distributed

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


def plan_benchmark(args, benchmark: str, methods: Iterable = ()) -> Job:
    """Device, cache folder, images (every file listed, present and opening), class names against the ID labels,
    protocol and stream sizes, text bank (and CSP's own, when ``methods``, MethodConfigs, name csp): all checked,
    nothing encoded."""
    from ..classnames import class_names
    from ..evaluation.datasets import check_images_open, load_benchmark, match_id_classes
    from ..evaluation.protocols import check_settings
    from ..networks import plan_text_bank

    _device(args)  # a device this machine lacks is named before anything else
    _check_cache_dir(args)
    images = load_benchmark(benchmark, args.data_root)
    spec = _id_classes(args, benchmark)
    images, mapping = match_id_classes(images, class_names(spec))
    print(mapping)
    check_settings(stream_settings(args), [s.name for _, s in images.ood_sets()], getattr(args, "seeds", None))
    sizes = None
    if hasattr(args, "protocol"):  # a run that streams (not extract): its streams' sizes, thin ones warned about
        from ..evaluation.streams import stream_sizes

        sizes = stream_sizes(len(images.id_set), {s.name: len(s) for _, s in images.ood_sets()},
                             stream_settings(args))
    check_images_open(images)
    settings = text_bank_settings(args, spec, benchmark)
    return Job(images, spec, plan_text_bank(settings), settings, sizes, _method_banks(settings, methods))


def _method_banks(settings, methods: Iterable) -> dict:
    """{method name: (TextBankSettings, TextBankPlan)} of the methods with their own text bank: CSP's (its prompts
    on the --corpus folder read with its rules), unless the command line's text bank is CSP's already."""
    from ..networks import plan_text_bank

    if settings.templates == "csp" or not any(method.name == "csp" for method in methods):
        return {}
    own = settings.replace(templates="csp", corpus_rules="csp", negmining="own")
    return {"csp": (own, plan_text_bank(own))}


def text_bank_settings(args, id_classes, benchmark: str):
    """The command line's model, weights, class names, corpus, prompts, transform and precision as
    ``TextBankSettings`` (``benchmark`` as named on the command line: it decides the image transform)."""
    from ..networks import TextBankSettings

    return TextBankSettings(args.model, args.pretrained, id_classes, args.corpus, corpus_rules=args.corpus_rules,
                            templates=args.templates, transform=args.transform, benchmark=benchmark,
                            precision=args.precision, quick_gelu=args.quick_gelu, model_config=args.model_config,
                            negmining=getattr(args, "negmining", "own"))


def plan_benchmarks(args, names: list[str], methods: Iterable = ()) -> list[Job]:
    """``plan_benchmark`` of each name; a name given twice, or two specs of one ``name``, is a UsageError."""
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise UsageError(f"--benchmarks names {repeated} more than once; name each benchmark once")
    methods = list(methods)
    jobs = [plan_benchmark(args, name, methods) for name in names]
    labels = [job.name for job in jobs]
    clashes = sorted({label for label in labels if labels.count(label) > 1})
    if clashes:
        raise UsageError(f"two benchmarks are both called {clashes}; give each spec its own 'name'")
    return jobs


def stream_settings(args, trace_window: int | None = None):
    """The command line's protocol options as ``StreamSettings``."""
    from ..evaluation.protocols import StreamSettings

    return StreamSettings.from_keywords(getattr(args, "protocol", "mixed"), getattr(args, "batch_size", 256),
                                        getattr(args, "order", None), getattr(args, "id_ood_ratio", None), trace_window)


def run_record_of(methods: dict, jobs: list, args, labels: list[str] | None = None, **extra) -> dict:
    """The run record of ``methods`` on the benchmarks of ``jobs``: text banks (under ``labels``, default each job's
    benchmark name), images per set, the protocol."""
    from ..evaluation.datasets import image_summary
    from ..provenance import run_record

    labels = labels or [job.name for job in jobs]
    return run_record(methods=methods, text_banks={label: _text_bank_record(job) for label, job in zip(labels, jobs)},
                      images={job.name: image_summary(job.images) for job in jobs},
                      streams={job.name: job.stream_sizes for job in jobs if job.stream_sizes}, protocol=args.protocol,
                      seeds=args.seeds, batch_size=args.batch_size, order=getattr(args, "order", None),
                      id_ood_ratio=getattr(args, "id_ood_ratio", None), **extra)


def record_weights(record: dict, banks: dict) -> None:
    """Add to ``record`` (in place) what each built text bank's weights say, under the label the record names it by
    (``banks``: label -> ``TextBank``): ``logit_scale``, CLIP's ``logit_scale.exp()``, in its text bank and in each
    of its ``method_banks``. The ``config_id`` is kept: it digests the settings (which name the weights), and the
    scale is a property of those weights."""
    for label, bank in banks.items():
        if label not in record["benchmarks"]:
            continue
        text_bank = record["benchmarks"][label]["text_bank"]
        text_bank["logit_scale"] = float(bank.logit_scale)
        for name, own in getattr(bank, "method_banks", {}).items():
            if name in text_bank.get("method_banks", {}):
                text_bank["method_banks"][name]["logit_scale"] = float(own.logit_scale)


def _text_bank_record(job: Job) -> dict:
    """The text bank's provenance, with that of each method's own (``method_banks``: CSP's)."""
    if not job.method_banks:
        return job.plan.provenance
    return {**job.plan.provenance, "method_banks": {name: plan.provenance
                                                    for name, (_, plan) in job.method_banks.items()}}


# ---------------------------------------------------------------------------------------------- load and replay
def load_features(args, job: Job, methods=()) -> tuple[Any, Any]:
    """The network (text bank from its cache), each method's engine (built once against the text bank, before any
    image is encoded, for the bounds that need it), then the benchmark's features (encoded once, then cached)."""
    from ..bank import TextBank
    from ..embedding_cache import default_cache_dir
    from ..evaluation import distributed
    from ..evaluation.extraction import extract_benchmark
    from ..networks import build_network

    cache_dir = Path(args.cache_dir) if args.cache_dir else default_cache_dir()
    with distributed.main_process_first():  # under torchrun: rank 0 fills the text-bank cache, the others read it
        net, preprocess = build_network(job.text_bank.replace(device=_device(args), cache_dir=cache_dir))
        for name, (settings, _) in job.method_banks.items():  # CSP's prompts: the same model, its own text bank
            bank = TextBank.of(build_network(settings.replace(device=_device(args), cache_dir=cache_dir))[0])
            net.method_banks = {**getattr(net, "method_banks", {}), name: bank}
    bank = TextBank.of(net)
    for method in methods:
        method.engine(bank)  # bounds that need the text bank (e.g. num_negatives <= corpus size)
    features = extract_benchmark(net, preprocess, job.images, cache_dir, net.model_key, batch_size=args.batch_size,
                                 num_workers=args.workers, verify=args.verify)
    return bank, features


def run_methods(methods: dict, data: list, settings, *, seeds: list[int], workers: int = 1):
    """Every method (label -> MethodConfig) on every (text bank, features) pair under ``settings``
    (``StreamSettings``), in lockstep: ``comparison.compare``'s long table."""
    import pandas as pd

    from ..evaluation.comparison import compare

    return pd.concat([compare(methods, bank, benchmark, settings, seeds=seeds, workers=workers)
                      for bank, benchmark in data], ignore_index=True)


# ---------------------------------------------------------------------------------------------- the run
class Pipeline:
    """One run of a command. ``run()`` calls the steps in order; a command overrides the steps it needs
    (``configure``, ``benchmarks``, ``outputs`` and ``write`` at least), each reading ``self.args`` and what the
    steps before it set: ``out``, ``methods``, ``jobs``, ``outputs``, ``data``."""

    def __init__(self, args):
        self.args = args
        self.out: Path | None = None
        self.methods: dict = {}
        self.jobs: list[Job] = []
        self.outputs: list[writers.Output] = []
        self.data: list = []

    def run(self) -> None:
        self.out = self.out_folder()
        self.methods = self.configure()
        self.jobs = self.plan()
        self.outputs = self.records()
        with writers.output_errors(self._folders()):
            for output in self.outputs:
                folder = output.folder if output.flag is None else writers.check_out(output.folder, output.flag)
                writers.claim_outputs(folder, output.stem, output.files, output.record, self.args.overwrite)
        self.announce()
        self.data = self.load()
        self.record_loaded_weights()
        result = self.replay()
        with writers.output_errors(self._folders()):
            self.write(result)

    def _folders(self) -> list[Path]:
        folders = [self.out, *(output.folder for output in self.outputs)]
        return list(dict.fromkeys(folder for folder in folders if folder is not None))

    # the steps, in order
    def out_folder(self) -> Path | None:
        return writers.check_out(self.args.out)

    def configure(self) -> dict:
        """{table label: MethodConfig}, and the command's other argument checks that need no benchmark."""
        return configure_methods(self.args.methods)

    def benchmarks(self) -> list[str]:
        return self.args.benchmarks

    def plan(self) -> list[Job]:
        return plan_benchmarks(self.args, self.benchmarks(), self.engines())

    def records(self) -> list[writers.Output]:
        """The files this run writes, each set with the run record that vouches for it."""
        return []

    def announce(self) -> None:
        """What is about to run, printed once everything is checked."""

    def engines(self) -> Iterable:
        """The method configurations built against each text bank before any image is encoded."""
        return self.methods.values()

    def load(self) -> list:
        return [load_features(self.args, job, self.engines()) for job in self.jobs]

    def bank_labels(self) -> list[str]:
        """How the run records name the text bank of each entry of ``data``: its benchmark's name."""
        return [job.name for job in self.jobs]

    def record_loaded_weights(self) -> None:
        """Each run record gains what the loaded weights say (``record_weights``), its ``config_id`` kept."""
        banks = dict(zip(self.bank_labels(), (bank for bank, _ in self.data)))
        for output in self.outputs:
            record_weights(output.record, banks)

    def replay(self) -> Any:
        return run_methods(self.methods, self.data, stream_settings(self.args), seeds=self.args.seeds,
                           workers=self.args.stream_workers)

    def write(self, result) -> None:
        raise NotImplementedError
