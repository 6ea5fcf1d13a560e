"""Image benchmarks: YAML specs (folders and lists), the four-OOD layout, OpenOOD names, and clear errors."""
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from openood_tanl.evaluation.datasets import KNOWN_BENCHMARKS, ImageBenchmark, ImageList, load_benchmark, scan_folder


def write_png(path: Path, seed: int = 0, size=(12, 10)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def write_yaml(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def tree(tmp_path):
    """ID folder (3 classes), an OOD folder (nested, mixed-case extensions, junk) and an OOD list."""
    root = tmp_path / "data"
    for c, cls in enumerate(["zebra", "apple", "mango"]):
        for i in range(2):
            write_png(root / "id" / cls / f"{i}.png", seed=10 * c + i)
    write_png(root / "ood_a" / "deep" / "x" / "b.JPG", 1)
    write_png(root / "ood_a" / "a.jpeg", 2)
    (root / "ood_a" / "notes.txt").write_text("not an image")
    write_png(root / "ood_a" / ".hidden.png", 3)
    write_png(root / "imgs" / "t0.png", 4)
    write_png(root / "imgs" / "sub" / "t1.png", 5)
    (root / "textures.txt").write_text("# a comment\nt0.png -1\n\nsub/t1.png\n")
    write_png(root / "list_id" / "p0.png", 6)
    write_png(root / "list_id" / "p1.png", 7)
    (root / "ids.txt").write_text("list_id/p0.png 4\nlist_id/p1.png 2\n")
    return root


def test_yaml_spec_with_folders_and_lists(tree):
    spec = write_yaml(tree / "bench.yaml", """
name: mybench
id: {folder: id}
ood:
  near:
    folderset: {folder: ood_a}
  far:
    textures: {list: textures.txt, root: imgs}
""")
    bench = load_benchmark(spec)
    assert isinstance(bench, ImageBenchmark) and bench.name == "mybench"
    assert bench.id_set.name == "mybench"
    # labels: index of the top-level subfolder in sorted order (apple, mango, zebra)
    assert [Path(p).parent.name for p in bench.id_set.paths] == ["apple"] * 2 + ["mango"] * 2 + ["zebra"] * 2
    assert bench.id_set.labels == [0, 0, 1, 1, 2, 2]
    assert all(os.path.isabs(p) for _, s in bench.ood_sets() for p in s.paths)
    assert list(bench.ood_groups) == ["near", "far"]
    near, = bench.ood_groups["near"]
    assert near.name == "folderset"
    assert [os.path.relpath(p, tree / "ood_a") for p in near.paths] == ["a.jpeg", "deep/x/b.JPG"]  # sorted, no junk
    assert near.labels == [-1, -1]
    far, = bench.ood_groups["far"]
    assert far.paths == [str(tree / "imgs" / "t0.png"), str(tree / "imgs" / "sub" / "t1.png")]
    assert far.labels == [-1, -1]


def test_yaml_spec_classes_and_id_list(tree):
    (tree / "classes.txt").write_text("zebra\nmango\napple\n")
    spec = write_yaml(tree / "b.yml", """
id: {folder: id, classes: classes.txt}
ood: {far: {o: {folder: ood_a}}}
""")
    bench = load_benchmark(spec)
    assert bench.name == "b"
    labels = {Path(p).parent.name: label for p, label in zip(bench.id_set.paths, bench.id_set.labels)}
    assert labels == {"zebra": 0, "mango": 1, "apple": 2}
    spec = write_yaml(tree / "c.yml", "id: {folder: id, classes: [mango, zebra]}\nood: {far: {o: {folder: ood_a}}}\n")
    with pytest.raises(ValueError, match="not in its classes.*apple"):
        load_benchmark(spec)
    # an ID list: labels from the list, paths relative to the list's folder by default
    spec = write_yaml(tree / "d.yml", "id: {list: ids.txt}\nood: {far: {o: {folder: ood_a}}}\n")
    bench = load_benchmark(spec)
    assert bench.id_set.labels == [4, 2]
    assert bench.id_set.paths == [str(tree / "list_id" / "p0.png"), str(tree / "list_id" / "p1.png")]


def test_yaml_spec_data_root_argument(tree, tmp_path):
    spec = write_yaml(tmp_path / "elsewhere.yaml", "id: {folder: id}\nood: {far: {o: {folder: ood_a}}}\n")
    bench = load_benchmark(spec, data_root=tree)
    assert len(bench.id_set) == 6 and len(bench.ood_groups["far"][0]) == 2


@pytest.mark.parametrize("text, message", [
    ("- a\n- b\n", "must hold a YAML mapping"),
    ("id: {folder: id}\n", "needs 'ood'"),
    ("id: {folder: id}\nood: {far: {o: {folder: ood_a, list: x.txt}}}\n", "exactly one of"),
    ("id: {folder: id}\nood: {far: {o: {folder: ood_a, colour: red}}}\n", "unknown keys"),
    ("id: {folder: id}\nood: {far: {o: {folder: nowhere}}}\n", "does not exist"),
    ("id: {folder: id}\nood: {far: {o: {folder: empty}}}\n", "empty sets"),
    ("id: {list: nolabel.txt, root: imgs}\nood: {far: {o: {folder: ood_a}}}\n", "need '<path> <label>'"),
    ("id: {list: textures.txt, root: imgs}\nood: {far: {o: {folder: ood_a}}}\n", "ID label -1 is negative"),
    ("id: {folder: id, root: x}\nood: {far: {o: {folder: ood_a}}}\n", "'root' goes with 'list'"),
    ("idd: {folder: id}\nood: {far: {o: {folder: ood_a}}}\n", "unknown keys"),
])
def test_yaml_spec_errors(tree, text, message):
    (tree / "empty").mkdir()
    (tree / "nolabel.txt").write_text("t0.png\n")
    spec = write_yaml(tree / "bad.yaml", text)
    with pytest.raises((ValueError, FileNotFoundError), match=message):
        load_benchmark(spec)


def test_missing_images_stop_with_a_clear_error(tree):
    (tree / "broken.txt").write_text("".join(f"gone{i}.png\n" for i in range(8)) + "t0.png\n")
    spec = write_yaml(tree / "m.yaml", "id: {folder: id}\nood: {far: {broken: {list: broken.txt, root: imgs}}}\n")
    with pytest.raises(FileNotFoundError) as caught:
        load_benchmark(spec)
    message = str(caught.value)
    assert "broken: 8 of 9 missing" in message and "gone0.png" in message and "gone4.png" in message
    assert "gone7.png" not in message  # only the first few are named
    assert "never dropped silently" in message


def test_unknown_benchmark_name():
    with pytest.raises(ValueError, match="unknown benchmark 'imagenet-x'") as caught:
        load_benchmark("imagenet-x")
    for name in KNOWN_BENCHMARKS:
        assert name in str(caught.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_benchmark("no/such/spec.yaml")
    with pytest.raises(ValueError, match="needs data_root"):
        load_benchmark("four-ood")


def _four_ood_tree(root: Path, ood_folders=("iNaturalist", "SUN", "Places", "dtd")) -> Path:
    val = root / "imagenet" / "val"
    for k in range(1000):
        (val / f"n{k:08d}").mkdir(parents=True)
    for k, i in [(0, 0), (0, 1), (7, 0), (999, 0)]:
        write_png(val / f"n{k:08d}" / f"ILSVRC2012_val_{k}_{i}.JPEG", k + i)
    for j, folder in enumerate(ood_folders):
        write_png(root / folder / "images" / f"{j}.jpg", 100 + j)
    write_png(root / ood_folders[-1] / "images" / "banded" / "banded_1.jpg", 200)
    return root


def test_four_ood_layout(tmp_path):
    root = _four_ood_tree(tmp_path / "data")
    bench = load_benchmark("imagenet-four-ood", root)
    assert bench.name == "four-ood"
    assert bench.id_set.labels == [0, 0, 7, 999]
    assert list(bench.ood_groups) == ["far"]
    assert [s.name for s in bench.ood_groups["far"]] == ["iNaturalist", "SUN", "Places", "Textures"]
    assert [len(s) for s in bench.ood_groups["far"]] == [1, 1, 1, 2]
    assert all(label == -1 for s in bench.ood_groups["far"] for label in s.labels)


def test_four_ood_layout_errors(tmp_path):
    root = tmp_path / "data"
    (root / "imagenet" / "val" / "n00000001").mkdir(parents=True)
    write_png(root / "imagenet" / "val" / "ILSVRC2012_val_00000001.JPEG")
    write_png(root / "iNaturalist" / "a.jpg")
    with pytest.raises(FileNotFoundError) as caught:
        load_benchmark("four-ood", root)
    message = str(caught.value)
    assert "1 class folders, expected the 1000" in message and "loose files" in message
    assert "SUN: none of" in message and "Places: none of" in message and "Textures: none of" in message
    assert "iNaturalist: none" not in message
    with pytest.raises(FileNotFoundError, match="ImageNet val: none of"):
        load_benchmark("four-ood", tmp_path / "data" / "iNaturalist")


def test_image_list_validates_lengths():
    with pytest.raises(ValueError, match="2 paths but 1 labels"):
        ImageList("x", ["/a.png", "/b.png"], [0])
    assert scan_folder.__doc__


def test_openood_name_without_openood_is_a_clear_error(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "openood.evaluation_api.datasets", None)
    with pytest.raises(ImportError, match="Install OpenOOD.*YAML spec"):
        load_benchmark("cifar10", tmp_path)


OPENOOD = "openood.evaluation_api"
NEEDS_OPENOOD = "needs OpenOOD (pip install git+https://github.com/Jingkang50/OpenOOD)"


def test_openood_benchmark_from_data_info(tmp_path):
    pytest.importorskip(OPENOOD, reason=NEEDS_OPENOOD)
    from helpers.openood_data import make_openood_tree

    root = make_openood_tree(tmp_path / "data", "cifar10", per_list=6)
    bench = load_benchmark("cifar10", root)
    assert bench.name == "cifar10" and len(bench.id_set) == 6
    assert bench.id_set.labels == [0, 1, 2, 3, 4, 5]
    assert bench.id_set.paths[0] == str(root / "images_classic" / "cifar10" / "test_cifar10_0.png")
    assert {g: [s.name for s in sets] for g, sets in bench.ood_groups.items()} == {
        "near": ["cifar100", "tin"], "far": ["mnist", "svhn", "texture", "places365"]}
    assert all(s.labels == [-1] * 6 for _, s in bench.ood_sets())


def test_openood_benchmark_errors(tmp_path):
    pytest.importorskip(OPENOOD, reason=NEEDS_OPENOOD)
    from helpers.openood_data import make_openood_tree

    root = make_openood_tree(tmp_path / "data", "cifar10", per_list=6)
    os.remove(root / "images_classic" / "tin" / "test_tin_3.png")
    with pytest.raises(FileNotFoundError, match="tin: 1 of 6 missing"):
        load_benchmark("cifar10", root)
    with pytest.raises(FileNotFoundError, match="benchmark_imglist"):
        load_benchmark("cifar100", root)
