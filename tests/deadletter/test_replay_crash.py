"""Replay workers that die mid-replay: leases, the reclaimer and the idempotency ledger (DL-8..DL-10)."""

from __future__ import annotations

from collections import Counter, defaultdict
from typing import TYPE_CHECKING

import anyio
import pytest
from opentelemetry.trace import StatusCode

import otpy
from otpy import ReplayOutcomeUnknown
from otpy.deadletter import (
    DeadLetterFilter,
    LedgerState,
    MemoryDeadLetterStore,
    ReplayOutcome,
    ReplayResult,
    ReplayStatus,
    Source,
    open_replayer,
)
from otpy.pressure import partition_of
from otpy.telemetry import (
    ATTR_REPLAY_OUTCOME,
    ATTR_REPLAY_RESUBMIT,
    SPAN_DEADLETTER_RECLAIM,
    SPAN_DEADLETTER_REPLAY,
)
from otpy.testing import capture_spans, virtual_time

from .test_replay import Destination, FakeClock, blocker, capture, keys_in_distinct_partitions

if TYPE_CHECKING:
    import builtins
    from collections.abc import Sequence

    from otpy.deadletter import (
        DeadLetter,
        Decision,
        LedgerEntry,
        Page,
        Reclaimed,
        Replayer,
        RetentionPolicy,
        StoreStatistics,
        SweepResult,
    )

EVERYTHING = DeadLetterFilter()


class WatchedStore:
    """A store wrapper: ``get`` of chosen records blocks once; every ``finish`` is signalled."""

    def __init__(self, inner: MemoryDeadLetterStore) -> None:
        self.inner = inner
        self.hold_get: dict[str, tuple[anyio.Event, anyio.Event]] = {}
        self.finished: defaultdict[str, anyio.Event] = defaultdict(anyio.Event)
        self.failing_sweeps = 0
        self.failing_gets: set[str] = set()

    async def get(self, record_id: str) -> DeadLetter:
        """Block the first get of a held record until released; fail it once if told to."""
        if record_id in self.failing_gets:
            self.failing_gets.discard(record_id)
            raise otpy.StoreLocked("var/dead.db", 5.0)
        held = self.hold_get.pop(record_id, None)
        if held is not None:
            entered, release = held
            entered.set()
            await release.wait()
        return await self.inner.get(record_id)

    async def finish(
        self, record_id: str, outcome: ReplayOutcome, *, error: str | None = None
    ) -> DeadLetter:
        """Finish, then signal it."""
        record = await self.inner.finish(record_id, outcome, error=error)
        self.finished[record_id].set()
        return record

    async def add_many(self, records: Sequence[DeadLetter], *, timeout: float | None = None) -> int:
        """Forward."""
        return await self.inner.add_many(records, timeout=timeout)

    async def list(
        self,
        where: DeadLetterFilter = EVERYTHING,
        *,
        limit: int = 50,
        cursor: str | None = None,
    ) -> Page:
        """Forward."""
        return await self.inner.list(where, limit=limit, cursor=cursor)

    async def count(self, where: DeadLetterFilter = EVERYTHING) -> int:
        """Forward."""
        return await self.inner.count(where)

    async def archive(self, where: DeadLetterFilter) -> int:
        """Forward."""
        return await self.inner.archive(where)

    async def purge(self, where: DeadLetterFilter) -> int:
        """Forward."""
        return await self.inner.purge(where)

    async def statistics(self) -> StoreStatistics:
        """Forward."""
        return await self.inner.statistics()

    async def sweep(self, policy: RetentionPolicy) -> SweepResult:
        """Forward."""
        return await self.inner.sweep(policy)

    async def begin_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Forward."""
        return await self.inner.begin_replay(record_id, lease=lease, force=force)

    async def mark_started(self, record: DeadLetter, *, force: bool = False) -> bool:
        """Forward."""
        return await self.inner.mark_started(record, force=force)

    async def reclaim_expired(self) -> builtins.list[Reclaimed]:
        """Fail while ``failing_sweeps`` is positive, as a locked database would; else forward."""
        if self.failing_sweeps:
            self.failing_sweeps -= 1
            raise otpy.StoreLocked("var/dead.db", 5.0)
        return await self.inner.reclaim_expired()

    async def resolve(self, record_id: str, *, succeeded: bool) -> DeadLetter:
        """Forward."""
        return await self.inner.resolve(record_id, succeeded=succeeded)

    async def ledger(self, key: str) -> LedgerEntry | None:
        """Forward."""
        return await self.inner.ledger(key)

    async def aclose(self) -> None:
        """Forward."""
        await self.inner.aclose()


class StartingStore(WatchedStore):
    """A watched store that also starts replays in one step, counting the replay calls it gets."""

    def __init__(self, inner: MemoryDeadLetterStore) -> None:
        super().__init__(inner)
        self.calls: Counter[str] = Counter()

    async def start_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Forward, counted."""
        self.calls["start_replay"] += 1
        return await self.inner.start_replay(record_id, lease=lease, force=force)

    async def begin_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Forward, counted."""
        self.calls["begin_replay"] += 1
        return await super().begin_replay(record_id, lease=lease, force=force)

    async def mark_started(self, record: DeadLetter, *, force: bool = False) -> bool:
        """Forward, counted."""
        self.calls["mark_started"] += 1
        return await super().mark_started(record, force=force)


@pytest.fixture
def clock() -> FakeClock:
    """A fake wall clock."""
    return FakeClock()


@pytest.fixture
def store(clock: FakeClock) -> WatchedStore:
    """A watched in-memory store on the fake clock."""
    return WatchedStore(MemoryDeadLetterStore(clock=clock))


@pytest.fixture
def dest() -> Destination:
    """A fake destination."""
    return Destination()


def replay_supervisor_ref() -> otpy.SupervisorRef:
    """The replay supervisor registered as ``replay``."""
    ref = otpy.whereis("replay")
    assert ref is not None
    return otpy.supervisor_ref(ref)


async def kill_worker(replayer: Replayer, key: str) -> otpy.ActorRef:
    """Kill the worker of *key*'s partition; return its new incarnation once restarted."""
    ref = otpy.whereis(replayer.config.name)
    assert ref is not None
    sup = otpy.supervisor_ref(ref)
    worker_id = replayer.config.worker_name(replayer.config.partition_of(key))
    victim = sup.child(worker_id)
    assert victim is not None
    victim.kill()
    return await sup.wait_child(worker_id, other_than=victim)


async def test_worker_killed_holding_a_lease_is_reclaimed_and_replayed_once(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-9, DL-10: a worker killed before the side effect is restarted alone; the record is resent once."""
    victim_key, *other_keys = keys_in_distinct_partitions(4)
    held = capture(clock, key=victim_key)
    others = [capture(clock, key=key) for key in other_keys]
    await store.add_many([held, *others])
    entered, release = anyio.Event(), anyio.Event()
    store.hold_get[held.id] = (entered, release)
    results: list[ReplayResult] = []

    async def replay_held(replayer: Replayer) -> None:
        results.append(await replayer.replay(held.id))

    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        sup = replay_supervisor_ref()
        async with anyio.create_task_group() as tg:
            tg.start_soon(replay_held, replayer)
            await entered.wait()  # the worker holds the lease, no side effect yet
            # Other partitions replay while that worker is stuck...
            assert (await replayer.replay(others[0].id)).outcome is ReplayOutcome.REPLAYED
            survivors = {
                info.id: info.ref
                for info in sup.which_children()
                if info.id is not None and info.id != "replay.reclaimer"
            }
            restarted = await kill_worker(replayer, victim_key)
        # ...and after it was killed; only its partition restarted.
        for record in others[1:]:
            assert (await replayer.replay(record.id)).outcome is ReplayOutcome.REPLAYED
        victim_id = replayer.config.worker_name(partition_of(victim_key, 4))
        for child_id, ref in survivors.items():
            assert sup.child(child_id) is (restarted if child_id == victim_id else ref)

        [lost] = results
        assert lost.outcome is None
        assert lost.error is not None
        assert "stopped mid-replay; if the replay had taken its lease the reclaimer" in lost.error
        stuck = await store.get(held.id)
        assert stuck.replay.status is ReplayStatus.RUNNING
        assert await store.ledger(held.replay_key) is None

        clock.advance(replayer.config.lease)  # the lease runs out exactly now
        [reclaimed] = await replayer.reclaim()
        assert (reclaimed.record.id, reclaimed.resubmit) == (held.id, True)
        await store.finished[held.id].wait()

    record = await store.get(held.id)
    assert record.replay.status is ReplayStatus.SUCCEEDED
    assert record.replay.attempts == 2
    assert dest.effects[held.replay_key] == 1
    assert dest.order.count(held.id) == 1
    assert all(dest.effects[r.replay_key] == 1 for r in others)


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_reclaimer_resubmits_on_its_own_after_the_interval(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-9: without being asked, the reclaimer finds the expired lease at its next sweep."""
    held = capture(clock)
    await store.add_many([held])
    entered, release = anyio.Event(), anyio.Event()
    store.hold_get[held.id] = (entered, release)
    async with open_replayer(store, {Source.OUTBOUND: dest.send}, reclaim_interval=5.0) as replayer:
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(replayer.replay, held.id)
            await entered.wait()
            await kill_worker(replayer, held.key)
        clock.advance(replayer.config.lease + 1)
        await store.finished[held.id].wait()
        assert anyio.current_time() - start == 5.0
    assert (await store.get(held.id)).replay.status is ReplayStatus.SUCCEEDED
    assert dest.effects[held.replay_key] == 1


async def test_worker_killed_after_the_side_effect_leaves_the_record_in_doubt(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: killed between side effect and commit: in doubt after the lease, never resent unless forced."""
    record = capture(clock)
    await store.add_many([record])
    entered, release = anyio.Event(), anyio.Event()
    dest.after[record.id] = blocker(entered, release)  # the side effect happened, no commit yet
    with capture_spans() as exporter:
        async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
            async with anyio.create_task_group() as tg:
                tg.start_soon(replayer.replay, record.id)
                await entered.wait()
                await kill_worker(replayer, record.key)
            assert dest.effects[record.replay_key] == 1
            entry = await store.ledger(record.replay_key)
            assert entry is not None
            assert entry.state is LedgerState.PENDING

            # Before the lease runs out the record is still someone's: refused, not resent.
            clock.advance(replayer.config.lease - 1)
            assert await replayer.reclaim() == []
            early = await replayer.replay(record.id, force=True)
            assert early.outcome is ReplayOutcome.IN_PROGRESS

            clock.advance(1)
            [reclaimed] = await replayer.reclaim()
            assert reclaimed.resubmit is False
            assert reclaimed.record.replay.status is ReplayStatus.IN_DOUBT

            plain = await replayer.replay(record.id)
            assert plain.outcome is ReplayOutcome.IN_DOUBT
            assert dest.effects[record.replay_key] == 1

            del dest.after[record.id]
            forced = await replayer.replay(record.id, force=True)
    assert forced.outcome is ReplayOutcome.REPLAYED
    assert dest.effects[record.replay_key] == 2
    final = await store.get(record.id)
    assert final.replay.status is ReplayStatus.SUCCEEDED
    entry = await store.ledger(record.replay_key)
    assert entry is not None
    assert entry.state is LedgerState.COMMITTED

    spans = exporter.get_finished_spans()
    killed = next(s for s in spans if s.name == SPAN_DEADLETTER_REPLAY)
    assert killed.attributes is not None
    assert ATTR_REPLAY_OUTCOME not in killed.attributes
    assert killed.attributes["error.type"] == "interrupted"
    assert killed.status.status_code is StatusCode.ERROR
    [reclaim_span] = [s for s in spans if s.name == SPAN_DEADLETTER_RECLAIM]
    assert reclaim_span.attributes is not None
    assert reclaim_span.attributes[ATTR_REPLAY_OUTCOME] == "in_doubt"
    assert reclaim_span.attributes[ATTR_REPLAY_RESUBMIT] is False
    outcomes = [
        s.attributes[ATTR_REPLAY_OUTCOME]
        for s in spans
        if s.name == SPAN_DEADLETTER_REPLAY and s.attributes and ATTR_REPLAY_OUTCOME in s.attributes
    ]
    assert outcomes == ["in_progress", "in_doubt", "replayed"]


async def test_dl_8_dl_9_worker_killed_after_a_one_step_start_leaves_the_record_in_doubt(
    clock: FakeClock, dest: Destination
) -> None:
    """DL-8, DL-9: a store with start_replay: a worker killed before its side effect leaves the record in doubt."""
    store = StartingStore(MemoryDeadLetterStore(clock=clock))
    record, done = capture(clock, key="orders:1"), capture(clock, key="orders:1")
    await store.add_many([record, done])
    entered, release = anyio.Event(), anyio.Event()
    dest.before[record.id] = blocker(entered, release)  # leased and pending: no side effect yet
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        assert (await replayer.replay(done.id)).outcome is ReplayOutcome.REPLAYED
        assert store.calls == {"start_replay": 1}  # no begin_replay, get or mark_started
        async with anyio.create_task_group() as tg:
            tg.start_soon(replayer.replay, record.id)
            await entered.wait()
            await kill_worker(replayer, record.key)
        entry = await store.ledger(record.replay_key)
        assert entry is not None
        assert (entry.state, entry.record_id) == (LedgerState.PENDING, record.id)

        clock.advance(replayer.config.lease)
        [reclaimed] = await replayer.reclaim()
        assert (reclaimed.record.id, reclaimed.resubmit) == (record.id, False)
        assert reclaimed.record.replay.status is ReplayStatus.IN_DOUBT
        assert (await replayer.replay(record.id)).outcome is ReplayOutcome.IN_DOUBT
    assert dest.effects[record.replay_key] == 0  # never sent, and never resent unasked
    assert store.calls == {"start_replay": 3}


async def test_key_committed_by_another_record_meanwhile_is_not_sent_again(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: two records share an idempotency key; if the other commits it first, this one is not sent."""
    key_a, key_b = keys_in_distinct_partitions(2)
    a = capture(clock, key=key_a, idempotency_key="pay-1")
    b = capture(clock, key=key_b, idempotency_key="pay-1")
    await store.add_many([a, b])
    entered, release = anyio.Event(), anyio.Event()
    store.hold_get[a.id] = (entered, release)
    results: list[ReplayResult] = []

    async def replay_a(replayer: Replayer) -> None:
        results.append(await replayer.replay(a.id))

    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(replay_a, replayer)
        await entered.wait()  # a holds its lease; the ledger is still empty
        assert (await replayer.replay(b.id)).outcome is ReplayOutcome.REPLAYED
        release.set()
    [result] = results
    assert result.outcome is ReplayOutcome.ALREADY_REPLAYED
    assert result.record is not None
    assert result.record.replay.status is ReplayStatus.SUCCEEDED
    assert dest.effects == {"pay-1": 1}
    assert dest.order == [b.id]


async def test_key_pending_under_another_record_is_in_progress(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-7, DL-8: a record whose key another record is sending right now answers in_progress."""
    key_a, key_b = keys_in_distinct_partitions(2)
    a = capture(clock, key=key_a, idempotency_key="pay-2")
    b = capture(clock, key=key_b, idempotency_key="pay-2")
    await store.add_many([a, b])
    a_entered, a_release = anyio.Event(), anyio.Event()
    store.hold_get[a.id] = (a_entered, a_release)
    b_entered, b_release = anyio.Event(), anyio.Event()
    dest.after[b.id] = blocker(b_entered, b_release)  # b sent, not committed yet
    results: dict[str, ReplayResult] = {}
    a_done = anyio.Event()

    async def replay(replayer: Replayer, record_id: str) -> None:
        results[record_id] = await replayer.replay(record_id)
        if record_id == a.id:
            a_done.set()

    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(replay, replayer, a.id)
        await a_entered.wait()
        tg.start_soon(replay, replayer, b.id)
        await b_entered.wait()
        a_release.set()
        await a_done.wait()
        b_release.set()
    assert results[a.id].outcome is ReplayOutcome.IN_PROGRESS
    assert results[b.id].outcome is ReplayOutcome.REPLAYED
    stored = await store.get(a.id)
    assert stored.replay.status is ReplayStatus.FAILED  # replayable: not stuck running
    assert dest.effects == {"pay-2": 1}


async def test_key_left_in_doubt_by_a_killed_worker_is_not_sent_by_another_record(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: a worker killed mid side effect puts the key in doubt; another record with it is not sent."""
    key_a, key_b = keys_in_distinct_partitions(2)
    a = capture(clock, key=key_a, idempotency_key="pay-3")
    b = capture(clock, key=key_b, idempotency_key="pay-3")
    await store.add_many([a, b])
    entered, release = anyio.Event(), anyio.Event()
    dest.after[a.id] = blocker(entered, release)  # sent, never committed
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(replayer.replay, a.id)
            await entered.wait()
            await kill_worker(replayer, a.key)
        assert (await replayer.replay(b.id)).outcome is ReplayOutcome.IN_PROGRESS
        clock.advance(replayer.config.lease)  # a's lease runs out: nobody will finish it
        doubted = await replayer.replay(b.id)
        assert (await replayer.replay(a.id)).outcome is ReplayOutcome.IN_DOUBT
        assert (await replayer.replay(b.id)).outcome is ReplayOutcome.IN_DOUBT
        assert dest.effects == {"pay-3": 1}

        await store.resolve(b.id, succeeded=True)  # the operator found the payment
        assert (await replayer.replay(a.id)).outcome is ReplayOutcome.ALREADY_REPLAYED
    assert doubted.outcome is ReplayOutcome.IN_DOUBT
    assert doubted.record is not None
    assert doubted.record.replay.status is ReplayStatus.IN_DOUBT
    assert (await store.get(a.id)).replay.status is ReplayStatus.SUCCEEDED
    assert dest.effects == {"pay-3": 1}
    assert dest.order == [a.id]


async def test_key_left_in_doubt_by_an_unknown_outcome_is_not_sent_by_another_record(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: a handler raising ReplayOutcomeUnknown puts the key in doubt for every record carrying it."""
    key_a, key_b = keys_in_distinct_partitions(2)
    a = capture(clock, key=key_a, idempotency_key="pay-4")
    b = capture(clock, key=key_b, idempotency_key="pay-4")
    await store.add_many([a, b])

    async def read_timeout() -> None:
        raise ReplayOutcomeUnknown("read timed out after the request was sent")

    dest.after[a.id] = read_timeout
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        first = await replayer.replay(a.id)
        second = await replayer.replay(b.id)
        clock.advance(replayer.config.lease + 1)
        third = await replayer.replay(b.id)
        await store.resolve(a.id, succeeded=False)  # the operator found no payment
        del dest.after[a.id]
        retried = await replayer.replay(b.id)
        assert (await replayer.replay(a.id)).outcome is ReplayOutcome.ALREADY_REPLAYED
    assert [r.outcome for r in (first, second, third, retried)] == [
        ReplayOutcome.IN_DOUBT,
        ReplayOutcome.IN_DOUBT,
        ReplayOutcome.IN_DOUBT,
        ReplayOutcome.REPLAYED,
    ]
    assert dest.effects == {"pay-4": 2}  # once in doubt, once after the operator said it failed
    assert dest.order == [a.id, b.id]


async def test_record_that_loses_the_key_to_a_replay_ending_in_doubt_is_in_doubt(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: a record holding a lease when another record's replay of its key ends in doubt is not sent."""
    key_a, key_b = keys_in_distinct_partitions(2)
    a = capture(clock, key=key_a, idempotency_key="pay-5")
    b = capture(clock, key=key_b, idempotency_key="pay-5")
    await store.add_many([a, b])
    entered, release = anyio.Event(), anyio.Event()
    store.hold_get[a.id] = (entered, release)

    async def read_timeout() -> None:
        raise ReplayOutcomeUnknown("read timed out after the request was sent")

    dest.after[b.id] = read_timeout
    results: list[ReplayResult] = []

    async def replay_a(replayer: Replayer) -> None:
        results.append(await replayer.replay(a.id))

    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer,
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(replay_a, replayer)
        await entered.wait()  # a holds its lease; the ledger is still empty
        assert (await replayer.replay(b.id)).outcome is ReplayOutcome.IN_DOUBT
        release.set()
    [result] = results
    assert result.outcome is ReplayOutcome.IN_DOUBT
    assert result.error is not None
    assert f"the replay of dead letter {b.id} started its side effect" in result.error
    assert (await store.get(a.id)).replay.status is ReplayStatus.IN_DOUBT
    assert dest.effects == {"pay-5": 1}
    assert dest.order == [b.id]


@pytest.mark.parametrize("anyio_backend", [virtual_time()])
async def test_reclaimer_survives_a_failing_sweep(
    store: WatchedStore, dest: Destination, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """DL-9: a sweep the store refuses is logged and retried at the next interval."""
    held = capture(clock)
    await store.add_many([held])
    entered, release = anyio.Event(), anyio.Event()
    store.hold_get[held.id] = (entered, release)
    store.failing_sweeps = 1
    async with open_replayer(store, {Source.OUTBOUND: dest.send}, reclaim_interval=5.0) as replayer:
        start = anyio.current_time()
        async with anyio.create_task_group() as tg:
            tg.start_soon(replayer.replay, held.id)
            await entered.wait()
            await kill_worker(replayer, held.key)
        clock.advance(replayer.config.lease)
        await store.finished[held.id].wait()
        assert anyio.current_time() - start == 10.0
    assert "replay reclaimer replay: sweep failed: dead-letter store var/dead.db" in caplog.text
    assert dest.effects[held.replay_key] == 1


async def test_reclaimer_does_not_resubmit_what_it_has_no_handler_for(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-9: a record leased by another replay supervisor that died stays failed if no handler here."""
    record = capture(clock, source=Source.INGEST)
    await store.add_many([record])
    entered, release = anyio.Event(), anyio.Event()
    store.hold_get[record.id] = (entered, release)
    async with (
        open_replayer(store, {Source.OUTBOUND: dest.send}) as node_replayer,
        open_replayer(
            store, {Source.INGEST: dest.send}, name="cli_replay", reclaim_interval=3600.0
        ) as cli_replayer,
    ):
        async with anyio.create_task_group() as tg:
            tg.start_soon(cli_replayer.replay, record.id)
            await entered.wait()
            await kill_worker(cli_replayer, record.key)
        clock.advance(node_replayer.config.lease)
        [reclaimed] = await node_replayer.reclaim()
        assert reclaimed.resubmit is True
        await anyio.wait_all_tasks_blocked()
        assert (await store.get(record.id)).replay.status is ReplayStatus.FAILED
        assert dest.order == []
        retried = await cli_replayer.replay(record.id)
    assert retried.outcome is ReplayOutcome.REPLAYED


async def test_store_error_mid_replay_crashes_the_worker_and_the_record_is_recovered(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-9: a store error after the lease crashes the worker (let it crash); the record is resent later."""
    record = capture(clock)
    await store.add_many([record])
    store.failing_gets.add(record.id)
    with capture_spans() as exporter:
        async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
            worker = otpy.whereis(
                replayer.config.worker_name(replayer.config.partition_of(record.key))
            )
            lost = await replayer.replay(record.id)
            assert worker is not None
            assert isinstance(worker.exit_reason, otpy.StoreLocked)
            clock.advance(replayer.config.lease)
            [reclaimed] = await replayer.reclaim()
            assert reclaimed.resubmit is True
            await store.finished[record.id].wait()
    assert lost.outcome is None
    assert lost.error is not None
    assert "crashed: otpy.StoreLocked: dead-letter store var/dead.db" in lost.error
    assert (await store.get(record.id)).replay.status is ReplayStatus.SUCCEEDED
    assert dest.effects[record.replay_key] == 1
    crashed = next(s for s in exporter.get_finished_spans() if s.name == SPAN_DEADLETTER_REPLAY)
    assert crashed.attributes is not None
    assert crashed.attributes["error.type"] == "otpy.StoreLocked"
    assert crashed.status.status_code is StatusCode.ERROR


async def test_resubmitted_record_purged_before_its_turn_is_skipped(
    store: WatchedStore, dest: Destination, clock: FakeClock, caplog: pytest.LogCaptureFixture
) -> None:
    """DL-5, DL-9: a resubmitted record purged while queued is logged and skipped; the worker goes on."""
    held, blocking, after = (capture(clock, key="orders:5") for _ in range(3))
    await store.add_many([held, blocking, after])
    entered, release = anyio.Event(), anyio.Event()
    store.hold_get[held.id] = (entered, release)
    blocked, unblock = anyio.Event(), anyio.Event()
    dest.before[blocking.id] = blocker(blocked, unblock)
    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(replayer.replay, held.id)
            await entered.wait()
            await kill_worker(replayer, held.key)
        clock.advance(replayer.config.lease)
        async with anyio.create_task_group() as tg:
            tg.start_soon(replayer.replay, blocking.id)
            await blocked.wait()
            await replayer.reclaim()  # queued behind `blocking`
            await store.purge(DeadLetterFilter(ids=(held.id,)))
            unblock.set()
        assert (await replayer.replay(after.id)).outcome is ReplayOutcome.REPLAYED
    assert f"resubmitted replay of dead letter {held.id} not run: dead letter" in caplog.text
    assert dest.order == [blocking.id, after.id]


async def test_unexpected_messages_follow_the_actor_defaults(
    store: WatchedStore, dest: Destination
) -> None:
    """ACT-5: unknown calls and casts crash a worker or the reclaimer (restarted); infos are ignored."""
    async with open_replayer(store, {Source.OUTBOUND: dest.send}, partitions=1) as replayer:
        sup = replay_supervisor_ref()
        for child_id in ("replay.0", "replay.reclaimer"):
            ref = sup.child(child_id)
            assert ref is not None
            await ref.send("stray info")
            with pytest.raises(otpy.ActorExited, match="UnhandledMessage"):
                await ref.call("stray call")
            ref = await sup.wait_child(child_id, other_than=ref)
            await ref.cast("stray cast")
            assert isinstance(await ref.wait_exited(), otpy.UnhandledMessage)
            await sup.wait_child(child_id, other_than=ref)
        assert (await replayer.reclaim()) == []


async def test_a_rival_that_finishes_between_the_lost_race_reads_is_not_taken_for_in_doubt(
    store: WatchedStore, dest: Destination, clock: FakeClock
) -> None:
    """DL-8: b loses the race for the key; a commits its outcome while b reads a's status.

    b read the ledger (pending for a), then a's record (no longer running): the
    ledger must be read again before b calls the key in doubt, because a's outcome
    and the ledger change commit together. b is told to try later, and then learns
    the key was replayed; nothing is sent twice.
    """
    key_a, key_b = keys_in_distinct_partitions(2)
    a = capture(clock, key=key_a, idempotency_key="pay-4")
    b = capture(clock, key=key_b, idempotency_key="pay-4")
    await store.add_many([a, b])
    a_sent, a_release = anyio.Event(), anyio.Event()
    dest.after[a.id] = blocker(a_sent, a_release)
    results: dict[str, ReplayResult] = {}

    async def replay(replayer: Replayer, record_id: str) -> None:
        results[record_id] = await replayer.replay(record_id)

    b_leased, b_go = anyio.Event(), anyio.Event()
    store.hold_get[b.id] = (b_leased, b_go)  # b holds a lease, its key not yet marked

    async with open_replayer(store, {Source.OUTBOUND: dest.send}) as replayer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(replay, replayer, b.id)
            await b_leased.wait()
            tg.start_soon(replay, replayer, a.id)
            await a_sent.wait()  # a marked the key first and is mid side effect
            read_a, let_read_a = anyio.Event(), anyio.Event()
            store.hold_get[a.id] = (read_a, let_read_a)  # b's read of a's status
            b_go.set()  # b's mark fails: it reads the ledger, then a's status
            await read_a.wait()
            a_release.set()  # a finishes: replayed, the ledger committed
            while a.id not in results:
                await anyio.lowlevel.checkpoint()
            let_read_a.set()
        assert results[a.id].outcome is ReplayOutcome.REPLAYED
        assert results[b.id].outcome is ReplayOutcome.IN_PROGRESS
        assert (await store.get(b.id)).replay.status is ReplayStatus.FAILED  # replayable
        assert (await replayer.replay(b.id)).outcome is ReplayOutcome.ALREADY_REPLAYED
    assert dest.effects == {"pay-4": 1}
