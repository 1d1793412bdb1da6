"""Argument checks for the public API: a bad value fails before anything happens.

They run only off the hot path: ``call`` checks its timeout only when it is not
the default.
"""

from __future__ import annotations

import numbers

from .._exceptions import InvalidArgument, InvalidArgumentType

__all__ = ["check_seconds", "check_type"]


def check_seconds(
    function: str, argument: str, value: object, *, optional: bool = True, positive: bool = False
) -> None:
    """Refuse *value* unless it is a number of seconds >= 0 (or ``None`` if *optional*).

    With *positive*, zero is refused too.

    Infinity is allowed (it waits forever, like ``None``); ``bool``, NaN and negative
    numbers are not.

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
        raise InvalidArgumentType(function, argument, value, allowed)
    if value != value or value < 0 or (positive and value == 0):  # NaN != NaN
        raise InvalidArgument(function, argument, value, allowed)


def check_type(function: str, argument: str, value: object, kind: type, allowed: str) -> None:
    """Refuse *value* unless it is an instance of *kind*.

    Raises:
        InvalidArgumentType: it is not; the message says *allowed*.
    """
    if not isinstance(value, kind):
        raise InvalidArgumentType(function, argument, value, allowed)
