"""An open_clip model with its text bank attached: the network OpenOOD drives and our postprocessors read."""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..classnames import class_names, class_names_sha256
from ..corpus import Corpus, load_corpus
from ..embedding_cache import EmbeddingCache, default_cache_dir, fingerprint
from ..version import __version__
from .noise import noise_images
from .text_encoding import TEXT_ENCODINGS, encode_class_texts, trims_exactly

__all__ = ["CLIPNetwork", "create_network", "plan_text_bank", "TextBankPlan", "TEMPLATES"]

#: Prompt templates: the official code's single templates, or open_clip's OpenAI ensemble for ID classes and nouns.
NOUN_TEMPLATE = "The nice {}."
ADJECTIVE_TEMPLATE = "This is a {} photo."
TEMPLATES = ("official", "openai-ensemble")
PRECISIONS = ("fp32", "fp16")


class CLIPNetwork(nn.Module):
    """open_clip model + ID/corpus text embeddings + noise-image embeddings (``openood_tanl.CLIPNetwork``).

    ``net(x)`` returns [B, C] logits over the ID classes (OpenOOD's accuracy column); ``net(x, return_feat=True)``
    returns [B, D] L2-normalised float32 image embeddings.

    Attributes:
        id_text_features: [C, D]; corpus_text_features: [N, D]; noise_features: [K, D] (float32 buffers).
        logit_scale: CLIP's ``logit_scale.exp()`` (float).
        class_names, corpus: the ID class names and the negative-label ``Corpus`` (words and kinds).
        provenance: what built the text bank (recorded in every result file).
    """

    def __init__(self, clip_model: nn.Module, id_text_features: torch.Tensor, corpus_text_features: torch.Tensor,
                 noise_features: torch.Tensor, logit_scale: float, class_names: Sequence[str], corpus: Corpus):
        super().__init__()
        self.clip_model = clip_model
        self.register_buffer("id_text_features", id_text_features.float())
        self.register_buffer("corpus_text_features", corpus_text_features.float())
        self.register_buffer("noise_features", noise_features.float())
        self.logit_scale = float(logit_scale)
        self.class_names = list(class_names)
        self.corpus = corpus
        self.n_cls = len(self.class_names)  # the name OpenOOD-VLM's code reads
        self.model_key: dict | None = None  # set by create_network: what identifies the image encoder
        self.provenance: dict = {}  # set by create_network: backbone, weights, class names, corpus, prompts, noise

    @property
    def corpus_is_adjective(self) -> torch.Tensor:
        """[N] bool: which corpus words are adjectives (NegLabel's proportional selection)."""
        return torch.tensor([kind == "adjective" for kind in self.corpus.kinds], dtype=torch.bool)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] preprocessed images -> [B, D] L2-normalised float32 embeddings."""
        dtype = next(self.clip_model.parameters()).dtype
        features = self.clip_model.encode_image(images.to(dtype))
        return F.normalize(features.float(), dim=-1)

    def forward(self, x: torch.Tensor, return_feat: bool = False) -> torch.Tensor:
        features = self.encode_image(x)
        if return_feat:
            return features
        return self.logit_scale * features @ self.id_text_features.T


def _resolve_quick_gelu(model_name: str, pretrained: str | None, quick_gelu: bool | None) -> bool:
    """QuickGELU is what OpenAI's weights were trained with: choose it for them, warn on a forced mismatch."""
    import open_clip

    if model_name.endswith("-quickgelu"):
        return True
    tag_config = open_clip.get_pretrained_cfg(model_name, pretrained) if pretrained else {}
    wanted = bool(tag_config.get("quick_gelu", False)) if tag_config else None
    if quick_gelu is None:
        return bool(wanted)
    if wanted is not None and quick_gelu != wanted:
        warnings.warn(f"quick_gelu={quick_gelu} but the '{pretrained}' weights of {model_name} were trained with "
                      f"quick_gelu={wanted}: features will be degraded", UserWarning, stacklevel=3)
    return quick_gelu


def _check_model(model_name: str, pretrained: str | None) -> None:
    """An open_clip model name, and weights that are a file or one of its pretrained tags."""
    import open_clip

    if model_name not in open_clip.list_models():
        raise ValueError(f"unknown open_clip model '{model_name}'; choose one of open_clip.list_models() (e.g. "
                         "ViT-B-16) or register a config with open_clip.add_model_config(path)")
    is_file = pretrained is not None and os.path.isfile(pretrained)
    if pretrained and not is_file and not open_clip.get_pretrained_cfg(model_name, pretrained):
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise ValueError(f"'{pretrained}' is neither a file nor a pretrained tag of {model_name}; "
                         f"tags: {', '.join(tags) or 'none'}")


def _load_clip(model_name: str, pretrained: str | None, device, precision: str, quick_gelu: bool | None,
               weights_dir: str | None):
    import open_clip

    _check_model(model_name, pretrained)
    use_quick_gelu = _resolve_quick_gelu(model_name, pretrained, quick_gelu)
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=pretrained, device=device, precision=precision,
            force_quick_gelu=use_quick_gelu, cache_dir=weights_dir)
    except RuntimeError as error:
        if "download" in str(error).lower():
            raise RuntimeError(
                f"could not download the '{pretrained}' weights of {model_name} ({error}). Without internet, "
                f"download the checkpoint on a machine that has it (open_clip.create_model('{model_name}', "
                f"pretrained='{pretrained}') caches it) and pass its file path as pretrained='/path/to/checkpoint'"
                + (" with quick_gelu=True (OpenAI weights)" if use_quick_gelu else "")) from error
        raise
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)


def _noise_features(model, preprocess, cache: EmbeddingCache, model_key: dict, device, seed: int,
                    normalize: bool) -> torch.Tensor:
    """[15, D] L2-normalised embeddings of the noise images (cached); CLIP's normalisation only when ``normalize``."""
    image_size = model.visual.image_size
    normalisation = next((t for t in getattr(preprocess, "transforms", []) if type(t).__name__ == "Normalize"), None)

    def encode() -> torch.Tensor:
        images = noise_images(image_size if isinstance(image_size, int) else tuple(image_size), seed=seed)
        if normalize and normalisation is not None:
            images = normalisation(images)
        with torch.no_grad():
            dtype = next(model.parameters()).dtype
            return F.normalize(model.encode_image(images.to(device, dtype)).float(), dim=-1).cpu()

    key = {**model_key, "kind": "noise", "seed": seed, "normalized": normalize, "image_size": str(image_size)}
    return cache.get_or_compute("noise", key, encode)


def _weights_identity(pretrained: str | None) -> dict:
    if pretrained and os.path.isfile(pretrained):
        stat = os.stat(pretrained)
        return {"file": os.path.abspath(pretrained), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    return {"tag": pretrained}


def create_network(model_name: str = "ViT-B-16", pretrained: str | None = "openai", id_classes="imagenet",
                   corpus: str | os.PathLike = "wordnet", device: str | torch.device = "cpu",
                   cache_dir: str | os.PathLike | None = None, *, corpus_rules: str = "official",
                   templates: str = "official",
                   precision: str = "fp32", quick_gelu: bool | None = None, noise_seed: int = 0,
                   normalize_noise: bool = False, batch_size: int = 256,
                   model_config: str | os.PathLike | None = None):
    """Build the CLIP OOD network and its eval transform.

    Args:
        model_name: an open_clip model name (default ViT-B-16, the paper's backbone).
        pretrained: an open_clip pretrained tag (default OpenAI weights) or a local checkpoint path; None = random.
        id_classes: 'imagenet', 'imagenet-disambiguated', 'imagenet200', 'cifar10', 'cifar100', a list of names or a
            text file (one a line); see ``openood_tanl.classnames``.
        corpus: 'wordnet' (shipped, NegLabel's WordNet rule), 'wordnet-all-lemmas', a folder in NegLabel's layout
            (adj*.txt / noun*.txt, e.g. NegLabel's txtfiles/) or a word-list file; see ``openood_tanl.corpus``.
        corpus_rules: 'official' (exact de-duplication, the official file reading) or 'clean'.
        device: where the model runs ('cpu', 'cuda', ...).
        cache_dir: text-bank cache folder (default ``default_cache_dir()``).
        templates: 'official' ("The nice {}." for classes and nouns, "This is a {} photo." for adjectives) or
            'openai-ensemble' (open_clip's OpenAI ImageNet templates for classes and nouns, averaged).
        precision: 'fp32', or 'fp16' on CUDA.
        quick_gelu: None chooses QuickGELU for weights trained with it (OpenAI's); pass True for a local copy of
            OpenAI weights.
        noise_seed: seeds the 15 noise images; normalize_noise: apply CLIP's mean/std to them (the official code
            does not).
        batch_size: texts encoded per forward pass.
        model_config: an open_clip model-config JSON to register first (custom architectures).

    Everything that can fail without the model (class names, corpus, model name, weights tag, templates,
    precision) is checked first, by ``plan_text_bank``; the text bank's cache is keyed by each word list as read
    (before it is matched against the class names), so another class list re-encodes only the class names.

    Returns:
        (network, preprocess): a ``CLIPNetwork`` in eval mode and the eval transform (bicubic resize, center
        crop, CLIP mean/std), usable as OpenOOD's ``preprocessor``.
    """
    device = torch.device(device)
    if precision != "fp32" and device.type != "cuda":
        raise ValueError(f"precision '{precision}' needs a CUDA device; use precision='fp32' on {device}")
    plan = plan_text_bank(model_name, pretrained, id_classes, corpus, corpus_rules=corpus_rules, templates=templates,
                          precision=precision, quick_gelu=quick_gelu, noise_seed=noise_seed,
                          normalize_noise=normalize_noise, model_config=model_config)
    names, words, model_key = plan.names, plan.corpus, plan.model_key
    print(words.report())
    model, preprocess, tokenizer = _load_clip(model_name, pretrained, device, precision, quick_gelu,
                                              os.fspath(cache_dir) if cache_dir else None)
    cache = EmbeddingCache(cache_dir if cache_dir is not None else default_cache_dir())
    encoding = TEXT_ENCODINGS[0] if trims_exactly(model) else TEXT_ENCODINGS[1]

    def text_bank(kind: str, names_: Sequence[str], templates_: Sequence[str]) -> torch.Tensor:
        key = {**model_key, "kind": kind, "templates": list(templates_), "words": fingerprint(list(names_)),
               "encoding": encoding}

        def encode() -> torch.Tensor:
            print(f"encoding {len(names_)} {kind} x {len(templates_)} template(s) ({encoding})")
            return encode_class_texts(model, tokenizer, names_, templates_, device, batch_size, kind)[0]

        return cache.get_or_compute(kind, key, encode)

    id_text = text_bank("id-classes", names, plan.templates["classes"])
    corpus_text = torch.empty(len(words.words), id_text.shape[1])
    for kind, read in (("noun", words.input_nouns), ("adjective", words.input_adjectives)):
        rows = [i for i, k in enumerate(words.kinds) if k == kind]
        if rows:  # every word as read is encoded (and cached) once; the class names only select the rows
            row_of = {word: row for row, word in enumerate(read)}
            encoded = text_bank(f"{kind}s", read, plan.templates[f"{kind}s"])
            corpus_text[rows] = encoded[[row_of[words.words[i]] for i in rows]]

    noise = _noise_features(model, preprocess, cache, model_key, device, noise_seed, normalize_noise)
    network = CLIPNetwork(model, id_text, corpus_text, noise, model.logit_scale.exp().item(), names, words)
    network.model_key = model_key  # identifies the image encoder (feature caches are keyed by it)
    network.provenance = plan.provenance
    return network.to(device).eval(), preprocess


class TextBankPlan(NamedTuple):
    """What ``create_network`` will build, known before any model is loaded."""

    names: list[str]  # the ID class names
    corpus: Corpus
    templates: dict[str, list[str]]  # "classes", "nouns", "adjectives" -> prompt templates
    model_key: dict  # identifies the image encoder
    provenance: dict  # what a result file records about the text bank


def plan_text_bank(model_name: str = "ViT-B-16", pretrained: str | None = "openai", id_classes="imagenet",
                   corpus: str | os.PathLike = "wordnet", *, corpus_rules: str = "official",
                   templates: str = "official", precision: str = "fp32", quick_gelu: bool | None = None,
                   noise_seed: int = 0, normalize_noise: bool = False,
                   model_config: str | os.PathLike | None = None) -> TextBankPlan:
    """Check ``create_network``'s arguments and describe its text bank without loading a model (seconds: the
    class names, the corpus and open_clip's model and weights tables). Arguments as ``create_network``."""
    import open_clip

    if templates not in TEMPLATES:
        raise ValueError(f"templates must be one of {TEMPLATES}, got '{templates}'")
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got '{precision}'")
    if model_config is not None:
        if not Path(model_config).is_file():
            raise FileNotFoundError(f"model_config {model_config} does not exist (an open_clip model-config JSON)")
        open_clip.add_model_config(os.fspath(model_config))
    _check_model(model_name, pretrained)
    names = class_names(id_classes)
    words = load_corpus(corpus, names, rules=corpus_rules)
    if templates == "official":
        class_templates = noun_templates = [NOUN_TEMPLATE]
    else:
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES
        class_templates = noun_templates = [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]
    prompts = {"classes": list(class_templates), "nouns": list(noun_templates), "adjectives": [ADJECTIVE_TEMPLATE]}
    model_key = {"model": model_name, "weights": _weights_identity(pretrained),
                 "quick_gelu": _resolve_quick_gelu(model_name, pretrained, quick_gelu), "precision": precision}
    provenance = {
        "package": {"name": "openood-tanl", "version": __version__},
        "backbone": model_name, "pretrained": model_key["weights"], "quick_gelu": model_key["quick_gelu"],
        "precision": precision,
        "class_names": {"set": os.fspath(id_classes) if isinstance(id_classes, (str, os.PathLike)) else "list",
                        "count": len(names), "sha256": class_names_sha256(names)},
        "corpus": words.provenance(),
        "prompts": {"templates": templates, **prompts},
        "noise": {"seed": noise_seed, "normalized": normalize_noise},
    }
    return TextBankPlan(names, words, prompts, model_key, provenance)
