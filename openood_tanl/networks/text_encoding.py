"""Prompts through a CLIP text tower, trimmed to each batch's longest prompt where that changes nothing.

open_clip tokenizes every prompt to the full context (77 tokens for CLIP) although "The nice {}." prompts are 5-12
tokens long. A causal text tower pooled at the end-of-text token never looks past that token, so running it on the
first L positions (L = the batch's longest prompt) gives the same embeddings. ``encode_class_texts`` does that for
open_clip ``CLIP`` models whose text attention mask is causal and whose pooling is ``argmax``/``eos`` (OpenAI CLIP
and most open_clip CLIP models), with the prompts bucketed by length; for every other model (SigLIP, Hugging Face
text towers, ...) it runs open_clip's ``build_zero_shot_classifier`` at the full context. The choice is made from
the model, not its name.
"""
from __future__ import annotations

import sys
from typing import Sequence

import torch
import torch.nn.functional as F

__all__ = ["trims_exactly", "encode_prompts", "encode_raw_prompts", "encode_class_texts", "TEXT_ENCODINGS"]

#: What the text bank's provenance records about how its prompts were encoded.
TEXT_ENCODINGS = ("trimmed to the longest prompt of each batch", "full context")


def trims_exactly(model) -> bool:
    """Whether ``model``'s text tower can run on the first L tokens: an open_clip ``CLIP`` with a causal attention
    mask, pooled at the end-of-text token."""
    from open_clip.model import CLIP

    mask = getattr(model, "attn_mask", None)
    if not isinstance(model, CLIP) or getattr(model, "text_pool_type", None) not in ("argmax", "eos") \
            or not isinstance(mask, torch.Tensor) or mask.ndim != 2 or mask.shape[0] != mask.shape[1]:
        return False
    causal = torch.full(mask.shape, float("-inf")).triu_(1)
    return torch.equal(mask.detach().float().cpu(), causal)


def _end_positions(model, tokens: torch.Tensor) -> torch.Tensor:
    """[P] position of each prompt's end-of-text token (where the tower pools)."""
    if model.text_pool_type == "eos":
        return (tokens == model.text_eos_id).int().argmax(dim=-1)
    return tokens.argmax(dim=-1)


def _encode_trimmed(model, tokens: torch.Tensor) -> torch.Tensor:
    """``model.encode_text(tokens)`` on the first ``tokens.shape[1]`` positions (open_clip's steps, sliced)."""
    from open_clip.transformer import text_global_pool

    length = tokens.shape[1]
    cast_dtype = model.transformer.get_cast_dtype()
    x = model.token_embedding(tokens).to(cast_dtype) + model.positional_embedding[:length].to(cast_dtype)
    x = model.ln_final(model.transformer(x, attn_mask=model.attn_mask[:length, :length]))
    x = text_global_pool(x, tokens, model.text_pool_type, eos_token_id=getattr(model, "text_eos_id", None))
    if model.text_projection is not None:
        x = model.text_projection(x) if isinstance(model.text_projection, torch.nn.Linear) else \
            x @ model.text_projection
    return x


@torch.no_grad()
def encode_prompts(model, tokenizer, prompts: Sequence[str], device, batch_size: int = 256,
                   description: str = "prompts", normalize: bool = True) -> torch.Tensor:
    """[P, D] float32 L2-normalised (``normalize``; else raw) embeddings of ``prompts``, in batches of prompts of
    similar length, each run on its longest prompt's positions only (``trims_exactly(model)`` must hold)."""
    from tqdm.auto import tqdm

    tokens = tokenizer(list(prompts))
    ends = _end_positions(model, tokens)
    order = torch.argsort(ends, stable=True)
    out = None
    for chunk in tqdm(order.split(batch_size), desc=f"encoding {description}", disable=not sys.stderr.isatty()):
        length = int(ends[chunk].max()) + 1
        encoded = _encode_trimmed(model, tokens[chunk, :length].to(device)).float()
        encoded = (F.normalize(encoded, dim=-1) if normalize else encoded).cpu()
        if out is None:
            out = torch.empty(len(prompts), encoded.shape[1])
        out[chunk] = encoded
    return out


@torch.no_grad()
def encode_raw_prompts(model, tokenizer, prompts: Sequence[str], device, batch_size: int = 256,
                       description: str = "prompts", full_context: bool = False) -> tuple[torch.Tensor, str]:
    """[P, D] float32 RAW text embeddings of ``prompts`` (``model.encode_text``, no normalisation: what CSP averages)
    and which of ``TEXT_ENCODINGS`` computed them: trimmed where ``trims_exactly(model)`` and not
    ``full_context``, else ``encode_text`` at the full context in batches."""
    if not full_context and trims_exactly(model):
        return encode_prompts(model, tokenizer, prompts, device, batch_size, description, normalize=False), \
            TEXT_ENCODINGS[0]
    prompts = list(prompts)
    parts = [model.encode_text(tokenizer(prompts[start:start + batch_size]).to(device)).float().cpu()
             for start in range(0, len(prompts), batch_size)]
    return torch.cat(parts), TEXT_ENCODINGS[1]


@torch.no_grad()
def encode_class_texts(model, tokenizer, names: Sequence[str], templates: Sequence[str], device,
                       batch_size: int = 256, description: str = "texts",
                       full_context: bool = False) -> tuple[torch.Tensor, str]:
    """[len(names), D] text embeddings: each name through every template, averaged, L2-normalised (what open_clip's
    ``build_zero_shot_classifier`` computes), and which of ``TEXT_ENCODINGS`` computed them. ``full_context`` (or a
    tower that cannot be trimmed) runs ``build_zero_shot_classifier`` itself: every prompt at the full context,
    normalised, averaged and normalised again in the model's dtype, as the official code does (its float16 bits)."""
    if full_context or not trims_exactly(model):
        from open_clip import build_zero_shot_classifier

        weights = build_zero_shot_classifier(model, tokenizer, list(names), list(templates),
                                             num_classes_per_batch=max(1, batch_size // len(templates)),
                                             device=device, use_tqdm=sys.stderr.isatty())
        return weights.T.float().cpu(), TEXT_ENCODINGS[1]
    prompts = [template.format(name) for name in names for template in templates]
    embeddings = encode_prompts(model, tokenizer, prompts, device, batch_size, description)
    embeddings = embeddings.view(len(names), len(templates), -1).mean(dim=1)
    return F.normalize(embeddings, dim=-1), TEXT_ENCODINGS[0]
