"""Every module otpy imports at run time comes from a dependency it declares.

The dev extra brings packages (trio, and trio's sniffio) that a plain ``pip install otpy``
does not, so a missing declaration passes every other test and fails on a user's first
command. This reads the imports of ``otpy/`` and ``supervisors/`` and finds the
distribution each imported module is installed from.
"""

from __future__ import annotations

import ast
import functools
import importlib.metadata
import importlib.util
import re
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from collections.abc import Mapping

ROOT = Path(__file__).resolve().parent.parent
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
OPTIONAL_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError"}


def _name(requirement: str) -> str:
    return re.split(r"[<>=!~;\[ ]", requirement, maxsplit=1)[0].strip().lower().replace("_", "-")


def _imports(tree: ast.AST) -> list[tuple[str, bool]]:
    """``(module, optional)`` for each absolute import; optional when a try catches ImportError."""
    found: list[tuple[str, bool]] = []

    def visit(node: ast.AST, optional: bool) -> None:
        if isinstance(node, ast.Try):
            caught: set[str] = set()
            for handler in node.handlers:
                if handler.type is not None:
                    caught |= {n.id for n in ast.walk(handler.type) if isinstance(n, ast.Name)}
            inner = optional or bool(caught & OPTIONAL_IMPORT_ERRORS)
            for statement in node.body:
                visit(statement, inner)
            rest: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
            for other in rest:
                visit(other, optional)
            return
        if isinstance(node, ast.Import):
            found.extend((alias.name, optional) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            # ``from opentelemetry import trace`` imports a module from a namespace package.
            found.extend((f"{node.module}.{alias.name}", optional) for alias in node.names)
        for inside in ast.iter_child_nodes(node):
            visit(inside, optional)

    visit(tree, False)
    return found


def _third_party_imports() -> dict[str, tuple[bool, str]]:
    """Each third-party module imported, whether every import of it is optional, and where."""
    modules: dict[str, tuple[bool, str]] = {}
    for package in ("otpy", "supervisors"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for module, optional in _imports(ast.parse(path.read_text(), str(path))):
                top = module.split(".")[0]
                if top in sys.stdlib_module_names or top in {"otpy", "supervisors"}:
                    continue
                where = str(path.relative_to(ROOT))
                previous = modules.get(module)
                modules[module] = (optional and (previous is None or previous[0]), where)
    return modules


@functools.cache
def _distributions() -> Mapping[str, list[str]]:
    return importlib.metadata.packages_distributions()


@functools.cache
def _owner(module: str) -> str:
    """The distribution whose files hold *module* (or, if it names no module, its parent)."""
    try:
        spec = importlib.util.find_spec(module)
    except ModuleNotFoundError:
        spec = None
    if spec is None or spec.origin is None:
        parent = module.rpartition(".")[0]
        assert parent, f"{module} is not installed"
        return _owner(parent)
    origin = Path(spec.origin).resolve()
    top = module.split(".")[0]
    for dist_name in _distributions().get(top, []):
        dist = importlib.metadata.distribution(dist_name)
        for file in dist.files or ():
            if Path(str(dist.locate_file(file))).resolve() == origin:
                return _name(dist.metadata["Name"])
    raise AssertionError(f"no installed distribution holds {module} ({origin})")


def test_every_runtime_import_is_a_declared_dependency() -> None:
    """A module imported unconditionally is installed by ``pip install otpy``, without extras."""
    declared = {_name(r) for r in PROJECT["dependencies"]}
    missing = {
        module: (owner, where)
        for module, (optional, where) in _third_party_imports().items()
        if not optional and (owner := _owner(module)) not in declared
    }
    assert missing == {}, "declare these in [project] dependencies, or guard them"


def test_every_optional_import_is_in_an_extra() -> None:
    """A guarded import (uvloop, trio, the gRPC exporter) names a user's extra that installs it."""
    declared = {_name(r) for r in PROJECT["dependencies"]}
    extras = {
        _name(r)
        for extra, group in PROJECT["optional-dependencies"].items()
        if extra != "dev"  # the project's own tools: an error message never tells a user to use it
        for r in group
    }
    allowed = extras | declared
    unknown = {
        module: where
        for module, (optional, where) in _third_party_imports().items()
        if optional and _owner(module) not in allowed
    }
    assert unknown == {}


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("import sniffio", [("sniffio", False)]),
        ("try:\n    import uvloop\nexcept ImportError:\n    pass", [("uvloop", True)]),
        ("try:\n    import x\nexcept (KeyError, ModuleNotFoundError):\n    pass", [("x", True)]),
        (
            "from opentelemetry import trace, metrics",
            [("opentelemetry.trace", False), ("opentelemetry.metrics", False)],
        ),
        ("try:\n    import x\nexcept KeyError:\n    import y", [("x", False), ("y", False)]),
        ("def f():\n    from a.b import c", [("a.b.c", False)]),
        ("from . import sibling", []),
    ],
)
def test_imports_are_classified_as_required_or_optional(
    source: str, expected: list[tuple[str, bool]]
) -> None:
    """The scan sees imports in functions too, and only an ImportError guard makes one optional."""
    assert _imports(ast.parse(source)) == expected
