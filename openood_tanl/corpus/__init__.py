"""Negative-label word corpus (pure Python; no torch needed).

Shipped data
------------
``wordnet_nouns.txt`` (58,690 words) and ``wordnet_adjectives.txt`` (21,042
words) are the single-word lemmas of WordNet 3.0, built by
``scripts/build_wordnet_corpus.py`` (see that script for the exact rule).
``WORDNET_LICENSE.txt`` is WordNet's licence notice, which must be
redistributed with them.

Building a corpus
-----------------
:func:`build_corpus` turns (nouns, adjectives) into the candidate negative
labels for a given in-distribution (ID) label set:

* adjectives that are also nouns are dropped (the noun is kept), comparing
  **case-insensitively** (and with ``_`` == space, as below): CLIP's tokenizer
  lower-cases its input, so ``French`` (adjective) and ``french`` (noun) would
  give the same text embedding twice. The check is against the full noun
  list, so an adjective that is both a noun and an ID class name is counted
  as an adjective/noun drop;
* words equal to an ID class name are dropped (nouns and adjectives alike),
  comparing case-insensitively after normalising underscores to spaces and
  collapsing runs of whitespace (``Golden_Retriever`` == ``golden retriever``);
* nothing else is removed: the noun list and the adjective list are used as
  given (case variants such as ``Turkey``/``turkey`` both stay, as in the
  negative-label literature's 58,690-noun count), nouns first, then
  adjectives, each in input order.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from functools import lru_cache
from typing import Iterable, List, Sequence, Tuple, Union

__all__ = [
    "Corpus",
    "build_corpus",
    "normalize_label",
    "read_word_list",
    "wordnet_words",
    "NOUNS_FILE",
    "ADJECTIVES_FILE",
    "LICENSE_FILE",
]

NOUNS_FILE = "wordnet_nouns.txt"
ADJECTIVES_FILE = "wordnet_adjectives.txt"
LICENSE_FILE = "WORDNET_LICENSE.txt"

PathLike = Union[str, "os.PathLike[str]"]

_WHITESPACE = re.compile(r"\s+")
_MAX_REPORTED = 5


def normalize_label(text: str) -> str:
    """Key used to compare words with class names: lower case, ``_`` -> space,
    whitespace collapsed and stripped."""
    return _WHITESPACE.sub(" ", text.replace("_", " ")).strip().lower()


# --------------------------------------------------------------------------- files


def _read_text(path: PathLike, what: str) -> str:
    path_str = os.fspath(path)
    if not os.path.exists(path_str):
        raise ValueError(f"{what} file not found: {path_str!r}. Check the path.")
    if not os.path.isfile(path_str):
        raise ValueError(f"{what} path is not a file: {path_str!r}.")
    try:
        with open(path_str, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise ValueError(
            f"{what} file {path_str!r} is not valid UTF-8 ({exc}); re-save it as UTF-8."
        ) from exc


def _parse_lines(text: str, source: str, key=None) -> List[str]:
    """One entry per line; strip; skip blank lines and ``#`` comment lines.

    Raises ValueError for an empty result or for duplicates (compared with
    ``key``, exact match when ``key`` is None), naming the first duplicates and
    their line numbers.
    """
    entries: List[str] = []
    first_line = {}
    duplicates = []
    for line_no, raw in enumerate(text.splitlines(), 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        k = entry if key is None else key(entry)
        if k in first_line:
            duplicates.append((entry, line_no, first_line[k]))
            continue
        first_line[k] = line_no
        entries.append(entry)
    if duplicates:
        shown = "; ".join(
            f"{entry!r} on line {line} (first seen on line {first})"
            for entry, line, first in duplicates[:_MAX_REPORTED]
        )
        more = (
            f" and {len(duplicates) - _MAX_REPORTED} more"
            if len(duplicates) > _MAX_REPORTED
            else ""
        )
        rule = "" if key is None else " (compared case-insensitively, '_' == ' ')"
        raise ValueError(
            f"{source} has {len(duplicates)} duplicate entr"
            f"{'y' if len(duplicates) == 1 else 'ies'}{rule}: {shown}{more}. "
            "Remove the repeated lines so that every entry appears once."
        )
    if not entries:
        raise ValueError(
            f"{source} is empty: it has no entries (blank lines and lines "
            "starting with '#' are ignored). Put one entry per line."
        )
    return entries


def read_word_list(path: PathLike) -> List[str]:
    """Read a user word list: one word (or phrase) per line, UTF-8.

    Whitespace around each line is stripped; blank lines and lines starting
    with ``#`` are skipped. Raises ValueError when the file is missing, has no
    words, or repeats a word (exact, case-sensitive comparison, since WordNet
    itself has case variants such as ``Turkey``/``turkey``).
    """
    text = _read_text(path, "word list")
    return _parse_lines(text, f"word list file {os.fspath(path)!r}")


@lru_cache(maxsize=1)
def _load_wordnet() -> Tuple[Tuple[str, ...], Tuple[str, ...]]:
    here = os.path.dirname(os.path.abspath(__file__))

    def load(name: str) -> Tuple[str, ...]:
        path = os.path.join(here, name)
        if not os.path.isfile(path):
            raise FileNotFoundError(
                f"shipped corpus file {path} is missing; reinstall openood-tanl or "
                "regenerate it with `python scripts/build_wordnet_corpus.py`."
            )
        with open(path, encoding="utf-8") as handle:
            return tuple(line for line in handle.read().split("\n") if line)

    return load(NOUNS_FILE), load(ADJECTIVES_FILE)


def wordnet_words() -> Tuple[List[str], List[str]]:
    """The shipped WordNet 3.0 (nouns, adjectives), before any de-duplication
    against each other or against ID class names (fresh lists on every call)."""
    nouns, adjectives = _load_wordnet()
    return list(nouns), list(adjectives)


# -------------------------------------------------------------------------- corpus


@dataclass(frozen=True)
class Corpus:
    """Candidate negative labels: ``words[i]`` is a ``kinds[i]`` word
    (``"noun"`` or ``"adjective"``); nouns come first."""

    words: List[str]
    kinds: List[str]
    num_input_nouns: int
    num_input_adjectives: int
    num_dropped_adjectives: int  # adjectives that are also nouns
    num_dropped_id_names: int  # nouns + adjectives equal to an ID class name

    @property
    def num_nouns(self) -> int:
        return sum(1 for kind in self.kinds if kind == "noun")

    @property
    def num_adjectives(self) -> int:
        return sum(1 for kind in self.kinds if kind == "adjective")

    def __len__(self) -> int:
        return len(self.words)

    def report(self) -> str:
        """One-line human summary of the counts."""
        return (
            f"corpus: {self.num_input_nouns} nouns + {self.num_input_adjectives} adjectives; "
            f"dropped {self.num_dropped_adjectives} adjectives that are also nouns and "
            f"{self.num_dropped_id_names} words equal to ID class names; "
            f"kept {self.num_nouns} nouns + {self.num_adjectives} adjectives = "
            f"{len(self.words)} words"
        )


def _check_words(words: Sequence[str], what: str) -> List[str]:
    if isinstance(words, str):
        raise TypeError(f"{what} must be a list of strings, not a single string")
    out = list(words)
    seen = {}
    duplicates = []
    for i, word in enumerate(out):
        if not isinstance(word, str):
            raise TypeError(f"{what}[{i}] is {type(word).__name__}, expected str")
        if not word.strip():
            raise ValueError(f"{what}[{i}] is empty; remove empty entries from {what}.")
        if word in seen:
            duplicates.append(f"{word!r} at {i} (first at {seen[word]})")
        else:
            seen[word] = i
    if duplicates:
        raise ValueError(
            f"{what} has {len(duplicates)} duplicate word(s): "
            + "; ".join(duplicates[:_MAX_REPORTED])
            + ". Remove the repeated entries."
        )
    return out


def build_corpus(
    id_classes: Iterable[str], nouns: Sequence[str], adjectives: Sequence[str]
) -> Corpus:
    """Combine nouns and adjectives into the negative-label candidates for
    ``id_classes`` (see the module docstring for the rules)."""
    nouns = _check_words(nouns, "nouns")
    adjectives = _check_words(adjectives, "adjectives")
    if isinstance(id_classes, str):
        raise TypeError("id_classes must be a list of class names, not a single string")
    id_keys = {normalize_label(name) for name in id_classes}
    noun_keys = {normalize_label(word) for word in nouns}

    words: List[str] = []
    kinds: List[str] = []
    dropped_id = 0
    for word in nouns:
        if normalize_label(word) in id_keys:
            dropped_id += 1
            continue
        words.append(word)
        kinds.append("noun")
    dropped_adj = 0
    for word in adjectives:
        if normalize_label(word) in noun_keys:
            dropped_adj += 1
            continue
        if normalize_label(word) in id_keys:
            dropped_id += 1
            continue
        words.append(word)
        kinds.append("adjective")
    return Corpus(
        words=words,
        kinds=kinds,
        num_input_nouns=len(nouns),
        num_input_adjectives=len(adjectives),
        num_dropped_adjectives=dropped_adj,
        num_dropped_id_names=dropped_id,
    )
