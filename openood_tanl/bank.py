"""Text banks: the text side of a CLIP model that the engines are built from, alone or attached to a network.

``TextBank`` holds ID class, corpus and noise embeddings with CLIP's logit scale (what ``create_engine`` takes);
``TextBankNetwork`` is the protocol of a network that carries one and encodes images (the open_clip adapter's
``CLIPNetwork``; tests use small doubles). Nothing here imports OpenOOD or open_clip.
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

from .core.errors import UserError, UserTypeError

__all__ = ["TextBankNetwork", "TextBank", "check_network", "network_device"]

REQUIRED_ATTRIBUTES = ("id_text_features", "corpus_text_features", "noise_features", "logit_scale")


@runtime_checkable
class TextBankNetwork(Protocol):
    """A CLIP network carrying its text bank: what the OpenOOD postprocessors and evaluators need from ``net``.

    Attributes:
        id_text_features: [C, D] L2-normalised ID class text embeddings.
        corpus_text_features: [N, D] L2-normalised negative-label corpus embeddings.
        noise_features: [K, D] L2-normalised embeddings of noise images.
        logit_scale: CLIP's ``logit_scale.exp()`` (float or 0-d tensor).

    ``net(data, return_feat=True)`` returns [B, D] L2-normalised image embeddings; ``net(data)`` returns logits
    over the ID classes (what OpenOOD's accuracy column uses).
    """

    id_text_features: torch.Tensor
    corpus_text_features: torch.Tensor
    noise_features: torch.Tensor
    logit_scale: float | torch.Tensor

    def __call__(self, data: torch.Tensor, return_feat: bool = False) -> torch.Tensor: ...


def check_network(net) -> None:
    """Raise a TypeError naming what ``net`` lacks to serve as a text bank, a ValueError when its embeddings'
    dimensions differ."""
    missing = [name for name in REQUIRED_ATTRIBUTES if getattr(net, name, None) is None]
    if not missing and all(hasattr(getattr(net, name), "shape") for name in REQUIRED_ATTRIBUTES[:3]):
        dims = {name: tuple(getattr(net, name).shape) for name in REQUIRED_ATTRIBUTES[:3]}
        if len({shape[-1] for shape in dims.values()}) != 1 or any(len(shape) != 2 for shape in dims.values()):
            raise UserError(f"{type(net).__name__}'s text bank does not fit together: "
                            + ", ".join(f"{name} {list(shape)}" for name, shape in dims.items())
                            + "; each must be [rows, D] with one D: encode all three with the same model")
    if missing:
        raise UserTypeError(
            f"{type(net).__name__} lacks {', '.join(missing)}: the engines need a text bank (or a CLIP network) that "
            f"carries {', '.join(REQUIRED_ATTRIBUTES)} and returns image features from net(x, return_feat=True) "
            "(see openood_tanl.bank.TextBankNetwork)")


def network_device(net) -> torch.device:
    """The device ``net`` computes on: its first parameter's, else its ID text features'."""
    parameters = getattr(net, "parameters", None)
    if callable(parameters):
        for parameter in parameters():
            return parameter.device
    return torch.as_tensor(net.id_text_features).device


class TextBank:
    """The text side of a CLIP network without the image encoder: what the engines are built from.

    Satisfies the attribute part of ``TextBankNetwork`` (``id_text_features``, ``corpus_text_features``,
    ``noise_features``, ``logit_scale`` and optionally ``corpus_is_adjective``), so ``create_engine(name, bank)``
    builds an engine for replaying cached image embeddings. ``provenance`` says what built
    it (the network's, see ``create_network``), for the result files; ``precision`` is the network's
    (``'official-fp16'`` makes ``create_engine`` build TANL with the official fp16 numerics). ``method_banks``
    (method name -> ``TextBank``): the text banks of methods with their own prompts for the same images (CSP's:
    ``create_network(templates="csp")``); ``create_engine`` builds such a method from its own bank.
    ``negmining_text`` ((ID [C, D'], corpus [N, D']) L2-normalised texts of another model, or None): what ranks the
    corpus for NegLabel's selection and the official corpus layout instead of the bank's own texts
    (``create_network(negmining=...)``).
    """

    def __init__(self, id_text_features: torch.Tensor, corpus_text_features: torch.Tensor,
                 noise_features: torch.Tensor, logit_scale: float = 100.0,
                 corpus_is_adjective: torch.Tensor | None = None, provenance: dict | None = None,
                 precision: str = "fp32", method_banks: dict | None = None,
                 negmining_text: tuple[torch.Tensor, torch.Tensor] | None = None):
        self.id_text_features = id_text_features
        self.corpus_text_features = corpus_text_features
        self.noise_features = noise_features
        self.logit_scale = float(logit_scale)
        self.corpus_is_adjective = corpus_is_adjective
        self.provenance = dict(provenance or {})
        self.precision = precision
        self.method_banks = dict(method_banks or {})
        self.negmining_text = negmining_text

    @classmethod
    def of(cls, net) -> "TextBank":
        """The text bank a network carries."""
        check_network(net)
        return cls(net.id_text_features, net.corpus_text_features, net.noise_features,
                   float(torch.as_tensor(net.logit_scale)), getattr(net, "corpus_is_adjective", None),
                   getattr(net, "provenance", None), getattr(net, "precision", "fp32"),
                   getattr(net, "method_banks", None), getattr(net, "negmining_text", None))
