"""Refused messages become dead letters (PRS-7, PRS-8, DL-1): nothing a bounded queue refuses is lost."""

from __future__ import annotations

import json

import pytest

import otpy
from otpy import LoadShed, PressureError, QueueFull
from otpy.deadletter import (
    Category,
    DeadLetter,
    DeadLetterFilter,
    DeadLetters,
    Diagnostics,
    MemoryDeadLetterStore,
    PartitionedRejectionDeadLetters,
    Source,
    dead_letter_children,
    dead_letter_partitioned_rejections,
)
from otpy.deadletter._rejections import (
    PRIORITY_HEADER,
    QUEUE_HEADER,
    RejectionDeadLetters,
    dead_letter_rejections,
    dead_lettering_queue,
)
from otpy.pressure import BoundedQueue, PartitionedQueue, Priority

# With capacity 20 and the default thresholds, 19 queued is level shed.
CAPACITY = 20
SHED_DEPTH = 19
MARKER_KEY = "test-marker"


async def settled(store: MemoryDeadLetterStore) -> list[DeadLetter]:
    """Every rejection stored so far, oldest first.

    capture_nowait is fire-and-forget; the writer commits in order, so once an
    acknowledged capture of a marker returns, everything handed over before it is in.
    """
    await DeadLetters().capture(DeadLetter.capture(key=MARKER_KEY, source=Source.INGEST))
    page = await store.list(limit=10_000)
    return sorted((r for r in page.records if r.key != MARKER_KEY), key=lambda r: r.id)


def filled(queue: BoundedQueue[object], depth: int) -> BoundedQueue[object]:
    """Put *depth* critical items (never throttled or shed) into *queue*."""
    for n in range(depth):
        queue.put_nowait(1000 + n, priority=Priority.CRITICAL)
    return queue


async def test_a_shed_message_is_stored_with_its_priority_and_the_queue_diagnostics() -> None:
    """PRS-7/DL-1: a shed message is stored as load_shed, retryable, with level, depth and capacity."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        queue = filled(dead_lettering_queue(CAPACITY, DeadLetters(), key="orders", name="in"), 19)
        with pytest.raises(LoadShed):
            queue.put_nowait({"order": 7}, priority=Priority.LOW)
        [record] = await settled(store)
    assert (record.key, record.source, record.reason_class, record.category) == (
        "orders",
        Source.LOAD_SHED,
        "otpy.LoadShed",
        Category.RETRYABLE,
    )
    assert dict(record.headers) == {PRIORITY_HEADER: "low", QUEUE_HEADER: "in"}
    assert record.diagnostics == Diagnostics(
        pressure_level="shed", queue_depth=SHED_DEPTH, queue_capacity=CAPACITY
    )
    assert (record.payload, record.content_type) == (b'{"order":7}', "application/json")
    assert (
        record.reason
        == "queue 'in' refused a low priority message (load_shed, level shed, 19/20 queued)"
    )


async def test_a_queue_full_refusal_is_stored_even_for_critical_work() -> None:
    """PRS-8/DL-1: at capacity a critical message is refused as queue_full and stored with depth == capacity."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        queue = filled(dead_lettering_queue(CAPACITY, DeadLetters(), key="orders", name="in"), 20)
        with pytest.raises(QueueFull):
            await queue.put(42, priority=Priority.CRITICAL)
        [record] = await settled(store)
    assert (record.source, record.reason_class, record.category) == (
        Source.QUEUE_FULL,
        "otpy.QueueFull",
        Category.RETRYABLE,
    )
    assert dict(record.headers)[PRIORITY_HEADER] == "critical"
    assert record.diagnostics == Diagnostics(
        pressure_level="shed", queue_depth=CAPACITY, queue_capacity=CAPACITY
    )
    assert record.payload == b"42"


async def test_below_shed_nothing_is_dead_lettered() -> None:
    """PRS-7: a message the queue accepts is not stored (the twin of the shed test)."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        queue = filled(dead_lettering_queue(CAPACITY, DeadLetters(), key="orders"), SHED_DEPTH - 1)
        queue.put_nowait(7, priority=Priority.LOW)
        assert await settled(store) == []
    assert len(queue) == SHED_DEPTH


async def test_under_sustained_overload_processed_plus_stored_equals_sent() -> None:
    """PRS-7/PRS-8/DL-1: every message is either processed or stored as shed/queue_full; none is lost."""
    store = MemoryDeadLetterStore()
    sent = 300
    priorities = list(Priority)
    processed: list[int] = []
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        client = DeadLetters()
        queue: BoundedQueue[int] = dead_lettering_queue(CAPACITY, client, key="orders")
        for n in range(sent):
            try:
                queue.put_nowait(n, priority=priorities[n % len(priorities)])
            except PressureError:
                pass
            if n % 3 == 0:  # the consumer takes one for every three sent
                processed.append(queue.get_nowait())
            assert len(queue) <= CAPACITY
        while len(queue):
            processed.append(queue.get_nowait())
        records = await settled(store)
        assert client.statistics().dropped == 0
    stats = queue.statistics()
    stored = [json.loads(r.payload or b"") for r in records]
    assert len(processed) + len(stored) == sent
    assert sorted(processed + stored) == list(range(sent))
    assert len(records) == stats.rejected_total
    by_source = {
        s: sum(r.source is s for r in records) for s in (Source.LOAD_SHED, Source.QUEUE_FULL)
    }
    assert by_source[Source.LOAD_SHED] == sum(stats.rejected.get("load_shed", {}).values())
    assert by_source[Source.QUEUE_FULL] == sum(stats.rejected.get("queue_full", {}).values())
    assert by_source[Source.LOAD_SHED] > 0
    assert by_source[Source.QUEUE_FULL] > 0
    shed_priorities = {
        dict(r.headers)[PRIORITY_HEADER] for r in records if r.source is Source.LOAD_SHED
    }
    assert shed_priorities == {"low"}


async def test_the_key_can_be_a_function_of_the_message_and_records_are_filterable() -> None:
    """DL-1: key=callable keys each record by its message; the store filters them by source."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        queue: BoundedQueue[dict[str, str]] = dead_lettering_queue(
            1,
            DeadLetters(),
            key=lambda m: f"tenant:{m['tenant']}",  # type: ignore[index]
        )
        queue.put_nowait({"tenant": "a"})
        with pytest.raises(QueueFull):
            queue.put_nowait({"tenant": "b"})
        await settled(store)
        page = await store.list(DeadLetterFilter(source=Source.QUEUE_FULL))
    assert [r.key for r in page.records] == ["tenant:b"]


async def test_an_unbound_callback_still_stores_with_empty_diagnostics() -> None:
    """DL-1: without bind() every refusal is still stored; only the queue figures are missing."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        callback: RejectionDeadLetters[int] = dead_letter_rejections(DeadLetters(), key="k")
        queue: BoundedQueue[int] = BoundedQueue(1, on_reject=callback)
        queue.put_nowait(1)
        with pytest.raises(QueueFull):
            queue.put_nowait(2)
        [record] = await settled(store)
    assert record.diagnostics == Diagnostics()
    assert record.source is Source.QUEUE_FULL
    assert queue.statistics().callback_errors == 0


def test_bind_refuses_a_second_queue_but_accepts_the_same_one_again() -> None:
    """One callback reads one queue's statistics: binding it to another is a ValueError."""
    callback: RejectionDeadLetters[int] = dead_letter_rejections(DeadLetters(), key="k")
    first: BoundedQueue[int] = BoundedQueue(1, name="first", on_reject=callback)
    callback.bind(first)
    callback.bind(first)
    with pytest.raises(
        ValueError, match=r"already bound to queue 'first'; build one callback per queue"
    ):
        callback.bind(BoundedQueue(1, name="second"))
    assert callback.queue is first


def test_an_empty_key_and_an_unknown_reason_are_refused() -> None:
    """Misuse is a ValueError that names the problem."""
    with pytest.raises(ValueError, match=r"^dead_letter_rejections: key must not be empty"):
        dead_letter_rejections(DeadLetters(), key="")
    callback: RejectionDeadLetters[int] = dead_letter_rejections(DeadLetters(), key="k")
    with pytest.raises(ValueError, match=r"unknown rejection reason 'nope'"):
        callback.record(1, Priority.LOW, "nope")


async def test_prs_8_a_partitioned_queue_refusal_is_stored_under_the_items_own_key() -> None:
    """PRS-8/DL-1: a full partition's refusal is stored with the item's key and that partition's figures.

    The key is the routing key, so replaying the record lands on the same partition.
    """
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        rejections: PartitionedRejectionDeadLetters[dict[str, int]] = (
            dead_letter_partitioned_rejections(DeadLetters())
        )
        queue: PartitionedQueue[dict[str, int]] = PartitionedQueue(
            4, 2, name="jobs", on_reject=rejections
        )
        rejections.bind(queue)
        hot = "customer-7"
        for n in range(2):
            queue.put_nowait(hot, {"n": n}, priority=Priority.CRITICAL)
        with pytest.raises(QueueFull):
            queue.put_nowait(hot, {"n": 2}, priority=Priority.HIGH)
        other = next(k for k in ("a", "b", "c") if queue.partition_of(k) != queue.partition_of(hot))
        queue.put_nowait(other, {"n": 3})  # another partition still accepts
        [record] = await settled(store)
    partition = queue.partition_of(hot)
    assert (record.key, record.source, record.reason_class) == (
        hot,
        Source.QUEUE_FULL,
        "otpy.QueueFull",
    )
    assert dict(record.headers) == {PRIORITY_HEADER: "high", QUEUE_HEADER: f"jobs[{partition}]"}
    assert record.diagnostics == Diagnostics(pressure_level="shed", queue_depth=2, queue_capacity=2)
    assert json.loads(record.payload or b"") == {"n": 2}


def test_a_partitioned_rejection_callback_binds_to_one_queue() -> None:
    """One callback per queue: binding it to a second queue is refused, naming the first."""
    rejections: PartitionedRejectionDeadLetters[int] = dead_letter_partitioned_rejections(
        DeadLetters(), queue=PartitionedQueue(1, 2, name="a")
    )
    with pytest.raises(
        ValueError, match="already bound to queue 'a'; build one callback per queue"
    ):
        rejections.bind(PartitionedQueue(1, 2, name="b"))


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (
            lambda: dead_letter_rejections(DeadLetters(), key=5),  # type: ignore[arg-type]
            r"key must be a non-empty string or a",
        ),
        (lambda: dead_letter_rejections(None, key="k"), r"client must be a DeadLetters client"),  # type: ignore[arg-type]
        (lambda: dead_letter_rejections(DeadLetters(), key="k", encoder=None), r"encoder must be"),  # type: ignore[arg-type]
        (lambda: dead_letter_partitioned_rejections("client"), r"client must be a DeadLetters"),  # type: ignore[arg-type]
    ],
)
def test_rejection_callbacks_check_their_arguments_when_built(build: object, pattern: str) -> None:
    """A client that is not a DeadLetters, or a key that is not a string, is refused when built, not at the first refusal."""
    with pytest.raises(otpy.InvalidArgumentType, match=pattern):
        build()  # type: ignore[operator]
