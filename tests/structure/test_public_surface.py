"""The public surface, pinned: what the package and ``core`` export, every engine alike, one name per concept."""
import importlib

import pytest

import openood_tanl
import openood_tanl.core as core

ENGINES = {"TANL", "OfficialFP16TANL", "MCM", "NegLabel", "AdaNeg", "CSP", "OODD", "MCMOODD"}
TOP_LEVEL = ENGINES | {
    "Engine", "Lockstep", "list_methods", "configure", "create_engine", "create_lockstep", "config_root",
    "TextBank", "TextBankNetwork", "create_network", "CLIPNetwork", "class_names", "TANLPostprocessor",
    "TestTimeEvaluator", "UserError",
}
CORE = ENGINES | {"Engine", "OfficialName", "Lockstep"}
CORPUS_FUNCTIONS = {"Corpus", "CorpusWarning", "load_corpus", "build_corpus", "read_word_list", "read_neglabel_folder",
                    "wordnet_words", "normalize_label", "parse_lines", "read_text_file"}


def test_the_top_level_exports_the_engines_the_registry_the_bank_and_the_entry_points():
    assert set(openood_tanl.__all__) == TOP_LEVEL and len(openood_tanl.__all__) == len(TOP_LEVEL)


def test_core_exports_the_engines_and_their_contract_not_their_machinery():
    assert set(core.__all__) == CORE and len(core.__all__) == len(CORE)
    for module, name in (("memory", "ActivationMemory"), ("scoring", "activation_aware_score"),
                         ("scoring", "literal_activation_aware_score"), ("scoring", "otsu_threshold"),
                         ("scoring", "prefix_lengths"), ("neglabel", "select_negative_labels"),
                         ("csp", "select_csp_negatives"),
                         ("workspace", "Workspaces")):
        assert name not in core.__all__ and hasattr(importlib.import_module(f"openood_tanl.core.{module}"), name)


def test_every_engine_is_everywhere_the_others_are():
    assert ENGINES <= set(core.__all__) and ENGINES <= set(openood_tanl.__all__)
    for name in ENGINES | {"Lockstep", "Engine"}:
        assert getattr(openood_tanl, name) is getattr(core, name)
    for name in ENGINES:
        assert all(hasattr(getattr(core, name), member) for member in ("reset", "step", "step_logits", "learned_state"))


def test_corpus_functions_live_only_in_the_corpus_package():
    assert CORPUS_FUNCTIONS <= set(openood_tanl.corpus.__all__)
    for name in CORPUS_FUNCTIONS:
        assert name not in openood_tanl.__all__
        with pytest.raises(AttributeError):
            getattr(openood_tanl, name)


@pytest.mark.parametrize("module", ["openood_tanl", "openood_tanl.core", "openood_tanl.corpus",
                                    "openood_tanl.classnames", "openood_tanl.networks", "openood_tanl.evaluation",
                                    "openood_tanl.log", "openood_tanl.methods", "openood_tanl.bank",
                                    "openood_tanl.csp"])
def test_every_exported_name_exists(module):
    imported = importlib.import_module(module)
    missing = [name for name in imported.__all__ if name not in ("TANLPostprocessor", "TestTimeEvaluator")
               and not hasattr(imported, name)]
    assert not missing, missing


def test_one_name_per_concept():
    assert not hasattr(core.TANL, "memory_sizes")  # memory_fill, as every stateful engine names it
    for engine in (core.TANL, core.AdaNeg, core.OODD, core.MCMOODD):
        assert "memory_fill" in engine.learned_state and isinstance(engine.memory_fill, property)
