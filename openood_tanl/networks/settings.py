"""The arguments of ``create_network`` as one frozen dataclass: what ``plan_text_bank`` checks, the OpenOOD
``network:`` section reads (``from_mapping``) and the command line builds."""
from __future__ import annotations

import dataclasses
import difflib
import os
from dataclasses import dataclass
from typing import Any, Mapping

from ..core.errors import UserError

__all__ = ["TextBankSettings", "parse_backbone"]


def parse_backbone(value: str, what: str = "a backbone") -> tuple[str, str | None]:
    """"MODEL:WEIGHTS" (an open_clip model and pretrained tag or checkpoint file; "MODEL:" or "MODEL:none" for
    random weights) -> (model, weights), or a UserError naming ``what``."""
    model, colon, weights = str(value).partition(":")
    if not colon or not model:
        raise UserError(f"{what} takes MODEL:WEIGHTS values (e.g. ViT-B-16:openai, ViT-B-16:laion2b_s34b_b88k), "
                        f"got {value!r}")
    return model, (None if weights in ("", "none") else weights)


@dataclass(frozen=True)
class TextBankSettings:
    """Every argument of ``create_network``, in its order, with its defaults (``create_network`` documents each).

    What the text bank and the image side are: ``model_name``, ``pretrained``, ``id_classes``, ``corpus``,
    ``corpus_rules``, ``templates``, ``transform``, ``benchmark``, ``precision``, ``quick_gelu``, ``noise_seed``,
    ``normalize_noise``, ``model_config``, ``negmining``. How they are computed, not what they hold: ``device``,
    ``cache_dir``, ``batch_size``.
    """

    model_name: str = "ViT-B-16"
    pretrained: str | None = "openai"
    id_classes: Any = "imagenet"
    corpus: str | os.PathLike = "wordnet"
    device: Any = "cpu"
    cache_dir: str | os.PathLike | None = None
    corpus_rules: str = "official"
    templates: str = "official"
    transform: str = "auto"
    benchmark: str | None = None
    precision: str = "fp32"
    quick_gelu: bool | None = None
    noise_seed: int = 0
    normalize_noise: bool = False
    batch_size: int = 256
    model_config: str | os.PathLike | None = None
    negmining: str = "own"

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(field.name for field in dataclasses.fields(cls))

    @classmethod
    def from_mapping(cls, mapping: Mapping[str, Any], where: str = "text bank settings",
                     keys: Mapping[str, str] | None = None) -> "TextBankSettings":
        """Settings from ``mapping`` (the fields it gives; the defaults for the rest). ``keys``: the mapping's own
        names of some fields (OpenOOD's ``network:`` section: ``{"model": "model_name", "weights": "pretrained"}``);
        such a field is read under that name only. An unknown key is a ValueError naming ``where`` and the valid
        keys."""
        key_of = {name: key for key, name in (keys or {}).items()}
        field_of = {key_of.get(name, name): name for name in cls.field_names()}
        unknown = [key for key in mapping if key not in field_of]
        if unknown:
            hints = [f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                     for key in unknown for close in [difflib.get_close_matches(str(key), list(field_of), n=1)]]
            raise UserError(f"{where}: " + "; ".join(hints) + f". Valid keys: {', '.join(field_of)}")
        return cls(**{field_of[key]: value for key, value in mapping.items()})

    def arguments(self) -> dict[str, Any]:
        """``create_network``'s keyword arguments: ``create_network(**settings.arguments())``."""
        return {name: getattr(self, name) for name in self.field_names()}

    def replace(self, **changes) -> "TextBankSettings":
        return dataclasses.replace(self, **changes)
