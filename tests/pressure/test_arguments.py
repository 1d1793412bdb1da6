"""Pressure arguments are checked where they are given: a typed error naming the argument."""

from __future__ import annotations

import math

import pytest

from otpy import InvalidArgument, InvalidArgumentType, InvalidPressurePolicy, named, open_node
from otpy.pressure import (
    BoundedQueue,
    Level,
    LevelState,
    PartitionedQueue,
    PressurePolicy,
    Priority,
    SamplePressure,
    Threshold,
    Watched,
    notify_pressure,
    partition_of,
    stable_hash,
)
from otpy.testing import virtual_time

virtual = pytest.mark.parametrize("anyio_backend", [virtual_time()])

SURROGATE = "q\ud800"


@virtual
@pytest.mark.parametrize("priority", [99, -1, 4, True, "high", None, 2.0, 10**400])
async def test_put_refuses_what_is_not_a_priority_and_queues_nothing(priority: object) -> None:
    """put(priority=99) raises InvalidArgument naming priority and the allowed values; nothing is queued."""
    queue: BoundedQueue[str] = BoundedQueue(4, name="q")
    pattern = r"^queue 'q': priority must be one of Priority.LOW, Priority.NORMAL, Priority.HIGH"
    with pytest.raises(InvalidArgument, match=pattern) as info:
        await queue.put("x", priority=priority)  # type: ignore[arg-type]
    assert info.value.argument == "priority"
    with pytest.raises(InvalidArgument, match=pattern):
        queue.put_nowait("x", priority=priority)  # type: ignore[arg-type]
    stats = queue.statistics()
    assert (stats.queued, stats.accepted, stats.rejected_total) == (0, 0, 0)


@virtual
async def test_a_wrong_type_of_priority_is_also_a_type_error() -> None:
    """A string priority is an InvalidArgumentType (a TypeError); an int out of range a ValueError only."""
    queue: BoundedQueue[str] = BoundedQueue(4, name="q")
    with pytest.raises(InvalidArgumentType):
        await queue.put("x", priority="high")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument) as info:
        await queue.put("x", priority=99)  # type: ignore[arg-type]
    assert not isinstance(info.value, TypeError)


@virtual
async def test_twin_a_priority_given_as_its_int_value_is_that_priority() -> None:
    """Twin: put(priority=3) is a critical put, queued even when the queue sheds low ones."""
    queue: BoundedQueue[str] = BoundedQueue(2, name="q", policy=PressurePolicy(throttle=0.0))
    await queue.put("a", priority=3)  # type: ignore[arg-type]
    queue.put_nowait("b", priority=0)  # type: ignore[arg-type]
    assert [queue.get_nowait(), queue.get_nowait()] == ["a", "b"]


@virtual
async def test_a_partitioned_put_checks_its_key_and_priority_even_when_closed() -> None:
    """PartitionedQueue.put refuses a non-string key and a bad priority, open or closed."""
    queue: PartitionedQueue[str] = PartitionedQueue(2, 4, name="p")
    with pytest.raises(InvalidArgumentType, match=r"^key must be a string, got int 5"):
        await queue.put(5, "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match=r"^key must be a string, got list"):
        queue.put_nowait([], "x")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"priority must be one of"):
        await queue.put("k", "x", priority=99)  # type: ignore[arg-type]
    await queue.aclose()
    with pytest.raises(InvalidArgument, match=r"priority must be one of"):
        await queue.put("k", "x", priority=99)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"priority must be one of"):
        queue.put_nowait("k", "x", priority="low")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^queue 'p': timeout must be a finite number > 0"):
        await queue.aclose(math.nan)


def test_a_key_with_a_lone_surrogate_has_a_stable_partition() -> None:
    """A key with a lone surrogate routes like any key (no UnicodeEncodeError); valid keys keep their hash."""
    assert stable_hash(SURROGATE) == stable_hash(SURROGATE)
    assert partition_of(SURROGATE, 8) in range(8)
    assert stable_hash("order-1") == 2709196713320186429


@pytest.mark.parametrize("partitions", [0, -3, True, 2.0, "4", None])
def test_partition_of_refuses_a_bad_partition_count(partitions: object) -> None:
    """partition_of(key, 0) is an InvalidArgument naming partitions, not a ZeroDivisionError."""
    with pytest.raises(InvalidArgument, match=r"^partitions must be an integer >= 1"):
        partition_of("k", partitions)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"capacity": 10**30},
            r"^queue 'q': capacity must be an integer <= 2\*\*53, got an integer",
        ),
        ({"capacity": "8"}, r"^queue 'q': capacity must be an integer >= 1, got '8'"),
        ({"name": SURROGATE}, r"^queue: name must be valid text"),
        ({"name": ""}, r"^queue: name must not be empty"),
        ({"name": 7}, r"^queue: name must be a string, got 7"),
        ({"policy": None}, r"^queue 'q': policy must be a PressurePolicy, got None"),
        ({"on_reject": 5}, r"^queue 'q': on_reject must be a function or None, got 5"),
    ],
)
def test_bounded_queue_refuses_bad_arguments_when_built(
    kwargs: dict[str, object], pattern: str
) -> None:
    """BoundedQueue checks capacity, name, policy and on_reject when built, naming each."""
    arguments: dict[str, object] = {"capacity": 8, "name": "q", **kwargs}
    with pytest.raises(InvalidArgument, match=pattern):
        BoundedQueue(**arguments)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"partitions": 10**6}, r"^queue 'p': partitions must be an integer <= 65536"),
        ({"capacity_per_partition": 0}, r"^queue 'p': capacity_per_partition must be an integer"),
        ({"capacity_per_partition": 2**60}, r"^queue 'p': capacity_per_partition must be"),
        ({"name": SURROGATE}, r"^queue: name must be valid text"),
        ({"on_reject": "log"}, r"^queue 'p': on_reject must be a function or None"),
    ],
)
def test_partitioned_queue_refuses_bad_arguments_when_built(
    kwargs: dict[str, object], pattern: str
) -> None:
    """PartitionedQueue names capacity_per_partition itself, not its partitions' capacity."""
    arguments: dict[str, object] = {
        "partitions": 2,
        "capacity_per_partition": 4,
        "name": "p",
        **kwargs,
    }
    with pytest.raises(InvalidArgument, match=pattern):
        PartitionedQueue(**arguments)  # type: ignore[arg-type]


async def _handler(key: str, item: object) -> None:
    """A valid worker handler."""


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"max_demand": 1.5}, r"max_demand must be an integer >= 1, got 1.5"),
        ({"max_demand": 10**30}, r"max_demand must be an integer <= 2\*\*53"),
        ({"min_demand": True}, r"min_demand must be an integer >= 0, got True"),
        ({"min_demand": 10}, r"min_demand must be an integer in \[0, max_demand=10\), got 10"),
    ],
)
def test_worker_demand_is_checked_when_the_specs_are_built(
    kwargs: dict[str, object], pattern: str
) -> None:
    """worker_specs refuses a fractional, huge or bool demand, naming it."""
    queue: PartitionedQueue[str] = PartitionedQueue(2, 4, name="p")
    with pytest.raises(InvalidArgument, match=r"^workers of queue 'p': " + pattern):
        queue.worker_specs(_handler, **kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [math.inf, math.nan, "30", True])
def test_drain_timeout_is_a_finite_number(timeout: object) -> None:
    """drain_spec(timeout=inf) is refused: it would make a child that never stops."""
    queue: PartitionedQueue[str] = PartitionedQueue(2, 4, name="p")
    with pytest.raises(InvalidArgument, match=r"^queue 'p': drain timeout must be a finite"):
        queue.drain_spec(timeout)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        ({"warn": None}, r"^pressure policy: warn must be a Threshold\(enter, exit\), got None"),
        (
            {"warn": Threshold(10**5000, 0.5)},
            r"^pressure policy: warn.enter must be in \(0, 1\], got an integer of 16610 bits",
        ),
        ({"min_dwell": "1"}, r"^pressure policy: min_dwell must be a finite number >= 0, got '1'"),
        ({"throttle": 10**400}, r"^pressure policy: throttle must be a finite number >= 0"),
        ({"throttle": True}, r"^pressure policy: throttle must be a finite number >= 0, got True"),
        ({"defer": 99}, r"^pressure policy: defer must be one of Priority.LOW"),
        ({"defer": None}, r"^pressure policy: defer must be a Priority or a set of them"),
        ({"shed_priorities": ["low"]}, r"^pressure policy: shed_priorities must be one of"),
    ],
)
def test_policy_fields_of_the_wrong_type_name_the_field(
    kwargs: dict[str, object], pattern: str
) -> None:
    """PressurePolicy(warn=None) or throttle=10**400 is an InvalidPressurePolicy, not an AttributeError or OverflowError."""
    with pytest.raises(InvalidPressurePolicy, match=pattern):
        PressurePolicy(**kwargs)  # type: ignore[arg-type]


def test_twin_priorities_given_as_ints_still_build_a_policy() -> None:
    """Twin: shed_priorities=[0, 1] and defer=0 are Priority.LOW and NORMAL, as before."""
    policy = PressurePolicy(shed_priorities=[0, 1], defer=0)
    assert policy.shed_priorities == {Priority.LOW, Priority.NORMAL}
    assert policy.defer == {Priority.LOW}


def test_thresholds_and_level_states_refuse_what_is_not_a_number() -> None:
    """Threshold('a', 1) and LevelState(since=nan) name the field instead of failing a comparison later."""
    with pytest.raises(InvalidArgumentType, match=r"^threshold: enter must be an occupancy ratio"):
        Threshold("a", 0.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match=r"^level state: level must be a Level, got 7"):
        LevelState(7)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^level state: since must be a finite time"):
        LevelState(Level.WARN, math.nan)
    assert LevelState(Level.WARN, -1.0).since == -1.0


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: Watched("q", 5), r"^Watched: target must have a statistics\(\) method"),  # type: ignore[arg-type]
        (lambda: Watched("q", ""), r"^Watched: target must not be empty"),
        (lambda: Watched("q", "actor", partition=[1]), r"^Watched: partition must be a string"),  # type: ignore[arg-type]
        (lambda: Watched(SURROGATE, "actor"), r"^Watched: name must be valid text"),
        (lambda: SamplePressure(["q"]), r"^SamplePressure: source must be a string, got \['q'\]"),  # type: ignore[arg-type]
    ],
)
def test_monitor_records_refuse_what_would_crash_the_monitor(build: object, pattern: str) -> None:
    """Watched and SamplePressure check their fields when built, so the monitor never gets them."""
    with pytest.raises(InvalidArgument, match=pattern):
        build()  # type: ignore[operator]


@virtual
async def test_watch_refuses_what_is_not_a_monitor_so_puts_never_fail_later() -> None:
    """queue.watch('monitor') is refused at once; before, the first level change crashed a put."""
    queue: BoundedQueue[int] = BoundedQueue(2, name="q", policy=PressurePolicy(throttle=0.0))
    with pytest.raises(InvalidArgumentType, match=r"^queue 'q': monitor must be the ActorRef or"):
        queue.watch("monitor")  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match=r"^monitor must be the ActorRef or NamedRef"):
        notify_pressure(None)  # type: ignore[arg-type]
    partitioned: PartitionedQueue[int] = PartitionedQueue(2, 2, name="p")
    with pytest.raises(InvalidArgumentType, match=r"^queue 'p\[0\]': monitor must be"):
        partitioned.watch(5)  # type: ignore[arg-type]
    for i in range(2):  # through every level change, with nothing watching
        await queue.put(i)
    assert queue.level is Level.SHED


@virtual
async def test_twin_a_named_monitor_is_watched() -> None:
    """Twin: a NamedRef is a monitor to watch and notify, even with nobody behind the name."""
    async with open_node():
        queue: BoundedQueue[int] = BoundedQueue(2, name="q")
        queue.watch(named("pressure"), source="q")
        notify_pressure(named("pressure"))
        await queue.put(1, priority=Priority.CRITICAL)
        await queue.put(2, priority=Priority.CRITICAL)
        assert queue.level is Level.SHED


@pytest.mark.parametrize("partition", [2, -1, True, "0", None])
def test_has_worker_names_a_partition_out_of_range(partition: object) -> None:
    """has_worker(2) on two partitions is an InvalidArgument naming partition, not an IndexError."""
    queue: PartitionedQueue[int] = PartitionedQueue(2, 2, name="p")
    with pytest.raises(InvalidArgument, match=r"^queue 'p': partition must be an integer"):
        queue.has_worker(partition)  # type: ignore[arg-type]
    assert not queue.has_worker(1)


def test_messages_cope_with_values_repr_cannot_print_or_would_drown_them() -> None:
    """A 5,000-digit int or a 100,000-character string is described, not printed (repr raises past 4,300 digits)."""
    with pytest.raises(InvalidArgumentType, match=r"^key must be a string, got int an integer of"):
        partition_of(10**5000, 2)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^Watched: partition must be an integer <= 2\*\*53"):
        Watched("q", "actor", partition=10**5000)
    with pytest.raises(InvalidArgumentType, match=r"\.\.\. \(100002 characters\)$") as info:
        BoundedQueue("x" * 100_000, name="q")  # type: ignore[arg-type]
    assert len(str(info.value)) < 200
