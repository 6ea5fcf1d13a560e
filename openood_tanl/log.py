"""The package's messages: every module logs to ``logging.getLogger(__name__)`` (under the ``openood_tanl`` logger)
and prints nothing; progress and notices are INFO. Entry points call ``show_messages()`` so their users see them."""
from __future__ import annotations

import logging
import sys

from .core.errors import UserError

__all__ = ["PACKAGE_LOGGER", "show_messages"]

#: The logger every module's logger descends from.
PACKAGE_LOGGER = "openood_tanl"


class _ConsoleHandler(logging.StreamHandler):
    """Writes to ``sys.stderr`` or ``sys.stdout`` as it is when a message comes (so a redirection made later, such
    as OpenOOD's log file tee, receives it too)."""

    def __init__(self, stream_name: str):
        super().__init__(getattr(sys, stream_name))
        self.stream_name = stream_name

    def emit(self, record: logging.LogRecord) -> None:
        self.stream = getattr(sys, self.stream_name)
        super().emit(record)


def show_messages(stream: str = "stderr", level: int = logging.INFO) -> logging.Logger:
    """Show the package's messages at ``level`` and above on ``sys.stderr`` (``stream="stdout"``: ``sys.stdout``),
    one plain line each; returns the package logger.

    Does nothing where logging is already configured: a handler on the package logger or on the root logger.
    """
    if stream not in ("stderr", "stdout"):
        raise UserError(f"stream must be 'stderr' or 'stdout', not {stream!r}")
    logger = logging.getLogger(PACKAGE_LOGGER)
    if logger.handlers or logging.getLogger().handlers:
        return logger
    handler = _ConsoleHandler(stream)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    if logger.level == logging.NOTSET:
        logger.setLevel(level)
    return logger
