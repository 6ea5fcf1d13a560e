#!/usr/bin/env python
"""Build the WordNet 3.0 word lists shipped in ``openood_tanl/corpus``.

Reads the WordNet 3.0 database files ``data.noun`` and ``data.adj`` (Debian / Ubuntu:
``apt-get install wordnet-base``, which puts them in ``/usr/share/wordnet``) and writes two corpora plus the
licence notice:

``wordnet`` (the default corpus; the rule that NegLabel's word lists follow):

* ``wordnet_nouns.txt``       -- 58,514 words
* ``wordnet_adjectives.txt``  -- 14,006 words

  1. One word per synset: its **first lemma**, lower-cased, ``_`` written as a space (``hydraulic pump``),
     adjective markers ``(a)``, ``(p)``, ``(ip)`` stripped.
  2. Nouns from every noun lexicographer file except ``noun.animal`` (05) and ``noun.food`` (13); adjectives
     from ``adj.all`` (00), ``adj.pert`` (01) and ``adj.ppl`` (44), i.e. all of ``data.adj``.
  3. De-duplicated within each list, sorted (code point order).

``wordnet-all-lemmas`` (the corpus of openood-tanl 0.1):

* ``wordnet_all_lemmas_nouns.txt``       -- 58,690 words
* ``wordnet_all_lemmas_adjectives.txt``  -- 21,042 words

  Every lemma of every synset of ``data.noun`` / ``data.adj`` (animals and food included), adjective markers
  stripped, lemmas with ``_`` (multi-word) dropped, case kept (``Turkey`` and ``turkey`` are two words),
  de-duplicated, sorted.

``WORDNET_LICENSE.txt`` is the WordNet 3.0 licence notice, which must accompany every copy of (a part of) the
database. Files are UTF-8, one word per line, with a trailing newline.

Rerun with::

    python scripts/build_wordnet_corpus.py [--wordnet-dir /usr/share/wordnet] [--out openood_tanl/corpus]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Iterator, NamedTuple, Sequence

DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openood_tanl", "corpus")

#: corpus name -> (nouns file, adjectives file)
OUTPUT_FILES = {
    "wordnet": ("wordnet_nouns.txt", "wordnet_adjectives.txt"),
    "wordnet-all-lemmas": ("wordnet_all_lemmas_nouns.txt", "wordnet_all_lemmas_adjectives.txt"),
}
LICENSE_FILE = "WORDNET_LICENSE.txt"

#: Lexicographer files (``lex_filenum`` of a data line) left out of the ``wordnet`` nouns.
EXCLUDED_NOUN_FILES = {5: "noun.animal", 13: "noun.food"}

# Adjective position markers that WordNet appends to a lemma in data.adj.
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")
# Licence header lines of the data.* files: two spaces, a line number, the text.
_HEADER_LINE = re.compile(r"^  \d+ ?(.*?)\s*$")


class WordNetMissing(RuntimeError):
    pass


class Synset(NamedTuple):
    lex_filenum: int
    lemmas: tuple[str, ...]  # as stored, adjective markers stripped


def synsets(path: str) -> Iterator[Synset]:
    """Every synset line of a WordNet ``data.*`` file."""
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if line.startswith("  "):  # licence header
                continue
            fields = line.split()
            if not fields:
                continue
            # synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] ...
            try:
                lex_filenum = int(fields[1])
                word_count = int(fields[3], 16)
            except (IndexError, ValueError) as exc:
                raise ValueError(f"{path}:{line_no}: not a WordNet data line") from exc
            lemmas = tuple(_ADJ_MARKER.sub("", fields[4 + 2 * i]) for i in range(word_count))
            yield Synset(lex_filenum, lemmas)


def first_lemmas(path: str, excluded_files: Sequence[int] = ()) -> list[str]:
    """The ``wordnet`` rule: first lemma of each synset, lower case, ``_`` -> space; unique, sorted."""
    words = {synset.lemmas[0].replace("_", " ").lower()
             for synset in synsets(path) if synset.lex_filenum not in excluded_files}
    return sorted(words)


def single_word_lemmas(path: str) -> list[str]:
    """The ``wordnet-all-lemmas`` rule: every lemma without ``_``, case kept; unique, sorted."""
    return sorted({lemma for synset in synsets(path) for lemma in synset.lemmas if "_" not in lemma})


def license_notice(data_path: str) -> str:
    """The licence notice that heads every WordNet ``data.*`` file."""
    lines = []
    with open(data_path, encoding="utf-8") as handle:
        for line in handle:
            if not line.startswith("  "):
                break
            match = _HEADER_LINE.match(line)
            if match is None:
                break
            lines.append(match.group(1))
    text = "\n".join(lines).strip()
    if "WordNet 3.0 Copyright 2006 by Princeton University" not in text:
        raise ValueError(f"could not find the WordNet 3.0 licence notice at the top of {data_path}; "
                         "is this the WordNet 3.0 database?")
    return text


def _write_lines(path: str, words: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\n".join(words) + "\n")


def build(wordnet_dir: str, out_dir: str) -> dict[str, dict[str, int]]:
    """Write every corpus of ``OUTPUT_FILES`` and the licence; returns {corpus: {"nouns": n, "adjectives": n}}."""
    noun_path = os.path.join(wordnet_dir, "data.noun")
    adj_path = os.path.join(wordnet_dir, "data.adj")
    missing = [p for p in (noun_path, adj_path) if not os.path.isfile(p)]
    if missing:
        raise WordNetMissing(
            "WordNet 3.0 database files not found: " + ", ".join(missing)
            + ".\nInstall them with `apt-get install wordnet-base` (Debian/Ubuntu; files go to /usr/share/wordnet) "
            "or pass --wordnet-dir pointing at a directory that contains data.noun and data.adj.")
    corpora = {
        "wordnet": (first_lemmas(noun_path, tuple(EXCLUDED_NOUN_FILES)), first_lemmas(adj_path)),
        "wordnet-all-lemmas": (single_word_lemmas(noun_path), single_word_lemmas(adj_path)),
    }
    notice = license_notice(noun_path)
    os.makedirs(out_dir, exist_ok=True)
    counts = {}
    for name, (nouns, adjectives) in corpora.items():
        nouns_file, adjectives_file = OUTPUT_FILES[name]
        _write_lines(os.path.join(out_dir, nouns_file), nouns)
        _write_lines(os.path.join(out_dir, adjectives_file), adjectives)
        counts[name] = {"nouns": len(nouns), "adjectives": len(adjectives)}
    listed = "".join(f"  {f}\n" for files in OUTPUT_FILES.values() for f in files)
    with open(os.path.join(out_dir, LICENSE_FILE), "w", encoding="utf-8", newline="\n") as handle:
        handle.write(f"The word lists\n{listed}"
                     "in this directory are extracted from the WordNet 3.0 database (data.noun and data.adj) by\n"
                     "scripts/build_wordnet_corpus.py. WordNet is distributed under the following licence, whose\n"
                     "notice must accompany all copies:\n\nWordNet Release 3.0\n\n" + notice + "\n")
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wordnet-dir", default=DEFAULT_WORDNET_DIR,
                        help="directory with the WordNet 3.0 data.noun / data.adj files (default: %(default)s)")
    parser.add_argument("--out", default=DEFAULT_OUT, help="output directory (default: openood_tanl/corpus)")
    args = parser.parse_args(argv)
    try:
        counts = build(args.wordnet_dir, args.out)
    except WordNetMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for name, count in counts.items():
        print(f"{name}: wrote {count['nouns']} nouns and {count['adjectives']} adjectives to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
