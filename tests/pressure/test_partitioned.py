"""The partitioned work queue (PRS-1, PRS-3, PRS-8, PRS-10): per-key order, bounded demand, graceful drain."""

from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING

import anyio
import pytest

import otpy
import otpy.deadletter
import otpy.pressure
from otpy import PressureError, QueueClosed, QueueFull
from otpy.deadletter import (
    Category,
    DeadLetters,
    MemoryDeadLetterStore,
    Source,
    dead_letter_children,
    dead_letter_leftovers,
)
from otpy.deadletter._rejections import QUEUE_HEADER
from otpy.pressure import (
    PartitionedQueue,
    PressurePolicy,
    Priority,
    open_partitioned_workers,
    partition_of,
    stable_hash,
)
from otpy.testing import virtual_time

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

virtual = pytest.mark.parametrize("anyio_backend", [virtual_time()])


def key_in(partition: int, partitions: int, *, skip: int = 0) -> str:
    """A key that partition_of routes to *partition* (the *skip*-th such key)."""
    found = [f"k{i}" for i in range(1000) if partition_of(f"k{i}", partitions) == partition]
    return found[skip]


def recorder() -> tuple[list[tuple[str, int]], Callable[[str, int], Awaitable[None]]]:
    """A handler that records (key, item) and returns at once."""
    seen: list[tuple[str, int]] = []

    async def handler(key: str, item: int) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append((key, item))

    return seen, handler


async def test_prs_3_same_key_is_handled_in_arrival_order() -> None:
    """PRS-3: every item of one key reaches the handler in the order it was put."""
    queue: PartitionedQueue[int] = PartitionedQueue(4, 64, name="q")
    seen: list[tuple[str, int]] = []

    async def handler(key: str, item: int) -> None:
        await anyio.lowlevel.checkpoint()
        seen.append((key, item))

    keys = [f"customer-{i}" for i in range(6)]
    async with open_partitioned_workers(queue, handler, max_demand=3):
        for n in range(60):
            await queue.put(keys[n % len(keys)], n)
        assert await queue.aclose() == []
    for key in keys:
        assert [item for k, item in seen if k == key] == list(range(keys.index(key), 60, 6))
    assert queue.statistics().processed == 60


async def test_starting_a_worker_per_partition_checks_each_partition_once(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each worker attaching checks its own partition only: starting N workers is O(N), not O(N^2)."""
    checks: list[int] = []
    real = PartitionedQueue.has_worker

    def counting(self: PartitionedQueue[int], partition: int) -> bool:
        checks.append(partition)
        return real(self, partition)

    monkeypatch.setattr(PartitionedQueue, "has_worker", counting)
    queue: PartitionedQueue[int] = PartitionedQueue(256, 4, name="wide")

    async def handler(key: str, item: int) -> None:
        await anyio.lowlevel.checkpoint()

    async with open_partitioned_workers(queue, handler):
        assert len(checks) == 256
        assert sorted(checks) == list(range(256))
        assert await queue.aclose() == []


async def test_prs_3_distinct_partitions_run_concurrently() -> None:
    """PRS-3: a handler blocked on one partition does not stop another partition's handler."""
    queue: PartitionedQueue[str] = PartitionedQueue(2, 8, name="q")
    other_ran = anyio.Event()

    async def handler(key: str, item: str) -> None:
        if item == "blocked":
            await other_ran.wait()  # only returns if partition 1 runs meanwhile
        else:
            other_ran.set()

    async with open_partitioned_workers(queue, handler):
        await queue.put(key_in(0, 2), "blocked")
        await queue.put(key_in(1, 2), "free")
        with anyio.fail_after(5):
            assert await queue.aclose() == []
    assert queue.statistics().processed == 2


async def test_prs_3_same_partition_is_serial() -> None:
    """PRS-3 (twin): two keys of one partition never run at once; the second waits its turn."""
    queue: PartitionedQueue[str] = PartitionedQueue(2, 8, name="q")
    first, second = key_in(0, 2), key_in(0, 2, skip=1)
    release = anyio.Event()
    started: list[str] = []

    async def handler(key: str, item: str) -> None:
        started.append(key)
        if key == first:
            await release.wait()

    async with open_partitioned_workers(queue, handler):
        await queue.put(first, "a")
        await queue.put(second, "b")
        await anyio.wait_all_tasks_blocked()
        assert started == [first]
        release.set()
        assert await queue.aclose() == []
    assert started == [first, second]


async def test_prs_1_outstanding_never_exceeds_max_demand_and_refills_at_min_demand() -> None:
    """PRS-1: at most max_demand outstanding; more is asked for only at min_demand."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 16, name="q")
    for n in range(10):
        queue.put_nowait("k", n)
    observed: list[tuple[int, int]] = []

    async def handler(key: str, item: int) -> None:
        part = queue.statistics().partitions[0]
        observed.append((part.outstanding, part.queue.queued))
        await anyio.lowlevel.checkpoint()

    async with open_partitioned_workers(queue, handler, max_demand=4, min_demand=2):
        assert (queue.statistics().max_demand, queue.statistics().min_demand) == (4, 2)
        assert await queue.aclose() == []
    # (outstanding incl. the item in hand, still queued) at each handler entry
    assert observed == [
        (4, 6), (3, 6), (4, 4), (3, 4), (4, 2), (3, 2), (4, 0), (3, 0), (2, 0), (1, 0),
    ]  # fmt: skip
    part = queue.statistics().partitions[0]
    assert part.peak_outstanding == 4  # reaches max_demand, never more
    assert part.demands == 4


async def test_prs_1_default_min_demand_is_half_of_max() -> None:
    """PRS-1: min_demand defaults to max_demand // 2."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 4, name="q")
    _, handler = recorder()
    async with open_partitioned_workers(queue, handler, max_demand=7):
        stats = queue.statistics()
        assert (stats.max_demand, stats.min_demand) == (7, 3)
    assert queue.statistics().max_demand is None  # detached on exit


@pytest.mark.parametrize(
    ("max_demand", "min_demand"), [(0, None), (True, None), (4, 4), (4, -1), (1, 1)]
)
async def test_prs_1_invalid_demand_is_rejected(max_demand: int, min_demand: int | None) -> None:
    """PRS-1: max_demand < 1 or min_demand outside [0, max_demand) is a ValueError."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 4, name="q")
    _, handler = recorder()
    with pytest.raises(ValueError, match="_demand"):
        async with open_partitioned_workers(
            queue, handler, max_demand=max_demand, min_demand=min_demand
        ):
            pass  # pragma: no cover


@pytest.mark.parametrize("bad", [0, -1, True, 1.5])
def test_invalid_partitions_are_rejected(bad: object) -> None:
    """Partitions must be an integer >= 1."""
    with pytest.raises(ValueError, match="partitions must be"):
        PartitionedQueue(bad, 4, name="q")  # type: ignore[arg-type]


async def test_prs_8_one_full_partition_refuses_while_the_others_accept() -> None:
    """PRS-8: a partition at capacity raises QueueFull naming itself; other partitions accept."""
    rejected: list[tuple[str, int, Priority, str]] = []
    queue: PartitionedQueue[int] = PartitionedQueue(
        2, 3, name="out", on_reject=lambda *args: rejected.append(args)
    )
    hot, cold = key_in(0, 2), key_in(1, 2)
    for n in range(3):
        await queue.put(hot, n, priority=Priority.CRITICAL)  # up to capacity: accepted
    with pytest.raises(QueueFull) as info:
        await queue.put(hot, 3, priority=Priority.CRITICAL)
    assert info.value.queue == "out[0]"
    assert (info.value.depth, info.value.capacity) == (3, 3)
    with pytest.raises(QueueFull):
        queue.put_nowait(hot, 4, priority=Priority.CRITICAL)
    await queue.put(cold, 5, priority=Priority.CRITICAL)
    assert rejected == [
        (hot, 3, Priority.CRITICAL, "queue_full"),
        (hot, 4, Priority.CRITICAL, "queue_full"),
    ]
    stats = queue.statistics()
    assert [p.queue.queued for p in stats.partitions] == [3, 1]
    assert [p.queue.name for p in stats.partitions] == ["out[0]", "out[1]"]
    assert (stats.queued, stats.capacity) == (4, 6)
    assert stats.partitions[0].queue.rejected == {"queue_full": {"critical": 2}}


async def test_prs_3_partitioning_is_stable_and_shared_with_replay() -> None:
    """PRS-3/DL-10: the queue routes with the replay workers' stable_hash, a pinned value."""
    assert stable_hash("orders:42") == 7041023272453229123
    queue: PartitionedQueue[int] = PartitionedQueue(4, 4, name="q")
    assert queue.partition_of("orders:42") == 7041023272453229123 % 4

    async def resend(record: otpy.deadletter.DeadLetter, idempotency_key: str) -> None:
        """A replay handler that is never called: only the routing is compared."""

    replay = otpy.deadletter.ReplayConfig(
        store=otpy.deadletter.MemoryDeadLetterStore(),
        handlers={otpy.deadletter.Source.OUTBOUND: resend},
        partitions=4,
    )
    assert all(replay.partition_of(f"k{i}") == queue.partition_of(f"k{i}") for i in range(64))
    queue.put_nowait("orders:42", 1)
    queued = [p.queue.queued for p in queue.statistics().partitions]
    assert queued[7041023272453229123 % 4] == 1
    assert sum(queued) == 1


async def test_handler_error_is_counted_and_the_worker_goes_on() -> None:
    """A raising handler hands the item to on_error; its partition and others carry on."""
    queue: PartitionedQueue[int] = PartitionedQueue(2, 8, name="q")
    failures: list[tuple[str, int, str]] = []
    seen: list[int] = []
    bad, good = key_in(0, 2), key_in(1, 2)

    async def handler(key: str, item: int) -> None:
        await anyio.lowlevel.checkpoint()
        if item == 1:
            raise RuntimeError("boom")
        seen.append(item)

    async with open_partitioned_workers(
        queue, handler, on_error=lambda k, i, e: failures.append((k, i, str(e)))
    ):
        for n in range(3):
            await queue.put(bad, n)
        await queue.put(good, 10)
        assert await queue.aclose() == []
    assert failures == [(bad, 1, "boom")]
    assert sorted(seen) == [0, 2, 10]
    stats = queue.statistics()
    assert [(p.processed, p.errors) for p in stats.partitions] == [(2, 1), (1, 0)]
    assert (stats.processed, stats.errors, stats.redelivered) == (3, 1, 0)


async def test_handler_error_without_on_error_is_logged(caplog: pytest.LogCaptureFixture) -> None:
    """With no on_error, a handler error is logged (type, not payload) and counted."""
    queue: PartitionedQueue[str] = PartitionedQueue(1, 8, name="q")

    async def handler(key: str, item: str) -> None:
        raise ValueError(item)

    with caplog.at_level(logging.ERROR, logger="otpy.pressure"):
        async with open_partitioned_workers(queue, handler):
            await queue.put("k", "x")
            await queue.put("k", "y")
            assert await queue.aclose() == []
    assert queue.statistics().errors == 2
    assert [r.getMessage() for r in caplog.records] == [
        "queue 'q': handler raised ValueError in partition 0; the worker goes on"
    ] * 2


async def test_raising_on_error_crashes_the_worker_and_its_supervisor_restarts_it() -> None:
    """SUP-4/PRS-3: on_error re-raising crashes only that worker; the restart goes on with the next item.

    The failed item is not handled again (it was handed to on_error); the other
    partition's worker is the same incarnation throughout.
    """
    queue: PartitionedQueue[int] = PartitionedQueue(2, 8, name="q")
    sick, healthy = key_in(0, 2), key_in(1, 2)
    seen: list[int] = []

    async def handler(key: str, item: int) -> None:
        await anyio.lowlevel.checkpoint()
        if item == 1:
            raise RuntimeError("store is gone")
        seen.append(item)

    def on_error(key: str, item: int, exc: Exception) -> None:
        raise exc

    async with otpy.open_supervisor(queue.supervisor_spec(handler, on_error=on_error)) as sup:
        first, other = sup.child("q.0"), sup.child("q.1")
        await queue.put(healthy, 10)
        for n in range(3):
            await queue.put(sick, n)
        restarted = await sup.wait_child("q.0", other_than=first)
        assert sup.child("q.1") is other
        assert await queue.aclose() == []
        assert sup.statistics().total_restarts == 1
        assert first is not None
        assert isinstance(first.exit_reason, RuntimeError)
        assert restarted is not first
    assert sorted(seen) == [0, 2, 10]
    stats = queue.statistics()
    assert (stats.processed, stats.errors, stats.redelivered) == (3, 1, 0)


async def test_sup_5_workers_crashing_past_intensity_end_the_block() -> None:
    """SUP-5: more crashes than the intensity allows stop the supervisor; the block raises."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 8, name="q")

    async def handler(key: str, item: int) -> None:
        raise RuntimeError(item)

    def on_error(key: str, item: int, exc: Exception) -> None:
        raise exc

    with pytest.raises(otpy.RestartIntensityExceeded):
        async with open_partitioned_workers(queue, handler, on_error=on_error, intensity=2):
            for n in range(8):
                await queue.put("k", n)
            await anyio.sleep_forever()
    assert queue.statistics().errors == 3  # the third crash is one too many
    assert queue.statistics().partitions[0].worker is None


@virtual
async def test_prs_3_a_killed_worker_is_restarted_and_redelivers_the_item_in_hand() -> None:
    """SUP-4/PRS-3: a worker killed mid-item is restarted; the item runs again first, in order."""
    queue: PartitionedQueue[int] = PartitionedQueue(2, 8, name="q")
    victim, bystander = key_in(0, 2), key_in(1, 2)
    calls: list[int] = []
    entered = anyio.Event()

    async def handler(key: str, item: int) -> None:
        calls.append(item)
        if item == 1 and calls.count(1) == 1:
            entered.set()
            await anyio.sleep_forever()

    async with otpy.open_supervisor(queue.supervisor_spec(handler)) as sup:
        other = sup.child("q.1")
        for n in range(4):
            await queue.put(victim, n)
        await entered.wait()
        first = sup.child("q.0")
        assert first is not None
        assert queue.statistics().partitions[0].worker == first.label
        first.kill()
        await sup.wait_child("q.0", other_than=first)
        await queue.put(bystander, 10)
        assert sup.child("q.1") is other
        assert await queue.aclose() == []
    assert calls == [0, 1, 1, 2, 3, 10]
    assert queue.statistics().partitions[0].redelivered == 1


@virtual
async def test_a_graceful_stop_lets_the_item_in_hand_finish() -> None:
    """SUP-9/PRS-10: stopping the workers waits for the handler in progress; the rest stay queued."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 8, name="q")
    for n in range(4):
        queue.put_nowait("k", n)
    entered, release = anyio.Event(), anyio.Event()
    done: list[int] = []

    async def handler(key: str, item: int) -> None:
        entered.set()
        await release.wait()
        done.append(item)

    async with anyio.create_task_group() as tg:
        async with open_partitioned_workers(queue, handler, max_demand=2, shutdown=30):
            await entered.wait()
            tg.start_soon(anyio.sleep, 10)  # the stop below waits; release in the meantime
            tg.start_soon(_release_later, release, 10)
        assert anyio.current_time() == pytest.approx(10)  # waited for the handler, no kill
    assert done == [0]
    assert queue.statistics().redelivered == 0
    assert await queue.aclose() == [("k", 1), ("k", 2), ("k", 3)]


async def _release_later(event: anyio.Event, delay: float) -> None:
    await anyio.sleep(delay)
    event.set()


async def test_worker_specs_fit_a_tree_of_ones_own() -> None:
    """The worker specs are ordinary transient children: ids, names, shutdown as asked."""
    queue: PartitionedQueue[int] = PartitionedQueue(3, 8, name="q")
    seen, handler = recorder()
    specs = queue.worker_specs(handler, shutdown=2.0, id_prefix="lane", register=True)
    assert [(c.id, c.name, c.restart, c.shutdown) for c in specs] == [
        (f"lane.{i}", f"lane.{i}", otpy.Restart.TRANSIENT, 2.0) for i in range(3)
    ]
    async with otpy.open_supervisor(specs):
        assert otpy.whereis("lane.2") is not None
        await queue.put("a", 1)
        assert await queue.aclose() == []
    assert seen == [("a", 1)]


async def test_prs_10_aclose_drains_everything_then_refuses_puts() -> None:
    """PRS-10: aclose lets workers finish all queued work; later puts raise QueueClosed."""
    queue: PartitionedQueue[int] = PartitionedQueue(3, 32, name="q")
    seen, handler = recorder()
    async with open_partitioned_workers(queue, handler, max_demand=2):
        for n in range(30):
            queue.put_nowait(f"key-{n % 5}", n)
        assert await queue.aclose(timeout=5) == []
        assert queue.closed
        with pytest.raises(QueueClosed) as info:
            await queue.put("key-0", 99)
        assert isinstance(info.value, PressureError)
        assert info.value.reason == "closed"
        with pytest.raises(QueueClosed):
            queue.put_nowait("key-0", 99)
    assert sorted(item for _, item in seen) == list(range(30))
    assert queue.statistics().closed


async def test_prs_10_aclose_without_workers_returns_everything_in_order() -> None:
    """PRS-10: with no workers, aclose hands back every queued item, per partition in order."""
    queue: PartitionedQueue[int] = PartitionedQueue(2, 8, name="q")
    a, b = key_in(0, 2), key_in(1, 2)
    for n in range(3):
        await queue.put(a, n)
        await queue.put(b, 10 + n)
    assert await queue.aclose() == [(a, 0), (a, 1), (a, 2), (b, 10), (b, 11), (b, 12)]
    assert queue.statistics().queued == 0


@virtual
async def test_prs_10_aclose_timeout_cancels_and_returns_the_unfinished() -> None:
    """PRS-10: work not done within the timeout is cancelled and returned, not lost."""
    queue: PartitionedQueue[int] = PartitionedQueue(2, 8, name="q")
    stuck, free = key_in(0, 2), key_in(1, 2)
    done: list[int] = []

    async def handler(key: str, item: int) -> None:
        if key == stuck:
            await anyio.sleep_forever()
        done.append(item)

    async with open_partitioned_workers(queue, handler, max_demand=2, min_demand=0):
        for n in range(4):
            await queue.put(stuck, n)
            await queue.put(free, 10 + n)
        started = anyio.current_time()
        leftovers = await queue.aclose(timeout=5)
        assert anyio.current_time() - started == pytest.approx(5)
    # the cancelled item first, then the rest of its demand, then what was still queued
    assert leftovers == [(stuck, 0), (stuck, 1), (stuck, 2), (stuck, 3)]
    assert done == [10, 11, 12, 13]
    assert queue.statistics().outstanding == 0
    assert queue.statistics().queued == 0


async def test_prs_10_a_put_deferred_before_aclose_is_still_drained() -> None:
    """PRS-10: a put waiting for admission when aclose starts is admitted and handled."""
    policy = PressurePolicy(defer=frozenset({Priority.NORMAL}))
    queue: PartitionedQueue[int] = PartitionedQueue(1, 10, name="q", policy=policy)
    for n in range(9):  # 9/10 is degraded: a normal put is deferred
        queue.put_nowait("k", n, priority=Priority.CRITICAL)
    seen, handler = recorder()
    async with anyio.create_task_group() as tg:
        tg.start_soon(queue.put, "k", 99)
        await anyio.wait_all_tasks_blocked()
        assert queue.statistics().partitions[0].queue.deferred == 1
        async with open_partitioned_workers(queue, handler, max_demand=3):
            assert await queue.aclose() == []
    assert [item for _, item in seen] == [*range(9), 99]


@virtual
async def test_leaving_the_block_keeps_unfinished_items_for_the_next_workers() -> None:
    """Leaving the block stops (and, past shutdown, kills) the workers without dropping.

    The next workers resume in order, starting with the interrupted item (PRS-10).
    """
    queue: PartitionedQueue[int] = PartitionedQueue(1, 8, name="q")
    for n in range(4):
        queue.put_nowait("k", n)
    entered = anyio.Event()

    async def stuck(key: str, item: int) -> None:
        entered.set()
        await anyio.sleep_forever()

    async with open_partitioned_workers(queue, stuck, max_demand=2):
        await entered.wait()
        assert queue.statistics().outstanding == 2
    assert queue.statistics().outstanding == 2  # still owned by the queue
    seen, handler = recorder()
    async with open_partitioned_workers(queue, handler, max_demand=2):
        assert await queue.aclose() == []
    assert [item for _, item in seen] == [0, 1, 2, 3]  # the interrupted item runs again


async def test_one_set_of_workers_at_a_time() -> None:
    """A queue with workers refuses a second set with anyio.BusyResourceError."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 4, name="q")
    _, handler = recorder()
    async with open_partitioned_workers(queue, handler):
        with pytest.raises(anyio.BusyResourceError, match="already has workers"):
            async with open_partitioned_workers(queue, handler):
                pass  # pragma: no cover


@virtual
async def test_prs_10_shutting_down_drains_then_dead_letters_what_was_not_finished() -> None:
    """PRS-10/DL-1: a tree's shutdown drains the queue first; what is left becomes dead letters.

    The drainer stops before the workers (reverse start order), closes the queue, and
    gives the workers the drain timeout; the stuck partition's items are stored,
    with their own keys, before the dead-letter service stops.
    """
    store = MemoryDeadLetterStore()
    queue: PartitionedQueue[int] = PartitionedQueue(2, 16, name="jobs")
    stuck, free = key_in(0, 2), key_in(1, 2)
    done: list[int] = []

    async def handler(key: str, item: int) -> None:
        if key == stuck and item >= 1:
            await anyio.sleep_forever()
        await anyio.sleep(1)
        done.append(item)

    workers = queue.supervisor_spec(
        handler, drain=5.0, on_leftovers=dead_letter_leftovers(DeadLetters())
    )
    dead_letters = otpy.SupervisorSpec(
        id="dead-letters",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE),
        # route: anything undeliverable would be stored too; nothing but the two
        # leftovers may be (no worker nudges, no exit signals).
        children=dead_letter_children(store, sweep=False, route=True),
    )
    async with otpy.open_supervisor([dead_letters, workers]):
        for n in range(3):
            queue.put_nowait(stuck, n)
            queue.put_nowait(free, 10 + n)
        started = anyio.current_time()
    assert anyio.current_time() - started == pytest.approx(5)  # the drain timeout
    assert sorted(done) == [0, 10, 11, 12]
    records = sorted((await store.list(limit=100)).records, key=lambda r: r.id)
    assert [(r.key, json.loads(r.payload or b"")) for r in records] == [(stuck, 1), (stuck, 2)]
    assert {(r.source, r.reason_class, r.category) for r in records} == {
        (Source.UNDELIVERABLE, "otpy.QueueClosed", Category.RETRYABLE)
    }
    assert all(dict(r.headers) == {QUEUE_HEADER: "jobs"} for r in records)
    with pytest.raises(QueueClosed):
        queue.put_nowait(free, 99)


async def test_prs_10_a_drained_queue_reopens_when_its_workers_start_again() -> None:
    """PRS-10: the drainer reopens the queue at start, so a restarted tree accepts work again."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 8, name="jobs")
    seen, handler = recorder()
    spec = queue.supervisor_spec(handler, drain=1.0)
    async with otpy.open_supervisor(spec):
        await queue.put("k", 1)
    assert queue.statistics().closed
    async with otpy.open_supervisor(spec):
        assert not queue.statistics().closed
        await queue.put("k", 2)
    assert seen == [("k", 1), ("k", 2)]


def test_drain_timeout_must_be_positive() -> None:
    """A drain timeout of 0 is refused when the spec is built, naming the queue."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 8, name="jobs")
    with pytest.raises(
        ValueError, match=r"queue 'jobs': drain timeout must be a finite number > 0, got 0"
    ):
        queue.drain_spec(0)


async def test_clear_takes_what_no_worker_demanded_and_leaves_the_queue_open() -> None:
    """clear() hands back the undemanded items in order; the item in hand stays; puts go on."""
    queue: PartitionedQueue[int] = PartitionedQueue(2, 8, name="q")
    a = key_in(0, 2)
    entered, release = anyio.Event(), anyio.Event()
    seen: list[int] = []

    async def handler(key: str, item: int) -> None:
        if item == 0:
            entered.set()
            await release.wait()
        seen.append(item)

    async with open_partitioned_workers(queue, handler, max_demand=1):
        await queue.put(a, 0)
        await entered.wait()
        for n in (1, 2):
            await queue.put(a, n)
        assert queue.clear() == [(a, 1), (a, 2)]
        assert queue.statistics().outstanding == 1  # the item in hand
        assert queue.statistics().queued == 0
        release.set()
        await queue.put(a, 3)
        assert await queue.aclose() == []
    assert seen == [0, 3]


def test_callbacks_that_would_fail_on_every_item_are_refused_when_the_spec_is_built() -> None:
    """A sync handler, an async on_error or a sync on_leftovers is a TypeError naming the fix."""
    queue: PartitionedQueue[int] = PartitionedQueue(1, 8, name="jobs")
    _, handler = recorder()

    def sync_handler(key: str, item: int) -> None: ...

    async def async_on_error(key: str, item: int, exc: Exception) -> None: ...

    def sync_leftovers(queue_name: str, leftovers: list[tuple[str, int]]) -> None: ...

    with pytest.raises(TypeError, match=r"handler must be an async function \(async def handler"):
        queue.worker_specs(sync_handler)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match=r"on_error must be a plain function called synchronously"):
        queue.supervisor_spec(handler, on_error=async_on_error)
    with pytest.raises(TypeError, match=r"on_leftovers must be an async function"):
        queue.drain_spec(1.0, on_leftovers=sync_leftovers)  # type: ignore[arg-type]

    class Handler:
        async def __call__(self, key: str, item: int) -> None: ...

    assert len(queue.worker_specs(Handler())) == 1  # an object with an async __call__ will do
