"""The package layers import one way, and only named surfaces cross a package boundary.

The order, lowest first (docs/architecture.md draws it)::

    _exceptions <- _check <- _partition, _redact      leaf modules
    <- _core <- telemetry <- _supervision <- otpy      (the top-level facade)
    <- pressure <- deadletter <- gateway <- ingest
    <- console, testing <- cli <- __main__

Four rules, read from the source with :mod:`ast` (nothing is imported or run):

1. No import runs upward, at module level, inside a function or under TYPE_CHECKING.
2. Across packages a module imports the package itself (``from otpy._core import
   spawn_child``), never another package's private submodule (``otpy._core._node``). A
   leaf module is imported directly.
3. No underscored name crosses a package boundary: not in an import, and not as an
   attribute (``ref._mailbox``) when that attribute is defined in another package and
   not in the one reading it.
4. ``supervisors/`` uses public names only: the public packages, no underscored name.

Each rule has a twin below that builds a small tree breaking it and checks the rule
catches it, so a checker that silently sees nothing cannot pass.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import TYPE_CHECKING

import attrs
import pytest

if TYPE_CHECKING:
    from collections.abc import Iterator

ROOT = Path(__file__).resolve().parent.parent

# Lowest first. Units in one tuple sit on the same level and may not import each other.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("_exceptions",),
    ("_check",),
    ("_partition", "_redact"),
    ("_core",),
    ("_durable",),
    ("telemetry",),
    ("_supervision",),
    ("otpy",),
    ("pressure",),
    ("deadletter",),
    ("gateway",),
    ("ingest",),
    ("node",),
    ("console", "testing"),
    ("cli",),
    ("__main__",),
)
LEAF_MODULES = frozenset({"_exceptions", "_check", "_partition", "_redact"})
PUBLIC_PACKAGES = frozenset(
    {"otpy", "pressure", "deadletter", "telemetry", "testing", "gateway", "ingest", "node"}
)
LEVEL = {unit: level for level, units in enumerate(LAYERS) for unit in units}


@attrs.frozen
class Module:
    """One source file: its dotted name, the unit (package) it belongs to, its tree."""

    name: str
    unit: str
    path: Path
    tree: ast.Module
    is_package: bool


@attrs.frozen
class Import:
    """One imported name: the module it comes from, the name, where it is written."""

    module: str
    name: str | None
    line: int


def unit_of(dotted: str) -> str:
    """The layer unit of a module in ``otpy``: its subpackage or leaf module, or ``otpy``."""
    parts = dotted.split(".")
    if parts[0] != "otpy":
        return parts[0]
    return parts[1] if len(parts) > 1 else "otpy"


def modules(root: Path, package: str) -> Iterator[Module]:
    """Every ``.py`` file of *package* under *root*, parsed."""
    for path in sorted((root / package).rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts.pop()
        name = ".".join(parts)
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        yield Module(name=name, unit=unit_of(name), path=path, tree=tree, is_package=is_package)


def is_module(root: Path, dotted: str) -> bool:
    """Whether *dotted* names a module or package in the tree under *root*."""
    relative = Path(*dotted.split("."))
    return (root / relative).with_suffix(".py").is_file() or (
        root / relative / "__init__.py"
    ).is_file()


def imports(root: Path, module: Module) -> Iterator[Import]:
    """Every import of an ``otpy`` module in *module*, wherever it is written.

    ``from otpy import telemetry`` imports the subpackage ``otpy.telemetry``: such a name
    is reported as the module it is, with no name.
    """
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "otpy":
                    yield Import(module=alias.name, name=None, line=node.lineno)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.name.split(".")
                if not module.is_package:
                    base.pop()
                base = base[: len(base) - (node.level - 1)]
                source = ".".join([*base, *([node.module] if node.module else [])])
            else:
                source = node.module or ""
            if source.split(".")[0] != "otpy":
                continue
            for alias in node.names:
                submodule = f"{source}.{alias.name}"
                if is_module(root, submodule):
                    yield Import(module=submodule, name=None, line=node.lineno)
                else:
                    yield Import(module=source, name=alias.name, line=node.lineno)


def is_private(name: str) -> bool:
    """An underscored name that is not a dunder."""
    return name.startswith("_") and not (name.startswith("__") and name.endswith("__"))


def defined_attributes(module: Module) -> set[str]:
    """Underscored attributes *module* defines: on ``self``/``cls``, in a class body."""
    found: set[str] = set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            if isinstance(node.value, ast.Name) and node.value.id in {"self", "cls"}:
                found.add(node.attr)
        elif isinstance(node, ast.ClassDef):
            for statement in node.body:
                if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef):
                    found.add(statement.name)
                elif isinstance(statement, ast.AnnAssign) and isinstance(
                    statement.target, ast.Name
                ):
                    found.add(statement.target.id)
                elif isinstance(statement, ast.Assign):
                    found.update(t.id for t in statement.targets if isinstance(t, ast.Name))
                    if any(
                        isinstance(t, ast.Name) and t.id == "__slots__" for t in statement.targets
                    ):
                        found.update(
                            c.value
                            for c in ast.walk(statement.value)
                            if isinstance(c, ast.Constant) and isinstance(c.value, str)
                        )
    return {name for name in found if is_private(name)}


def violations(root: Path) -> list[str]:
    """Every breach of the four rules in the tree under *root*, one line each."""
    found: list[str] = []
    otpy_modules = list(modules(root, "otpy"))
    owners: dict[str, set[str]] = {}
    classes: dict[tuple[str, str], Klass] = {}
    for module in otpy_modules:
        classes.update(classes_of(module))
        for attribute in defined_attributes(module):
            owners.setdefault(attribute, set()).add(module.unit)

    def where(module: Module, line: int) -> str:
        return f"{module.path.relative_to(root)}:{line}"

    for module in otpy_modules:
        if module.unit not in LEVEL:
            found.append(f"{where(module, 1)}: {module.unit!r} has no place in LAYERS")
            continue
        for imported in imports(root, module):
            target = unit_of(imported.module)
            if target == module.unit:
                continue
            if target not in LEVEL:
                found.append(f"{where(module, imported.line)}: {target!r} has no place in LAYERS")
                continue
            if LEVEL[target] >= LEVEL[module.unit]:
                found.append(
                    f"{where(module, imported.line)}: {module.unit} imports {imported.module} "
                    f"({target}), which is not below it"
                )
            found.extend(_crossing(where(module, imported.line), imported))
        found.extend(
            f"{where(module, node.lineno)}: {module.unit} uses .{node.attr}, defined "
            f"only in {', '.join(sorted(owners[node.attr]))}"
            for node in ast.walk(module.tree)
            if isinstance(node, ast.Attribute)
            and is_private(node.attr)
            and module.unit not in owners.get(node.attr, {module.unit})
        )
        found.extend(_overrides(root, module, classes))

    for module in modules(root, "supervisors"):
        for imported in imports(root, module):
            unit = unit_of(imported.module)
            if imported.module not in {"otpy", *(f"otpy.{p}" for p in PUBLIC_PACKAGES)}:
                found.append(
                    f"{where(module, imported.line)}: supervisors import {imported.module}, "
                    "which is not a public package"
                )
            elif imported.name is not None and is_private(imported.name):
                found.append(
                    f"{where(module, imported.line)}: supervisors import the private name "
                    f"{imported.name} from {unit}"
                )
        found.extend(
            f"{where(module, node.lineno)}: supervisors use .{node.attr}"
            for node in ast.walk(module.tree)
            if isinstance(node, ast.Attribute) and is_private(node.attr) and node.attr in owners
        )
    return found


def _only(module: Module, node: ast.stmt) -> Module:
    """*module* reduced to the one statement *node*, to read it with the same helpers."""
    return attrs.evolve(module, tree=ast.Module(body=[node], type_ignores=[]))


def _overrides(root: Path, module: Module, classes: dict[tuple[str, str], Klass]) -> Iterator[str]:
    """Rule 3 for subclasses: a class body setting a private name of a base from elsewhere.

    ``class Sup(Actor): _otpy_shutdown = None`` in supervision changes what the core
    reads through ``Actor``'s private attribute; the core must offer a named way.
    """
    homes: dict[str, str] = {}
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            for imported in imports(root, _only(module, node)):
                if imported.name is not None:
                    homes[imported.name] = unit_of(imported.module)
    for node in ast.walk(module.tree):
        if not isinstance(node, ast.ClassDef):
            continue
        mine = defined_attributes(_only(module, node))
        for base in node.bases:
            if not isinstance(base, ast.Name) or homes.get(base.id, module.unit) == module.unit:
                continue
            home = homes[base.id]
            for name in sorted(mine & _privates(classes, home, base.id)):
                yield (
                    f"{module.path.relative_to(root)}:{node.lineno}: {node.name} overrides "
                    f"{base.id}.{name}, private to {home}"
                )


@attrs.frozen
class Klass:
    """A class as the override rule sees it: its private names and its bases' names."""

    privates: frozenset[str]
    bases: tuple[str, ...]


def classes_of(module: Module) -> dict[tuple[str, str], Klass]:
    """Every class *module* defines, by (unit, name)."""
    return {
        (module.unit, node.name): Klass(
            privates=frozenset(defined_attributes(_only(module, node))),
            bases=tuple(b.id for b in node.bases if isinstance(b, ast.Name)),
        )
        for node in ast.walk(module.tree)
        if isinstance(node, ast.ClassDef)
    }


def _privates(classes: dict[tuple[str, str], Klass], unit: str, name: str) -> set[str]:
    """The private names of class *name* of *unit*, its bases in that unit included."""
    found: set[str] = set()
    pending, seen = [name], set()
    while pending:
        current = pending.pop()
        klass = classes.get((unit, current))
        if klass is None or current in seen:
            continue
        seen.add(current)
        found |= klass.privates
        pending.extend(klass.bases)
    return found


def _crossing(place: str, imported: Import) -> list[str]:
    """Rules 2 and 3 for an import from another unit."""
    problems: list[str] = []
    target = unit_of(imported.module)
    home = "otpy" if target == "otpy" else f"otpy.{target}"
    if target not in LEAF_MODULES and imported.module != home:
        problems.append(
            f"{place}: imports {imported.module}, a private module of {home}; import from {home}"
        )
    if imported.name is not None and is_private(imported.name):
        problems.append(f"{place}: imports the underscored name {imported.name} from {home}")
    return problems


def test_the_packages_follow_the_layers() -> None:
    """The real tree: no upward import, no private module or name across packages."""
    assert violations(ROOT) == []


def test_every_package_has_a_layer() -> None:
    """A new package or leaf module must be placed in LAYERS before it can be imported."""
    units = {unit_of(m.name) for m in modules(ROOT, "otpy")}
    assert units <= set(LEVEL)


# The twins: each builds a tree that breaks one rule and checks it is caught.


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    """Write *files* (path -> source) under *tmp_path*; every package gets an __init__."""
    for relative, source in files.items():
        path = tmp_path / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source)
        for parent in path.relative_to(tmp_path).parents:
            if parent != Path():
                (tmp_path / parent / "__init__.py").touch()
    return tmp_path


def test_an_upward_import_is_caught(tmp_path: Path) -> None:
    """The core importing from pressure, even inside a function, is a violation."""
    root = _tree(
        tmp_path,
        {
            "otpy/_core/_node.py": "def f():\n    from otpy.pressure import BoundedQueue\n",
            "otpy/pressure/__init__.py": "BoundedQueue = 1\n",
        },
    )
    assert violations(root) == [
        "otpy/_core/_node.py:2: _core imports otpy.pressure (pressure), which is not below it"
    ]


def test_a_relative_upward_import_is_caught(tmp_path: Path) -> None:
    """``from .. import deadletter`` in pressure is an upward import too."""
    root = _tree(
        tmp_path,
        {
            "otpy/pressure/_queue.py": "from .. import deadletter\n",
            "otpy/deadletter/__init__.py": "",
        },
    )
    assert violations(root) == [
        "otpy/pressure/_queue.py:1: pressure imports otpy.deadletter (deadletter), "
        "which is not below it"
    ]


def test_a_private_submodule_across_packages_is_caught(tmp_path: Path) -> None:
    """Pressure importing ``otpy._core._node`` instead of ``otpy._core`` is a violation."""
    root = _tree(
        tmp_path,
        {
            "otpy/_core/_node.py": "Node = 1\n",
            "otpy/pressure/_queue.py": "from otpy._core._node import Node\n",
        },
    )
    assert violations(root) == [
        "otpy/pressure/_queue.py:1: imports otpy._core._node, a private module of "
        "otpy._core; import from otpy._core"
    ]


def test_an_underscored_name_across_packages_is_caught(tmp_path: Path) -> None:
    """Importing ``_SYS_STOP`` from the core's surface is a violation."""
    root = _tree(
        tmp_path,
        {
            "otpy/_core/__init__.py": "_SYS_STOP = 1\n",
            "otpy/_supervision/_sup.py": "from otpy._core import _SYS_STOP\n",
        },
    )
    assert violations(root) == [
        "otpy/_supervision/_sup.py:1: imports the underscored name _SYS_STOP from otpy._core"
    ]


def test_a_private_attribute_of_another_package_is_caught(tmp_path: Path) -> None:
    """``ref._mailbox`` read in deadletter, defined only in the core, is a violation."""
    root = _tree(
        tmp_path,
        {
            "otpy/_core/_ref.py": (
                "class ActorRef:\n    def __init__(self):\n        self._mailbox = []\n"
            ),
            "otpy/deadletter/_writer.py": "def room(ref):\n    return len(ref._mailbox)\n",
        },
    )
    assert violations(root) == [
        "otpy/deadletter/_writer.py:2: deadletter uses ._mailbox, defined only in _core"
    ]


def test_a_private_attribute_of_its_own_package_is_allowed(tmp_path: Path) -> None:
    """Modules of one package share their underscored attributes; that is the point of one."""
    root = _tree(
        tmp_path,
        {
            "otpy/pressure/_queue.py": "class Q:\n    _closed: bool = False\n",
            "otpy/pressure/_partitioned.py": "def f(q):\n    return q._closed\n",
        },
    )
    assert violations(root) == []


def test_supervisors_importing_a_private_package_is_caught(tmp_path: Path) -> None:
    """The node's trees use public names only, so ``otpy._supervision`` is refused."""
    root = _tree(
        tmp_path,
        {
            "otpy/_supervision/__init__.py": "ChildSpec = 1\n",
            "supervisors/node.py": "from otpy._supervision import ChildSpec\n",
        },
    )
    assert violations(root) == [
        "supervisors/node.py:1: supervisors import otpy._supervision, which is not a public package"
    ]


@pytest.mark.parametrize(
    "source",
    ["from otpy.deadletter import Store\n", "import otpy.pressure\n", "from otpy import spawn\n"],
)
def test_supervisors_importing_public_names_is_allowed(tmp_path: Path, source: str) -> None:
    """Public packages and their public names are what the trees are written against."""
    root = _tree(
        tmp_path,
        {
            "otpy/deadletter/__init__.py": "Store = 1\n",
            "otpy/pressure/__init__.py": "",
            "otpy/__init__.py": "spawn = 1\n",
            "supervisors/node.py": source,
        },
    )
    assert violations(root) == []


def test_overriding_a_private_attribute_of_the_base_package_is_caught(tmp_path: Path) -> None:
    """A supervision subclass setting the core's ``_otpy_shutdown`` is a violation."""
    root = _tree(
        tmp_path,
        {
            "otpy/_core/__init__.py": "from ._actor import Actor\n",
            "otpy/_core/_actor.py": "class Actor:\n    _otpy_shutdown = 5.0\n",
            "otpy/_supervision/_base.py": (
                "from otpy._core import Actor\n\nclass Sup(Actor):\n    _otpy_shutdown = None\n"
            ),
        },
    )
    assert violations(root) == [
        "otpy/_supervision/_base.py:3: Sup overrides Actor._otpy_shutdown, private to _core"
    ]


def test_a_private_attribute_of_a_base_in_the_same_package_may_be_overridden(
    tmp_path: Path,
) -> None:
    """Within one package a subclass may set its base's private attributes."""
    root = _tree(
        tmp_path,
        {
            "otpy/_supervision/_base.py": "class Base:\n    _ids = True\n",
            "otpy/_supervision/_dynamic.py": (
                "from ._base import Base\n\nclass Dynamic(Base):\n    _ids = False\n"
            ),
        },
    )
    assert violations(root) == []
