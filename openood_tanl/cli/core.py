"""``main()``: parse the command line, run the command, turn its end into one line and an exit status.

A ``UserError`` (the user's to fix) or an OS error on a named file (permission denied, disk full, ...) is one line
on stderr and exit 2; any other exception is an internal error, a bug to report, exit 1; Ctrl-C is exit 130.
``--debug`` or ``OPENOOD_TANL_DEBUG=1`` re-raises instead.
"""
from __future__ import annotations

import errno
import os
import sys

from ..core.errors import UserError
from ..log import show_messages
from .parser import build_parser
from .status import ExitStatus
from .writers import release_outputs

__all__ = ["main"]

DEBUG_HINT = "(run with --debug, or OPENOOD_TANL_DEBUG=1, for the traceback)"


def _one_line(error: BaseException) -> str:
    """The error's message; for one re-raised from a DataLoader worker (whose message carries the worker's
    traceback), the worker's own message."""
    text = str(error)
    if "Original Traceback" in text:
        last = text.strip().splitlines()[-1]
        text = last.split(": ", 1)[1] if ": " in last else last
    return text


def _about_a_file(error: BaseException) -> bool:
    """An OS error on a named file or folder (not found, permission denied, disk full, read-only file system): the
    machine's or the user's to fix, not a bug."""
    return isinstance(error, OSError) and error.filename is not None and error.errno in (
        errno.ENOENT, errno.EACCES, errno.EPERM, errno.EISDIR, errno.ENOTDIR, errno.ENOSPC, errno.EROFS, errno.EDQUOT)


def main(argv: list[str] | None = None) -> int:
    """Run ``openood-tanl`` with ``argv`` (default: the command line); returns the exit status."""
    args = build_parser().parse_args(argv)  # argparse reports its own usage errors (exit code 2)
    show_messages("stdout")  # the package's notices (text-bank encoding, corpus report) beside the command's output
    debug = getattr(args, "debug", False) or os.environ.get("OPENOOD_TANL_DEBUG", "") not in ("", "0")
    try:
        import torch

        torch.set_grad_enabled(False)
        args.run(args)
    except KeyboardInterrupt:
        release_outputs(failed=True)
        print(f"openood-tanl {args.command}: interrupted", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as error:  # noqa: BLE001 - every error becomes one readable line
        release_outputs(failed=True)
        if debug:
            raise
        user = isinstance(error, UserError) or _about_a_file(error)
        what = "error" if user else f"internal error (a bug in openood-tanl; please report it): {type(error).__name__}"
        print(f"openood-tanl {args.command}: {what}: {_one_line(error)}", file=sys.stderr)
        print(DEBUG_HINT, file=sys.stderr)
        return ExitStatus.ERROR_USER if user else ExitStatus.ERROR_INTERNAL
    release_outputs(failed=False)
    return ExitStatus.OK
