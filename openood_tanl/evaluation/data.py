"""The data of an evaluation: sets of images or of their embeddings, grouped into benchmarks.

A benchmark is an ID set and OOD sets grouped by split (``{'near': [...], 'far': [...]}``), whatever the sets hold:
``ImageBenchmark`` holds ``ImageList`` sets (files, before encoding), ``FeatureBenchmark`` holds ``FeatureSet`` sets
(embeddings, what the protocols replay).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Generic, Mapping, Sequence, TypeVar

from ..core.errors import UserError

if TYPE_CHECKING:
    import torch

__all__ = ["OOD_LABEL", "ImageList", "FeatureSet", "Benchmark", "ImageBenchmark", "FeatureBenchmark"]

#: The label of every OOD sample.
OOD_LABEL = -1

Set = TypeVar("Set")


@dataclass
class ImageList:
    """One dataset as image files: absolute ``paths`` and their ``labels`` (ID class index, or -1 for OOD).

    An ID set read from class folders also records ``class_folders`` (the folder of each label, in label order)
    and ``class_order_given`` (whether that order was stated, by a spec's ``classes`` or a benchmark's definition,
    rather than taken as the folders' sorted order).
    """

    name: str
    paths: list[str]
    labels: list[int]
    class_folders: list[str] | None = None
    class_order_given: bool = False

    def __post_init__(self):
        self.paths = [os.fspath(p) for p in self.paths]
        self.labels = [int(label) for label in self.labels]
        if len(self.paths) != len(self.labels):
            raise UserError(f"image list '{self.name}' has {len(self.paths)} paths but {len(self.labels)} labels")

    def __len__(self) -> int:
        return len(self.paths)


@dataclass
class FeatureSet:
    """Embeddings of one dataset: ``features`` [S, D]; ``labels`` [S] (ID class, or -1 for OOD)."""

    name: str
    features: torch.Tensor
    labels: torch.Tensor

    def __len__(self) -> int:
        return len(self.features)


def check_set_names(benchmark: str, groups: Mapping[str, Sequence[str]]) -> None:
    """The rows of a result table are named by OOD set, then one mean row per group (``near`` -> ``nearood``):
    refuse a set name given twice, two groups with one mean row, or a set named like a mean row."""
    from .tables import group_mean_name

    means: dict[str, str] = {}
    for group in groups:
        mean = group_mean_name(group)
        if mean in means:
            raise UserError(f"benchmark '{benchmark}': OOD groups '{means[mean]}' and '{group}' would share the mean "
                            f"row '{mean}'; rename one")
        means[mean] = group
    seen: dict[str, str] = {}
    for group, names in groups.items():
        for name in names:
            if name in seen:
                where = f"group '{group}'" if seen[name] == group else f"groups '{seen[name]}' and '{group}'"
                raise UserError(f"benchmark '{benchmark}': OOD set name '{name}' appears twice ({where}); each set "
                                "needs its own name (it names its row of the result tables)")
            if name in means:
                raise UserError(f"benchmark '{benchmark}': OOD set '{name}' (group '{group}') is named like the mean "
                                f"row of group '{means[name]}'; rename the set")
            seen[name] = group


@dataclass
class Benchmark(Generic[Set]):
    """An ID set and OOD sets grouped by split (e.g. ``{'near': [...], 'far': [...]}``)."""

    name: str
    id_set: Set
    ood_groups: Mapping[str, Sequence[Set]] = field(default_factory=dict)

    def __post_init__(self):
        check_set_names(self.name, {group: [s.name for s in sets] for group, sets in self.ood_groups.items()})

    def ood_sets(self) -> list[tuple[str, Set]]:
        """(group, set) for every OOD set, in group order."""
        return [(group, ood) for group, sets in self.ood_groups.items() for ood in sets]

    def sets(self) -> list[Set]:
        """The ID set, then every OOD set."""
        return [self.id_set] + [ood for _, ood in self.ood_sets()]


class ImageBenchmark(Benchmark[ImageList]):
    """A benchmark of image files."""


class FeatureBenchmark(Benchmark[FeatureSet]):
    """A benchmark of embeddings."""
