"""Image transforms: the official pipeline's (OpenOOD's test preprocessor as the TANL configs set it) or open_clip's.

The official TANL scripts preprocess with OpenOOD's ``TestStandardPreProcessor``: convert to RGB, resize the short
side to ``pre_size`` (bicubic), centre-crop ``image_size``, CLIP's mean/std. Its ImageNet configs (ImageNet,
ImageNet-200, Four-OOD, the hard-OOD sets) use ``pre_size`` 256 for ``image_size`` 224; its CIFAR configs 224 for
224. open_clip's eval transform resizes straight to the crop size (and converts to RGB after the crop).

    resolve_transform("auto", "imagenet")            -> "official"
    build_transform("official", "imagenet", 224, open_clip_preprocess)
        -> (Compose[RGB, Resize(256, bicubic), CenterCrop(224), ToTensor, Normalize(CLIP)], description)
"""
from __future__ import annotations

import os
from typing import Callable

from ..core.errors import UserError

__all__ = ["TRANSFORMS", "OFFICIAL_PRE_SIZE_RATIO", "resolve_transform", "build_transform", "ConvertRGB",
           "transform_family", "open_clip_eval_transform", "model_image_size", "preprocessed_as_openai"]

#: ``create_network(transform=...)`` / ``--transform``.
TRANSFORMS = ("auto", "official", "open_clip")

#: The official ImageNet configs resize the short side to 256 before a 224 crop.
OFFICIAL_PRE_SIZE_RATIO = 256 / 224

#: ID class sets and benchmarks the official code preprocesses as ImageNet or as CIFAR.
_FAMILIES = {"imagenet": "imagenet", "imagenet200": "imagenet", "imagenet-disambiguated": "imagenet",
             "four-ood": "imagenet", "imagenet-four-ood": "imagenet", "cifar10": "cifar", "cifar100": "cifar"}


def transform_family(id_classes, benchmark: str | None = None) -> str | None:
    """'imagenet', 'cifar' or None: how the official configs preprocess this benchmark (by name) or, without one
    the official code knows, these ID classes (a built-in set name)."""
    if benchmark is not None:
        family = _FAMILIES.get(os.path.basename(os.fspath(benchmark)))
        if family:
            return family
    return _FAMILIES.get(id_classes) if isinstance(id_classes, str) else None


def resolve_transform(transform: str, id_classes, benchmark: str | None = None, model_name: str | None = None,
                      pretrained: str | None = None) -> str:
    """'official' or 'open_clip': ``auto`` is the official transform for the official benchmarks and ID class sets
    (ImageNet, ImageNet-200, Four-OOD, CIFAR-10/100) with a model preprocessed as OpenAI's CLIP (its mean/std and a
    centre crop: OpenAI, LAION, EVA02), and open_clip's (the model's own: SigLIP squashes to 0.5 mean/std) for
    anything else."""
    if transform not in TRANSFORMS:
        raise UserError(f"transform must be one of {TRANSFORMS}, got {transform!r}")
    if transform == "auto":
        clip_like = model_name is None or preprocessed_as_openai(model_name, pretrained)
        return "official" if transform_family(id_classes, benchmark) and clip_like else "open_clip"
    return transform


def preprocessed_as_openai(model_name: str, pretrained: str | None = None) -> bool:
    """Whether open_clip preprocesses ``model_name`` (with the tag ``pretrained``) as OpenAI's CLIP: its mean/std and
    a shortest-side resize with a centre crop (what the official transform does, at 256/224)."""
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD

    settings = _preprocess_settings(model_name, pretrained)
    same_statistics = (tuple(settings["mean"]), tuple(settings["std"])) == (tuple(OPENAI_DATASET_MEAN),
                                                                            tuple(OPENAI_DATASET_STD))
    return same_statistics and settings["resize_mode"] == "shortest"


def _preprocess_settings(model_name: str, pretrained: str | None = None) -> dict:
    """open_clip's eval preprocessing settings of ``model_name``: its config's, then its pretrained tag's."""
    from dataclasses import asdict

    import open_clip
    from open_clip.transform import PreprocessCfg, merge_preprocess_dict

    config = open_clip.get_model_config(model_name) or {}
    settings = merge_preprocess_dict(asdict(PreprocessCfg()), config.get("preprocess_cfg", {}))
    if pretrained and not os.path.isfile(pretrained):
        settings = merge_preprocess_dict(settings, open_clip.get_pretrained_cfg(model_name, pretrained))
    return settings


class ConvertRGB:
    """PIL image -> RGB (first, as OpenOOD's test preprocessor: palette and greyscale images resize as RGB)."""

    def __call__(self, image):
        return image.convert("RGB")

    def __repr__(self) -> str:
        return "ConvertRGB()"


def build_transform(name: str, id_classes, image_size, open_clip_preprocess: Callable,
                    benchmark: str | None = None) -> tuple[Callable, dict]:
    """The transform ``name`` ('official' or 'open_clip', see ``resolve_transform``) for a model whose input is
    ``image_size``, and its description (for the run record).

    'official' resizes the short side to ``image_size`` for the CIFAR family and to ``256/224 * image_size`` (256
    for 224) otherwise, bicubic, then centre-crops ``image_size`` and applies CLIP's mean/std.
    """
    if name == "open_clip":
        return open_clip_preprocess, {"name": "open_clip", "steps": _steps(open_clip_preprocess)}
    from open_clip import OPENAI_DATASET_MEAN, OPENAI_DATASET_STD
    from torchvision import transforms as T

    size = image_size if isinstance(image_size, int) else max(image_size)
    family = transform_family(id_classes, benchmark) or "imagenet"
    pre_size = size if family == "cifar" else round(size * OFFICIAL_PRE_SIZE_RATIO)
    transform = T.Compose([ConvertRGB(), T.Resize(pre_size, interpolation=T.InterpolationMode.BICUBIC),
                           T.CenterCrop(size), T.ToTensor(),
                           T.Normalize(mean=OPENAI_DATASET_MEAN, std=OPENAI_DATASET_STD)])
    return transform, {"name": "official", "family": family, "resize": pre_size, "crop": size,
                       "interpolation": "bicubic", "mean": list(OPENAI_DATASET_MEAN), "std": list(OPENAI_DATASET_STD)}


def model_image_size(model_name: str):
    """The input size open_clip's config gives ``model_name`` (224 when it gives none), without building it."""
    import open_clip

    return ((open_clip.get_model_config(model_name) or {}).get("vision_cfg") or {}).get("image_size", 224)


def open_clip_eval_transform(model_name: str, pretrained: str | None = None) -> Callable:
    """open_clip's eval transform for ``model_name`` (and its pretrained tag's preprocessing, when ``pretrained``
    is one) without building the model: what ``create_network`` returns for ``transform='open_clip'``."""
    from open_clip.transform import PreprocessCfg, image_transform_v2

    settings = _preprocess_settings(model_name, pretrained)
    settings["size"] = model_image_size(model_name)
    return image_transform_v2(PreprocessCfg(**settings), is_train=False)


def _steps(transform: Callable) -> list[str]:
    import re

    steps = getattr(transform, "transforms", [transform])
    return [re.sub(r" at 0x[0-9a-fA-F]+", "", repr(step)) for step in steps]
