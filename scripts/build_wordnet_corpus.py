#!/usr/bin/env python
"""Build the WordNet 3.0 negative-label corpus shipped in ``openood_tanl/corpus``.

Reads the WordNet 3.0 database files ``data.noun`` and ``data.adj`` (Debian /
Ubuntu: ``apt-get install wordnet-base``, which puts them in
``/usr/share/wordnet``) and writes:

* ``wordnet_nouns.txt``       -- 58,690 words
* ``wordnet_adjectives.txt``  -- 21,042 words
* ``WORDNET_LICENSE.txt``     -- the WordNet 3.0 licence notice, which the
  licence requires to accompany every copy of (a part of) the database.

Extraction rule (reproduces the counts used in the negative-label literature,
e.g. NegLabel: 70k nouns/adjectives from WordNet -> 58,690 nouns and 21,042
adjectives):

1. Take every word of every synset line of ``data.noun`` / ``data.adj``
   (``data.adj`` includes head adjectives ``a`` and satellites ``s``).
   Lemmas are taken as stored in the data files, so their case is kept
   (``Paris``, ``French``, ``iPod``).
2. Strip the syntactic marker of adjectives: ``(a)``, ``(p)`` or ``(ip)``
   at the end of a word (e.g. ``great(p)`` -> ``great``).
3. Keep only single-word lemmas: drop every lemma containing ``_`` (WordNet
   writes spaces of collocations as underscores). Hyphens, digits,
   apostrophes and periods are kept (``well-known``, ``3-D``, ``o'clock``,
   ``St.``).
4. De-duplicate case-sensitively (``Turkey`` and ``turkey`` are two words).
5. Sort with Python's default (code point) ordering, write UTF-8, one word per
   line, with a trailing newline.

Rerun with::

    python scripts/build_wordnet_corpus.py [--wordnet-dir /usr/share/wordnet] \
        [--out openood_tanl/corpus]
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from typing import Iterable, List, Sequence, Set

DEFAULT_WORDNET_DIR = "/usr/share/wordnet"
DEFAULT_OUT = os.path.join(
    os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "openood_tanl", "corpus"
)

NOUNS_FILE = "wordnet_nouns.txt"
ADJECTIVES_FILE = "wordnet_adjectives.txt"
LICENSE_FILE = "WORDNET_LICENSE.txt"

# Adjective position markers that WordNet appends to a lemma in data.adj.
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")
# Licence header lines of the data.* files: two spaces, a line number, the text.
_HEADER_LINE = re.compile(r"^  \d+ ?(.*?)\s*$")


class WordNetMissing(RuntimeError):
    pass


def synset_lemmas(path: str) -> Iterable[str]:
    """Yield every lemma of every synset line of a WordNet ``data.*`` file."""
    with open(path, encoding="utf-8") as handle:
        for line_no, line in enumerate(handle, 1):
            if line.startswith("  "):  # licence header
                continue
            fields = line.split()
            if not fields:
                continue
            # synset_offset lex_filenum ss_type w_cnt word lex_id [word lex_id...] ...
            try:
                word_count = int(fields[3], 16)
            except (IndexError, ValueError) as exc:
                raise ValueError(f"{path}:{line_no}: not a WordNet data line") from exc
            for i in range(word_count):
                yield fields[4 + 2 * i]


def single_word_lemmas(path: str, strip_adjective_markers: bool = False) -> List[str]:
    """Apply the extraction rule (see module docstring) to one data file."""
    words: Set[str] = set()
    for lemma in synset_lemmas(path):
        if strip_adjective_markers:
            lemma = _ADJ_MARKER.sub("", lemma)
        if "_" in lemma:
            continue
        words.add(lemma)
    return sorted(words)


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
        raise ValueError(
            f"could not find the WordNet 3.0 licence notice at the top of {data_path}; "
            "is this the WordNet 3.0 database?"
        )
    return text


def _write_lines(path: str, words: Sequence[str]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\n".join(words) + "\n")


def build(wordnet_dir: str, out_dir: str) -> dict:
    noun_path = os.path.join(wordnet_dir, "data.noun")
    adj_path = os.path.join(wordnet_dir, "data.adj")
    missing = [p for p in (noun_path, adj_path) if not os.path.isfile(p)]
    if missing:
        raise WordNetMissing(
            "WordNet 3.0 database files not found: "
            + ", ".join(missing)
            + ".\nInstall them with `apt-get install wordnet-base` (Debian/Ubuntu; "
            "files go to /usr/share/wordnet) or pass --wordnet-dir pointing at a "
            "directory that contains data.noun and data.adj."
        )

    nouns = single_word_lemmas(noun_path)
    adjectives = single_word_lemmas(adj_path, strip_adjective_markers=True)
    notice = license_notice(noun_path)

    os.makedirs(out_dir, exist_ok=True)
    _write_lines(os.path.join(out_dir, NOUNS_FILE), nouns)
    _write_lines(os.path.join(out_dir, ADJECTIVES_FILE), adjectives)
    with open(os.path.join(out_dir, LICENSE_FILE), "w", encoding="utf-8", newline="\n") as fh:
        fh.write(
            "The files wordnet_nouns.txt and wordnet_adjectives.txt in this directory\n"
            "are word lists extracted from the WordNet 3.0 database (data.noun and\n"
            "data.adj) by scripts/build_wordnet_corpus.py. WordNet is distributed\n"
            "under the following licence, whose notice must accompany all copies:\n"
            "\n"
            "WordNet Release 3.0\n"
            "\n" + notice + "\n"
        )
    return {"nouns": len(nouns), "adjectives": len(adjectives)}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--wordnet-dir",
        default=DEFAULT_WORDNET_DIR,
        help="directory with the WordNet 3.0 data.noun / data.adj files "
        f"(default: {DEFAULT_WORDNET_DIR})",
    )
    parser.add_argument(
        "--out", default=DEFAULT_OUT, help="output directory (default: openood_tanl/corpus)"
    )
    args = parser.parse_args(argv)
    try:
        counts = build(args.wordnet_dir, args.out)
    except WordNetMissing as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(
        f"wrote {counts['nouns']} nouns and {counts['adjectives']} adjectives to {args.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
