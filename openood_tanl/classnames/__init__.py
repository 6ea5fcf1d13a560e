"""In-distribution (ID) class-name sets.

``class_names(spec)`` accepts

* a built-in name (case-insensitive):

  - ``"imagenet"``: the 1000 ImageNet-1k names of open_clip's
    ``IMAGENET_CLASSNAMES`` (OpenAI's CLIP names; needs ``open_clip_torch``),
    with two exact duplicates of that list made unique (see
    :data:`IMAGENET_DISAMBIGUATION`);
  - ``"imagenet200"``: OpenOOD v1.5's ImageNet-200 (the ImageNet-R classes) in
    OpenOOD's label order, named by the ``"imagenet"`` list at the ImageNet-1k
    indices in ``imagenet200.txt`` (see that file for the source);
  - ``"cifar10"``, ``"cifar100"``: the standard names in label order;

* a list/tuple of names, returned as a new list after validation;
* a path (``str`` or ``os.PathLike``) to a UTF-8 text file with one name per
  line (blank lines and lines starting with ``#`` are skipped). A string equal
  to a built-in name always means the built-in; write ``./cifar10`` for a file
  of that name.

Names must be non-empty and unique; uniqueness is checked case-insensitively
with ``_`` and spaces treated alike (CLIP lower-cases text, so ``Crane`` and
``crane`` would get the same text embedding).
"""

from __future__ import annotations

import os
from functools import lru_cache
from typing import Dict, List, Sequence, Tuple, Union

from openood_tanl.corpus import _parse_lines, _read_text, normalize_label

__all__ = [
    "BUILTIN_CLASS_SETS",
    "IMAGENET_DISAMBIGUATION",
    "class_names",
    "imagenet200_indices",
    "imagenet200_wnids",
]

BUILTIN_CLASS_SETS = ("imagenet", "imagenet200", "cifar10", "cifar100")

# open_clip's IMAGENET_CLASSNAMES (OpenAI's CLIP list) repeats two names:
# "missile" at 657 (n03773504 missile) and 744 (n04008634 projectile, missile),
# and "sunglasses" at 836 (n04355933 sunglass) and 837 (n04356056 sunglasses,
# dark glasses, shades). We rename 744 and 836 after their WordNet synsets so
# that all 1000 names are unique. {index: (open_clip name, name used here)}
IMAGENET_DISAMBIGUATION: Dict[int, Tuple[str, str]] = {
    744: ("missile", "projectile"),
    836: ("sunglasses", "sunglass"),
}

_HERE = os.path.dirname(os.path.abspath(__file__))

Spec = Union[str, "os.PathLike[str]", Sequence[str]]


def _data_path(name: str) -> str:
    return os.path.join(_HERE, name)


def _validate(names: Sequence[str], source: str) -> List[str]:
    out = list(names)
    if not out:
        raise ValueError(f"{source} is empty; give at least one class name.")
    seen: Dict[str, int] = {}
    problems = []
    for i, name in enumerate(out):
        if not isinstance(name, str):
            raise TypeError(
                f"{source}: entry {i} is {type(name).__name__}, expected a str class name"
            )
        if not name.strip():
            raise ValueError(
                f"{source}: class name {i} is empty; remove it or give the class a name."
            )
        key = normalize_label(name)
        if key in seen:
            problems.append(f"{name!r} at index {i} (same as index {seen[key]})")
        else:
            seen[key] = i
    if problems:
        raise ValueError(
            f"{source} has {len(problems)} duplicate class name(s) (compared "
            "case-insensitively, '_' == ' '): "
            + "; ".join(problems[:5])
            + ". Make every class name distinct, e.g. by adding a qualifier "
            "('crane bird' / 'construction crane')."
        )
    return out


def _read_data_lines(name: str) -> List[str]:
    with open(_data_path(name), encoding="utf-8") as handle:
        lines = [line.strip() for line in handle]
    return [line for line in lines if line and not line.startswith("#")]


@lru_cache(maxsize=None)
def _imagenet200_table() -> Tuple[Tuple[int, str], ...]:
    rows = []
    for line in _read_data_lines("imagenet200.txt"):
        index, wnid = line.split()
        rows.append((int(index), wnid))
    return tuple(rows)


def imagenet200_indices() -> List[int]:
    """ImageNet-1k class indices of OpenOOD's ImageNet-200, in OpenOOD label
    order (so ``logits_1k[:, imagenet200_indices()]`` gives ImageNet-200 logits)."""
    return [index for index, _ in _imagenet200_table()]


def imagenet200_wnids() -> List[str]:
    """WordNet ids of OpenOOD's ImageNet-200 classes, in OpenOOD label order."""
    return [wnid for _, wnid in _imagenet200_table()]


@lru_cache(maxsize=None)
def _imagenet() -> Tuple[str, ...]:
    try:
        from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError(
            "the built-in 'imagenet'/'imagenet200' class names come from open_clip; "
            "install it with `pip install open_clip_torch`, or pass your own list "
            "or a text file of class names."
        ) from exc
    names = list(IMAGENET_CLASSNAMES)
    if len(names) != 1000:
        raise RuntimeError(
            f"open_clip's IMAGENET_CLASSNAMES has {len(names)} names, expected 1000"
        )
    for index, (original, replacement) in IMAGENET_DISAMBIGUATION.items():
        if names[index] == original:
            names[index] = replacement
    return tuple(_validate(names, "open_clip IMAGENET_CLASSNAMES"))


@lru_cache(maxsize=None)
def _builtin(name: str) -> Tuple[str, ...]:
    if name == "imagenet":
        return _imagenet()
    if name == "imagenet200":
        imagenet = _imagenet()
        return tuple(imagenet[index] for index in imagenet200_indices())
    return tuple(_validate(_read_data_lines(f"{name}.txt"), f"built-in {name!r}"))


def class_names(spec: Spec) -> List[str]:
    """Resolve a built-in set name, a list of names, or a text-file path to a
    validated list of class names (a new list on every call)."""
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if isinstance(spec, str) and text.strip().lower() in BUILTIN_CLASS_SETS:
            return list(_builtin(text.strip().lower()))
        if isinstance(spec, os.PathLike) or os.path.exists(text) or _looks_like_path(text):
            source = f"class-name file {text!r}"
            names = _parse_lines(_read_text(text, "class-name"), source, key=normalize_label)
            return _validate(names, source)
        raise ValueError(
            f"unknown class-name set {text!r}: built-ins are "
            + ", ".join(repr(b) for b in BUILTIN_CLASS_SETS)
            + "; otherwise pass a list of names or the path of an existing text file "
            "with one class name per line."
        )
    if isinstance(spec, (list, tuple)):
        return _validate(spec, "class-name list")
    raise TypeError(
        "class_names() expects a built-in name, a list of class names or a path, "
        f"not {type(spec).__name__}"
    )


def _looks_like_path(text: str) -> bool:
    return (
        os.sep in text
        or (os.altsep is not None and os.altsep in text)
        or text.lower().endswith((".txt", ".csv", ".lst"))
    )
