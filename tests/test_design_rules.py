"""docs/design.md's module rules, checked on the source tree.

- no import cycles between katcpx modules (module-level imports; ``TYPE_CHECKING`` ones do
  not count);
- no module imports another module's private (``_name``) names;
- no module reads or writes another object's underscore members (``self``/``cls`` only);
- no module is much over 600 lines.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1] / "katcpx"
MAX_LINES = 650


def _modules() -> dict[str, Path]:
    mods = {}
    for path in ROOT.rglob("*.py"):
        parts = path.with_suffix("").relative_to(ROOT.parent).parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        mods[name] = path
    return mods


MODULES = _modules()


def _target(module: str, node: ast.ImportFrom) -> str:
    if not node.level:
        return node.module or ""
    base = module.split(".")
    if MODULES[module].name != "__init__.py":
        base = base[:-1]
    base = base[: len(base) - node.level + 1]
    return ".".join(base + ([node.module] if node.module else []))


def _module_level_imports(tree: ast.Module):
    """ImportFrom nodes run at import time (not under TYPE_CHECKING, not in functions)."""
    todo: list[ast.stmt] = list(tree.body)
    while todo:
        node = todo.pop()
        if isinstance(node, ast.ImportFrom):
            yield node
        elif isinstance(node, ast.If):
            if "TYPE_CHECKING" not in ast.unparse(node.test):
                todo.extend(node.body + node.orelse)
        elif isinstance(node, ast.Try):
            todo.extend(node.body + node.orelse + node.finalbody)
            for handler in node.handlers:
                todo.extend(handler.body)


def _graph() -> dict[str, set[str]]:
    edges: dict[str, set[str]] = {}
    for name, path in MODULES.items():
        out = edges.setdefault(name, set())
        for node in _module_level_imports(ast.parse(path.read_text())):
            target = _target(name, node)
            for alias in node.names:
                full = f"{target}.{alias.name}"
                if full in MODULES:
                    out.add(full)
                elif target in MODULES:
                    out.add(target)
    return edges


def test_no_import_cycles():
    edges = _graph()
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(edges.get(node, ())):
            if nxt == node:
                continue
            if state.get(nxt) == 1:
                cycles.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for module in sorted(edges):
        if module not in state:
            visit(module)
    assert cycles == []


def _is_private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_private_names_imported_from_other_modules():
    found = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (
                node.level or (node.module or "").startswith("katcpx")
            ):
                found += [
                    f"{path.relative_to(ROOT.parent)}:{node.lineno} {alias.name}"
                    for alias in node.names
                    if _is_private(alias.name)
                ]
    assert found == []


OWN = {"self", "cls", "mcs"}


def test_no_foreign_underscore_members():
    found = []
    for path in MODULES.values():
        for node in ast.walk(ast.parse(path.read_text())):
            if not (isinstance(node, ast.Attribute) and _is_private(node.attr)):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id in OWN:
                continue
            if isinstance(value, ast.Call) and getattr(value.func, "id", None) == "super":
                continue
            found.append(f"{path.relative_to(ROOT.parent)}:{node.lineno} {ast.unparse(node)}")
    assert found == []


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_size(name):
    lines = MODULES[name].read_text().count("\n")
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


@pytest.mark.parametrize(
    "name",
    sorted(
        n
        for n, p in MODULES.items()
        if p.name == "__init__.py" or not any(part.startswith("_") for part in n.split("."))
    ),
)
def test_every_package_and_public_module_declares_its_api(name):
    """A package's API is its ``__all__`` (and so is a public module's)."""
    tree = ast.parse(MODULES[name].read_text())
    assigned = {
        target.id
        for node in tree.body
        if isinstance(node, (ast.Assign, ast.AnnAssign))
        for target in (node.targets if isinstance(node, ast.Assign) else [node.target])
        if isinstance(target, ast.Name)
    }
    assert "__all__" in assigned, f"{name} has no __all__"
