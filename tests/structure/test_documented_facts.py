"""Facts README.md restates are checked against their one source in the code, so the two cannot drift."""
import re
from pathlib import Path

import openood_tanl
from openood_tanl.core.tanl import OFFICIAL_NAMES

README = (Path(__file__).resolve().parents[2] / "README.md").read_text()


def _table_rows(heading: str) -> list[list[str]]:
    section = README.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    rows = [line.strip("|").split("|") for line in section.splitlines() if line.startswith("| `")]
    return [[cell.strip() for cell in row] for row in rows]


def test_the_hyperparameter_table_is_tanls_official_names_and_defaults():
    defaults = openood_tanl.configure("tanl").hyperparameters
    rows = _table_rows("Hyperparameters")
    assert [row[0].strip("`") for row in rows] == list(defaults)
    for ours, official, default, _ in rows:
        name = ours.strip("`")
        key = OFFICIAL_NAMES[name].key
        assert (official == f"`{key}`") if key is not None else not official.startswith("`"), name
        assert float(default) == defaults[name], name


def test_the_methods_table_lists_the_registry():
    rows = _table_rows("The methods")
    assert sorted(row[0].strip("`") for row in rows) == openood_tanl.list_methods()
    for row in rows:
        assert re.fullmatch(rf"`configs/postprocessors/{row[0].strip('`')}.yml`", row[3]), row


def test_the_api_example_lists_the_registry():
    listed = re.search(r"openood_tanl\.list_methods\(\)\s+# (\[.*?\])", README).group(1)
    assert listed == repr(openood_tanl.list_methods())
