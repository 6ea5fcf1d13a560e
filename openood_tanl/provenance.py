"""What produced a result file: the run record written beside every table (``<stem>.run.json``).

A record names the package and library versions, each method with every hyperparameter, the text bank of each
benchmark (backbone, weights, precision, class names, corpus with its size and SHA-256, prompts, noise images), the
test-time protocol (name, seeds, batch size, order) and the FPR@95 conventions. Its ``config_id`` is a hash of all of
that except when and how it was run, so two tables from different corpora, weights or hyperparameters never share
one, and every CSV written with a record carries it in a ``config_id`` column. (The CLI hashes its records before
any model loads and adds each text bank's ``logit_scale``, a property of the named weights, after.)
"""
from __future__ import annotations

import datetime
import hashlib
import json
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Iterable, Mapping

from .embedding_cache import write_atomic
from .version import __version__

__all__ = ["FPR_CONVENTIONS", "method_record", "run_record", "config_id", "write_run_record", "libraries",
           "provenance_line"]

#: The two FPR@95 columns of every table.
FPR_CONVENTIONS = {
    "FPR@95": "OpenOOD's convention, OOD positive: share of ID samples flagged OOD at the threshold that catches "
              "95% of the OOD samples",
    "FPR@95(ID+)": "MCM/NegLabel papers' convention, ID positive: share of OOD samples kept as ID at the threshold "
                   "that keeps 95% of the ID samples",
}

_VOLATILE = ("created", "command", "files", "config_id")


def _jsonable(value: Any) -> Any:
    """JSON-safe copy: numpy/torch scalars -> numbers, paths and other objects -> str."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (TypeError, ValueError):
            pass
    return str(value)


def libraries() -> dict[str, str | None]:
    """Versions of the libraries that move the numbers."""
    versions = {"openood-tanl": __version__, "python": sys.version.split()[0]}
    for name in ("torch", "open_clip_torch", "numpy", "openood"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def method_record(method) -> dict:
    """A method's registry name and every hyperparameter it runs with (a ``MethodConfig``, or an OpenOOD
    postprocessor of ours: ``name`` and ``args``)."""
    hyperparameters = getattr(method, "hyperparameters", None)
    if hyperparameters is None:
        hyperparameters = getattr(method, "args", {})
    record = {"method": getattr(method, "name", type(method).__name__),
              "hyperparameters": _jsonable(dict(hyperparameters))}
    if getattr(method, "translated_names", None):  # official key names read from an OpenOOD config
        record["translated_from_official_names"] = dict(method.translated_names)
    return record


def run_record(*, methods: Mapping[str, Any], text_banks: Mapping[str, Any], protocol: str, seeds: Iterable[int],
               batch_size: int, order: Iterable[str] | None = None, id_ood_ratio: float | None = None,
               images: Mapping[str, Mapping] | None = None, streams: Mapping[str, Mapping] | None = None,
               **extra: Any) -> dict:
    """The record of one run.

    Args:
        methods: display name -> ``MethodConfig`` or postprocessor (or an already built ``method_record`` mapping).
        text_banks: benchmark name -> its text bank or network (its ``provenance``) or a provenance mapping.
        protocol, seeds, batch_size, order, id_ood_ratio: the test-time protocol (the ratio recorded only when
            set).
        images: benchmark name -> its images per set (``evaluation.datasets.image_summary``), when known.
        streams: benchmark name -> the samples of each stream (``evaluation.streams.stream_sizes``), when known.
        **extra: anything else that defines the run (e.g. a sweep's argument and values).
    """
    record = {
        "libraries": libraries(),
        "methods": {name: m if isinstance(m, Mapping) else method_record(m) for name, m in methods.items()},
        "benchmarks": {name: {"text_bank": _jsonable(bank if isinstance(bank, Mapping)
                                                     else getattr(bank, "provenance", None) or {}),
                              **({"images": _jsonable(images[name])} if images and name in images else {}),
                              **({"streams": _jsonable(streams[name])} if streams and name in streams else {})}
                       for name, bank in text_banks.items()},
        "protocol": {"name": protocol, "seeds": [int(s) for s in seeds], "batch_size": int(batch_size),
                     "order": list(order) if order else None,
                     **({"id_ood_ratio": float(id_ood_ratio)} if id_ood_ratio is not None else {})},
        "metrics": dict(FPR_CONVENTIONS),
        **_jsonable(extra),
    }
    record["config_id"] = config_id(record)
    return record


def config_id(record: Mapping) -> str:
    """``cfg-`` and 12 hex digits of the SHA-256 of the record without its volatile fields (time, command line,
    files); the prefix keeps CSV readers (pandas) from taking an all-digit hash for a number."""
    stable = {k: v for k, v in record.items() if k not in _VOLATILE}
    return "cfg-" + hashlib.sha256(json.dumps(_jsonable(stable), sort_keys=True).encode()).hexdigest()[:12]


def write_run_record(path: str | Path, record: Mapping, files: Iterable[str | Path] = ()) -> Path:
    """Write ``record`` (with the time, the command line and the files it describes) to ``path``, atomically."""
    path = Path(path)
    full = {"config_id": record.get("config_id") or config_id(record),
            "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
            "command": " ".join(sys.argv),
            "files": [Path(f).name for f in files],
            **{k: v for k, v in record.items() if k != "config_id"}}
    write_atomic(path, (json.dumps(_jsonable(full), indent=2, ensure_ascii=False) + "\n").encode("utf-8"))
    return path


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
