"""A tiny generated data tree in OpenOOD's layout (benchmark_imglist/ + images_classic/), read off DATA_INFO."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def _image_lists(node):
    """Yield (role, imglist_path) for every leaf of an OpenOOD DATA_INFO entry."""
    if isinstance(node, dict):
        if "imglist_path" in node:
            yield node["imglist_path"]
        for value in node.values():
            yield from _image_lists(value)


def make_openood_tree(root: Path, id_name: str = "cifar10", per_list: int = 6, seed: int = 0) -> Path:
    """Write ``per_list`` random 32x32 PNGs for every image list of benchmark ``id_name``; returns ``root``."""
    from openood.evaluation_api.datasets import DATA_INFO

    rng = np.random.default_rng(seed)
    info = DATA_INFO[id_name]
    num_classes = info["num_classes"]
    for imglist in sorted(set(_image_lists(info))):
        list_path = root / imglist
        dataset = list_path.stem.split("_", 1)[1]  # 'test_tin' -> 'tin'
        is_id = dataset == id_name
        lines = []
        for i in range(per_list):
            relative = f"{dataset}/{list_path.stem}_{i}.png"
            image_path = root / "images_classic" / relative
            image_path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).save(image_path)
            lines.append(f"{relative} {i % num_classes if is_id else -1}\n")
        list_path.parent.mkdir(parents=True, exist_ok=True)
        list_path.write_text("".join(lines))
    return root


def main_pipeline_command(tmp_path: Path, *, exp_name: str, near: list[str], far: list[str],
                          evaluator: dict | None = None, per_list: int = 6) -> tuple[list[str], Path]:
    """Build everything ``python -m openood_tanl.main`` needs for OpenOOD's test_ood pipeline on a generated
    cifar10 tree with the tiny CLIP network and ``tanl``; returns (command-line arguments, results folder)."""
    import sys

    import yaml

    import openood_tanl
    from helpers.tiny_clip import TINY_MODEL, make_tiny_checkpoint

    data = make_openood_tree(tmp_path / "data", "cifar10", per_list=per_list)
    checkpoint = make_tiny_checkpoint(tmp_path / "tiny")
    (tmp_path / "corpus.txt").write_text("\n".join(f"word{i}" for i in range(120)) + "\n")
    lists, images = data / "benchmark_imglist" / "cifar10", str(data / "images_classic") + "/"

    def split(name):
        return {"data_dir": images, "imglist_pth": str(lists / f"{name}.txt")}

    counters = {"num_workers": "@{num_workers}", "num_gpus": "@{num_gpus}", "num_machines": "@{num_machines}"}
    dataset = {"dataset": {
        "name": "cifar10", "num_classes": 10, "pre_size": 32, "image_size": 32, "interpolation": "bilinear",
        "normalization_type": "cifar10", **counters, "split_names": ["train", "val", "test"],
        **{s: {"dataset_class": "ImglistDataset", "batch_size": 4, "shuffle": False, **split(f"{s}_cifar10")}
           for s in ("train", "val", "test")}}}
    ood = {"ood_dataset": {
        "name": "cifar10_ood", "num_classes": 10, **counters, "dataset_class": "ImglistDataset", "batch_size": 4,
        "shuffle": False, "split_names": ["val", "nearood", "farood"], "val": split("val_tin"),
        "nearood": {"datasets": near, **{n: split(f"test_{n}") for n in near}},
        "farood": {"datasets": far, **{n: split(f"test_{n}") for n in far}}}}
    pipeline = {"exp_name": exp_name, "output_dir": str(tmp_path / "results"), "save_output": True,
                "merge_option": "merge", "mark": "default", "seed": 0, "num_gpus": 0, "num_workers": 0,
                "num_machines": 1, "machine_rank": 0, "pipeline": {"name": "test_ood"},
                "evaluator": {"name": "ood", "ood_scheme": "ood", **(evaluator or {})},
                "recorder": {"save_scores": False, "save_csv": True}, "preprocessor": {"name": "base"}}
    written = []
    for name, content in (("dataset", dataset), ("ood", ood), ("pipeline", pipeline)):
        path = tmp_path / f"{name}.yml"
        path.write_text(yaml.safe_dump(content))
        written.append(str(path))
    configs = [*written[:2], str(openood_tanl.config_root() / "networks" / "clip_tanl.yml"), written[2],
               str(openood_tanl.config_root() / "postprocessors" / "tanl.yml")]
    overrides = ["--network.model", TINY_MODEL, "--network.model_config", str(tmp_path / "tiny" / f"{TINY_MODEL}.json"),
                 "--network.weights", str(checkpoint), "--network.id_classes", "cifar10", "--network.corpus",
                 str(tmp_path / "corpus.txt"), "--network.cache_dir", str(tmp_path / "cache"),
                 "--postprocessor.postprocessor_args.num_negatives", "50"]
    command = [sys.executable, "-m", "openood_tanl.openood.main", "--config", *configs, *overrides]
    return command, tmp_path / "results" / exp_name


def subprocess_env() -> dict:
    """Environment for running this checkout's openood_tanl in a subprocess, offline."""
    import os

    repo = str(Path(__file__).resolve().parents[2])
    return {**os.environ, "HF_HUB_OFFLINE": "1",
            "PYTHONPATH": os.pathsep.join([repo, os.environ.get("PYTHONPATH", "")])}
