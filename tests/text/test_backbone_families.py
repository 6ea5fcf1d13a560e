"""Backbone families beyond OpenAI's ViT-B/16, each a tiny random model of its own architecture built offline through
``create_network``: the text bank, the noise features, the preprocessing, the activation, the logit scale and every
method on top."""
import json
import math

import pytest
import torch

import openood_tanl
from openood_tanl.core.errors import MissingDependencyError
from openood_tanl.methods import get_method
from openood_tanl.networks import create_network, plan_text_bank
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
    # ViT-L-14's patch (14) on a 4 x 4 grid: with QuickGELU as OpenAI's weights need (open_clip's
    # ViT-L-14-quickgelu config) and without, as LAION's (its ViT-L-14 config)
    "tiny-family-vit-l14-openai": ({"embed_dim": 32, "quick_gelu": True, "text_cfg": TEXT,
                                    "vision_cfg": {"image_size": 56, "layers": 1, "width": 32, "patch_size": 14,
                                                   "head_width": 16}}, "vit"),
    "tiny-family-vit-l14-laion": ({"embed_dim": 32, "text_cfg": TEXT,
                                   "vision_cfg": {"image_size": 56, "layers": 1, "width": 32, "patch_size": 14,
                                                  "head_width": 16}}, "vit"),
}
CLASSES = ["cat", "dog", "car", "tree"]


def _tiny_network(name, config, folder, words, pretrained=None, **options):
    """``create_network`` of the tiny model ``name`` (``config`` registered from a JSON file in ``folder``) with the
    corpus ``words``; seeded, so its random weights are the same on every run."""
    (folder / f"{name}.json").write_text(json.dumps(config))
    (folder / "words.txt").write_text("\n".join(words) + "\n")
    torch.manual_seed(0)
    return create_network(name, pretrained, CLASSES, folder / "words.txt", cache_dir=folder / "cache",
                          model_config=folder / f"{name}.json", **options)


@pytest.fixture(scope="module", params=sorted(FAMILIES))
def family_network(request, tmp_path_factory):
    name = request.param
    config, family = FAMILIES[name]
    net, preprocess = _tiny_network(name, config, tmp_path_factory.mktemp(name), [f"word{i}" for i in range(120)])
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


def test_the_activation_is_the_config_s_and_is_recorded(family_network):
    from open_clip.transformer import QuickGELU

    _, config, _, net, _ = family_network
    quick_gelu = config.get("quick_gelu", False)
    assert net.provenance["activation"] == ({"name": "QuickGELU", "chosen_by": "the model config"} if quick_gelu
                                            else {"name": "GELU", "chosen_by": "default (GELU)"})
    used = {type(m) for m in net.clip_model.modules() if isinstance(m, (torch.nn.GELU, QuickGELU))}
    assert used == ({QuickGELU} if quick_gelu else {torch.nn.GELU})  # in both towers (a timm trunk keeps its own)


@pytest.mark.parametrize("name", ["tiny-family-vit-l14-openai", "tiny-family-vit-l14-laion"])
def test_a_vit_l14_shaped_model_is_preprocessed_at_its_own_size(name, tmp_path):
    from PIL import Image

    config, _ = FAMILIES[name]
    net, preprocess = _tiny_network(name, config, tmp_path, ["word0", "word1"], benchmark="imagenet")
    assert net.clip_model.visual.conv1.kernel_size == (14, 14) and net.clip_model.visual.grid_size == (4, 4)
    transform = net.provenance["image_transform"]  # preprocessed as OpenAI's CLIP: auto is the official transform
    assert (transform["name"], transform["crop"], transform["resize"]) == ("official", 56, round(56 * 256 / 224))
    assert preprocess(Image.new("RGB", (90, 70), (10, 200, 30))).shape == (3, 56, 56)


def test_vit_l14_s_activation_follows_its_weights(tmp_path):
    (tmp_path / "words.txt").write_text("word0\nword1\n")
    for tag, activation in (("openai", "QuickGELU"), ("laion2b_s32b_b82k", "GELU")):
        provenance = plan_text_bank("ViT-L-14", tag, CLASSES, tmp_path / "words.txt").provenance
        assert provenance["family"] == "vit"
        assert provenance["activation"] == {"name": activation, "chosen_by": f"the '{tag}' weights"}


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
    with pytest.raises(MissingDependencyError, match=r'needs transformers and sentencepiece .*pip install '
                                                     r'"openood-tanl\[siglip\]"'):
        create_network("ViT-B-16-SigLIP", None, CLASSES)

    def without_google(name, *args):  # protobuf absent: its parent package cannot be found
        if name.startswith("google"):
            raise ModuleNotFoundError(f"No module named '{name.split('.')[0]}'")
        return real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_google)
    with pytest.raises(MissingDependencyError, match=r"needs protobuf \(its Hugging Face tokenizer\)"):
        create_network("ViT-B-16-SigLIP", None, CLASSES)
    assert model_family("ViT-B-16-SigLIP2").endswith("+hf-text")


SIGLIP_WORDS = [f"word{i}" for i in range(60)]
TOKENIZER_TEXT = [f"the nice {w}" for w in SIGLIP_WORDS + CLASSES] + ["this is a photo", "a photo of the"]
#: SigLIP's preprocessing (its webli tags'): the image squashed to its size, mean = std = 0.5.
SIGLIP_PREPROCESSING = {"mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5), "interpolation": "bicubic",
                        "resize_mode": "squash"}


def _siglip_config(tokenizer_folder, vocab_size: int, context_length: int, **text) -> dict:
    """A tiny SigLIP-architecture config: a timm trunk with attention-map pooling, a bidirectional text tower pooled
    at its last token, a Hugging Face tokenizer (in ``tokenizer_folder``) that canonicalises text, a learned logit
    scale of ~112 (``init_logit_scale`` 4.72: random weights start there); ``text``: more text_cfg entries."""
    return {"embed_dim": 192, "init_logit_scale": 4.72, "init_logit_bias": -10, "custom_text": True,
            "vision_cfg": {"image_size": 224, "timm_model_name": "vit_tiny_patch16_224",
                           "timm_model_pretrained": False, "timm_pool": "map", "timm_proj": "none"},
            "text_cfg": {"context_length": context_length, "vocab_size": vocab_size,
                         "hf_tokenizer_name": str(tokenizer_folder), "tokenizer_kwargs": {"clean": "canonicalize"},
                         "width": 192, "heads": 2, "layers": 1, "no_causal_mask": True, "proj_bias": True,
                         "pool_type": "last", "norm_kwargs": {"eps": 1e-6}, **text}}


def _check_siglip_text_bank(net, name: str) -> list[int]:
    """What SigLIP and SigLIP2 share: the family, the text cleaning recorded with the prompts as encoded, every
    prompt encoded at the full context; returns open_clip's tokens of the first class prompt."""
    import open_clip

    from openood_tanl.networks.text_encoding import trims_exactly

    assert net.provenance["family"] == model_family(name) == "timm:vit_tiny_patch16_224+hf-text"
    assert not trims_exactly(net.clip_model)  # bidirectional text tower: every prompt at the full context
    prompts = net.provenance["prompts"]
    assert prompts["text_cleaning"] == "canonicalize"
    assert prompts["classes"] == ["The nice {}."] and prompts["as_encoded"]["classes"] == ["the nice cat"]
    tokens = open_clip.get_tokenizer(name)(["The nice cat."])
    with torch.no_grad():
        expected = torch.nn.functional.normalize(net.clip_model.encode_text(tokens).float(), dim=-1)
    torch.testing.assert_close(net.id_text_features[:1], expected, rtol=0, atol=1e-5)
    return tokens[0].tolist()


def _check_every_method(net, image_size: int):
    features = net(torch.rand(5, 3, image_size, image_size), return_feat=True)
    assert features.shape == (5, net.id_text_features.shape[1])
    for method in openood_tanl.list_methods():
        defaults = get_method(method).settings()
        small = {k: v for k, v in dict(num_negatives=30, memory_length=20, num_groups=2).items() if k in defaults}
        pred, score = openood_tanl.create_engine(method, net, **small).step(features)
        assert torch.isfinite(score).all() and int(pred.max()) < len(CLASSES), method


@pytest.fixture(scope="module")
def siglip_network(tmp_path_factory):
    """A tiny SigLIP with a sentencepiece unigram tokenizer trained here on a few lines (no download), saved as the
    T5 tokenizer open_clip builds for SigLIP; (network, the sentencepiece processor)."""
    pytest.importorskip("transformers")
    pytest.importorskip("sentencepiece")
    pytest.importorskip("google.protobuf")  # transformers reads a sentencepiece file through it
    from helpers.tiny_tokenizers import save_siglip_tokenizer, train_sentencepiece_unigram

    folder = tmp_path_factory.mktemp("siglip")
    processor = train_sentencepiece_unigram(TOKENIZER_TEXT)
    tokenizer = save_siglip_tokenizer(processor, folder / "tokenizer", context_length=16)
    config = _siglip_config(folder / "tokenizer", len(tokenizer), 16)
    net, _ = _tiny_network("tiny-family-siglip", config, folder, SIGLIP_WORDS)
    return net, processor


def test_siglip_builds_its_text_bank_at_full_context_and_records_the_prompts_as_encoded(siglip_network):
    net, processor = siglip_network
    tokens = _check_siglip_text_bank(net, "tiny-family-siglip")
    encoded = processor.encode("the nice cat") + [processor.eos_id()]  # sentencepiece's own pieces, then </s>
    assert tokens == encoded + [processor.eos_id()] * (16 - len(encoded))  # padded with </s>, as SigLIP's
    assert net.logit_scale == pytest.approx(112.17, abs=0.01)  # the learned scale, not 100
    _check_every_method(net, 224)


@pytest.fixture(scope="module")
def siglip2_network(tmp_path_factory):
    """A tiny SigLIP2 (as open_clip's ViT-*-SigLIP2 configs: a Gemma tokenizer, context 64, tanh-approximated GELU
    in the text tower) with a Gemma-style byte-fallback BPE trained here, its random weights behind a 'webli' tag
    carrying SigLIP's preprocessing as open_clip's webli tags do; (network, preprocess, tokenizer, config)."""
    pytest.importorskip("transformers")
    import open_clip

    from helpers.tiny_tokenizers import save_gemma_style_tokenizer

    name, folder = "tiny-family-siglip2", tmp_path_factory.mktemp("siglip2")
    tokenizer = save_gemma_style_tokenizer(TOKENIZER_TEXT, folder / "tokenizer", context_length=64)
    config = _siglip_config(folder / "tokenizer", len(tokenizer), 64, act_kwargs={"approximate": "tanh"})
    (folder / f"{name}.json").write_text(json.dumps(config))
    open_clip.add_model_config(folder / f"{name}.json")
    torch.manual_seed(0)
    torch.save(open_clip.create_model(name).state_dict(), folder / "weights.pt")
    with pytest.MonkeyPatch.context() as patch:  # open_clip's table of tags, whose entries may name a local file
        patch.setitem(open_clip.pretrained._PRETRAINED, name,
                      {"webli": {"file": str(folder / "weights.pt"), **SIGLIP_PREPROCESSING}})
        net, preprocess = _tiny_network(name, config, folder, SIGLIP_WORDS, pretrained="webli", benchmark="imagenet")
    return net, preprocess, tokenizer, config


def test_siglip2_encodes_its_prompts_with_its_gemma_tokenizer_at_full_context(siglip2_network):
    import open_clip

    net, _, tokenizer, config = siglip2_network
    assert type(open_clip.get_tokenizer("tiny-family-siglip2").tokenizer).__name__ == "GemmaTokenizer"
    tokens = _check_siglip_text_bank(net, "tiny-family-siglip2")
    pad, eos, bos = (tokenizer.convert_tokens_to_ids(t) for t in ("<pad>", "<eos>", "<bos>"))
    assert (pad, eos, bos) == (0, 1, 2)  # Gemma's ids
    encoded = tokenizer.encode("the nice cat")
    assert encoded[-1] == eos and bos not in encoded  # no <bos>, <eos> appended
    assert tokens == encoded + [pad] * (64 - len(encoded))  # padded on the right with <pad>, to the full context
    assert net.logit_scale == pytest.approx(math.exp(config["init_logit_scale"]), rel=1e-6)  # the weights', not 100
    assert net.provenance["logit_scale"] == net.logit_scale
    activations = [m for m in net.clip_model.text.modules() if isinstance(m, torch.nn.GELU)]
    assert activations and all(m.approximate == "tanh" for m in activations)
    assert net.provenance["activation"]["name"] == "GELU (tanh approximation in the text tower)"
    _check_every_method(net, 224)


def test_siglip2_squashes_the_image_and_normalises_with_one_half(siglip2_network):
    from PIL import Image

    net, preprocess, _, _ = siglip2_network
    assert net.provenance["image_transform"]["name"] == "open_clip"  # its own, even on ImageNet
    image = Image.new("RGB", (672, 224), (0, 0, 255))
    image.paste((255, 0, 0), (0, 0, 224, 224))  # the left third red: a centre crop would keep only blue
    pixels = preprocess(image)
    assert pixels.shape == (3, 224, 224)
    torch.testing.assert_close(pixels[:, 100, 10], torch.tensor([1.0, -1.0, -1.0]))  # (x - 0.5) / 0.5
    torch.testing.assert_close(pixels[:, 100, 200], torch.tensor([-1.0, -1.0, 1.0]))
