"""What a run writes: its output folders (created, locked, released), claims on their files (no silent
overwrite of another configuration), and the CSV, markdown, PNG and run-record files."""
from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

from ..core.errors import UserError
from .status import UsageError

__all__ = ["OUTPUT_LOCK", "Output", "check_out", "release_outputs", "claim_outputs", "output_errors", "show",
           "write_csv", "write_markdown", "write_record", "print_conventions", "write_leaderboard", "write_sweep",
           "write_trace"]

#: The output folders this command created and the locks it holds on them (released when it ends; a folder it
#: created is removed again when the command fails and leaves it empty).
_OUTPUTS: dict[str, list] = {"created": [], "locks": []}
OUTPUT_LOCK = ".openood-tanl.lock"


@dataclass(frozen=True)
class Output:
    """One set of result files: claimed before any model loads, written after the replay."""

    folder: Path
    stem: str  # the run record is <stem>.run.json
    files: list[str]
    record: dict
    flag: str | None = None  # a folder of its own (e.g. --trace), checked and locked like --out


def check_out(out: Path, flag: str = "--out") -> Path:
    """The output folder, created, writable and claimed for this run (one run writes into a folder at a time), or
    a UsageError naming ``flag``."""
    from ..evaluation.feature_cache import FileLock

    if out.exists() and not out.is_dir():
        raise UsageError(f"{flag} {out} is a file; give a folder for the results")
    existed = out.exists()
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        raise UsageError(f"cannot create the output folder {flag} {out} ({error.strerror}); choose another") from None
    if not existed:
        _OUTPUTS["created"].append(out)
    if not os.access(out, os.W_OK | os.X_OK):
        raise UsageError(f"the output folder {flag} {out} is not writable; choose another")
    lock = FileLock(out / OUTPUT_LOCK)
    if not lock.acquire(blocking=False):
        raise UsageError(f"another openood-tanl run is writing into {flag} {out}; wait for it to finish or choose "
                         "another folder")
    _OUTPUTS["locks"].append(lock)
    return out


def release_outputs(failed: bool) -> None:
    """Release this command's output locks; after a failure, remove the folders it created and left empty."""
    for lock in _OUTPUTS["locks"]:
        lock.release()
    for folder in reversed(_OUTPUTS["created"]) if failed else ():
        try:
            folder.rmdir()  # only when empty: nothing of this run is lost
        except OSError:
            pass
    _OUTPUTS["locks"].clear()
    _OUTPUTS["created"].clear()


@contextlib.contextmanager
def output_errors(folders):
    """An OSError while writing into ``folders`` (disk full, permission denied, ...) becomes a UsageError naming
    them: the environment is the user's to fix."""
    try:
        yield
    except OSError as error:
        if isinstance(error, UserError):  # e.g. a MissingFileError: already worded
            raise
        raise UsageError(f"cannot write the results into {', '.join(map(str, folders))}: {error}; free some space "
                         "or fix the folder's permissions, or choose another --out") from error


def claim_outputs(out: Path, stem: str, files: list[str], record: dict, overwrite: bool) -> None:
    """Refuse to overwrite results of another configuration (another ``config_id``, or none) unless ``overwrite``."""
    sidecar = out / f"{stem}.run.json"
    present = [name for name in [*files, sidecar.name] if (out / name).exists()]
    if not present:
        return
    try:
        previous = json.loads(sidecar.read_text()).get("config_id") if sidecar.exists() else None
    except (OSError, ValueError):
        previous = None
    if overwrite or previous == record["config_id"]:  # replaced: no record vouches for them until the new one
        sidecar.unlink(missing_ok=True)
        return
    what = f"another configuration (config {previous})" if previous else "a run of unknown configuration"
    raise UsageError(f"{out} already holds {', '.join(present)} from {what}; this run is config "
                     f"{record['config_id']}. Pass --overwrite to replace them, or choose another --out")


def show(table) -> None:
    """Print a table with two decimals."""
    import pandas as pd

    with pd.option_context("display.width", 200, "display.max_columns", 50, "display.float_format", "{:.2f}".format):
        print(table)


def write_csv(table, path: Path, record: dict, **kwargs) -> Path:
    """A CSV with a ``config_id`` column naming the run record it belongs to, written atomically."""
    from ..embedding_cache import write_atomic

    text = table.assign(config_id=record["config_id"]).to_csv(float_format="%.4f", **kwargs)
    write_atomic(path, text.encode("utf-8"))
    print(f"wrote {path}")
    return path


def write_markdown(text: str, path: Path, record: dict) -> Path:
    """``text`` and the record's one-line provenance, written atomically."""
    from ..embedding_cache import write_atomic
    from ..provenance import provenance_line

    write_atomic(path, (text + f"\n{provenance_line(record)}\n").encode("utf-8"))
    print(f"wrote {path}")
    return path


def write_record(out: Path, stem: str, record: dict, files: list[Path]) -> None:
    """``<stem>.run.json``: what produced ``files``."""
    from ..provenance import write_run_record

    path = write_run_record(out / f"{stem}.run.json", record, files)
    print(f"wrote {path}: what produced {', '.join(f.name for f in files)} (config {record['config_id']})")


def print_conventions() -> None:
    print("FPR@95: OpenOOD's convention (OOD positive); FPR@95(ID+): the CLIP-OOD papers' (ID positive).")


def write_leaderboard(results, out: Path, record: dict):
    """``results`` (``compare_methods``' long table) -> results.csv, leaderboard.csv, leaderboard.md."""
    from ..evaluation.tables import leaderboard_table, markdown_table, settings_markdown

    board = leaderboard_table(results)
    show(board)
    markdown = markdown_table(board) + "\n" + settings_markdown(record["methods"])
    files = [write_csv(results, out / "results.csv", record, index=False),
             write_csv(board, out / "leaderboard.csv", record),
             write_markdown(markdown, out / "leaderboard.md", record)]
    write_record(out, "leaderboard", record, files)
    return board


def write_sweep(curves: dict, argument: str, title: str, out: Path, record: dict, stem: str = "sweep") -> None:
    """``curves`` (method -> its table over the values of ``argument``) -> ``<stem>.csv``, ``<stem>.png``."""
    import pandas as pd

    from ..evaluation.comparison import plot_sweep

    table = pd.concat([c.assign(method=m) for m, c in curves.items()], ignore_index=True)
    show(table.set_index(["method", argument]))
    files = [write_csv(table, out / f"{stem}.csv", record, index=False),
             plot_sweep(curves, argument, out / f"{stem}.png", title=title)]
    print(f"wrote {files[-1]}")
    write_record(out, stem, record, files)


def write_trace(result, folder: Path, record: dict) -> list[Path]:
    """A replay's trace as ``trace.csv`` and a PNG per stream in ``folder``, with ``trace.run.json``."""
    from ..evaluation.traces import write_traces

    files = write_traces(result.trace, folder)
    print(f"wrote {folder / 'trace.csv'} and {len(files) - 1} stream plot(s) in {folder}")
    write_record(folder, "trace", record, files)
    return files
