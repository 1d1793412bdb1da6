"""A bounded queue whose producers are throttled, deferred or shed by priority (PRS-5..PRS-8).

The queue runs the pure policy in :mod:`._policy`: every put gets the verdict
:func:`admit` gives, and every put and get feeds the new occupancy to
:func:`advance`, which steps the level up at once and down only past the exit
ratio (hysteresis). Neither is called on every operation: for its current level
the queue caches the depths at which :func:`level_for` keeps that level, and
whether :func:`admit` queues every priority there, so the usual put and get cost
an integer comparison. Pressure is pushed onto *producers*: a throttled or
deferred producer waits in its own task, and the consumer's
:meth:`BoundedQueue.get` never sleeps. Nothing is dropped silently: every refusal
raises a typed error, is counted by reason and priority, and is handed to
``on_reject`` (the seam to dead letters).
"""

from __future__ import annotations

import bisect
import collections
import functools
from typing import TYPE_CHECKING, Generic, TypeVar, final

import anyio
import anyio.lowlevel
import attrs

from .._check import callable_or_none, count, short
from .._check import name as check_name
from .._exceptions import InvalidArgumentType, LoadShed, PressureError, QueueFull
from .._redact import get_logger
from ._monitor import check_monitor, notify_pressure, record_drop, record_throttle
from ._policy import (
    Level,
    LevelState,
    PressurePolicy,
    Priority,
    Verdict,
    admit,
    advance,
    as_priority,
    level_for,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    from .._core import ActorRef, NamedRef

__all__ = ["BoundedQueue", "QueueStatistics"]

logger = get_logger("otpy.pressure")

T = TypeVar("T")

_DEFAULT_POLICY = PressurePolicy()


@attrs.frozen
class _Regime:
    """What a queue can decide without asking the policy, while it stays at one level.

    Attributes:
        lo: the least depth at which :func:`level_for` keeps the level.
        hi: the greatest such depth (``hi < lo``: none does).
        put_below: ``put`` queues at once at depths in ``[lo, put_below)``: the level
            holds and :func:`admit` accepts every priority there (empty otherwise).
        put_nowait_below: the same for ``put_nowait``, which also queues a throttled
            message at once.
    """

    lo: int
    hi: int
    put_below: int
    put_nowait_below: int


@functools.lru_cache(maxsize=256)
def _regime(policy: PressurePolicy, capacity: int, level: Level) -> _Regime:
    """Return the :class:`_Regime` of *level*: O(log capacity), cached per policy, capacity, level.

    For a fixed current level, :func:`level_for` never falls as the ratio rises: a
    higher ratio reaches every enter ratio a lower one reaches, and keeps every
    exit ratio it keeps (and once it reaches the current level, the exits no longer
    matter). So the depths it maps to *level* are one interval, and two
    binary searches over ``0..capacity`` find it, with the ratio computed exactly as
    :meth:`BoundedQueue._observe` computes it. :func:`admit` depends on the depth only
    through ``depth >= capacity``, so its verdicts below capacity are asked once.
    """

    def level_at(depth: int) -> Level:
        return level_for(policy, level, depth / capacity)

    depths = range(capacity + 1)
    lo = bisect.bisect_left(depths, True, key=lambda d: level_at(d) >= level)
    hi = bisect.bisect_left(depths, True, key=lambda d: level_at(d) > level) - 1
    verdicts = {admit(policy, level, p, depth=0, capacity=1).verdict for p in Priority}
    open_below = min(hi + 1, capacity)
    return _Regime(
        lo=lo,
        hi=hi,
        put_below=open_below if verdicts == {Verdict.ACCEPT} else lo,
        put_nowait_below=open_below if verdicts <= {Verdict.ACCEPT, Verdict.THROTTLE} else lo,
    )


@attrs.frozen(kw_only=True)
class QueueStatistics:
    """A snapshot of a :class:`BoundedQueue`, cheap enough to take several times a second.

    ``queued`` and ``capacity`` have the same names as in
    :class:`otpy.ActorStatistics`, so the pressure monitor reads either.

    Attributes:
        name: the queue's name.
        queued: messages in the queue now.
        capacity: the most it ever holds.
        peak: the most it has held so far (never above ``capacity``).
        level: the pressure level now.
        accepted: messages queued so far.
        taken: messages handed to consumers so far.
        rejected: refusals by reason (``"load_shed"``, ``"queue_full"``) and then by
            priority label (``"low"`` ... ``"critical"``); only non-zero counts appear.
        throttled: puts that waited ``policy.throttle`` before being admitted again.
        throttle_seconds: the time producers spent throttled, in all.
        deferred: puts that waited for the level to fall below ``degraded``, plus
            ``put_nowait`` calls refused with ``anyio.WouldBlock`` for that reason.
        transitions: level changes so far.
        callback_errors: ``on_reject`` calls that raised (each is logged).
    """

    name: str
    queued: int
    capacity: int
    peak: int
    level: Level
    accepted: int
    taken: int
    rejected: dict[str, dict[str, int]]
    throttled: int
    throttle_seconds: float
    deferred: int
    transitions: int
    callback_errors: int

    @property
    def rejected_total(self) -> int:
        """All refusals, whatever the reason."""
        return sum(sum(by_priority.values()) for by_priority in self.rejected.values())


@final
class BoundedQueue(Generic[T]):
    """A FIFO queue that never holds more than *capacity* messages, under any load.

    ``await put(item, priority=...)`` asks the policy what to do at the current level:

    - ``normal`` and ``warn``: the message is queued.
    - ``degraded``: the producer of a priority in ``policy.defer`` waits until the
      level falls below ``degraded``; the others wait ``policy.throttle`` seconds
      once, then are admitted again (capacity and shedding are checked afresh, but
      a message is throttled at most once).
    - ``shed``: priorities in ``policy.shed_priorities`` raise :class:`LoadShed`;
      the others are treated as at ``degraded``.
    - at capacity, every priority (critical too) raises :class:`QueueFull`.

    Critical messages are never shed, deferred or throttled. The consumer never
    waits for pressure: :meth:`get` only waits while the queue is empty.

    Args:
        capacity: the most messages the queue holds (>= 1).
        name: names the queue in errors, logs and statistics.
        policy: thresholds and what each level does.
        on_reject: called synchronously as ``on_reject(item, priority, reason)`` for
            every refused message, before the error is raised; *reason* is
            ``"load_shed"`` or ``"queue_full"``. If it raises, the error is logged
            and counted in ``callback_errors``, never raised into ``put``.

    Raises:
        InvalidArgument: *capacity* is not an integer in ``[1, 2**53]``, *name* is
            empty or not valid text, *policy* is not a :class:`PressurePolicy`, or
            *on_reject* is not callable (an :class:`~otpy.InvalidArgumentType` when
            the type is wrong); also a ``ValueError``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        capacity: int,
        *,
        name: str = "queue",
        policy: PressurePolicy = _DEFAULT_POLICY,
        on_reject: Callable[[T, Priority, str], object] | None = None,
    ) -> None:
        check_name(name, owner="queue")
        owner = f"queue {name!r}"
        self._capacity = count(capacity, "capacity", owner=owner)
        if not isinstance(policy, PressurePolicy):
            raise InvalidArgumentType(
                "policy", f"must be a PressurePolicy, got {short(policy)}", owner=owner
            )
        callable_or_none(on_reject, "on_reject", owner=owner)
        self._name = name
        self._policy = policy
        self._on_reject = on_reject
        self._items: collections.deque[T] = collections.deque()
        self._state = LevelState()  # normal: nothing to step down from, so no time needed
        self._settle()  # _lo, _hi, _put_below, _put_nowait_below: see _Regime
        self._arrived = anyio.Event()  # set (and replaced) when an item is queued
        self._getters = 0
        self._changed = anyio.Event()  # set (and replaced) on every level change
        self._peak = 0
        self._accepted = 0
        self._taken = 0
        self._rejected: dict[str, dict[str, int]] = {}
        self._throttled = 0
        self._throttle_seconds = 0.0
        self._deferred = 0
        self._transitions = 0
        self._callback_errors = 0
        self._watchers: list[tuple[ActorRef | NamedRef, str]] = []

    def __repr__(self) -> str:
        return (
            f"<BoundedQueue {self._name!r} {len(self._items)}/{self._capacity} "
            f"{self._state.level.label}>"
        )

    def __len__(self) -> int:
        return len(self._items)

    @property
    def name(self) -> str:
        """The queue's name."""
        return self._name

    @property
    def capacity(self) -> int:
        """The most messages the queue holds."""
        return self._capacity

    @property
    def policy(self) -> PressurePolicy:
        """The pressure policy."""
        return self._policy

    @property
    def level(self) -> Level:
        """The pressure level now (brought up to date with ``min_dwell`` first)."""
        self._observe()
        return self._state.level

    # -- level ---------------------------------------------------------------

    def watch(self, monitor: ActorRef | NamedRef, source: str | None = None) -> None:
        """Notify *monitor* (a :class:`~otpy.pressure.PressureMonitor`) whenever this queue's level changes.

        The monitor still samples on its interval; this makes it see a change at
        once, at the cost of one hint per transition rather than per message.
        *source* is the name the monitor knows this queue by (the queue's name by
        default).

        Raises:
            InvalidArgumentType: *monitor* is not an ``ActorRef`` or ``NamedRef``, or
                *source* not a string or ``None``; nothing is watched.
        """
        owner = f"queue {self._name!r}"
        check_monitor(monitor, owner)
        if source is not None:
            check_name(source, "source", owner=owner)
        self._watchers.append((monitor, source or self._name))

    def _settle(self) -> None:
        """Cache what the current level lets put, put_nowait and _observe skip."""
        regime = _regime(self._policy, self._capacity, self._state.level)
        self._lo = regime.lo
        self._hi = regime.hi
        self._put_below = regime.put_below
        self._put_nowait_below = regime.put_nowait_below

    def _observe(self) -> None:
        if self._lo <= len(self._items) <= self._hi:
            return  # the usual case: level_for keeps the level, so no clock read is needed
        # level_for moves the level; min_dwell may still hold a step down.
        ratio = len(self._items) / self._capacity
        state = advance(self._policy, self._state, ratio=ratio, now=anyio.current_time())
        if state is self._state:
            return
        for monitor, source in self._watchers:
            notify_pressure(monitor, source)
        logger.debug(
            "queue %r: pressure %s -> %s (%d/%d queued)",
            self._name,
            self._state.level.label,
            state.level.label,
            len(self._items),
            self._capacity,
        )
        self._state = state
        self._settle()
        self._transitions += 1
        self._changed.set()
        self._changed = anyio.Event()

    # -- producers -----------------------------------------------------------

    def _enqueue(self, item: T) -> None:
        self._items.append(item)
        self._accepted += 1
        self._peak = max(self._peak, len(self._items))
        if self._getters:
            self._arrived.set()
            self._arrived = anyio.Event()
        self._observe()

    def _reject(self, item: T, priority: Priority, verdict: Verdict) -> PressureError:
        cls = LoadShed if verdict is Verdict.SHED else QueueFull
        error = cls(self._name, priority, self._state.level, len(self._items), self._capacity)
        by_priority = self._rejected.setdefault(cls.reason, {})
        by_priority[priority.name.lower()] = by_priority.get(priority.name.lower(), 0) + 1
        record_drop(self._name, cls.reason, priority.name.lower())
        if self._on_reject is not None:
            try:
                self._on_reject(item, priority, cls.reason)
            except Exception:
                self._callback_errors += 1
                logger.exception(
                    "queue %r: on_reject raised for a %s message (%s); the message was "
                    "still refused",
                    self._name,
                    priority.name.lower(),
                    cls.reason,
                )
        return error

    def _verdict(self, priority: Priority) -> Verdict:
        self._observe()
        return admit(
            self._policy,
            self._state.level,
            priority,
            depth=len(self._items),
            capacity=self._capacity,
        ).verdict

    async def put(self, item: T, *, priority: Priority = Priority.NORMAL) -> None:
        """Queue *item*, after the wait its priority and the pressure level call for.

        Args:
            item: the message.
            priority: decides whether it may be throttled, deferred or shed: a
                :class:`Priority` (or its int value, 0 to 3).

        Raises:
            LoadShed: the queue is at ``shed`` and sheds *priority*.
            QueueFull: the queue is at capacity (every priority).
            InvalidArgument: *priority* is not a priority (an
                :class:`~otpy.InvalidArgumentType` if it is not even an int); nothing
                was queued.
        """
        await anyio.lowlevel.checkpoint()
        if priority.__class__ is not Priority:
            priority = as_priority(priority, owner=f"queue {self._name!r}")
        if self._lo <= len(self._items) < self._put_below:
            self._enqueue(item)  # what _verdict would say (ACCEPT), without asking it
            return
        throttled = False
        while True:
            verdict = self._verdict(priority)
            if verdict is Verdict.ACCEPT or (verdict is Verdict.THROTTLE and throttled):
                self._enqueue(item)
                return
            if verdict is Verdict.THROTTLE:
                throttled = True
                self._throttled += 1
                started = anyio.current_time()
                try:
                    await anyio.sleep(self._policy.throttle)
                finally:
                    waited = anyio.current_time() - started
                    self._throttle_seconds += waited
                    record_throttle(self._name, waited)
            elif verdict is Verdict.DEFER:
                self._deferred += 1
                await self._wait_for_relief()
            else:
                raise self._reject(item, priority, verdict)

    async def _wait_for_relief(self) -> None:
        """Wait until the level is below ``degraded`` (stepping down after ``min_dwell``)."""
        while True:
            self._observe()
            if self._state.level < Level.DEGRADED:
                return
            changed = self._changed
            if self._policy.min_dwell > 0:
                # Nobody else may touch the queue when the dwell time runs out:
                # wake then and observe, so the step down is not missed.
                remaining = self._state.since + self._policy.min_dwell - anyio.current_time()
                with anyio.move_on_after(max(remaining, 0.0)):
                    await changed.wait()
            else:
                await changed.wait()

    def put_nowait(self, item: T, *, priority: Priority = Priority.NORMAL) -> None:
        """Queue *item* now, or refuse it; never waits.

        Throttling paces producers that can wait, so a ``THROTTLE`` verdict queues
        the message at once here. A deferred priority at ``degraded`` or above
        raises :class:`anyio.WouldBlock` (counted in ``deferred``; the message is
        not refused, so ``on_reject`` is not called): await :meth:`put` instead.

        Raises:
            LoadShed: the queue is at ``shed`` and sheds *priority*.
            QueueFull: the queue is at capacity (every priority).
            anyio.WouldBlock: *priority* is deferred at this level.
            InvalidArgument: *priority* is not a priority, as for :meth:`put`.
        """
        if priority.__class__ is not Priority:
            priority = as_priority(priority, owner=f"queue {self._name!r}")
        if self._lo <= len(self._items) < self._put_nowait_below:
            self._enqueue(item)  # what _verdict would say (ACCEPT or THROTTLE), without asking it
            return
        verdict = self._verdict(priority)
        if verdict is Verdict.ACCEPT or verdict is Verdict.THROTTLE:
            self._enqueue(item)
        elif verdict is Verdict.DEFER:
            self._deferred += 1
            raise anyio.WouldBlock
        else:
            raise self._reject(item, priority, verdict)

    # -- consumers -----------------------------------------------------------

    def _dequeue(self) -> T:
        item = self._items.popleft()
        self._taken += 1
        self._observe()
        return item

    def _take_into(self, into: collections.deque[T], most: int) -> int:
        """Move up to *most* of the oldest messages to *into*, with one level update.

        For a consumer that takes in bulk (a partition worker's demand): the level
        is brought up to date once, for the depth after the take.
        """
        items = self._items
        count = min(most, len(items))
        if count <= 0:
            return 0
        for _ in range(count):
            into.append(items.popleft())
        self._taken += count
        self._observe()
        return count

    async def get(self) -> T:
        """Return the oldest message, waiting while the queue is empty (FIFO).

        The consumer never waits for pressure: throttling and deferral delay the
        producers only.
        """
        await anyio.lowlevel.checkpoint()
        while not self._items:
            self._getters += 1
            try:
                await self._arrived.wait()
            finally:
                self._getters -= 1
        return self._dequeue()

    def get_nowait(self) -> T:
        """Return the oldest message now.

        Raises:
            anyio.WouldBlock: the queue is empty.
        """
        if not self._items:
            raise anyio.WouldBlock
        return self._dequeue()

    def statistics(self) -> QueueStatistics:
        """Return a snapshot (the level is brought up to date with ``min_dwell`` first)."""
        self._observe()
        return QueueStatistics(
            name=self._name,
            queued=len(self._items),
            capacity=self._capacity,
            peak=self._peak,
            level=self._state.level,
            accepted=self._accepted,
            taken=self._taken,
            rejected={reason: dict(counts) for reason, counts in self._rejected.items()},
            throttled=self._throttled,
            throttle_seconds=self._throttle_seconds,
            deferred=self._deferred,
            transitions=self._transitions,
            callback_errors=self._callback_errors,
        )
