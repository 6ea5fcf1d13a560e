import re
import warnings
from pathlib import Path

import pytest

from openood_tanl.classnames import (
    BUILTIN_CLASS_SETS,
    IMAGENET_DISAMBIGUATION,
    ClassNameWarning,
    class_names,
    class_names_sha256,
    imagenet200_indices,
    imagenet200_wnids,
)

# --------------------------------------------------------------------- built-ins


def test_cifar10():
    names = class_names("cifar10")
    assert names == ["airplane", "automobile", "bird", "cat", "deer",
                     "dog", "frog", "horse", "ship", "truck"]
    assert class_names("CIFAR10") == names


def test_cifar100_keeps_the_official_underscores():
    names = class_names("cifar100")
    assert len(names) == len(set(names)) == 100
    assert names[0] == "apple" and names[1] == "aquarium_fish" and names[-1] == "worm"
    assert [n for n in names if "_" in n] == ["aquarium_fish", "lawn_mower", "maple_tree", "oak_tree", "palm_tree",
                                              "pickup_truck", "pine_tree", "sweet_pepper", "willow_tree"]
    assert names == sorted(names)  # CIFAR-100 fine labels are in alphabetical order of the meta-file names


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


def test_imagenet_is_openai_clip_list_with_its_repeats():
    pytest.importorskip("open_clip")
    from open_clip.zero_shot_metadata import IMAGENET_CLASSNAMES

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # built-in repeats do not warn
        names = class_names("imagenet")
    assert names == list(IMAGENET_CLASSNAMES)
    assert names[0] == "tench" and names[657] == names[744] == "missile"
    assert names[836] == names[837] == "sunglasses"


def test_imagenet_disambiguated():
    pytest.importorskip("open_clip")
    names = class_names("imagenet-disambiguated")
    imagenet = class_names("imagenet")
    assert len(set(names)) == 1000
    assert [i for i in range(1000) if names[i] != imagenet[i]] == sorted(IMAGENET_DISAMBIGUATION)
    assert (names[744], names[836]) == ("projectile", "sunglass")


def test_imagenet200_names():
    pytest.importorskip("open_clip")
    names = class_names("imagenet200")
    imagenet = class_names("imagenet")
    assert len(names) == len(set(names)) == 200
    assert names == [imagenet[i] for i in imagenet200_indices()]
    assert names[:3] == ["goldfish", "great white shark", "hammerhead shark"]


def test_class_names_sha256_identifies_the_list():
    assert class_names_sha256(["cat", "dog"]) == class_names_sha256(["cat", "dog"])
    assert class_names_sha256(["cat", "dog"]) != class_names_sha256(["dog", "cat"])
    assert class_names_sha256(["aquarium fish"]) != class_names_sha256(["aquarium_fish"])


# -------------------------------------------------------------- lists and files


def test_list_is_returned_after_validation():
    given = ["cat", "dog"]
    names = class_names(given)
    assert names == given and names is not given
    assert class_names(("cat", "dog")) == given


@pytest.mark.parametrize("repeated", [["cat", "Cat"], ["sea_lion", "sea lion"]])
def test_a_users_repeated_names_warn_and_are_kept(repeated):
    with pytest.warns(ClassNameWarning, match=r"repeats 1 class name.*index 1 \(same as index 0\)"):
        assert class_names(repeated) == repeated


@pytest.mark.parametrize(
    "bad, pattern",
    [
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


def test_file_with_repeats_warns_and_keeps_them(tmp_path):
    path = tmp_path / "classes.txt"
    path.write_text("cat\ndog\nCat\n", encoding="utf-8")
    with pytest.warns(ClassNameWarning, match=r"'Cat' at index 2 \(same as index 0\)"):
        assert class_names(path) == ["cat", "dog", "Cat"]


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
