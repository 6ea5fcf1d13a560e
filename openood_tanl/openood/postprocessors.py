"""OpenOOD postprocessors around the registry's engines: ``tanl``, ``tanl_official``, ``mcm``, ``neglabel``, ``adaneg``,
``csp``, ``oodd``, ``mcm_oodd``.

Each is an OpenOOD ``BasePostprocessor`` that reads its method's hyperparameters from an OpenOOD config (through
``openood_tanl.methods.configure``: unknown keys fail naming the valid ones, official names are translated), keeps
the engine's state across ``postprocess`` calls, implements OpenOOD's hyperparameter-sweep hooks and a
device-aware ``inference`` loop. Needs OpenOOD.
"""
from __future__ import annotations

import logging
import warnings
from typing import Any

import numpy as np
import torch

from ..core.errors import MissingDependencyError, UserError

try:
    from openood.postprocessors import BasePostprocessor
except ImportError as error:  # OpenOOD is not on PyPI
    raise MissingDependencyError(f"openood_tanl's OpenOOD postprocessors need OpenOOD ({error}); it is not on "
                                 "PyPI: pip install git+https://github.com/Jingkang50/OpenOOD") from error
from tqdm.auto import tqdm

from ..bank import check_network, network_device
from ..methods import (
    check_keys,
    configure,
    create_engine,
    get_method,
    method_config_path,
    openood_section,
    preset_settings,
    translate_official_names,
)
from ..yaml_files import load_yaml
from .evaluator_support import check_network_fits

__all__ = ["EnginePostprocessor", "StreamStateWarning", "TANLPostprocessor", "TANLOfficialPostprocessor",
           "MCMPostprocessor", "NegLabelPostprocessor", "AdaNegPostprocessor", "POSTPROCESSORS"]

logger = logging.getLogger(__name__)


class EnginePostprocessor(BasePostprocessor):
    """An OpenOOD postprocessor around one registry method's engine.

    Args:
        config: an OpenOOD ``Config`` (or plain mapping) with a ``postprocessor`` section, whose ``name`` is the
            method; ``None`` loads the YAML shipped for the class's ``method``.
        **overrides: hyperparameters that replace the config's ``postprocessor_args``.

    ``args`` holds every hyperparameter of the engine (checked); ``conf`` from ``postprocess`` is the engine's
    score, higher = more in-distribution.
    """

    method: str = ""  # the registry name a subclass stands for

    def __init__(self, config: Any = None, **overrides: Any):
        if config is None:
            config = load_yaml(method_config_path(self.method))
        super().__init__(config)
        section = openood_section(config, self.method)
        self.name = section["name"]
        _check_preset(self.name, section.get("postprocessor_args"))
        self.args = dict(configure(self.name, section.get("postprocessor_args"), **overrides).hyperparameters)
        # OpenOOD's sweep: {'<arg>_list': [values]}, set_hyperparam receives one value per key, in key order.
        self.args_dict = dict(section.get("postprocessor_sweep") or {})
        method = get_method(self.name)
        check_keys([self._swept_arg(key) for key in self.args_dict], method.hyperparameter_checks,
                   f"{self.name} postprocessor config, postprocessor_sweep", method.official_names)
        self.APS_mode = bool(section.get("APS_mode", False))
        self.hyperparam_search_done = False
        self.translated_names: dict[str, str] = {}  # official key names read as ours (from_openood_config)
        self.engine = None
        self._engine_key = None
        self._stepped = False  # postprocess ran since the engine was built or reset
        self._last_loader = None  # the loader inference last ran over
        self._warned = False  # about carried state, in this evaluator's run

    @classmethod
    def from_openood_config(cls, config) -> "EnginePostprocessor":
        """From a config of OpenOOD's (its YAML files, a ``main.py`` config): the official key names it may use
        (``tau``, ``beta``, ...) are read as ours and listed in ``translated_names`` (and the run record)."""
        from openood.utils.config import Config

        section = openood_section(config, cls.method)
        section, translated = translate_official_names(section["name"], config["postprocessor"])
        postprocessor = cls(Config(**{**config, "postprocessor": section}))
        postprocessor.translated_names = translated
        if translated:
            logger.info(f"{postprocessor.name}: official key names read as ours: "
                        + ", ".join(f"{official} -> {ours}" for official, ours in translated.items()))
        return postprocessor

    # ---------------------------------------------------------------- engine lifecycle
    def build_engine(self, net, **args):
        """A new engine of this method for ``net`` (a network carrying its text bank, or a ``TextBank``)."""
        return create_engine(self.name, net, **args)

    def engine_for(self, net):
        """The engine for ``net``, built on first use and rebuilt when the network or its text bank changes."""
        check_network(net)
        key = (id(net), id(net.id_text_features), id(net.corpus_text_features), id(net.noise_features))
        if self.engine is None or key != self._engine_key:
            self.engine = self.build_engine(net, **self.args)
            self._engine_key = key
            self._stepped = False
        return self.engine

    def reset(self) -> None:
        """Start a new test stream: the engine returns to its initial state (seeded, deterministic)."""
        if self.engine is not None:
            self.engine.reset()
        self._stepped = False

    @property
    def stateful(self) -> bool:
        """Whether the method learns from the stream (TANL, AdaNeg): its scores depend on what it saw before."""
        return bool(get_method(self.name).engine_class.learned_state)

    def _warn_carried_state(self, where: str, stacklevel: int) -> None:
        if not (self.stateful and self._stepped) or self._warned:
            return
        self._warned = True
        warnings.warn(
            f"{self.name} learns from the stream and was not reset: {where} starts with the memories of everything "
            "it scored before. OpenOOD's own Evaluator scores the whole ID test set and then each OOD set alone, "
            "never resetting, which is not the protocol test-time methods are published under: use "
            "openood_tanl.openood.evaluators.TestTimeEvaluator (the paper's protocol) or call "
            "postprocessor.reset() before each stream", StreamStateWarning, stacklevel=stacklevel)

    def reset_memory(self) -> None:
        """Alias of ``reset`` (the name the official test-time evaluator calls)."""
        self.reset()

    # ---------------------------------------------------------------- OpenOOD hooks
    def setup(self, net, id_loader_dict, ood_loader_dict):
        """Nothing to fit (the method adapts at test time). Checks that ``net``'s ID classes fit the benchmark:
        OpenOOD's benchmark named in the config (``dataset.name``), else the labels of the ID test list."""
        check_network(net)
        self._warned = False  # a new evaluator's run
        self._warn_carried_state("this evaluator's run", stacklevel=4)
        benchmark = (self.config.get("dataset") or {}).get("name") if hasattr(self.config, "get") else None
        check_network_fits(net, benchmark or "the ID test set", _label_count((id_loader_dict or {}).get("test")))

    @torch.no_grad()
    def postprocess(self, net, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score one batch of images; returns (pred [B] long, conf [B] float, higher = more in-distribution)."""
        engine = self.engine_for(net)
        features = net(data, return_feat=True)
        if isinstance(features, (tuple, list)):  # networks in the official fork return (image, text, scale)
            features = features[0]
        self._stepped = True
        return engine.step(features)

    @torch.no_grad()
    def inference(self, net, data_loader, progress: bool = True):
        """OpenOOD's loop over a loader of ``{'data', 'label'}`` batches, on the network's device (no ``.cuda()``).

        Returns numpy arrays (pred int, conf float, label int), as OpenOOD's ``BasePostprocessor.inference``.
        """
        device = network_device(net)
        if data_loader is not self._last_loader:
            self._warn_carried_state("this loader", stacklevel=5)  # past torch.no_grad's wrapper
            self._last_loader = data_loader
        preds, confs, labels = [], [], []
        for batch in tqdm(data_loader, disable=None if progress else True, desc=f"{self.name} inference"):
            pred, conf = self.postprocess(net, batch["data"].to(device, non_blocking=True))
            preds.append(pred.cpu())
            confs.append(conf.cpu())
            labels.append(torch.as_tensor(batch["label"]).cpu())
        return (torch.cat(preds).numpy().astype(int), torch.cat(confs).numpy(),
                torch.cat(labels).numpy().astype(int))

    def set_hyperparam(self, hyperparam: list) -> None:
        """Set the swept arguments (one value per ``postprocessor_sweep`` key, in order); the state restarts."""
        if len(hyperparam) != len(self.args_dict):
            raise UserError(f"set_hyperparam got {len(hyperparam)} values for the swept keys "
                            f"{list(self.args_dict)}")
        swept = {self._swept_arg(key): value.item() if isinstance(value, np.generic) else value
                 for key, value in zip(self.args_dict, hyperparam)}
        self.args = dict(configure(self.name, self.args, **swept).hyperparameters)
        self.engine = None
        self._stepped = False

    def get_hyperparam(self) -> list:
        return [self.args[self._swept_arg(key)] for key in self.args_dict]

    @staticmethod
    def _swept_arg(key: str) -> str:
        return key[: -len("_list")] if key.endswith("_list") else key


class StreamStateWarning(UserWarning):
    """A stateful postprocessor carries what it learned into a stream it was not reset for."""


def _check_preset(name: str, config_args) -> None:
    """A preset's name must run the preset: refuse a config whose ``postprocessor_args`` change what the name
    stands for (``postprocessor.name: tanl_official`` merged with tanl.yml's settings, say)."""
    preset = preset_settings(name)
    configured = configure(name, config_args).hyperparameters
    changed = {key: configured[key] for key, value in preset.items() if configured[key] != value}
    if changed:
        entry = get_method(name)
        raise UserError(
            f"postprocessor.name '{name}' is the preset {_settings(preset)} ({method_config_path(name).name}), but "
            f"the config's postprocessor_args set {_settings(changed)}: a result labelled '{name}' must be the "
            f"preset. Use configs/postprocessors/{method_config_path(name).name} with postprocessor.name {name}, "
            f"or postprocessor.name {entry.preset_of} (the method, any settings) for these settings")


def _settings(values: dict) -> str:
    return ", ".join(f"{key}={value}" for key, value in values.items())


def _label_count(loader) -> int | None:
    """1 + the largest label of an OpenOOD image-list loader (``dataset.imglist`` lines ``<path> <label>``); None
    when the loader is not one or a label is not an integer."""
    lines = getattr(getattr(loader, "dataset", None), "imglist", None)
    try:
        return 1 + max(int(line.strip().split(" ", 1)[1]) for line in lines) if lines else None
    except (IndexError, ValueError, TypeError):
        return None


class TANLPostprocessor(EnginePostprocessor):
    """Test-time Activated Negative Labels (CVPR 2026), the paper's setting (``configs/postprocessors/tanl.yml``):
    ``num_negatives`` [beta], ``memory_length`` [memleng], ``gap``, ``alpha``, ``score_step`` [gamma],
    ``score_memory_length``, ``seed``. The memories live across ``postprocess`` calls until ``reset()``."""

    method = "tanl"


class TANLOfficialPostprocessor(TANLPostprocessor):
    """TANL with the authors' shipped script (``official.sh``: alpha 0.0, gap 0.5; ``tanl_official.yml``)."""

    method = "tanl_official"


class MCMPostprocessor(EnginePostprocessor):
    """MCM: max softmax over the ID classes; ``temperature`` [tau]."""

    method = "mcm"


class NegLabelPostprocessor(EnginePostprocessor):
    """NegLabel: ID share of the softmax over [ID | negatives], averaged over groups; ``num_negatives``
    [ood_number], ``percentile`` [pct], ``num_groups`` [ngroup], ``seed``."""

    method = "neglabel"


class AdaNegPostprocessor(EnginePostprocessor):
    """AdaNeg (NeurIPS 2024): text proxies plus memories of test images per proxy (stateful until ``reset()``)."""

    method = "adaneg"


class CSPPostprocessor(EnginePostprocessor):
    """CSP (NeurIPS 2024): NegLabel's grouped score on CSP's selection; ``num_groups`` [ngroup],
    ``negative_fraction`` [neg_topk], ``percentile`` [pencentile], ``seed``. Its text bank is CSP's when the network
    is built with ``templates: csp`` (``configs/networks/clip_tanl.yml``); on another bank it warns."""

    method = "csp"


class OODDPostprocessor(EnginePostprocessor):
    """OODD (CVPR 2025) on the NegLabel base: a per-stream dictionary of OOD-like features (stateful until
    ``reset()``); ``negative_fraction`` [neg_topk], ``percentile`` [pencentile], ``num_groups`` [ngroup],
    ``queue_size``, ``k`` [K]."""

    method = "oodd"


class MCMOODDPostprocessor(EnginePostprocessor):
    """OODD (CVPR 2025) on its MCM base (raw-cosine softmax at ``temperature`` [T] 1; stateful until
    ``reset()``)."""

    method = "mcm_oodd"


#: Registry name -> postprocessor class (OpenOOD looks postprocessors up by class).
POSTPROCESSORS = {cls.method: cls for cls in (TANLPostprocessor, TANLOfficialPostprocessor, MCMPostprocessor,
                                              NegLabelPostprocessor, AdaNegPostprocessor, CSPPostprocessor,
                                              OODDPostprocessor, MCMOODDPostprocessor)}
