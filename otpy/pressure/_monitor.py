"""The pressure monitor: an actor that turns queue occupancy into levels (PRS-4..PRS-5).

It samples each watched queue's ``statistics()`` snapshot every ``interval`` seconds
(and whenever a producer calls :func:`notify_pressure`), runs :func:`~otpy.pressure.advance` on
the occupancy ratio, and for each real level change emits exactly one transition span
and metric. It reads public snapshots only, so it can watch an ``ActorRef`` (its
mailbox), a bounded queue, or anything with ``statistics().queued`` and
``.capacity``. A snapshot that also has ``partitions`` (a ``PartitionedQueue``'s)
gets one level per partition instead of one for its total, so one hot partition
is reported as itself.

Restarts: the levels the monitor has *published* live outside the actor, in a small
registry per node keyed by the monitor's registered name (or its ``component`` when
it has none). A restarted incarnation continues from them: a level that did not
change while it was down gives no transition, one that did gives exactly one, with
the previously published level as ``old_level``. Nothing else the actor holds
matters; its first sample recomputes everything from fresh snapshots. With nothing
published yet (the monitor's first start on a node) the baseline is ``normal``, so a
queue already under pressure is reported once rather than never.
"""

from __future__ import annotations

import types
import weakref
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol

import anyio
import attrs
from opentelemetry.trace import SpanKind

from .._check import count, number, short
from .._check import name as check_name
from .._core import Actor, ActorRef, DeadLetterSuppression, NamedRef, current_node
from .._exceptions import InvalidArgumentType, OtpyError
from .._redact import get_logger
from ..telemetry import (
    ATTR_PRESSURE_CAPACITY,
    ATTR_PRESSURE_COMPONENT,
    ATTR_PRESSURE_DEPTH,
    ATTR_PRESSURE_NEW_LEVEL,
    ATTR_PRESSURE_OLD_LEVEL,
    ATTR_PRESSURE_PARTITION,
    ATTR_PRESSURE_PRIORITY,
    ATTR_PRESSURE_QUEUE,
    ATTR_PRESSURE_RATIO,
    ATTR_PRESSURE_REASON,
    METRIC_PRESSURE_CAPACITY,
    METRIC_PRESSURE_DEPTH,
    METRIC_PRESSURE_DROPS,
    METRIC_PRESSURE_THROTTLE,
    METRIC_PRESSURE_TRANSITIONS,
    SPAN_PRESSURE_TRANSITION,
    cached_counter,
    cached_gauge,
    cached_histogram,
    get_tracer,
)
from ._policy import Level, LevelState, PressurePolicy, advance

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._core import Caller, Node

__all__ = [
    "GET_PRESSURE",
    "record_drop",
    "record_throttle",
    "PressureMonitor",
    "PressureStatistics",
    "SamplePressure",
    "SourcePressure",
    "Watched",
    "check_monitor",
    "check_monitor_error",
    "notify_pressure",
    "pressure_statistics",
]

logger = get_logger("otpy.pressure")

# -- sources -----------------------------------------------------------------------


class Occupancy(Protocol):
    """What the monitor reads from a snapshot."""

    @property
    def queued(self) -> int: ...

    @property
    def capacity(self) -> int: ...


class Observable(Protocol):
    """Anything with a ``statistics()`` snapshot that has ``queued`` and ``capacity``."""

    def statistics(self) -> Occupancy: ...


class PartitionOccupancy(Protocol):
    """One partition of a partitioned snapshot (a ``PartitionStatistics``)."""

    @property
    def partition(self) -> int: ...

    @property
    def queue(self) -> Occupancy: ...


class PartitionedOccupancy(Occupancy, Protocol):
    """A snapshot whose ``partitions`` the monitor levels one by one (``PartitionedQueueStatistics``).

    Duck-typed: the monitor never imports the partitioned queue, it only checks that
    ``partitions`` is a non-empty tuple of :class:`PartitionOccupancy`-shaped items.
    """

    @property
    def partitions(self) -> tuple[PartitionOccupancy, ...]: ...


def _check_name(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    check_name(value, "name", owner="Watched")


def _check_target(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if isinstance(value, str):
        check_name(value, "target", owner="Watched")
    elif not callable(getattr(value, "statistics", None)):
        raise InvalidArgumentType(
            "target",
            "must have a statistics() method (an ActorRef, a BoundedQueue, a "
            f"PartitionedQueue) or be a registered actor name, got {short(value)}",
            owner="Watched",
        )


def _check_partition(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is None:
        return
    if isinstance(value, int) and not isinstance(value, bool):
        count(value, "partition", owner="Watched", minimum=0)
        return
    if isinstance(value, str):
        check_name(value, "partition", owner="Watched")
        return
    raise InvalidArgumentType(
        "partition", f"must be a string, an int or None, got {short(value)}", owner="Watched"
    )


def _check_source(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        check_name(value, "source", owner="SamplePressure")


@attrs.frozen
class Watched:
    """One queue the monitor watches.

    Attributes:
        name: the queue's name, as spans and metrics report it.
        target: an object with ``statistics()`` (an ``ActorRef``, a bounded queue, a
            partitioned queue), or a registered actor name, looked up at every sample
            so it follows the actor across restarts (skipped while no incarnation is
            running).
        partition: the partition this record stands for, when one queue per
            partition is watched by hand; reported when set. A target whose snapshot
            has ``partitions`` needs none: it is levelled per partition by itself.
    """

    name: str = attrs.field(validator=_check_name)
    target: Observable | str = attrs.field(validator=_check_target)
    partition: str | int | None = attrs.field(default=None, validator=_check_partition)

    @property
    def key(self) -> str:
        """``name``, or ``"name[partition]"``: how statistics and :class:`SamplePressure` name it."""
        return self.name if self.partition is None else f"{self.name}[{self.partition}]"


@attrs.frozen(kw_only=True)
class SourcePressure:
    """The last sample of one watched queue, or of one partition of it.

    Attributes:
        name: the queue's name (:attr:`Watched.name`, for each of its partitions too).
        partition: its partition (the snapshot's index, for a partitioned source),
            or ``None``.
        level: its pressure level (``level.label`` is the span/metric value).
        ratio: occupancy, ``depth / capacity``.
        depth: items queued.
        capacity: the queue's capacity.
        since: ``anyio.current_time()`` when the level was entered.
        sampled_at: ``anyio.current_time()`` of the sample.
    """

    name: str
    partition: str | int | None
    level: Level
    ratio: float
    depth: int
    capacity: int
    since: float
    sampled_at: float

    @property
    def label(self) -> str:
        """The level's label: ``"normal"``, ``"warn"``, ``"degraded"`` or ``"shed"``."""
        return self.level.label


@attrs.frozen(kw_only=True)
class PressureStatistics:
    """A snapshot of a :class:`PressureMonitor`.

    Attributes:
        component: the monitor's component.
        sources: the last sample of each watched queue, by :attr:`Watched.key`; a
            partitioned source has one entry per partition instead, by
            ``f"{key}[{i}]"`` (queues not sampled yet, or whose statistics failed, are
            absent).
        transitions: level changes published, across all of the monitor's
            incarnations.
        samples: samples taken by the current incarnation.
    """

    component: str
    sources: Mapping[str, SourcePressure]
    transitions: int
    samples: int

    def level(self, key: str) -> Level:
        """Return the level of source *key* (``NORMAL`` if it was never sampled)."""
        source = self.sources.get(key)
        return Level.NORMAL if source is None else source.level


# -- messages ----------------------------------------------------------------------


@attrs.frozen
class SamplePressure:
    """Ask the monitor to sample now: one source by key, or all (``None``).

    The key of a partition (``"jobs[2]"``) or of its partitioned source (``"jobs"``)
    both sample every partition of that source: one snapshot holds them all.

    Cast it (see :func:`notify_pressure`) on enqueue/dequeue events; call it to sample and get
    the resulting :class:`PressureStatistics` back.
    """

    source: str | None = attrs.field(default=None, validator=_check_source)


class _GetPressure:
    __slots__ = ()

    def __repr__(self) -> str:
        return "otpy.pressure.GET_PRESSURE"


GET_PRESSURE: Final = _GetPressure()
"""Call message: ``await monitor.call(GET_PRESSURE)`` returns :class:`PressureStatistics`."""


class _Tick:
    __slots__ = ()


_TICK: Final = _Tick()


# -- the registry of published levels --------------------------------------------


@attrs.define
class _Published:
    """What a monitor has told the world; outlives its incarnations."""

    states: dict[str, LevelState] = attrs.field(factory=dict)
    sources: dict[str, SourcePressure] = attrs.field(factory=dict)
    transitions: int = 0
    owned: dict[str, tuple[str, ...]] = attrs.field(factory=dict)
    """The keys each watched key last published: itself, or its partitions' keys."""

    def forget(self, key: str) -> None:
        """Drop the published level of *key*, silently (it is no longer watched)."""
        self.states.pop(key, None)
        self.sources.pop(key, None)


_published: weakref.WeakKeyDictionary[Node, dict[str, _Published]] = weakref.WeakKeyDictionary()


def pressure_statistics(monitor: str, *, node: Node | None = None) -> PressureStatistics | None:
    """Return what the monitor registered as *monitor* last published, without a call.

    Reads the node's registry of published levels, so it works from synchronous code
    (the console) and while the monitor restarts. ``samples`` is 0 here.

    Args:
        monitor: the monitor's registered name, or its ``component`` if it has none.
        node: the node; the current one by default.

    Returns:
        The snapshot, or ``None`` if no such monitor ever sampled on this node.
    """
    node = node or current_node()
    published = _published.get(node, {}).get(monitor)
    if published is None:
        return None
    return PressureStatistics(
        component=monitor,
        sources=types.MappingProxyType(dict(published.sources)),
        transitions=published.transitions,
        samples=0,
    )


_pending: weakref.WeakKeyDictionary[ActorRef, set[str | None]] = weakref.WeakKeyDictionary()
"""Hints not yet handled, per monitor: a burst of notifications becomes one sample."""


@attrs.frozen
class _Coalesced(DeadLetterSuppression):
    """The one hint in flight to a monitor; it samples what was asked since it was sent.

    Housekeeping: it carries no producer's trace, and is never a dead letter.
    """

    __slots__ = ()


_COALESCED: Final = _Coalesced()


def check_monitor(monitor: object, owner: str | None = None) -> NamedRef | ActorRef:
    """Return *monitor* if it is an ``ActorRef`` or a ``NamedRef``, else raise :class:`~otpy.InvalidArgumentType`."""
    if not isinstance(monitor, (ActorRef, NamedRef)):
        raise check_monitor_error(monitor, owner)
    return monitor


def check_monitor_error(monitor: object, owner: str | None = None) -> InvalidArgumentType:
    """The error :func:`check_monitor` raises for *monitor*."""
    return InvalidArgumentType(
        "monitor",
        f"must be the ActorRef or NamedRef of a PressureMonitor, got {short(monitor)}",
        owner=owner,
    )


def notify_pressure(monitor: ActorRef | NamedRef, source: str | None = None) -> None:
    """Ask *monitor* to sample *source* (all sources if ``None``) soon.

    Meant for queues and producers to call on enqueue/dequeue, so a level change is
    reported at once rather than at the next interval. It never waits and never
    raises. Hints coalesce: while one is on its way to the monitor, further calls
    only add their source to it, so a producer calling this on every put costs one
    sample per mailbox round, not one per message. If the monitor's mailbox is full
    or it is restarting, the hint is dropped and the next interval sees the change.

    Raises:
        InvalidArgumentType: *monitor* is neither an ``ActorRef`` nor a ``NamedRef``
            (the one thing it raises for: a programming error, not a busy monitor).
    """
    if isinstance(monitor, ActorRef):
        ref: ActorRef | None = monitor
    elif isinstance(monitor, NamedRef):
        ref = monitor.resolve()
    else:
        raise check_monitor_error(monitor)
    if ref is None:
        return
    asked = _pending.get(ref)
    if asked is not None:
        asked.add(source)
        return
    _pending[ref] = {source}
    try:
        ref.cast_nowait(_COALESCED)
    except OtpyError:
        _pending.pop(ref, None)
        logger.debug("pressure notify dropped", exc_info=True)


# -- telemetry ---------------------------------------------------------------------


_depth_gauge = cached_gauge(
    METRIC_PRESSURE_DEPTH, unit="{item}", description="Items queued in a watched queue."
)
_capacity_gauge = cached_gauge(
    METRIC_PRESSURE_CAPACITY, unit="{item}", description="Capacity of a watched queue."
)
_transitions_counter = cached_counter(
    METRIC_PRESSURE_TRANSITIONS,
    unit="{transition}",
    description="Pressure level changes of watched queues.",
)
_drops_counter = cached_counter(
    METRIC_PRESSURE_DROPS, unit="{message}", description="Messages a bounded queue refused."
)
_throttle_histogram = cached_histogram(
    METRIC_PRESSURE_THROTTLE, unit="s", description="Time producers waited, throttled."
)


def record_drop(queue: str, reason: str, priority: str) -> None:
    """Count one refused message; telemetry failures are logged, never raised."""
    try:
        _drops_counter().add(
            1,
            {
                ATTR_PRESSURE_QUEUE: queue,
                ATTR_PRESSURE_REASON: reason,
                ATTR_PRESSURE_PRIORITY: priority,
            },
        )
    except Exception:
        logger.debug("could not count a pressure drop", exc_info=True)


def record_throttle(queue: str, seconds: float) -> None:
    """Record one producer's throttle wait; telemetry failures are logged, never raised."""
    try:
        _throttle_histogram().record(seconds, {ATTR_PRESSURE_QUEUE: queue})
    except Exception:
        logger.debug("could not record a throttle wait", exc_info=True)


def _base_attributes(component: str, sample: SourcePressure) -> dict[str, str | int]:
    attributes: dict[str, str | int] = {
        ATTR_PRESSURE_COMPONENT: component,
        ATTR_PRESSURE_QUEUE: sample.name,
    }
    if sample.partition is not None:
        attributes[ATTR_PRESSURE_PARTITION] = sample.partition
    return attributes


def _record_sample(component: str, sample: SourcePressure) -> None:
    try:
        attributes = _base_attributes(component, sample)
        _depth_gauge().set(sample.depth, attributes)
        _capacity_gauge().set(sample.capacity, attributes)
    except Exception:
        logger.debug("could not record a pressure sample", exc_info=True)


def _record_transition(component: str, old: Level, sample: SourcePressure) -> None:
    try:
        attributes = _base_attributes(component, sample)
        _transitions_counter().add(1, {**attributes, ATTR_PRESSURE_NEW_LEVEL: sample.label})
        span = get_tracer().start_span(SPAN_PRESSURE_TRANSITION, kind=SpanKind.INTERNAL)
        try:
            if span.is_recording():
                span.set_attributes(
                    {
                        **attributes,
                        ATTR_PRESSURE_OLD_LEVEL: old.label,
                        ATTR_PRESSURE_NEW_LEVEL: sample.label,
                        ATTR_PRESSURE_DEPTH: sample.depth,
                        ATTR_PRESSURE_CAPACITY: sample.capacity,
                        ATTR_PRESSURE_RATIO: sample.ratio,
                    }
                )
        finally:
            span.end()
    except Exception:
        logger.debug("could not record a pressure transition", exc_info=True)


# -- the actor ---------------------------------------------------------------------


def _as_sources(sources: Mapping[str, Observable | str] | Iterable[Watched]) -> dict[str, Watched]:
    items: list[Watched]
    if isinstance(sources, Mapping):
        items = [Watched(name, target) for name, target in sources.items()]
    else:
        items = list(sources)
    watched: dict[str, Watched] = {}
    for item in items:
        if not isinstance(item, Watched):
            raise TypeError(
                f"expected Watched records or a name -> queue mapping, got {short(item)}"
            )
        if item.key in watched:
            raise ValueError(f"two watched queues are both named {item.key!r}")
        watched[item.key] = item
    return watched


def _ratio(depth: int, capacity: int) -> float:
    if capacity <= 0:  # no room at all: anything queued means full
        return 1.0 if depth > 0 else 0.0
    return depth / capacity


def _is_partition(part: object) -> bool:
    queue = getattr(part, "queue", None)
    return (
        isinstance(getattr(part, "partition", None), (int, str))
        and hasattr(queue, "queued")
        and hasattr(queue, "capacity")
    )


def _partitions(snapshot: Occupancy) -> tuple[PartitionOccupancy, ...] | None:
    """Return the snapshot's partitions if it is :class:`PartitionedOccupancy`-shaped, else ``None``."""
    parts = getattr(snapshot, "partitions", None)
    if not isinstance(parts, tuple) or not parts or not all(_is_partition(p) for p in parts):
        return None
    indexes = [p.partition for p in parts]
    if len(set(indexes)) != len(indexes):
        raise ValueError(f"partition indexes repeat: {indexes!r}")
    return parts


@attrs.frozen
class _Reading:
    """One occupancy read from a snapshot: a watched source's total, or one partition's."""

    key: str
    partition: str | int | None
    depth: int
    capacity: int


def _readings(watched: Watched, snapshot: Occupancy) -> list[_Reading]:
    parts = _partitions(snapshot)
    if parts is None:
        depth, capacity = int(snapshot.queued), int(snapshot.capacity)
        return [_Reading(watched.key, watched.partition, depth, capacity)]
    return [
        _Reading(
            f"{watched.key}[{part.partition}]",
            part.partition,
            int(part.queue.queued),
            int(part.queue.capacity),
        )
        for part in parts
    ]


class PressureMonitor(Actor):
    """Samples watched queues and reports each pressure level change once (PRS-5).

    Start it as a supervised child (give it a ``name`` so a restarted incarnation
    finds the levels its predecessor published)::

        ChildSpec(id="pressure", start=PressureMonitor, name="pressure",
                  args=({"ingest": "ingest"}, PressurePolicy(), 1.0, "gateway"))

    ``init(sources, policy=PressurePolicy(), interval=1.0, component="otpy")``:

    - *sources*: ``{name: queue}`` or an iterable of :class:`Watched`; a queue is
      anything with ``statistics().queued`` and ``.capacity``, or a registered actor
      name.
    - A partitioned source (its snapshot has a non-empty tuple ``partitions`` of items
      with ``.partition`` and ``.queue.queued``/``.capacity``, as
      :class:`~otpy.pressure.PartitionedQueue`'s has) gets one level per partition and no
      level for its total: partition *i* of source ``key`` is published as
      ``f"{key}[{i}]"``, with ``partition=i`` on its spans and gauges, so one hot
      partition gives one transition, for that partition only. A partition key that
      is also the key of another watched source is skipped (with a warning).
    - *interval*: seconds between samples (anyio's clock); it also samples at start
      and on every :class:`SamplePressure` (see :func:`notify_pressure`).
    - *component*: reported as ``otpy.pressure.component``.

    Messages: cast :class:`SamplePressure` to sample now; call it to sample and get
    :class:`PressureStatistics`; call :data:`GET_PRESSURE` for the statistics without
    sampling.
    """

    async def init(
        self,
        sources: Mapping[str, Observable | str] | Iterable[Watched],
        policy: PressurePolicy | None = None,
        interval: float = 1.0,
        component: str = "otpy",
    ) -> None:
        interval = number(interval, "interval", owner="pressure monitor", unit=" of seconds")
        check_name(component, "component", owner="pressure monitor")
        if policy is not None and not isinstance(policy, PressurePolicy):
            raise InvalidArgumentType(
                "policy",
                f"must be a PressurePolicy or None, got {short(policy)}",
                owner="pressure monitor",
            )
        self.sources = _as_sources(sources)
        self.policy = policy if policy is not None else PressurePolicy()
        self.interval = interval
        self.component = component
        self.samples = 0
        registry = _published.setdefault(self.node, {})
        self._published = published = registry.setdefault(self.ref.name or component, _Published())
        self._collisions: set[str] = set()
        for gone in set(published.owned) - set(self.sources):
            del published.owned[gone]
        kept = {k for key in self.sources for k in published.owned.get(key, (key,))}
        for stale in set(published.states) - kept:
            published.forget(stale)
        self._sample_all()
        self.send_after(interval, _TICK)

    # -- sampling --------------------------------------------------------------------

    def _sample_all(self) -> None:
        for key in self.sources:
            self._sample(key)
        self.samples += 1

    def _sample(self, key: str) -> None:
        watched = self.sources[key]
        try:
            target = watched.target
            if isinstance(target, str):
                found = self.node.whereis(target)
                if found is None:
                    return  # restarting, or not started yet: the next sample sees it
                target = found
            readings = _readings(watched, target.statistics())
        except Exception:
            logger.debug("could not sample queue %s", key, exc_info=True)
            return
        now = anyio.current_time()
        published = self._published
        keys: list[str] = []
        for reading in readings:
            if reading.key != key and reading.key in self.sources:
                self._collide(key, reading.key)
                continue
            self._publish(watched.name, reading, now)
            keys.append(reading.key)
        others = set(self.sources) - {key}  # never forget another source's level
        for gone in set(published.owned.get(key, (key,))) - set(keys) - others:
            published.forget(gone)  # the source changed shape: fewer partitions, or none
        published.owned[key] = tuple(keys)

    def _publish(self, name: str, reading: _Reading, now: float) -> None:
        ratio = _ratio(reading.depth, reading.capacity)
        published = self._published
        state = published.states.get(reading.key) or LevelState(Level.NORMAL, now)
        new = advance(self.policy, state, ratio, now)
        sample = SourcePressure(
            name=name,
            partition=reading.partition,
            level=new.level,
            ratio=ratio,
            depth=reading.depth,
            capacity=reading.capacity,
            since=new.since,
            sampled_at=now,
        )
        published.states[reading.key] = new
        published.sources[reading.key] = sample
        _record_sample(self.component, sample)
        if new is not state:
            published.transitions += 1
            _record_transition(self.component, state.level, sample)

    def _collide(self, key: str, partition_key: str) -> None:
        if partition_key not in self._collisions:
            self._collisions.add(partition_key)
            logger.warning(
                "pressure monitor %s: partition %r of source %r has the key of another "
                "watched source; it is not levelled: rename one of them",
                self.ref.label,
                partition_key,
                key,
            )

    def _owner(self, source: str) -> str | None:
        """The watched key that samples *source*: itself, or its partition's source."""
        if source in self.sources:
            return source
        for key, keys in self._published.owned.items():
            if source in keys and key in self.sources:
                return key
        return None

    # -- messages --------------------------------------------------------------------

    def statistics(self) -> PressureStatistics:
        """Return a frozen snapshot of the last samples and the transition count."""
        return PressureStatistics(
            component=self.component,
            sources=types.MappingProxyType(dict(self._published.sources)),
            transitions=self._published.transitions,
            samples=self.samples,
        )

    def _handle_sample(self, message: SamplePressure) -> None:
        if message.source is None:
            self._sample_all()
            return
        key = self._owner(message.source)
        if key is not None:
            self._sample(key)
            self.samples += 1
        else:
            logger.debug("pressure monitor %s: no source %r", self.ref.label, message.source)

    async def handle_cast(self, message: Any) -> None:
        if isinstance(message, SamplePressure):
            self._handle_sample(message)
            return
        if message is _COALESCED:
            asked = _pending.pop(self.ref, set())
            if None in asked:
                self._sample_all()
            else:  # a source and its partitions' keys are one sample
                for source in sorted({self._owner(s) or s for s in asked if s is not None}):
                    self._handle_sample(SamplePressure(source))
            return
        await super().handle_cast(message)

    async def handle_call(self, message: Any, caller: Caller) -> Any:
        if message is GET_PRESSURE:
            return self.statistics()
        if isinstance(message, SamplePressure):
            self._handle_sample(message)
            return self.statistics()
        return await super().handle_call(message, caller)

    async def handle_info(self, message: Any) -> None:
        if message is _TICK:
            self._sample_all()
            self.send_after(self.interval, _TICK)
            return
        await super().handle_info(message)
