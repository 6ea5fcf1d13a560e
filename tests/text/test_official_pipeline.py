"""The official pipeline's last stages on a tiny model of OpenAI's architecture: every form of OpenAI checkpoint,
the activation each gets, the official image transform and the official float16 run of the network."""
import warnings

import pytest
import torch

open_clip = pytest.importorskip("open_clip")

from helpers.tiny_clip import (  # noqa: E402
    OPENAI_CHECKPOINT_FORMS,
    TINY_CONFIG,
    TINY_MODEL,
    make_openai_checkpoints,
)
from openood_tanl.bank import TextBank  # noqa: E402
from openood_tanl.core import OfficialFP16TANL  # noqa: E402
from openood_tanl.networks import create_network, plan_text_bank  # noqa: E402
from openood_tanl.networks.checkpoints import checkpoint_form  # noqa: E402
from openood_tanl.networks.clip_network import QuickGELUWarning, _resolve_quick_gelu  # noqa: E402
from openood_tanl.networks.transforms import build_transform, resolve_transform  # noqa: E402

CLASSES = ["golden retriever", "tabby cat", "red fox", "school bus", "pizza"]


@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory):
    return make_openai_checkpoints(tmp_path_factory.mktemp("openai"))


@pytest.fixture(scope="module")
def corpus_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("corpus")
    (folder / "nouns.txt").write_text("\n".join(f"noun{i}" for i in range(120)) + "\n")
    (folder / "adjectives.txt").write_text("\n".join(f"adj{i}" for i in range(40)) + "\n")
    return folder


@pytest.fixture(scope="module")
def images():
    return torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def _build(path, corpus_dir, cache, **kw):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        net, preprocess = create_network(TINY_MODEL, str(path), CLASSES, corpus_dir, "cpu", cache, **kw)
    return net, preprocess, [w for w in caught if issubclass(w.category, QuickGELUWarning)]


def test_each_file_is_told_by_its_form(checkpoints):
    assert {form: checkpoint_form(path) for form, path in checkpoints.items()} == \
        dict(zip(OPENAI_CHECKPOINT_FORMS, OPENAI_CHECKPOINT_FORMS))


def test_every_openai_form_loads_with_the_same_features_and_quick_gelu(checkpoints, corpus_dir, images, tmp_path):
    features = {}
    for form, path in checkpoints.items():
        quick_gelu = None if form.startswith("openai") else True
        net, _, caught = _build(path, corpus_dir, tmp_path / form, quick_gelu=quick_gelu)
        assert not caught, [str(w.message) for w in caught]
        assert net.provenance["activation"]["name"] == "QuickGELU"
        assert net.provenance["pretrained"]["form"] == form
        features[form] = (net(images, return_feat=True), net.id_text_features, net.noise_features)
        if form.startswith("openai"):
            assert "OpenAI checkpoint" in net.provenance["activation"]["chosen_by"]
    reference = features["openai-torchscript"]
    for form, values in features.items():
        for value, expected in zip(values, reference):
            assert torch.equal(value, expected), form


def test_a_plain_state_dict_runs_gelu_and_says_so(checkpoints, corpus_dir, images, tmp_path):
    net, _, _ = _build(checkpoints["state-dict"], corpus_dir, tmp_path / "plain")
    archive, _, _ = _build(checkpoints["openai-torchscript"], corpus_dir, tmp_path / "archive")
    assert net.provenance["activation"] == {"name": "GELU",
                                            "chosen_by": "default (GELU); the checkpoint does not tell"}
    assert not torch.equal(net(images, return_feat=True), archive(images, return_feat=True))


def test_a_local_checkpoint_of_a_quick_gelu_model_warns_when_it_cannot_tell():
    with pytest.warns(QuickGELUWarning, match=r"quick_gelu=True \(--quick-gelu\)"):
        assert _resolve_quick_gelu("ViT-B-16", "/weights/vit.pt", None, "state-dict") == \
            (False, "default (GELU); the checkpoint does not tell")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _resolve_quick_gelu("ViT-B-16", "/weights/vit.pt", True, "state-dict")[0] is True
        assert _resolve_quick_gelu("ViT-B-16", "/weights/vit.pt", None, "openai-torchscript")[0] is True
    with pytest.warns(QuickGELUWarning, match="trained with quick_gelu=True"):
        _resolve_quick_gelu("ViT-B-16", "/weights/ViT-B-16.pt", False, "openai-torchscript")


def test_an_openai_checkpoint_of_another_architecture_is_refused(corpus_dir, tmp_path):
    wide = {**TINY_CONFIG, "embed_dim": 48}
    paths = make_openai_checkpoints(tmp_path / "wide", config=wide, name="tiny-test-clip-wide")
    with pytest.raises(ValueError, match="does not fit open_clip's tiny-test-clip: .*pass the model name"):
        create_network(TINY_MODEL, str(paths["openai-torchscript"]), CLASSES, corpus_dir, "cpu", tmp_path / "c")


def test_an_unreadable_checkpoint_names_the_forms(corpus_dir, tmp_path):
    bad = tmp_path / "weights.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot read the checkpoint .* expected a TorchScript archive"):
        plan_text_bank(TINY_MODEL, str(bad), CLASSES, corpus_dir)


# ---------------------------------------------------------------------------------------------- image transform
def test_the_official_benchmarks_get_the_official_transform():
    assert resolve_transform("auto", "imagenet") == "official"
    assert resolve_transform("auto", "cifar100") == "official"
    assert resolve_transform("auto", CLASSES) == "open_clip"
    assert resolve_transform("auto", CLASSES, benchmark="four-ood") == "official"
    assert resolve_transform("auto", "imagenet", benchmark="/data/mybench.yml") == "official"  # by its classes
    assert resolve_transform("open_clip", "imagenet") == "open_clip"
    with pytest.raises(ValueError, match="transform must be one of"):
        resolve_transform("bicubic", "imagenet")
    for classes, benchmark, resize in (("imagenet", None, 256), ("imagenet200", None, 256), (CLASSES, "four-ood", 256),
                                       ("cifar10", None, 224)):
        plan = plan_text_bank("ViT-B-16", None, classes, "wordnet", benchmark=benchmark)
        assert plan.provenance["image_transform"]["resize"] == resize and \
            plan.provenance["image_transform"]["crop"] == 224


def test_the_official_transform_is_openoods_test_preprocessor():
    from PIL import Image
    from torchvision import transforms as T

    transform, description = build_transform("official", "imagenet", 224, None)
    official = T.Compose([T.Resize(256, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224),
                          T.ToTensor(), T.Normalize((0.48145466, 0.4578275, 0.40821073),
                                                    (0.26862954, 0.26130258, 0.27577711))])
    pixels = torch.randint(0, 256, (300, 410, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    image = Image.fromarray(pixels.numpy())
    assert torch.equal(transform(image), official(image))
    palette = image.convert("P")  # converted to RGB first, as OpenOOD's preprocessor: resized as RGB
    assert torch.equal(transform(palette), official(palette.convert("RGB")))
    assert description["name"] == "official" and description["resize"] == 256


def test_create_network_returns_the_transform_it_records(checkpoints, corpus_dir, tmp_path):
    from openood_tanl.evaluation.feature_cache import describe_preprocess

    _, open_clip_transform, _ = _build(checkpoints["openai-torchscript"], corpus_dir, tmp_path / "a")
    net, official, _ = _build(checkpoints["openai-torchscript"], corpus_dir, tmp_path / "a", transform="official")
    assert net.provenance["image_transform"]["name"] == "official"
    assert "Resize(size=37" in describe_preprocess(official)  # 32 * 256 / 224 for the 32-pixel tiny model
    assert describe_preprocess(official) != describe_preprocess(open_clip_transform)  # distinct feature caches


# ---------------------------------------------------------------------------------------------- official fp16
@pytest.fixture(scope="module")
def half_network(checkpoints, corpus_dir, tmp_path_factory):
    net, _, _ = _build(checkpoints["openai-torchscript"], corpus_dir, tmp_path_factory.mktemp("half"),
                       precision="official-fp16")
    return net


def _official_text(model, tokenizer, prompt: str) -> torch.Tensor:
    """The official text feature: one prompt through the float16 tower, normalised, averaged, normalised."""
    embedding = model.encode_text(tokenizer([prompt]))
    embedding /= embedding.norm(dim=-1, keepdim=True)
    embedding = embedding.mean(dim=0)
    embedding /= embedding.norm()
    return embedding.float()


def test_the_official_fp16_network_computes_as_the_official_code(half_network, images):
    net = half_network
    model, tokenizer = net.clip_model, open_clip.get_tokenizer(TINY_MODEL)
    assert net.precision == "official-fp16" and net.provenance["precision"] == "official-fp16"
    assert next(model.visual.conv1.parameters()).dtype == torch.float16
    with torch.no_grad():
        official = model.encode_image(images.half())
        official /= official.norm(dim=-1, keepdim=True)
        assert torch.equal(net(images, return_feat=True), official.float())
        for row, name in enumerate(CLASSES):
            assert torch.equal(net.id_text_features[row], _official_text(model, tokenizer, f"The nice {name}."))
        for row in (0, 7, len(net.corpus.words) - 1):
            word, kind = net.corpus.words[row], net.corpus.kinds[row]
            prompt = ("The nice {}." if kind == "noun" else "This is a {} photo.").format(word)
            assert torch.equal(net.corpus_text_features[row], _official_text(model, tokenizer, prompt))
    for bank in (net.noise_features, net.corpus_text_features):
        assert torch.equal(bank.half().float(), bank)  # float16 values
    assert type(TextBank.of(net)).__name__ == "TextBank" and TextBank.of(net).precision == "official-fp16"
    import openood_tanl

    assert type(openood_tanl.create_engine("tanl", net, num_negatives=20)) is OfficialFP16TANL


def test_fp16_still_needs_cuda(checkpoints, corpus_dir, tmp_path):
    with pytest.raises(ValueError, match="precision 'fp16' needs a CUDA device; use 'fp32' or 'official-fp16'"):
        create_network(TINY_MODEL, str(checkpoints["state-dict"]), CLASSES, corpus_dir, "cpu", tmp_path,
                       precision="fp16")
