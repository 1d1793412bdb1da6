"""What an install ships: otpy's packages, and the node's trees as ``otpy.supervisors``."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _setuptools() -> dict[str, object]:
    with (ROOT / "pyproject.toml").open("rb") as file:
        tool = tomllib.load(file)["tool"]["setuptools"]
    assert isinstance(tool, dict)
    return tool


def test_every_package_of_otpy_is_shipped() -> None:
    """The explicit package list names each package under otpy/, and the trees, nothing else."""
    found = {
        ".".join(init.parent.relative_to(ROOT).parts)
        for init in (ROOT / "otpy").rglob("__init__.py")
        if "__pycache__" not in init.parts
    }
    packages = _setuptools()["packages"]
    assert isinstance(packages, list)
    assert set(packages) == found | {"otpy.supervisors"}


def test_the_trees_ship_inside_otpy_not_as_a_top_level_package() -> None:
    """supervisors/ is installed as otpy.supervisors: no generic top-level name in site-packages."""
    assert _setuptools()["package-dir"] == {"otpy.supervisors": "supervisors"}
    assert (ROOT / "supervisors" / "node.py").is_file()
