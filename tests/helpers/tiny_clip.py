"""A tiny open_clip model config with random weights saved to a checkpoint, loaded through the public path."""
from __future__ import annotations

import json
from pathlib import Path

TINY_MODEL = "tiny-test-clip"
TINY_CONFIG = {
    "embed_dim": 32,
    "vision_cfg": {"image_size": 32, "layers": 1, "width": 32, "patch_size": 16, "head_width": 16},
    "text_cfg": {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1},
}


def make_tiny_checkpoint(folder: Path, seed: int = 0) -> Path:
    """Register the tiny config with open_clip and save random weights; returns the checkpoint path."""
    import open_clip
    import torch

    folder.mkdir(parents=True, exist_ok=True)
    config_path = folder / f"{TINY_MODEL}.json"
    config_path.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(TINY_MODEL)
    checkpoint = folder / "tiny-random.pt"
    torch.save(model.state_dict(), checkpoint)
    return checkpoint


#: The forms of an OpenAI checkpoint file (``checkpoints.checkpoint_form``) that ``make_openai_checkpoints`` writes.
OPENAI_CHECKPOINT_FORMS = ("openai-torchscript", "openai-state-dict", "state-dict", "wrapped-state-dict")


def make_openai_checkpoints(folder: Path, seed: int = 1, config: dict | None = None,
                            name: str = TINY_MODEL) -> dict:
    """One random model of OpenAI's CLIP architecture (QuickGELU, float16 weights, OpenAI's key layout) saved in
    every form an OpenAI checkpoint takes: {form: path}.

    - ``openai-torchscript``: a TorchScript archive whose ``state_dict()`` is OpenAI's layout plus the three
      integer entries OpenAI's archives carry (``input_resolution``, ``context_length``, ``vocab_size``);
    - ``openai-state-dict``: that archive's ``state_dict()`` saved with ``torch.save``;
    - ``state-dict``: the weights alone; ``wrapped-state-dict``: ``{"state_dict": weights}``.
    """
    import warnings

    import open_clip
    import torch
    import torch.nn as nn

    folder.mkdir(parents=True, exist_ok=True)
    config = config or TINY_CONFIG
    config_path = folder / f"{name}.json"
    config_path.write_text(json.dumps(config))
    open_clip.add_model_config(config_path)
    torch.manual_seed(seed)
    model = open_clip.create_model(name, force_quick_gelu=True).half()
    weights = model.state_dict()

    class Archive(nn.Module):  # the parameters under OpenAI's names, and the integer entries
        def __init__(self):
            super().__init__()
            for child_name, child in model.named_children():
                self.add_module(child_name, child)
            for parameter_name, parameter in model.named_parameters(recurse=False):
                self.register_parameter(parameter_name, parameter)
            for entry, value in (("input_resolution", config["vision_cfg"]["image_size"]),
                                 ("context_length", config["text_cfg"]["context_length"]),
                                 ("vocab_size", config["text_cfg"]["vocab_size"])):
                self.register_buffer(entry, torch.tensor(value))

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.logit_scale * x

    paths = {form: folder / f"{name}-{form}.pt" for form in OPENAI_CHECKPOINT_FORMS}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)  # torch.jit's deprecation notice
        torch.jit.trace(Archive(), torch.ones(1, dtype=torch.float16)).save(str(paths["openai-torchscript"]))
        archived = torch.jit.load(str(paths["openai-torchscript"])).state_dict()
    assert set(archived) == set(weights) | {"input_resolution", "context_length", "vocab_size"}
    torch.save(dict(archived), paths["openai-state-dict"])
    torch.save(weights, paths["state-dict"])
    torch.save({"state_dict": weights, "epoch": 3}, paths["wrapped-state-dict"])
    return paths
