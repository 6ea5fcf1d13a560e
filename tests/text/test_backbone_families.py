"""Backbone families beyond OpenAI's ViT-B/16, each a tiny random model of its own architecture built offline through
``create_network``: the text bank, the noise features, the preprocessing, the logit scale and every method on top."""
import json

import pytest
import torch

import openood_tanl
from openood_tanl.core.errors import MissingDependencyError
from openood_tanl.methods import get_method
from openood_tanl.networks import create_network
from openood_tanl.networks.clip_network import model_family
from openood_tanl.networks.transforms import resolve_transform

TEXT = {"context_length": 16, "vocab_size": 49408, "width": 32, "heads": 2, "layers": 1}
FAMILIES = {  # name -> (open_clip config, the family create_network records)
    "tiny-family-resnet": ({"embed_dim": 32, "quick_gelu": True, "text_cfg": TEXT,
                            "vision_cfg": {"image_size": 64, "layers": [1, 1, 1, 1], "width": 8}}, "resnet"),
    "tiny-family-vit-b32": ({"embed_dim": 32, "text_cfg": TEXT,
                             "vision_cfg": {"image_size": 64, "layers": 1, "width": 32, "patch_size": 32,
                                            "head_width": 16}}, "vit"),
    "tiny-family-eva02": ({"embed_dim": 32, "text_cfg": TEXT,  # a timm trunk (open_clip's EVA02 models are these)
                           "vision_cfg": {"image_size": 224, "timm_model_name": "eva02_tiny_patch14_224",
                                          "timm_model_pretrained": False, "timm_pool": "token", "timm_proj": "linear"}},
                          "timm:eva02_tiny_patch14_224"),
}
CLASSES = ["cat", "dog", "car", "tree"]


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_network(request, tmp_path_factory):
    name = request.param
    config, family = FAMILIES[name]
    folder = tmp_path_factory.mktemp(name)
    (folder / f"{name}.json").write_text(json.dumps(config))
    (folder / "words.txt").write_text("\n".join(f"word{i}" for i in range(120)) + "\n")
    torch.manual_seed(0)
    net, preprocess = create_network(name, None, CLASSES, folder / "words.txt", cache_dir=folder / "cache",
                                     model_config=folder / f"{name}.json")
    return name, config, family, net, preprocess


def test_the_family_is_recorded_and_its_text_bank_is_built(family_network):
    name, config, family, net, _ = family_network
    assert net.provenance["family"] == model_family(name) == family
    assert net.id_text_features.shape == (len(CLASSES), config["embed_dim"])
    assert net.corpus_text_features.shape == (120, config["embed_dim"])
    for rows in (net.id_text_features, net.corpus_text_features, net.noise_features):
        torch.testing.assert_close(rows.norm(dim=1), torch.ones(rows.shape[0]), rtol=0, atol=1e-5)
    assert net.logit_scale == pytest.approx(net.clip_model.logit_scale.exp().item())  # learned, from the weights
    assert net.provenance["logit_scale"] == net.logit_scale


def test_images_go_through_the_family_s_preprocessing(family_network):
    from PIL import Image

    _, config, _, net, preprocess = family_network
    size = config["vision_cfg"]["image_size"]
    image = preprocess(Image.new("RGB", (size + 37, size + 11), (120, 30, 200)))
    assert image.shape == (3, size, size)
    features = net(image.unsqueeze(0), return_feat=True)
    torch.testing.assert_close(features.norm(dim=1), torch.ones(1), rtol=0, atol=1e-5)


def test_every_method_runs_on_the_family(family_network):
    _, config, _, net, _ = family_network
    size = config["vision_cfg"]["image_size"]
    features = net(torch.rand(6, 3, size, size), return_feat=True)
    small = dict(num_negatives=40, memory_length=20, num_groups=2)
    for method in openood_tanl.list_methods():
        defaults = get_method(method).settings()
        engine = openood_tanl.create_engine(method, net, **{k: v for k, v in small.items() if k in defaults})
        pred, score = engine.step(features)
        assert pred.shape == score.shape == (6,) and torch.isfinite(score).all(), method
        assert int(pred.max()) < len(CLASSES), method


def test_the_official_transform_only_for_models_preprocessed_as_openai_s():
    assert resolve_transform("auto", "imagenet", None, "ViT-B-16", "laion2b_s34b_b88k") == "official"
    assert resolve_transform("auto", "imagenet", None, "RN50", "openai") == "official"
    assert resolve_transform("auto", "imagenet", None, "EVA02-B-16", "merged2b_s8b_b131k") == "official"
    # SigLIP squashes the image to its size and normalises with mean = std = 0.5: its own transform
    assert resolve_transform("auto", "imagenet", None, "ViT-B-16-SigLIP", "webli") == "open_clip"
    assert resolve_transform("official", "imagenet", None, "ViT-B-16-SigLIP", "webli") == "official"  # when asked


def test_siglip_without_its_extra_names_the_install(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec",
                        lambda name, *args: None if name in ("transformers", "sentencepiece") else real(name, *args))
    with pytest.raises(MissingDependencyError, match=r'pip install "openood-tanl\[siglip\]"'):
        create_network("ViT-B-16-SigLIP", None, CLASSES)
    assert model_family("ViT-B-16-SigLIP2").endswith("+hf-text")


@pytest.fixture(scope="module")
def siglip_network(tmp_path_factory):
    """A tiny SigLIP-architecture model (timm trunk with attention-map pooling, a bidirectional text tower pooled at
    its last token, a Hugging Face tokenizer that canonicalises text, learned logit scale ~112) with a unigram
    tokenizer trained here on a few lines (no download)."""
    pytest.importorskip("transformers")
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    folder = tmp_path_factory.mktemp("siglip")
    words = [f"word{i}" for i in range(60)]
    lines = [f"the nice {w}" for w in words + CLASSES] + ["this is a photo", "a photo of the"]
    tokenizer = Tokenizer(models.Unigram())
    tokenizer.pre_tokenizer, tokenizer.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
    tokenizer.train_from_iterator(lines, trainers.UnigramTrainer(vocab_size=120, unk_token="<unk>",
                                                                 special_tokens=["<pad>", "</s>", "<unk>"]))
    tokenizer.post_processor = processors.TemplateProcessing(single="$A </s>",
                                                             special_tokens=[("</s>", tokenizer.token_to_id("</s>"))])
    PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token="<pad>", eos_token="</s>", unk_token="<unk>",
                            model_max_length=16).save_pretrained(folder / "tokenizer")
    config = {"embed_dim": 192, "init_logit_scale": 4.72, "init_logit_bias": -10, "custom_text": True,
              "vision_cfg": {"image_size": 224, "timm_model_name": "vit_tiny_patch16_224",
                             "timm_model_pretrained": False, "timm_pool": "map", "timm_proj": "none"},
              "text_cfg": {"context_length": 16, "vocab_size": tokenizer.get_vocab_size(),
                           "hf_tokenizer_name": str(folder / "tokenizer"),
                           "tokenizer_kwargs": {"clean": "canonicalize"},
                           "width": 192, "heads": 2, "layers": 1, "no_causal_mask": True, "proj_bias": True,
                           "pool_type": "last", "norm_kwargs": {"eps": 1e-6}}}
    (folder / "tiny-family-siglip.json").write_text(json.dumps(config))
    (folder / "words.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    return create_network("tiny-family-siglip", None, CLASSES, folder / "words.txt", cache_dir=folder / "cache",
                          model_config=folder / "tiny-family-siglip.json")


def test_siglip_builds_its_text_bank_at_full_context_and_records_the_prompts_as_encoded(siglip_network):
    from openood_tanl.networks.text_encoding import trims_exactly

    net, _ = siglip_network
    assert net.provenance["family"] == "timm:vit_tiny_patch16_224+hf-text"
    assert not trims_exactly(net.clip_model)  # bidirectional text tower: every prompt at the full context
    assert net.logit_scale == pytest.approx(112.17, abs=0.01)  # the learned scale, not 100
    prompts = net.provenance["prompts"]
    assert prompts["text_cleaning"] == "canonicalize"
    assert prompts["classes"] == ["The nice {}."] and prompts["as_encoded"]["classes"] == ["the nice cat"]
    features = net(torch.rand(5, 3, 224, 224), return_feat=True)
    assert features.shape == (5, 192)
    for method in openood_tanl.list_methods():
        defaults = get_method(method).settings()
        small = {k: v for k, v in dict(num_negatives=30, memory_length=20, num_groups=2).items() if k in defaults}
        pred, score = openood_tanl.create_engine(method, net, **small).step(features)
        assert torch.isfinite(score).all() and int(pred.max()) < len(CLASSES), method
