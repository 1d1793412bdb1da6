"""The pressure monitor under virtual time: levels, one transition per change, restarts (PRS-4..PRS-5)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, cast

import anyio
import attrs
import pytest
from opentelemetry.trace import SpanKind

import otpy
import otpy.pressure
from otpy import ChildSpec, MailboxConfig
from otpy.pressure import Level, PressurePolicy, Threshold, _monitor
from otpy.pressure._monitor import (
    GET_PRESSURE,
    PressureMonitor,
    PressureStatistics,
    SamplePressure,
    Watched,
    notify_pressure,
    pressure_statistics,
)
from otpy.telemetry import (
    ATTR_PRESSURE_CAPACITY,
    ATTR_PRESSURE_COMPONENT,
    ATTR_PRESSURE_DEPTH,
    ATTR_PRESSURE_NEW_LEVEL,
    ATTR_PRESSURE_OLD_LEVEL,
    ATTR_PRESSURE_PARTITION,
    ATTR_PRESSURE_QUEUE,
    ATTR_PRESSURE_RATIO,
    METRIC_PRESSURE_CAPACITY,
    METRIC_PRESSURE_DEPTH,
    METRIC_PRESSURE_TRANSITIONS,
    SPAN_PRESSURE_TRANSITION,
)
from otpy.testing import capture_metrics, capture_spans, inject_crash, virtual_time

if TYPE_CHECKING:
    from collections.abc import Iterable

    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

pytestmark = pytest.mark.parametrize("anyio_backend", [virtual_time()])

HOUR = 3600.0  # an interval long enough that only explicit samples happen


@attrs.frozen
class Snapshot:
    queued: int
    capacity: int


@attrs.define
class FakeQueue:
    """A queue whose depth the test sets; statistics() returns a frozen snapshot."""

    queued: int = 0
    capacity: int = 100

    def statistics(self) -> Snapshot:
        return Snapshot(self.queued, self.capacity)


class BrokenQueue:
    """A source whose statistics() raises."""

    def statistics(self) -> Snapshot:
        raise RuntimeError("statistics unavailable")


def transitions(exporter: InMemorySpanExporter) -> list[ReadableSpan]:
    return [s for s in exporter.get_finished_spans() if s.name == SPAN_PRESSURE_TRANSITION]


def moves(exporter: InMemorySpanExporter) -> list[tuple[object, object]]:
    return [
        (
            (s.attributes or {})[ATTR_PRESSURE_OLD_LEVEL],
            (s.attributes or {})[ATTR_PRESSURE_NEW_LEVEL],
        )
        for s in transitions(exporter)
    ]


async def drive(ref: otpy.ActorRef, queue: FakeQueue, depths: Iterable[int]) -> None:
    """Set each depth in turn and have the monitor sample it."""
    for depth in depths:
        queue.queued = depth
        await ref.call(SamplePressure())


# -- levels --------------------------------------------------------------------------


async def test_prs_4_levels_follow_the_occupancy_of_each_source() -> None:
    """PRS-4: each source's level, ratio, depth and capacity come from its own snapshot."""
    queues = {name: FakeQueue(depth) for name, depth in zip("abcd", (50, 72, 90, 97), strict=True)}
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, queues, None, HOUR, "gateway")
        stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert stats.component == "gateway"
    assert {k: s.label for k, s in stats.sources.items()} == {
        "a": "normal",
        "b": "warn",
        "c": "degraded",
        "d": "shed",
    }
    b = stats.sources["b"]
    assert (b.name, b.partition, b.depth, b.capacity, b.ratio) == ("b", None, 72, 100, 0.72)
    assert stats.level("d") is Level.SHED
    assert stats.level("never-sampled") is Level.NORMAL


async def test_prs_4_zero_capacity_is_normal_when_empty_and_shed_when_not() -> None:
    """PRS-4: a capacity of 0 never divides by zero: empty is normal, anything queued is full."""
    empty, holding = FakeQueue(0, 0), FakeQueue(1, 0)
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, {"empty": empty, "holding": holding}, None, HOUR)
        stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert (stats.sources["empty"].ratio, stats.sources["empty"].level) == (0.0, Level.NORMAL)
    assert (stats.sources["holding"].ratio, stats.sources["holding"].level) == (1.0, Level.SHED)


async def test_bad_arguments_fail_the_start_with_a_clear_error() -> None:
    """A non-positive interval or two sources with one name fail the start; twin: valid starts."""
    with pytest.raises(otpy.InvalidArgument, match=r"^Watched: name must not be empty"):
        Watched("", FakeQueue())
    async with otpy.open_node() as node:
        with pytest.raises(otpy.SpawnError) as bad_interval:
            await node.spawn(PressureMonitor, {"q": FakeQueue()}, None, 0.0)
        assert "interval must be" in str(bad_interval.value.reason)
        twice = [Watched("q", FakeQueue()), Watched("q", FakeQueue())]
        with pytest.raises(otpy.SpawnError) as duplicate:
            await node.spawn(PressureMonitor, twice, None, HOUR)
        assert "both named 'q'" in str(duplicate.value.reason)
        partitions = [Watched("q", FakeQueue(), 0), Watched("q", FakeQueue(), 1)]
        ref = await node.spawn(PressureMonitor, partitions, None, HOUR)
        stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert sorted(stats.sources) == ["q[0]", "q[1]"]


async def test_a_source_whose_statistics_fail_is_skipped_not_fatal() -> None:
    """A failing statistics() skips that source; the others are still sampled."""
    good = FakeQueue(90)
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, {"broken": BrokenQueue(), "good": good}, None, HOUR)
        stats: PressureStatistics = await ref.call(SamplePressure())
        assert ref.is_alive
    assert list(stats.sources) == ["good"]
    assert stats.sources["good"].level is Level.DEGRADED


# -- transitions -----------------------------------------------------------------------


async def test_prs_5_oscillating_around_a_threshold_gives_one_transition_with_hysteresis() -> None:
    """PRS-5: occupancy crossing warn's enter ratio back and forth gives exactly one transition."""
    queue = FakeQueue(0)
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, {"q": queue}, PressurePolicy(), HOUR)
            await drive(ref, queue, [69, 71, 65, 71, 65, 71, 69, 61])
            stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert moves(exporter) == [("normal", "warn")]
    assert stats.transitions == 1
    assert stats.sources["q"].level is Level.WARN


async def test_prs_5_twin_without_hysteresis_every_crossing_is_a_transition() -> None:
    """PRS-5 twin: with exit == enter each crossing is a change, and each gives one transition."""
    queue = FakeQueue(0)
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            policy = PressurePolicy.without_hysteresis()
            ref = await node.spawn(PressureMonitor, {"q": queue}, policy, HOUR)
            await drive(ref, queue, [69, 71, 65, 71, 65, 71, 71, 71])
            stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert moves(exporter) == [("normal", "warn"), ("warn", "normal")] * 2 + [("normal", "warn")]
    assert stats.transitions == 5


async def test_prs_5_repeated_samples_at_the_same_level_emit_nothing() -> None:
    """PRS-5: sampling the same level again and again emits no transition; twin: a jump emits one."""
    queue = FakeQueue(80)
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, {"q": queue}, None, HOUR)
            await drive(ref, queue, [80, 81, 79, 80])
            assert moves(exporter) == [("normal", "warn")]
            await drive(ref, queue, [99, 99])
    assert moves(exporter) == [("normal", "warn"), ("warn", "shed")]


async def test_prs_5_min_dwell_holds_the_level_before_stepping_down() -> None:
    """PRS-5: with min_dwell a drop is reported only after the level has lasted that long."""
    queue = FakeQueue(90)
    policy = PressurePolicy(min_dwell=5.0)
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, {"q": queue}, policy, HOUR)
            await drive(ref, queue, [10])
            assert moves(exporter) == [("normal", "degraded")]
            await anyio.sleep(5.0)
            await drive(ref, queue, [10])
    assert moves(exporter) == [("normal", "degraded"), ("degraded", "normal")]


async def test_prs_5_transition_span_carries_component_partition_levels_depth_capacity_ratio() -> (
    None
):
    """PRS-5: the span has component, queue, partition, old/new level, depth, capacity, ratio."""
    queue = FakeQueue(0, 200)
    plain = FakeQueue(0, 10)
    sources = [Watched("outbound", queue, partition=3), Watched("inbound", plain)]
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, sources, None, HOUR, "gateway")
            queue.queued, plain.queued = 174, 10
            await ref.call(SamplePressure())
    by_queue = {(s.attributes or {})[ATTR_PRESSURE_QUEUE]: s for s in transitions(exporter)}
    span = by_queue["outbound"]
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        ATTR_PRESSURE_COMPONENT: "gateway",
        ATTR_PRESSURE_QUEUE: "outbound",
        ATTR_PRESSURE_PARTITION: 3,
        ATTR_PRESSURE_OLD_LEVEL: "normal",
        ATTR_PRESSURE_NEW_LEVEL: "degraded",
        ATTR_PRESSURE_DEPTH: 174,
        ATTR_PRESSURE_CAPACITY: 200,
        ATTR_PRESSURE_RATIO: 0.87,
    }
    assert ATTR_PRESSURE_PARTITION not in (by_queue["inbound"].attributes or {})
    assert (by_queue["inbound"].attributes or {})[ATTR_PRESSURE_NEW_LEVEL] == "shed"


def _points(reader: InMemoryMetricReader) -> dict[str, dict[tuple[Any, ...], Any]]:
    """Read once (each read is a delta) and return {metric: {sorted attributes: value}}."""
    points: dict[str, dict[tuple[Any, ...], Any]] = {}
    data = reader.get_metrics_data()
    assert data is not None
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                for point in metric.data.data_points:
                    key = tuple(sorted((point.attributes or {}).items()))
                    points.setdefault(metric.name, {})[key] = cast("Any", point).value
    return points


async def test_prs_5_metrics_gauge_depth_and_capacity_and_count_transitions_by_level() -> None:
    """PRS-5: depth/capacity gauges per queue at each sample; transitions counted by new level."""
    queue = FakeQueue(10, 50)
    with capture_metrics() as reader:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, {"q": queue}, None, HOUR, "gw")
            await drive(ref, queue, [40, 48])
            points = _points(reader)
    # The meter provider is process-wide: other tests' gauges are there too; keep ours.
    ours = (ATTR_PRESSURE_COMPONENT, "gw")
    depth, capacity, counted = (
        {k: v for k, v in points[metric].items() if ours in k}
        for metric in (METRIC_PRESSURE_DEPTH, METRIC_PRESSURE_CAPACITY, METRIC_PRESSURE_TRANSITIONS)
    )
    labels = ((ATTR_PRESSURE_COMPONENT, "gw"), (ATTR_PRESSURE_QUEUE, "q"))
    assert (depth, capacity) == ({labels: 48}, {labels: 50})  # the last sample's values
    assert counted == {  # 40/50 is warn, 48/50 is shed: degraded was skipped
        tuple(sorted((*labels, (ATTR_PRESSURE_NEW_LEVEL, "warn")))): 1,
        tuple(sorted((*labels, (ATTR_PRESSURE_NEW_LEVEL, "shed")))): 1,
    }


async def test_telemetry_failure_never_crashes_the_monitor(monkeypatch: pytest.MonkeyPatch) -> None:
    """A tracer that raises loses the span, not the monitor: levels still change and count."""

    def broken() -> Any:
        raise RuntimeError("exporter exploded")

    monkeypatch.setattr(_monitor, "get_tracer", broken)
    queue = FakeQueue(0)
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, {"q": queue}, None, HOUR)
        await drive(ref, queue, [99])
        stats: PressureStatistics = await ref.call(GET_PRESSURE)
        assert ref.is_alive
    assert (stats.sources["q"].level, stats.transitions) == (Level.SHED, 1)


# -- when it samples -------------------------------------------------------------------


async def test_samples_every_interval_on_anyio_time() -> None:
    """It samples at start and then every interval; a change waits for the next tick."""
    queue = FakeQueue(0)
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            start = anyio.current_time()
            ref = await node.spawn(PressureMonitor, {"q": queue}, None, 1.0)
            queue.queued = 90
            await anyio.sleep(0.5)
            before: PressureStatistics = await ref.call(GET_PRESSURE)
            await anyio.sleep(3.0)  # ticks at 1, 2 and 3 s
            after: PressureStatistics = await ref.call(GET_PRESSURE)
    assert (before.sources["q"].level, before.samples) == (Level.NORMAL, 1)
    assert (after.sources["q"].level, after.samples) == (Level.DEGRADED, 4)
    assert after.sources["q"].since == pytest.approx(start + 1.0)
    assert moves(exporter) == [("normal", "degraded")]


async def test_notify_samples_at_once_without_waiting_for_the_interval() -> None:
    """notify_pressure() makes the monitor sample now; twin: an unknown source name is ignored."""
    queue, other = FakeQueue(0), FakeQueue(0)
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, {"q": queue, "other": other}, None, HOUR)
        start = anyio.current_time()
        queue.queued, other.queued = 96, 96
        notify_pressure(ref, "q")
        await anyio.wait_all_tasks_blocked()
        stats: PressureStatistics = await ref.call(GET_PRESSURE)
        assert anyio.current_time() == start
        assert stats.sources["q"].level is Level.SHED
        assert stats.sources["other"].level is Level.NORMAL  # only "q" was sampled
        notify_pressure(ref, "nope")
        notify_pressure(otpy.named("no-such-monitor"))
        await anyio.wait_all_tasks_blocked()
        assert ref.is_alive
        notify_pressure(ref)
        assert (await ref.call(GET_PRESSURE)).sources["other"].level is Level.SHED


async def test_a_burst_of_notifications_is_one_sample_of_what_was_asked() -> None:
    """1,000 notifications before the monitor runs become one sample, of exactly those sources."""
    queues = {name: FakeQueue(96) for name in ("a", "b", "c")}
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, queues, None, HOUR)
        before: PressureStatistics = await ref.call(GET_PRESSURE)
        for q in queues.values():
            q.queued = 0
        for i in range(1000):
            notify_pressure(ref, "a" if i % 2 else "b")
        await anyio.wait_all_tasks_blocked()
        after: PressureStatistics = await ref.call(GET_PRESSURE)
    assert after.samples - before.samples == 2  # one sample each of "a" and "b"
    assert [after.level(k) for k in "abc"] == [Level.NORMAL, Level.NORMAL, Level.SHED]


async def test_notify_never_raises_when_the_monitor_mailbox_is_full() -> None:
    """notify_pressure() drops the hint on a full mailbox instead of raising or waiting."""

    class Tiny(PressureMonitor):
        mailbox = MailboxConfig(capacity=1, overflow=otpy.Overflow.REJECT)

    async with otpy.open_node() as node:
        ref = await node.spawn(Tiny, {"q": FakeQueue()}, None, HOUR)
        for _ in range(5):
            notify_pressure(ref)  # the monitor has not run yet: one fits, four are dropped
        await anyio.wait_all_tasks_blocked()
        assert ref.is_alive


# -- crash and restart -----------------------------------------------------------------


class Gated(otpy.Actor):
    """A worker whose casts wait for a gate, so its mailbox fills while it is closed."""

    mailbox = MailboxConfig(capacity=10)

    async def init(self, gate: anyio.Event) -> None:
        self.gate = gate

    async def handle_cast(self, message: Any) -> None:
        await self.gate.wait()


async def test_prs_5_monitor_restart_is_silent_and_the_watched_mailbox_keeps_draining() -> None:
    """PRS-5: a crashed monitor restarts; the watched mailbox drains meanwhile; nothing repeats."""
    gate = anyio.Event()
    children = [
        ChildSpec(id="worker", start=Gated, args=(gate,), name="worker"),
        ChildSpec(
            id="pressure",
            start=PressureMonitor,
            args=([Watched("worker", "worker")], None, HOUR, "app"),
            name="pressure",
        ),
    ]
    with capture_spans() as exporter:
        async with otpy.open_supervisor(children) as sup:
            worker = sup.child("worker")
            assert worker is not None
            for n in range(9):  # one being handled, eight queued: 0.8 is warn
                await worker.cast(n)
            await anyio.wait_all_tasks_blocked()
            await otpy.named("pressure").call(SamplePressure())
            assert moves(exporter) == [("normal", "warn")]
            first: PressureStatistics = await otpy.named("pressure").call(GET_PRESSURE)

            old = sup.child("pressure")
            assert old is not None
            inject_crash(old)
            new = await sup.wait_child("pressure", other_than=old)
            again: PressureStatistics = await new.call(SamplePressure())
            assert moves(exporter) == [("normal", "warn")]  # no spurious transition
            assert again.sources["worker"].since == first.sources["worker"].since
            assert again.transitions == 1

            gate.set()
            await anyio.wait_all_tasks_blocked()
            assert (worker.statistics().queued, worker.statistics().processed) == (0, 9)
            notify_pressure(otpy.named("pressure"), "worker")
            await anyio.wait_all_tasks_blocked()
            stats: PressureStatistics = await new.call(GET_PRESSURE)
    assert moves(exporter) == [("normal", "warn"), ("warn", "normal")]
    assert (stats.sources["worker"].depth, stats.transitions) == (0, 2)


async def test_prs_5_a_change_while_the_monitor_was_down_is_reported_once_after_restart() -> None:
    """PRS-5: a level that changed while the monitor was down is reported once, from the old level."""
    queue = FakeQueue(80)
    spec = ChildSpec(id="pressure", start=PressureMonitor, args=({"q": queue}, None, HOUR))
    with capture_spans() as exporter:
        async with otpy.open_supervisor([spec]) as sup:
            old = sup.child("pressure")
            assert old is not None
            queue.queued = 0  # the drain happens before the crash is handled
            inject_crash(old)
            new = await sup.wait_child("pressure", other_than=old)
            await new.call(SamplePressure())
            await new.call(SamplePressure())
    assert moves(exporter) == [("normal", "warn"), ("warn", "normal")]


async def test_prs_5_restart_keeps_hysteresis_from_the_published_level() -> None:
    """PRS-5: between exit and enter ratios a restarted monitor keeps the published level."""
    queue = FakeQueue(90)
    spec = ChildSpec(
        id="pressure", start=PressureMonitor, args=({"q": queue}, None, HOUR), name="p"
    )
    with capture_spans() as exporter:
        async with otpy.open_supervisor([spec]) as sup:
            queue.queued = 80  # below degraded's enter (0.85), above its exit (0.75)
            old = sup.child("pressure")
            assert old is not None
            inject_crash(old)
            new = await sup.wait_child("pressure", other_than=old)
            stats: PressureStatistics = await new.call(SamplePressure())
    assert stats.sources["q"].level is Level.DEGRADED
    assert moves(exporter) == [("normal", "degraded")]


# -- statistics ------------------------------------------------------------------------


async def test_statistics_by_call_and_by_synchronous_lookup_agree() -> None:
    """GET_PRESSURE, SamplePressure calls and pressure_statistics(name) give the same levels."""
    queue = FakeQueue(0)
    policy = PressurePolicy(warn=Threshold(0.5, 0.4))
    async with otpy.open_node() as node:
        assert pressure_statistics("levels") is None
        ref = await node.spawn(PressureMonitor, {"q": queue}, policy, HOUR, name="levels")
        queue.queued = 55
        sampled: PressureStatistics = await ref.call(SamplePressure())
        got: PressureStatistics = await ref.call(GET_PRESSURE)
        synchronous = pressure_statistics("levels")
        assert synchronous == pressure_statistics("levels", node=node)
    assert synchronous is not None
    assert sampled == got
    assert (got.sources["q"].label, got.transitions, got.samples) == ("warn", 1, 2)
    assert dict(synchronous.sources) == dict(got.sources)
    assert synchronous.transitions == 1
    with pytest.raises(TypeError):
        got.sources["x"] = got.sources["q"]  # type: ignore[index]
    with pytest.raises(attrs.exceptions.FrozenInstanceError):
        got.transitions = 0  # type: ignore[misc]


async def test_prs_5_watches_a_bounded_queue_through_its_statistics() -> None:
    """PRS-5: a BoundedQueue's snapshot is read like a mailbox's; filling it is reported once."""
    queue: otpy.pressure.BoundedQueue[int] = otpy.pressure.BoundedQueue(10, name="jobs")
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, {"jobs": queue}, None, HOUR)
            for n in range(9):
                queue.put_nowait(n)
                notify_pressure(ref, "jobs")
            await anyio.wait_all_tasks_blocked()
            stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert (stats.sources["jobs"].depth, stats.sources["jobs"].label) == (9, "degraded")
    assert moves(exporter) == [("normal", "degraded")]  # the samples run after the puts


# -- partitioned sources ---------------------------------------------------------------


@attrs.frozen
class PartSnapshot:
    """The shape of ``PartitionStatistics``: an index and the partition's own snapshot."""

    partition: int
    queue: Snapshot


@attrs.frozen
class PartitionedSnapshot:
    """The shape of ``PartitionedQueueStatistics``: partitions, plus totals."""

    partitions: tuple[PartSnapshot, ...]

    @property
    def queued(self) -> int:
        return sum(p.queue.queued for p in self.partitions)

    @property
    def capacity(self) -> int:
        return sum(p.queue.capacity for p in self.partitions)


@attrs.define
class FakePartitioned:
    """A partitioned queue whose per-partition depths the test sets (capacity 100 each)."""

    depths: list[int]
    capacity: int = 100

    def statistics(self) -> PartitionedSnapshot:
        return PartitionedSnapshot(
            tuple(PartSnapshot(i, Snapshot(d, self.capacity)) for i, d in enumerate(self.depths))
        )


@attrs.frozen
class OddSnapshot:
    """Totals plus a ``partitions`` attribute that is not a tuple of partitions."""

    queued: int
    capacity: int
    partitions: object


@attrs.define
class OddQueue:
    """A source whose snapshot's ``partitions`` the test sets to anything."""

    partitions: object
    queued: int = 96

    def statistics(self) -> OddSnapshot:
        return OddSnapshot(self.queued, 100, self.partitions)


def partition_moves(exporter: InMemorySpanExporter) -> list[tuple[object, ...]]:
    """(queue, partition or None, old, new) of each transition span, in order."""
    return [
        (
            attributes[ATTR_PRESSURE_QUEUE],
            attributes.get(ATTR_PRESSURE_PARTITION),
            attributes[ATTR_PRESSURE_OLD_LEVEL],
            attributes[ATTR_PRESSURE_NEW_LEVEL],
        )
        for attributes in (dict(s.attributes or {}) for s in transitions(exporter))
    ]


def key_in_another_partition(queue: otpy.pressure.PartitionedQueue[int], *taken: int) -> str:
    """A key that the queue routes to a partition not in *taken*."""
    return next(k for k in (f"key-{n}" for n in range(1000)) if queue.partition_of(k) not in taken)


async def drive_calls(ref: otpy.ActorRef, times: int) -> None:
    """Have the monitor sample every source *times* times."""
    for _ in range(times):
        await ref.call(SamplePressure())


async def test_prs_5_partitioned_source_reports_each_partition_level_once() -> None:
    """PRS-5: one hot partition of a PartitionedQueue gives one transition, for it only."""
    queue: otpy.pressure.PartitionedQueue[int] = otpy.pressure.PartitionedQueue(4, 10, name="jobs")
    hot = queue.partition_of("tenant-a")
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, {"jobs": queue}, None, HOUR, "gateway")
            for n in range(9):  # 9/10: degraded; the hints coalesce into few samples
                queue.put_nowait("tenant-a", n)
                notify_pressure(ref, "jobs")
            await anyio.wait_all_tasks_blocked()
            await drive_calls(ref, 3)  # more samples at the same levels: nothing new
            stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert sorted(stats.sources) == [f"jobs[{i}]" for i in range(4)]  # no total "jobs"
    assert [stats.level(f"jobs[{i}]") for i in range(4)] == [
        Level.DEGRADED if i == hot else Level.NORMAL for i in range(4)
    ]
    sample = stats.sources[f"jobs[{hot}]"]
    assert (sample.name, sample.partition, sample.depth, sample.capacity) == ("jobs", hot, 9, 10)
    (span,) = transitions(exporter)
    assert dict(span.attributes or {}) == {
        ATTR_PRESSURE_COMPONENT: "gateway",
        ATTR_PRESSURE_QUEUE: "jobs",
        ATTR_PRESSURE_PARTITION: hot,
        ATTR_PRESSURE_OLD_LEVEL: "normal",
        ATTR_PRESSURE_NEW_LEVEL: "degraded",
        ATTR_PRESSURE_DEPTH: 9,
        ATTR_PRESSURE_CAPACITY: 10,
        ATTR_PRESSURE_RATIO: 0.9,
    }
    assert stats.transitions == 1


async def drive_partitions(
    ref: otpy.ActorRef, queue: FakePartitioned, rows: Iterable[list[int]]
) -> None:
    """Set each row of per-partition depths in turn and have the monitor sample it."""
    for row in rows:
        queue.depths = row
        await ref.call(SamplePressure())


OSCILLATING: Final = [[69, 0, 0], [71, 96, 0], [65, 96, 0], [71, 96, 0], [65, 0, 0], [71, 0, 0]]
"""Partition 0 crosses warn's enter ratio back and forth; 1 goes to shed and back; 2 idles."""


async def test_prs_5_hysteresis_holds_for_each_partition_on_its_own() -> None:
    """PRS-5: each partition has its own hysteresis: 0 oscillates once into warn, 1 once each way."""
    queue = FakePartitioned([0, 0, 0])
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, {"q": queue}, PressurePolicy(), HOUR)
            await drive_partitions(ref, queue, OSCILLATING)
            stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert partition_moves(exporter) == [
        ("q", 0, "normal", "warn"),
        ("q", 1, "normal", "shed"),
        ("q", 1, "shed", "normal"),
    ]
    assert [stats.level(f"q[{i}]") for i in range(3)] == [Level.WARN, Level.NORMAL, Level.NORMAL]
    assert stats.transitions == 3


async def test_prs_5_twin_without_hysteresis_each_partition_crossing_is_a_transition() -> None:
    """PRS-5 twin: with exit == enter partition 0's every crossing counts; 1 and 2 are unchanged."""
    queue = FakePartitioned([0, 0, 0])
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            policy = PressurePolicy.without_hysteresis()
            ref = await node.spawn(PressureMonitor, {"q": queue}, policy, HOUR)
            await drive_partitions(ref, queue, OSCILLATING)
    zero = [m for m in partition_moves(exporter) if m[1] == 0]
    assert zero == [("q", 0, "normal", "warn"), ("q", 0, "warn", "normal")] * 2 + [
        ("q", 0, "normal", "warn")
    ]
    assert [m for m in partition_moves(exporter) if m[1] != 0] == [
        ("q", 1, "normal", "shed"),
        ("q", 1, "shed", "normal"),
    ]


async def test_prs_5_restarted_monitor_gives_no_spurious_transition_for_partitions() -> None:
    """PRS-5: after a restart unchanged partitions stay silent; one that changed meanwhile, once."""
    queue: otpy.pressure.PartitionedQueue[int] = otpy.pressure.PartitionedQueue(4, 10, name="jobs")
    hot_key = "tenant-a"
    hot = queue.partition_of(hot_key)
    later_key = key_in_another_partition(queue, hot)
    later = queue.partition_of(later_key)
    spec = ChildSpec(
        id="pressure",
        start=PressureMonitor,
        args=({"jobs": queue}, None, HOUR, "app"),
        name="pressure",
    )
    with capture_spans() as exporter:
        async with otpy.open_supervisor([spec]) as sup:
            for n in range(8):  # 8/10: warn
                queue.put_nowait(hot_key, n)
            first: PressureStatistics = await otpy.named("pressure").call(SamplePressure())
            assert partition_moves(exporter) == [("jobs", hot, "normal", "warn")]

            old = sup.child("pressure")
            assert old is not None
            inject_crash(old)
            new = await sup.wait_child("pressure", other_than=old)
            again: PressureStatistics = await new.call(SamplePressure())
            assert partition_moves(exporter) == [("jobs", hot, "normal", "warn")]
            assert again.sources[f"jobs[{hot}]"].since == first.sources[f"jobs[{hot}]"].since
            assert sorted(again.sources) == sorted(first.sources)

            for n in range(9):  # another partition fills while the monitor is down
                queue.put_nowait(later_key, n)
            inject_crash(new)
            newest = await sup.wait_child("pressure", other_than=new)
            await newest.call(SamplePressure())
            stats: PressureStatistics = await newest.call(SamplePressure())
    assert partition_moves(exporter) == [
        ("jobs", hot, "normal", "warn"),
        ("jobs", later, "normal", "degraded"),
    ]
    assert stats.transitions == 2


async def test_prs_5_restart_keeps_the_partitions_of_a_source_still_watched() -> None:
    """PRS-5: a new incarnation keeps a still-watched source's partition levels, drops the rest."""
    kept, dropped = FakePartitioned([80, 0]), FakePartitioned([90])
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            sources = {"kept": kept, "dropped": dropped}
            ref = await node.spawn(PressureMonitor, sources, None, HOUR, name="m")
            await ref.stop()
            kept.depths = [72, 0]  # below warn's enter, above its exit: warn holds
            ref = await node.spawn(PressureMonitor, {"kept": kept}, None, HOUR, name="m")
            stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert sorted(stats.sources) == ["kept[0]", "kept[1]"]
    assert stats.level("kept[0]") is Level.WARN
    assert partition_moves(exporter) == [  # from the first incarnation only
        ("kept", 0, "normal", "warn"),
        ("dropped", 0, "normal", "degraded"),
    ]


async def test_prs_5_a_hint_for_the_source_or_one_partition_samples_all_its_partitions() -> None:
    """PRS-5: notify_pressure("q") or SamplePressure("q[1]") resample every partition of q, once."""
    queue, other = FakePartitioned([0, 0]), FakeQueue(0)
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, {"q": queue, "other": other}, None, HOUR)
        queue.depths, other.queued = [96, 80], 96
        notify_pressure(ref, "q")
        await anyio.wait_all_tasks_blocked()
        hinted: PressureStatistics = await ref.call(GET_PRESSURE)
        assert [hinted.level(k) for k in ("q[0]", "q[1]", "other")] == [
            Level.SHED,
            Level.WARN,
            Level.NORMAL,  # only "q" was sampled
        ]
        queue.depths = [0, 0]
        by_partition: PressureStatistics = await ref.call(SamplePressure("q[1]"))
        assert [by_partition.level(k) for k in ("q[0]", "q[1]")] == [Level.NORMAL, Level.NORMAL]
        assert by_partition.samples == hinted.samples + 1

        queue.depths = [96, 96]
        for source in ("q", "q[0]", "q[1]", "q[1]"):  # one source, asked four ways
            notify_pressure(ref, source)
        await anyio.wait_all_tasks_blocked()
        burst: PressureStatistics = await ref.call(GET_PRESSURE)
    assert burst.samples == by_partition.samples + 1
    assert [burst.level(k) for k in ("q[0]", "q[1]")] == [Level.SHED, Level.SHED]
    assert burst.level("other") is Level.NORMAL


async def test_prs_5_gauges_carry_the_partition_of_a_partitioned_source() -> None:
    """PRS-5: depth and capacity gauges and the transition counter are recorded per partition."""
    queue = FakePartitioned([10, 90], capacity=100)
    with capture_metrics() as reader:
        async with otpy.open_node() as node:
            await node.spawn(PressureMonitor, {"pq": queue}, None, HOUR, "gw-partitions")
            points = _points(reader)
    ours = (ATTR_PRESSURE_COMPONENT, "gw-partitions")
    depth, capacity, counted = (
        {k: v for k, v in points[metric].items() if ours in k}
        for metric in (METRIC_PRESSURE_DEPTH, METRIC_PRESSURE_CAPACITY, METRIC_PRESSURE_TRANSITIONS)
    )

    def labels(partition: int, *more: tuple[str, str]) -> tuple[tuple[str, Any], ...]:
        """The sorted attributes of partition *partition* of "pq", plus *more*."""
        return tuple(
            sorted((ours, (ATTR_PRESSURE_QUEUE, "pq"), (ATTR_PRESSURE_PARTITION, partition), *more))
        )

    assert depth == {labels(0): 10, labels(1): 90}
    assert capacity == {labels(0): 100, labels(1): 100}
    assert counted == {labels(1, (ATTR_PRESSURE_NEW_LEVEL, "degraded")): 1}


async def test_prs_5_partition_keys_follow_the_shape_of_the_snapshot() -> None:
    """PRS-5: fewer partitions drop their keys; with no partitions left the total is levelled."""
    queue = FakePartitioned([0, 0, 96])
    with capture_spans() as exporter:
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, {"q": queue}, None, HOUR)
            queue.depths = [96, 0]
            two: PressureStatistics = await ref.call(SamplePressure())
            queue.depths = []
            none: PressureStatistics = await ref.call(SamplePressure())
    assert sorted(two.sources) == ["q[0]", "q[1]"]
    assert (list(none.sources), none.sources["q"].partition) == (["q"], None)
    assert partition_moves(exporter) == [("q", 2, "normal", "shed"), ("q", 0, "normal", "shed")]


@pytest.mark.parametrize(
    "partitions",
    [
        pytest.param((), id="empty"),
        pytest.param(4, id="a-count"),
        pytest.param(("a", "b"), id="not-partitions"),
        pytest.param([PartSnapshot(0, Snapshot(1, 2))], id="a-list"),
        pytest.param((PartSnapshot(0, Snapshot(1, 2)), "b"), id="one-not-a-partition"),
    ],
)
async def test_prs_5_a_snapshot_without_partitions_of_that_shape_is_levelled_by_its_total(
    partitions: object,
) -> None:
    """PRS-5 twin: a ``partitions`` that is not a non-empty tuple of partitions is ignored."""
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, {"q": OddQueue(partitions)}, None, HOUR)
        stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert list(stats.sources) == ["q"]
    assert (stats.sources["q"].partition, stats.level("q")) == (None, Level.SHED)


async def test_prs_5_repeated_partition_indexes_skip_the_source_not_the_monitor() -> None:
    """PRS-5: a snapshot listing one partition twice is not sampled; the other sources are."""
    twice = PartitionedSnapshot((PartSnapshot(0, Snapshot(96, 100)),) * 2)
    source = OddQueue(twice.partitions)
    async with otpy.open_node() as node:
        ref = await node.spawn(PressureMonitor, {"q": source, "ok": FakeQueue(96)}, None, HOUR)
        stats: PressureStatistics = await ref.call(SamplePressure())
        assert ref.is_alive
    assert list(stats.sources) == ["ok"]


async def test_prs_5_a_partition_key_taken_by_another_source_is_left_to_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """PRS-5: partition q[0] of a partitioned q never overwrites, nor drops, a source watched as q[0]."""
    by_hand = Watched("q", FakeQueue(96), partition=0)
    partitioned = Watched("q", FakePartitioned([0, 80]))
    with capture_spans() as exporter, caplog.at_level("WARNING", logger="otpy.pressure"):
        async with otpy.open_node() as node:
            ref = await node.spawn(PressureMonitor, [partitioned], None, HOUR, name="m")
            await ref.stop()  # it published q[0] and q[1]; now q[0] is also watched by hand
            ref = await node.spawn(PressureMonitor, [by_hand, partitioned], None, HOUR, name="m")
            await drive_calls(ref, 2)
            stats: PressureStatistics = await ref.call(GET_PRESSURE)
    assert sorted(stats.sources) == ["q[0]", "q[1]"]  # the by-hand q[0], the partitioned q[1]
    assert (stats.sources["q[0]"].depth, stats.sources["q[1]"].depth) == (96, 80)
    assert (stats.level("q[0]"), stats.level("q[1]")) == (Level.SHED, Level.WARN)
    assert partition_moves(exporter) == [
        ("q", 1, "normal", "warn"),  # the first incarnation
        ("q", 0, "normal", "shed"),  # the by-hand queue, once over three samples
    ]
    warnings = [r for r in caplog.records if "has the key of another" in r.getMessage()]
    assert len(warnings) == 1  # once per incarnation, not once per sample


async def test_prs_5_partitioned_queue_statistics_fit_the_monitors_protocol() -> None:
    """PRS-5: PartitionedQueueStatistics is a PartitionedOccupancy (mypy checks the assignment)."""
    queue: otpy.pressure.PartitionedQueue[int] = otpy.pressure.PartitionedQueue(2, 5, name="typed")
    queue.put_nowait("k", 1)
    snapshot: _monitor.PartitionedOccupancy = queue.statistics()
    assert [(p.partition, p.queue.queued, p.queue.capacity) for p in snapshot.partitions] == [
        (i, int(i == queue.partition_of("k")), 5) for i in range(2)
    ]
