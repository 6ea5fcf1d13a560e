"""Reading YAML files (configs, benchmark specs) with errors that name the file, the line and the fix."""
from __future__ import annotations

from pathlib import Path
from typing import Mapping

from .core.errors import MissingFileError, UserError

__all__ = ["load_yaml"]


def _loader(allow_aliases: bool):
    import yaml

    if allow_aliases:
        return yaml.SafeLoader

    class NoAliases(yaml.SafeLoader):
        """Refuses aliases (``*name``): a file that does not need them cannot expand into a huge value."""

        def compose_node(self, parent, index):
            if self.check_event(yaml.AliasEvent):
                event = self.peek_event()
                raise yaml.YAMLError(f"YAML aliases (*{event.anchor}) are not accepted here, at line "
                                     f"{event.start_mark.line + 1}; write the value out")
            return super().compose_node(parent, index)

    return NoAliases


def load_yaml(path: str | Path, what: str = "config file", example: str = "", *, allow_aliases: bool = True) -> dict:
    """Safe-load ``path``, which must hold a YAML mapping; ``what`` and ``example`` word the errors; with
    ``allow_aliases=False`` a YAML alias is an error (files that need none, such as benchmark specs)."""
    import yaml

    path = Path(path)
    if not path.is_file():
        raise MissingFileError(f"{what} {path} does not exist")
    try:
        with open(path, encoding="utf-8") as handle:
            data = yaml.load(handle, Loader=_loader(allow_aliases))  # noqa: S506 - a SafeLoader
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise UserError(f"{what} {path} is not valid YAML{at}: {getattr(error, 'problem', None) or error}; "
                        "fix the file") from None
    except UnicodeDecodeError as error:
        raise UserError(f"{what} {path} is not UTF-8 text ({error.reason} at byte {error.start})") from None
    if not isinstance(data, Mapping):
        raise UserError(f"{what} {path} must hold a YAML mapping{f' ({example})' if example else ''}, got "
                        f"{type(data).__name__}")
    return dict(data)
