"""What a delivery attempt's response or error means: done, try again, give up, or stop sending.

The defaults follow HTTP: a 2xx is delivered; 408, 429 and 5xx are worth another
attempt; 410 says the destination is gone for good; any other status is final. A
user's :data:`Classifier` may decide first and fall back to the defaults.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from typing import TypeAlias

from .._check import short
from .._exceptions import InvalidArgument, InvalidArgumentType

__all__ = ["Classifier", "Outcome", "classify", "classify_error", "classify_status"]


class Outcome(enum.Enum):
    """What to do after one delivery attempt."""

    SUCCESS = "success"
    """Delivered: nothing more to do."""
    RETRYABLE = "retryable"
    """Failed, but another attempt may succeed: retry per the policy, then dead-letter."""
    TERMINAL = "terminal"
    """Failed for good: no retry; dead-letter it at once."""
    GONE = "gone"
    """410 Gone: terminal, and the destination should be disabled (no more sends to it)."""


Classifier: TypeAlias = Callable[[int | None, BaseException | None], Outcome | None]
"""A user's override: ``(status, error) -> Outcome | None``; ``None`` means "use the default".

Exactly one of ``status`` (an HTTP response's status code) and ``error`` (what the
attempt raised instead of answering) is given. An exception it raises propagates.
"""

# 408 Request Timeout and 429 Too Many Requests: the server asks to be asked again later.
_RETRYABLE_4XX = frozenset({408, 429})


def classify_status(status: int) -> Outcome:
    """Return what an HTTP response's *status* means for the delivery.

    2xx is :attr:`~Outcome.SUCCESS`; 408, 429 and 5xx are :attr:`~Outcome.RETRYABLE`;
    410 is :attr:`~Outcome.GONE`; any other code (1xx, 3xx, other 4xx, and codes
    outside 100-599, which no server should send) is :attr:`~Outcome.TERMINAL`.
    Redirects are terminal: a webhook endpoint that moved must be reconfigured.

    Raises:
        InvalidArgumentType: *status* is not an integer (a ``bool`` is not one).
    """
    if isinstance(status, bool) or not isinstance(status, int):
        raise InvalidArgumentType(
            "status", f"must be an HTTP status code (an int), got {short(status)}"
        )
    if 200 <= status <= 299:
        return Outcome.SUCCESS
    if status in _RETRYABLE_4XX or 500 <= status <= 599:
        return Outcome.RETRYABLE
    if status == 410:
        return Outcome.GONE
    return Outcome.TERMINAL


def classify_error(exc: BaseException) -> Outcome:
    """Return what an exception raised by a delivery attempt means.

    Connection failures and timeouts (``OSError``, which includes ``ConnectionError``
    and ``TimeoutError``) are :attr:`~Outcome.RETRYABLE`; an exception group is
    retryable when every exception in it is; anything else is
    :attr:`~Outcome.TERMINAL`, since a bug on our side will not fix itself.
    Cancellation is not a failure: re-raise it rather than classify it.

    Raises:
        InvalidArgumentType: *exc* is not an exception.
    """
    if not isinstance(exc, BaseException):
        raise InvalidArgumentType("error", f"must be an exception, got {short(exc)}")
    if isinstance(exc, BaseExceptionGroup):
        leaves = exc.exceptions
        if all(classify_error(leaf) is Outcome.RETRYABLE for leaf in leaves):
            return Outcome.RETRYABLE
        return Outcome.TERMINAL
    if isinstance(exc, OSError):
        return Outcome.RETRYABLE
    return Outcome.TERMINAL


def classify(
    status: int | None = None,
    error: BaseException | None = None,
    *,
    override: Classifier | None = None,
) -> Outcome:
    """Return what an attempt's *status* or *error* means, asking *override* first.

    Args:
        status: the response's HTTP status code, when the server answered.
        error: what the attempt raised, when it did not. Exactly one of *status*
            and *error* is given.
        override: a :data:`Classifier`, or ``None``. Its answer wins unless it is
            ``None``, which falls back to :func:`classify_status` or
            :func:`classify_error`.

    Returns:
        The :class:`Outcome`.

    Raises:
        InvalidArgument: both or neither of *status* and *error* were given.
        InvalidArgumentType: *status* or *error* has the wrong type, *override* is
            not callable, or it returned something other than an :class:`Outcome`
            or ``None``.
    """
    if (status is None) == (error is None):
        raise InvalidArgument(
            "status",
            "or error must be given, not both or neither: a status when the server "
            "answered, an error when it did not",
            owner="classify",
        )
    if override is not None:
        if not callable(override):
            raise InvalidArgumentType(
                "override",
                f"must be a function (status, error) -> Outcome | None, got {short(override)}",
                owner="classify",
            )
        decided = override(status, error)
        if decided is not None:
            if not isinstance(decided, Outcome):
                raise InvalidArgumentType(
                    "override",
                    f"must return an Outcome or None, returned {short(decided)}",
                    owner="classify",
                )
            return decided
    if error is not None:
        return classify_error(error)
    assert status is not None  # checked above: exactly one is given
    return classify_status(status)
