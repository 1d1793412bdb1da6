"""The replay supervisor: the guard's outcomes end to end, partitioning, timeouts, telemetry (DL-4, DL-6..DL-10, TEL-4)."""

from __future__ import annotations

import functools
from collections import Counter
from typing import TYPE_CHECKING, Any, cast

import anyio
import pytest
from opentelemetry import trace
from opentelemetry.trace import StatusCode

import otpy
from otpy import (
    InvalidChildSpec,
    InvalidReplayHandler,
    NoReplayHandler,
    ReplayFailed,
    ReplayOutcomeUnknown,
    ReplayRejected,
    ReplayUnavailable,
)
from otpy.deadletter import (
    DeadLetter,
    DeadLetterFilter,
    LedgerState,
    MemoryDeadLetterStore,
    ReplayConfig,
    Replayer,
    ReplayOutcome,
    ReplayResult,
    ReplayStatus,
    Source,
    open_replayer,
    open_store,
    replay_supervisor,
)
from otpy.pressure import partition_of, stable_hash
from otpy.telemetry import (
    ATTR_DEADLETTER_ID,
    ATTR_DEADLETTER_KEY,
    ATTR_DEADLETTER_SOURCE,
    ATTR_REPLAY_ATTEMPT,
    ATTR_REPLAY_FORCE,
    ATTR_REPLAY_OUTCOME,
    ATTR_REPLAY_PARTITION,
    METRIC_REPLAY_OUTCOMES,
    SPAN_DEADLETTER_REPLAY,
)
from otpy.testing import capture_metrics, capture_spans, virtual_time

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable
    from pathlib import Path

    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otpy.deadletter import ReplayHandler

TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


class FakeClock:
    """A wall clock that moves only when told to: leases expire on demand."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Destination:
    """A fake destination that counts side effects per idempotency key.

    ``before[id]`` runs before the side effect (raise there to fail without one);
    ``after[id]`` runs after it (block there to die between side effect and commit).
    """

    def __init__(self) -> None:
        self.effects: Counter[str] = Counter()
        self.order: list[str] = []
        self.before: dict[str, Callable[[], Awaitable[None]]] = {}
        self.after: dict[str, Callable[[], Awaitable[None]]] = {}

    async def send(self, record: DeadLetter, key: str) -> None:
        """The replay handler."""
        self.order.append(record.id)
        hook = self.before.get(record.id)
        if hook is not None:
            await hook()
        self.effects[key] += 1
        hook = self.after.get(record.id)
        if hook is not None:
            await hook()


def capture(clock: FakeClock, key: str = "orders:1", **options: Any) -> DeadLetter:
    """A new outbound record, stamped by *clock*."""
    fields: dict[str, Any] = {
        "source": Source.OUTBOUND,
        "reason_class": "httpx.ConnectTimeout",
        "reason": "connect timed out",
        "payload": b'{"order": 1}',
        "trace_context": {},
    }
    fields.update(options)
    return DeadLetter.capture(key=key, now=clock(), **fields)


def keys_in_distinct_partitions(count: int, partitions: int = 4) -> list[str]:
    """Return *count* keys that land in *count* different partitions."""
    found: dict[int, str] = {}
    for i in range(1000):
        key = f"dest:{i}"
        found.setdefault(partition_of(key, partitions), key)
        if len(found) == count:
            return list(found.values())
    raise AssertionError("not enough partitions hit")  # pragma: no cover - 1000 keys suffice


def blocker(entered: anyio.Event, release: anyio.Event) -> Callable[[], Awaitable[None]]:
    """A hook that says it has started, then waits to be released."""

    async def hook() -> None:
        entered.set()
        await release.wait()

    return hook


def supervisor() -> otpy.SupervisorRef:
    """The replay supervisor registered as ``replay``."""
    ref = otpy.whereis("replay")
    assert ref is not None
    return otpy.supervisor_ref(ref)


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock."""
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> MemoryDeadLetterStore:
    """An in-memory store on the fake clock."""
    return MemoryDeadLetterStore(clock=clock)


@pytest.fixture
def dest() -> Destination:
    """A fake destination."""
    return Destination()


# -- one record: the guard's outcomes -------------------------------------------------


async def test_replay_sends_once_and_marks_succeeded(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-6: a replay re-sends the record with its replay key and marks it succeeded."""
    record = capture(clock, idempotency_key="order-1")
    await store.add_many([record])
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        result = await replayer.replay(record.id)
    assert result.outcome is ReplayOutcome.REPLAYED
    assert result.raise_for_outcome() is result
    assert result.succeeded
    assert result.error is None
    assert dest.effects == Counter({"order-1": 1})
    stored = await store.get(record.id)
    assert result.record == stored
    assert stored.replay.status is ReplayStatus.SUCCEEDED
    assert stored.replay.attempts == 1
    assert stored.replay.last_attempt_at == clock.now
    assert stored.replay.lease_expires_at is None
    entry = await store.ledger("order-1")
    assert entry is not None
    assert entry.state is LedgerState.COMMITTED


async def test_replay_again_is_already_replayed_without_a_side_effect(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-7: replaying a succeeded record answers already_replayed and sends nothing."""
    record = capture(clock)
    await store.add_many([record])
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        await replayer.replay(record.id)
        again = await replayer.replay(record.id)
    assert again.outcome is ReplayOutcome.ALREADY_REPLAYED
    assert again.succeeded
    assert dest.effects == Counter({f"dead_letter:{record.id}": 1})
    assert (await store.get(record.id)).replay.attempts == 1
    with pytest.raises(ReplayRejected, match="already replayed successfully") as info:
        again.raise_for_outcome()
    assert info.value.outcome == "already_replayed"


async def test_force_sends_a_succeeded_record_again(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-7: force re-sends a record that was already replayed."""
    record = capture(clock)
    await store.add_many([record])
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        await replayer.replay(record.id)
        forced = await replayer.replay(record.id, force=True)
    assert forced.outcome is ReplayOutcome.REPLAYED
    assert dest.effects[record.replay_key] == 2
    assert (await store.get(record.id)).replay.attempts == 2


async def test_archived_record_is_rejected_even_forced(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-4: an archived record is never replayed, with or without force."""
    record = capture(clock)
    await store.add_many([record])
    await store.archive(DeadLetterFilter(ids=(record.id,)))
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        plain = await replayer.replay(record.id)
        forced = await replayer.replay(record.id, force=True)
    assert plain.outcome is forced.outcome is ReplayOutcome.REJECTED_ARCHIVED
    assert not plain.succeeded
    assert dest.order == []
    with pytest.raises(ReplayRejected, match="it is archived"):
        plain.raise_for_outcome()


async def test_concurrent_replay_of_the_same_record_is_in_progress(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-7: while one replay supervisor holds a record, another's request answers in_progress."""
    record = capture(clock)
    await store.add_many([record])
    entered, release = anyio.Event(), anyio.Event()
    dest.before[record.id] = blocker(entered, release)
    handlers = {Source.OUTBOUND: dest.send}
    results: list[ReplayResult] = []

    async def first(replayer: Replayer) -> None:
        results.append(await replayer.replay(record.id))

    async with (
        open_replayer(store, handlers, name="replay") as node_replayer,
        open_replayer(store, handlers, name="cli_replay") as cli_replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(first, node_replayer)
        await entered.wait()
        second = await cli_replayer.replay(record.id)
        forced = await cli_replayer.replay(record.id, force=True)
        release.set()
    assert second.outcome is forced.outcome is ReplayOutcome.IN_PROGRESS
    assert [r.outcome for r in results] == [ReplayOutcome.REPLAYED]
    assert dest.effects[record.replay_key] == 1
    with pytest.raises(ReplayRejected, match="is running under a live lease"):
        second.raise_for_outcome()


async def test_failed_replay_stays_on_the_record_and_can_be_replayed(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-6: a failed replay marks the same record failed (no second dead letter); a retry succeeds."""
    record = capture(clock)
    await store.add_many([record])

    async def refuse() -> None:
        raise ConnectionError("503 from upstream, token=s3cr3t-value")

    dest.before[record.id] = refuse
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        failed = await replayer.replay(record.id)
        assert failed.outcome is ReplayOutcome.FAILED
        assert failed.error == "ConnectionError: 503 from upstream, token=[redacted]"
        with pytest.raises(ReplayFailed, match=r"failed: ConnectionError: 503"):
            failed.raise_for_outcome()
        stored = await store.get(record.id)
        assert stored.replay.status is ReplayStatus.FAILED
        assert stored.replay.last_error == failed.error
        assert await store.count() == 1
        assert await store.ledger(record.replay_key) is None
        del dest.before[record.id]
        retried = await replayer.replay(record.id)
    assert retried.outcome is ReplayOutcome.REPLAYED
    assert retried.record is not None
    assert retried.record.replay.attempts == 2
    assert dest.effects[record.replay_key] == 1
    assert await store.count() == 1


async def test_no_handler_for_the_source_is_refused_before_any_lease(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """A record whose source has no handler raises NoReplayHandler and is left untouched."""
    record = capture(clock, source=Source.INGEST)
    await store.add_many([record])
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        with pytest.raises(
            NoReplayHandler, match=r"source 'ingest' \(registered: \['outbound'\]\)"
        ):
            await replayer.replay(record.id)
        with pytest.raises(NoReplayHandler):
            await replayer.replay_many(DeadLetterFilter())
    assert await store.get(record.id) == record
    assert dest.order == []


async def test_unknown_record_is_not_found(store: MemoryDeadLetterStore, dest: Destination) -> None:
    """DL-3: replaying an id the store does not hold raises DeadLetterNotFound."""
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        with pytest.raises(otpy.DeadLetterNotFound):
            await replayer.replay(otpy.deadletter.new_id())


async def test_reclaim_without_expired_leases_reclaims_nothing(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-9: a record whose lease is live is never reclaimed, even on an explicit sweep."""
    record = capture(clock)
    await store.add_many([record])
    entered, release = anyio.Event(), anyio.Event()
    dest.after[record.id] = blocker(entered, release)
    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(replayer.replay, record.id)
        await entered.wait()
        clock.advance(replayer.config.lease - 1)
        assert await replayer.reclaim() == []
        release.set()
    assert (await store.get(record.id)).replay.status is ReplayStatus.SUCCEEDED


# -- in doubt ---------------------------------------------------------------------------


async def test_outcome_unknown_is_in_doubt_and_never_resent_unless_forced(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: a handler raising ReplayOutcomeUnknown leaves the record in doubt; only force resends."""
    record = capture(clock)
    await store.add_many([record])

    async def unsure() -> None:
        raise ReplayOutcomeUnknown("read timed out after the request was sent")

    dest.after[record.id] = unsure
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        doubt = await replayer.replay(record.id)
        again = await replayer.replay(record.id)
        del dest.after[record.id]
        forced = await replayer.replay(record.id, force=True)
    assert doubt.outcome is ReplayOutcome.IN_DOUBT
    assert doubt.error == ("otpy.ReplayOutcomeUnknown: read timed out after the request was sent")
    assert again.outcome is ReplayOutcome.IN_DOUBT
    with pytest.raises(ReplayRejected, match="may have happened"):
        again.raise_for_outcome()
    assert forced.outcome is ReplayOutcome.REPLAYED
    assert dest.effects[record.replay_key] == 2


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_handler_timeout_is_in_doubt(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: a handler still running after handler_timeout is cancelled; the record is in doubt."""
    record = capture(clock)
    await store.add_many([record])
    dest.after[record.id] = anyio.sleep_forever
    with capture_spans() as exporter:
        async with open_replayer(
            store, {Source.OUTBOUND: dest.send}, handler_timeout=10.0, reclaim_interval=60.0
        ) as replayer:
            start = anyio.current_time()
            result = await replayer.replay(record.id)
            elapsed = anyio.current_time() - start
    assert elapsed == 10.0
    [span] = [s for s in exporter.get_finished_spans() if s.name == SPAN_DEADLETTER_REPLAY]
    assert span.attributes is not None
    assert (span.attributes[ATTR_REPLAY_OUTCOME], span.attributes["error.type"]) == (
        "in_doubt",
        "timeout",
    )
    assert span.status.status_code is StatusCode.ERROR
    assert result.outcome is ReplayOutcome.IN_DOUBT
    assert result.error == (
        "the handler did not finish within 10s and was cancelled: the side effect may have happened"
    )
    entry = await store.ledger(record.replay_key)
    assert entry is not None
    assert entry.state is LedgerState.PENDING
    assert dest.effects[record.replay_key] == 1


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_handler_finishing_within_the_timeout_is_replayed(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: the twin: a handler that takes just under handler_timeout succeeds."""
    record = capture(clock)
    await store.add_many([record])

    async def slow() -> None:
        await anyio.sleep(9.999)

    dest.after[record.id] = slow
    async with open_replayer(
        store, {Source.OUTBOUND: dest.send}, handler_timeout=10.0, reclaim_interval=60.0
    ) as replayer:
        result = await replayer.replay(record.id)
    assert result.outcome is ReplayOutcome.REPLAYED


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_request_still_queued_when_its_call_times_out_never_runs(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """A replay that timed out while queued gets no outcome and is never run afterwards."""
    first, second = capture(clock), capture(clock)
    await store.add_many([first, second])
    entered, release = anyio.Event(), anyio.Event()
    dest.before[first.id] = blocker(entered, release)
    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}, reclaim_interval=60.0) as replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(replayer.replay, first.id)
        await entered.wait()
        late = await replayer.replay(second.id, timeout=2.0)
        release.set()
    assert late.outcome is None
    assert late.error is not None
    assert "did not answer within 2s: if the replay had not started it never will" in late.error
    with pytest.raises(ReplayUnavailable, match=r"has no outcome: replay worker 'replay\.\d'"):
        late.raise_for_outcome()
    assert dest.order == [first.id]
    assert (await store.get(second.id)).replay.status is ReplayStatus.NEVER


async def test_prs_3_replay_requests_go_through_the_shared_partitioned_queue(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """PRS-3/DL-10: the replay workers are the PartitionWorkers of the config's PartitionedQueue.

    Each request is counted by its key's partition, and the queue's workers are the
    registered replay workers.
    """
    keys = keys_in_distinct_partitions(2)
    records = [
        capture(clock, key=keys[0]),
        capture(clock, key=keys[0]),
        capture(clock, key=keys[1]),
    ]
    await store.add_many(records)
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        for record in records:
            (await replayer.replay(record.id)).raise_for_outcome()
        queue = replayer.config.queue
        stats = queue.statistics()
        worker = otpy.whereis(replayer.config.worker_name(queue.partition_of(keys[0])))
        assert worker is not None
        assert stats.partitions[queue.partition_of(keys[0])].worker == worker.label
    assert queue.name == "replay"
    assert [p.processed for p in stats.partitions if p.processed] == (
        [2, 1] if queue.partition_of(keys[0]) < queue.partition_of(keys[1]) else [1, 2]
    )
    assert (stats.errors, stats.redelivered, stats.max_demand) == (0, 0, 1)


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_prs_8_a_full_replay_partition_refuses_the_request_without_replaying(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """PRS-8: past ``capacity`` waiting requests a replay gets no outcome and a QueueFull reason."""
    first, second, third = (capture(clock) for _ in range(3))
    await store.add_many([first, second, third])
    entered, release = anyio.Event(), anyio.Event()
    dest.before[first.id] = blocker(entered, release)
    results: list[ReplayResult] = []

    async def replay(record_id: str) -> None:
        results.append(await replayer.replay(record_id))

    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}, capacity=1) as replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(replay, first.id)
        await entered.wait()  # first is in hand: the partition queue is empty
        tg.start_soon(replay, second.id)  # waits in the queue: 1/1
        await anyio.wait_all_tasks_blocked()
        full = await replayer.replay(third.id)
        release.set()
    assert full.outcome is None
    assert full.error is not None
    assert "queue 'replay[" in full.error
    assert full.error.endswith("; nothing was replayed")
    with pytest.raises(ReplayUnavailable):
        full.raise_for_outcome()
    assert [r.outcome for r in results] == [ReplayOutcome.REPLAYED, ReplayOutcome.REPLAYED]
    assert dest.order == [first.id, second.id]
    assert (await store.get(third.id)).replay.status is ReplayStatus.NEVER


async def test_replaying_without_a_running_supervisor_says_so_at_once(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """A replayer whose supervisor is not running answers ``noproc`` at once, sends nothing."""
    record = capture(clock)
    await store.add_many([record])
    config = ReplayConfig(store=store, handlers={Source.OUTBOUND: dest.send})
    async with otpy.open_node():
        result = await config.replayer().replay(record.id, timeout=None)
    assert result.outcome is None
    assert result.error is not None
    assert result.error.startswith("replay worker 'replay.")
    assert "is not running (noproc); nothing was replayed" in result.error
    assert dest.order == []


# -- partitions -------------------------------------------------------------------------


def test_stable_hash_is_fixed_across_processes() -> None:
    """DL-10: stable_hash is BLAKE2b, not the per-process salted hash(): a pinned value."""
    assert stable_hash("orders:42") == 7041023272453229123
    assert partition_of("orders:42", 4) == 7041023272453229123 % 4


def test_stable_hash_spreads_keys_over_partitions() -> None:
    """DL-10: a thousand keys spread over four partitions, none far from a quarter."""
    counts = Counter(partition_of(f"customer-{i}", 4) for i in range(1000))
    assert sorted(counts) == [0, 1, 2, 3]
    assert all(200 <= n <= 300 for n in counts.values()), counts


async def test_same_key_replays_in_order_on_one_worker(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-10: replays for one key wait for each other, in the order requested."""
    records = [capture(clock, key="orders:7") for _ in range(3)]
    await store.add_many(records)
    entered, release = anyio.Event(), anyio.Event()
    dest.before[records[0].id] = blocker(entered, release)
    results: dict[str, ReplayResult] = {}

    async def replay(replayer: Replayer, record_id: str) -> None:
        results[record_id] = await replayer.replay(record_id)

    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(replay, replayer, records[0].id)
        await entered.wait()
        for record in records[1:]:
            tg.start_soon(replay, replayer, record.id)
            await anyio.wait_all_tasks_blocked()
        assert dest.order == [records[0].id]  # the others wait behind it
        release.set()
    assert dest.order == [r.id for r in records]
    assert {r.outcome for r in results.values()} == {ReplayOutcome.REPLAYED}


async def test_different_partitions_replay_concurrently(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-10: replays in two partitions run at the same time: each handler waits for the other."""
    key_a, key_b = keys_in_distinct_partitions(2)
    a, b = capture(clock, key=key_a), capture(clock, key=key_b)
    await store.add_many([a, b])
    a_in, b_in = anyio.Event(), anyio.Event()
    dest.before[a.id] = blocker(a_in, b_in)
    dest.before[b.id] = blocker(b_in, a_in)
    results: list[ReplayResult] = []

    async def replay(replayer: Replayer, record_id: str) -> None:
        results.append(await replayer.replay(record_id))

    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        with anyio.fail_after(10):  # serialised, the two handlers would deadlock
            async with anyio.create_task_group() as tg:
                tg.start_soon(replay, replayer, a.id)
                tg.start_soon(replay, replayer, b.id)
    assert [r.outcome for r in results] == [ReplayOutcome.REPLAYED] * 2


async def test_replay_many_replays_oldest_first_and_reports_progress(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-6, DL-10: bulk replay covers every match, each key in capture order, with progress."""
    keys = keys_in_distinct_partitions(3)
    records = []
    for i in range(9):
        records.append(capture(clock, key=keys[i % 3]))
        clock.advance(1)
    await store.add_many(records)
    await store.archive(DeadLetterFilter(ids=(records[4].id,)))
    progress: list[ReplayResult] = []
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        results = await replayer.replay_many(DeadLetterFilter(), on_progress=progress.append)
    assert [r.record_id for r in results] == [r.id for r in records]
    assert sorted(r.record_id for r in progress) == sorted(r.id for r in records)
    assert [r.outcome for r in results] == [
        ReplayOutcome.REJECTED_ARCHIVED if i == 4 else ReplayOutcome.REPLAYED for i in range(9)
    ]
    for key in keys:
        sent = [i for i in dest.order if (await store.get(i)).key == key]
        assert sent == [r.id for r in records if r.key == key and r.id != records[4].id]


async def test_replay_many_pages_through_the_store(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-6: bulk replay reads past the first page and replays only what matches."""
    records = [capture(clock, key=f"k{i % 5}") for i in range(1203)]
    other = capture(clock, key="elsewhere", reason_class="ValueError")
    await store.add_many([*records, other])
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        results = await replayer.replay_many(DeadLetterFilter(reason_class="httpx.ConnectTimeout"))
    assert len(results) == 1203
    assert {r.outcome for r in results} == {ReplayOutcome.REPLAYED}
    assert other.id not in dest.order
    assert len(dest.order) == 1203


async def test_a_killed_worker_restarts_alone(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-10: killing one worker restarts that worker only; the others keep their incarnations."""
    async with open_replayer(store, {Source.OUTBOUND: dest.send}):
        sup = supervisor()
        before = {info.id: info.ref for info in sup.which_children()}
        assert list(before) == [
            "replay.0",
            "replay.1",
            "replay.2",
            "replay.3",
            "replay.reclaimer",
        ]
        victim = before["replay.2"]
        assert victim is not None
        victim.kill()
        restarted = await sup.wait_child("replay.2", other_than=victim)
        after = {info.id: info.ref for info in sup.which_children()}
    assert restarted is not victim
    assert {k: v for k, v in after.items() if k != "replay.2"} == {
        k: v for k, v in before.items() if k != "replay.2"
    }


# -- configuration ----------------------------------------------------------------------


def test_spec_has_one_worker_per_partition_then_the_reclaimer(
    store: MemoryDeadLetterStore, dest: Destination
) -> None:
    """DL-10: the spec is one_for_one over N named workers and a reclaimer, in that order."""
    spec = replay_supervisor(store, {"outbound": dest.send}, name="rp", partitions=2)
    assert spec.flags.strategy is otpy.Strategy.ONE_FOR_ONE
    assert spec.name == "rp"
    assert [c.name for c in spec.children] == ["rp.0", "rp.1", "rp.reclaimer"]
    replayer = Replayer.from_spec(spec)
    assert replayer.config.partitions == 2
    assert replayer.config.lease == 60.0
    assert repr(replayer) == "<Replayer 'rp' partitions=2>"


def test_from_spec_refuses_other_supervisors() -> None:
    """Replayer.from_spec only accepts a replay supervisor's spec."""
    spec = otpy.SupervisorSpec(id="other", children=[])
    with pytest.raises(TypeError, match="'other' was not made by replay_supervisor"):
        Replayer.from_spec(spec)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"partitions": 0},
            r"^child 'replay': partitions must be an integer from 1 to 1024, got 0",
        ),
        (
            {"partitions": 1025},
            r"^child 'replay': partitions must be an integer from 1 to 1024, got 1025",
        ),
        ({"capacity": 0}, r"^child 'replay': capacity must be an integer >= 1, got 0"),
        ({"handler_timeout": 0}, r"^child 'replay': handler_timeout must be a finite number > 0"),
        ({"lease_margin": -1.0}, r"^child 'replay': lease_margin must be a finite number > 0"),
        ({"reclaim_interval": float("inf")}, r"reclaim_interval must be a finite number > 0"),
        ({"handlers": {}}, r"^child 'replay': handlers is empty"),
        ({"handlers": {"email": print}}, r"handler key 'email' is not a source \(ingest, "),
        ({"handlers": {"outbound": 42}}, r"the handler for 'outbound' is not callable"),
        ({"name": ""}, r"name must not be empty"),
        ({"name": "r\udc80"}, r"name must be valid text"),
        ({"partitions": 10**6}, r"^child 'replay': partitions must be an integer from 1 to 1024"),
        ({"capacity": 2.5}, r"^child 'replay': capacity must be an integer >= 1, got 2.5"),
        ({"handler_timeout": 10**400}, r"^child 'replay': handler_timeout must be a finite"),
        ({"lease_margin": True}, r"^child 'replay': lease_margin must be a finite number > 0"),
        ({"reclaim_interval": "5"}, r"^child 'replay': reclaim_interval must be a finite number"),
        ({"store": None}, r"^child 'replay': store must be a dead-letter store"),
        ({"handlers": None}, r"^child 'replay': handlers must be a mapping of source to handler"),
        ({"handlers": "ab"}, r"^child 'replay': handlers must be a mapping of source to handler"),
    ],
)
def test_config_is_validated_when_built(
    store: MemoryDeadLetterStore, dest: Destination, options: dict[str, Any], message: str
) -> None:
    """A bad replay config fails when built, naming the value."""
    fields: dict[str, Any] = {"store": store, "handlers": {Source.OUTBOUND: dest.send}}
    fields.update(options)
    with pytest.raises(InvalidChildSpec, match=message):
        ReplayConfig(**fields)


def sync_send(record: DeadLetter, key: str) -> None:
    """A synchronous handler: its side effect runs when it is called."""
    raise AssertionError("a synchronous handler must never be called")


class AsyncSender:
    """An object whose ``__call__`` is async."""

    def __init__(self, dest: Destination) -> None:
        self.dest = dest

    async def __call__(self, record: DeadLetter, key: str) -> None:
        """Send through the destination."""
        await self.dest.send(record, key)


async def send_on(channel: str, dest: Destination, record: DeadLetter, key: str) -> None:
    """An async function with leading arguments, to bind with functools.partial."""
    await dest.send(record, key)


@pytest.mark.parametrize(
    "handler",
    [sync_send, AsyncSender, lambda record, key: None, functools.partial(sync_send)],
    ids=["function", "class", "lambda", "partial"],
)
async def test_a_synchronous_handler_is_refused_when_registered(
    store: MemoryDeadLetterStore, handler: object
) -> None:
    """A sync handler (it would send, be marked failed, then send again) is a TypeError before anything runs."""
    message = (
        r"^child 'replay': the handler for 'outbound' is not an async callable: .+; a replay "
        r"handler is `async def handler\(record: DeadLetter, idempotency_key: str\)`"
    )
    handlers = cast("dict[str, ReplayHandler]", {"outbound": handler})
    with pytest.raises(InvalidReplayHandler, match=message) as info:
        ReplayConfig(store=store, handlers=handlers)
    assert isinstance(info.value, TypeError)
    assert isinstance(info.value, InvalidChildSpec)
    assert (info.value.source, info.value.handler) == ("outbound", handler)
    with pytest.raises(TypeError, match=message):
        replay_supervisor(store, handlers)
    with pytest.raises(TypeError, match=message):
        async with open_replayer(store, handlers):
            pytest.fail("the replayer started")  # pragma: no cover - the test fails here


@pytest.mark.parametrize("kind", ["callable object", "partial", "partial of an object"])
async def test_async_callable_objects_and_partials_are_handlers(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock, kind: str
) -> None:
    """An object with an async __call__, or a functools.partial of an async callable, replays."""
    handlers: dict[str, ReplayHandler] = {
        "callable object": AsyncSender(dest),
        "partial": functools.partial(send_on, "sms", dest),
        "partial of an object": functools.partial(AsyncSender(dest)),
    }
    handler = handlers[kind]
    record = capture(clock)
    await store.add_many([record])
    async with open_replayer(store, {Source.OUTBOUND: handler}) as replayer:
        result = await replayer.replay(record.id)
    assert result.outcome is ReplayOutcome.REPLAYED
    assert dest.order == [record.id]


async def test_a_handler_that_does_not_return_an_awaitable_leaves_the_record_in_doubt(
    store: MemoryDeadLetterStore, clock: FakeClock
) -> None:
    """A handler that slipped past the check ran synchronously: in doubt, never resent automatically."""
    sent: list[str] = []

    def send_now(record: DeadLetter, key: str) -> None:
        sent.append(key)

    record = capture(clock)
    await store.add_many([record])
    config = ReplayConfig(store=store, handlers={Source.OUTBOUND: AsyncSender(Destination())})
    object.__setattr__(config, "handlers", {"outbound": send_now})  # what the check refuses
    async with otpy.open_supervisor(config.supervisor_spec()):
        result = await config.replayer().replay(record.id)
        again = await config.replayer().replay(record.id)
    assert result.outcome is ReplayOutcome.IN_DOUBT
    assert result.error == (
        "the handler returned NoneType, not an awaitable: it ran synchronously, so the side "
        "effect may have happened"
    )
    assert again.outcome is ReplayOutcome.IN_DOUBT
    assert sent == [record.replay_key]


def test_smallest_valid_config_builds(store: MemoryDeadLetterStore, dest: Destination) -> None:
    """The twin: one partition and tiny positive timeouts are accepted."""
    config = ReplayConfig(
        store=store,
        handlers={Source.OUTBOUND: dest.send},
        partitions=1,
        handler_timeout=0.001,
        lease_margin=0.001,
        reclaim_interval=0.001,
    )
    assert config.partition_of("anything") == 0
    assert config.replayer().config is config
    assert ReplayConfig(store=store, handlers={Source.OUTBOUND: dest.send}, partitions=1024)


def test_raise_for_outcome_maps_every_outcome() -> None:
    """Every outcome but replayed raises the matching typed error."""
    rid = otpy.deadletter.new_id()
    assert ReplayResult(record_id=rid, outcome=ReplayOutcome.REPLAYED).raise_for_outcome()
    for outcome in ("already_replayed", "rejected_archived", "in_progress", "in_doubt"):
        result = ReplayResult(record_id=rid, outcome=ReplayOutcome(outcome))
        with pytest.raises(ReplayRejected) as info:
            result.raise_for_outcome()
        assert (info.value.record_id, info.value.outcome) == (rid, outcome)
    with pytest.raises(ReplayFailed, match="failed: boom"):
        ReplayResult(record_id=rid, outcome=ReplayOutcome.FAILED, error="boom").raise_for_outcome()
    with pytest.raises(ReplayUnavailable, match="has no outcome: gone"):
        ReplayResult(record_id=rid, outcome=None, error="gone").raise_for_outcome()


# -- telemetry --------------------------------------------------------------------------


def outcome_counts(reader: InMemoryMetricReader) -> dict[tuple[str, str], int]:
    """Return ``{(outcome, source): count}`` of the replay outcome counter."""
    counts: dict[tuple[str, str], int] = {}
    data = reader.get_metrics_data()
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == METRIC_REPLAY_OUTCOMES:
                    for point in metric.data.data_points:
                        attributes = point.attributes or {}
                        key = (
                            str(attributes[ATTR_REPLAY_OUTCOME]),
                            str(attributes[ATTR_DEADLETTER_SOURCE]),
                        )
                        counts[key] = counts.get(key, 0) + cast("Any", point).value
    return counts


async def test_replay_span_carries_the_outcome_and_links_to_the_failure(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """TEL-1, TEL-4: each replay has a span with its outcome, linked to the failed attempt's span."""
    record = capture(clock, key="orders:9", trace_context={"traceparent": TRACEPARENT})
    await store.add_many([record])
    seen: list[trace.SpanContext] = []

    async def handler(rec: DeadLetter, key: str) -> None:
        seen.append(trace.get_current_span().get_span_context())

    tracer = trace.get_tracer("tests")
    with capture_spans() as exporter, capture_metrics() as reader:
        async with open_replayer(store, {Source.OUTBOUND: handler}) as replayer:
            with tracer.start_as_current_span("operator request") as request_span:
                await replayer.replay(record.id)
                await replayer.replay(record.id)
        counts = outcome_counts(reader)
    spans = [s for s in exporter.get_finished_spans() if s.name == SPAN_DEADLETTER_REPLAY]
    assert [s.attributes[ATTR_REPLAY_OUTCOME] for s in spans if s.attributes] == [
        "replayed",
        "already_replayed",
    ]
    first = spans[0]
    assert first.attributes is not None
    assert {k: first.attributes[k] for k in first.attributes} == {
        ATTR_DEADLETTER_ID: record.id,
        ATTR_DEADLETTER_KEY: "orders:9",
        ATTR_DEADLETTER_SOURCE: "outbound",
        ATTR_REPLAY_PARTITION: partition_of("orders:9", 4),
        ATTR_REPLAY_FORCE: False,
        ATTR_REPLAY_OUTCOME: "replayed",
        ATTR_REPLAY_ATTEMPT: 1,
    }
    assert first.kind is trace.SpanKind.INTERNAL
    assert first.status.status_code is StatusCode.UNSET
    [link] = first.links
    assert format(link.context.trace_id, "032x") == "0af7651916cd43dd8448eb211c80319c"
    assert format(link.context.span_id, "016x") == "b7ad6b7169203331"
    assert first.parent is not None
    assert first.parent.span_id == request_span.get_span_context().span_id
    assert seen[0].span_id == first.context.span_id  # the handler runs inside the replay span
    assert counts == {("replayed", "outbound"): 1, ("already_replayed", "outbound"): 1}


async def test_failed_replay_span_is_an_error_without_a_link_when_no_context(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """TEL-3: a failed replay's span has status Error and error.type; no trace context, no link."""
    record = capture(clock)
    await store.add_many([record])

    async def refuse() -> None:
        raise ValueError("bad payload")

    dest.before[record.id] = refuse
    with capture_spans() as exporter, capture_metrics() as reader:
        async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
            await replayer.replay(record.id)
        counts = outcome_counts(reader)
    [span] = [s for s in exporter.get_finished_spans() if s.name == SPAN_DEADLETTER_REPLAY]
    assert span.attributes is not None
    assert span.attributes[ATTR_REPLAY_OUTCOME] == "failed"
    assert span.attributes["error.type"] == "ValueError"
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "ValueError: bad payload"
    assert list(span.links) == []
    assert counts == {("failed", "outbound"): 1}


# -- edges --------------------------------------------------------------------------------


async def test_record_purged_while_queued_is_reported_not_found(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-5: a record purged before its worker got to it: replay raises, replay_many reports it."""
    first, second, third = (capture(clock, key="orders:3") for _ in range(3))
    await store.add_many([first, second, third])
    entered, release = anyio.Event(), anyio.Event()
    dest.before[first.id] = blocker(entered, release)
    bulk: list[ReplayResult] = []

    async def replay_all(replayer: Replayer) -> None:
        bulk.extend(await replayer.replay_many(DeadLetterFilter(ids=(first.id, second.id))))

    async def replay_third(replayer: Replayer) -> None:
        with pytest.raises(otpy.DeadLetterNotFound, match=third.id):
            await replayer.replay(third.id)

    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(replay_all, replayer)
        await entered.wait()
        tg.start_soon(replay_third, replayer)
        await anyio.wait_all_tasks_blocked()
        await store.purge(DeadLetterFilter(ids=(second.id, third.id)))
        release.set()
    assert [r.outcome for r in bulk] == [ReplayOutcome.REPLAYED, None]
    assert bulk[1].error is not None
    assert bulk[1].error.startswith(f"dead letter {second.id!r} not found")
    assert dest.order == [first.id]


@pytest.mark.parametrize(
    ("error", "described"),
    [
        (RuntimeError(), "RuntimeError"),
        (KeyError("x"), "KeyError: 'x'"),
        (
            otpy.ActorStopped("db"),
            "otpy.ActorStopped: actor 'db' is not running (noproc)",
        ),
    ],
)
async def test_handler_errors_are_described_by_class_and_message(
    store: MemoryDeadLetterStore, clock: FakeClock, error: Exception, described: str
) -> None:
    """DL-6: a failed replay's error is the exception's qualified class and its message."""
    record = capture(clock)
    await store.add_many([record])

    async def handler(rec: DeadLetter, key: str) -> None:
        raise error

    async with open_replayer(store, {Source.OUTBOUND: handler}) as replayer:
        result = await replayer.replay(record.id)
    assert (result.outcome, result.error) == (ReplayOutcome.FAILED, described)


async def test_an_unprintable_handler_error_is_still_recorded(
    store: MemoryDeadLetterStore, clock: FakeClock
) -> None:
    """DL-6: an exception whose str() raises still marks the record failed, with its class."""
    record = capture(clock)
    await store.add_many([record])

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise ValueError("no")

    async def handler(rec: DeadLetter, key: str) -> None:
        raise Unprintable

    async with open_replayer(store, {Source.OUTBOUND: handler}) as replayer:
        result = await replayer.replay(record.id)
    assert result.outcome is ReplayOutcome.FAILED
    assert result.error is not None
    assert result.error.endswith("Unprintable: <unprintable message>")


async def test_worker_status_shows_no_store_or_handlers(
    store: MemoryDeadLetterStore, dest: Destination
) -> None:
    """ACT-15: get_status of a worker and the reclaimer shows names and counters, no store or handler."""
    async with open_replayer(store, {Source.OUTBOUND: dest.send}, partitions=2):
        worker, reclaimer = otpy.whereis("replay.1"), otpy.whereis("replay.reclaimer")
        assert worker is not None
        assert reclaimer is not None
        assert (await worker.get_status()).state == {
            "queue": "replay",
            "partition": 1,
            "outstanding": 0,
            "processed": 0,
            "errors": 0,
        }
        assert (await reclaimer.get_status()).state == {"replay": "replay"}


# -- on the SQLite store ------------------------------------------------------------------


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_replay_end_to_end_on_the_sqlite_store(
    tmp_path: Path, dest: Destination, clock: FakeClock
) -> None:
    """DL-6..DL-8: the same replay flow on the SQLite store; its outcome and ledger survive a reopen."""
    path = tmp_path / "dead.db"
    records = [capture(clock, key=f"orders:{i % 2}", idempotency_key=f"pay-{i}") for i in range(4)]

    async def refuse() -> None:
        raise ConnectionError("503")

    dest.before[records[3].id] = refuse
    async with open_store(path, clock=clock) as store:
        await store.add_many(records)
        async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
            results = await replayer.replay_many(DeadLetterFilter())
            assert [r.outcome for r in results] == [ReplayOutcome.REPLAYED] * 3 + [
                ReplayOutcome.FAILED
            ]
            again = await replayer.replay(records[0].id)
            assert again.outcome is ReplayOutcome.ALREADY_REPLAYED
            del dest.before[records[3].id]
            retried = await replayer.replay(records[3].id)
            assert retried.outcome is ReplayOutcome.REPLAYED
    async with open_store(path, clock=clock) as reopened:
        for record in records:
            stored = await reopened.get(record.id)
            assert stored.replay.status is ReplayStatus.SUCCEEDED
            entry = await reopened.ledger(record.replay_key)
            assert entry is not None
            assert entry.state is LedgerState.COMMITTED
        assert (await reopened.get(records[3].id)).replay.attempts == 2
    assert dest.effects == Counter({f"pay-{i}": 1 for i in range(4)})


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_requests_queued_when_the_supervisor_stops_are_answered_at_once(
    store: MemoryDeadLetterStore, dest: Destination, clock: FakeClock
) -> None:
    """A request still queued when the replay supervisor stops gets no outcome at once.

    It is not left waiting for its timeout, and nothing is sent; the replay in hand
    finishes (a graceful stop).
    """
    first, second = capture(clock), capture(clock)
    await store.add_many([first, second])
    entered, release = anyio.Event(), anyio.Event()
    dest.before[first.id] = blocker(entered, release)
    results: dict[str, ReplayResult] = {}

    async def replay(replayer: Replayer, record_id: str) -> None:
        results[record_id] = await replayer.replay(record_id, timeout=120)
        if record_id == second.id:
            release.set()  # only once the queued one has its answer

    async with (
        anyio.create_task_group() as tg,
        open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer,
    ):
        tg.start_soon(replay, replayer, first.id)
        await entered.wait()
        tg.start_soon(replay, replayer, second.id)
        await anyio.wait_all_tasks_blocked()
    late = results[second.id]
    assert late.outcome is None
    assert late.error == (
        "replay supervisor 'replay' stopped before this request ran; nothing was replayed: "
        "replay it again"
    )
    assert results[first.id].outcome is ReplayOutcome.REPLAYED
    assert dest.order == [first.id]
    assert (await store.get(second.id)).replay.status is ReplayStatus.NEVER
