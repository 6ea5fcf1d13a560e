"""The method registry: every OOD method by name, as data, and how to build its engine from a text bank.

One ``Method`` entry per name: its engine class, how the engine is built from a text bank, and its shipped YAML
(``configs/postprocessors/<name>.yml``, in OpenOOD's schema), whose ``postprocessor_args`` are the method's
settings. Presets are entries too: ``tanl`` is the paper's setting, ``tanl_official`` the authors' shipped script.

    list_methods()                                   -> ['adaneg', 'csp', 'mcm', 'mcm_oodd', 'neglabel', ...]
    configure("tanl", gap=0.5)                       -> MethodConfig: a method with every hyperparameter, checked
    create_engine("tanl", bank, gap=0.5)             -> a ready TANL engine for ``bank``
    configure("my.yml")                              -> a method from a YAML in OpenOOD's schema

A ``bank`` is anything with ``id_text_features``, ``corpus_text_features``, ``noise_features`` and ``logit_scale``
(``openood_tanl.TextBank``, the CLIP network). Hyperparameters are the engine's keyword arguments (plus NegLabel's
selection, ``num_negatives`` and ``percentile``, for the methods that select negatives); official key names are
translated in the error (``'beta' is the official name of 'num_negatives'``). Nothing here imports torch until an
engine is checked or built.
"""
from __future__ import annotations

import difflib
import functools
import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping

from .core.errors import UserError

__all__ = ["Method", "MethodConfig", "METHODS", "list_methods", "get_method", "configure", "create_engine",
           "preset_settings", "translate_official_names", "text_bank_of",
           "create_lockstep",
           "config_root", "method_config_path", "check_keys", "SECTION_KEYS", "KEY_SETTINGS", "settings_line"]

#: Keys an OpenOOD ``postprocessor:`` section may hold.
SECTION_KEYS = ("name", "APS_mode", "postprocessor_args", "postprocessor_sweep")


def config_root() -> Path:
    """The folder holding ``postprocessors/<name>.yml`` and ``networks/clip_tanl.yml`` (OpenOOD's
    ``Evaluator(config_root=...)``): inside the installed package, or the repository's ``configs/``."""
    package = Path(__file__).resolve().parent
    installed = package / "configs"
    return installed if (installed / "postprocessors").is_dir() else package.parent / "configs"


def method_config_path(name: str) -> Path:
    """The YAML shipped for method ``name``."""
    entry = get_method(name)
    return config_root() / "postprocessors" / f"{entry.config or entry.name}.yml"


# ---------------------------------------------------------------------------------------------- building engines
def _logit_scale(bank) -> float:
    import torch

    return float(torch.as_tensor(bank.logit_scale))


def _is_adjective(bank):
    """[N] bool: which of ``bank``'s corpus words are adjectives (all nouns when the bank does not say)."""
    import torch

    flags = getattr(bank, "corpus_is_adjective", None)
    return torch.zeros(len(bank.corpus_text_features), dtype=torch.bool) if flags is None else flags


def _ranking_texts(bank):
    """(ID [C, D'], corpus [N, D']): what ranks ``bank``'s corpus for NegLabel's selection and the official
    layout: its ``negmining_text`` when it has them (``create_network(negmining=...)``), else its own texts."""
    mining = getattr(bank, "negmining_text", None)
    return (bank.id_text_features, bank.corpus_text_features) if mining is None else mining


def _with_corpus(engine_class, bank, **hyperparameters):
    """Engines that score against the whole corpus (TANL): every column of the bank's [ID | corpus] logits, laid
    out as the official network does (``core.neglabel.official_corpus_layout``) when the bank carries
    ``negmining_text``. A bank of the ``official-fp16`` precision gets TANL with the official float16 numerics
    (``core.OfficialFP16TANL``)."""
    import torch

    if getattr(bank, "precision", "fp32") == "official-fp16":
        from .core.official_fp16 import OfficialFP16TANL

        engine_class = OfficialFP16TANL if issubclass(OfficialFP16TANL, engine_class) else engine_class
    corpus, columns = bank.corpus_text_features, None
    if getattr(bank, "negmining_text", None) is not None:
        from .core.neglabel import official_corpus_layout

        layout = official_corpus_layout(*_ranking_texts(bank), _is_adjective(bank)).cpu()
        corpus = corpus.index_select(0, layout.to(corpus.device))
        columns = torch.cat([torch.arange(len(bank.id_text_features)), layout + len(bank.id_text_features)])
    return engine_class(bank.id_text_features, corpus, bank.noise_features, _logit_scale(bank), columns,
                        **hyperparameters)


def _id_only(engine_class, bank, **hyperparameters):
    """Engines that need the ID class texts only (MCM): the first C columns of the bank's logits."""
    return engine_class(bank.id_text_features, _logit_scale(bank), **hyperparameters)


def selected_negatives(bank, num_negatives: int, percentile: float):
    """NegLabel's selection of ``bank``'s corpus, ranked by its ``negmining_text`` when it has them (else by its
    own texts): (corpus indices [M], their texts [M, D]); every word counts as a noun when the bank does not say
    which are adjectives."""
    from .core.neglabel import select_negative_labels

    chosen = select_negative_labels(*_ranking_texts(bank), _is_adjective(bank), num_negatives, percentile).cpu()
    return chosen, bank.corpus_text_features.index_select(0, chosen.to(bank.corpus_text_features.device))


def _with_selection(engine_class, bank, *, num_negatives, percentile, **hyperparameters):
    """Engines that score against NegLabel's selection of the corpus (NegLabel, AdaNeg): the ID columns and the
    selected words' columns of the bank's logits."""
    import torch

    chosen, negatives = selected_negatives(bank, num_negatives, percentile)
    classes = len(bank.id_text_features)
    return engine_class(bank.id_text_features, negatives, _logit_scale(bank),
                        torch.cat([torch.arange(classes), chosen + classes]), **hyperparameters)


def _with_oodd_selection(engine_class, bank, *, negative_fraction, percentile, **hyperparameters):
    """OODD on the NegLabel base: the ID columns and the columns of OODD's own NegLabel selection
    (``core.oodd.select_oodd_negatives``, on the bank's own texts as OODD's code ranks them; every word counts as a
    noun when the bank does not say)."""
    import torch

    from .core.oodd import select_oodd_negatives

    corpus = bank.corpus_text_features
    chosen = select_oodd_negatives(bank.id_text_features, corpus, _is_adjective(bank), negative_fraction,
                                   percentile).cpu()
    classes = len(bank.id_text_features)
    return engine_class(bank.id_text_features, corpus.index_select(0, chosen.to(corpus.device)), _logit_scale(bank),
                        torch.cat([torch.arange(classes), chosen + classes]), **hyperparameters)


def _with_csp_selection(engine_class, bank, **hyperparameters):
    """CSP: its own selection of the bank's corpus (nouns and adjectives apart, ``bank.corpus_is_adjective``; all
    nouns when the bank does not say); the bank should be CSP's (``openood_tanl.csp.csp_text_bank``,
    ``create_network(templates="csp")``), and a bank that says it was built with other prompts warns."""
    import warnings

    prompts = (getattr(bank, "provenance", None) or {}).get("prompts") or {}
    if prompts.get("templates", "csp") != "csp":
        warnings.warn(f"CSP is built from a text bank with the '{prompts['templates']}' prompts, not CSP's own: build "
                      "the network with templates='csp' (the CLI does it for --methods csp)", UserWarning,
                      stacklevel=3)
    return engine_class(bank.id_text_features, bank.corpus_text_features, _logit_scale(bank),
                        getattr(bank, "corpus_is_adjective", None), **hyperparameters)


# ---------------------------------------------------------------------------------------------- the registry
@dataclass(frozen=True)
class Method:
    """One registry entry.

    Attributes:
        name: the registry name (also OpenOOD's ``postprocessor.name``).
        summary: one line for listings.
        engine: ``"module:Class"`` of the engine (``openood_tanl.core``), imported on use.
        build: ``build(engine_class, bank, **hyperparameters) -> engine``.
        config: the shipped YAML's file stem under ``configs/postprocessors/`` (default: ``name``).
        selects_negatives: whether a selection of negatives comes first: NegLabel's (``num_negatives``,
            ``percentile``), or that of the core module ``selection`` names (its ``SELECTION_*`` tables).
        selection: the core module of the selection's hyperparameters (default: ``openood_tanl.core.neglabel``).
        preset_of: for a preset, the method it sets (``tanl_official`` of ``tanl``): the hyperparameters where
            their shipped settings differ are what the preset's name stands for (``preset_settings``).
    """

    name: str
    summary: str
    engine: str
    build: Callable = field(repr=False)
    config: str = ""
    selects_negatives: bool = False
    preset_of: str = ""
    selection: str = ""

    @property
    def engine_class(self) -> type:
        module, _, attribute = self.engine.partition(":")
        return getattr(importlib.import_module(module), attribute)

    def _selection(self, what: str) -> dict:
        if not self.selects_negatives:
            return {}
        module = importlib.import_module(self.selection or "openood_tanl.core.neglabel")
        return dict(getattr(module, f"SELECTION_{what}"))

    @property
    def hyperparameter_checks(self) -> dict:
        return {**self._selection("CHECKS"), **self.engine_class.hyperparameter_checks}

    @property
    def official_names(self) -> dict:
        return {**self._selection("OFFICIAL_NAMES"), **self.engine_class.official_names}

    def engine_defaults(self) -> dict[str, Any]:
        """The engine's keyword-only defaults (plus the selection's)."""
        signature = inspect.signature(self.engine_class.__init__)
        return {**self._selection("DEFAULTS"), **{name: parameter.default for name, parameter in
                                                   signature.parameters.items()
                                                   if parameter.kind is inspect.Parameter.KEYWORD_ONLY}}

    def settings(self) -> dict[str, Any]:
        """The method's hyperparameters: the engine's defaults with the shipped YAML's ``postprocessor_args``."""
        return {**self.engine_defaults(), **_shipped_args(self.config or self.name)}


METHODS: dict[str, Method] = {method.name: method for method in (
    Method("tanl", "TANL (CVPR 2026), the paper's setting", "openood_tanl.core.tanl:TANL", _with_corpus),
    Method("tanl_official", "TANL with the authors' shipped script (alpha 0.0, gap 0.5)",
           "openood_tanl.core.tanl:TANL", _with_corpus, preset_of="tanl"),
    Method("mcm", "MCM (NeurIPS 2022): max softmax over the ID classes", "openood_tanl.core.mcm:MCM", _id_only),
    Method("neglabel", "NegLabel (ICLR 2024): grouped score against selected negatives",
           "openood_tanl.core.neglabel:NegLabel", _with_selection, selects_negatives=True),
    Method("adaneg", "AdaNeg (NeurIPS 2024): memories of test images per text proxy",
           "openood_tanl.core.adaneg:AdaNeg", _with_selection, selects_negatives=True),
    Method("csp", "CSP (NeurIPS 2024): NegLabel's score on a conjugated semantic pool", "openood_tanl.core.csp:CSP",
           _with_csp_selection),
    Method("oodd", "OODD (CVPR 2025): NegLabel minus the k-th cosine to a dictionary of OOD-like test images",
           "openood_tanl.core.oodd:OODD", _with_oodd_selection, selects_negatives=True,
           selection="openood_tanl.core.oodd"),
    Method("mcm_oodd", "OODD (CVPR 2025) on MCM's raw-cosine softmax (T = 1), its MCM code's base",
           "openood_tanl.core.mcm_oodd:MCMOODD", _id_only),
)}


#: Per method (a preset uses its method's): the hyperparameters a leaderboard's line names, in order, and what the
#: line adds about them. A method not listed here names every hyperparameter but its seed.
KEY_SETTINGS: dict[str, tuple[tuple[str, ...], str]] = {
    "mcm": (("temperature",), "the temperature divides CLIP's scaled logits: max softmax over the ID classes of "
                              "logit_scale * cos / temperature, as the TANL fork's MCM (OpenOOD-VLM's mcm "
                              "postprocessor on the network's scaled logits); the MCM code divides the raw cosines, "
                              "so its T = 1 is 100x flatter at CLIP's logit scale 100"),
    "neglabel": (("num_negatives", "num_groups", "percentile"), "grouped score over the selected negatives"),
    "adaneg": (("num_negatives", "num_groups", "threshold", "gap", "memory_length", "mix_weight", "score_mode",
                "sample_adaptive", "replace_by_entropy"), ""),
    "tanl": (("num_negatives", "memory_length", "gap", "alpha", "score_step"), ""),
    "csp": (("negative_fraction", "percentile", "num_groups"), "grouped score over CSP's selection of its own "
            "prompts' corpus (nouns and superclass-phrased adjectives apart)"),
    "oodd": (("negative_fraction", "percentile", "num_groups", "queue_size", "k"), "NegLabel's grouped score minus "
             "the k-th largest cosine to the per-stream dictionary of the lowest-scored test features"),
    "mcm_oodd": (("temperature", "queue_size", "k"), "the temperature divides the RAW cosines (the MCM code's T = 1, "
                 "100x flatter than mcm's), minus the k-th largest cosine to the per-stream dictionary"),
}


def settings_line(name: str, hyperparameters: Mapping[str, Any]) -> str:
    """One line naming method ``name``'s key settings (``KEY_SETTINGS``) with their values from ``hyperparameters``
    (a ``MethodConfig``'s) and, where it differs, the official name: ``num_negatives 1000 [beta], ...``."""
    entry = get_method(name)
    keys, note = KEY_SETTINGS.get(entry.name) or KEY_SETTINGS.get(entry.preset_of) or (
        tuple(key for key in hyperparameters if key != "seed"), "")
    official = entry.official_names
    parts = []
    for key in keys:
        if key not in hyperparameters:
            continue
        key_name = official[key].key if key in official else None
        parts.append(f"{key} {hyperparameters[key]}" + (f" [{key_name}]" if key_name and key_name != key else ""))
    return ", ".join(parts) + (f"; {note}" if note else "")


@functools.lru_cache(maxsize=None)
def _shipped_args(config: str) -> dict:
    from .yaml_files import load_yaml

    section = load_yaml(config_root() / "postprocessors" / f"{config}.yml")["postprocessor"]
    return dict(section.get("postprocessor_args") or {})


def preset_settings(name: str) -> dict[str, Any]:
    """What the name of preset ``name`` stands for: its settings where they differ from the method it sets
    (``tanl_official`` -> ``{'gap': 0.5, 'alpha': 0.0}``); ``{}`` for a method that is no preset."""
    entry = get_method(name)
    if not entry.preset_of:
        return {}
    base = get_method(entry.preset_of).settings()
    return {key: value for key, value in entry.settings().items() if base.get(key) != value}


def list_methods() -> list[str]:
    """The registry names, sorted."""
    return sorted(METHODS)


def get_method(name: str) -> Method:
    """The entry of ``name``; an unknown name is a ValueError naming the registry (and the closest name)."""
    if name not in METHODS:
        close = difflib.get_close_matches(str(name), list(METHODS), n=1)
        raise UserError(f"unknown method '{name}'" + (f" (did you mean '{close[0]}'?)" if close else "")
                        + f"; choose one of {', '.join(list_methods())}")
    return METHODS[name]


def translate_official_names(name: str, section: Mapping[str, Any]) -> tuple[dict, dict[str, str]]:
    """An OpenOOD ``postprocessor`` section of method ``name`` with the official code's key names (``tau``,
    ``beta``, ...) in ``postprocessor_args`` and ``postprocessor_sweep`` (``tau_list``) renamed to ours; returns
    (the section, {official: ours}). A key given under both names is a ValueError. For OpenOOD's own YAML files,
    where the official names are the right ones; ours (``configure``) refuse them."""
    method = get_method(name)
    ours_of = {official.key: ours for ours, official in method.official_names.items()
               if official.key is not None and official.key != ours and official.key not in method.official_names}
    section, translated = dict(section), {}
    for part, suffix in (("postprocessor_args", ""), ("postprocessor_sweep", "_list")):
        values = dict(section.get(part) or {})
        for key in list(values):
            official = key[: -len(suffix)] if suffix and key.endswith(suffix) else key
            if official not in ours_of:
                continue
            ours = ours_of[official] + suffix
            if ours in values:
                raise UserError(f"{name} config, {part}: both '{key}' (the official name) and '{ours}' are set; "
                                "keep one")
            values[ours] = values.pop(key)
            translated[key] = ours
        if part in section:
            section[part] = values
    return section, translated


def check_keys(keys, valid: Mapping[str, Any], where: str, official_names: Mapping[str, Any]) -> None:
    """Raise a ValueError for any key not in ``valid``, naming the valid keys and translating official names."""
    by_official = {official.key: ours for ours, official in official_names.items()
                   if official.key is not None and official.key != ours}
    problems = []
    for key in keys:
        if key in valid:
            continue
        if key in by_official:
            problems.append(f"'{key}' is the official name of '{by_official[key]}'; use '{by_official[key]}'")
            continue
        close = difflib.get_close_matches(str(key), list(valid), n=1)
        problems.append(f"unknown key '{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    if problems:
        raise UserError(f"{where}: " + "; ".join(problems) + f". Valid keys: {', '.join(valid)}")


@dataclass(frozen=True)
class MethodConfig:
    """A method with every hyperparameter set and checked: what a leaderboard row or a sweep point runs.

    ``engine(bank)`` builds its engine; ``factory(bank)`` is the picklable zero-argument builder that process pools
    take (``functools.partial(create_engine, name, bank, ...)``).
    """

    name: str
    hyperparameters: Mapping[str, Any]

    def engine(self, bank):
        return create_engine(self.name, bank, **self.hyperparameters)

    def factory(self, bank) -> functools.partial:
        return functools.partial(create_engine, self.name, bank, **self.hyperparameters)

    def replace(self, **hyperparameters) -> "MethodConfig":
        """The same method with some hyperparameters changed (checked again)."""
        return configure(self.name, **{**self.hyperparameters, **hyperparameters})


def _checked(method: Method, values: Mapping[str, Any], where: str) -> dict:
    from .core.validation import check_hyperparameters

    check_keys(values, method.hyperparameter_checks, where, method.official_names)
    return check_hyperparameters(method.hyperparameter_checks, values, where)


def configure(method: str, args: Mapping[str, Any] | None = None, **overrides) -> MethodConfig:
    """A checked ``MethodConfig`` from a registry name or a YAML path (OpenOOD's ``postprocessor:`` schema).

    Hyperparameters: the method's settings (engine defaults + shipped YAML), then ``args`` (e.g. a config's
    ``postprocessor_args``), then ``overrides``. Unknown keys, official names and bad values are ValueErrors or
    TypeErrors that name them.
    """
    if str(method).endswith((".yml", ".yaml")):
        section = openood_section(method)
        return configure(section["name"], {**dict(section.get("postprocessor_args") or {}), **dict(args or {})},
                         **overrides)
    entry = get_method(method)
    return MethodConfig(entry.name, _checked(entry, {**entry.settings(), **dict(args or {}), **overrides},
                                             f"{entry.name} hyperparameters"))


def openood_section(config, default_name: str | None = None) -> dict:
    """The ``postprocessor`` section of an OpenOOD config (a mapping, an OpenOOD ``Config`` or a YAML path), with its
    keys and method name (``default_name`` where the section has none) checked."""
    if isinstance(config, (str, Path)):
        from .yaml_files import load_yaml

        config = load_yaml(config, "postprocessor config", "e.g. 'postprocessor: {name: tanl, ...}'")
    section = config.get("postprocessor") if isinstance(config, Mapping) else None
    if not isinstance(section, Mapping):
        raise UserError("the config must be a mapping with a 'postprocessor' section, as in OpenOOD's "
                        "configs/postprocessors/*.yml (postprocessor: {name, APS_mode, postprocessor_args, "
                        "postprocessor_sweep})")
    check_keys(section.keys(), dict.fromkeys(SECTION_KEYS), "postprocessor config", {})
    section = dict(section)
    section["name"] = section.get("name") or default_name
    get_method(section["name"])
    return section


def create_engine(name: str, bank, **hyperparameters):
    """The engine of method ``name`` for ``bank``, with its settings and ``hyperparameters`` (checked)."""
    from .bank import check_network

    config = configure(name, **hyperparameters)
    check_network(bank)
    entry = METHODS[config.name]
    return entry.build(entry.engine_class, text_bank_of(config.name, bank), **config.hyperparameters)


def text_bank_of(name: str, bank):
    """The text bank method ``name`` is built from: ``bank.method_banks[name]`` where ``bank`` carries one (CSP's
    own prompts), else ``bank``."""
    return (getattr(bank, "method_banks", None) or {}).get(name, bank)


def create_lockstep(methods: Mapping[str, MethodConfig], bank):
    """One ``core.Lockstep`` of ``methods`` (label -> ``MethodConfig``) on ``bank``: every engine built from the bank,
    each batch's logits and softmax computed once for all of them; a ``core.lockstep.Locksteps`` of one
    ``Lockstep`` per text bank when a method has its own (``bank.method_banks``: CSP's prompts)."""
    import torch

    from .core.lockstep import Lockstep, Locksteps

    groups: dict[int, tuple[Any, dict]] = {}  # one Lockstep per text bank (a method with its own: CSP's)
    for label, method in methods.items():
        own = text_bank_of(method.name, bank)
        groups.setdefault(id(own), (own, {}))[1][label] = method.engine(bank)
    locksteps = [Lockstep(engines, own.id_text_features, own.corpus_text_features,
                          float(torch.as_tensor(own.logit_scale))) for own, engines in groups.values()]
    return locksteps[0] if len(locksteps) == 1 else Locksteps(locksteps, list(methods))
