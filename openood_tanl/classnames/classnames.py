"""In-distribution (ID) class-name sets.

``class_names(spec)`` accepts

* a built-in name (case-insensitive), equal to the lists the official code uses:

  - ``"imagenet"``: the 1000 ImageNet-1k names of OpenAI's CLIP (open_clip's ``IMAGENET_CLASSNAMES``; needs
    ``open_clip_torch``), repeats included: "missile" at 657 and 744, "sunglasses" at 836 and 837;
  - ``"imagenet-disambiguated"``: the same with 744 -> "projectile" and 836 -> "sunglass" (their WordNet
    senses, see :data:`IMAGENET_DISAMBIGUATION`), so that all 1000 names differ;
  - ``"imagenet200"``: OpenOOD v1.5's ImageNet-200 (the ImageNet-R classes) in OpenOOD's label order, named by
    ``"imagenet"`` at the ImageNet-1k indices listed in ``imagenet200.txt``;
  - ``"cifar10"``, ``"cifar100"``: the standard names in label order; CIFAR-100 keeps the dataset's underscores
    (``aquarium_fish``), as the official code does;

* a list/tuple of names, returned as a new list after validation;
* a path (``str`` or ``os.PathLike``) to a UTF-8 text file with one name per line (blank lines and lines
  starting with ``#`` are skipped). A string equal to a built-in name always means the built-in; write
  ``./cifar10`` for a file of that name.

Names must be non-empty strings. A user's list that repeats a name (compared as CLIP sees text: ignoring case,
``_`` vs space) gets a ``ClassNameWarning`` naming the repeats: the repeated classes get the same text embedding.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from functools import lru_cache
from pathlib import Path
from typing import Sequence, Union

from ..core.errors import MissingDependencyError, UserError, UserTypeError
from ..corpus import normalize_label, parse_lines, read_text_file

__all__ = ["BUILTIN_CLASS_SETS", "IMAGENET_DISAMBIGUATION", "ClassNameWarning", "class_names", "class_names_sha256",
           "imagenet200_indices", "imagenet200_wnids"]

BUILTIN_CLASS_SETS = ("imagenet", "imagenet-disambiguated", "imagenet200", "cifar10", "cifar100")

#: OpenAI's ImageNet names repeat two: "missile" at 657 (n03773504 missile) and 744 (n04008634 projectile,
#: missile), "sunglasses" at 836 (n04355933 sunglass) and 837 (n04356056 sunglasses, dark glasses, shades).
#: ``imagenet-disambiguated`` renames 744 and 836 after their synsets. {index: (official name, renamed)}
IMAGENET_DISAMBIGUATION: dict[int, tuple[str, str]] = {744: ("missile", "projectile"),
                                                       836: ("sunglasses", "sunglass")}

_HERE = Path(__file__).resolve().parent

Spec = Union[str, "os.PathLike[str]", Sequence[str]]


class ClassNameWarning(UserWarning):
    """A class-name list repeats a name (the repeated classes share one text embedding)."""


def _validate(names: Sequence[str], source: str, warn_repeats: bool = True) -> list[str]:
    out = list(names)
    if not out:
        raise UserError(f"{source} is empty; give at least one class name.")
    first: dict[str, int] = {}
    repeats = []
    for i, name in enumerate(out):
        if not isinstance(name, str):
            raise UserTypeError(f"{source}: entry {i} is {type(name).__name__}, expected a str class name")
        if not name.strip():
            raise UserError(f"{source}: class name {i} is empty; remove it or give the class a name.")
        key = normalize_label(name)
        if key in first:
            repeats.append(f"{name!r} at index {i} (same as index {first[key]})")
        else:
            first[key] = i
    if repeats and warn_repeats:
        warnings.warn(f"{source} repeats {len(repeats)} class name(s) (compared as CLIP reads text: ignoring case, "
                      f"'_' == ' '): {'; '.join(repeats[:5])}. Those classes get the same text embedding and the "
                      "later one is never predicted; make the names distinct (e.g. 'crane bird' / 'construction "
                      "crane') unless that is what you mean.", ClassNameWarning, stacklevel=3)
    return out


def _read_data_lines(name: str) -> list[str]:
    lines = (line.strip() for line in (_HERE / name).read_text(encoding="utf-8").splitlines())
    return [line for line in lines if line and not line.startswith("#")]


@lru_cache(maxsize=None)
def _imagenet200_table() -> tuple[tuple[int, str], ...]:
    rows = []
    for line in _read_data_lines("imagenet200.txt"):
        index, wnid = line.split()
        rows.append((int(index), wnid))
    return tuple(rows)


def imagenet200_indices() -> list[int]:
    """ImageNet-1k class indices of OpenOOD's ImageNet-200, in OpenOOD label order (``logits_1k[:, indices]``)."""
    return [index for index, _ in _imagenet200_table()]


def imagenet200_wnids() -> list[str]:
    """WordNet ids of OpenOOD's ImageNet-200 classes, in OpenOOD label order."""
    return [wnid for _, wnid in _imagenet200_table()]


@lru_cache(maxsize=None)
def _imagenet() -> tuple[str, ...]:
    try:
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError("the built-in 'imagenet' class names come from open_clip; install it with "
                                     "`pip install open_clip_torch`, or pass your own list or a text file of class "
                                     "names.") from exc
    names = tuple(IMAGENET_CLASSNAMES)
    if len(names) != 1000:
        raise RuntimeError(f"open_clip's IMAGENET_CLASSNAMES has {len(names)} names, expected 1000")
    return names


@lru_cache(maxsize=None)
def _builtin(name: str) -> tuple[str, ...]:
    if name == "imagenet":
        return _imagenet()
    if name == "imagenet-disambiguated":
        names = list(_imagenet())
        for index, (original, renamed) in IMAGENET_DISAMBIGUATION.items():
            if names[index] != original:
                raise RuntimeError(f"open_clip's ImageNet name {index} is {names[index]!r}, expected {original!r}")
            names[index] = renamed
        return tuple(_validate(names, "built-in 'imagenet-disambiguated'"))
    if name == "imagenet200":
        imagenet = _imagenet()
        return tuple(imagenet[index] for index in imagenet200_indices())
    return tuple(_validate(_read_data_lines(f"{name}.txt"), f"built-in {name!r}"))


def class_names(spec: Spec) -> list[str]:
    """A built-in set name, a list of names or a text-file path -> the validated class names (a new list)."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if isinstance(spec, str) and text.strip().lower() in BUILTIN_CLASS_SETS:
            return list(_builtin(text.strip().lower()))
        if isinstance(spec, os.PathLike) or os.path.exists(text) or _looks_like_path(text):
            source = f"class-name file {text!r}"
            names = parse_lines(read_text_file(text, "class-name").removeprefix("\ufeff"), source,
                                allow_repeats=True)  # a byte-order mark is not part of the first name
            return _validate(names, source)
        raise UserError(f"unknown class-name set {text!r}: built-ins are "
                        + ", ".join(repr(b) for b in BUILTIN_CLASS_SETS)
                        + "; otherwise pass a list of names or the path of an existing text file with one class "
                        "name per line.")
    if isinstance(spec, (list, tuple)):
        return _validate(spec, "class-name list")
    raise UserTypeError("class_names() expects a built-in name, a list of class names or a path, not "
                        f"{type(spec).__name__}")


def class_names_sha256(names: Sequence[str]) -> str:
    """SHA-256 of the ordered names (one a line): what a result file records about its class names."""
    return hashlib.sha256("".join(f"{name}\n" for name in names).encode("utf-8")).hexdigest()


def _looks_like_path(text: str) -> bool:
    return (os.sep in text or (os.altsep is not None and os.altsep in text)
            or text.lower().endswith((".txt", ".csv", ".lst")))
