"""Image benchmarks for test-time evaluation: an ID test set and OOD sets, as lists of image files.

``load_benchmark(name_or_path, data_root)`` accepts

* an OpenOOD v1.5 benchmark name (``imagenet``, ``imagenet200``, ``cifar10``, ``cifar100``): the image lists of
  ``openood.evaluation_api.datasets.DATA_INFO[name]`` (needs OpenOOD installed), resolved under ``data_root``
  (OpenOOD's data folder, holding ``benchmark_imglist/`` and ``images_classic/`` / ``images_largescale/``). The ID
  set is ``id.test``; the OOD groups are ``near`` and ``far`` of ``ood``. Nothing is ever downloaded: fetch the
  data with OpenOOD's own download script first.
* ``four-ood`` (alias ``imagenet-four-ood``): the MOS/MCM benchmark; see ``load_four_ood`` for the folder layout.
* a path to a YAML spec (``.yml``/``.yaml``); see ``load_spec`` for the format. A known name always means the
  built-in benchmark: write ``./cifar10`` for a spec file of that name.

Missing images are an error, never a silent drop: every listed image must exist, else loading stops with a
``FileNotFoundError`` that says, per set, how many images are missing and names the first few. A benchmark with
results on fewer images than its definition says would not be comparable with published numbers.
"""
from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Iterable, Mapping, Sequence

from ..core.errors import MissingFileError, UserError
from .data import OOD_LABEL, ImageBenchmark, ImageList

__all__ = ["load_benchmark", "load_spec", "load_four_ood", "load_openood", "read_image_list", "scan_folder",
           "match_id_classes", "image_summary", "read_rgb", "check_images_open", "UnreadableImageError",
           "SkippedFileWarning", "OPENOOD_BENCHMARKS", "FOUR_OOD_NAMES", "KNOWN_BENCHMARKS", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
OPENOOD_BENCHMARKS = ("imagenet", "imagenet200", "cifar10", "cifar100")
FOUR_OOD_NAMES = ("four-ood", "imagenet-four-ood")
KNOWN_BENCHMARKS = OPENOOD_BENCHMARKS + FOUR_OOD_NAMES
_SHOW_MISSING = 5


# ----------------------------------------------------------------------------------------------------------------
# reading lists and folders


def read_image_list(list_path: str | os.PathLike, root: str | os.PathLike | None = None, *, name: str,
                    ood: bool) -> ImageList:
    """Read ``<path> <label>`` lines (blank lines and ``#`` comments skipped) into an ``ImageList``.

    Relative image paths are resolved under ``root`` (default: the list file's folder). The label is the last
    whitespace-separated token when it is an integer; it is required for ID lists and ignored (set to -1) for OOD
    lists, where it may be left out. Paths may contain spaces only when a label follows them.
    """
    list_path = Path(list_path)
    if not list_path.is_file():
        raise MissingFileError(f"image list {list_path} of set '{name}' does not exist")
    base = Path(root) if root is not None else list_path.parent
    paths, labels = [], []
    for number, raw in enumerate(list_path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        parts = line.rsplit(None, 1)
        label = None
        if len(parts) == 2 and re.fullmatch(r"[+-]?\d+", parts[1]):
            line, label = parts[0], int(parts[1])
        if not ood:
            if label is None:
                raise UserError(f"{list_path}:{number}: ID image list lines need '<path> <label>', got '{raw}'")
            if label < 0:
                raise UserError(f"{list_path}:{number}: ID label {label} is negative (-1 marks OOD images; "
                                "list this file under 'ood' instead)")
        path = Path(line)
        paths.append(os.path.abspath(path if path.is_absolute() else base / path))
        labels.append(OOD_LABEL if ood else label)
    return ImageList(name, paths, labels)


def _is_image(filename: str) -> bool:
    return not filename.startswith(".") and filename.lower().endswith(IMAGE_EXTENSIONS)


class SkippedFileWarning(UserWarning):
    """A folder holds files that are not read as images (their type is not one of ``IMAGE_EXTENSIONS``)."""


class UnreadableImageError(UserError):
    """An image of the benchmark cannot be read (empty, truncated, not an image, an unsupported mode)."""


#: PIL modes of high-bit-depth greyscale images and the value that maps to white.
_HIGH_BIT_MODES = {"I;16": 65535, "I;16B": 65535, "I;16L": 65535, "I;16N": 65535, "I": 65535}


def read_rgb(path: str):
    """The image at ``path`` as an 8-bit RGB PIL image: 16-bit greyscale scaled (not clipped) to 8 bits; a float
    image or an integer image beyond 16 bits is an ``UnreadableImageError`` naming the file."""
    import numpy as np
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            if image.mode in _HIGH_BIT_MODES:
                values = np.asarray(image, dtype=np.int64)
                if values.min() < 0 or values.max() > _HIGH_BIT_MODES[image.mode]:
                    raise UnreadableImageError(f"image {path} is a {image.mode} image with values beyond 16 bits; "
                                               "save it as 8- or 16-bit")
                return Image.fromarray((values * 255 // 65535).astype(np.uint8), mode="L").convert("RGB")
            if image.mode == "F":
                raise UnreadableImageError(f"image {path} holds floating-point pixels (mode F), whose range is "
                                           "unknown; save it as an 8- or 16-bit image")
            return image.convert("RGB")
    except UnreadableImageError:
        raise
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise UnreadableImageError(f"cannot read image {path} ({type(error).__name__}: {error}); replace the file "
                                   "or remove it from the benchmark (images are never dropped silently)") from None


def check_images_open(benchmark, workers: int = 8) -> None:
    """Open the header of every image of ``benchmark`` (threads; no decoding): an ``UnreadableImageError`` naming
    the files that are empty, not images or of a mode that cannot be read, before any model is loaded."""
    from concurrent.futures import ThreadPoolExecutor

    from PIL import Image

    def problem(path: str) -> str | None:
        try:
            with Image.open(path) as image:
                if image.mode == "F":
                    return "floating-point pixels (mode F)"
        except Exception as error:  # noqa: BLE001
            return f"{type(error).__name__}: {error}"
        return None

    paths = [path for image_list in benchmark.sets() for path in image_list.paths]
    with ThreadPoolExecutor(max_workers=workers) as pool:
        bad = [(path, why) for path, why in zip(paths, pool.map(problem, paths)) if why]
    if bad:
        shown = "; ".join(f"{path} ({why})" for path, why in bad[:_SHOW_MISSING])
        raise UnreadableImageError(f"{len(bad)} image(s) of benchmark '{benchmark.name}' cannot be read: {shown}"
                                   + (" ..." if len(bad) > _SHOW_MISSING else "") + "; replace or remove them "
                                   "(images are never dropped silently)")


def _report_skipped(folder, skipped: list[str]) -> None:
    import warnings

    if not skipped:
        return
    kinds: dict[str, int] = {}
    for path in skipped:
        suffix = os.path.splitext(path)[1].lower() or "(no extension)"
        kinds[suffix] = kinds.get(suffix, 0) + 1
    warnings.warn(f"image folder {folder}: {len(skipped)} file(s) not read as images ("
                  + ", ".join(f"{count} {suffix}" for suffix, count in sorted(kinds.items())) + "), e.g. "
                  + ", ".join(skipped[:_SHOW_MISSING]) + f"; only {', '.join(IMAGE_EXTENSIONS)} files are read: "
                  "convert the others to one of these to include them", SkippedFileWarning, stacklevel=4)


def scan_folder(folder: str | os.PathLike) -> list[str]:
    """Absolute paths of the images under ``folder`` (recursive, sorted; dot files and folders skipped).

    Symbolic links are followed, each real file is listed once (under its first path in sorted order), and a link
    that leads back to a folder it is inside of (a loop) is an error naming it.
    """
    return _walk_images(folder)[0]


def _walk_images(folder: str | os.PathLike) -> tuple[list[str], dict[str, list[str]]]:
    """(sorted image paths, each real file once; {kept path: the other paths of the same real file})."""
    folder = Path(os.path.abspath(folder))
    if not folder.is_dir():
        raise MissingFileError(f"image folder {folder} does not exist")
    by_real: dict[str, list[str]] = {}
    skipped: list[str] = []  # files of other types, reported
    real_dirs: dict[str, str] = {}  # real path of each folder walked -> the walked path that reached it first
    for directory, subfolders, files in os.walk(folder, followlinks=True):
        subfolders[:] = sorted(s for s in subfolders if not s.startswith("."))
        real = os.path.realpath(directory)
        if real in real_dirs:
            reached = real_dirs[real]
            if directory.startswith(reached + os.sep):
                raise UserError(f"image folder {folder} has a symbolic link loop: {directory} leads back to "
                                f"{reached}; remove the link (e.g. `ln -s . again`) or point it elsewhere")
            subfolders[:] = []  # a second link to a folder already walked: its files are listed once
            continue
        real_dirs[real] = directory
        for name in files:
            if _is_image(name):
                path = os.path.join(directory, name)
                by_real.setdefault(os.path.realpath(path), []).append(path)
            elif not name.startswith("."):
                skipped.append(os.path.join(directory, name))
    _report_skipped(folder, sorted(skipped))
    kept = {}
    for paths in by_real.values():
        paths.sort()
        kept[paths[0]] = paths[1:]
    return sorted(kept), {path: others for path, others in kept.items() if others}


def _folder_set(folder: str | os.PathLike, *, name: str, ood: bool,
                classes: Sequence[str] | None = None) -> ImageList:
    """An image folder as a set; for ID, the label is the index of the image's top-level subfolder.

    Without ``classes`` the order is the sorted subfolder names; with ``classes`` it is that list's order. The ID
    set records its class folders in label order (``ImageList.class_folders``) and whether that order was given.
    """
    folder = Path(os.path.abspath(folder))
    paths, aliases = _walk_images(folder)
    if ood:
        return ImageList(name, paths, [OOD_LABEL] * len(paths))
    tops = {}
    for path in paths:
        parts = Path(path).relative_to(folder).parts
        if len(parts) < 2:
            raise UserError(f"ID folder {folder} of set '{name}' holds image {path} outside a class subfolder; "
                            "put each class's images in <folder>/<class>/")
        tops[path] = parts[0]
        other_classes = {Path(p).relative_to(folder).parts[0] for p in aliases.get(path, [])} - {parts[0]}
        if other_classes:
            raise UserError(f"ID folder {folder} of set '{name}': image {path} is also linked under class folder(s) "
                            f"{sorted(other_classes)}; an image can belong to one class only")
    given = classes is not None
    if classes is None:
        classes = sorted({os.path.basename(entry) for entry in os.listdir(folder)
                          if not entry.startswith(".") and (folder / entry).is_dir()})
    index = {c: i for i, c in enumerate(classes)}
    if len(index) != len(classes):
        raise UserError(f"the classes of set '{name}' repeat a name")
    unknown = sorted({top for top in tops.values() if top not in index})
    if unknown:
        raise UserError(f"ID folder {folder} of set '{name}' has subfolders not in its classes: "
                        f"{unknown[:_SHOW_MISSING]}{' ...' if len(unknown) > _SHOW_MISSING else ''}; add them to "
                        "'classes' or remove them")
    return ImageList(name, paths, [index[tops[p]] for p in paths], class_folders=list(classes),
                     class_order_given=given)


def _check_sets(benchmark: str, sets: Iterable[ImageList]) -> None:
    """Stop on empty sets or missing images (the rule: never drop images silently)."""
    empty, missing = [], []
    for image_list in sets:
        if not len(image_list):
            empty.append(image_list.name)
            continue
        absent = [p for p in image_list.paths if not os.path.isfile(p)]
        if absent:
            shown = ", ".join(absent[:_SHOW_MISSING]) + (", ..." if len(absent) > _SHOW_MISSING else "")
            missing.append(f"  {image_list.name}: {len(absent)} of {len(image_list)} missing ({shown})")
    if empty:
        raise UserError(f"benchmark '{benchmark}' has empty sets {empty}: point them at images (read: "
                        f"{', '.join(IMAGE_EXTENSIONS)}, any case)")
    if missing:
        raise MissingFileError(
            f"benchmark '{benchmark}' lists images that do not exist:\n" + "\n".join(missing) +
            "\nImages are never dropped silently (results would not be comparable): restore the files, fix the "
            "data root, or write a YAML spec whose lists name only the images you have.")


def _finish(name: str, id_set: ImageList, groups: dict[str, list[ImageList]]) -> ImageBenchmark:
    groups = {g: sets for g, sets in groups.items() if sets}
    if not groups:
        raise UserError(f"benchmark '{name}' has no OOD set")
    benchmark = ImageBenchmark(name, id_set, groups)
    _check_sets(name, benchmark.sets())
    return benchmark


# ----------------------------------------------------------------------------------------------------------------
# OpenOOD v1.5


def load_openood(name: str, data_root: str | os.PathLike) -> ImageBenchmark:
    """OpenOOD v1.5 benchmark ``name``: ID = ``id.test``, OOD groups ``near`` and ``far``, under ``data_root``."""
    from ..openood.datasets import data_info

    info = data_info()
    if name not in info:
        raise UserError(f"OpenOOD has no benchmark '{name}'; it has {sorted(info)}")
    root = Path(data_root)

    def image_list(set_name: str, entry: Mapping, ood: bool) -> ImageList:
        list_path = root / entry["imglist_path"]
        if not list_path.is_file():
            raise MissingFileError(
                f"OpenOOD image list {list_path} (set '{set_name}' of benchmark '{name}') does not exist: "
                f"data_root must be OpenOOD's data folder holding benchmark_imglist/ and images_*/ (get them with "
                "OpenOOD's scripts/download/download.py; nothing is downloaded here)")
        return read_image_list(list_path, root / entry["data_dir"], name=set_name, ood=ood)

    id_set = image_list(name, info[name]["id"]["test"], ood=False)
    groups = {}
    for group in ("near", "far"):
        entry = info[name]["ood"].get(group, {})
        groups[group] = [image_list(ds, entry[ds], ood=True) for ds in entry.get("datasets", [])]
    return _finish(name, id_set, groups)


# ----------------------------------------------------------------------------------------------------------------
# ImageNet four-OOD (MOS / MCM)

#: OOD set name -> folder names accepted under data_root (first match wins).
FOUR_OOD_FOLDERS = {
    "iNaturalist": ("iNaturalist", "inaturalist"),
    "SUN": ("SUN", "sun"),
    "Places": ("Places", "places", "Places365", "places365"),
    "Textures": ("Textures", "textures", "dtd", "DTD"),
}
_IMAGENET_VAL = ("imagenet/val", "ImageNet/val", "imagenet_1k/val", "ILSVRC2012/val")


def load_four_ood(data_root: str | os.PathLike, name: str = "four-ood") -> ImageBenchmark:
    """ImageNet-1k val as ID and iNaturalist, SUN, Places, Textures as far-OOD, from folders::

        data_root/
          imagenet/val/<wnid>/*.JPEG     1000 class folders (n01440764, ...); the label is the index of the wnid
                                         in sorted order, which is the ImageNet-1k class index
          iNaturalist/...                any nesting of images (e.g. iNaturalist/images/*.jpg)
          SUN/...
          Places/...
          Textures/...                   e.g. Textures/images/<texture>/*.jpg (DTD)

    ``imagenet_1k/val``, ``ImageNet/val`` or ``ILSVRC2012/val`` may stand for ``imagenet/val``; ``Places365`` for
    ``Places``; ``dtd`` for ``Textures`` (lower-case names work too). Images: jpg, jpeg, png, bmp, webp.
    """
    root = Path(data_root)
    problems = []
    val = next((root / c for c in _IMAGENET_VAL if (root / c).is_dir()), None)
    wnids = []
    if val is None:
        problems.append(f"ImageNet val: none of {', '.join(str(root / c) for c in _IMAGENET_VAL)} exists")
    else:
        entries = sorted(e for e in os.listdir(val) if not e.startswith("."))
        wnids = [e for e in entries if (val / e).is_dir()]
        bad = [w for w in wnids if not re.fullmatch(r"n\d{8}", w)]
        if bad:
            problems.append(f"ImageNet val {val}: subfolders that are not wnids: {bad[:_SHOW_MISSING]}")
        elif len(wnids) != 1000:
            loose = len(entries) - len(wnids)
            problems.append(f"ImageNet val {val}: {len(wnids)} class folders, expected the 1000 wnid folders"
                            + (f" ({loose} loose files: sort the flat val folder into <wnid>/ subfolders, e.g. "
                               "with the usual valprep.sh)" if loose else ""))
    ood_folders = {}
    for set_name, candidates in FOUR_OOD_FOLDERS.items():
        found = next((root / c for c in candidates if (root / c).is_dir()), None)
        if found is None:
            problems.append(f"{set_name}: none of {', '.join(candidates)} exists under {root}")
        ood_folders[set_name] = found
    if problems:
        raise MissingFileError(f"data_root {root} does not have the four-OOD layout:\n  " + "\n  ".join(problems)
                               + "\nExpected data_root/imagenet/val/<wnid>/*.JPEG and data_root/{iNaturalist,SUN,"
                               "Places,Textures}/ (see openood_tanl.evaluation.datasets.load_four_ood)")
    id_set = _folder_set(val, name="imagenet", ood=False, classes=wnids)
    far = [_folder_set(folder, name=set_name, ood=True) for set_name, folder in ood_folders.items()]
    return _finish(name, id_set, {"far": far})


# ----------------------------------------------------------------------------------------------------------------
# YAML spec

_SOURCE_KEYS = {"list", "root", "folder", "classes"}


def _spec_source(where: str, resolve, set_name: str, entry, ood: bool) -> ImageList:
    """One set of a spec (``{folder: ...}`` or ``{list: ..., root: ...}``), paths through ``resolve``."""
    context = f"{where}: set '{set_name}'"
    if not isinstance(entry, dict):
        raise UserError(f"{context} must be a mapping {{folder: ...}} or {{list: ..., root: ...}}")
    extra = set(entry) - _SOURCE_KEYS
    if extra:
        raise UserError(f"{context} has unknown keys {sorted(extra)}; allowed: folder, or list and root"
                        + ("" if ood else ", and classes with folder"))
    if ("folder" in entry) == ("list" in entry):
        raise UserError(f"{context} needs exactly one of 'folder' or 'list'")
    for key in ("folder", "list", "root"):
        if entry.get(key) is not None and not isinstance(entry[key], str):
            raise UserError(f"{context}: '{key}' must be a path (a string), got {type(entry[key]).__name__}")
    if "folder" in entry:
        if "root" in entry:
            raise UserError(f"{context}: 'root' goes with 'list', not 'folder'")
        classes = entry.get("classes")
        if classes is not None:
            if ood:
                raise UserError(f"{context}: 'classes' applies to the ID set only")
            if isinstance(classes, (str, os.PathLike)):
                classes_path = resolve(classes)
                if not classes_path.is_file():
                    raise MissingFileError(f"{context}: classes file {classes_path} does not exist")
                classes = [line.strip() for line in classes_path.read_text(encoding="utf-8").splitlines()
                           if line.strip() and not line.strip().startswith("#")]
            elif isinstance(classes, list) and all(isinstance(c, (str, int)) for c in classes):
                classes = [str(c) for c in classes]
            else:
                raise UserError(f"{context}: 'classes' must be a file path or a list of subfolder names "
                                "(strings)")
        return _folder_set(resolve(entry["folder"]), name=set_name, ood=ood, classes=classes)
    if "classes" in entry:
        raise UserError(f"{context}: 'classes' goes with 'folder'; a list carries its own labels")
    root = resolve(entry["root"]) if entry.get("root") is not None else None
    return read_image_list(resolve(entry["list"]), root, name=set_name, ood=ood)


def load_spec(spec_path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> ImageBenchmark:
    """A benchmark described by a YAML file::

        name: mybench                      # default: the file name without extension
        data_root: /data                   # optional; relative paths below are resolved against it
        id:
          folder: imagenet/val             # class label = index of the top-level subfolder, sorted ...
          classes: classes.txt             # ... unless classes (a file, one subfolder name a line, or a list)
        # or  id: {list: ids.txt, root: imgs/}   lines '<path> <label>'; image paths relative to root
        ood:
          near:
            ninco: {folder: ninco}
          far:
            textures: {list: textures.txt, root: dtd/}   # OOD labels are optional (always -1)

    Relative paths in the spec are resolved against the ``data_root`` argument, else the spec's ``data_root`` key
    (itself relative to the spec's folder), else the spec's folder. A list's ``root`` defaults to the list's
    folder. Folders are scanned recursively for jpg/jpeg/png/bmp/webp (any case), sorted.
    """
    from ..yaml_files import load_yaml

    spec_path = Path(spec_path)
    where = f"benchmark spec {spec_path}"
    spec = load_yaml(spec_path, "benchmark spec", "keys name, id, ood: see load_spec in openood_tanl.evaluation",
                     allow_aliases=False)
    unknown = set(spec) - {"name", "data_root", "id", "ood"}
    if unknown:
        raise UserError(f"{where} has unknown keys {sorted(unknown)}; allowed: name, data_root, id, ood")
    for key in ("name", "data_root"):
        if spec.get(key) is not None and not isinstance(spec[key], str):
            raise UserError(f"{where}: '{key}' must be a string, got {type(spec[key]).__name__}")
    name = str(spec.get("name") or spec_path.stem)
    if data_root is not None:
        base = Path(data_root)
    elif spec.get("data_root") is not None:
        base = spec_path.parent / str(spec["data_root"])
    else:
        base = spec_path.parent

    def resolve(value) -> Path:
        path = Path(os.path.expanduser(str(value)))
        return path if path.is_absolute() else base / path

    if "id" not in spec:
        raise UserError(f"{where} has no 'id' set")
    id_set = _spec_source(where, resolve, "id", spec["id"], ood=False)
    id_set.name = name
    ood = spec.get("ood")
    if not isinstance(ood, dict) or not ood:
        raise UserError(f"{where} needs 'ood': a mapping of groups (e.g. near, far) to {{set name: source}}")
    groups = {}
    for group, members in ood.items():
        names = [group, *(members if isinstance(members, dict) else ())]
        odd = next((n for n in names if not isinstance(n, (str, int)) or isinstance(n, bool)), None)
        if odd is not None:
            raise UserError(f"{where}: OOD group and set names must be strings, got {type(odd).__name__}")
        if not isinstance(members, dict) or not members:
            raise UserError(f"{where}: OOD group '{group}' must map set names to sources, e.g. "
                            "{textures: {folder: dtd/images}}")
        groups[str(group)] = [_spec_source(where, resolve, str(set_name), entry, ood=True)
                         for set_name, entry in members.items()]
    return _finish(name, id_set, groups)


# ----------------------------------------------------------------------------------------------------------------
# ID labels against class names


def match_id_classes(benchmark: ImageBenchmark, class_names: Sequence[str]) -> tuple[ImageBenchmark, str]:
    """Check the ID labels against ``class_names`` (label k is ``class_names[k]``); return the benchmark to use and
    one line saying which folder (or label) maps to which name.

    * Every label must name a class: a label >= ``len(class_names)`` is an error.
    * An ID set read from class folders in their sorted order (a spec without ``classes``) must have folders named
      like the classes (compared ignoring case, ``_`` vs space): in the same order it is used as is; in another
      order it is relabelled by name (said in the line); otherwise it is an error asking for the mapping (the
      spec's ``classes``: folder names in the order of the class names). A stated order (``classes``, or a
      benchmark's definition such as Four-OOD's sorted wnids) must list as many folders as there are names.
    """
    from ..corpus import normalize_label

    id_set, count = benchmark.id_set, len(class_names)
    folders = id_set.class_folders
    where = f"ID set '{id_set.name}' of benchmark '{benchmark.name}'"
    how = ""
    if folders is not None:
        if id_set.class_order_given and len(folders) != count:
            raise UserError(f"{where} has {len(folders)} class folders but there are {count} class names; give one "
                            "class name per class folder (the spec's 'classes' order = the class-name order)")
        if not id_set.class_order_given:
            keys, names = [normalize_label(f) for f in folders], [normalize_label(c) for c in class_names]
            if keys != names:
                if sorted(keys) == sorted(names) and len(set(names)) == len(names):
                    order = [names.index(k) for k in keys]  # folder label -> class index, by name
                    folders = [folders[keys.index(n)] for n in names]
                    id_set = ImageList(id_set.name, id_set.paths, [order[label] for label in id_set.labels],
                                       class_folders=folders, class_order_given=True)
                    benchmark = ImageBenchmark(benchmark.name, id_set, benchmark.ood_groups)
                    how = " (class folders matched to the class names by name)"
                else:
                    shown = ", ".join(folders[:_SHOW_MISSING]) + (", ..." if len(folders) > _SHOW_MISSING else "")
                    names_shown = ", ".join(repr(c) for c in class_names[:_SHOW_MISSING]) + (
                        ", ..." if count > _SHOW_MISSING else "")
                    raise UserError(
                        f"{where} is labelled by its {len(folders)} class folders in sorted order ({shown}), which "
                        f"do not name the {count} class names ({names_shown}): say which folder is which class "
                        "with 'classes' in the spec's id entry (the folder names in the order of the class names, "
                        "e.g. id: {folder: ..., classes: [" + ", ".join(folders[:3]) + ", ...]}), or name the "
                        "folders after the classes")
    top = max(id_set.labels)
    if top >= count:
        raise UserError(f"{where} has label {top}, but there are only {count} class names (labels 0..{count - 1}); "
                        "give the class names of every label, in label order")
    pairs = [f"{folders[k]} -> {class_names[k]!r}" if folders else f"label {k} -> {class_names[k]!r}"
             for k in range(min(count, _SHOW_MISSING))]
    more = f", ... ({count} classes)" if count > len(pairs) else ""
    line = f"ID classes of '{id_set.name}'{how}: " + ", ".join(pairs) + more
    return benchmark, line


def image_summary(benchmark: ImageBenchmark) -> dict:
    """Per set (the ID set as ``id``): its group, image count and the SHA-256 of its images' paths, sizes and
    modification times (what the feature cache keys them by): the run record's account of the images, so a set
    that gains, loses or changes an image gives the run another ``config_id``."""
    from .feature_cache import files_stamp

    entries = [("id", benchmark.id_set)] + benchmark.ood_sets()
    return {image_list.name: {"group": group, "images": len(image_list), "files_sha256": files_stamp(image_list.paths)}
            for group, image_list in entries}


# ----------------------------------------------------------------------------------------------------------------


def load_benchmark(name_or_path: str | os.PathLike, data_root: str | os.PathLike | None = None) -> ImageBenchmark:
    """An ``ImageBenchmark`` from a known name (``KNOWN_BENCHMARKS``) or a YAML spec path; see the module doc."""
    text = os.fspath(name_or_path)
    key = text.lower()
    if key in KNOWN_BENCHMARKS:
        if data_root is None:
            raise UserError(f"benchmark '{text}' needs data_root: "
                            + ("OpenOOD's data folder (benchmark_imglist/, images_*/)" if key in OPENOOD_BENCHMARKS
                                else "the folder with imagenet/val/ and iNaturalist/, SUN/, Places/, Textures/"))
        if not Path(data_root).is_dir():
            raise MissingFileError(f"data_root {data_root} of benchmark '{text}' is not a folder")
        if key in OPENOOD_BENCHMARKS:
            return load_openood(key, data_root)
        return load_four_ood(data_root, name="four-ood")
    if key.endswith((".yml", ".yaml")) or os.path.isfile(text):
        return load_spec(text, data_root)
    raise UserError(f"unknown benchmark '{text}': choose one of {', '.join(KNOWN_BENCHMARKS)}, or pass the path "
                    "of a YAML spec (see openood_tanl.evaluation.datasets.load_spec)")
