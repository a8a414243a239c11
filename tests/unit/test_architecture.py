"""Rules of the code's shape that import-linter cannot state (its contracts in
pyproject.toml cover which package may import which, and that only adapters touch the
system). These read the source with `ast`:

- an object's state is its own: no code sets an attribute of an object it holds
  (`self.peer.x = ...`); it asks the object through a method, or passes values in when it
  builds it. A record of counters an object owns (`self.counters.sent += 1`) is its state;
- a private name (`_x`) is private to its module: no module imports another's private
  names or reads them off an object (`driver._timer`), so that every collaboration goes
  through public types and methods and a module can be changed behind them;
- the size budget: no class over ~300 lines, no module over ~500 lines unless its docstring
  says why it is one piece ("One piece on purpose: ...").
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "reconciler"
MODULES = sorted(p for p in PACKAGE.rglob("*.py"))

# Mutable records an object owns outright (built by it, never handed to another object
# that writes them): the counters of a state machine or a loop.
OWN_RECORDS = frozenset({"counters"})

# Libraries whose private names we name on purpose (a C accelerator, a typeshed-only
# generic); the rule is about our own modules.
LIBRARIES = frozenset({"yaml", "os", "argparse"})

MAX_CLASS_LINES = 300
MAX_MODULE_LINES = 500
# The phrase a module or class over the budget carries in its docstring, then the reason.
ONE_PIECE = "One piece on purpose:"


def _tree(path: Path) -> ast.Module:
    return ast.parse(path.read_text(), filename=str(path))


def _rel(path: Path) -> str:
    return str(path.relative_to(PACKAGE.parent))


def _stores(tree: ast.AST) -> Iterator[ast.Attribute]:
    for node in ast.walk(tree):
        targets: list[ast.expr] = []
        if isinstance(node, ast.Assign):
            targets = list(node.targets)
        elif isinstance(node, ast.AugAssign | ast.AnnAssign):
            targets = [node.target]
        for target in targets:
            for sub in ast.walk(target):
                if isinstance(sub, ast.Attribute) and isinstance(sub.ctx, ast.Store):
                    yield sub


def _is_self(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id in ("self", "cls")


def test_no_object_sets_the_attributes_of_an_object_it_holds() -> None:
    offences = []
    for path in MODULES:
        for attr in _stores(_tree(path)):
            held = attr.value
            if (
                isinstance(held, ast.Attribute)
                and _is_self(held.value)
                and held.attr not in OWN_RECORDS
            ):
                offences.append(f"{_rel(path)}:{attr.lineno}: {ast.unparse(attr)}")
    assert not offences, "set through the object's own methods instead:\n" + "\n".join(offences)


def _own_private_names(tree: ast.Module) -> set[str]:
    """Private names a module defines: functions, classes, attributes it assigns."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.add(node.name)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
    return {n for n in names if n.startswith("_")}


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def test_no_module_reaches_into_another_modules_private_names() -> None:
    offences = []
    for path in MODULES:
        tree = _tree(path)
        own = _own_private_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("reconciler"):
                offences += [
                    f"{_rel(path)}:{node.lineno}: imports {node.module}.{a.name}"
                    for a in node.names
                    if _private(a.name)
                ]
            elif (
                isinstance(node, ast.Attribute)
                and _private(node.attr)
                and not _is_self(node.value)
                and node.attr not in own
                and not (
                    isinstance(node.value, ast.Name) and node.value.id in ("yaml", "os", "argparse")
                )
            ):
                offences.append(f"{_rel(path)}:{node.lineno}: reads {ast.unparse(node)}")
    assert not offences, "use the other module's public types:\n" + "\n".join(offences)


def _classes(tree: ast.Module) -> Iterator[ast.ClassDef]:
    for node in ast.walk(tree):
        if isinstance(node, ast.ClassDef):
            yield node


@pytest.mark.parametrize("path", MODULES, ids=_rel)
def test_size_budget(path: Path) -> None:
    tree = _tree(path)
    lines = len(path.read_text().splitlines())
    docstring = ast.get_docstring(tree) or ""
    if lines > MAX_MODULE_LINES:
        assert ONE_PIECE in docstring, (
            f"{_rel(path)} has {lines} lines (budget {MAX_MODULE_LINES}): split it by "
            f"concern, or say at its top why it is one piece ({ONE_PIECE!r} ...)"
        )
    for cls in _classes(tree):
        size = (cls.end_lineno or cls.lineno) - cls.lineno + 1
        assert size <= MAX_CLASS_LINES or ONE_PIECE in (ast.get_docstring(cls) or ""), (
            f"{_rel(path)}:{cls.lineno}: class {cls.name} has {size} lines "
            f"(budget {MAX_CLASS_LINES})"
        )
