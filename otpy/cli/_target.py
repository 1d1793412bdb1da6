"""Resolving ``MODULE:ATTR`` on the command line, the way hypercorn loads ``module:app``."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sys
import types
import typing
from typing import TYPE_CHECKING, Any

import otpy

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator
    from types import ModuleType

__all__ = ["TargetError", "check_factory", "describe", "raised_at", "resolve_target"]


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
    return (
        f"importing module {module_name!r} failed: {describe(exc)}{raised_at(exc)}; "
        "fix the error in it"
    )


def raised_at(exc: BaseException) -> str:
    """``" (at path/to/file.py, line 12)"``: where *exc* was raised, or ``""`` if unknown.

    The innermost frame of the project's code: not the standard library's (a
    ``KeyError`` from ``os.environ[...]`` names the line that read it), nor otpy's,
    nor importlib's frozen ones; failing that, the innermost real file. For a
    :exc:`SyntaxError`, the line it points at. Paths under the working directory are
    shown relative to it.
    """
    filename: str | None = None
    line: int | None = None
    if isinstance(exc, SyntaxError) and exc.filename:
        filename, line = exc.filename, exc.lineno
    else:
        frames = [
            (tb.tb_frame.f_code.co_filename, tb.tb_lineno)
            for tb in _walk(exc.__traceback__)
            if not tb.tb_frame.f_code.co_filename.startswith("<")
        ]
        ours = [frame for frame in frames if not _library(frame[0])]
        if ours or frames:
            filename, line = (ours or frames)[-1]
    if filename is None:
        return ""
    shown = os.path.relpath(filename) if filename.startswith(os.getcwd() + os.sep) else filename
    return f" (at {shown}, line {line})" if line else f" (in {shown})"


def _walk(tb: types.TracebackType | None) -> Iterator[types.TracebackType]:
    while tb is not None:
        yield tb
        tb = tb.tb_next


@functools.cache
def _library_paths() -> tuple[tuple[str, ...], tuple[str, ...], str]:
    """The standard library's directories, site-packages' and otpy's, each ending in a separator.

    Computed on first use, not on import: ``otpy --help`` need not load sysconfig.
    """
    import sysconfig

    paths = sysconfig.get_paths()
    stdlib = tuple(
        os.path.join(os.path.realpath(paths[name]), "") for name in ("stdlib", "platstdlib")
    )
    site = tuple(os.path.join(os.path.realpath(paths[name]), "") for name in ("purelib", "platlib"))
    ours = os.path.join(os.path.dirname(os.path.realpath(otpy.__file__)), "")
    return stdlib, site, ours


def _library(filename: str) -> bool:
    """Whether *filename* is the standard library's or otpy's own (not the project's)."""
    stdlib, site, ours = _library_paths()
    path = os.path.realpath(filename)
    if path.startswith(ours):
        return True
    return path.startswith(stdlib) and not path.startswith(site)


_UNKNOWN = object()


def check_factory(
    target: str, value: Any, *, error: type[TargetError], wanted: str, returns: tuple[type, ...]
) -> None:
    """Refuse, without calling it, a callable that cannot be a factory of *wanted*.

    Nothing the target names is ever called to find out what it is: a class (an
    actor, say) is refused rather than instantiated, and so is an async or
    generator function, a function that needs arguments, and one whose return
    annotation says it returns something other than *returns* (``-> None``: a
    program's ``main``). A callable left is a factory: the command calls it once,
    to build what it needs.

    Args:
        target: the target as given, for messages.
        value: the callable the target names.
        error: the :class:`TargetError` subclass to raise.
        wanted: what the factory should return, for messages ("a supervisor spec").
        returns: the types a factory may be annotated to return.

    Raises:
        TargetError: (*error*) *value* cannot be such a factory.
    """
    if inspect.isclass(value):
        raise error(
            target,
            f"{target} is the class {value.__qualname__}, not {wanted}; otpy does not "
            f"instantiate it to find out: point at {wanted}, or a function that builds one",
        )
    if inspect.iscoroutinefunction(value) or inspect.isasyncgenfunction(value):
        raise error(target, f"{target} is an async function; make it a plain function")
    if inspect.isgeneratorfunction(value):
        raise error(target, f"{target} is a generator function; make it return {wanted}")
    try:
        inspect.signature(value).bind()
    except TypeError:
        raise error(
            target,
            f"{target} is a callable that needs arguments; otpy calls it with none. "
            f"Give its parameters defaults, or point at {wanted} itself",
        ) from None
    except ValueError:  # no signature to check (some builtins)
        pass
    try:
        annotation = typing.get_type_hints(value).get("return", _UNKNOWN)
    except Exception:  # names only imported for type checking, say: judge by the result
        annotation = _UNKNOWN
    if not _may_return(annotation, returns):
        raise error(
            target,
            f"{target} is annotated to return {_type_name(annotation)}, not {wanted}, so "
            f"otpy does not call it; point at {wanted}, or a function that returns one",
        )


def _may_return(annotation: object, returns: tuple[type, ...]) -> bool:
    """Whether a function annotated to return *annotation* may return one of *returns*."""
    if annotation is _UNKNOWN or annotation is Any or annotation is object:
        return True
    origin = typing.get_origin(annotation)
    if origin is typing.Union or origin is types.UnionType:
        return any(_may_return(arg, returns) for arg in typing.get_args(annotation))
    if origin is typing.Annotated:
        return _may_return(typing.get_args(annotation)[0], returns)
    kind = origin if origin is not None else annotation
    if isinstance(kind, type):
        return issubclass(kind, returns)
    return True  # a type variable, a protocol alias...: the result will tell


def _type_name(annotation: object) -> str:
    if annotation is type(None):
        return "None"
    if isinstance(annotation, type) and typing.get_origin(annotation) is None:
        return annotation.__qualname__
    return str(annotation).replace("typing.", "")


def describe(exc: BaseException) -> str:
    """``"Class: message"``, or the class alone for an empty message."""
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
