"""Negative-label corpora: the candidate words that TANL, NegLabel and AdaNeg score images against.

``load_corpus(source, id_classes)`` is the one way to build a corpus; ``source`` is

* ``"wordnet"`` (default): WordNet 3.0, one word per synset (its first lemma, lower case, multi-word phrases with
  spaces), nouns without ``noun.animal`` and ``noun.food``, adjectives of ``adj.all``, ``adj.pert``, ``adj.ppl``:
  the rule NegLabel's word lists follow (``scripts/build_wordnet_corpus.py``);
* ``"wordnet-all-lemmas"``: every single-word lemma of WordNet 3.0, case kept;
* a folder in NegLabel's layout (``txtfiles/`` of github.com/tmlr-group/NegLabel): every file whose name starts
  with ``adj`` and ends with ``txt`` holds adjectives, every ``noun*txt`` file nouns, one word a line; read as the
  official code reads it, so NegLabel's own folder gives the official words exactly;
* a single word-list file: nouns, one a line (blank lines and ``#`` comments skipped; a repeat is an error).

De-duplication (``rules``):

* ``"official"`` (default), as ``generate_cossim_idname_wordnet_dedup`` of the official code: each list is made
  unique, words equal to an ID class name are dropped, then adjectives equal to a (kept) noun; every comparison is
  exact and case-sensitive. Files are read as ``text.split('\\n')[:-1]``: a last line without a newline is dropped
  and blank or space-padded lines are kept as words (each case warns).
* ``"clean"``: comparisons ignore case, ``_`` vs space and repeated whitespace (CLIP's tokenizer lower-cases, so
  ``Cat`` and ``cat`` are one text embedding); lines are stripped, blank and ``#`` lines skipped, the last line
  kept.
* ``"csp"`` (a NegLabel-layout folder only), as CSP's ``CLIPScalableClassifier`` reads its word lists: the files
  whose name before the first ``.`` is ``noun`` or ``adj``, except ``CSP_EXCLUDED_FILES`` (``noun.person.txt``,
  ``noun.quantity.txt``, ``noun.group.txt``, ``adj.pert.txt``; one that is absent is no error, where the official
  ``list.remove`` raises); each file's ``readlines()`` (the last line kept with or without a newline), ``_`` ->
  space, ``strip()``; ONE exact de-duplication across all files, nouns and adjectives together, in reading order
  (a word of both kinds keeps the kind of the file read first); ID class names are kept. The official code reads
  ``os.listdir`` order, which the file system decides; we read files by sorted name, so every ``adj*`` file comes
  before every ``noun*`` file and a word of both kinds is an adjective. An empty line is kept as the word ``''``
  (the first one; it warns), as the official code keeps it.

A corpus holds nouns first, then adjectives, each in reading order (files by name, lines in order).
"""
from __future__ import annotations

import hashlib
import os
import re
import warnings
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import Callable, Iterable, Sequence, Union

from ..core.errors import MissingFileError, UserError, UserTypeError

__all__ = ["Corpus", "CorpusWarning", "load_corpus", "build_corpus", "read_word_list", "read_neglabel_folder",
           "wordnet_words", "normalize_label", "BUILTIN_CORPORA", "CORPUS_RULES", "CSP_EXCLUDED_FILES",
           "LICENSE_FILE"]

PathLike = Union[str, "os.PathLike[str]"]

#: Built-in corpus name -> (nouns file, adjectives file), shipped beside this module.
BUILTIN_CORPORA = {
    "wordnet": ("wordnet_nouns.txt", "wordnet_adjectives.txt"),
    "wordnet-all-lemmas": ("wordnet_all_lemmas_nouns.txt", "wordnet_all_lemmas_adjectives.txt"),
}
CORPUS_RULES = ("official", "clean", "csp")
#: The lexicographer files CSP's official config leaves out (``txt_exclude`` of ``custom_config/clip-ViT-B16.py``).
CSP_EXCLUDED_FILES = ("noun.person.txt", "noun.quantity.txt", "noun.group.txt", "adj.pert.txt")
#: What a file's name before its first ``.`` must be for CSP to read it, and the kind of its words.
CSP_FILE_KINDS = {"adj": "adjective", "noun": "noun"}
LICENSE_FILE = "WORDNET_LICENSE.txt"

_HERE = Path(__file__).resolve().parent
_WHITESPACE = re.compile(r"\s+")
_SHOWN = 5


class CorpusWarning(UserWarning):
    """A word list was read with one of the official code's quirks in effect (see ``load_corpus``)."""


def normalize_label(text: str) -> str:
    """Key that compares words and class names as CLIP sees them: lower case, ``_`` -> space, whitespace collapsed."""
    return _WHITESPACE.sub(" ", text.replace("_", " ")).strip().lower()


def _examples(items: Sequence, render: Callable = repr) -> str:
    shown = ", ".join(render(item) for item in items[:_SHOWN])
    more = len(items) - min(len(items), _SHOWN)
    return shown + (f" and {more} more" if more > 0 else "")


# ---------------------------------------------------------------------------------------------------------- files
def read_text_file(path: PathLike, what: str) -> str:
    """The UTF-8 text of ``path`` (universal newlines), with errors that name the file and the fix."""
    path_str = os.fspath(path)
    if not os.path.exists(path_str):
        raise UserError(f"{what} file not found: {path_str!r}. Check the path.")
    if not os.path.isfile(path_str):
        raise UserError(f"{what} path is not a file: {path_str!r}.")
    try:
        with open(path_str, encoding="utf-8") as handle:
            return handle.read()
    except UnicodeDecodeError as exc:
        raise UserError(f"{what} file {path_str!r} is not valid UTF-8 ({exc}); re-save it as UTF-8.") from exc


def parse_lines(text: str, source: str, key: Callable[[str], str] | None = None,
                allow_repeats: bool = False) -> list[str]:
    """One entry per line, stripped; blank lines and ``#`` comment lines skipped.

    Raises ValueError for an empty result, and for repeats (compared with ``key``; exact when None) unless
    ``allow_repeats``, naming the first repeats and their line numbers.
    """
    entries: list[str] = []
    first_line: dict[str, int] = {}
    repeats = []
    for line_no, raw in enumerate(text.splitlines(), 1):
        entry = raw.strip()
        if not entry or entry.startswith("#"):
            continue
        k = entry if key is None else key(entry)
        if k in first_line and not allow_repeats:
            repeats.append(f"{entry!r} on line {line_no} (first seen on line {first_line[k]})")
            continue
        first_line.setdefault(k, line_no)
        entries.append(entry)
    if repeats:
        rule = "" if key is None else " (compared case-insensitively, '_' == ' ')"
        raise UserError(f"{source} has {len(repeats)} duplicate entr{'y' if len(repeats) == 1 else 'ies'}{rule}: "
                        f"{_examples(repeats, str)}. Remove the repeated lines so that every entry "
                        "appears once.")
    if not entries:
        raise UserError(f"{source} is empty: it has no entries (blank lines and lines starting with '#' are "
                        "ignored). Put one entry per line.")
    return entries


def read_word_list(path: PathLike) -> list[str]:
    """A word-list file: one word (or phrase) a line, UTF-8; stripped, blank and ``#`` lines skipped.

    Raises ValueError when the file is missing, has no words or repeats a word (exact comparison).
    """
    return parse_lines(read_text_file(path, "word list"), f"word list file {os.fspath(path)!r}")


def _official_lines(path: Path) -> list[str]:
    """``text.split('\\n')[:-1]``, as the official code reads a word-list file; warns when the tail is a word."""
    lines = read_text_file(path, "word list").split("\n")
    if lines[-1].strip():
        warnings.warn(f"{path}: the last line {lines[-1]!r} has no newline after it, so it is dropped, as the "
                      "official code drops it. Add a newline at the end of the file to keep it, or use "
                      "rules='clean' (CLI: --corpus-rules clean).", CorpusWarning, stacklevel=4)
    return lines[:-1]


def _csp_kind(name: str, path: Path) -> str | None:
    """'noun', 'adjective' or None: how CSP reads the folder entry ``name`` (excluded lexicographer files: None)."""
    if name in CSP_EXCLUDED_FILES or not path.is_file():
        return None
    return CSP_FILE_KINDS.get(name.split(".")[0])


def _csp_lines(path: Path) -> list[str]:
    """The lines ``readlines()`` gives, without their newline (nothing stripped or de-duplicated here)."""
    lines = read_text_file(path, "word list").split("\n")
    if lines[-1] == "":
        lines.pop()  # readlines() gives no line after a final newline
    return lines


def _neglabel_kind(name: str, path: Path) -> str | None:
    """'noun', 'adjective' or None: ``adj*txt`` and ``noun*txt`` files, as the official code reads them."""
    if not (name.endswith("txt") and path.is_file()):
        return None
    return "adjective" if name.startswith("adj") else "noun" if name.startswith("noun") else None


def _read_word_lists(folder: Path, kind_of, read, expected: str, read_only: str) -> tuple[list[str], list[str]]:
    """(nouns, adjectives) of the files of ``folder`` in name order that ``kind_of(name, path)`` classes, each read by
    ``read(path)``; no list at all is a UserError naming ``expected``, other files a ``CorpusWarning`` (hidden files
    and CSP's excluded ones silently)."""
    nouns: list[str] = []
    adjectives: list[str] = []
    skipped = []
    for name in sorted(os.listdir(folder)):
        path = folder / name
        kind = kind_of(name, path)
        if kind is None:
            if not name.startswith(".") and name not in CSP_EXCLUDED_FILES:
                skipped.append(name)
            continue
        (adjectives if kind == "adjective" else nouns).extend(read(path))
    if not nouns and not adjectives:
        raise UserError(f"corpus folder {str(folder)!r} holds no word list{expected}, one word a line, as "
                        "NegLabel's txtfiles/ folder" + (f"; found {_examples(skipped)}" if skipped else ""))
    if skipped:
        warnings.warn(f"corpus folder {folder}: skipped {_examples(skipped)}, which are not word lists ({read_only})",
                      CorpusWarning, stacklevel=4)
    return nouns, adjectives


def read_neglabel_folder(folder: PathLike, rules: str = "official") -> tuple[list[str], list[str]]:
    """(nouns, adjectives) of a folder in NegLabel's layout: ``adj*txt`` and ``noun*txt`` files, one word a line
    (``rules="csp"``: the files CSP reads, see the module docstring).

    Files are read in name order, each with the ``rules``' reading (see the module docstring); nothing is
    de-duplicated here. Other files are skipped with a ``CorpusWarning`` naming them (hidden files silently).
    """
    _check_rules(rules)
    folder = Path(folder)
    if rules == "csp":
        return _read_word_lists(folder, _csp_kind, _csp_lines,
                                " CSP reads: expected files named adj.*.txt (adjectives) and noun.*.txt (nouns)",
                                "CSP reads only the files whose name before the first '.' is 'adj' or 'noun'")
    if rules == "official":
        read = _official_lines
    else:
        def read(path: Path) -> list[str]:
            return parse_lines(read_text_file(path, "word list"), f"word list file {str(path)!r}", allow_repeats=True)
    return _read_word_lists(folder, _neglabel_kind, read,
                            ": expected files named adj*.txt (adjectives) and noun*.txt (nouns)",
                            "only adj*txt and noun*txt files are read, as in the official code")


@lru_cache(maxsize=None)
def _builtin_lists(name: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    def load(file_name: str) -> tuple[str, ...]:
        path = _HERE / file_name
        if not path.is_file():
            raise MissingFileError(f"shipped corpus file {path} is missing; reinstall openood-tanl or regenerate it "
                                   "with `python scripts/build_wordnet_corpus.py`.")
        return tuple(line for line in path.read_text(encoding="utf-8").split("\n") if line)

    nouns_file, adjectives_file = BUILTIN_CORPORA[name]
    return load(nouns_file), load(adjectives_file)


def wordnet_words(name: str = "wordnet") -> tuple[list[str], list[str]]:
    """A built-in corpus's (nouns, adjectives) before any de-duplication (fresh lists on every call)."""
    if name not in BUILTIN_CORPORA:
        raise UserError(f"unknown built-in corpus {name!r}; choose one of {', '.join(BUILTIN_CORPORA)}")
    nouns, adjectives = _builtin_lists(name)
    return list(nouns), list(adjectives)


# --------------------------------------------------------------------------------------------------------- corpus
@dataclass(frozen=True)
class Corpus:
    """Candidate negative labels: ``words[i]`` is a ``kinds[i]`` word (``"noun"`` or ``"adjective"``), nouns first.

    ``source`` and ``rules`` say how it was built; the counts say what was merged and dropped on the way.
    """

    words: list[str]
    kinds: list[str]
    source: str = "lists"
    rules: str = "official"
    num_input_nouns: int = 0  # distinct nouns read (under the rules' comparison)
    num_input_adjectives: int = 0  # distinct adjectives read
    num_repeats: int = 0  # repeated entries merged within the noun and adjective lists
    num_dropped_id_names: int = 0  # nouns + adjectives equal to an ID class name
    num_dropped_adjectives: int = 0  # adjectives that are also (kept) nouns
    input_nouns: list[str] = field(default_factory=list, repr=False)  # distinct nouns read, before any drop
    input_adjectives: list[str] = field(default_factory=list, repr=False)  # distinct adjectives read

    @property
    def num_nouns(self) -> int:
        return self.kinds.count("noun")

    @property
    def num_adjectives(self) -> int:
        return self.kinds.count("adjective")

    def __len__(self) -> int:
        return len(self.words)

    @cached_property
    def sha256(self) -> str:
        """SHA-256 of the ordered ``kind<TAB>word`` lines: what identifies the text bank built from it."""
        text = "".join(f"{kind}\t{word}\n" for kind, word in zip(self.kinds, self.words))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def report(self) -> str:
        """One-line summary of the counts."""
        repeats = f" ({self.num_repeats} repeated entries merged)" if self.num_repeats else ""
        return (f"corpus {self.source} ({self.rules} rules): {self.num_input_nouns} nouns + "
                f"{self.num_input_adjectives} adjectives{repeats}; dropped {self.num_dropped_id_names} words equal "
                f"to ID class names and {self.num_dropped_adjectives} adjectives that are also nouns; kept "
                f"{self.num_nouns} nouns + {self.num_adjectives} adjectives = {len(self.words)} words")

    def provenance(self) -> dict:
        """What a result file records about the corpus."""
        return {"source": self.source, "rules": self.rules, "words": len(self.words), "nouns": self.num_nouns,
                "adjectives": self.num_adjectives, "sha256": self.sha256}


def _check_rules(rules: str) -> None:
    if rules not in CORPUS_RULES:
        raise UserError(f"corpus rules must be one of {', '.join(CORPUS_RULES)}, got {rules!r}")


def _check_words(words: Sequence[str], what: str, rules: str) -> list[str]:
    if isinstance(words, str):
        raise UserTypeError(f"{what} must be a list of strings, not a single string")
    out = list(words)
    for i, word in enumerate(out):
        if not isinstance(word, str):
            raise UserTypeError(f"{what}[{i}] is {type(word).__name__}, expected str")
    odd = [word for word in out if not word.strip() or word != word.strip()]
    if odd and rules == "clean":
        raise UserError(f"{what} has {len(odd)} empty or space-padded entries ({_examples(odd)}); remove them")
    if odd:
        warnings.warn(f"{what}: {len(odd)} entries are empty or padded with spaces ({_examples(odd)}); they are kept "
                      "as words, as the official code keeps them (an empty word is encoded as 'The nice .'). Fix "
                      "the word list, or use rules='clean' (CLI: --corpus-rules clean) to strip and skip them.",
                      CorpusWarning, stacklevel=4)
    return out


def _unique(words: Iterable[str], key: Callable[[str], str]) -> list[str]:
    seen: set[str] = set()
    out = []
    for word in words:
        k = key(word)
        if k not in seen:
            seen.add(k)
            out.append(word)
    return out


def _csp_corpus(nouns: Sequence[str], adjectives: Sequence[str], source: str) -> Corpus:
    """CSP's one exact de-duplication, adjectives read first (sorted file names: ``adj*`` before ``noun*``)."""
    kind_of: dict[str, str] = {}
    for kind, words in (("adjective", adjectives), ("noun", nouns)):
        for raw in words:
            kind_of.setdefault(raw.replace("_", " ").strip(), kind)
    if "" in kind_of:
        warnings.warn("the word lists have a blank line; CSP keeps it as the word '' (its prompts are e.g. 'the "
                      "nice '), and so do we under rules='csp'. Remove blank lines from the word lists to drop it.",
                      CorpusWarning, stacklevel=4)
    kept = {kind: [word for word, k in kind_of.items() if k == kind] for kind in ("noun", "adjective")}
    return Corpus(words=kept["noun"] + kept["adjective"],
                  kinds=["noun"] * len(kept["noun"]) + ["adjective"] * len(kept["adjective"]),
                  source=source, rules="csp", num_input_nouns=len(kept["noun"]),
                  num_input_adjectives=len(kept["adjective"]), num_repeats=len(nouns) + len(adjectives) - len(kind_of),
                  input_nouns=kept["noun"], input_adjectives=kept["adjective"])


def build_corpus(id_classes: Iterable[str], nouns: Sequence[str], adjectives: Sequence[str], *,
                 rules: str = "official", source: str = "lists") -> Corpus:
    """The negative-label candidates for ``id_classes`` from (nouns, adjectives), with ``rules``' de-duplication
    (``"csp"``: the words as read, adjectives before nouns, and the ID class names kept)."""
    _check_rules(rules)
    if isinstance(id_classes, str):
        raise UserTypeError("id_classes must be a list of class names, not a single string")
    if rules == "csp":
        for what, words in (("nouns", nouns), ("adjectives", adjectives)):
            if isinstance(words, str) or not all(isinstance(word, str) for word in words):
                raise UserTypeError(f"{what} must be a list of strings")
        return _csp_corpus(list(nouns), list(adjectives), source)
    nouns = _check_words(nouns, "nouns", rules)
    adjectives = _check_words(adjectives, "adjectives", rules)
    key: Callable[[str], str] = (lambda word: word) if rules == "official" else normalize_label
    unique_nouns, unique_adjectives = _unique(nouns, key), _unique(adjectives, key)
    id_keys = {key(name) for name in id_classes}
    kept_nouns = [word for word in unique_nouns if key(word) not in id_keys]
    not_id_adjectives = [word for word in unique_adjectives if key(word) not in id_keys]
    noun_keys = {key(word) for word in kept_nouns}
    kept_adjectives = [word for word in not_id_adjectives if key(word) not in noun_keys]
    return Corpus(
        words=kept_nouns + kept_adjectives,
        kinds=["noun"] * len(kept_nouns) + ["adjective"] * len(kept_adjectives),
        source=source, rules=rules,
        num_input_nouns=len(unique_nouns), num_input_adjectives=len(unique_adjectives),
        num_repeats=len(nouns) - len(unique_nouns) + len(adjectives) - len(unique_adjectives),
        num_dropped_id_names=len(unique_nouns) - len(kept_nouns) + len(unique_adjectives) - len(not_id_adjectives),
        num_dropped_adjectives=len(not_id_adjectives) - len(kept_adjectives),
        input_nouns=unique_nouns, input_adjectives=unique_adjectives,
    )


def load_corpus(source: PathLike = "wordnet", id_classes: Iterable[str] = (), *, rules: str = "official") -> Corpus:
    """The negative-label corpus for ``id_classes`` from a built-in name, a NegLabel-layout folder or a word file.

    See the module docstring for the sources and the ``rules`` (``"official"`` or ``"clean"``). A built-in name
    always means the built-in corpus: write ``./wordnet`` for a folder of that name.
    """
    _check_rules(rules)
    text = os.fspath(source)
    if rules == "csp" and (text in BUILTIN_CORPORA or not Path(text).expanduser().is_dir()):
        raise UserError(f"rules='csp' reads a folder of WordNet lexicographer files (CSP leaves some out by name), "
                        f"but corpus {text!r} is not a folder: pass NegLabel's txtfiles/ folder (CLI: --corpus "
                        "NegLabel/txtfiles)")
    if isinstance(source, str) and text in BUILTIN_CORPORA:
        nouns, adjectives = wordnet_words(text)
        return build_corpus(id_classes, nouns, adjectives, rules=rules, source=text)
    path = Path(text).expanduser()
    if path.is_dir():
        nouns, adjectives = read_neglabel_folder(path, rules)
        return build_corpus(id_classes, nouns, adjectives, rules=rules, source=str(path.resolve()))
    if path.is_file():
        return build_corpus(id_classes, read_word_list(path), [], rules=rules, source=str(path.resolve()))
    raise MissingFileError(f"corpus {text!r} is neither a built-in corpus ({', '.join(BUILTIN_CORPORA)}), a folder "
                           "of adj*.txt / noun*.txt word lists (NegLabel's layout) nor a word-list file")
