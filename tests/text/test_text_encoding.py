"""Prompts trimmed to each batch's longest prompt give open_clip's full-context embeddings, where the model allows."""
import json

import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from helpers.tiny_clip import TINY_CONFIG, TINY_MODEL  # noqa: E402
from openood_tanl.networks.text_encoding import TEXT_ENCODINGS, encode_class_texts, trims_exactly  # noqa: E402

NAMES = ["cat", "golden retriever", "hydraulic pump", "a very long name made of many small words", "x"]
TEMPLATES = ["The nice {}.", "a photo of a {} in the wild, seen from far away."]


@pytest.fixture(scope="module")
def tiny(tiny_checkpoint):
    model = open_clip.create_model(TINY_MODEL, pretrained=str(tiny_checkpoint)).eval()
    return model, open_clip.get_tokenizer(TINY_MODEL)


def test_trimmed_equals_open_clips_zero_shot_classifier(tiny):
    model, tokenizer = tiny
    assert trims_exactly(model)
    trimmed, encoding = encode_class_texts(model, tokenizer, NAMES, TEMPLATES, "cpu", batch_size=3)
    assert encoding == TEXT_ENCODINGS[0]
    full = open_clip.build_zero_shot_classifier(model, tokenizer, NAMES, TEMPLATES, device="cpu").T
    assert trimmed.shape == full.shape == (len(NAMES), 32)
    assert (trimmed - full).abs().max() < 1e-5


@pytest.mark.parametrize("change", ["no causal mask", "pooled at the first token"])
def test_other_text_towers_keep_the_full_context(tmp_path, change):
    config = json.loads(json.dumps(TINY_CONFIG))
    config["text_cfg"]["no_causal_mask" if change == "no causal mask" else "pool_type"] = \
        True if change == "no causal mask" else "first"
    name = f"tiny-variant-{change.split()[0]}"
    (tmp_path / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(tmp_path / f"{name}.json")
    model = open_clip.create_model(name).eval()
    tokenizer = open_clip.get_tokenizer(name)
    assert not trims_exactly(model)
    embeddings, encoding = encode_class_texts(model, tokenizer, NAMES, TEMPLATES, "cpu")
    assert encoding == TEXT_ENCODINGS[1]
    torch.testing.assert_close(embeddings, open_clip.build_zero_shot_classifier(model, tokenizer, NAMES, TEMPLATES).T)
