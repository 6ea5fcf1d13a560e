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
