"""Retry schedules for outbound delivery: exponential backoff or explicit delays, and Retry-After.

Everything here is pure arithmetic: time (``now``) and randomness (``random``, a float
in ``[0, 1)``) are arguments, so the gateway's clock and random source decide, and
tests are exact.
"""

from __future__ import annotations

import datetime
import email.utils
import math
import re
from typing import TYPE_CHECKING, Final

import attrs

from .._check import MAX_COUNT, count, number, short
from .._exceptions import InvalidArgument, InvalidArgumentType

if TYPE_CHECKING:
    from collections.abc import Iterable

__all__ = ["RetryPolicy", "parse_duration", "parse_retry_after"]

_OWNER: Final = "RetryPolicy"

_UNITS: Final = {"d": 86400.0, "h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}
_RANK: Final = {unit: rank for rank, unit in enumerate(_UNITS)}
_PART: Final = r"([0-9]+(?:\.[0-9]+)?)(ms|s|m|h|d)"
_DURATION: Final = re.compile(f"(?:{_PART})+")
_ALLOWED: Final = (
    "a finite number of seconds >= 0, or a duration like '500ms', '5s', '5m', '2h', '1d' or '1h30m'"
)

_DELTA_SECONDS: Final = re.compile(r"[0-9]+")


def parse_duration(text: str | float, argument: str) -> float:
    """Return a duration in seconds from a number of seconds or a text like ``"5m"``.

    A text is one or more ``<number><unit>`` parts with units ``ms``, ``s``, ``m``
    (minutes), ``h`` and ``d`` from the largest to the smallest, each at most once:
    ``"500ms"``, ``"1.5s"``, ``"30m"``, ``"1h30m"``. Surrounding spaces are ignored; a
    bare number in a text (``"5"``) is refused, since its unit would be a guess.

    Args:
        text: the duration: an ``int``/``float`` of seconds (finite, >= 0) or a text.
        argument: the argument's name, for the error message.

    Returns:
        The duration in seconds (finite, >= 0).

    Raises:
        InvalidArgumentType: *text* is neither a number nor a text (a ``bool`` is not one).
        InvalidArgument: *text* is negative, NaN or infinite, or a text of another form.
    """
    if isinstance(text, str):
        stripped = text.strip()
        if _DURATION.fullmatch(stripped):
            seconds = 0.0
            previous = -1
            for amount, unit in re.findall(_PART, stripped):
                if _RANK[unit] <= previous:
                    break  # a unit repeated or out of order, like "5m1h"
                previous = _RANK[unit]
                seconds += float(amount) * _UNITS[unit]
            else:
                if math.isfinite(seconds):
                    return seconds
        raise InvalidArgument(argument, f"must be {_ALLOWED}, got {short(text)}")
    if isinstance(text, bool) or not isinstance(text, (int, float)):
        raise InvalidArgumentType(argument, f"must be {_ALLOWED}, got {short(text)}")
    try:
        return number(text, argument, positive=False)
    except InvalidArgument:
        raise InvalidArgument(argument, f"must be {_ALLOWED}, got {short(text)}") from None


def _schedule(value: Iterable[str | float] | None) -> tuple[float, ...] | None:
    """``schedule`` as a tuple of seconds; each delay parsed by :func:`parse_duration`."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not _iterable(value):
        raise InvalidArgumentType(
            "schedule",
            f"must be a sequence of delays like ('5s', '5m', '30m') or None, got {short(value)}",
            owner=_OWNER,
        )
    delays = []
    for index, item in enumerate(value):
        try:
            delays.append(parse_duration(item, f"schedule[{index}]"))
        except InvalidArgument as exc:
            raise type(exc)(exc.argument, exc.problem, owner=_OWNER) from None
    if not delays:
        raise InvalidArgument(
            "schedule",
            "must have at least one delay; for no retries at all, use max_attempts=1",
            owner=_OWNER,
        )
    return tuple(delays)


def _iterable(value: object) -> bool:
    try:
        iter(value)  # type: ignore[call-overload]
    except TypeError:
        return False
    return True


def _default_attempts(policy: RetryPolicy) -> int:
    """3, or one more than the schedule has delays: the first attempt, then one per delay."""
    return 3 if policy.schedule is None else len(policy.schedule) + 1


# The exponential fields and their defaults: with a schedule they must be left alone.
_EXPONENTIAL: Final = {"initial": 1.0, "multiplier": 2.0, "max_backoff": 60.0, "jitter": 0.2}


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """When to try a failed delivery again, and when to give up; validated when built.

    Two shapes. By default an exponential backoff: after the n-th failed attempt the
    delay is ``initial * multiplier**(n-1)``, capped at ``max_backoff``, then spread
    by a random factor in ``[1 - jitter, 1 + jitter]`` and capped again, so a delay
    is never above ``max_backoff``. Or an explicit ``schedule`` of delays, used
    exactly as given (no jitter): ``RetryPolicy(schedule=("5s", "5m", "30m", "2h",
    "5h", "10h"))`` retries six times over about 18 hours.

    A server's ``Retry-After`` may push an attempt later (up to ``max_retry_after``
    seconds), never earlier than the schedule says.

    Attributes:
        schedule: explicit delays in seconds (texts like ``"5m"`` are accepted, see
            :func:`parse_duration`), or ``None`` for the exponential backoff.
        max_attempts: attempts in all, counting the first (an integer >= 1): 3 means
            one attempt and at most 2 retries. With a schedule it defaults to one
            more than the schedule's length, and may not exceed it.
        initial: the first delay, seconds (finite, > 0).
        multiplier: growth per attempt (finite, >= 1; 1 gives a constant delay).
        max_backoff: the cap on any delay, seconds (finite, >= initial).
        jitter: the random spread, a fraction in ``[0, 1]``; 0 turns it off.
        max_retry_after: the most seconds a ``Retry-After`` may delay an attempt
            (finite, >= 0; 0 ignores it).

    Raises:
        InvalidArgument: a field is out of range, or an exponential field is set
            together with a schedule; the message names the field (an
            :class:`~otpy.InvalidArgumentType` if it has the wrong type).
    """

    schedule: tuple[float, ...] | None = attrs.field(default=None, converter=_schedule)
    max_attempts: int = attrs.field(default=attrs.Factory(_default_attempts, takes_self=True))
    initial: float = 1.0
    multiplier: float = 2.0
    max_backoff: float = 60.0
    jitter: float = 0.2
    max_retry_after: float = 3600.0

    def __attrs_post_init__(self) -> None:
        count(self.max_attempts, "max_attempts", owner=_OWNER)
        initial = number(self.initial, "initial", owner=_OWNER, unit=" of seconds")
        multiplier = number(self.multiplier, "multiplier", owner=_OWNER)
        if multiplier < 1:
            raise InvalidArgument(
                "multiplier", f"must be >= 1, got {short(self.multiplier)}", owner=_OWNER
            )
        maximum = number(self.max_backoff, "max_backoff", owner=_OWNER, unit=" of seconds")
        if maximum < initial:
            raise InvalidArgument(
                "max_backoff",
                f"must be >= initial ({short(self.initial)}), got {short(self.max_backoff)}",
                owner=_OWNER,
            )
        if number(self.jitter, "jitter", owner=_OWNER, positive=False) > 1:
            raise InvalidArgument(
                "jitter", f"must be between 0 and 1, got {short(self.jitter)}", owner=_OWNER
            )
        number(
            self.max_retry_after,
            "max_retry_after",
            owner=_OWNER,
            positive=False,
            unit=" of seconds",
        )
        if self.schedule is not None:
            for field, default in _EXPONENTIAL.items():
                if getattr(self, field) != default:
                    raise InvalidArgument(
                        field,
                        "applies to the exponential backoff only; leave it out with a schedule",
                        owner=_OWNER,
                    )
            if self.max_attempts > len(self.schedule) + 1:
                raise InvalidArgument(
                    "max_attempts",
                    f"must be at most {len(self.schedule) + 1} with a schedule of "
                    f"{len(self.schedule)} delays (the first attempt, then one per delay), "
                    f"got {self.max_attempts}; add delays to the schedule to retry more",
                    owner=_OWNER,
                )

    def delay(self, attempt: int, *, random: float) -> float:
        """Return the seconds to wait after *attempt* failed attempts, before the next one.

        It does not check ``max_attempts``: :meth:`next_attempt` does.

        Args:
            attempt: failed attempts so far, an integer >= 1 (at most the schedule's
                length, with a schedule).
            random: a float in ``[0, 1)`` that places the jitter: 0 gives the shortest
                delay, 0.5 the unjittered one. Unused with a schedule.

        Returns:
            The delay, seconds, in ``[0, max_backoff]`` (or the schedule's entry).

        Raises:
            InvalidArgument: *attempt* or *random* is out of range.
        """
        _check_random(random, "RetryPolicy.delay")
        limit = MAX_COUNT if self.schedule is None else len(self.schedule)
        count(attempt, "attempt", owner="RetryPolicy.delay", maximum=limit)
        return self._delay(attempt, random)

    def _delay(self, attempt: int, random: float) -> float:
        """:meth:`delay` without the argument checks."""
        if self.schedule is not None:
            return self.schedule[attempt - 1]
        try:
            base = min(self.max_backoff, self.initial * self.multiplier ** (attempt - 1))
        except OverflowError:
            base = self.max_backoff
        spread = 1.0 + self.jitter * (2.0 * random - 1.0)
        return min(self.max_backoff, base * spread)

    def next_attempt(
        self, attempt: int, *, now: float, random: float, retry_after: float | None = None
    ) -> float | None:
        """Return when to make the next attempt after *attempt* failed ones, or ``None``.

        Args:
            attempt: failed attempts so far, an integer >= 1.
            now: the current time, on the clock the result is meant for.
            random: a float in ``[0, 1)`` for the jitter (see :meth:`delay`).
            retry_after: seconds from *now* the server asked to wait (see
                :func:`parse_retry_after`), or ``None``. The delay becomes the longer
                of the scheduled one and ``min(retry_after, max_retry_after)``.

        Returns:
            The time of the next attempt (``now`` plus the delay), or ``None`` once
            *attempt* reaches ``max_attempts``: no retry is left.

        Raises:
            InvalidArgument: an argument is out of range (*retry_after* negative or
                NaN, *now* not finite, ...).
        """
        function = "RetryPolicy.next_attempt"
        count(attempt, "attempt", owner=function)
        _check_random(random, function)
        if isinstance(now, bool) or not isinstance(now, (int, float)):
            raise InvalidArgumentType(
                "now", f"must be a time (a number), got {short(now)}", owner=function
            )
        if not math.isfinite(now):
            raise InvalidArgument("now", f"must be a finite time, got {short(now)}", owner=function)
        if retry_after is not None:
            if isinstance(retry_after, bool) or not isinstance(retry_after, (int, float)):
                raise InvalidArgumentType(
                    "retry_after",
                    f"must be a number of seconds >= 0 or None, got {short(retry_after)}",
                    owner=function,
                )
            if retry_after != retry_after or retry_after < 0:  # NaN != NaN
                raise InvalidArgument(
                    "retry_after",
                    f"must be a number of seconds >= 0 or None, got {short(retry_after)}",
                    owner=function,
                )
        if attempt >= self.max_attempts:
            return None
        wait = self._delay(attempt, random)
        if retry_after is not None:
            wait = max(wait, min(float(retry_after), self.max_retry_after))
        return now + wait


def _check_random(random: object, function: str) -> None:
    if isinstance(random, bool) or not isinstance(random, (int, float)):
        raise InvalidArgumentType(
            "random", f"must be a float in [0, 1), got {short(random)}", owner=function
        )
    if not 0.0 <= random < 1.0:  # NaN fails this too
        raise InvalidArgument(
            "random", f"must be a float in [0, 1), got {short(random)}", owner=function
        )


def parse_retry_after(value: str | None, *, now: float) -> float | None:
    """Return the seconds a ``Retry-After`` header asks to wait, or ``None`` if it says nothing usable.

    The header holds either delta-seconds (a non-negative integer, like ``"120"``) or
    an HTTP-date (like ``"Wed, 21 Oct 2015 07:28:00 GMT"``). It is server input, so
    anything else (``None``, a negative or fractional number, garbage) gives
    ``None``, never an error. A date in the past gives ``0.0``. A number too large
    for a float gives ``inf`` (the policy's ``max_retry_after`` clamps it).

    Args:
        value: the header's value, or ``None`` when there was none.
        now: the current UNIX time (``time.time()``), against which an HTTP-date is
            measured; unused for delta-seconds.

    Returns:
        Seconds from *now*, >= 0, or ``None``.
    """
    if not isinstance(value, str):
        return None
    text = value.strip()
    if _DELTA_SECONDS.fullmatch(text):
        return float(text)  # a float never raises on digits: a huge one is inf
    try:
        when = email.utils.parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": the zone is unknown; HTTP-dates are in GMT
            when = when.replace(tzinfo=datetime.UTC)
        seconds = when.timestamp() - now
    except (ValueError, TypeError, OverflowError, IndexError):
        return None
    if seconds != seconds:  # NaN, from a NaN now
        return None
    return max(0.0, seconds)
