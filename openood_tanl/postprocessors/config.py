"""Reading a postprocessor's arguments from an OpenOOD config, with errors that name the valid keys."""
from __future__ import annotations

import difflib
import inspect
from pathlib import Path
from typing import Any, Mapping

from ..yaml_files import load_yaml as _load_yaml

__all__ = ["CONFIG_ROOT", "load_yaml", "packaged_config_path", "engine_defaults", "check_keys", "SECTION_KEYS"]

#: Folder holding ``postprocessors/<name>.yml``, usable as OpenOOD's ``Evaluator(config_root=...)``.
CONFIG_ROOT = Path(__file__).resolve().parent.parent / "configs"

#: Keys an OpenOOD ``postprocessor:`` section may hold.
SECTION_KEYS = ("name", "APS_mode", "postprocessor_args", "postprocessor_sweep")


def load_yaml(path: str | Path) -> dict:
    """Safe-load a postprocessor config file, which must hold a mapping."""
    return _load_yaml(path, "config file", "e.g. 'postprocessor: {name: tanl, ...}'")


def packaged_config_path(name: str) -> Path:
    """The YAML shipped with the package for postprocessor ``name``."""
    return CONFIG_ROOT / "postprocessors" / f"{name}.yml"


def engine_defaults(engine_class: type) -> dict[str, Any]:
    """Keyword-only parameters of an engine's ``__init__`` with their defaults (the hyperparameters)."""
    signature = inspect.signature(engine_class.__init__)
    return {name: p.default for name, p in signature.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def check_keys(keys, valid: Mapping[str, Any], where: str, official_names: Mapping[str, str]) -> None:
    """Raise a ValueError for any key not in ``valid``, naming the valid keys and the official-name mapping."""
    by_official = {official.split(" ")[0]: ours for ours, official in official_names.items()
                   if official != ours and official.split(" ")[0] != "none"}
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
        raise ValueError(f"{where}: " + "; ".join(problems) + f". Valid keys: {', '.join(valid)}")
