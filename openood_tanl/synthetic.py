"""Synthetic CLIP-like embeddings: a text bank and a labelled ID/OOD image stream, generated from a seed.

Used by the tests, the benchmarks and the demo when no real CLIP features are at hand. The geometry mimics
CLIP's: texts share one cone and images another (the modality gap), an ID image sits closer to its class text
than to other texts, and an OOD image sits near one word of a hidden subset of the corpus.
THE DATA ARE SYNTHETIC: numbers measured on them say nothing about real benchmarks.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["SyntheticBank", "make_bank", "make_stream", "synthetic_benchmark"]


@dataclass
class SyntheticBank:
    """id_text [C, D], corpus_text [N, D], noise_features [K, D] (rows L2-normalised), and the hidden OOD words."""

    id_text: torch.Tensor
    corpus_text: torch.Tensor
    noise_features: torch.Tensor
    ood_words: torch.Tensor  # [W] corpus indices OOD images are drawn near
    image_offset: torch.Tensor  # [D] direction shared by all images (the modality gap)


def _unit(x: torch.Tensor) -> torch.Tensor:
    return F.normalize(x, dim=-1)


def make_bank(num_classes: int = 100, corpus_size: int = 5000, dim: int = 128, *, num_noise: int = 15,
              ood_word_fraction: float = 0.02, seed: int = 0) -> SyntheticBank:
    """Random text bank with a shared text direction and a hidden subset of corpus words that OOD images match."""
    g = torch.Generator().manual_seed(seed)
    text_offset = _unit(torch.randn(dim, generator=g))
    image_offset = _unit(torch.randn(dim, generator=g))

    def texts(n: int) -> torch.Tensor:
        return _unit(0.4 * text_offset + _unit(torch.randn(n, dim, generator=g)))

    id_text, corpus_text = texts(num_classes), texts(corpus_size)
    noise = _unit(1.2 * image_offset + 0.5 * _unit(torch.randn(num_noise, dim, generator=g)))
    num_ood_words = max(1, int(round(ood_word_fraction * corpus_size)))
    ood_words = torch.randperm(corpus_size, generator=g)[:num_ood_words]
    return SyntheticBank(id_text, corpus_text, noise, ood_words, image_offset)


def make_stream(bank: SyntheticBank, num_id: int, num_ood: int, *, signal: float = 0.8, id_mix: float = 0.0,
                seed: int = 0, shuffle: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Image embeddings near their class text (ID) or near a hidden corpus word (OOD).

    Args:
        signal: weight of the anchor text against the per-image spread (lower = harder).
        id_mix: weight of a random ID class text mixed into each OOD anchor (near-OOD: higher = harder).

    Returns:
        features: [num_id + num_ood, D] float32, L2-normalised.
        is_id: [num_id + num_ood] bool.
        labels: [num_id + num_ood] long, ID class (-1 for OOD).
    """
    g = torch.Generator().manual_seed(seed)
    dim = bank.id_text.shape[1]
    num_classes = bank.id_text.shape[0]
    id_labels = torch.randint(num_classes, (num_id,), generator=g)
    ood_anchor = bank.ood_words[torch.randint(bank.ood_words.numel(), (num_ood,), generator=g)]
    ood_confusers = bank.id_text[torch.randint(num_classes, (num_ood,), generator=g)]
    anchors = torch.cat([bank.id_text[id_labels], _unit(bank.corpus_text[ood_anchor] + id_mix * ood_confusers)])
    spread = _unit(torch.randn(num_id + num_ood, dim, generator=g))
    features = _unit(bank.image_offset + signal * anchors + 0.9 * spread)
    is_id = torch.cat([torch.ones(num_id, dtype=torch.bool), torch.zeros(num_ood, dtype=torch.bool)])
    labels = torch.cat([id_labels, torch.full((num_ood,), -1, dtype=torch.long)])
    if shuffle:
        order = torch.randperm(num_id + num_ood, generator=g)
        features, is_id, labels = features[order], is_id[order], labels[order]
    return features, is_id, labels


def synthetic_benchmark(seed: int = 0, num_classes: int = 100, corpus_size: int = 20000, dim: int = 256,
                        num_id: int = 5000, num_ood: int = 1000):
    """The demo's benchmark: ID images near their class text, near-OOD mixed with ID texts, far-OOD not.

    Returns (``TextBank`` with a ``synthetic`` provenance, ``FeatureBenchmark`` with one near and one far set).
    """
    from .bank import TextBank
    from .evaluation.data import FeatureBenchmark, FeatureSet

    bank = make_bank(num_classes, corpus_size, dim, seed=seed)
    id_features, _, id_labels = make_stream(bank, num_id, 0, signal=0.4, seed=seed + 1, shuffle=False)
    minus_one = torch.full((num_ood,), -1)
    near = make_stream(bank, 0, num_ood, signal=0.4, id_mix=0.8, seed=seed + 2)[0]
    far = make_stream(bank, 0, num_ood, signal=0.4, seed=seed + 3)[0]
    benchmark = FeatureBenchmark("synthetic", FeatureSet("synthetic-id", id_features, id_labels), {
        "near": [FeatureSet("synthetic-near", near, minus_one)],
        "far": [FeatureSet("synthetic-far", far, minus_one)]})
    provenance = {"synthetic": {"seed": seed, "classes": num_classes, "corpus_words": corpus_size, "dim": dim,
                                "id_images": num_id, "ood_images_per_set": num_ood}}
    return TextBank(bank.id_text, bank.corpus_text, bank.noise_features, 100.0, provenance=provenance), benchmark
