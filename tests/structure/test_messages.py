"""The library's messages go through ``logging``; only the entry points and OpenOOD's console flow print."""
import ast
import logging
from pathlib import Path

from openood_tanl.log import PACKAGE_LOGGER, show_messages

PACKAGE = Path(__file__).resolve().parents[2] / "openood_tanl"

#: Modules whose printing is their output: the command, the OpenOOD entry point, and the evaluators' console lines
#: and result tables, which follow OpenOOD's own evaluator and APS search.
PRINTING = ("cli", "openood/main.py", "openood/evaluators.py", "openood/evaluator_support.py")


def test_only_the_entry_points_and_openoods_console_flow_print():
    printing = [f"{path.relative_to(PACKAGE)}:{node.lineno}" for path in sorted(PACKAGE.rglob("*.py"))
                if not str(path.relative_to(PACKAGE)).startswith(PRINTING)
                for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "print"]
    assert not printing, printing


def test_show_messages_puts_the_package_messages_on_stderr(monkeypatch, capsys):
    logger = logging.getLogger(PACKAGE_LOGGER)
    monkeypatch.setattr(logging.getLogger(), "handlers", [])  # as in a plain program, not under pytest
    monkeypatch.setattr(logger, "handlers", [])
    monkeypatch.setattr(logger, "level", logging.NOTSET)
    assert show_messages() is logger
    assert show_messages() is logger and len(logger.handlers) == 1  # once
    logging.getLogger("openood_tanl.networks.clip_network").info("encoding 3 classes")
    logging.getLogger("openood_tanl.networks.clip_network").debug("not shown")
    assert capsys.readouterr().err == "encoding 3 classes\n"


def test_show_messages_leaves_configured_logging_alone(monkeypatch):
    logger = logging.getLogger(PACKAGE_LOGGER)
    monkeypatch.setattr(logging.getLogger(), "handlers", [logging.NullHandler()])
    monkeypatch.setattr(logger, "handlers", [])
    show_messages()
    assert logger.handlers == []
