"""OpenOOD postprocessors around the registry's engines: ``tanl``, ``tanl_official``, ``mcm``, ``neglabel``, ``adaneg``.

Each is an OpenOOD ``BasePostprocessor`` that reads its method's hyperparameters from an OpenOOD config (through
``openood_tanl.methods.configure``: unknown keys fail naming the valid ones, official names are translated), keeps
the engine's state across ``postprocess`` calls, implements OpenOOD's hyperparameter-sweep hooks and a
device-aware ``inference`` loop. Needs OpenOOD.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from openood.postprocessors import BasePostprocessor
from tqdm.auto import tqdm

from ..bank import check_network, network_device
from ..methods import check_keys, configure, create_engine, get_method, method_config_path, openood_section
from ..yaml_files import load_yaml

__all__ = ["EnginePostprocessor", "TANLPostprocessor", "TANLOfficialPostprocessor", "MCMPostprocessor",
           "NegLabelPostprocessor", "AdaNegPostprocessor", "POSTPROCESSORS"]


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
        self.args = dict(configure(self.name, section.get("postprocessor_args"), **overrides).hyperparameters)
        # OpenOOD's sweep: {'<arg>_list': [values]}, set_hyperparam receives one value per key, in key order.
        self.args_dict = dict(section.get("postprocessor_sweep") or {})
        method = get_method(self.name)
        check_keys([self._swept_arg(key) for key in self.args_dict], method.hyperparameter_checks,
                   f"{self.name} postprocessor config, postprocessor_sweep", method.official_names)
        self.APS_mode = bool(section.get("APS_mode", False))
        self.hyperparam_search_done = False
        self.engine = None
        self._engine_key = None

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
        return self.engine

    def reset(self) -> None:
        """Start a new test stream: the engine returns to its initial state (seeded, deterministic)."""
        if self.engine is not None:
            self.engine.reset()

    def reset_memory(self) -> None:
        """Alias of ``reset`` (the name the official test-time evaluator calls)."""
        self.reset()

    # ---------------------------------------------------------------- OpenOOD hooks
    def setup(self, net, id_loader_dict, ood_loader_dict):
        """Nothing to fit: the method adapts at test time."""

    @torch.no_grad()
    def postprocess(self, net, data: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Score one batch of images; returns (pred [B] long, conf [B] float, higher = more in-distribution)."""
        engine = self.engine_for(net)
        features = net(data, return_feat=True)
        if isinstance(features, (tuple, list)):  # networks in the official fork return (image, text, scale)
            features = features[0]
        return engine.step(features)

    @torch.no_grad()
    def inference(self, net, data_loader, progress: bool = True):
        """OpenOOD's loop over a loader of ``{'data', 'label'}`` batches, on the network's device (no ``.cuda()``).

        Returns numpy arrays (pred int, conf float, label int), as OpenOOD's ``BasePostprocessor.inference``.
        """
        device = network_device(net)
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
            raise ValueError(f"set_hyperparam got {len(hyperparam)} values for the swept keys "
                             f"{list(self.args_dict)}")
        swept = {self._swept_arg(key): value.item() if isinstance(value, np.generic) else value
                 for key, value in zip(self.args_dict, hyperparam)}
        self.args = dict(configure(self.name, self.args, **swept).hyperparameters)
        self.engine = None

    def get_hyperparam(self) -> list:
        return [self.args[self._swept_arg(key)] for key in self.args_dict]

    @staticmethod
    def _swept_arg(key: str) -> str:
        return key[: -len("_list")] if key.endswith("_list") else key


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


#: Registry name -> postprocessor class (OpenOOD looks postprocessors up by class).
POSTPROCESSORS = {cls.method: cls for cls in (TANLPostprocessor, TANLOfficialPostprocessor, MCMPostprocessor,
                                              NegLabelPostprocessor, AdaNegPostprocessor)}
