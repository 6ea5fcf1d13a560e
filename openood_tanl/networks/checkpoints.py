"""Local CLIP checkpoint files: which form a file is, and the state dict of OpenAI's forms.

OpenAI publishes its CLIP weights as TorchScript archives (``ViT-B-16.pt``, what ``clip.load`` caches); a state dict
taken from such an archive keeps three integer entries (``input_resolution``, ``context_length``, ``vocab_size``)
that no model has. Both are read here as open_clip's OpenAI loader reads them (``torch.jit.load``, which runs no
Python code, or ``torch.load`` with ``weights_only=True``), the integer entries dropped. Every other form (a state
dict, ``{"state_dict": ...}``, ``.safetensors``) is left to open_clip's own ``load_checkpoint``.

Forms: ``openai-torchscript``, ``openai-state-dict`` (both were trained with QuickGELU), ``state-dict``,
``wrapped-state-dict``, ``safetensors``, ``big-vision`` (SigLIP ``.npz``).
"""
from __future__ import annotations

import os
import warnings
import zipfile

from ..core.errors import UserError

__all__ = ["OPENAI_FORMS", "OPENAI_INTEGER_ENTRIES", "checkpoint_form", "read_openai_state_dict"]

OPENAI_FORMS = ("openai-torchscript", "openai-state-dict")
OPENAI_INTEGER_ENTRIES = ("input_resolution", "context_length", "vocab_size")
_EXPECTED = ("a TorchScript archive (OpenAI's ViT-B-16.pt), a state dict or {'state_dict': ...} saved with "
             "torch.save, or a .safetensors file")


def _is_torchscript(path: str) -> bool:
    """TorchScript archives are zip files with a ``code/`` folder and ``constants.pkl`` (torch.save's have neither)."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = archive.namelist()
    return any(name.endswith("/constants.pkl") for name in names) and any("/code/" in name for name in names)


def _load(path: str):
    import torch

    try:
        try:
            return torch.load(path, map_location="cpu", weights_only=True, mmap=True)  # lazy: reads keys only
        except RuntimeError as error:
            if "mmap" not in str(error):
                raise
            return torch.load(path, map_location="cpu", weights_only=True)  # torch's legacy (non-zip) format
    except Exception as error:  # noqa: BLE001 - any unreadable file gets the same clear message
        raise UserError(f"cannot read the checkpoint {path} ({type(error).__name__}: {str(error)[:300]}); expected "
                        f"{_EXPECTED}") from None


def _state_dict(loaded, path: str) -> tuple[dict, bool]:
    """(the state dict inside what torch.load returned, whether it was wrapped in {'state_dict': ...})."""
    wrapped = isinstance(loaded, dict) and isinstance(loaded.get("state_dict"), dict)
    state = loaded["state_dict"] if wrapped else loaded
    if not isinstance(state, dict) or not state:
        raise UserError(f"the checkpoint {path} holds {type(state).__name__}, not a state dict; expected {_EXPECTED}")
    return state, wrapped


def checkpoint_form(path: str | os.PathLike) -> str:
    """Which form the checkpoint file ``path`` is (see the module docstring); a ValueError when it is unreadable."""
    path = os.fspath(path)
    if path.endswith(".safetensors"):
        return "safetensors"
    if path.endswith((".npz", ".npy")):
        return "big-vision"
    if _is_torchscript(path):
        return "openai-torchscript"
    state, wrapped = _state_dict(_load(path), path)
    if any(key.removeprefix("module.") in OPENAI_INTEGER_ENTRIES for key in state):
        return "openai-state-dict"
    return "wrapped-state-dict" if wrapped else "state-dict"


def read_openai_state_dict(path: str | os.PathLike) -> dict:
    """The weights of an OpenAI checkpoint (either of ``OPENAI_FORMS``) without the three integer entries."""
    import torch

    path = os.fspath(path)
    if _is_torchscript(path):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice: OpenAI ships this format
            state = torch.jit.load(path, map_location="cpu").state_dict()
    else:
        state, _ = _state_dict(_load(path), path)
    state = {key.removeprefix("module."): value for key, value in state.items()}
    return {key: value for key, value in state.items() if key not in OPENAI_INTEGER_ENTRIES}
