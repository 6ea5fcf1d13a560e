import re
from pathlib import Path

import pytest

from openood_tanl.classnames import (
    BUILTIN_CLASS_SETS,
    IMAGENET_DISAMBIGUATION,
    class_names,
    imagenet200_indices,
    imagenet200_wnids,
)
from openood_tanl.corpus import build_corpus, wordnet_words


# --------------------------------------------------------------------- built-ins


def test_cifar10():
    names = class_names("cifar10")
    assert names == ["airplane", "automobile", "bird", "cat", "deer",
                     "dog", "frog", "horse", "ship", "truck"]
    assert class_names("CIFAR10") == names


def test_cifar100():
    names = class_names("cifar100")
    assert len(names) == len(set(names)) == 100
    assert names[0] == "apple" and names[1] == "aquarium fish" and names[-1] == "worm"
    assert names[names.index("road") + 1] == "rocket"
    # CIFAR-100 fine labels are in alphabetical order of the meta-file names
    meta_names = [n.replace(" ", "_") for n in names]
    assert meta_names == sorted(meta_names)


def test_imagenet200_indices_and_wnids():
    indices = imagenet200_indices()
    wnids = imagenet200_wnids()
    assert len(indices) == len(set(indices)) == 200
    assert all(0 <= i < 1000 for i in indices)
    # OpenOOD label order == ascending ImageNet-1k index order == ascending wnid order
    assert indices == sorted(indices)
    assert len(wnids) == len(set(wnids)) == 200
    assert all(re.fullmatch(r"n\d{8}", w) for w in wnids)
    assert wnids == sorted(wnids)
    assert (indices[0], wnids[0]) == (1, "n01443537")  # goldfish
    assert (indices[-1], wnids[-1]) == (988, "n12267677")  # acorn


def test_builtin_results_are_fresh_lists():
    names = class_names("cifar10")
    names.append("extra")
    assert len(class_names("cifar10")) == 10


def test_imagenet():
    pytest.importorskip("open_clip")
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    names = class_names("imagenet")
    assert len(names) == len(set(names)) == 1000
    assert names[0] == "tench"
    for index, (original, replacement) in IMAGENET_DISAMBIGUATION.items():
        assert IMAGENET_CLASSNAMES[index] == original
        assert names[index] == replacement
    changed = [i for i in range(1000) if names[i] != IMAGENET_CLASSNAMES[i]]
    assert changed == sorted(IMAGENET_DISAMBIGUATION)


def test_imagenet200_names():
    pytest.importorskip("open_clip")
    names = class_names("imagenet200")
    imagenet = class_names("imagenet")
    assert len(names) == len(set(names)) == 200
    assert names == [imagenet[i] for i in imagenet200_indices()]
    assert names[:3] == ["goldfish", "great white shark", "hammerhead shark"]


def test_imagenet_corpus_counts():
    pytest.importorskip("open_clip")
    nouns, adjectives = wordnet_words()
    corpus = build_corpus(class_names("imagenet"), nouns, adjectives)
    assert corpus.num_dropped_adjectives == 3143
    assert corpus.num_dropped_id_names == 477
    assert (corpus.num_nouns, corpus.num_adjectives, len(corpus)) == (58214, 17898, 76112)


# -------------------------------------------------------------- lists and files


def test_list_is_returned_after_validation():
    given = ["cat", "dog"]
    names = class_names(given)
    assert names == given and names is not given
    assert class_names(("cat", "dog")) == given


@pytest.mark.parametrize(
    "bad, pattern",
    [
        (["cat", "Cat"], "duplicate"),
        (["sea_lion", "sea lion"], "duplicate"),
        (["cat", ""], "empty"),
        (["cat", "   "], "empty"),
        ([], "empty"),
    ],
)
def test_bad_lists(bad, pattern):
    with pytest.raises(ValueError, match=pattern):
        class_names(bad)


def test_non_string_entries():
    with pytest.raises(TypeError):
        class_names(["cat", 3])
    with pytest.raises(TypeError):
        class_names(42)


def test_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("# my classes\ncat\n\n  sea lion \ndog\n", encoding="utf-8")
    assert class_names(path) == ["cat", "sea lion", "dog"]
    assert class_names(str(path)) == ["cat", "sea lion", "dog"]


def test_file_with_duplicates_names_lines(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\ndog\nCat\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"'Cat' on line 3 \(first seen on line 1\)"):
        class_names(path)


def test_empty_file(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("# nothing\n\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        class_names(path)


def test_missing_file(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        class_names(str(tmp_path / "missing.txt"))
    with pytest.raises(ValueError, match="not found"):
        class_names(tmp_path / "missing")


def test_unknown_builtin_lists_builtins():
    with pytest.raises(ValueError) as info:
        class_names("imagenet1k")
    message = str(info.value)
    for builtin in BUILTIN_CLASS_SETS:
        assert repr(builtin) in message


def test_builtin_name_wins_over_file(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    Path("cifar10").write_text("only\n", encoding="utf-8")
    assert len(class_names("cifar10")) == 10
    assert class_names("./cifar10") == ["only"]
