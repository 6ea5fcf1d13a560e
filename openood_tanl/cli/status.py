"""How a run of ``openood-tanl`` ends: its exit status, and the command line's own mistakes."""
from __future__ import annotations

import enum

from ..core.errors import UserError

__all__ = ["ExitStatus", "UsageError"]


class ExitStatus(enum.IntEnum):
    """The exit code of ``openood-tanl``."""

    OK = 0
    ERROR_INTERNAL = 1  # a bug of the package: anything but a UserError
    ERROR_USER = 2  # a UserError, or a usage error reported by argparse
    INTERRUPTED = 130  # Ctrl-C


class UsageError(UserError):
    """A mistake in the command line or its files: reported in one line, exit code 2."""
