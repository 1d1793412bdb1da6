"""Resolving ``MODULE:ATTR`` on the command line, the way hypercorn loads ``module:app``."""

from __future__ import annotations

import importlib
import os
import sys
from typing import TYPE_CHECKING, Any

import otpy

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import ModuleType

__all__ = ["TargetError", "describe", "resolve_target"]


class TargetError(otpy.OtpyError, ValueError):
    """A ``MODULE:ATTR`` target could not be turned into what the command needs.

    Attributes:
        target: the target as given.
    """

    def __init__(self, target: str, problem: str) -> None:
        super().__init__(problem)
        self.target = target


def resolve_target(
    target: str,
    *,
    error: type[TargetError],
    wanted: str,
    example: str,
    attribute_hint: Callable[[ModuleType], str] | None = None,
) -> Any:
    """Import ``MODULE:ATTR`` and return the attribute; raise *error* saying what is wrong.

    The current directory goes on ``sys.path`` first, so a command finds the
    project's own modules; *ATTR* may be dotted (``module:trees.root``).

    Args:
        target: ``"package.module:attribute"``.
        error: the :class:`TargetError` subclass to raise.
        wanted: what the attribute should be, for messages ("a supervisor spec").
        example: a target to show, like ``"supervisors.demo:root"``.
        attribute_hint: given the module, text to add when the attribute is missing.
    """
    module_name, colon, attr = target.partition(":")
    if not colon or not module_name.strip() or not attr.strip() or ":" in attr:
        raise error(
            target,
            f"{target!r} is not MODULE:ATTR; name a module and {wanted} in it, like {example!r}",
        )
    cwd = os.getcwd()
    if cwd not in sys.path:
        sys.path.insert(0, cwd)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        if exc.name is not None and (
            module_name == exc.name or module_name.startswith(exc.name + ".")
        ):
            raise error(
                target,
                f"cannot import module {module_name!r}: there is no module named {exc.name!r}; "
                f"check the spelling, and run from the directory that contains it ({cwd})",
            ) from exc
        raise error(target, _import_failed(module_name, exc)) from exc
    except Exception as exc:
        raise error(target, _import_failed(module_name, exc)) from exc
    value: Any = module
    for part in attr.split("."):
        try:
            value = getattr(value, part)
        except AttributeError:
            hint = attribute_hint(module) if attribute_hint is not None else ""
            raise error(target, f"module {module_name!r} has no attribute {attr!r}{hint}") from None
    return value


def _import_failed(module_name: str, exc: BaseException) -> str:
    return f"importing module {module_name!r} failed: {describe(exc)}; fix the error in it"


def describe(exc: BaseException) -> str:
    """``"Class: message"``, or the class alone for an empty message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
