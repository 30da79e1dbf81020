"""The package's data flow, enforced: each module imports only from its own layer or the layers
below it (function-level and type-checking imports included), and no two modules import each
other. The layers, lowest first, are the ones ``docs/ARCHITECTURE.md`` draws."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import rlvision_widgets

ROOT = Path(rlvision_widgets.__file__).parent
PKG = "rlvision_widgets"

#: lowest first; a module may import from its own layer and any earlier one
LAYERS = [
    "base",
    "environment",
    "agents",
    "rollouts",
    "training",
    "analysis",
    "studies",
    "widgets",
    "cli",
]
#: top-level modules and sub-packages -> layer
PLACE = {
    "__init__": "base",
    "_compat": "base",
    "files": "base",
    "engines": "base",
    "environment": "environment",
    "agents": "agents",
    "rollouts": "rollouts",
    "training": "training",
    "analysis": "analysis",
    "studies": "studies",
    "widgets": "widgets",
    "cli": "cli",
    "launch": "cli",
    "__main__": "cli",
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__" and len(parts) > 1:
        parts = parts[:-1]
    return ".".join([PKG, *parts]) if parts != ["__init__"] else PKG


def _layer(module: str) -> str:
    parts = module.split(".")
    if len(parts) == 1:
        return "base"
    if parts[1] not in PLACE:
        raise AssertionError(f"{module}: not placed in a layer; add it to PLACE in {__file__}")
    return PLACE[parts[1]]


def _imports(source: str, module: str, is_package: bool) -> set[str]:
    """Every package module that ``source`` (the text of ``module``) imports, absolute."""
    package = module if is_package else module.rsplit(".", 1)[0]
    out: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            out.update(a.name for a in node.names if a.name.split(".")[0] == PKG)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.split(".")[0] != PKG:
                continue
            for a in node.names:  # "from . import x" imports the sub-module x if there is one
                sub = f"{target}.{a.name}"
                sub_path = ROOT.joinpath(*sub.split(".")[1:])
                out.add(
                    sub if sub_path.with_suffix(".py").exists() or sub_path.is_dir() else target
                )
    out.discard(module)
    return out


MODULES = {
    _module_name(p): p
    for p in sorted(ROOT.rglob("*.py"))
    if "static" not in p.parts and "reference" not in p.parts
}
GRAPH = {m: _imports(p.read_text(), m, p.name == "__init__.py") for m, p in MODULES.items()}


def test_every_module_has_a_layer():
    for m in MODULES:
        _layer(m)


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_only_from_lower_layers(module):
    here = LAYERS.index(_layer(module))
    upward = sorted(t for t in GRAPH[module] if LAYERS.index(_layer(t)) > here)
    assert not upward, f"{module} (layer {_layer(module)}) imports from higher layers: {upward}"


def test_no_two_modules_import_each_other():
    pairs = sorted(
        {
            tuple(sorted((a, b)))
            for a, targets in GRAPH.items()
            for b in targets
            if a in GRAPH.get(b, ()) and not _is_package_of(a, b)
        }
    )
    assert not pairs, f"modules that import each other: {pairs}"


def _is_package_of(a: str, b: str) -> bool:
    """A package's ``__init__`` re-exporting its own sub-module is not a cycle."""
    return b.startswith(a + ".") or a.startswith(b + ".")


def test_the_check_sees_function_level_and_relative_imports():
    source = (
        "from ..environment import EnvOptions\n"
        "def f():\n    from ..widgets.explorer import Explorer\n"
        "    import rlvision_widgets.studies\n"
    )
    found = _imports(source, f"{PKG}.rollouts.collect", is_package=False)
    assert found == {f"{PKG}.environment", f"{PKG}.widgets.explorer", f"{PKG}.studies"}
    assert LAYERS.index(_layer(f"{PKG}.widgets.explorer")) > LAYERS.index("rollouts")


def _cycles() -> list[list[str]]:
    """Import cycles between modules (any length; a package and its own sub-modules excepted),
    by Tarjan's strongly connected components."""
    graph = {
        a: {b for b in targets if b in GRAPH and not _is_package_of(a, b)}
        for a, targets in GRAPH.items()
    }
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_cycles():
    assert not _cycles(), f"modules importing each other through a cycle: {_cycles()}"
