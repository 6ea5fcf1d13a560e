"""The house plan, checked: the layers' import rules, no import cycle, short functions, every package installed."""
import ast
import configparser
import re
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


#: docs/DESIGN.md's "Layers" diagram: each module or subpackage -> its layer. A module belongs to its longest listed
#: prefix (``openood_tanl.cli`` and ``openood_tanl.cli.*`` are one layer); the package itself matches only itself.
LAYERS = {
    "openood_tanl._lazy": "shared", "openood_tanl.version": "shared", "openood_tanl.log": "shared",
    "openood_tanl.yaml_files": "shared", "openood_tanl.metrics": "shared", "openood_tanl.embedding_cache": "shared",
    "openood_tanl.core": "engines",
    "openood_tanl.bank": "text bank",
    "openood_tanl.methods": "registry",
    "openood_tanl.corpus": "words", "openood_tanl.classnames": "words",
    "openood_tanl.csp": "prompts",
    "openood_tanl.networks": "network",
    "openood_tanl.openood.datasets": "openood data",
    "openood_tanl.evaluation": "evaluation", "openood_tanl.provenance": "evaluation",
    "openood_tanl.synthetic": "evaluation",
    "openood_tanl": "entry points", "openood_tanl.__main__": "entry points", "openood_tanl.main": "entry points",
    "openood_tanl.cli": "entry points", "openood_tanl.openood": "entry points",
}
#: layer -> the layers drawn directly above it (it may import those, the layers above them, and its own).
ABOVE = {
    "engines": set(), "shared": {"engines"}, "text bank": {"shared"}, "registry": {"text bank"},
    "words": {"shared"}, "prompts": {"words", "text bank"}, "network": {"prompts"}, "openood data": {"shared"},
    "evaluation": {"registry", "network", "openood data"}, "entry points": {"evaluation"},
}


def layer_of(module: str) -> str:
    """The layer of ``module`` (an ``openood_tanl`` module name): that of its longest prefix in ``LAYERS``."""
    parts = module.split(".")
    for end in range(len(parts), 1 if len(parts) > 1 else 0, -1):
        if ".".join(parts[:end]) in LAYERS:
            return LAYERS[".".join(parts[:end])]
    raise KeyError(f"{module} is in no layer of LAYERS (place it in docs/DESIGN.md's diagram and the table)")


def _reachable(layer: str) -> set[str]:
    found, todo = {layer}, [layer]
    while todo:
        for above in ABOVE[todo.pop()]:
            if above not in found:
                found.add(above)
                todo.append(above)
    return found


def test_every_import_follows_the_layers():
    offenders = sorted({f"{path.relative_to(PACKAGE.parent)}:{line} ({layer_of(name)}) imports {module} "
                        f"({layer_of(module)})"
                        for name, path in MODULES.items() for module, line in _imports(name, path)
                        if module.split(".")[0] == "openood_tanl"
                        and layer_of(module) not in _reachable(layer_of(name))})
    assert not offenders, offenders


def test_every_module_is_in_a_layer_and_the_layers_have_no_cycle():
    assert set(LAYERS.values()) == set(ABOVE) and set().union(*ABOVE.values()) <= set(ABOVE)
    assert all(layer not in _reachable(above) for layer in ABOVE for above in ABOVE[layer])  # no layer cycle
    for name in MODULES:
        layer_of(name)  # every module is placed
    assert sorted(set(LAYERS) - set(MODULES)) == []  # and every entry of the table is a module


def _diagram_names() -> set[str]:
    """Modules and subpackages the diagram under docs/DESIGN.md's "## Layers" names (``core/``, ``bank.py``)."""
    text = (PACKAGE.parent / "docs" / "DESIGN.md").read_text()
    section = text.split("## Layers", 1)[1].split("\n## ", 1)[0]
    block = section.split("```", 2)[1]
    return set(re.findall(r"(?<![\w./])((?:[a-z_]+/)*(?:[a-z_]+\.py|[a-z_]+/))(?![\w/])", block))


def test_the_design_diagram_names_the_modules_of_the_table():
    table = {module.removeprefix("openood_tanl.").replace(".", "/") + ("/" if _is_package(module) else ".py")
             for module in LAYERS if module != "openood_tanl"}
    assert _diagram_names() == table


def _is_package(module: str) -> bool:
    return (PACKAGE.parent / module.replace(".", "/")).is_dir() or module == "openood_tanl.cli"


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
    assert config["tool:pytest"]["markers"].strip().startswith("slow:")  # the marker the long tests carry
