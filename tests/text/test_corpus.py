"""Negative-label corpora: the shipped WordNet lists, the build script, NegLabel-layout folders, the official and
clean de-duplication rules."""
import importlib.util
import os
import warnings
from pathlib import Path

import pytest

from openood_tanl.corpus import (
    BUILTIN_CORPORA,
    LICENSE_FILE,
    Corpus,
    CorpusWarning,
    build_corpus,
    load_corpus,
    normalize_label,
    read_neglabel_folder,
    read_word_list,
    wordnet_words,
)

REPO = Path(__file__).resolve().parents[2]
CORPUS_DIR = REPO / "openood_tanl" / "corpus"
SCRIPT = REPO / "scripts" / "build_wordnet_corpus.py"
WORDNET_DIR = Path("/usr/share/wordnet")
#: Set to NegLabel's txtfiles/ folder (github.com/tmlr-group/NegLabel) to check the official corpus exactly.
NEGLABEL_TXTFILES = os.environ.get("OPENOOD_TANL_NEGLABEL_TXTFILES")

COUNTS = {"wordnet": (58514, 14006), "wordnet-all-lemmas": (58690, 21042)}


def _load_script():
    spec = importlib.util.spec_from_file_location("build_wordnet_corpus", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


# ----------------------------------------------------------------------------------------------- shipped lists
def test_wordnet_is_first_lemmas_in_lower_case_with_phrases():
    nouns, adjectives = wordnet_words()
    assert (len(nouns), len(adjectives)) == COUNTS["wordnet"]
    for words in (nouns, adjectives):
        assert words == sorted(words) and len(set(words)) == len(words)
        assert all(w and w == w.strip() and w == w.lower() and "_" not in w for w in words)
    assert {"hydraulic pump", "living thing", "physical entity"} <= set(nouns)
    assert sum(" " in w for w in nouns) > 15000  # multi-word phrases are kept, with spaces
    assert {"punishing", "hand-held", "unheard"} <= set(adjectives)
    assert not any(w.endswith(("(a)", "(p)", "(ip)")) for w in adjectives)


def test_wordnet_leaves_out_animals_and_food():
    nouns, _ = wordnet_words()
    all_nouns, _ = wordnet_words("wordnet-all-lemmas")
    # first lemmas of noun.animal / noun.food synsets: absent from 'wordnet', present among all lemmas
    for word in ("aardvark", "lasagna", "tench"):
        assert word not in nouns and word in all_nouns


def test_all_lemmas_corpus_keeps_case_and_single_words():
    nouns, adjectives = wordnet_words("wordnet-all-lemmas")
    assert (len(nouns), len(adjectives)) == COUNTS["wordnet-all-lemmas"]
    assert {"Paris", "iPod", "turkey", "Turkey", "3-D"} <= set(nouns)
    assert all(" " not in w and "_" not in w for w in nouns + adjectives)


@pytest.mark.parametrize("name", [f for files in BUILTIN_CORPORA.values() for f in files])
def test_shipped_files_are_utf8_with_trailing_newline(name):
    raw = (CORPUS_DIR / name).read_bytes()
    raw.decode("utf-8")
    assert raw.endswith(b"\n") and not raw.endswith(b"\n\n") and b"\r" not in raw


def test_licence_notice_is_shipped():
    text = (CORPUS_DIR / LICENSE_FILE).read_text(encoding="utf-8")
    assert "WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved." in text
    assert 'PROVIDED "AS IS"' in text
    for files in BUILTIN_CORPORA.values():
        assert all(name in text for name in files)


def test_wordnet_words_returns_fresh_lists():
    nouns, adjectives = wordnet_words()
    nouns.clear()
    adjectives.append("zzz")
    assert tuple(map(len, wordnet_words())) == COUNTS["wordnet"]
    with pytest.raises(ValueError, match="unknown built-in corpus 'wordnet3'"):
        wordnet_words("wordnet3")


def test_imagenet_corpus_counts_with_the_official_rules():
    pytest.importorskip("open_clip")
    from openood_tanl.classnames import class_names

    corpus = load_corpus("wordnet", class_names("imagenet"))
    assert (corpus.num_nouns, corpus.num_adjectives, len(corpus)) == (58071, 12279, 70350)
    assert (corpus.num_dropped_id_names, corpus.num_dropped_adjectives) == (452, 1718)
    assert corpus.source == "wordnet" and corpus.rules == "official"


@pytest.mark.skipif(NEGLABEL_TXTFILES is None, reason="set OPENOOD_TANL_NEGLABEL_TXTFILES to NegLabel's txtfiles/ "
                                                      "to compare with the official corpus")
def test_neglabel_txtfiles_give_the_official_corpus_and_wordnet_is_close():
    pytest.importorskip("open_clip")
    from openood_tanl.classnames import class_names
    from openood_tanl.evaluation.reproduce import OFFICIAL_IMAGENET_CORPUS

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        official = load_corpus(NEGLABEL_TXTFILES, class_names("imagenet"))
    assert {k: official.provenance()[k] for k in OFFICIAL_IMAGENET_CORPUS} == OFFICIAL_IMAGENET_CORPUS
    ours = set(load_corpus("wordnet", class_names("imagenet")).words)
    assert len(ours & set(official.words)) / len(ours | set(official.words)) >= 0.98


@pytest.mark.skipif(not (WORDNET_DIR / "data.noun").is_file(),
                    reason="WordNet 3.0 database not installed (apt-get install wordnet-base)")
def test_script_reproduces_shipped_files(tmp_path):
    counts = _load_script().build(str(WORDNET_DIR), str(tmp_path))
    assert {name: (c["nouns"], c["adjectives"]) for name, c in counts.items()} == COUNTS
    for name in [f for files in BUILTIN_CORPORA.values() for f in files] + [LICENSE_FILE]:
        assert (tmp_path / name).read_bytes() == (CORPUS_DIR / name).read_bytes(), name


# ------------------------------------------------------------------------------------------ script on toy data
_HEADER = ("  1 This software and database is being provided to you, the LICENSEE, by  \n"
           "  2   \n"
           "  3 WordNet 3.0 Copyright 2006 by Princeton University.  All rights reserved.  \n")


def test_script_rules_on_a_toy_database(tmp_path):
    wn = tmp_path / "wn"
    wn.mkdir()
    (wn / "data.noun").write_text(
        _HEADER
        + "00000001 03 n 02 Living_Thing 0 being 0 000 | first lemma, lower case, '_' -> space\n"
        + "00000002 05 n 03 Turkey 0 turkey 0 well-being 0 000 | noun.animal: out of 'wordnet'\n"
        + "00000003 13 n 01 pizza 0 000 | noun.food: out of 'wordnet'\n"
        + "00000004 06 n 02 dog 1 3-D 0 000 | repeated first lemma\n"
        + "00000005 06 n 01 dog 0 000 | x\n", encoding="utf-8")
    (wn / "data.adj").write_text(
        _HEADER
        + "00000010 00 a 02 great(p) 0 big(a) 0 000 | marker stripped\n"
        + "00000011 00 s 02 far_and_away 0 great 0 000 | satellite\n"
        + "00000012 44 a 01 Punishing 0 000 | adj.ppl\n", encoding="utf-8")
    out = tmp_path / "out"
    counts = _load_script().build(str(wn), str(out))
    assert counts == {"wordnet": {"nouns": 2, "adjectives": 3}, "wordnet-all-lemmas": {"nouns": 7, "adjectives": 3}}

    def lines(name):
        return (out / name).read_text(encoding="utf-8")

    assert lines("wordnet_nouns.txt") == "dog\nliving thing\n"
    assert lines("wordnet_adjectives.txt") == "far and away\ngreat\npunishing\n"
    assert lines("wordnet_all_lemmas_nouns.txt") == "3-D\nTurkey\nbeing\ndog\npizza\nturkey\nwell-being\n"
    assert lines("wordnet_all_lemmas_adjectives.txt") == "Punishing\nbig\ngreat\n"
    assert "WordNet 3.0 Copyright 2006" in (out / LICENSE_FILE).read_text(encoding="utf-8")


def test_script_reports_missing_wordnet(tmp_path, capsys):
    rc = _load_script().main(["--wordnet-dir", str(tmp_path / "nowhere"), "--out", str(tmp_path / "o")])
    assert rc == 2
    err = capsys.readouterr().err
    assert "wordnet-base" in err and "data.noun" in err
    assert not (tmp_path / "o").exists()


# --------------------------------------------------------------------------------------------- read_word_list
def test_read_word_list_skips_comments_and_blanks(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("# my words\n\n  cat \nDog\n   # indented comment\nsea lion\n\n", encoding="utf-8")
    assert read_word_list(path) == ["cat", "Dog", "sea lion"]
    assert read_word_list(str(path)) == ["cat", "Dog", "sea lion"]


def test_read_word_list_errors_name_the_problem(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        read_word_list(tmp_path / "absent.txt")
    (tmp_path / "empty.txt").write_text("# only a comment\n\n   \n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        read_word_list(tmp_path / "empty.txt")
    (tmp_path / "dups.txt").write_text("cat\ndog\n# c\ncat\nbird\ndog \n", encoding="utf-8")
    with pytest.raises(ValueError) as info:
        read_word_list(tmp_path / "dups.txt")
    message = str(info.value)
    assert "2 duplicate" in message and "Remove the repeated lines" in message
    assert "'cat' on line 4 (first seen on line 1)" in message and "'dog' on line 6 (first seen on line 2)" in message
    (tmp_path / "latin1.txt").write_bytes("caf\xe9\n".encode("latin-1"))
    with pytest.raises(ValueError, match="UTF-8"):
        read_word_list(tmp_path / "latin1.txt")


# -------------------------------------------------------------------------------------- NegLabel-layout folders
def _neglabel_folder(root: Path) -> Path:
    """A small folder in the layout of NegLabel's txtfiles/: lower case, phrases with spaces, repeats across files."""
    folder = root / "txtfiles"
    folder.mkdir()
    (folder / "adj.all.txt").write_text("lively\nred\ngolden\nsea\n", encoding="utf-8")
    (folder / "adj.pert.txt").write_text("oceanic\nlively\n", encoding="utf-8")
    (folder / "noun.Tops.txt").write_text("living thing\nsea\nentity\n", encoding="utf-8")
    (folder / "noun.artifact.txt").write_text("hydraulic pump\nschool bus\nentity\nGolden\n", encoding="utf-8")
    return folder


def test_neglabel_folder_with_the_official_rules(tmp_path):
    folder = _neglabel_folder(tmp_path)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a well-formed folder reads without a warning
        corpus = load_corpus(folder, ["school bus", "Red", "oceanic"])
    # nouns (files by name: noun.Tops, noun.artifact), repeats merged, the exact ID name 'school bus' dropped
    assert corpus.words == ["living thing", "sea", "entity", "hydraulic pump", "Golden",
                            "lively", "red", "golden"]
    assert corpus.kinds == ["noun"] * 5 + ["adjective"] * 3
    # exact comparisons: 'Red' (ID) does not drop 'red'; 'Golden' (noun) does not drop 'golden'; 'sea' (noun) does
    assert (corpus.num_input_nouns, corpus.num_input_adjectives, corpus.num_repeats) == (6, 5, 2)
    assert (corpus.num_dropped_id_names, corpus.num_dropped_adjectives) == (2, 1)  # 'school bus', 'oceanic'; 'sea'
    assert corpus.source == str(folder.resolve())
    report = corpus.report()
    assert "\n" not in report and "2 repeated entries merged" in report and "= 8 words" in report


def test_neglabel_folder_with_the_clean_rules(tmp_path):
    folder = _neglabel_folder(tmp_path)
    corpus = load_corpus(folder, ["school bus", "Red", "oceanic"], rules="clean")
    assert corpus.words == ["living thing", "sea", "entity", "hydraulic pump", "Golden", "lively"]
    assert corpus.rules == "clean"


def test_official_reading_quirks_are_reproduced_with_a_warning(tmp_path):
    folder = tmp_path / "words"
    folder.mkdir()
    (folder / "nouns.txt").write_text("cat\n\n dog\nbird", encoding="utf-8")  # blank line, padded word, no newline
    (folder / "adjectives.txt").write_text("red\n", encoding="utf-8")
    (folder / "README.md").write_text("not a word list\n", encoding="utf-8")
    (folder / ".hidden").write_text("x\n", encoding="utf-8")
    with pytest.warns(CorpusWarning) as caught:
        corpus = load_corpus(folder)
    messages = " | ".join(str(w.message) for w in caught)
    assert "'bird' has no newline after it, so it is dropped" in messages and "rules='clean'" in messages
    assert "empty or padded with spaces" in messages and "'README.md'" in messages
    assert ".hidden" not in messages
    assert corpus.words == ["cat", "", " dog", "red"]  # as the official text.split('\n')[:-1] gives them
    with pytest.warns(CorpusWarning, match="skipped 'README.md'"):
        clean = load_corpus(folder, rules="clean")
    assert clean.words == ["cat", "dog", "bird", "red"]


def test_old_nouns_adjectives_folder_layout_still_reads(tmp_path):
    (tmp_path / "nouns.txt").write_text("cat\ndog\n", encoding="utf-8")
    (tmp_path / "adjectives.txt").write_text("red\ndog\n", encoding="utf-8")
    corpus = load_corpus(tmp_path)
    assert corpus.words == ["cat", "dog", "red"] and corpus.kinds == ["noun", "noun", "adjective"]


def test_folder_without_word_lists_is_an_error(tmp_path):
    (tmp_path / "words.csv").write_text("cat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"no word list: expected files named adj\*.txt .* found 'words.csv'"):
        read_neglabel_folder(tmp_path)


def test_single_word_list_file_is_nouns(tmp_path):
    path = tmp_path / "words.txt"
    path.write_text("cat\nsea lion\npizza\n", encoding="utf-8")
    corpus = load_corpus(path, ["pizza"])
    assert corpus.words == ["cat", "sea lion"] and corpus.kinds == ["noun", "noun"]


def test_unknown_source_and_rules(tmp_path):
    with pytest.raises(FileNotFoundError, match="neither a built-in corpus"):
        load_corpus(tmp_path / "missing")
    with pytest.raises(ValueError, match="rules must be one of official, clean"):
        load_corpus("wordnet", rules="exact")


def test_builtin_name_wins_over_a_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("wordnet").mkdir()
    (Path("wordnet") / "nouns.txt").write_text("cat\n", encoding="utf-8")
    assert len(load_corpus("wordnet")) > 70000
    assert load_corpus("./wordnet").words == ["cat"]


# -------------------------------------------------------------------------------------------------- build_corpus
def test_build_corpus_official_rules_compare_exactly():
    nouns = ["cat", "Orange", "golden retriever", "sea", "Polish", "dog", "cat"]
    adjectives = ["orange", "blue", "polish", "Golden_Retriever", "sea", "happy", "CAT"]
    corpus = build_corpus(["Cat", "golden retriever", "happy"], nouns, adjectives)
    assert isinstance(corpus, Corpus)
    assert corpus.words == ["cat", "Orange", "sea", "Polish", "dog", "orange", "blue", "polish", "Golden_Retriever",
                            "CAT"]
    assert (corpus.num_input_nouns, corpus.num_repeats) == (6, 1)
    assert (corpus.num_dropped_id_names, corpus.num_dropped_adjectives) == (2, 1)  # golden retriever, happy; sea


def test_build_corpus_clean_rules_compare_as_clip_reads():
    assert normalize_label("  Great_White  shark ") == "great white shark"
    nouns = ["cat", "Orange", "golden retriever", "sea", "Polish", "dog", "Cat"]
    adjectives = ["orange", "blue", "polish", "Golden_Retriever", "sea", "happy", "CAT"]
    corpus = build_corpus(["Cat", "golden retriever", "happy "], nouns, adjectives, rules="clean")
    assert corpus.words == ["Orange", "sea", "Polish", "dog", "blue"]
    # ID: cat, golden retriever (nouns), Golden_Retriever, happy, CAT (adjectives); nouns: orange, polish, sea
    assert (corpus.num_dropped_id_names, corpus.num_dropped_adjectives, corpus.num_repeats) == (5, 3, 1)


def test_corpus_sha256_and_provenance_identify_the_word_list():
    first = build_corpus([], ["cat", "dog"], ["red"])
    assert first.sha256 == build_corpus([], ["cat", "dog"], ["red"]).sha256
    assert first.sha256 != build_corpus([], ["cat", "dog"], ["blue"]).sha256
    assert first.sha256 != build_corpus([], ["cat"], ["dog", "red"]).sha256  # same words, other kinds
    assert first.provenance() == {"source": "lists", "rules": "official", "words": 3, "nouns": 2, "adjectives": 1,
                                  "sha256": first.sha256}


def test_build_corpus_rejects_bad_input():
    with pytest.raises(ValueError, match="empty or space-padded"):
        build_corpus([], ["cat", " "], [], rules="clean")
    with pytest.raises(TypeError):
        build_corpus("cat", ["dog"], [])
    with pytest.raises(TypeError):
        build_corpus([], "dog", [])
    with pytest.raises(TypeError, match=r"nouns\[1\] is int"):
        build_corpus([], ["dog", 3], [])
