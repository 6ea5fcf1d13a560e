"""The package's error type: ``UserError``, a mistake in what the user gave (arguments, hyperparameters, files,
specs, class names, corpus, images, model names, devices), to be fixed by the user rather than reported as a bug.

The ``openood-tanl`` command reports a ``UserError`` in one line with exit code 2 and any other exception as an
internal error (exit code 1). The subclasses also derive from the builtin a caller may already catch.
"""
from __future__ import annotations

__all__ = ["UserError", "UserTypeError", "MissingFileError", "MissingDependencyError", "SetupError"]


class UserError(ValueError):
    """A mistake in the user's input; its message names the problem and the fix."""


class UserTypeError(UserError, TypeError):
    """A value of the wrong kind (e.g. a string where a number belongs)."""


class MissingFileError(UserError, FileNotFoundError):
    """A file or folder the user named (or a benchmark lists) that does not exist."""


class MissingDependencyError(UserError, ImportError):
    """An optional library a feature needs (OpenOOD, open_clip) is not installed; the message names the install."""


class SetupError(UserError, RuntimeError):
    """The machine is not set up for what was asked (weights that cannot be downloaded offline, torchrun's
    environment, a device); the message names the fix."""
