"""An open_clip model with its text bank attached: the network OpenOOD drives and our postprocessors read."""
from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import NamedTuple, Sequence

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..classnames import class_names, class_names_sha256
from ..core.errors import MissingDependencyError, MissingFileError, SetupError, UserError, UserTypeError
from ..core.neglabel import OFFICIAL_LAYOUT
from ..corpus import Corpus, load_corpus
from ..embedding_cache import EmbeddingCache, default_cache_dir, fingerprint
from ..version import __version__
from .checkpoints import OPENAI_FORMS, checkpoint_form, read_openai_state_dict
from .noise import noise_images
from .settings import TextBankSettings, parse_backbone
from .text_encoding import TEXT_ENCODINGS, encode_class_texts, encode_raw_prompts, trims_exactly
from .transforms import TRANSFORMS, build_transform, resolve_transform

__all__ = ["CLIPNetwork", "create_network", "build_network", "plan_text_bank", "TextBankPlan", "TextBankSettings",
           "TEMPLATES", "PRECISIONS", "OFFICIAL_NEGMINING", "QuickGELUWarning"]

logger = logging.getLogger(__name__)

#: Prompt templates: the official code's single templates, or open_clip's OpenAI ensemble for ID classes and nouns;
#: or CSP's whole text side (``openood_tanl.csp``: its prompts, raw-averaged, on its corpus rules).
NOUN_TEMPLATE = "The nice {}."
ADJECTIVE_TEMPLATE = "This is a {} photo."
TEMPLATES = ("official", "openai-ensemble", "csp")
#: fp32; fp16 (CUDA): a half-precision model, features normalised in float32; official-fp16 (CUDA or CPU): the
#: official run's numerics: a half-precision model, features normalised in float16 as the official code does,
#: and TANL's fp16 scoring (``core.OfficialFP16TANL``).
PRECISIONS = ("fp32", "fp16", "official-fp16")
#: ``negmining="official"``: what the official code ranks the corpus with whatever the backbone
#: (``clip_for_wordnet_prepare.py``: ``clip.load('ViT-B/16', 'cuda')``, a float16 model, with the official prompts).
OFFICIAL_NEGMINING = ("ViT-B-16", "openai", "official-fp16")


class QuickGELUWarning(UserWarning):
    """The activation chosen for a model may not be the one its weights were trained with."""


def model_dtype(model: nn.Module) -> torch.dtype:
    """The dtype the image tower computes in: its first convolution's or linear layer's (a half-precision open_clip
    model keeps norms and embeddings float32)."""
    layer = next((m for m in model.visual.modules() if isinstance(m, (nn.Conv2d, nn.Linear))), None)
    return layer.weight.dtype if layer is not None else next(model.visual.parameters()).dtype


def normalise(features: torch.Tensor, official_fp16: bool) -> torch.Tensor:
    """[R, D] -> L2-normalised float32: in float32, or (``official_fp16``) in the features' own dtype, as the
    official code divides its fp16 features by their norm."""
    if official_fp16:
        return (features / features.norm(dim=-1, keepdim=True)).float()
    return F.normalize(features.float(), dim=-1)


class CLIPNetwork(nn.Module):
    """open_clip model + ID/corpus text embeddings + noise-image embeddings (``openood_tanl.CLIPNetwork``).

    ``net(x)`` returns [B, C] logits over the ID classes (OpenOOD's accuracy column); ``net(x, return_feat=True)``
    returns [B, D] L2-normalised float32 image embeddings.

    Attributes:
        id_text_features: [C, D]; corpus_text_features: [N, D]; noise_features: [K, D] (float32 buffers).
        logit_scale: CLIP's ``logit_scale.exp()`` (float).
        negmining_text: (ID [C, D'], corpus [N, D']) texts of the model that ranks the corpus (``negmining``), or
            None: the network's own rank it.
        class_names, corpus: the ID class names and the negative-label ``Corpus`` (words and kinds).
        provenance: what built the text bank (recorded in every result file).
    """

    def __init__(self, clip_model: nn.Module, id_text_features: torch.Tensor, corpus_text_features: torch.Tensor,
                 noise_features: torch.Tensor, logit_scale: float, class_names: Sequence[str], corpus: Corpus,
                 precision: str = "fp32"):
        super().__init__()
        self.precision = precision  # one of PRECISIONS: how features are computed and which TANL numerics run
        self.clip_model = clip_model
        self.register_buffer("id_text_features", id_text_features.float())
        self.register_buffer("corpus_text_features", corpus_text_features.float())
        self.register_buffer("noise_features", noise_features.float())
        self.register_buffer("negmining_id_text", None, persistent=False)
        self.register_buffer("negmining_corpus_text", None, persistent=False)
        self.logit_scale = float(logit_scale)
        self.class_names = list(class_names)
        self.corpus = corpus
        self.n_cls = len(self.class_names)  # the name OpenOOD-VLM's code reads
        self.model_key: dict | None = None  # set by create_network: what identifies the image encoder
        self.provenance: dict = {}  # set by create_network: backbone, weights, class names, corpus, prompts, noise

    @property
    def negmining_text(self) -> tuple[torch.Tensor, torch.Tensor] | None:
        if self.negmining_id_text is None:
            return None
        return self.negmining_id_text, self.negmining_corpus_text

    @property
    def corpus_is_adjective(self) -> torch.Tensor:
        """[N] bool: which corpus words are adjectives (NegLabel's proportional selection)."""
        return torch.tensor([kind == "adjective" for kind in self.corpus.kinds], dtype=torch.bool)

    def encode_image(self, images: torch.Tensor) -> torch.Tensor:
        """[B, 3, H, W] preprocessed images -> [B, D] L2-normalised float32 embeddings (normalised in float16 under
        ``official-fp16``, so they hold float16 values)."""
        features = self.clip_model.encode_image(images.to(model_dtype(self.clip_model)))
        return normalise(features, self.precision == "official-fp16")

    def forward(self, x: torch.Tensor, return_feat: bool = False, return_feature: bool = False,
                return_feature_list: bool = False):
        """[B, C] ID logits; ``return_feat``: the [B, D] L2-normalised image embeddings (what our postprocessors
        read); OpenOOD's conventions for its feature-based postprocessors (KNN, ViM, MDS, ...):
        ``return_feature`` gives (logits, embeddings), ``return_feature_list`` (logits, [embeddings])."""
        features = self.encode_image(x)
        if return_feat:
            return features
        logits = self.logit_scale * features @ self.id_text_features.T
        if return_feature:
            return logits, features
        if return_feature_list:
            return logits, [features]
        return logits

    def get_fc(self):
        """OpenOOD's classifier-head accessor: (weight [C, D], bias [C]) as numpy, ``logits = features @ W.T + b``
        (W = logit_scale * the ID text embeddings, b = 0)."""
        layer = self.get_fc_layer()
        return layer.weight.detach().cpu().numpy(), layer.bias.detach().cpu().numpy()

    def get_fc_layer(self) -> nn.Linear:
        """The ID logits as an ``nn.Linear`` over the image embeddings (OpenOOD's ``get_fc_layer``)."""
        classes, dim = self.id_text_features.shape
        layer = nn.Linear(dim, classes, device=self.id_text_features.device)
        with torch.no_grad():
            layer.weight.copy_(self.logit_scale * self.id_text_features)
            layer.bias.zero_()
        return layer.requires_grad_(False)


def _quick_gelu_tags(model_name: str) -> list[str]:
    import open_clip

    return [tag for tag in open_clip.list_pretrained_tags_by_model(model_name)
            if open_clip.get_pretrained_cfg(model_name, tag).get("quick_gelu")]


def _resolve_quick_gelu(model_name: str, pretrained: str | None, quick_gelu: bool | None,
                        form: str | None = None) -> tuple[bool, str]:
    """(QuickGELU or not, what decided it). QuickGELU is what OpenAI's weights were trained with: it is chosen where
    the weights tell (a pretrained tag, an OpenAI checkpoint file ``form``); a forced mismatch warns, and so does a
    local checkpoint whose activation cannot be known for a model some of whose tags need QuickGELU."""
    import open_clip

    if model_name.endswith("-quickgelu"):
        return True, "the model name"
    if (open_clip.get_model_config(model_name) or {}).get("quick_gelu"):  # open_clip builds it whatever is forced
        return True, "the model config"
    if form in OPENAI_FORMS:
        wanted, told_by = True, f"the OpenAI checkpoint ({form})"
    elif form is None and pretrained:
        tag_config = open_clip.get_pretrained_cfg(model_name, pretrained)
        wanted, told_by = bool(tag_config.get("quick_gelu", False)), f"the '{pretrained}' weights"
    else:
        wanted, told_by = None, None
    if quick_gelu is None:
        if wanted is not None:
            return wanted, told_by
        tags = _quick_gelu_tags(model_name) if form is not None else []
        if tags:
            warnings.warn(f"the local checkpoint {pretrained} does not say which activation {model_name} was trained "
                          f"with: running GELU. Weights trained with QuickGELU (OpenAI's, and {model_name}'s "
                          f"{', '.join(repr(t) for t in tags)} tags) need quick_gelu=True (--quick-gelu) or their "
                          "features are wrong; pass quick_gelu=False (--no-quick-gelu) if GELU is right",
                          QuickGELUWarning, stacklevel=5)
        return False, "default (GELU)" + ("; the checkpoint does not tell" if form is not None else "")
    if wanted is not None and quick_gelu != wanted:
        warnings.warn(f"quick_gelu={quick_gelu} but {told_by} of {model_name} were trained with "
                      f"quick_gelu={wanted}: features will be degraded", QuickGELUWarning, stacklevel=5)
    return bool(quick_gelu), f"quick_gelu={quick_gelu}"


def _check_model(model_name: str, pretrained: str | None) -> None:
    """An open_clip model name, and weights that are a file or one of its pretrained tags."""
    import open_clip

    if model_name not in open_clip.list_models():
        raise UserError(f"unknown open_clip model '{model_name}'; choose one of open_clip.list_models() (e.g. "
                        "ViT-B-16) or register a config with open_clip.add_model_config(path)")
    _check_tokenizer_dependencies(model_name)
    is_file = pretrained is not None and os.path.isfile(pretrained)
    if pretrained and not is_file and not open_clip.get_pretrained_cfg(model_name, pretrained):
        tags = open_clip.list_pretrained_tags_by_model(model_name)
        raise UserError(f"'{pretrained}' is neither a file nor a pretrained tag of {model_name}; "
                        f"tags: {', '.join(tags) or 'none'}")


def model_family(model_name: str) -> str:
    """The architecture family of an open_clip model, from its config: 'resnet' (OpenAI's modified ResNet with
    attention pooling), 'timm:<trunk>' (a timm image tower, e.g. EVA02), 'vit'; '+hf-text' where the text side uses
    a Hugging Face tokenizer (SigLIP, SigLIP2)."""
    import open_clip

    config = open_clip.get_model_config(model_name) or {}
    vision, text = config.get("vision_cfg") or {}, config.get("text_cfg") or {}
    if vision.get("timm_model_name"):
        family = f"timm:{vision['timm_model_name']}"
    else:
        family = "resnet" if isinstance(vision.get("layers"), (list, tuple)) else "vit"
    return family + ("+hf-text" if text.get("hf_tokenizer_name") or text.get("hf_model_name") else "")


def _check_tokenizer_dependencies(model_name: str) -> None:
    """A model whose text side needs Hugging Face's libraries (SigLIP's tokenizer) has them, or a one-line error
    naming the extra that installs them."""
    import importlib.util

    import open_clip

    text = (open_clip.get_model_config(model_name) or {}).get("text_cfg") or {}
    if not (text.get("hf_tokenizer_name") or text.get("hf_model_name")):
        return
    def installed(module: str) -> bool:
        try:
            return importlib.util.find_spec(module) is not None
        except ModuleNotFoundError:  # a dotted name whose parent package is absent
            return False

    missing = [name for name, module in (("transformers", "transformers"), ("sentencepiece", "sentencepiece"),
                                         ("protobuf", "google.protobuf")) if not installed(module)]
    if missing:
        raise MissingDependencyError(f"{model_name}'s text side needs {' and '.join(missing)} (its Hugging Face "
                                     "tokenizer): pip install \"openood-tanl[siglip]\"")


def _open_clip_precision(precision: str) -> str:
    return "fp16" if precision == "official-fp16" else precision


def _load_clip(model_name: str, pretrained: str | None, device, precision: str, use_quick_gelu: bool,
               weights_dir: str | None, form: str | None):
    """(model in eval mode, open_clip's eval transform, tokenizer). OpenAI checkpoint files are read as open_clip's
    OpenAI loader reads them (``checkpoints.read_openai_state_dict``) into the model ``model_name`` names."""
    import open_clip

    _check_model(model_name, pretrained)
    openai_file = form in OPENAI_FORMS
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(
            model_name, pretrained=None if openai_file else pretrained, device="cpu" if openai_file else device,
            precision=_open_clip_precision(precision), force_quick_gelu=use_quick_gelu, cache_dir=weights_dir)
    except RuntimeError as error:
        if pretrained and form is None and not os.path.isfile(pretrained) and "download" in str(error).lower():
            raise SetupError(
                f"could not download the '{pretrained}' weights of {model_name} ({error}). Without internet, "
                f"download the checkpoint on a machine that has it (open_clip.create_model('{model_name}', "
                f"pretrained='{pretrained}') caches it, or OpenAI's own {model_name}.pt archive) and pass its file "
                "path as pretrained='/path/to/checkpoint' (CLI: --pretrained /path/to/checkpoint; add "
                "quick_gelu=True / --quick-gelu for OpenAI's weights saved as a plain state dict)") from error
        raise
    if openai_file:
        try:
            model.load_state_dict(read_openai_state_dict(pretrained))
        except RuntimeError as error:
            raise UserError(f"the OpenAI checkpoint {pretrained} does not fit open_clip's {model_name}: "
                            f"{' '.join(str(error).split())[:600]}; pass the model name of its architecture "
                            "(e.g. ViT-B-16 for ViT-B-16.pt, RN50 for RN50.pt)") from None
        model = model.to(device)
    return model.eval(), preprocess, open_clip.get_tokenizer(model_name)


def _noise_features(model, normalisation, cache: EmbeddingCache, model_key: dict, device, seed: int,
                    normalize: bool, official_fp16: bool) -> torch.Tensor:
    """[15, D] L2-normalised embeddings of the noise images (cached); CLIP's normalisation only when ``normalize``."""
    image_size = model.visual.image_size

    def encode() -> torch.Tensor:
        images = noise_images(image_size if isinstance(image_size, int) else tuple(image_size), seed=seed)
        if normalize and normalisation is not None:
            images = normalisation(images)
        with torch.no_grad():
            features = model.encode_image(images.to(device, model_dtype(model)))
            return normalise(features, official_fp16).cpu()

    key = {**model_key, "kind": "noise", "seed": seed, "normalized": normalize, "image_size": str(image_size)}
    return cache.get_or_compute("noise", key, encode)


def _prompts_as_encoded(model_name: str, prompts: dict, names: Sequence[str]) -> dict:
    """Where the model's tokenizer rewrites text before encoding it (SigLIP's canonicalises: lower case, punctuation
    dropped), how: ``{"text_cleaning": mode, "as_encoded": {kind: the first class name's prompts as encoded}}``;
    ``{}`` where prompts are encoded as written."""
    import open_clip
    from open_clip.tokenizer import get_clean_fn

    text = (open_clip.get_model_config(model_name) or {}).get("text_cfg") or {}
    mode = (text.get("tokenizer_kwargs") or {}).get("clean")
    if not text.get("hf_tokenizer_name") or mode in (None, "whitespace"):
        return {}
    clean = get_clean_fn(mode)
    example = names[0] if names else "x"
    return {"text_cleaning": mode,
            "as_encoded": {kind: [clean(t.format(example)) for t in templates] for kind, templates in prompts.items()}}


def _weights_fingerprint(model: torch.nn.Module) -> str:
    """SHA-256 of a model's weights (names, shapes, dtypes and bytes)."""
    import hashlib

    digest = hashlib.sha256()
    for name, tensor in model.state_dict().items():
        digest.update(f"{name}:{tuple(tensor.shape)}:{tensor.dtype}".encode())
        digest.update(tensor.detach().cpu().contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def _weights_identity(pretrained: str | None, form: str | None = None) -> dict:
    if pretrained and os.path.isfile(pretrained):
        stat = os.stat(pretrained)
        identity = {"file": os.path.abspath(pretrained), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
        return {**identity, "form": form} if form else identity
    return {"tag": pretrained}


def _text_bank(model, tokenizer, plan: "TextBankPlan", cache: EmbeddingCache, device, batch_size: int,
               official_fp16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """([C, D] ID class texts, [N, D] corpus texts), each word list as read encoded (and cached) once."""
    # the official bits under official-fp16: every prompt at the full context, as the official code encodes it
    encoding = TEXT_ENCODINGS[0] if trims_exactly(model) and not official_fp16 else TEXT_ENCODINGS[1]

    def encoded(kind: str, names_: Sequence[str], templates_: Sequence[str]) -> torch.Tensor:
        key = {**plan.model_key, "kind": kind, "templates": list(templates_), "words": fingerprint(list(names_)),
               "encoding": encoding}

        def encode() -> torch.Tensor:
            logger.info("encoding %d %s x %d template(s) (%s)", len(names_), kind, len(templates_), encoding)
            return encode_class_texts(model, tokenizer, names_, templates_, device, batch_size, kind,
                                      full_context=official_fp16)[0]

        return cache.get_or_compute(kind, key, encode)

    words = plan.corpus
    id_text = encoded("id-classes", plan.names, plan.templates["classes"])
    corpus_text = torch.empty(len(words.words), id_text.shape[1])
    for kind, read in (("noun", words.input_nouns), ("adjective", words.input_adjectives)):
        rows = [i for i, k in enumerate(words.kinds) if k == kind]
        if rows:  # every word as read is encoded (and cached) once; the class names only select the rows
            row_of = {word: row for row, word in enumerate(read)}
            texts = encoded(f"{kind}s", read, plan.templates[f"{kind}s"])
            corpus_text[rows] = texts[[row_of[words.words[i]] for i in rows]]
    return id_text, corpus_text


def _csp_text_bank(model, tokenizer, plan: "TextBankPlan", cache: EmbeddingCache, device, batch_size: int,
                   official_fp16: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """CSP's ([C, D] ID texts, [N, D] corpus texts) (``openood_tanl.csp``), each part cached by its prompts."""
    from ..csp import average_prompts, csp_text_bank

    encoding = TEXT_ENCODINGS[0] if trims_exactly(model) and not official_fp16 else TEXT_ENCODINGS[1]

    def embed(part: str, prompt_sets: list[list[str]]) -> torch.Tensor:
        key = {**plan.model_key, "kind": f"csp-{part}", "prompts": fingerprint(prompt_sets), "averaging": "raw",
               "encoding": encoding}

        def encode_text(prompts: list[str]) -> torch.Tensor:
            logger.info("encoding %d CSP %s prompts (%s)", len(prompts), part, encoding)
            return encode_raw_prompts(model, tokenizer, prompts, device, batch_size, f"CSP {part}",
                                      full_context=official_fp16)[0]

        return cache.get_or_compute(f"csp-{part}", key, lambda: average_prompts(prompt_sets, encode_text))

    bank = csp_text_bank(plan.corpus, plan.names, None, seed=plan.provenance["prompts"]["seed"], embed=embed)
    return bank.id_text_features, bank.corpus_text_features


def create_network(model_name: str = "ViT-B-16", pretrained: str | None = "openai", id_classes="imagenet",
                   corpus: str | os.PathLike = "wordnet", device: str | torch.device = "cpu",
                   cache_dir: str | os.PathLike | None = None, *, corpus_rules: str = "official",
                   templates: str = "official", transform: str = "auto", benchmark: str | None = None,
                   precision: str = "fp32", quick_gelu: bool | None = None, noise_seed: int = 0,
                   normalize_noise: bool = False, batch_size: int = 256,
                   model_config: str | os.PathLike | None = None, negmining: str = "own"):
    """Build the CLIP OOD network and its image transform.

    Args:
        model_name: an open_clip model name (default ViT-B-16, the paper's backbone).
        pretrained: an open_clip pretrained tag (default OpenAI weights) or a local checkpoint file: OpenAI's
            TorchScript archive (``ViT-B-16.pt``), a state dict taken from it, a state dict, ``{"state_dict": ...}``
            or ``.safetensors``; None = random weights.
        id_classes: 'imagenet', 'imagenet-disambiguated', 'imagenet200', 'cifar10', 'cifar100', a list of names or a
            text file (one a line); see ``openood_tanl.classnames``.
        corpus: 'wordnet' (shipped, NegLabel's WordNet rule), 'wordnet-all-lemmas', a folder in NegLabel's layout
            (adj*.txt / noun*.txt, e.g. NegLabel's txtfiles/) or a word-list file; see ``openood_tanl.corpus``.
        corpus_rules: 'official' (exact de-duplication, the official file reading) or 'clean'.
        device: where the model runs ('cpu', 'cuda', ...).
        cache_dir: text-bank cache folder (default ``default_cache_dir()``).
        templates: 'official' ("The nice {}." for classes and nouns, "This is a {} photo." for adjectives),
            'openai-ensemble' (open_clip's OpenAI ImageNet templates for classes and nouns, averaged) or 'csp'
            (CSP's text side, ``openood_tanl.csp``: the corpus read with the 'csp' rules, which a corpus_rules of
            'official' (the default) or 'csp' means here, its prompts, raw embeddings averaged; seed 0).
        transform: 'auto' (the official transform for the official benchmarks and class sets, open_clip's for any
            other), 'official' (RGB, short side to 256 bicubic, centre crop 224, CLIP mean/std; 224 -> 224 for
            CIFAR) or 'open_clip' (open_clip's eval transform); see ``networks.transforms``.
        benchmark: the benchmark the images come from, when known ('four-ood', 'imagenet', ...): decides 'auto'.
        precision: 'fp32'; 'fp16' (CUDA: a half-precision model, features normalised in float32); 'official-fp16'
            (CUDA or CPU: the official run's numerics, see ``PRECISIONS``).
        quick_gelu: None chooses it where the weights tell (a pretrained tag, an OpenAI checkpoint file) and warns
            where a local checkpoint cannot tell for a model some of whose tags need it; True/False forces it.
        noise_seed: seeds the 15 noise images; normalize_noise: apply CLIP's mean/std to them (the official code
            does not).
        batch_size: texts encoded per forward pass.
        model_config: an open_clip model-config JSON to register first (custom architectures).
        negmining: what ranks the corpus for NegLabel's selection (NegLabel, AdaNeg) and TANL's corpus layout:
            'own' (this model's texts; the corpus in its order), 'official' (as the official code whatever the
            backbone: OpenAI ViT-B-16 in float16 with the official prompts, and TANL's corpus laid out as the
            official network does, ``core.neglabel.OFFICIAL_LAYOUT``) or 'MODEL:WEIGHTS' (that open_clip model, at this
            ``precision``, the same way). The network carries its texts as ``negmining_text``.

    Everything that can fail without the model (class names, corpus, model name, weights tag or file, templates,
    transform, precision) is checked first, by ``plan_text_bank``; the text bank's cache is keyed by each word
    list as read (before it is matched against the class names), so another class list re-encodes only the class
    names.

    Returns:
        (network, preprocess): a ``CLIPNetwork`` in eval mode and the image transform, usable as OpenOOD's
        ``preprocessor`` (``network.provenance["image_transform"]`` says which).
    """
    return build_network(TextBankSettings(**locals()))  # every argument is a field, in order (a test pins both)


def _check_model_config(path: Path) -> None:
    """``path`` holds an open_clip model config (a JSON object with embed_dim, vision_cfg and text_cfg)."""
    try:
        config = json.loads(path.read_text())
    except (ValueError, UnicodeDecodeError) as error:
        raise UserError(f"model_config {path} is not an open_clip model-config JSON ({error})") from None
    config = config if isinstance(config, dict) else {}
    missing = [key for key in ("embed_dim", "vision_cfg", "text_cfg") if key not in config]
    if missing:
        raise UserError(f"model_config {path} is not an open_clip model-config JSON: it lacks {missing} (see "
                        "open_clip's model_configs/*.json)")


def build_network(settings: TextBankSettings):
    """``create_network`` from its ``TextBankSettings``: (network, preprocess)."""
    device = torch.device(settings.device)
    if settings.precision == "fp16" and device.type != "cuda":
        raise UserError(f"precision 'fp16' needs a CUDA device; use 'fp32' or 'official-fp16' on {device}")
    plan = _plan(settings)
    names, words, model_key = plan.names, plan.corpus, plan.model_key
    logger.info(words.report())
    cache_dir = settings.cache_dir
    model, open_clip_preprocess, tokenizer = _load_clip(
        settings.model_name, settings.pretrained, device, settings.precision, model_key["quick_gelu"],
        os.fspath(cache_dir) if cache_dir else None, model_key["weights"].get("form"))
    if settings.pretrained is None:  # random weights: the caches are keyed by these weights, not by the tag None
        model_key = {**model_key, "weights": {"tag": None, "random": _weights_fingerprint(model)}}
        plan = plan._replace(model_key=model_key)
    preprocess, _ = build_transform(plan.provenance["image_transform"]["name"], settings.id_classes,
                                    model.visual.image_size, open_clip_preprocess, settings.benchmark)
    cache = EmbeddingCache(cache_dir if cache_dir is not None else default_cache_dir())
    official_fp16 = settings.precision == "official-fp16"
    build_text = _csp_text_bank if settings.templates == "csp" else _text_bank
    id_text, corpus_text = build_text(model, tokenizer, plan, cache, device, settings.batch_size, official_fp16)
    normalisation = next((t for t in getattr(open_clip_preprocess, "transforms", [])
                          if type(t).__name__ == "Normalize"), None)
    noise = _noise_features(model, normalisation, cache, model_key, device, settings.noise_seed,
                            settings.normalize_noise, official_fp16)
    network = CLIPNetwork(model, id_text, corpus_text, noise, model.logit_scale.exp().item(), names, words,
                          settings.precision)
    network.model_key = model_key  # identifies the image encoder (feature caches are keyed by it)
    network.provenance = {**plan.provenance, "logit_scale": network.logit_scale}  # the weights' own
    network = network.to(device).eval()
    mining = _negmining_settings(settings)
    if mining is not None:
        mining_id, mining_corpus = (network.id_text_features, network.corpus_text_features) \
            if _ranks_as_itself(settings, mining) else _mining_texts(mining)
        network.negmining_id_text, network.negmining_corpus_text = mining_id.to(device), mining_corpus.to(device)
    return network, preprocess


def _negmining_settings(settings: TextBankSettings) -> TextBankSettings | None:
    """The text bank whose texts rank the corpus (``negmining``), or None for the network's own."""
    value = settings.negmining
    if not isinstance(value, str):
        raise UserTypeError(f"negmining must be 'own', 'official' or 'MODEL:WEIGHTS', not {type(value).__name__}")
    if value == "own":
        return None
    if settings.templates == "csp":
        raise UserError("negmining ranks the NegLabel/TANL text bank's corpus; CSP's bank (templates='csp') ranks "
                        "its pool with its own model: leave negmining='own' there")
    model, weights, precision = OFFICIAL_NEGMINING if value == "official" else \
        (*parse_backbone(value, "negmining ('own', 'official' or MODEL:WEIGHTS)"), settings.precision)
    return settings.replace(model_name=model, pretrained=weights, precision=precision, templates="official",
                            quick_gelu=None, transform="open_clip", benchmark=None, negmining="own")


def _ranks_as_itself(settings: TextBankSettings, mining: TextBankSettings) -> bool:
    """Whether the mining text bank is the network's own (the same model, weights, activation, precision and
    prompts)."""
    return (settings.templates == "official" and settings.quick_gelu is None and
            (settings.model_name, settings.pretrained, settings.precision) ==
            (mining.model_name, mining.pretrained, mining.precision))


def _mining_texts(mining: TextBankSettings) -> tuple[torch.Tensor, torch.Tensor]:
    """(ID [C, D'], corpus [N, D']) texts of the ``negmining`` model (its text bank, cached as any)."""
    logger.info("negmining: ranking the corpus with %s (%s, %s)", mining.model_name, mining.pretrained,
                mining.precision)
    network, _ = build_network(mining)
    return network.id_text_features, network.corpus_text_features


class TextBankPlan(NamedTuple):
    """What ``create_network`` will build, known before any model is loaded."""

    names: list[str]  # the ID class names
    corpus: Corpus
    templates: dict[str, list[str]]  # "classes", "nouns", "adjectives" -> prompt templates
    model_key: dict  # identifies the image encoder
    provenance: dict  # what a result file records about the text bank and the image side


def _image_size(model_name: str):
    import open_clip

    config = open_clip.get_model_config(model_name) or {}
    return (config.get("vision_cfg") or {}).get("image_size", 224)


def plan_text_bank(settings: TextBankSettings | str | None = None, *arguments, **keywords) -> TextBankPlan:
    """Check ``create_network``'s arguments and describe its text bank without loading a model (seconds: the
    class names, the corpus, open_clip's model and weights tables, a checkpoint file's form).

    ``settings``: a ``TextBankSettings``; or, as ``create_network``, its arguments (``plan_text_bank(model_name,
    pretrained, id_classes, corpus, corpus_rules=..., ...)``). ``device``, ``cache_dir`` and ``batch_size`` are
    not read.
    """
    if not isinstance(settings, TextBankSettings):
        settings = TextBankSettings(*(() if settings is None else (settings,)), *arguments, **keywords)
    elif arguments or keywords:
        raise UserTypeError("plan_text_bank takes a TextBankSettings or create_network's arguments, not both")
    return _plan(settings)


def _corpus_rules(settings: TextBankSettings) -> str:
    """The corpus rules of ``settings``: CSP's for templates='csp' (which refuses 'clean')."""
    if settings.templates != "csp":
        return settings.corpus_rules
    if settings.corpus_rules not in ("official", "csp"):
        raise UserError(f"templates='csp' reads the corpus with CSP's rules; corpus_rules='{settings.corpus_rules}' "
                        "does not go with it (use corpus_rules='csp' or leave the default)")
    return "csp"


def _prompt_templates(templates: str) -> dict:
    """The prompt templates of each part of the text bank (what the provenance records)."""
    if templates == "csp":
        from ..csp import ADJECTIVE_TEMPLATES, NOUN_TEMPLATES, SUPERCLASS_PHRASES

        return {"classes": list(NOUN_TEMPLATES), "nouns": list(NOUN_TEMPLATES), "adjectives": list(ADJECTIVE_TEMPLATES),
                "superclass_phrases": list(SUPERCLASS_PHRASES), "seed": 0, "averaging": "raw"}
    if templates == "official":
        class_templates = noun_templates = [NOUN_TEMPLATE]
    else:
        from open_clip.zero_shot_metadata import OPENAI_IMAGENET_TEMPLATES
        class_templates = noun_templates = [t("{}") for t in OPENAI_IMAGENET_TEMPLATES]
    return {"classes": list(class_templates), "nouns": list(noun_templates), "adjectives": [ADJECTIVE_TEMPLATE]}


def _plan(settings: TextBankSettings) -> TextBankPlan:
    """``plan_text_bank`` of ``settings``."""
    import open_clip

    model_name, pretrained, id_classes, corpus = (settings.model_name, settings.pretrained, settings.id_classes,
                                                  settings.corpus)
    templates, transform, benchmark = settings.templates, settings.transform, settings.benchmark
    precision, model_config = settings.precision, settings.model_config

    if templates not in TEMPLATES:
        raise UserError(f"templates must be one of {TEMPLATES}, got '{templates}'")
    if precision not in PRECISIONS:
        raise UserError(f"precision must be one of {PRECISIONS}, got '{precision}'")
    if transform not in TRANSFORMS:
        raise UserError(f"transform must be one of {TRANSFORMS}, got '{transform}'")
    if model_config is not None:
        if not Path(model_config).is_file():
            raise MissingFileError(f"model_config {model_config} does not exist (an open_clip model-config JSON)")
        _check_model_config(Path(model_config))  # before open_clip keeps the file in its registry
        open_clip.add_model_config(os.fspath(model_config))
    _check_model(model_name, pretrained)
    mining = _negmining_settings(settings)
    names = class_names(id_classes)
    words = load_corpus(corpus, names, rules=_corpus_rules(settings))
    prompts = _prompt_templates(templates)
    form = checkpoint_form(pretrained) if pretrained and os.path.isfile(pretrained) else None
    use_quick_gelu, chosen_by = _resolve_quick_gelu(model_name, pretrained, settings.quick_gelu, form)
    model_key = {"model": model_name, "config": fingerprint(open_clip.get_model_config(model_name)),
                 "weights": _weights_identity(pretrained, form), "quick_gelu": use_quick_gelu, "precision": precision}
    transform_name = resolve_transform(transform, id_classes, benchmark, model_name, pretrained)
    image_transform = {"name": "open_clip"} if transform_name == "open_clip" else \
        build_transform("official", id_classes, _image_size(model_name), None, benchmark)[1]
    provenance = {
        "package": {"name": "openood-tanl", "version": __version__},
        "backbone": model_name, "family": model_family(model_name), "pretrained": model_key["weights"],
        "quick_gelu": use_quick_gelu,
        "activation": {"name": _activation_name(model_name, use_quick_gelu), "chosen_by": chosen_by},
        "precision": precision, "image_transform": {**image_transform, "asked": transform},
        "class_names": {"set": os.fspath(id_classes) if isinstance(id_classes, (str, os.PathLike)) else "list",
                        "count": len(names), "sha256": class_names_sha256(names)},
        "corpus": words.provenance(),
        "prompts": {"templates": templates, **prompts, **_prompts_as_encoded(model_name, prompts, names)},
        "noise": {"seed": settings.noise_seed, "normalized": settings.normalize_noise},
        "negmining": _negmining_record(settings.negmining, mining),
    }
    return TextBankPlan(names, words, prompts, model_key, provenance)


def _activation_name(model_name: str, use_quick_gelu: bool) -> str:
    """The activation of open_clip's own towers: QuickGELU, GELU, or GELU with the tanh approximation in the towers
    whose config asks for it (SigLIP2's text tower). A timm trunk's activations are the trunk's."""
    import open_clip

    if use_quick_gelu:
        return "QuickGELU"
    config = open_clip.get_model_config(model_name) or {}
    tanh = [tower for tower in ("vision", "text")
            if ((config.get(f"{tower}_cfg") or {}).get("act_kwargs") or {}).get("approximate") == "tanh"]
    return f"GELU (tanh approximation in the {' and '.join(tanh)} tower)" if tanh else "GELU"


def _negmining_record(source: str, mining: TextBankSettings | None) -> dict:
    """What the provenance records about the texts ranking the corpus (``mining``, checked like the network's
    own)."""
    if mining is None:
        return {"source": "own"}
    plan = _plan(mining)
    return {"source": source, "backbone": mining.model_name, "pretrained": plan.model_key["weights"],
            "quick_gelu": plan.model_key["quick_gelu"], "precision": mining.precision,
            "prompts": {kind: plan.templates[kind] for kind in ("classes", "nouns", "adjectives")},
            "tanl_layout": dict(OFFICIAL_LAYOUT)}
