"""An OpenOOD postprocessor around a stateful engine on CLIP embeddings (the shared adapter logic).

A subclass names its engine and how to build it from the network; this class reads the OpenOOD config, keeps the
engine's state across ``postprocess`` calls, implements OpenOOD's hyperparameter-sweep hooks and a device-aware
``inference`` loop.
"""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
import torch
from tqdm.auto import tqdm

from ..core.validation import check_hyperparameters
from ..protocol import check_network, network_device
from .base import BasePostprocessor
from .config import SECTION_KEYS, check_keys, engine_defaults, load_yaml, packaged_config_path

__all__ = ["EnginePostprocessor"]


def _section(config: Any) -> Mapping:
    if not isinstance(config, Mapping) or not isinstance(config.get("postprocessor"), Mapping):
        raise ValueError("the config must be a mapping with a 'postprocessor' section, as in OpenOOD's "
                         "configs/postprocessors/*.yml (postprocessor: {name, APS_mode, postprocessor_args, "
                         "postprocessor_sweep})")
    return config["postprocessor"]


class EnginePostprocessor(BasePostprocessor):
    """Base of the engine-backed postprocessors.

    Args:
        config: an OpenOOD ``Config`` (or plain mapping) with a ``postprocessor`` section; ``None`` loads the YAML
            shipped with the package.
        **overrides: hyperparameters that replace the config's ``postprocessor_args``.

    Subclasses set ``name``, ``engine_class``, ``official_names`` and implement ``build_engine(net, **args)``.
    The hyperparameters are the engine's keyword-only arguments plus ``extra_parameters`` (arguments the
    postprocessor itself uses to build the engine, e.g. NegLabel's selection size, checked by ``extra_checks``).
    Every value is checked when the postprocessor is made (the engine's ``hyperparameter_checks``), so a wrong
    type or range fails before any image is encoded; bounds that need the text bank are checked by the engine.
    """

    name: str = ""
    engine_class: type = object
    official_names: Mapping[str, str] = {}
    extra_parameters: Mapping[str, Any] = {}
    extra_checks: Mapping[str, Any] = {}

    def __init__(self, config: Any = None, **overrides: Any):
        if config is None:
            config = load_yaml(packaged_config_path(self.name))
        super().__init__(config)
        section = _section(config)
        where = f"{self.name} postprocessor config"
        check_keys(section.keys(), dict.fromkeys(SECTION_KEYS), where, {})
        self.defaults = {**self.extra_parameters, **engine_defaults(self.engine_class)}
        given = dict(section.get("postprocessor_args") or {})
        check_keys(given, self.defaults, f"{where}, postprocessor_args", self.official_names)
        check_keys(overrides, self.defaults, f"{type(self).__name__} arguments", self.official_names)
        self.args = self._checked({**self.defaults, **given, **overrides})
        # OpenOOD's sweep: {'<arg>_list': [values]}, set_hyperparam receives one value per key, in key order.
        self.args_dict = dict(section.get("postprocessor_sweep") or {})
        check_keys([self._swept_arg(key) for key in self.args_dict], self.defaults,
                   f"{where}, postprocessor_sweep", self.official_names)
        self.APS_mode = bool(section.get("APS_mode", False))
        self.hyperparam_search_done = False
        self.engine = None
        self._engine_key = None

    # ---------------------------------------------------------------- engine lifecycle
    def build_engine(self, net, **args):
        raise NotImplementedError

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
        args = dict(self.args)
        for key, value in zip(self.args_dict, hyperparam):
            args[self._swept_arg(key)] = value.item() if isinstance(value, np.generic) else value
        self.args = self._checked(args)
        self.engine = None

    def get_hyperparam(self) -> list:
        return [self.args[self._swept_arg(key)] for key in self.args_dict]

    def _checked(self, args: dict) -> dict:
        checks = {**self.extra_checks, **getattr(self.engine_class, "hyperparameter_checks", {})}
        return check_hyperparameters(checks, args, f"{self.name} postprocessor")

    @staticmethod
    def _swept_arg(key: str) -> str:
        return key[: -len("_list")] if key.endswith("_list") else key
