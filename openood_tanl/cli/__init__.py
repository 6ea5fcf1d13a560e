"""The ``openood-tanl`` command (``openood_tanl.cli:main``; also ``python -m openood_tanl.cli``).

Modules by role: ``parser`` (the options and their argument types), ``pipeline`` (the one run every command is:
out folder -> methods -> plan -> record -> claim -> load -> replay -> write), ``commands`` (each command's steps),
``writers`` (output folders, claims, CSV/markdown/PNG/run-record files), ``status`` (exit statuses,
``UsageError``), ``core`` (``main``: errors to one line and an exit status).
"""
from ..core.errors import UserError
from .commands import (
    DEFAULT_SWEEP_VALUES,
    DEFAULT_TRACE_WINDOW,
    SYNTHETIC_NOTICE,
    cmd_demo,
    cmd_eval,
    cmd_extract,
    cmd_leaderboard,
    cmd_reproduce,
    cmd_sweep,
    sweep_values,
)
from .core import main
from .parser import build_parser, default_workers
from .pipeline import (
    Job,
    configure_methods,
    load_features,
    method_label,
    parse_overrides,
    plan_benchmark,
    plan_benchmarks,
    run_methods,
    stream_settings,
)
from .status import ExitStatus, UsageError
from .writers import OUTPUT_LOCK, check_out, claim_outputs, write_leaderboard, write_trace

__all__ = ["main", "build_parser", "default_workers", "parse_overrides", "method_label", "configure_methods",
           "plan_benchmark", "plan_benchmarks", "stream_settings", "load_features", "run_methods", "sweep_values",
           "Job", "check_out", "claim_outputs", "write_leaderboard", "write_trace", "OUTPUT_LOCK", "ExitStatus",
           "UsageError", "UserError", "SYNTHETIC_NOTICE", "DEFAULT_SWEEP_VALUES", "DEFAULT_TRACE_WINDOW",
           "cmd_demo", "cmd_extract", "cmd_eval", "cmd_leaderboard", "cmd_sweep", "cmd_reproduce"]
