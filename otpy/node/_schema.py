"""The settings' kinds: how a TOML value or an environment variable's text becomes a value.

A config class declares each setting with :func:`setting`, naming its kind; the
loader, the environment overrides and the generated table of variables all read
the same declaration, so they cannot disagree.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Final

import attrs

from .._check import short
from .._exceptions import InvalidArgument
from ..gateway import parse_duration
from ..pressure import Priority

__all__ = ["Kind", "Named", "Section", "Secret", "meta"]

ENV_PREFIX: Final = "OTPY_"
"""How every environment variable that overrides a setting starts."""

NAME: Final = re.compile(r"[a-z][a-z0-9]*(?:[_-][a-z0-9]+)*")
"""A route's or a destination's name: lowercase words joined by single ``_`` or ``-``."""


class Bad(Exception):
    """A value a kind refuses; *allowed* says what it accepts (and what was given)."""

    def __init__(self, allowed: str, *, index: int | None = None, value: object = None) -> None:
        super().__init__(allowed)
        self.allowed = allowed
        self.index = index
        self.value = value


@attrs.frozen
class Kind:
    """A plain setting's kind: its name in the docs, its check, and its text form.

    Attributes:
        label: what the docs call it: ``"integer"``, ``"duration"``...
        check: turns a TOML value into the setting's value, or raises :class:`Bad`.
        from_env: turns an environment variable's text into a TOML value, or
            raises :class:`Bad`.
    """

    label: str
    check: Callable[[object], object]
    from_env: Callable[[str], object]


@attrs.frozen
class Section:
    """A table of settings of its own: ``[gateway.destinations.orders.retry]``."""

    cls: type


@attrs.frozen
class Named:
    """A table of named tables, one per route or destination: ``[ingest.routes.<name>]``."""

    cls: type
    what: str


@attrs.frozen
class SecretKind:
    """A secret: read from an environment variable (``<key>_env``) or a file (``<key>_file``).

    Attributes:
        many: several secrets (signing keys during a rotation): each key takes a list.
        table: a table of secrets by header name (``headers_from_env``).
    """

    many: bool = False
    table: bool = False


SECRET: Final = SecretKind()
SECRETS: Final = SecretKind(many=True)
SECRET_TABLE: Final = SecretKind(table=True)


def meta(
    kind: Kind | Section | Named | SecretKind, doc: str, *, shown: str | None = None
) -> dict[str, object]:
    """The metadata that makes an attrs field a setting: ``attrs.field(metadata=meta(...))``.

    Args:
        kind: how its value is read.
        doc: one line for the docs' table.
        shown: the default as the docs show it, when its ``repr`` is not that.
    """
    return {"kind": kind, "doc": doc, "shown": shown}


def settings(cls: type) -> tuple[attrs.Attribute[object], ...]:
    """The fields of *cls* that are settings (a table's key), in order."""
    return tuple(f for f in attrs.fields(cls) if "kind" in f.metadata)


# The secret itself --------------------------------------------------------------


@attrs.frozen(repr=False)
class Secret:
    """A secret read from the environment or a file; its ``repr`` never shows it.

    Attributes:
        source: where it was read: ``"env ORDERS_TOKEN"`` or ``"file /run/secrets/x"``.

    .. versionadded:: 0.2.0
    """

    source: str
    _value: str

    def reveal(self) -> str:
        """Return the secret's text, to hand to what needs it (never to a log)."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret({self.source}, [redacted])"


# Plain kinds ---------------------------------------------------------------------


def _text(value: str) -> object:
    return value


def _toml_value(text: str) -> object:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        raise Bad(f"must be written as a TOML value, got {short(text)}") from None


def _string(value: object) -> str:
    if not isinstance(value, str):
        raise Bad(f"must be a string, got {short(value)}")
    return value


def _nonempty(value: object) -> str:
    text = _string(value)
    if not text.strip():
        raise Bad("must not be empty")
    return text


def _integer(minimum: int, maximum: int | None = None) -> Callable[[object], object]:
    def check(value: object) -> int:
        high = "" if maximum is None else f" and <= {maximum}"
        if isinstance(value, bool) or not isinstance(value, int):
            raise Bad(f"must be an integer >= {minimum}{high}, got {short(value)}")
        if value < minimum or (maximum is not None and value > maximum):
            raise Bad(f"must be an integer >= {minimum}{high}, got {short(value)}")
        return value

    return check


def _int_text(text: str) -> object:
    try:
        return int(text.strip().replace("_", ""))
    except ValueError:
        raise Bad(f"must be an integer, got {short(text)}") from None


def _number(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise Bad(f"must be a finite number, got {short(value)}")
    return float(value)


def _float_text(text: str) -> object:
    try:
        return float(text.strip())
    except ValueError:
        raise Bad(f"must be a number, got {short(text)}") from None


def _boolean(value: object) -> bool:
    if not isinstance(value, bool):
        raise Bad(f"must be true or false, got {short(value)}")
    return value


_TRUE: Final = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}


def _bool_text(text: str) -> object:
    try:
        return _TRUE[text.strip().lower()]
    except KeyError:
        raise Bad(f"must be true or false (or 1/0, yes/no), got {short(text)}") from None


def _duration(value: object) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise Bad(f"must be a duration like '30s' or a number of seconds, got {short(value)}")
    try:
        return parse_duration(value, "duration")
    except InvalidArgument as exc:
        raise Bad(exc.problem) from None


def _duration_text(text: str) -> object:
    try:
        return float(text.strip())
    except ValueError:
        return text


def _optional(check: Callable[[object], object]) -> Callable[[object], object]:
    def optional(value: object) -> object:
        return None if value is False else check(value)

    return optional


def _optional_text(parse: Callable[[str], object]) -> Callable[[str], object]:
    def optional(text: str) -> object:
        return False if text.strip().lower() == "false" else parse(text)

    return optional


def _choice(*choices: str) -> Kind:
    def check(value: object) -> str:
        if isinstance(value, str) and value.lower() in choices:
            return value.lower()
        raise Bad(f"must be one of {', '.join(map(repr, choices))}, got {short(value)}")

    quoted = [f'"{c}"' for c in choices]
    return Kind(f"{', '.join(quoted[:-1])} or {quoted[-1]}", check, _text)


def _list(item: Callable[[object], object]) -> Callable[[object], object]:
    def check(value: object) -> tuple[object, ...]:
        if not isinstance(value, list):
            raise Bad(f"must be a list, got {short(value)}")
        found = []
        for index, element in enumerate(value):
            try:
                found.append(item(element))
            except Bad as exc:
                raise Bad(exc.allowed, index=index, value=element) from None
        return tuple(found)

    return check


def _list_text(item: Callable[[str], object]) -> Callable[[str], object]:
    def parse(text: str) -> object:
        if text.lstrip().startswith("["):
            return _toml_value(text)
        return [item(part.strip()) for part in text.split(",") if part.strip()]

    return parse


def _table(value: object) -> dict[str, str]:
    if not isinstance(value, dict):
        raise Bad(f"must be a table of strings, got {short(value)}")
    for key, item in value.items():
        if not isinstance(item, str):
            raise Bad(f"must be a table of strings, got {short(item)} for {key!r}")
    return dict(value)


def _priority(value: object) -> Priority:
    names = ", ".join(repr(p.name.lower()) for p in Priority)
    if isinstance(value, str) and value.upper() in Priority.__members__:
        return Priority[value.upper()]
    raise Bad(f"must be a priority: one of {names}, got {short(value)}")


def _priorities(value: object) -> frozenset[object]:
    found = _list(_priority)(value)
    assert isinstance(found, tuple)
    return frozenset(found)


def _ratio_pair(value: object) -> tuple[float, float]:
    if (
        not isinstance(value, list)
        or len(value) != 2
        or any(isinstance(v, bool) or not isinstance(v, (int, float)) for v in value)
    ):
        raise Bad(f"must be [enter, exit], two occupancy ratios, got {short(value)}")
    return (float(value[0]), float(value[1]))


def _path(value: object) -> Path:
    return Path(_nonempty(value))


STRING: Final = Kind("string", _nonempty, _text)
PATH: Final = Kind("path", _path, _text)
HOST: Final = Kind("host", _nonempty, _text)
PORT: Final = Kind("port", _integer(0, 65535), _int_text)
COUNT: Final = Kind("integer >= 1", _integer(1), _int_text)
SIZE: Final = Kind("integer >= 0", _integer(0), _int_text)
OPTIONAL_COUNT: Final = Kind(
    "integer >= 1 or false", _optional(_integer(1)), _optional_text(_int_text)
)
OPTIONAL_SIZE: Final = Kind(
    "integer >= 0 or false", _optional(_integer(0)), _optional_text(_int_text)
)
NUMBER: Final = Kind("number", _number, _float_text)
OPTIONAL_NUMBER: Final = Kind("number or false", _optional(_number), _optional_text(_float_text))
BOOLEAN: Final = Kind("boolean", _boolean, _bool_text)
DURATION: Final = Kind("duration", _duration, _duration_text)
OPTIONAL_DURATION: Final = Kind(
    "duration or false", _optional(_duration), _optional_text(_duration_text)
)
DURATIONS: Final = Kind("list of durations", _list(_duration), _list_text(_duration_text))
NAMES: Final = Kind("list of names", _list(_nonempty), _list_text(_text))
TABLE: Final = Kind("table of strings", _table, _toml_value)
PRIORITY: Final = Kind("priority", _priority, _text)
PRIORITIES: Final = Kind("list of priorities", _priorities, _list_text(_text))
RATIOS: Final = Kind("[enter, exit]", _ratio_pair, _toml_value)
SYNCHRONOUS: Final = _choice("full", "normal", "off")
ORDERING: Final = _choice("key", "none")
WINDOW: Final = _choice("count", "time")


def shown_default(field: attrs.Attribute[object], default: object) -> str:
    """A setting's *default* as the docs' table shows it."""
    shown = field.metadata.get("shown")
    if shown is not None:
        return str(shown)
    if default is attrs.NOTHING:
        return "required"
    if default is None:
        return "none"
    if isinstance(default, bool):
        return str(default).lower()
    if isinstance(default, (str, Path)):
        return f'"{default}"'
    if isinstance(default, Priority):
        return f'"{default.name.lower()}"'
    if isinstance(default, Mapping) and not default:
        return "{}"
    if isinstance(default, tuple) and not default:
        return "[]"
    return repr(default)
