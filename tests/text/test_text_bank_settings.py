"""TextBankSettings: one list of create_network's arguments, read by plan_text_bank and OpenOOD's network section."""
import dataclasses
import inspect

import pytest

from openood_tanl.networks import TextBankSettings, create_network, plan_text_bank


def test_the_settings_are_create_networks_arguments_in_order_with_its_defaults():
    parameters = inspect.signature(create_network).parameters
    fields = dataclasses.fields(TextBankSettings)
    assert list(parameters) == [field.name for field in fields]
    assert {name: p.default for name, p in parameters.items()} == {f.name: f.default for f in fields}
    settings = TextBankSettings("RN50", None, "cifar10", corpus_rules="clean")
    assert settings.arguments() == {**TextBankSettings().arguments(), "model_name": "RN50", "pretrained": None,
                                    "id_classes": "cifar10", "corpus_rules": "clean"}
    assert settings.replace(noise_seed=3).noise_seed == 3 and settings.noise_seed == 0


def test_from_mapping_refuses_unknown_keys_naming_the_valid_ones():
    settings = TextBankSettings.from_mapping({"model_name": "RN50", "precision": "official-fp16"})
    assert (settings.model_name, settings.precision, settings.corpus) == ("RN50", "official-fp16", "wordnet")
    with pytest.raises(ValueError, match=r"my settings: unknown key 'presicion' \(did you mean 'precision'\?\)"
                                         r".*Valid keys: model_name, pretrained, id_classes"):
        TextBankSettings.from_mapping({"presicion": "fp16"}, where="my settings")
    section = {"model": "RN50", "weights": "/w.pt"}
    renamed = TextBankSettings.from_mapping(section, keys={"model": "model_name", "weights": "pretrained"})
    assert (renamed.model_name, renamed.pretrained) == ("RN50", "/w.pt")
    with pytest.raises(ValueError, match="Valid keys: model, weights, id_classes"):
        TextBankSettings.from_mapping({"model_name": "RN50"}, keys={"model": "model_name", "weights": "pretrained"})


def test_plan_text_bank_takes_the_settings_or_create_networks_arguments():
    by_arguments = plan_text_bank("ViT-B-16", None, "cifar10", "wordnet", templates="openai-ensemble")
    by_settings = plan_text_bank(TextBankSettings("ViT-B-16", None, "cifar10", templates="openai-ensemble"))
    assert by_settings.provenance == by_arguments.provenance and by_settings.names == by_arguments.names
    with pytest.raises(TypeError, match="not both"):
        plan_text_bank(TextBankSettings(), templates="official")
