"""CSP's text side (Chen et al., NeurIPS 2024, "Conjugated Semantic Pool"): its prompts and its text bank.

The CSP engine (``core.csp.CSP``, registry name ``"csp"``) scores against a text bank built with CSP's own prompts
from CSP's corpus (``load_corpus(folder, id_classes, rules="csp")``):

* ID classes and nouns: the 8 ``NOUN_TEMPLATES``;
* adjectives: each takes one of the 14 ``SUPERCLASS_PHRASES`` ("{} environment", ...), drawn with Python's
  ``random`` seeded once with ``seed``, one draw per adjective in corpus order, and the 4 ``ADJECTIVE_TEMPLATES``
  around that phrase;
* an entry's embedding is the mean of its prompts' RAW text embeddings (before any normalisation), L2-normalised.

``csp_prompts`` gives the prompt strings; ``csp_text_bank`` encodes them with any ``encode_text`` (a list of prompts
-> [P, D] raw text embeddings) into a ``TextBank`` whose ``corpus_is_adjective`` says which corpus rows are
adjectives. ``create_network(..., templates="csp")`` builds the same bank from open_clip, cached.
"""
from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .bank import TextBank
from .classnames import class_names
from .core.errors import UserError, UserTypeError
from .corpus import Corpus

__all__ = ["CSPPrompts", "csp_prompts", "average_prompts", "csp_text_bank", "NOUN_TEMPLATES", "SUPERCLASS_PHRASES",
           "ADJECTIVE_TEMPLATES"]

#: The prompts of an ID class or a noun (CSP's ``preset_noun_prompt_templates``).
NOUN_TEMPLATES = ("a close-up photo of the nice {}.", "a photo with the nice {}.", "a good photo with the nice {}.",
                  "a photo of the nice {}.", "{}", "the {}", "the good {}", "the nice {}")
#: The superclass phrases an adjective is put in, one drawn per adjective (CSP's ``csp_templates``).
SUPERCLASS_PHRASES = ("{} environment", "{} space", "{} object", "{} scene", "{} place", "{} item", "{} area",
                      "{} view", "{} thing", "{} pattern", "{} structure", "{} landscape", "{} vista", "{} creature")
#: The prompts around an adjective's phrase (CSP's ``preset_adj_prompt_templates``).
ADJECTIVE_TEMPLATES = ("{}", "a nice photo of {}", "a good photo of {}", "a close-up photo of {}")


@dataclass(frozen=True)
class CSPPrompts:
    """The prompt strings of every entry: ``id`` [C][8], ``nouns`` [N][8], ``adjectives`` [A][4] (corpus order)."""

    id: list[list[str]]
    nouns: list[list[str]]
    adjectives: list[list[str]]


def _names(id_classes) -> list[str]:
    if isinstance(id_classes, (list, tuple)):
        if not all(isinstance(name, str) for name in id_classes):
            raise UserTypeError("id_classes must be class names (strings)")
        return list(id_classes)
    return class_names(id_classes)


def csp_prompts(corpus: Corpus, id_classes, seed: int = 0) -> CSPPrompts:
    """CSP's prompts for ``id_classes`` (a list of names or a class-name set, see ``openood_tanl.classnames``) and
    ``corpus``'s nouns and adjectives; ``seed`` (official ``seed``, 0) seeds the adjectives' superclass phrases."""
    if not isinstance(corpus, Corpus):
        raise UserTypeError(f"corpus must be an openood_tanl.corpus.Corpus (load_corpus(folder, id_classes, "
                            f"rules='csp')), got {type(corpus).__name__}")
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise UserTypeError(f"seed must be an int, got {seed!r}")
    draw = random.Random(seed)  # the official random.seed(seed) then one random.choice per adjective
    nouns = [word for word, kind in zip(corpus.words, corpus.kinds) if kind == "noun"]
    adjectives = [word for word, kind in zip(corpus.words, corpus.kinds) if kind == "adjective"]
    phrases = [draw.choice(SUPERCLASS_PHRASES).format(word) for word in adjectives]
    return CSPPrompts(id=[[t.format(name) for t in NOUN_TEMPLATES] for name in _names(id_classes)],
                      nouns=[[t.format(word) for t in NOUN_TEMPLATES] for word in nouns],
                      adjectives=[[t.format(phrase) for t in ADJECTIVE_TEMPLATES] for phrase in phrases])


def average_prompts(prompt_sets: Sequence[Sequence[str]], encode_text: Callable[[list[str]], torch.Tensor],
                    dim: int | None = None) -> torch.Tensor:
    """[E, D] float32: each entry's prompts through ``encode_text`` (list -> [P, D] raw embeddings), averaged raw,
    then L2-normalised. Every entry has the same number of prompts; no entry gives [0, ``dim``]."""
    if not prompt_sets:
        if dim is None:
            raise UserError("average_prompts of no entry needs the embedding dimension (dim)")
        return torch.empty(0, dim)
    width = len(prompt_sets[0])
    if any(len(prompts) != width for prompts in prompt_sets):
        raise UserError("every entry must have the same number of prompts")
    flat = [prompt for prompts in prompt_sets for prompt in prompts]
    embeddings = torch.as_tensor(encode_text(flat)).float()
    if embeddings.ndim != 2 or embeddings.shape[0] != len(flat):
        raise UserError(f"encode_text must return one embedding per prompt ([{len(flat)}, D]), got shape "
                        f"{tuple(embeddings.shape)}")
    return F.normalize(embeddings.view(len(prompt_sets), width, -1).mean(dim=1), dim=-1)


def csp_text_bank(corpus: Corpus, id_classes, encode_text: Callable[[list[str]], torch.Tensor] | None,
                  seed: int = 0, logit_scale: float = 100.0, *,
                  embed: Callable[[str, list[list[str]]], torch.Tensor] | None = None,
                  noise_features: torch.Tensor | None = None, provenance: dict | None = None) -> TextBank:
    """CSP's ``TextBank``: ID [C, D], corpus [N + A, D] (``corpus``'s order) and ``corpus_is_adjective`` [N + A].

    Args:
        corpus: CSP's corpus (``load_corpus(folder, id_classes, rules="csp")``).
        encode_text: a list of prompts -> [P, D] raw (unnormalised) text embeddings, e.g. a CLIP ``encode_text``.
        seed: seeds the adjectives' superclass phrases (official ``seed``, 0).
        logit_scale: CLIP's ``logit_scale.exp()`` (the official code multiplies by 100).
        embed: ``embed(part, prompt_sets) -> [E, D]`` in place of ``average_prompts(prompt_sets, encode_text)``,
            part one of ``"id-classes"``, ``"nouns"``, ``"adjectives"`` (the network's cached encoding).
        noise_features: [K, D] noise-image embeddings (CSP needs none; default [0, D]).
    """
    if embed is None:
        if encode_text is None:
            raise UserError("csp_text_bank needs encode_text (or embed)")

        def embed(part: str, prompt_sets: list[list[str]]) -> torch.Tensor:
            return average_prompts(prompt_sets, encode_text)
    prompts = csp_prompts(corpus, id_classes, seed)
    id_text = embed("id-classes", prompts.id)
    dim = id_text.shape[1]
    kinds = (("noun", "nouns", prompts.nouns), ("adjective", "adjectives", prompts.adjectives))
    parts = {kind: embed(part, sets) if sets else torch.empty(0, dim) for kind, part, sets in kinds}
    is_adjective = torch.tensor([kind == "adjective" for kind in corpus.kinds], dtype=torch.bool)
    corpus_text = torch.empty(len(corpus.kinds), dim)
    corpus_text[~is_adjective] = parts["noun"].float()
    corpus_text[is_adjective] = parts["adjective"].float()
    noise = torch.empty(0, dim) if noise_features is None else noise_features
    record = {"corpus": corpus.provenance(), "prompts": {"templates": "csp", "seed": seed, "averaging": "raw"},
              **dict(provenance or {})}
    return TextBank(id_text.float(), corpus_text, noise, logit_scale, corpus_is_adjective=is_adjective,
                    provenance=record)
