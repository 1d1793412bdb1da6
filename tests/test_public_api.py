"""otpy's public surface: what `otpy.__all__` promises is what the package exports."""

from __future__ import annotations

import types

import otpy


def test_all_matches_public_names() -> None:
    """Every name in __all__ exists, none is listed twice, and no public attribute is missing from it."""
    assert len(set(otpy.__all__)) == len(otpy.__all__)
    for name in otpy.__all__:
        assert hasattr(otpy, name), name
    public = {
        name
        for name, value in vars(otpy).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert public - set(otpy.__all__) == set()


def test_errors_subclass_the_matching_builtins() -> None:
    """Generic handlers still catch otpy errors: CallTimeout is a TimeoutError, InvalidChildSpec a ValueError."""
    assert issubclass(otpy.CallTimeout, TimeoutError)
    assert issubclass(otpy.InvalidChildSpec, ValueError)
    assert issubclass(otpy.NodeError, RuntimeError)
    assert issubclass(otpy.ActorExited, otpy.ActorStopped)
    for name in otpy._exceptions.__all__:
        assert issubclass(getattr(otpy, name), otpy.OtpyError)
