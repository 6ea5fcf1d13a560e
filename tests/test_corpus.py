import importlib.util
from pathlib import Path

import pytest

from openood_tanl.corpus import (
    ADJECTIVES_FILE,
    LICENSE_FILE,
    NOUNS_FILE,
    Corpus,
    build_corpus,
    normalize_label,
    read_word_list,
    wordnet_words,
)

REPO = Path(__file__).resolve().parents[1]
CORPUS_DIR = REPO / "openood_tanl" / "corpus"
SCRIPT = REPO / "scripts" / "build_wordnet_corpus.py"
WORDNET_DIR = Path("/usr/share/wordnet")

N_NOUNS = 58690
N_ADJECTIVES = 21042
N_ADJECTIVES_THAT_ARE_NOUNS = 3143  # case-insensitive


def _load_script():
    spec = importlib.util.spec_from_file_location("build_wordnet_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------- shipped files


def test_shipped_counts_and_format():
    nouns, adjectives = wordnet_words()
    assert len(nouns) == N_NOUNS
    assert len(adjectives) == N_ADJECTIVES
    for words in (nouns, adjectives):
        assert words == sorted(words)
        assert len(set(words)) == len(words)
        assert all(w and "_" not in w and w == w.strip() and " " not in w for w in words)
    # case is kept as WordNet stores it; adjective markers are stripped
    assert {"Paris", "iPod", "turkey", "Turkey", "3-D"} <= set(nouns)
    assert {"great", "well-known"} <= set(adjectives)
    assert not any(w.endswith(("(a)", "(p)", "(ip)")) for w in adjectives)


@pytest.mark.parametrize("name", [NOUNS_FILE, ADJECTIVES_FILE])
def test_shipped_files_are_utf8_with_trailing_newline(name):
    raw = (CORPUS_DIR / name).read_bytes()
    raw.decode("utf-8")
    assert raw.endswith(b"\n") and not raw.endswith(b"\n\n")
    assert b"\r" not in raw


def test_licence_notice_is_shipped():
    text = (CORPUS_DIR / LICENSE_FILE).read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved." in text
    assert "Permission to use, copy, modify and distribute" in text
    assert 'PROVIDED "AS IS"' in text


def test_wordnet_words_returns_fresh_lists():
    nouns, adjectives = wordnet_words()
    nouns.clear()
    adjectives.append("zzz")
    again_nouns, again_adjectives = wordnet_words()
    assert len(again_nouns) == N_NOUNS and len(again_adjectives) == N_ADJECTIVES


def test_shipped_corpus_without_id_classes():
    nouns, adjectives = wordnet_words()
    corpus = build_corpus([], nouns, adjectives)
    assert corpus.num_dropped_adjectives == N_ADJECTIVES_THAT_ARE_NOUNS
    assert corpus.num_dropped_id_names == 0
    assert len(corpus) == N_NOUNS + N_ADJECTIVES - N_ADJECTIVES_THAT_ARE_NOUNS == 76589


@pytest.mark.skipif(
    not (WORDNET_DIR / "data.noun").is_file(),
    reason="WordNet 3.0 database not installed (apt-get install wordnet-base)",
)
def test_script_reproduces_shipped_files(tmp_path):
    script = _load_script()
    counts = script.build(str(WORDNET_DIR), str(tmp_path))
    assert counts == {"nouns": N_NOUNS, "adjectives": N_ADJECTIVES}
    for name in (NOUNS_FILE, ADJECTIVES_FILE, LICENSE_FILE):
        assert (tmp_path / name).read_bytes() == (CORPUS_DIR / name).read_bytes(), name


# ---------------------------------------------------------- script on toy data

_HEADER = (
    "  1 This software and database is being provided to you, the LICENSEE, by  \n"
    "  2   \n"
    "  3 WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.  \n"
)


def test_script_rule_on_toy_database(tmp_path):
    wn = tmp_path / "wn"
    wn.mkdir()
    (wn / "data.noun").write_text(
        _HEADER
        + "00000001 03 n 02 dog 0 domestic_dog 0 000 | a dog\n"
        + "00000002 05 n 03 Turkey 0 turkey 0 well-being 0 000 | x\n"
        + "00000003 05 n 02 dog 1 3-D 0 000 | repeated lemma, digit\n",
        encoding="utf-8",
    )
    (wn / "data.adj").write_text(
        _HEADER
        + "00000010 00 a 02 great(p) 0 big(a) 0 000 | x\n"
        + "00000011 00 s 02 great 0 far_and_away 0 000 | satellite\n",
        encoding="utf-8",
    )
    script = _load_script()
    out = tmp_path / "out"
    assert script.build(str(wn), str(out)) == {"nouns": 5, "adjectives": 2}
    assert (out / NOUNS_FILE).read_text(encoding="utf-8") == "3-D\nTurkey\ndog\nturkey\nwell-being\n"
    assert (out / ADJECTIVES_FILE).read_text(encoding="utf-8") == "big\ngreat\n"
    assert "WordNet 3.0 Copyright 2006" in (out / LICENSE_FILE).read_text(encoding="utf-8")


def test_script_reports_missing_wordnet(tmp_path, capsys):
    script = _load_script()
    rc = script.main(["--wordnet-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "wordnet-base" in err and "data.noun" in err
    assert not (tmp_path / "o").exists()


# ---------------------------------------------------------------- read_word_list


def test_read_word_list_skips_comments_and_blanks(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# my words\n\n  cat \nDog\n   # indented comment\nsea lion\n\n", encoding="utf-8")
    assert read_word_list(path) == ["cat", "Dog", "sea lion"]
    assert read_word_list(str(path)) == ["cat", "Dog", "sea lion"]


def test_read_word_list_is_case_sensitive(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("turkey\nTurkey\n", encoding="utf-8")
    assert read_word_list(path) == ["turkey", "Turkey"]


def test_read_word_list_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        read_word_list(tmp_path / "absent.txt")


def test_read_word_list_empty(tmp_path):
    path = tmp_path / "empty.txt"
    path.write_text("# only a comment\n\n   \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        read_word_list(path)


def test_read_word_list_duplicates_name_lines_and_fix(tmp_path):
    path = tmp_path / "dups.txt"
    path.write_text("cat\ndog\n# c\ncat\nbird\ndog \n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_word_list(path)
    message = str(info.value)
    assert "2 duplicate" in message
    assert "'cat' on line 4 (first seen on line 1)" in message
    assert "'dog' on line 6 (first seen on line 2)" in message
    assert "Remove the repeated lines" in message


def test_read_word_list_rejects_non_utf8(tmp_path):
    path = tmp_path / "latin1.txt"
    path.write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        read_word_list(path)


def test_shipped_file_reads_back_with_read_word_list():
    nouns, _ = wordnet_words()
    assert read_word_list(CORPUS_DIR / NOUNS_FILE) == nouns


# ------------------------------------------------------------------ build_corpus


def test_build_corpus_rules_on_small_lists():
    nouns = ["cat", "Orange", "golden retriever", "sea", "Polish", "dog"]
    adjectives = ["orange", "blue", "polish", "Golden_Retriever", "sea", "happy", "CAT"]
    ids = ["Cat", "Golden_Retriever", "happy "]
    corpus = build_corpus(ids, nouns, adjectives)
    assert isinstance(corpus, Corpus)
    # nouns first, input order kept; "cat" and "golden retriever" are ID names
    assert corpus.words == ["Orange", "sea", "Polish", "dog", "blue"]
    assert corpus.kinds == ["noun"] * 4 + ["adjective"]
    assert corpus.num_input_nouns == 6
    assert corpus.num_input_adjectives == 7
    # orange, polish, sea (case-insensitive noun matches), Golden_Retriever and CAT
    # (also nouns, case-insensitively) -> adjective/noun drops; happy -> ID drop
    assert corpus.num_dropped_adjectives == 5
    assert corpus.num_dropped_id_names == 3
    assert corpus.num_nouns == 4 and corpus.num_adjectives == 1 and len(corpus) == 5


def test_build_corpus_report_is_one_line_with_counts():
    corpus = build_corpus(["cat"], ["cat", "dog"], ["dog", "red"])
    report = corpus.report()
    assert "\n" not in report
    for fragment in ("2 nouns", "2 adjectives", "dropped 1 adjectives", "1 words equal",
                     "kept 1 nouns + 1 adjectives = 2 words"):
        assert fragment in report


def test_build_corpus_id_matching_normalises_underscores_and_spaces():
    assert normalize_label("  Great_White  shark ") == "great white shark"
    corpus = build_corpus(["great white shark"], ["Great_White_Shark", "shark"], [])
    assert corpus.words == ["shark"]


def test_build_corpus_rejects_bad_input():
    with pytest.raises(ValueError, match="duplicate"):
        build_corpus([], ["cat", "dog", "cat"], [])
    with pytest.raises(ValueError, match="empty"):
        build_corpus([], ["cat", " "], [])
    with pytest.raises(TypeError):
        build_corpus("cat", ["dog"], [])
    with pytest.raises(TypeError):
        build_corpus([], "dog", [])
