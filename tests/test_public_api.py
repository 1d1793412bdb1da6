"""otpy's public surface: what `otpy.__all__` promises is what the package exports."""

from __future__ import annotations

import importlib
import types

import pytest

import otpy

#: The public packages, one per concept; each has its own ``__all__`` and docs page.
PACKAGES = (
    "otpy",
    "otpy.pressure",
    "otpy.deadletter",
    "otpy.telemetry",
    "otpy.testing",
    "otpy.gateway",
    "otpy.ingest",
    "otpy.node",
)


@pytest.mark.parametrize("package", PACKAGES)
def test_all_matches_public_names(package: str) -> None:
    """Every name in __all__ exists, none is listed twice, and no public attribute is missing from it."""
    module = importlib.import_module(package)
    assert len(set(module.__all__)) == len(module.__all__)
    for name in module.__all__:
        assert hasattr(module, name), name
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public - set(module.__all__) == set()


def test_no_name_is_exported_by_two_packages() -> None:
    """One concept, one home: no public name is listed in two packages' __all__."""
    seen: dict[str, str] = {}
    for package in PACKAGES:
        for name in importlib.import_module(package).__all__:
            assert name not in seen, f"{name} is exported by {seen[name]} and {package}"
            seen[name] = package


@pytest.mark.parametrize(
    ("old", "new"), [("BoundedQueue", "otpy.pressure"), ("Priority", "otpy.pressure")]
)
def test_moved_names_still_resolve_with_a_deprecation_warning(old: str, new: str) -> None:
    """A top-level name the docs used before 0.2 still works for one release, and says where it went."""
    with pytest.warns(DeprecationWarning, match=rf"^otpy\.{old} is deprecated: use {new}\.{old}$"):
        value = getattr(otpy, old)
    assert value is getattr(importlib.import_module(new), old)


def test_an_unknown_top_level_name_is_an_attribute_error() -> None:
    """The deprecation hook does not swallow typos: an unknown name is still an AttributeError."""
    with pytest.raises(AttributeError, match="no attribute 'BoundedQeue'"):
        otpy.BoundedQeue  # noqa: B018


def test_errors_subclass_the_matching_builtins() -> None:
    """Generic handlers still catch otpy errors: CallTimeout is a TimeoutError, InvalidChildSpec a ValueError."""
    assert issubclass(otpy.CallTimeout, TimeoutError)
    assert issubclass(otpy.InvalidChildSpec, ValueError)
    assert issubclass(otpy.NodeError, RuntimeError)
    assert issubclass(otpy.ActorExited, otpy.ActorStopped)
    for name in otpy._exceptions.__all__:
        assert issubclass(getattr(otpy, name), otpy.OtpyError)
