"""Pressure levels with hysteresis, and what each level does to a producer (PRS-4..PRS-8).

Everything here is pure arithmetic on ``(ratio, now)``: the bounded queues and the
pressure monitor built on it only run it, and tests check it with plain ``==``.

A level is entered when occupancy reaches its *enter* ratio and left only when it
falls below its lower *exit* ratio (and, optionally, after a minimum dwell time), so
occupancy oscillating around a threshold gives one transition, not one per
crossing. Stepping up is immediate: pressure is reported as soon as it is real.
"""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable
from typing import Final

import attrs

from .._check import number
from .._check import short as _short
from .._exceptions import InvalidArgument, InvalidArgumentType, InvalidPressurePolicy

__all__ = [
    "Admission",
    "Verdict",
    "Level",
    "LevelState",
    "PressurePolicy",
    "Priority",
    "Threshold",
    "admit",
    "advance",
    "level_for",
]


class Level(enum.IntEnum):
    """How full a queue is, in the policy's terms; ordered, so ``Level.SHED > Level.WARN``."""

    NORMAL = 0
    WARN = 1
    """A signal only: nothing changes for producers."""
    DEGRADED = 2
    """Producers are throttled and deferrable priorities wait (the consumer never does)."""
    SHED = 3
    """Configured priorities are rejected (shed)."""

    @property
    def label(self) -> str:
        """``"normal"``, ``"warn"``, ``"degraded"`` or ``"shed"``: span and metric values."""
        return self.name.lower()


class Priority(enum.IntEnum):
    """A message's priority; ``CRITICAL`` is never shed."""

    LOW = 0
    NORMAL = 1
    HIGH = 2
    CRITICAL = 3


@attrs.frozen
class Threshold:
    """Enter a level at ``enter`` occupancy; leave it below ``exit``.

    Attributes:
        enter: occupancy ratio (depth / capacity) that enters the level.
        exit: occupancy below which the level is left; ``exit == enter`` means no
            hysteresis.
    """

    enter: float
    exit: float

    def __attrs_post_init__(self) -> None:
        for field in ("enter", "exit"):
            value = getattr(self, field)
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise InvalidArgumentType(
                    field,
                    f"must be an occupancy ratio (a number), got {_short(value)}",
                    owner="threshold",
                )


DEFAULT_WARN: Final = Threshold(0.70, 0.60)
DEFAULT_DEGRADED: Final = Threshold(0.85, 0.75)
DEFAULT_SHED: Final = Threshold(0.95, 0.85)


_PRIORITY_NAMES: Final = ", ".join(f"Priority.{p.name}" for p in Priority)


def as_priority(value: object, argument: str = "priority", owner: str | None = None) -> Priority:
    """Return *value* as a :class:`Priority`: a member, or the int of one (not a bool).

    Raises:
        InvalidArgumentType: *value* is not a ``Priority`` or an int.
        InvalidArgument: an int that is no priority's value.
    """
    if value.__class__ is Priority:
        return value
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentType(
            argument, f"must be one of {_PRIORITY_NAMES}, got {_short(value)}", owner=owner
        )
    if not Priority.LOW <= value <= Priority.CRITICAL:
        raise InvalidArgument(
            argument,
            f"must be one of {_PRIORITY_NAMES} (0 to 3), got {_short(value)}",
            owner=owner,
        )
    return Priority(value)


def _priority_set(field: str, value: object) -> frozenset[Priority]:
    if isinstance(value, (int, Priority)):
        return frozenset({_policy_priority(field, value)})
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise InvalidPressurePolicy(
            field, f"must be a Priority or a set of them ({_PRIORITY_NAMES}), got {_short(value)}"
        )
    return frozenset(_policy_priority(field, p) for p in value)


def _defer(value: object) -> frozenset[Priority]:
    return _priority_set("defer", value)


def _shed_priorities(value: object) -> frozenset[Priority]:
    return _priority_set("shed_priorities", value)


def _policy_priority(field: str, value: object) -> Priority:
    try:
        return as_priority(value)
    except InvalidArgument as exc:
        raise InvalidPressurePolicy(field, exc.problem) from None


_LEVELS: Final = (Level.WARN, Level.DEGRADED, Level.SHED)


@attrs.frozen(kw_only=True)
class PressurePolicy:
    """How occupancy maps to levels, and what each level does; validated when built (PRS-4).

    Attributes:
        warn: the ``warn`` threshold (default enter 0.70, exit 0.60).
        degraded: the ``degraded`` threshold (0.85 / 0.75).
        shed: the ``shed`` threshold (0.95 / 0.85).
        min_dwell: seconds a level must have lasted before it may step down; 0 steps
            down as soon as occupancy falls below the exit ratio.
        throttle: at ``degraded`` and above, seconds a producer waits before its
            message is queued (``0`` turns throttling off). The consumer never waits.
        defer: priorities that wait at ``degraded`` and above until the level falls
            back (empty by default).
        shed_priorities: priorities rejected at ``shed`` (default: low). ``CRITICAL``
            cannot be among them.

    Raises:
        InvalidPressurePolicy: a ratio is outside (0, 1], an exit is above its enter,
            the enter ratios are not strictly increasing, a duration is negative, or
            critical work would be shed or deferred. The message names the field.
    """

    warn: Threshold = DEFAULT_WARN
    degraded: Threshold = DEFAULT_DEGRADED
    shed: Threshold = DEFAULT_SHED
    min_dwell: float = 0.0
    throttle: float = 0.005
    defer: frozenset[Priority] = attrs.field(default=frozenset(), converter=_defer)
    shed_priorities: frozenset[Priority] = attrs.field(
        default=frozenset({Priority.LOW}), converter=_shed_priorities
    )

    def __attrs_post_init__(self) -> None:
        previous = 0.0
        for level in _LEVELS:
            name = level.label
            threshold = self.threshold(level)
            if not isinstance(threshold, Threshold):
                raise InvalidPressurePolicy(
                    name, f"must be a Threshold(enter, exit), got {_short(threshold)}"
                )
            if not (0.0 < threshold.enter <= 1.0) or math.isnan(threshold.enter):
                raise InvalidPressurePolicy(
                    f"{name}.enter", f"must be in (0, 1], got {_short(threshold.enter)}"
                )
            if not (0.0 <= threshold.exit <= threshold.enter):
                raise InvalidPressurePolicy(
                    f"{name}.exit",
                    f"must be in [0, {name}.enter={threshold.enter:g}], got {_short(threshold.exit)}; "
                    "the exit ratio is the lower one",
                )
            if threshold.enter <= previous:
                raise InvalidPressurePolicy(
                    f"{name}.enter",
                    f"{threshold.enter:g} must be above the level below it ({previous:g}): "
                    "enter ratios increase strictly from warn to degraded to shed",
                )
            previous = threshold.enter
        for field in ("min_dwell", "throttle"):
            try:
                number(getattr(self, field), field, positive=False)
            except InvalidArgument as exc:
                raise InvalidPressurePolicy(field, exc.problem) from None
        if Priority.CRITICAL in self.shed_priorities:
            raise InvalidPressurePolicy("shed_priorities", "critical work is never shed")
        if Priority.CRITICAL in self.defer:
            raise InvalidPressurePolicy("defer", "critical work is never deferred")

    @classmethod
    def without_hysteresis(
        cls, warn: float = 0.70, degraded: float = 0.85, shed: float = 0.95, **options: object
    ) -> PressurePolicy:
        """A policy whose exit ratios equal their enter ratios (levels follow occupancy)."""
        return cls(
            warn=Threshold(warn, warn),
            degraded=Threshold(degraded, degraded),
            shed=Threshold(shed, shed),
            **options,  # type: ignore[arg-type]
        )

    def threshold(self, level: Level) -> Threshold:
        """Return the threshold of a level above normal."""
        if level is Level.WARN:
            return self.warn
        if level is Level.DEGRADED:
            return self.degraded
        if level is Level.SHED:
            return self.shed
        raise ValueError("normal has no threshold: it is where the others are left for")


def level_for(policy: PressurePolicy, current: Level, ratio: float) -> Level:
    """Return the level at occupancy *ratio*, coming from *current* (no dwell time).

    Up: the highest level whose enter ratio *ratio* reaches. Down: a level is kept
    while *ratio* stays at or above its exit ratio.
    """
    thresholds = (policy.warn, policy.degraded, policy.shed)
    up = Level.NORMAL
    for level, threshold in zip(_LEVELS, thresholds, strict=True):
        if ratio >= threshold.enter:
            up = level
    if up >= current:
        return up
    kept = Level.NORMAL
    for level, threshold in zip(_LEVELS, thresholds, strict=True):
        if level <= current and ratio >= threshold.exit:
            kept = level
    return max(up, kept)


@attrs.frozen
class LevelState:
    """A queue's level and since when (``anyio.current_time()``)."""

    level: Level = Level.NORMAL
    since: float = 0.0

    def __attrs_post_init__(self) -> None:  # built on level changes only, never per message
        if self.level.__class__ is not Level:
            raise InvalidArgumentType(
                "level", f"must be a Level, got {_short(self.level)}", owner="level state"
            )
        since = self.since
        if isinstance(since, bool) or not isinstance(since, (int, float)):
            raise InvalidArgumentType(
                "since", f"must be a time (a number), got {_short(since)}", owner="level state"
            )
        if isinstance(since, float) and not math.isfinite(since):
            raise InvalidArgument(
                "since", f"must be a finite time, got {_short(since)}", owner="level state"
            )


def advance(policy: PressurePolicy, state: LevelState, ratio: float, now: float) -> LevelState:
    """Return the state after observing *ratio* at *now*; the same object if nothing changed.

    Stepping up happens at once; stepping down waits until the current level has
    lasted ``policy.min_dwell`` seconds. A transition is exactly ``new is not state``.
    """
    level = level_for(policy, state.level, ratio)
    if level == state.level:
        return state
    if level < state.level and now < state.since + policy.min_dwell:  # the sum a timer waits for
        return state
    return LevelState(level, now)


class Verdict(enum.Enum):
    """What happens to a message offered to a bounded queue."""

    ACCEPT = "accept"
    THROTTLE = "throttle"
    """Accept, after the producer waits ``policy.throttle`` seconds."""
    DEFER = "defer"
    """The producer waits until the level falls below ``degraded``."""
    SHED = "shed"
    """Reject: the message is shed."""
    QUEUE_FULL = "queue_full"
    """Reject: the queue is at capacity."""


@attrs.frozen
class Admission:
    """The verdict on one message, and the level it was reached at."""

    verdict: Verdict
    level: Level


def admit(
    policy: PressurePolicy, level: Level, priority: Priority, *, depth: int, capacity: int
) -> Admission:
    """Decide what happens to a message of *priority* offered at *level* (PRS-6..PRS-8).

    At capacity every priority gets ``QUEUE_FULL``: a bounded queue never grows past
    its capacity, for critical work either. Otherwise ``shed`` rejects the shed
    priorities; ``degraded`` (and ``shed``, for the rest) defers the deferrable
    priorities and throttles the others; ``CRITICAL`` is never shed, deferred or
    throttled.
    """
    if depth >= capacity:
        return Admission(Verdict.QUEUE_FULL, level)
    if priority is Priority.CRITICAL or level < Level.DEGRADED:
        return Admission(Verdict.ACCEPT, level)
    if level is Level.SHED and priority in policy.shed_priorities:
        return Admission(Verdict.SHED, level)
    if priority in policy.defer:
        return Admission(Verdict.DEFER, level)
    if policy.throttle > 0:
        return Admission(Verdict.THROTTLE, level)
    return Admission(Verdict.ACCEPT, level)
