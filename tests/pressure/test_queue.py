"""The bounded queue (PRS-5..PRS-8): bounded under any load, pressure on producers, every drop counted."""

from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import otpy
import otpy.pressure
from otpy import LoadShed, PressureError, QueueFull
from otpy.pressure import (
    BoundedQueue,
    Level,
    LevelState,
    PressurePolicy,
    Priority,
    QueueStatistics,
    Threshold,
    Verdict,
    admit,
    advance,
    level_for,
)
from otpy.pressure._queue import _regime
from otpy.testing import virtual_time

if TYPE_CHECKING:
    from collections.abc import Iterable

virtual = pytest.mark.parametrize("anyio_backend", [virtual_time()])

# With capacity 20 and the default thresholds: 14 queued is warn, 17 degraded, 19 shed.
CAPACITY = 20
DEGRADED_DEPTH = 17
SHED_DEPTH = 19


def filled(
    depth: int, *, policy: PressurePolicy | None = None, **options: object
) -> BoundedQueue[int]:
    """A queue of CAPACITY holding *depth* critical items 0..depth-1 (never throttled)."""
    queue: BoundedQueue[int] = BoundedQueue(
        CAPACITY,
        name="out",
        policy=policy or PressurePolicy(),
        **options,  # type: ignore[arg-type]
    )
    for n in range(depth):
        queue.put_nowait(n, priority=Priority.CRITICAL)
    return queue


def drain(queue: BoundedQueue[int], count: int) -> list[int]:
    """Take *count* items at once."""
    return [queue.get_nowait() for _ in range(count)]


def _mixed(n: int) -> Iterable[Priority]:
    priorities = list(Priority)
    return (priorities[i % len(priorities)] for i in range(n))


@virtual
@pytest.mark.no_cover  # a load test: 100,000 messages under line tracing took 18 s in CI
async def test_prs_8_sustained_overload_stays_bounded_and_accounts_for_every_message() -> None:
    """PRS-8: 10,000 mixed-priority messages at 10x the consumer's rate: depth <= capacity, all accounted, no critical shed."""
    sent = 10_000  # 100x the capacity: enough to cross every level many times
    capacity = 100
    rejected_by_callback: list[tuple[Priority, str]] = []
    queue: BoundedQueue[int] = BoundedQueue(
        capacity,
        name="overload",
        policy=PressurePolicy(defer={Priority.LOW}),
        on_reject=lambda _item, priority, reason: rejected_by_callback.append((priority, reason)),
    )
    outcome = {"processed": 0, "load_shed": 0, "queue_full": 0}
    shed_priorities: set[Priority] = set()

    async def offer(item: int, priority: Priority) -> None:
        try:
            await queue.put(item, priority=priority)
        except LoadShed as exc:
            outcome["load_shed"] += 1
            shed_priorities.add(exc.priority)  # type: ignore[arg-type]
        except QueueFull:
            outcome["queue_full"] += 1
        assert len(queue) <= capacity

    offers_done = False
    drained = anyio.Event()

    async def consumer() -> None:
        while True:
            await queue.get()
            assert len(queue) <= capacity
            await anyio.sleep(0.001)  # 1 ms per item: 1,000 a second
            outcome["processed"] += 1
            if offers_done and outcome["processed"] == queue.statistics().accepted:
                drained.set()

    async with anyio.create_task_group() as outer:
        outer.start_soon(consumer)
        async with anyio.create_task_group() as offers:
            # 10 offers every 1 ms (10,000 a second): the same rate as one every
            # 0.1 ms, with a tenth of the clock jumps.
            for item, priority in enumerate(_mixed(sent)):
                offers.start_soon(offer, item, priority)
                if item % 10 == 9:
                    await anyio.sleep(0.001)
        offers_done = True  # every offer is now accepted or refused
        if outcome["processed"] < queue.statistics().accepted:
            await drained.wait()
        outer.cancel_scope.cancel()

    stats = queue.statistics()
    assert outcome["processed"] + outcome["load_shed"] + outcome["queue_full"] == sent
    assert len(rejected_by_callback) == outcome["load_shed"] + outcome["queue_full"]
    assert stats.peak == capacity
    assert stats.accepted == stats.taken == outcome["processed"]
    assert sum(stats.rejected["load_shed"].values()) == outcome["load_shed"] > 0
    assert sum(stats.rejected["queue_full"].values()) == outcome["queue_full"] > 0
    assert shed_priorities == {Priority.LOW}
    assert set(stats.rejected["load_shed"]) == {"low"}
    assert (Priority.CRITICAL, "load_shed") not in rejected_by_callback
    assert stats.throttled > 0
    assert (stats.queued, stats.level) == (0, Level.NORMAL)


@virtual
async def test_prs_6_throttling_never_slows_the_consumer() -> None:
    """PRS-6: while producers are throttled, the consumer takes one item per its own 1 ms."""
    queue = filled(DEGRADED_DEPTH, policy=PressurePolicy(throttle=0.05))
    start = anyio.current_time()
    taken_at: list[float] = []
    async with anyio.create_task_group() as tg:
        for n in range(5):
            tg.start_soon(queue.put, 100 + n)
        await anyio.wait_all_tasks_blocked()
        assert queue.statistics().throttled == 5
        for _ in range(DEGRADED_DEPTH):
            await queue.get()
            taken_at.append(round(anyio.current_time() - start, 9))
            await anyio.sleep(0.001)
    assert taken_at == [round(0.001 * k, 9) for k in range(DEGRADED_DEPTH)]
    assert sorted(drain(queue, 5)) == [100, 101, 102, 103, 104]  # same deadline: any order
    stats = queue.statistics()
    assert (stats.throttled, round(stats.throttle_seconds, 9)) == (5, 0.25)


@virtual
async def test_prs_6_a_throttled_put_waits_the_throttle_once_then_queues() -> None:
    """PRS-6: at degraded a normal put waits policy.throttle exactly once, then is queued."""
    queue = filled(DEGRADED_DEPTH, policy=PressurePolicy(throttle=0.02))
    start = anyio.current_time()
    await queue.put(99)  # still degraded after the wait: not throttled a second time
    assert round(anyio.current_time() - start, 9) == 0.02
    assert len(queue) == DEGRADED_DEPTH + 1
    stats = queue.statistics()
    assert (stats.throttled, round(stats.throttle_seconds, 9)) == (1, 0.02)


@virtual
@pytest.mark.parametrize(
    ("depth", "priority"),
    [(DEGRADED_DEPTH, Priority.CRITICAL), (DEGRADED_DEPTH - 1, Priority.NORMAL)],
)
async def test_twin_critical_work_and_lower_levels_are_not_throttled(
    depth: int, priority: Priority
) -> None:
    """Twin: a critical put at degraded, or a normal put at warn, is queued without waiting."""
    queue = filled(depth, policy=PressurePolicy(throttle=0.02))
    start = anyio.current_time()
    await queue.put(99, priority=priority)
    assert anyio.current_time() == start
    assert queue.statistics().throttled == 0


@virtual
async def test_prs_6_a_deferred_priority_waits_until_the_level_drops() -> None:
    """PRS-6: a deferred low put at degraded waits until consumers bring the level below degraded."""
    queue = filled(DEGRADED_DEPTH, policy=PressurePolicy(defer={Priority.LOW}))
    done = anyio.Event()

    async def producer() -> None:
        await queue.put(99, priority=Priority.LOW)
        done.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(producer)
        await anyio.wait_all_tasks_blocked()
        assert queue.statistics().deferred == 1
        drain(queue, 2)  # 15/20 = 0.75: not below degraded's exit ratio yet
        await anyio.wait_all_tasks_blocked()
        assert not done.is_set()
        assert queue.level is Level.DEGRADED
        drain(queue, 1)  # 14/20 = 0.70: below 0.75, the level drops to warn
        await done.wait()
    assert len(queue) == 15
    assert list(queue.statistics().rejected) == []


@virtual
async def test_twin_a_priority_that_is_not_deferred_passes_at_degraded() -> None:
    """Twin: with low deferred, a normal put at degraded is queued at once (throttle off)."""
    queue = filled(DEGRADED_DEPTH, policy=PressurePolicy(defer={Priority.LOW}, throttle=0.0))
    start = anyio.current_time()
    await queue.put(99, priority=Priority.NORMAL)
    assert anyio.current_time() == start
    assert queue.statistics().deferred == 0


@virtual
async def test_prs_5_a_deferred_producer_wakes_when_the_dwell_time_ends() -> None:
    """PRS-5: with min_dwell, a deferred producer is admitted once the level may step down, with no other activity."""
    queue = filled(DEGRADED_DEPTH, policy=PressurePolicy(defer={Priority.LOW}, min_dwell=1.0))
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: queue.put(99, priority=Priority.LOW))
        await anyio.wait_all_tasks_blocked()
        drain(queue, DEGRADED_DEPTH)  # empty at once, but degraded must last 1 s
        assert queue.level is Level.DEGRADED
    assert round(anyio.current_time() - start, 9) == 1.0
    assert drain(queue, 1) == [99]


async def test_prs_7_shed_rejects_only_the_shed_priorities() -> None:
    """PRS-7: at shed a low message raises LoadShed, is counted by reason/priority and not queued."""
    queue = filled(SHED_DEPTH)
    with pytest.raises(
        LoadShed,
        match=r"^queue 'out' shed a low priority message at level shed \(19/20 queued\); "
        r"retry it later, send it at a priority the policy does not shed, or add consumers$",
    ) as caught:
        await queue.put(99, priority=Priority.LOW)
    error = caught.value
    assert (error.queue, error.priority, error.level, error.depth, error.capacity) == (
        "out",
        Priority.LOW,
        Level.SHED,
        SHED_DEPTH,
        CAPACITY,
    )
    assert isinstance(error, PressureError)
    assert isinstance(error, otpy.OtpyError)
    assert len(queue) == SHED_DEPTH
    assert queue.statistics().rejected == {"load_shed": {"low": 1}}


@pytest.mark.parametrize("priority", [Priority.CRITICAL, Priority.HIGH])
async def test_twin_critical_and_unlisted_priorities_are_accepted_at_shed(
    priority: Priority,
) -> None:
    """Twin PRS-7: at shed, critical (never shed) and priorities not in shed_priorities are queued."""
    queue = filled(SHED_DEPTH, policy=PressurePolicy(throttle=0.0))
    await queue.put(99, priority=priority)
    assert len(queue) == CAPACITY
    assert queue.statistics().rejected == {}


async def test_prs_7_shed_priorities_are_configurable() -> None:
    """PRS-7: with shed_priorities={low, normal}, a normal message is shed too."""
    queue = filled(
        SHED_DEPTH, policy=PressurePolicy(shed_priorities={Priority.LOW, Priority.NORMAL})
    )
    with pytest.raises(LoadShed, match=r"^queue 'out' shed a normal priority message"):
        queue.put_nowait(99, priority=Priority.NORMAL)
    assert queue.statistics().rejected == {"load_shed": {"normal": 1}}


@pytest.mark.parametrize("priority", list(Priority))
async def test_prs_8_a_full_queue_rejects_every_priority(priority: Priority) -> None:
    """PRS-8: at capacity every priority, critical included, raises QueueFull and is counted."""
    queue = filled(CAPACITY)
    label = priority.name.lower()
    with pytest.raises(
        QueueFull,
        match=rf"^queue 'out' is full \(20/20 queued\) and refused a {label} priority message; "
        r"slow the producer, add consumers, or raise capacity$",
    ) as caught:
        await queue.put(99, priority=priority)
    assert (caught.value.priority, caught.value.depth, caught.value.capacity) == (
        priority,
        CAPACITY,
        CAPACITY,
    )
    with pytest.raises(QueueFull):
        queue.put_nowait(99, priority=priority)
    assert len(queue) == CAPACITY
    assert queue.statistics().rejected == {"queue_full": {label: 2}}


async def test_twin_one_below_capacity_accepts_critical() -> None:
    """Twin PRS-8: one below capacity a critical message is queued, filling the queue exactly."""
    queue = filled(CAPACITY - 1)
    await queue.put(99, priority=Priority.CRITICAL)
    stats = queue.statistics()
    assert (stats.queued, stats.peak, stats.rejected) == (CAPACITY, CAPACITY, {})


@virtual
async def test_put_nowait_queues_a_throttled_message_without_waiting() -> None:
    """put_nowait never waits: a THROTTLE verdict queues at once (throttling paces awaiting producers)."""
    queue = filled(DEGRADED_DEPTH, policy=PressurePolicy(throttle=0.02))
    start = anyio.current_time()
    queue.put_nowait(99)
    assert anyio.current_time() == start
    assert len(queue) == DEGRADED_DEPTH + 1
    assert queue.statistics().throttled == 0


async def test_put_nowait_raises_wouldblock_for_a_deferred_priority() -> None:
    """put_nowait of a deferred priority at degraded raises WouldBlock, counted as deferred, not rejected."""
    seen: list[object] = []
    queue = filled(
        DEGRADED_DEPTH,
        policy=PressurePolicy(defer={Priority.LOW}),
        on_reject=lambda *args: seen.append(args),
    )
    with pytest.raises(anyio.WouldBlock):
        queue.put_nowait(99, priority=Priority.LOW)
    stats = queue.statistics()
    assert (stats.queued, stats.deferred, stats.rejected, seen) == (DEGRADED_DEPTH, 1, {}, [])


async def test_twin_put_nowait_of_a_deferred_priority_below_degraded_is_queued() -> None:
    """Twin: below degraded a deferred priority is queued by put_nowait."""
    queue = filled(DEGRADED_DEPTH - 1, policy=PressurePolicy(defer={Priority.LOW}))
    queue.put_nowait(99, priority=Priority.LOW)
    assert len(queue) == DEGRADED_DEPTH


async def test_get_is_fifo_and_waits_while_empty() -> None:
    """get returns items in arrival order and waits for the next when the queue is empty."""
    queue: BoundedQueue[str] = BoundedQueue(4)
    got: list[str] = []

    async def consumer() -> None:
        got.extend([await queue.get() for _ in range(3)])

    async with anyio.create_task_group() as tg:
        tg.start_soon(consumer)
        await anyio.wait_all_tasks_blocked()
        assert got == []
        await queue.put("a")
        queue.put_nowait("b")
        await queue.put("c", priority=Priority.LOW)
    assert got == ["a", "b", "c"]
    with pytest.raises(anyio.WouldBlock):
        queue.get_nowait()


async def test_statistics_count_everything() -> None:
    """statistics() counts accepted, taken, rejections by reason/priority, peak, level and transitions."""
    queue = filled(SHED_DEPTH)
    with pytest.raises(LoadShed):
        queue.put_nowait(-1, priority=Priority.LOW)
    queue.put_nowait(-2, priority=Priority.HIGH)
    with pytest.raises(QueueFull):
        queue.put_nowait(-3, priority=Priority.CRITICAL)
    assert await queue.get() == 0
    stats = queue.statistics()
    assert stats == otpy.pressure.QueueStatistics(
        name="out",
        queued=CAPACITY - 1,
        capacity=CAPACITY,
        peak=CAPACITY,
        level=Level.SHED,
        accepted=CAPACITY,
        taken=1,
        rejected={"load_shed": {"low": 1}, "queue_full": {"critical": 1}},
        throttled=0,
        throttle_seconds=0.0,
        deferred=0,
        transitions=3,  # normal -> warn -> degraded -> shed
        callback_errors=0,
    )
    assert stats.rejected_total == 2


async def test_prs_5_hysteresis_gives_one_transition_while_depth_oscillates() -> None:
    """PRS-5: depth going back and forth across the degraded enter ratio changes the level once."""
    queue = filled(DEGRADED_DEPTH)
    before = queue.statistics().transitions
    for _ in range(10):
        drain(queue, 1)  # 16/20 = 0.80: above the 0.75 exit, still degraded
        queue.put_nowait(0, priority=Priority.CRITICAL)  # 17/20 again
    assert queue.level is Level.DEGRADED
    assert queue.statistics().transitions == before


async def test_twin_without_hysteresis_every_crossing_is_a_transition() -> None:
    """Twin PRS-5: with exit == enter, each crossing of the threshold is a transition."""
    queue = filled(DEGRADED_DEPTH, policy=PressurePolicy.without_hysteresis())
    before = queue.statistics().transitions
    for _ in range(10):
        drain(queue, 1)
        queue.put_nowait(0, priority=Priority.CRITICAL)
    assert queue.statistics().transitions == before + 20


@virtual
@pytest.mark.parametrize("nowait", [True, False])
@pytest.mark.parametrize(
    ("dwelt", "level", "transitions"),
    [(1.0, Level.NORMAL, 2), (0.5, Level.WARN, 1)],
)
async def test_prs_5_a_put_after_min_dwell_ran_out_steps_down_first(
    nowait: bool, dwelt: float, level: Level, transitions: int
) -> None:
    """PRS-5 and twin: held at warn by min_dwell, a put once the dwell ran out steps down before queueing."""
    queue = filled(14, policy=PressurePolicy(min_dwell=1.0))  # 14/20 = 0.70: warn
    drain(queue, 3)  # 11/20 = 0.55 is below warn's exit, but warn must last 1 s
    await anyio.sleep(dwelt)
    if nowait:
        queue.put_nowait(99)
    else:
        await queue.put(99)
    # After 1 s, 11/20 steps down to normal, and 12/20 = 0.60 does not enter warn;
    # before that, warn holds and 12/20 is at its exit ratio, which keeps it.
    stats = queue.statistics()
    assert (stats.queued, stats.level, stats.transitions) == (12, level, transitions)


async def test_prs_7_on_reject_gets_every_refused_message() -> None:
    """PRS-7: on_reject is called with the item, priority and reason of each refusal (the dead-letter seam)."""
    seen: list[tuple[int, Priority, str]] = []
    queue = filled(SHED_DEPTH, on_reject=lambda *args: seen.append(args))
    with pytest.raises(LoadShed):
        await queue.put(7, priority=Priority.LOW)
    queue.put_nowait(8, priority=Priority.CRITICAL)
    with pytest.raises(QueueFull):
        await queue.put(9, priority=Priority.HIGH)
    assert seen == [(7, Priority.LOW, "load_shed"), (9, Priority.HIGH, "queue_full")]


async def test_an_on_reject_that_raises_is_logged_and_counted_not_raised(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A failing on_reject is logged and counted; put still raises the typed refusal."""

    def broken(item: int, priority: Priority, reason: str) -> None:
        raise RuntimeError("dead-letter store down")

    queue = filled(SHED_DEPTH, on_reject=broken)
    with caplog.at_level(logging.ERROR, logger="otpy.pressure"), pytest.raises(LoadShed):
        await queue.put(7, priority=Priority.LOW)
    assert queue.statistics().callback_errors == 1
    assert queue.statistics().rejected == {"load_shed": {"low": 1}}
    [record] = caplog.records
    assert record.getMessage() == (
        "queue 'out': on_reject raised for a low message (load_shed); the message was still refused"
    )
    assert record.exc_text is not None  # the traceback, redacted, as otpy's loggers keep it
    assert "RuntimeError: dead-letter store down" in record.exc_text


@virtual
async def test_a_cancelled_throttled_put_queues_nothing() -> None:
    """A producer cancelled while throttled leaves nothing in the queue; its wait is still counted."""
    queue = filled(DEGRADED_DEPTH, policy=PressurePolicy(throttle=1.0))
    with anyio.move_on_after(0.25):
        await queue.put(99)
    stats = queue.statistics()
    assert (stats.queued, stats.accepted, stats.throttled) == (DEGRADED_DEPTH, DEGRADED_DEPTH, 1)
    assert round(stats.throttle_seconds, 9) == 0.25


@pytest.mark.parametrize("capacity", [0, -1, 1.5, True])
def test_capacity_must_be_a_positive_integer(capacity: object) -> None:
    """A capacity that is not an integer >= 1 is refused when the queue is built."""
    with pytest.raises(ValueError, match=r"^queue 'q': capacity must be an integer >= 1, got "):
        BoundedQueue(capacity, name="q")  # type: ignore[arg-type]


async def test_twin_a_queue_of_one() -> None:
    """Twin: capacity 1 holds exactly one message."""
    queue: BoundedQueue[int] = BoundedQueue(1, policy=PressurePolicy(throttle=0.0))
    await queue.put(1, priority=Priority.CRITICAL)
    with pytest.raises(QueueFull):
        queue.put_nowait(2, priority=Priority.CRITICAL)
    assert queue.get_nowait() == 1


@virtual
async def test_drops_are_counted_by_reason_and_priority_and_throttle_time_is_recorded() -> None:
    """Every refusal increments otpy.pressure.drops by reason and priority; throttle waits go to a histogram."""
    from otpy.telemetry import METRIC_PRESSURE_DROPS, METRIC_PRESSURE_THROTTLE
    from otpy.testing import capture_metrics

    with capture_metrics() as reader:
        queue: BoundedQueue[int] = BoundedQueue(20, name="metered")
        for n in range(19):
            queue.put_nowait(n, priority=Priority.CRITICAL)
        with pytest.raises(LoadShed):
            await queue.put(1, priority=Priority.LOW)
        await queue.put(2, priority=Priority.NORMAL)  # shed level, not shed: throttled
        with pytest.raises(QueueFull):
            await queue.put(3, priority=Priority.CRITICAL)
        data = reader.get_metrics_data()
    drops: dict[tuple[str, str], int] = {}
    throttle: list[tuple[int, float]] = []
    assert data is not None
    for resource in data.resource_metrics:
        for scope in resource.scope_metrics:
            for metric in scope.metrics:
                for point in metric.data.data_points:
                    attributes = dict(point.attributes or {})
                    if attributes.get("otpy.pressure.queue") != "metered":
                        continue
                    if metric.name == METRIC_PRESSURE_DROPS:
                        key = (
                            str(attributes["otpy.pressure.reason"]),
                            str(attributes["otpy.pressure.priority"]),
                        )
                        drops[key] = int(point.value)  # type: ignore[union-attr]
                    elif metric.name == METRIC_PRESSURE_THROTTLE:
                        throttle.append((point.count, point.sum))  # type: ignore[union-attr]
    assert drops == {("load_shed", "low"): 1, ("queue_full", "critical"): 1}
    [(count, seconds)] = throttle
    assert (count, round(seconds, 9)) == (1, 0.005)


# -- the queue against the pure policy --------------------------------------------

# Ratios that fall exactly on a depth (k/40 of a capacity dividing 40) and ratios that do not.
RATIOS = st.one_of(st.integers(1, 40).map(lambda k: k / 40), st.floats(0.01, 1.0))
SOME_PRIORITIES = st.frozensets(st.sampled_from([Priority.LOW, Priority.NORMAL, Priority.HIGH]))


@st.composite
def policies(draw: st.DrawFn) -> PressurePolicy:
    """Valid policies: enter ratios strictly increasing, each exit at or below its enter."""
    enters = sorted(draw(st.lists(RATIOS, min_size=3, max_size=3, unique=True)))
    warn, degraded, shed = (
        Threshold(enter, draw(st.one_of(st.just(enter), st.just(0.0), st.floats(0.0, enter))))
        for enter in enters
    )
    return PressurePolicy(
        warn=warn,
        degraded=degraded,
        shed=shed,
        min_dwell=draw(st.sampled_from([0.0, 1.0, 2.5])),
        throttle=draw(st.sampled_from([0.0, 0.005, 1.0])),
        defer=draw(SOME_PRIORITIES),
        shed_priorities=draw(SOME_PRIORITIES),
    )


Step = tuple[str, Priority, float]


def _steps(kinds: list[str]) -> st.SearchStrategy[list[Step]]:
    return st.lists(
        st.tuples(st.sampled_from(kinds), st.sampled_from(Priority), st.sampled_from([0.5, 3.0])),
        max_size=40,
    )


@st.composite
def scripts(draw: st.DrawFn) -> list[Step]:
    """Fill to some depth, then mixed, draining and filling phases.

    "sleep" lets min_dwell run out; "check" compares statistics, which observes the
    level, so it is a step of its own rather than done after every step.
    """
    prefill = [("put_nowait", Priority.CRITICAL, 0.0)] * draw(st.integers(0, 40))
    mixed = draw(_steps(["put_nowait", "put", "get_nowait", "sleep", "check"]))
    drain = draw(_steps(["get_nowait", "get_nowait", "put_nowait", "put", "sleep", "check"]))
    fill = draw(_steps(["put_nowait", "put_nowait", "put", "get_nowait", "sleep", "check"]))
    return [*prefill, *mixed, *drain, *fill, ("check", Priority.NORMAL, 0.0)]


class Reference:
    """A BoundedQueue's level, refusals and statistics, from level_for/advance/admit alone."""

    def __init__(self, capacity: int, policy: PressurePolicy) -> None:
        self.capacity = capacity
        self.policy = policy
        self.items: collections.deque[int] = collections.deque()
        self.state = LevelState()
        self.counts = dict.fromkeys(("peak", "accepted", "taken", "throttled", "deferred"), 0)
        self.transitions = 0
        self.throttle_seconds = 0.0
        self.rejected: dict[str, dict[str, int]] = {}

    def observe(self) -> None:
        """Feed the occupancy to advance at the clock's time, as every queue operation does."""
        state = advance(
            self.policy, self.state, len(self.items) / self.capacity, now=anyio.current_time()
        )
        self.transitions += state is not self.state
        self.state = state

    def verdict(self, priority: Priority) -> Verdict:
        """Observe, then ask admit."""
        self.observe()
        depth = len(self.items)
        return admit(
            self.policy, self.state.level, priority, depth=depth, capacity=self.capacity
        ).verdict

    def would_defer(self, priority: Priority) -> bool:
        """Whether a put would wait for relief (the consumers this test does not run); no side effects."""
        ratio = len(self.items) / self.capacity
        level = advance(self.policy, self.state, ratio, now=anyio.current_time()).level
        depth = len(self.items)
        verdict = admit(self.policy, level, priority, depth=depth, capacity=self.capacity).verdict
        return verdict is Verdict.DEFER

    def enqueue(self, item: int) -> None:
        """Queue *item* and observe."""
        self.items.append(item)
        self.counts["accepted"] += 1
        self.counts["peak"] = max(self.counts["peak"], len(self.items))
        self.observe()

    def refuse(self, verdict: Verdict, priority: Priority) -> type[PressureError]:
        """Count a refusal; return the error the queue must raise."""
        error = LoadShed if verdict is Verdict.SHED else QueueFull
        by_priority = self.rejected.setdefault(error.reason, {})
        label = priority.name.lower()
        by_priority[label] = by_priority.get(label, 0) + 1
        return error

    def statistics(self) -> QueueStatistics:
        """Observe, then the snapshot the queue must report."""
        self.observe()
        return QueueStatistics(
            name="q",
            queued=len(self.items),
            capacity=self.capacity,
            level=self.state.level,
            rejected={reason: dict(counts) for reason, counts in self.rejected.items()},
            throttle_seconds=self.throttle_seconds,
            transitions=self.transitions,
            callback_errors=0,
            **self.counts,
        )


@virtual
@settings(max_examples=300, deadline=None)
@given(
    policy=st.one_of(st.just(PressurePolicy()), policies()),
    capacity=st.integers(1, 40),
    script=scripts(),
)
async def test_prs_4_prs_8_fast_admission_path_matches_the_policy(
    policy: PressurePolicy, capacity: int, script: list[Step]
) -> None:
    """PRS-4..PRS-8: after every put, put_nowait, get_nowait and sleep, level, refusals and statistics equal the pure policy's."""
    queue: BoundedQueue[int] = BoundedQueue(capacity, name="q", policy=policy)
    model = Reference(capacity, policy)
    for item, (op, priority, seconds) in enumerate(script):
        if op == "sleep":
            await anyio.sleep(seconds)
        elif op == "check":
            assert queue.statistics() == model.statistics()
            assert queue.level is model.state.level
        elif op == "get_nowait":
            if model.items:
                expected = model.items.popleft()
                model.counts["taken"] += 1
                model.observe()
                assert queue.get_nowait() == expected
            else:
                with pytest.raises(anyio.WouldBlock):
                    queue.get_nowait()
        elif op == "put_nowait":
            verdict = model.verdict(priority)
            if verdict in (Verdict.ACCEPT, Verdict.THROTTLE):
                queue.put_nowait(item, priority=priority)
                model.enqueue(item)
            elif verdict is Verdict.DEFER:
                model.counts["deferred"] += 1
                with pytest.raises(anyio.WouldBlock):
                    queue.put_nowait(item, priority=priority)
            else:
                error = model.refuse(verdict, priority)
                with pytest.raises(error) as caught:
                    queue.put_nowait(item, priority=priority)
                assert (caught.value.level, caught.value.depth) == (
                    model.state.level,
                    len(model.items),
                )
        elif not model.would_defer(priority):
            started = anyio.current_time()
            verdict = model.verdict(priority)
            raised: PressureError | None = None
            try:
                await queue.put(item, priority=priority)
            except PressureError as exc:
                raised = exc
            if verdict is Verdict.THROTTLE:  # the queue waited, then asked again
                model.counts["throttled"] += 1
                model.throttle_seconds += anyio.current_time() - started
                verdict = model.verdict(priority)
                if verdict is Verdict.THROTTLE:
                    verdict = Verdict.ACCEPT  # throttled at most once
            if verdict is Verdict.ACCEPT:
                assert raised is None
                model.enqueue(item)
            else:
                assert isinstance(raised, model.refuse(verdict, priority))
                assert (raised.level, raised.depth) == (model.state.level, len(model.items))


@settings(max_examples=300)
@given(
    policy=st.one_of(st.just(PressurePolicy()), policies()),
    capacity=st.one_of(st.integers(1, 100), st.integers(1, 1_000_000)),
    level=st.sampled_from(Level),
    data=st.data(),
)
def test_prs_4_the_depths_a_level_is_kept_at_are_one_interval(
    policy: PressurePolicy, capacity: int, level: Level, data: st.DataObject
) -> None:
    """PRS-4: level_for rises with depth, and a level's cached bounds are where it keeps the level."""
    regime = _regime(policy, capacity, level)

    def level_at(depth: int) -> Level:
        return level_for(policy, level, depth / capacity)

    assert regime.lo == 0 or level_at(regime.lo - 1) < level
    assert regime.lo == capacity + 1 or level_at(regime.lo) >= level
    assert regime.hi == -1 or level_at(regime.hi) <= level
    assert regime.hi == capacity or level_at(regime.hi + 1) > level
    low, high = sorted(data.draw(st.integers(0, capacity)) for _ in range(2))
    assert level_at(low) <= level_at(high)
    assert (regime.lo <= low <= regime.hi) == (level_at(low) == level)
