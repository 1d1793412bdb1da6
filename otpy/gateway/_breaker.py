"""A per-destination circuit breaker: a pure state machine, time passed in.

The breaker follows Resilience4j's circuit breaker. It is ``CLOSED`` while the
destination is healthy and records every call's outcome in a sliding window (the
last *N* calls, or the calls of the last *N* seconds). Once the window holds at least
``minimum_calls`` outcomes, the failure rate (failed / recorded, in percent) and the
slow-call rate are checked after each outcome; reaching either threshold (``>=``) opens
the breaker. ``OPEN`` refuses every call (the caller must not send) until
``wait_in_open`` seconds have passed; the next :meth:`CircuitBreaker.try_acquire` then
moves it to ``HALF_OPEN``, which admits exactly ``half_open_calls`` trial calls and
refuses the rest. Once enough trials have completed, their rates decide: below both
thresholds closes the breaker with an empty window (earlier failures are forgotten),
otherwise it opens again for another ``wait_in_open``.

Nothing here reads a clock: every call takes ``now``, in seconds on any clock that
never goes backwards (``anyio.current_time()`` in the gateway), so tests are exact.
"""

from __future__ import annotations

import enum
import math
from collections import deque
from collections.abc import Callable
from typing import Final, Literal, TypeAlias, final

import attrs

from .._check import callable_or_none, count, short
from .._exceptions import InvalidArgument, InvalidArgumentType

__all__ = [
    "BreakerPolicy",
    "BreakerState",
    "BreakerStatistics",
    "CircuitBreaker",
    "TransitionCallback",
]

_OWNER: Final = "breaker policy"


class BreakerState(enum.Enum):
    """The state of a :class:`CircuitBreaker`; the value is the span and metric label."""

    CLOSED = "closed"
    """Calls pass and their outcomes are recorded; enough failures open the breaker."""
    OPEN = "open"
    """Calls are refused until ``wait_in_open`` has passed."""
    HALF_OPEN = "half_open"
    """A fixed number of trial calls pass; their outcomes close or reopen the breaker."""
    FORCED_OPEN = "forced_open"
    """Refuses every call and records nothing, until :meth:`CircuitBreaker.reset`."""
    DISABLED = "disabled"
    """Admits every call and records nothing, until :meth:`CircuitBreaker.reset`."""


TransitionCallback: TypeAlias = Callable[[BreakerState, BreakerState, float, str], None]
"""``on_transition(old, new, now, reason)``: called once per state change, after it."""


def _percent(value: object, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentType(
            field, f"must be a percentage in (0, 100], got {short(value)}", owner=_OWNER
        )
    if not 0 < value <= 100:  # NaN fails this too
        raise InvalidArgument(
            field, f"must be a percentage in (0, 100], got {short(value)}", owner=_OWNER
        )
    return float(value)


def _seconds(value: object, field: str, *, positive: bool = True) -> float:
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InvalidArgumentType(
            field, f"must be a finite number of seconds {bound}, got {short(value)}", owner=_OWNER
        )
    if not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise InvalidArgument(
            field, f"must be a finite number of seconds {bound}, got {short(value)}", owner=_OWNER
        )
    return float(value)


def _window_type(value: object) -> Literal["count", "time"]:
    if value == "count" and isinstance(value, str):
        return "count"
    if value == "time" and isinstance(value, str):
        return "time"
    raise InvalidArgument(
        "window_type", f"must be 'count' or 'time', got {short(value)}", owner=_OWNER
    )


def _window_size(value: object) -> int:
    return count(value, "window_size", owner=_OWNER)


def _minimum_calls(value: object) -> int:
    return count(value, "minimum_calls", owner=_OWNER)


def _half_open_calls(value: object) -> int:
    return count(value, "half_open_calls", owner=_OWNER)


def _failure_rate(value: object) -> float:
    return _percent(value, "failure_rate_threshold")


def _slow_call_rate(value: object) -> float:
    return _percent(value, "slow_call_rate_threshold")


def _slow_call_duration(value: object) -> float:
    return _seconds(value, "slow_call_duration")


def _wait_in_open(value: object) -> float:
    return _seconds(value, "wait_in_open")


def _max_wait_in_half_open(value: object) -> float:
    return _seconds(value, "max_wait_in_half_open", positive=False)


@attrs.frozen(kw_only=True)
class BreakerPolicy:
    """How a :class:`CircuitBreaker` decides; Resilience4j's defaults.

    Attributes:
        window_type: ``"count"``: the window is the last ``window_size`` calls;
            ``"time"``: the calls that completed in the last ``window_size`` seconds
            (the calls of a second ``window_size`` seconds old have left it).
        window_size: calls, or seconds for a time window; an integer >= 1.
        minimum_calls: outcomes the window must hold before the rates are computed;
            until then the breaker stays closed whatever they are. For a count
            window it is capped at ``window_size`` (as Resilience4j does).
        failure_rate_threshold: percent in (0, 100]: a failure rate at or above it
            opens the breaker.
        slow_call_rate_threshold: percent in (0, 100]: a slow-call rate at or above it
            opens the breaker (slow successes count as well as slow failures).
        slow_call_duration: seconds > 0: a call that took longer than this (strictly)
            is slow.
        wait_in_open: seconds > 0 the breaker stays open before it lets trial calls
            through.
        half_open_calls: trial calls admitted in ``HALF_OPEN``; an integer >= 1. The
            decision comes once ``min(half_open_calls, minimum_calls)`` of them have
            completed.
        max_wait_in_half_open: seconds >= 0; if the trials have not decided after this
            long in ``HALF_OPEN``, the next :meth:`CircuitBreaker.try_acquire` opens
            the breaker again (so a trial that never reports cannot wedge it). ``0``,
            the default, waits for the trials however long they take.

    Raises:
        InvalidArgument: a field is out of range (an
            :class:`~otpy.InvalidArgumentType` if it has the wrong type); the message
            names the field.
    """

    window_type: Literal["count", "time"] = attrs.field(default="count", converter=_window_type)
    window_size: int = attrs.field(default=100, converter=_window_size)
    minimum_calls: int = attrs.field(default=100, converter=_minimum_calls)
    failure_rate_threshold: float = attrs.field(default=50.0, converter=_failure_rate)
    slow_call_rate_threshold: float = attrs.field(default=100.0, converter=_slow_call_rate)
    slow_call_duration: float = attrs.field(default=60.0, converter=_slow_call_duration)
    wait_in_open: float = attrs.field(default=60.0, converter=_wait_in_open)
    half_open_calls: int = attrs.field(default=10, converter=_half_open_calls)
    max_wait_in_half_open: float = attrs.field(default=0.0, converter=_max_wait_in_half_open)


@attrs.frozen(kw_only=True)
class BreakerStatistics:
    """A snapshot of a :class:`CircuitBreaker`.

    Attributes:
        state: the state now.
        since: when the state was entered (the breaker's creation for the first).
        calls: outcomes in the current window (the trial window in ``HALF_OPEN``).
        failed: failed calls among them.
        slow: slow calls among them (successes and failures).
        failure_rate: ``failed / calls`` in percent, or ``None`` while the window
            holds fewer than the minimum number of calls (the rate decides nothing yet).
        slow_call_rate: ``slow / calls`` in percent, or ``None`` likewise.
        rejected: calls :meth:`CircuitBreaker.try_acquire` refused, in all.
        opened: times the breaker entered ``OPEN``, in all.
        transitions: state changes, in all.
    """

    state: BreakerState
    since: float
    calls: int
    failed: int
    slow: int
    failure_rate: float | None
    slow_call_rate: float | None
    rejected: int
    opened: int
    transitions: int


_FAILED: Final = 1
_SLOW: Final = 2


@final
class _Window:
    """Outcomes of the last *size* calls (``seconds=False``) or *size* seconds, with totals."""

    def __init__(self, size: int, minimum: int, *, seconds: bool) -> None:
        self.size = size
        self.seconds = seconds
        self.minimum = minimum if seconds else min(minimum, size)
        # count window: one flags int per call; time window: [second, calls, failed,
        # slow] per whole second of completion time, oldest first (as Resilience4j's
        # partial aggregation: at most *size* + 1 buckets, whatever the call rate).
        self.entries: deque[int] = deque()
        self.stamps: deque[list[float]] = deque()
        self.calls = 0
        self.failed = 0
        self.slow = 0

    def record(self, now: float, flags: int) -> None:
        failed, slow = flags & _FAILED, (flags & _SLOW) >> 1
        if self.seconds:
            self.expire(now)
            second = float(math.floor(now))  # one bucket per second: memory bounded by size
            last = self.stamps[-1] if self.stamps else None
            if last is not None and last[0] == second:
                last[1] += 1
                last[2] += failed
                last[3] += slow
            else:
                self.stamps.append([second, 1, failed, slow])
        else:
            if len(self.entries) == self.size:
                old = self.entries.popleft()
                self.calls -= 1
                self.failed -= old & _FAILED
                self.slow -= (old & _SLOW) >> 1
            self.entries.append(flags)
        self.calls += 1
        self.failed += failed
        self.slow += slow

    def expire(self, now: float) -> None:
        if not self.seconds:
            return
        stamps = self.stamps
        while stamps and now - stamps[0][0] >= self.size:
            _, calls, failed, slow = stamps.popleft()
            self.calls -= int(calls)
            self.failed -= int(failed)
            self.slow -= int(slow)

    def rates(self) -> tuple[float, float] | None:
        """``(failure rate, slow-call rate)`` in percent, or ``None`` below the minimum."""
        if self.calls == 0 or self.calls < self.minimum:
            return None
        return self.failed * 100 / self.calls, self.slow * 100 / self.calls


@final
class CircuitBreaker:
    """One destination's circuit breaker: ask before each call, report how it went.

    ::

        if not breaker.try_acquire(now):
            ...  # refused: do not send; retry later or dead-letter
        else:
            started = now
            ...  # send
            breaker.on_success(now, now - started)  # or on_failure / on_ignored

    Every call :meth:`try_acquire` admitted must end in exactly one of
    :meth:`on_success`, :meth:`on_failure` or :meth:`on_ignored` (use ``on_ignored``
    for a call cancelled or abandoned locally: it counts as neither, and in
    ``HALF_OPEN`` gives its trial permit back).

    Choices where Resilience4j has a detail:

    - Thresholds compare with ``>=``: exactly 50 % failures opens a 50 % breaker. A
      call is slow when it took strictly longer than ``slow_call_duration``.
    - ``OPEN`` admits again once ``now - opened >= wait_in_open`` (Resilience4j
      waits until strictly after, one clock tick later). The move to ``HALF_OPEN``
      happens on the first :meth:`try_acquire` after that, never by itself, so
      :attr:`state` says ``OPEN`` until someone asks.
    - ``HALF_OPEN`` records its trials in a count window of ``half_open_calls`` and
      decides once ``min(half_open_calls, minimum_calls)`` outcomes are in it.
    - Outcomes of calls admitted in an earlier state that complete later (in flight
      across a transition) are recorded in the current window, as Resilience4j
      does: in ``OPEN`` they are kept but decide nothing; in ``HALF_OPEN`` they count
      as trials. ``FORCED_OPEN`` and ``DISABLED`` record nothing.
    - A time window aggregates outcomes per whole second of completion time, as
      Resilience4j's partial buckets do: the calls of second ``s`` count while
      ``now - s < window_size``, so memory is at most ``window_size + 1`` buckets
      whatever the call rate.
    - There is no ``METRICS_ONLY`` state and no growing wait in ``OPEN``.

    Args:
        policy: thresholds and windows; :class:`BreakerPolicy` defaults if omitted.
        now: the time the breaker is created (the ``CLOSED`` state's ``since``).
        on_transition: called as ``on_transition(old, new, now, reason)`` after every
            state change, once; *reason* is a short sentence for logs and spans. An
            exception from it propagates to the caller, the state already changed.

    Raises:
        InvalidArgumentType: *policy* is not a :class:`BreakerPolicy`, *now* is not a
            number or *on_transition* is not callable.
    """

    def __init__(
        self,
        policy: BreakerPolicy | None = None,
        *,
        now: float,
        on_transition: TransitionCallback | None = None,
    ) -> None:
        if policy is None:
            policy = BreakerPolicy()
        elif not isinstance(policy, BreakerPolicy):
            raise InvalidArgumentType(
                "policy", f"must be a BreakerPolicy or None, got {short(policy)}"
            )
        if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
            raise InvalidArgumentType("now", f"must be a finite number, got {short(now)}")
        callable_or_none(on_transition, "on_transition")
        self._policy = policy
        self._on_transition = on_transition
        self._state = BreakerState.CLOSED
        self._since = float(now)
        self._window = self._closed_window()
        self._permits = 0
        self._rejected = 0
        self._opened = 0
        self._transitions = 0

    def __repr__(self) -> str:
        policy = self._policy
        return (
            f"<CircuitBreaker {self._state.value} window={policy.window_size}"
            f"{'s' if policy.window_type == 'time' else ' calls'}>"
        )

    @property
    def state(self) -> BreakerState:
        """The state now (``OPEN`` until a :meth:`try_acquire` finds the wait over)."""
        return self._state

    @property
    def policy(self) -> BreakerPolicy:
        """The policy the breaker was built with."""
        return self._policy

    def _closed_window(self) -> _Window:
        policy = self._policy
        return _Window(
            policy.window_size, policy.minimum_calls, seconds=policy.window_type == "time"
        )

    def _move(self, new: BreakerState, now: float, reason: str) -> None:
        old = self._state
        self._state = new
        self._since = now
        self._transitions += 1
        if new is BreakerState.OPEN:
            self._opened += 1
        elif new is BreakerState.HALF_OPEN:
            policy = self._policy
            self._window = _Window(policy.half_open_calls, policy.minimum_calls, seconds=False)
            self._permits = policy.half_open_calls
        else:  # CLOSED starts afresh; FORCED_OPEN and DISABLED record nothing
            self._window = self._closed_window()
        if self._on_transition is not None:
            self._on_transition(old, new, now, reason)

    def try_acquire(self, now: float) -> bool:
        """Whether a call may be sent now; ``False`` means do not send it.

        In ``OPEN`` once ``wait_in_open`` has passed, moves to ``HALF_OPEN`` and
        admits the first trial. In ``HALF_OPEN``, admits while trial permits remain.
        Every refusal is counted in :attr:`BreakerStatistics.rejected`.
        """
        state = self._state
        if state is BreakerState.CLOSED or state is BreakerState.DISABLED:
            return True
        policy = self._policy
        if state is BreakerState.OPEN:
            if now - self._since < policy.wait_in_open:
                self._rejected += 1
                return False
            self._move(
                BreakerState.HALF_OPEN,
                now,
                f"waited {policy.wait_in_open:g}s in open: trying {policy.half_open_calls} calls",
            )
        elif state is BreakerState.HALF_OPEN:
            limit = policy.max_wait_in_half_open
            if limit and now - self._since >= limit:
                self._move(
                    BreakerState.OPEN,
                    now,
                    f"trial calls undecided after {limit:g}s in half-open",
                )
                self._rejected += 1
                return False
        else:  # FORCED_OPEN
            self._rejected += 1
            return False
        if self._permits > 0:
            self._permits -= 1
            return True
        self._rejected += 1
        return False

    def on_success(self, now: float, duration: float) -> None:
        """Record a call that succeeded after *duration* seconds, completing at *now*."""
        self._record(now, _SLOW if duration > self._policy.slow_call_duration else 0)

    def on_failure(self, now: float, duration: float) -> None:
        """Record a call that failed after *duration* seconds, completing at *now*."""
        slow = _SLOW if duration > self._policy.slow_call_duration else 0
        self._record(now, _FAILED | slow)

    def on_ignored(self, now: float) -> None:
        """Forget an admitted call that neither succeeded nor failed (cancelled locally).

        Nothing is recorded. In ``HALF_OPEN`` the trial permit is given back (never
        beyond ``half_open_calls``), so another trial can take its place. *now* is
        accepted for symmetry; it changes nothing.
        """
        del now
        if self._state is BreakerState.HALF_OPEN:
            self._permits = min(self._permits + 1, self._policy.half_open_calls)

    def _record(self, now: float, flags: int) -> None:
        state = self._state
        if state is BreakerState.FORCED_OPEN or state is BreakerState.DISABLED:
            return
        window = self._window
        window.record(now, flags)
        if state is BreakerState.OPEN:
            return
        rates = window.rates()
        if rates is None:
            return
        failure, slow = rates
        policy = self._policy
        over = []
        if failure >= policy.failure_rate_threshold:
            over.append(f"failure rate {failure:g}% >= {policy.failure_rate_threshold:g}%")
        if slow >= policy.slow_call_rate_threshold:
            over.append(f"slow call rate {slow:g}% >= {policy.slow_call_rate_threshold:g}%")
        what = (
            f"{window.calls} trial calls"
            if state is BreakerState.HALF_OPEN
            else (f"the last {window.calls} calls")
        )
        if over:
            self._move(BreakerState.OPEN, now, f"{' and '.join(over)} over {what}")
        elif state is BreakerState.HALF_OPEN:
            self._move(
                BreakerState.CLOSED,
                now,
                f"failure rate {failure:g}% and slow call rate {slow:g}% under the "
                f"thresholds over {what}",
            )

    def reset(self, now: float) -> None:
        """Close the breaker with an empty window, whatever its state (also leaves
        ``FORCED_OPEN`` and ``DISABLED``); reported as a transition unless it was closed.
        """
        if self._state is BreakerState.CLOSED:
            self._window = self._closed_window()
        else:
            self._move(BreakerState.CLOSED, now, "reset")

    def force_open(self, now: float) -> None:
        """Refuse every call until :meth:`reset` (an operator's switch); no-op if forced."""
        if self._state is not BreakerState.FORCED_OPEN:
            self._move(BreakerState.FORCED_OPEN, now, "forced open")

    def disable(self, now: float) -> None:
        """Admit every call and record nothing until :meth:`reset`; no-op if disabled."""
        if self._state is not BreakerState.DISABLED:
            self._move(BreakerState.DISABLED, now, "disabled")

    def statistics(self, now: float | None = None) -> BreakerStatistics:
        """A snapshot; with *now*, a time window first forgets calls that have left it."""
        window = self._window
        if now is not None:
            window.expire(now)
        rates = window.rates()
        return BreakerStatistics(
            state=self._state,
            since=self._since,
            calls=window.calls,
            failed=window.failed,
            slow=window.slow,
            failure_rate=None if rates is None else rates[0],
            slow_call_rate=None if rates is None else rates[1],
            rejected=self._rejected,
            opened=self._opened,
            transitions=self._transitions,
        )
