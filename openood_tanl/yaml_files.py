"""Reading YAML files (configs, benchmark specs) with errors that name the file, the line and the fix."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

__all__ = ["load_yaml"]


def load_yaml(path: str | Path, what: str = "config file", example: str = "") -> dict:
    """Safe-load ``path``, which must hold a YAML mapping; ``what`` and ``example`` word the errors."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{what} {path} does not exist")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.safe_load(handle)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{what} {path} is not valid YAML{at}: {getattr(error, 'problem', None) or error}; "
                         "fix the file") from None
    if not isinstance(data, Mapping):
        raise ValueError(f"{what} {path} must hold a YAML mapping{f' ({example})' if example else ''}, got "
                         f"{type(data).__name__}")
    return dict(data)
