"""OpenOOD v1.5's benchmark definitions: which image lists make each benchmark (``DATA_INFO``)."""
from __future__ import annotations

from typing import Mapping

from ..core.errors import MissingDependencyError

__all__ = ["data_info"]


def data_info() -> Mapping:
    """OpenOOD's ``DATA_INFO``: benchmark -> ID / OOD sets -> image lists (relative to OpenOOD's data folder)."""
    try:
        from openood.evaluation_api.datasets import DATA_INFO
    except ImportError as error:
        raise MissingDependencyError(
            f"the OpenOOD benchmarks (imagenet, imagenet200, cifar10, cifar100) are read from OpenOOD's own "
            f"definition, but OpenOOD cannot be imported ({error}). Install OpenOOD v1.5 (pip install "
            "git+https://github.com/Jingkang50/OpenOOD), or describe the benchmark with a YAML spec "
            "(see openood_tanl.evaluation.datasets.load_spec)") from error
    return DATA_INFO
