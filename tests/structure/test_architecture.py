"""The house plan, checked: the layers' import rules, no import cycle, short functions, every package installed."""
import ast
import configparser
from collections import defaultdict
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[2] / "openood_tanl"


def _modules() -> dict[str, Path]:
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        modules[".".join(parts)] = path
    return modules


MODULES = _modules()


def _imports(name: str, path: Path) -> list[tuple[str, int]]:
    """(imported module, line) for every import in the file, at any depth, relative ones resolved."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:  # "from pkg import submodule" imports the submodule
                candidate = f"{base}.{alias.name}"
                found.append((candidate if candidate in MODULES else base, node.lineno))
    return found


def test_only_the_openood_subpackage_imports_openood():
    offenders = [f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}"
                 for name, path in MODULES.items() if not name.startswith("openood_tanl.openood")
                 for module, line in _imports(name, path) if module == "openood" or module.startswith("openood.")]
    assert not offenders, offenders


def test_the_core_imports_neither_openood_nor_open_clip_nor_the_adapters():
    offenders = [f"{path.name}:{line} imports {module}" for name, path in MODULES.items()
                 if name.startswith("openood_tanl.core")
                 for module, line in _imports(name, path)
                 if module.split(".")[0] in ("openood", "open_clip")
                 or (module.startswith("openood_tanl") and not module.startswith("openood_tanl.core"))]
    assert not offenders, offenders


def test_no_import_cycle():
    graph = defaultdict(set)
    for name, path in MODULES.items():
        for module, _ in _imports(name, path):
            if module in MODULES and module != name:
                graph[name].add(module)
    cycles, state = [], {}

    def visit(node, trail):
        state[node] = "open"
        for nxt in sorted(graph[node]):
            if state.get(nxt) == "open":
                cycles.append(trail[trail.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt, trail + [nxt])
        state[node] = "done"

    for name in sorted(MODULES):
        if name not in state:
            visit(name, [name])
    assert not cycles, [" -> ".join(cycle) for cycle in cycles]


def test_no_function_is_longer_than_80_lines():
    long = [f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.name} ({node.end_lineno - node.lineno + 1})"
            for path in MODULES.values() for node in ast.walk(ast.parse(path.read_text()))
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.end_lineno - node.lineno >= 80]
    assert not long, long


def test_setup_cfg_installs_every_package_and_the_configs():
    config = configparser.ConfigParser()
    config.read(PACKAGE.parent / "setup.cfg")
    listed = set(config["options"]["packages"].split())
    packages = {name for name, path in MODULES.items() if path.name == "__init__.py"}
    assert listed == packages | {"openood_tanl.configs"}
    assert "openood_tanl.configs = configs" in config["options"]["package_dir"]
    assert (PACKAGE.parent / "configs" / "postprocessors" / "tanl.yml").is_file()
    assert not (PACKAGE.parent / "configs").is_symlink()
