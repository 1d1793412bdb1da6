"""Argument checks shared by the public constructors and calls: one wording, one error type.

Each check returns the value (converted where that is lossless, like an ``int`` to a
``float``) or raises :class:`~otpy.InvalidArgument` (:class:`~otpy.InvalidArgumentType`
for a wrong type) naming the argument and what is allowed. They run where a value is
given, in constructors and slow paths, never per message.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Final

from ._exceptions import InvalidArgument, InvalidArgumentType

__all__ = [
    "MAX_COUNT",
    "callable_or_none",
    "check_seconds",
    "check_type",
    "count",
    "name",
    "number",
    "pairs",
    "short",
]

MAX_COUNT: Final = 2**53
"""The largest capacity, burst or count otpy accepts: the last integer a float counts exactly.

Occupancy ratios and token buckets are computed in floats, so anything above it
could not be told apart from its neighbours, and far larger values overflow.
"""


def count(
    value: object,
    argument: str,
    *,
    owner: str | None = None,
    minimum: int = 1,
    maximum: int = MAX_COUNT,
) -> int:
    """Return *value* if it is an ``int`` (not a ``bool``) in ``[minimum, maximum]``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentType(
            argument, f"must be an integer >= {minimum}, got {short(value)}", owner=owner
        )
    if value < minimum:
        raise InvalidArgument(
            argument, f"must be an integer >= {minimum}, got {short(value)}", owner=owner
        )
    if value > maximum:
        high = "2**53" if maximum == MAX_COUNT else str(maximum)
        raise InvalidArgument(
            argument, f"must be an integer <= {high}, got {short(value)}", owner=owner
        )
    return value


def number(
    value: object,
    argument: str,
    *,
    owner: str | None = None,
    positive: bool = True,
    unit: str = "",
) -> float:
    """Return *value* as a ``float`` if it is a finite real number, > 0 (or >= 0 if not *positive*).

    Bools are refused: ``True`` is not a duration or a rate.
    """
    bound = "> 0" if positive else ">= 0"
    what = f"a finite number{unit} {bound}"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentType(argument, f"must be {what}, got {short(value)}", owner=owner)
    try:
        converted = float(value)
    except OverflowError:
        converted = math.inf
    if not math.isfinite(converted) or converted < 0 or (positive and converted == 0):
        raise InvalidArgument(argument, f"must be {what}, got {short(value)}", owner=owner)
    return converted


def name(value: object, argument: str = "name", *, owner: str | None = None) -> str:
    """Return *value* if it is a non-empty ``str`` that UTF-8 can encode (no lone surrogates).

    Names end up in logs, span attributes and metric labels, which are UTF-8.
    """
    if not isinstance(value, str):
        raise InvalidArgumentType(argument, f"must be a string, got {short(value)}", owner=owner)
    if not value:
        raise InvalidArgument(argument, "must not be empty", owner=owner)
    try:
        value.encode()
    except UnicodeEncodeError:
        raise InvalidArgument(
            argument,
            f"must be valid text, got {short(value)}, which has a lone surrogate UTF-8 cannot encode",
            owner=owner,
        ) from None
    return value


def callable_or_none(value: object, argument: str, *, owner: str | None = None) -> None:
    """Refuse *value* unless it is ``None`` or callable."""
    if value is not None and not callable(value):
        raise InvalidArgumentType(
            argument, f"must be a function or None, got {short(value)}", owner=owner
        )


def short(value: object) -> str:
    """``repr(value)`` for an error message: a huge integer by its size, a long repr cut short.

    A huge integer's digits say nothing (and past ``sys.get_int_max_str_digits()``
    ``repr`` raises); a 100,000-character string would drown the message.
    """
    if isinstance(value, int) and not isinstance(value, bool) and value.bit_length() > 64:
        return f"an integer of {value.bit_length()} bits"
    try:
        text = repr(value)
    except Exception:  # a broken __repr__ must not hide the real error
        return f"a {type(value).__name__}"
    return text if len(text) <= 80 else f"{text[:60]}... ({len(text)} characters)"


def check_seconds(
    function: str, argument: str, value: object, *, optional: bool = True, positive: bool = False
) -> None:
    """Refuse *value* unless it is a number of seconds >= 0 (or ``None`` if *optional*).

    With *positive*, zero is refused too. Infinity is allowed (it waits forever, like
    ``None``); ``bool``, NaN and negative numbers are not. *function* names the call,
    like ``"ActorRef.stop"``.

    Raises:
        InvalidArgumentType: *value* is not a number (``bool`` counts as not one).
        InvalidArgument: *value* is NaN or negative (or zero, with *positive*).
    """
    if value is None and optional:
        return
    allowed = f"a number of seconds {'>' if positive else '>='} 0" + (
        ", or None to wait forever" if optional else ""
    )
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidArgumentType(
            argument,
            f"must be {allowed}, got {type(value).__name__} {short(value)}",
            owner=function,
        )
    if value != value or value < 0 or (positive and value == 0):  # NaN != NaN
        raise InvalidArgument(argument, f"must be {allowed}, got {short(value)}", owner=function)


def check_type(function: str, argument: str, value: object, kind: type, allowed: str) -> None:
    """Refuse *value* unless it is an instance of *kind*; the message says *allowed*.

    Raises:
        InvalidArgumentType: it is not.
    """
    if not isinstance(value, kind):
        raise InvalidArgumentType(
            argument,
            f"must be {allowed}, got {type(value).__name__} {short(value)}",
            owner=function,
        )


def pairs(value: object, argument: str, *, owner: str | None = None) -> tuple[tuple[str, str], ...]:
    """Convert a mapping or an iterable of ``(name, value)`` string pairs to a tuple.

    Lists count as pairs (JSON gives lists). Text must encode as UTF-8: a lone
    surrogate could not be stored or sent later, so it is refused here.

    Raises:
        InvalidArgumentType: *value* is not a mapping or an iterable of string pairs.
        InvalidArgument: a name or value holds a lone surrogate.
    """
    items: Iterable[object]
    if isinstance(value, Mapping):
        items = value.items()
    elif isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidArgumentType(
            argument,
            f"must be a mapping or an iterable of (name, value) string pairs, got {short(value)}",
            owner=owner,
        )
    else:
        items = value
    found: list[tuple[str, str]] = []
    for item in items:
        if isinstance(item, list):
            item = tuple(item)
        if (
            not isinstance(item, tuple)
            or len(item) != 2
            or not isinstance(item[0], str)
            or not isinstance(item[1], str)
        ):
            raise InvalidArgumentType(
                argument, f"must hold (name, value) string pairs, got {short(item)}", owner=owner
            )
        for text in item:
            try:
                text.encode()
            except UnicodeEncodeError:
                raise InvalidArgument(
                    argument,
                    f"must hold valid text, got {short(item)}, which has a lone surrogate",
                    owner=owner,
                ) from None
        found.append((item[0], item[1]))
    return tuple(found)
