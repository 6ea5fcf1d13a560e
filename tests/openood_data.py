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
