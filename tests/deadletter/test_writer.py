"""The dead-letter writer: group commit, ack after commit, errors, crashes, retention (DL-2, DL-5, TEL-1, TEL-4)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, cast

import anyio
import attrs
import pytest
from opentelemetry.trace import StatusCode

import otpy
from otpy import Backoff, CallTimeout, StoreFull, SupervisorFlags
from otpy.deadletter import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetters,
    DeadLettersStatistics,
    DeadLetterWriter,
    MemoryDeadLetterStore,
    ReplayOutcome,
    RetentionPolicy,
    RetentionRule,
    Source,
    Status,
    dead_letter_children,
    running_stores,
)
from otpy.telemetry import (
    ATTR_DEADLETTER_COUNT,
    ATTR_DEADLETTER_DROP_REASON,
    ATTR_DEADLETTER_ID,
    ATTR_DEADLETTER_RULE,
    ATTR_DEADLETTER_SOURCE,
    ATTR_DEADLETTER_STATUS,
    ATTR_DEADLETTER_STORE,
    METRIC_DEADLETTER_CAPTURE_DROPPED,
    METRIC_DEADLETTER_CAPTURED,
    METRIC_DEADLETTER_EVICTIONS,
    SPAN_DEADLETTER_WRITE,
    get_tracer,
)
from otpy.testing import capture_metrics, capture_spans, inject_crash, virtual_time

if TYPE_CHECKING:
    from collections.abc import Sequence

    from opentelemetry.sdk.metrics.export import InMemoryMetricReader

    from otpy.deadletter import DeadLetterStore

VIRTUAL_TIME = pytest.mark.parametrize("anyio_backend", [virtual_time()])


def record(key: str = "orders", n: int = 0) -> DeadLetter:
    """A small record; ``n`` goes into the payload so records differ."""
    return DeadLetter.capture(
        key=key, source=Source.OUTBOUND, reason_class="HTTPError", payload=f"body {n}"
    )


class GatedStore:
    """Wraps a store: records every ``add_many`` batch, can hold one and fail or crash some.

    Attributes:
        batches: the record ids of each ``add_many`` call, in order.
        entered: set when a held call has started.
        release: set it to let a held call go on.
        log: ``"commit"`` appended after each successful ``add_many``.
    """

    def __init__(self, inner: MemoryDeadLetterStore, *, hold: int | None = 0) -> None:
        self.inner = inner
        self.batches: list[list[str]] = []
        self.hold = hold
        self.entered = anyio.Event()
        self.release = anyio.Event()
        self.fail: dict[int, Exception] = {}
        self.crash_after_commit: set[int] = set()
        self.log: list[str] = []

    async def add_many(self, records: Sequence[DeadLetter], *, timeout: float | None = None) -> int:
        call = len(self.batches)
        self.batches.append([r.id for r in records])
        if call == self.hold:
            self.entered.set()
            await self.release.wait()
        if call in self.fail:
            raise self.fail[call]
        new = await self.inner.add_many(records, timeout=timeout)
        if call in self.crash_after_commit:
            raise RuntimeError("lost the connection after COMMIT")
        self.log.append("commit")
        return new

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


def writer_tree(store: object, **options: Any) -> list[otpy.ChildSpec]:
    return dead_letter_children(cast("DeadLetterStore", store), sweep=False, **options)


async def test_group_commit_batches_captures_that_queue_during_a_commit() -> None:
    """DL-2: 99 captures arriving while a commit is in flight are committed in one more add_many, not 99."""
    inner = MemoryDeadLetterStore()
    store = GatedStore(inner)
    client = DeadLetters()
    async with otpy.open_supervisor(writer_tree(store)), anyio.create_task_group() as tg:
        tg.start_soon(client.capture, record(n=0))
        await store.entered.wait()
        for n in range(1, 100):
            tg.start_soon(client.capture, record(n=n))
        await anyio.wait_all_tasks_blocked()
        assert [len(b) for b in store.batches] == [1]
        store.release.set()
    assert [len(b) for b in store.batches] == [1, 99]
    assert await inner.count() == 100
    assert client.statistics().captured == 100


async def test_a_capture_is_acknowledged_only_after_its_commit() -> None:
    """DL-2: capture() does not return while add_many is running; it returns right after."""
    store = GatedStore(MemoryDeadLetterStore())
    client = DeadLetters()
    ids: list[str] = []

    async def capture() -> None:
        ids.append(await client.capture(record()))
        store.log.append("ack")

    async with otpy.open_supervisor(writer_tree(store)), anyio.create_task_group() as tg:
        tg.start_soon(capture)
        await store.entered.wait()
        await anyio.wait_all_tasks_blocked()
        assert store.log == []
        assert ids == []
        store.release.set()
    assert store.log == ["commit", "ack"]
    assert ids == store.batches[0]


async def test_a_capture_of_several_records_is_one_transaction_and_returns_their_ids() -> None:
    """DL-2: capturing a list stores it in one add_many and returns the ids in order."""
    store = GatedStore(MemoryDeadLetterStore(), hold=None)
    client = DeadLetters()
    records = [record(n=n) for n in range(3)]
    async with otpy.open_supervisor(writer_tree(store)):
        ids = await client.capture(records)
        assert await client.capture([]) == ()
    assert ids == tuple(r.id for r in records)
    assert store.batches == [list(ids)]


async def test_batches_are_capped_at_max_batch() -> None:
    """DL-2: with max_batch=10, 25 queued captures commit in batches of at most 10 records."""
    store = GatedStore(MemoryDeadLetterStore())
    client = DeadLetters()
    async with (
        otpy.open_supervisor(writer_tree(store, max_batch=10)),
        anyio.create_task_group() as tg,
    ):
        tg.start_soon(client.capture, record(n=0))
        await store.entered.wait()
        for n in range(1, 26):
            tg.start_soon(client.capture, record(n=n))
        await anyio.wait_all_tasks_blocked()
        store.release.set()
    sizes = [len(b) for b in store.batches]
    assert sizes == [1, 10, 10, 5]


async def test_a_store_error_reaches_every_caller_in_the_batch_and_nothing_is_acknowledged() -> (
    None
):
    """DL-2: StoreFull on a batch of 5 is raised to all 5 callers, not retried, and none is stored."""
    inner = MemoryDeadLetterStore()
    store = GatedStore(inner)
    store.fail[1] = StoreFull("dead.db")
    client = DeadLetters()
    errors: list[BaseException] = []

    async def capture(n: int) -> None:
        try:
            await client.capture(record(n=n))
        except StoreFull as exc:
            errors.append(exc)

    async with otpy.open_supervisor(writer_tree(store)) as sup:
        writer = sup.child("dead-letters")
        async with anyio.create_task_group() as tg:
            tg.start_soon(capture, 0)
            await store.entered.wait()
            for n in range(1, 6):
                tg.start_soon(capture, n)
            await anyio.wait_all_tasks_blocked()
            store.release.set()
        assert len(errors) == 5
        assert all(e is errors[0] for e in errors)
        assert [len(b) for b in store.batches] == [1, 5]  # not retried
        assert await inner.count() == 1  # only the first batch
        # The twin: the writer kept running, and the next batch is stored.
        assert sup.child("dead-letters") is writer
        await client.capture(record(n=6))
        assert await inner.count() == 2
        stats = await client.writer_statistics()
        assert (stats.batches, stats.failed_batches, stats.records) == (2, 1, 2)
    assert client.statistics().retries == 0


@pytest.mark.parametrize("committed", [False, True], ids=["before-commit", "after-commit"])
async def test_a_writer_crash_mid_batch_is_retried_and_each_record_stored_once(
    committed: bool,
) -> None:
    """DL-2: the writer crashes during add_many; its 10 callers retry and every record is stored exactly once."""
    inner = MemoryDeadLetterStore()
    store = GatedStore(inner)
    if committed:
        store.crash_after_commit.add(1)
    else:
        store.fail[1] = RuntimeError("the driver crashed")
    client = DeadLetters()
    ids: list[str] = []

    async def capture(n: int) -> None:
        ids.append(await client.capture(record(n=n)))

    async with otpy.open_supervisor(writer_tree(store)) as sup:
        first = sup.child("dead-letters")
        async with anyio.create_task_group() as tg:
            tg.start_soon(capture, 0)
            await store.entered.wait()
            for n in range(1, 11):
                tg.start_soon(capture, n)
            await anyio.wait_all_tasks_blocked()
            store.release.set()
        assert sup.child("dead-letters") is not first  # it did crash and restart
    assert len(ids) == 11
    assert sorted(ids) == sorted(r.id for r in (await inner.list(limit=100)).records)
    assert (await inner.statistics()).captured == 11  # no id stored twice
    resent = sorted(i for batch in store.batches[2:] for i in batch)
    assert resent == sorted(store.batches[1])  # the same records (same ids), sent again
    assert client.statistics().retries == 10


@VIRTUAL_TIME
async def test_a_capture_sent_while_the_writer_restarts_waits_and_lands() -> None:
    """DL-2: a capture during the writer's restart backoff waits in its name's stash and is stored after."""
    inner = MemoryDeadLetterStore()
    client = DeadLetters()
    [writer] = dead_letter_children(inner, sweep=False)
    writer = attrs.evolve(writer, backoff=Backoff(minimum=2.0, maximum=2.0, jitter=0.0))
    async with otpy.open_supervisor([writer]) as sup:
        old = sup.child("dead-letters")
        assert old is not None
        inject_crash(old)
        await old.wait_exited()
        start = anyio.current_time()
        record_id = await client.capture(record())
        assert anyio.current_time() - start == 2.0  # waited for the restart, no sooner
        assert sup.child("dead-letters") is not old
    assert (await inner.get(record_id)).key == "orders"
    assert client.statistics().retries == 0  # it waited in the stash; nothing was lost


@VIRTUAL_TIME
async def test_without_a_writer_a_capture_retries_until_its_timeout() -> None:
    """DL-2: with nothing registered, capture retries with capped backoff and raises CallTimeout at the timeout."""
    client = DeadLetters(min_backoff=0.1, max_backoff=0.4)
    async with otpy.open_node():
        start = anyio.current_time()
        with pytest.raises(CallTimeout, match=r"^call to 'dead-letters' got no reply within 3s"):
            await client.capture(record(), timeout=3.0)
        assert anyio.current_time() - start == 3.0
    # 0.1 + 0.2 + 0.4 + 0.4 ... : 3 s hold 9 attempts, never a tight loop.
    assert client.statistics().retries == 9


async def test_records_that_cannot_be_stored_are_refused_at_capture() -> None:
    """DL-2: a non-record, or a listed record without its payload, is refused before reaching the writer."""
    client = DeadLetters()
    listed = attrs.evolve(record(), payload=None)
    async with otpy.open_node():
        with pytest.raises(TypeError, match=r"^only otpy.deadletter.DeadLetter records"):
            await client.capture(cast("Any", "not a record"))
        with pytest.raises(ValueError, match=r"payload is not loaded"):
            await client.capture(listed)
        with pytest.raises(ValueError, match=r"payload is not loaded"):
            client.capture_nowait(listed)


async def test_a_raw_call_with_a_bad_record_is_answered_and_does_not_crash_the_writer() -> None:
    """DL-2: the writer answers an invalid Capture with CaptureFailed instead of crashing on it."""
    from otpy.deadletter._writer import Capture, CaptureFailed

    inner = MemoryDeadLetterStore()
    async with otpy.open_supervisor(writer_tree(inner)) as sup:
        writer = sup.child("dead-letters")
        assert writer is not None
        reply = await writer.call(Capture([attrs.evolve(record(), payload=None)]))
        assert isinstance(reply, CaptureFailed)
        assert isinstance(reply.error, ValueError)
        assert writer.is_alive


async def test_capture_nowait_is_stored_without_an_acknowledgement() -> None:
    """DL-2: capture_nowait hands records over without waiting; the writer commits them."""
    inner = MemoryDeadLetterStore()
    client = DeadLetters()
    async with otpy.open_supervisor(writer_tree(inner)):
        client.capture_nowait([record(n=1), record(n=2)])
        assert await inner.count() == 0  # nothing happened yet: no wait
        await anyio.wait_all_tasks_blocked()
        assert await inner.count() == 2
    assert client.statistics().dropped == 0


async def test_capture_nowait_to_a_full_writer_mailbox_is_dropped_and_counted() -> None:
    """DL-2: when the writer's mailbox is full, capture_nowait drops the record and counts it."""
    inner = MemoryDeadLetterStore()
    client = DeadLetters()
    tree = writer_tree(inner, mailbox=otpy.MailboxConfig(capacity=1, wait_timeout=None))
    async with otpy.open_supervisor(tree) as sup:
        writer = sup.child("dead-letters")
        assert writer is not None
        await writer.suspend()
        client.capture_nowait(record(n=1))
        client.capture_nowait(record(n=2))
        assert client.statistics().dropped == 1
        await writer.resume()
        await anyio.wait_all_tasks_blocked()
        assert await inner.count() == 1


async def test_a_writer_crashing_before_its_flush_commits_the_pending_batch_first() -> None:
    """DL-2: a crash between a capture and its flush commits the batch in terminate and answers it: no retry."""
    inner = MemoryDeadLetterStore()
    client = DeadLetters()
    async with otpy.open_supervisor(writer_tree(inner)) as sup, anyio.create_task_group() as tg:
        writer = sup.child("dead-letters")
        assert writer is not None
        await writer.suspend()
        tg.start_soon(client.capture, record())
        await anyio.wait_all_tasks_blocked()
        inject_crash(writer)  # queued right behind the capture, before any flush
        await writer.resume()
        await writer.wait_exited()
        assert await inner.count() == 1  # committed by terminate, before the exit
    assert client.statistics() == DeadLettersStatistics(captured=1, retries=0, dropped=0)


async def test_fire_and_forget_records_lost_in_a_writer_crash_are_counted() -> None:
    """DL-2: records handed over with capture_nowait that die with a crashing writer are counted as dropped."""
    store = GatedStore(MemoryDeadLetterStore(), hold=None)
    store.fail[0] = RuntimeError("the driver crashed")
    client = DeadLetters()
    with capture_metrics() as reader:
        async with otpy.open_supervisor(writer_tree(store)) as sup:
            first = sup.child("dead-letters")
            client.capture_nowait([record(n=1), record(n=2)])
            await sup.wait_child("dead-letters", other_than=first)
            dropped = _sum_points(reader, METRIC_DEADLETTER_CAPTURE_DROPPED)
    assert dropped == {((ATTR_DEADLETTER_DROP_REASON, "writer_crashed"),): 2}


async def test_a_writer_killed_mid_commit_is_retried_and_its_span_is_not_an_error() -> None:
    """DL-2, TEL-3: a brutal kill during add_many makes callers retry; the cut-off span has no error status."""
    inner = MemoryDeadLetterStore()
    store = GatedStore(inner)
    client = DeadLetters()
    with capture_spans() as exporter:
        async with otpy.open_supervisor(writer_tree(store)) as sup:
            writer = sup.child("dead-letters")
            assert writer is not None
            async with anyio.create_task_group() as tg:
                tg.start_soon(client.capture, record())
                await store.entered.wait()
                writer.kill()
            assert await inner.count() == 1
    spans = [s for s in exporter.get_finished_spans() if s.name == SPAN_DEADLETTER_WRITE]
    assert [s.status.status_code for s in spans] == [StatusCode.UNSET, StatusCode.UNSET]
    assert client.statistics().retries == 1


async def test_fire_and_forget_captures_fill_a_batch_and_commit_at_once() -> None:
    """DL-2: casts reaching max_batch records commit without waiting for the flush; invalid ones are dropped."""
    from otpy.deadletter._writer import Capture

    store = GatedStore(MemoryDeadLetterStore(), hold=None)
    async with otpy.open_supervisor(writer_tree(store, max_batch=3)) as sup:
        writer = sup.child("dead-letters")
        assert writer is not None
        await writer.suspend()
        writer.cast_nowait(Capture([record(n=n) for n in range(3)]))
        writer.cast_nowait(Capture([attrs.evolve(record(), payload=None)]))
        writer.cast_nowait(Capture([record(n=4)]))
        await writer.resume()
        await anyio.wait_all_tasks_blocked()
        assert await writer.call(Capture([])) == ()
    assert [len(b) for b in store.batches] == [3, 1]


async def test_max_batch_must_be_positive() -> None:
    """DL-2: a writer with max_batch=0 refuses to start, naming the setting."""
    async with otpy.open_node() as node:
        with pytest.raises(otpy.SpawnError, match=r"max_batch must be >= 1, got 0"):
            await node.spawn(DeadLetterWriter, MemoryDeadLetterStore(), 0)


# -- retention -----------------------------------------------------------------------------


@VIRTUAL_TIME
async def test_the_sweeper_sweeps_at_start_and_every_interval_counting_evictions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DL-5: archived records beyond max_count are evicted at start and every interval, counted and logged at INFO."""
    caplog.set_level(logging.INFO, logger="otpy.deadletter")
    inner = MemoryDeadLetterStore(clock=lambda: 1e9 + anyio.current_time())
    policy = RetentionPolicy(archived=RetentionRule(max_count=2), interval=60.0)

    async def add_archived(count: int) -> None:
        await inner.add_many([record(n=n) for n in range(count)])
        await inner.archive(DeadLetterFilter(status=Status.ACTIVE))

    await add_archived(5)
    with capture_metrics() as reader:
        async with otpy.open_supervisor(dead_letter_children(inner, retention=policy)):
            await anyio.wait_all_tasks_blocked()
            assert (await inner.statistics()).evicted == {"archived:max_count": 3}
            start = anyio.current_time()
            await add_archived(4)
            await anyio.sleep(59.0)
            assert await inner.count() == 6  # not yet: the interval has not passed
            await anyio.sleep(1.0)
            await anyio.wait_all_tasks_blocked()
            assert anyio.current_time() - start == 60.0
            assert await inner.count() == 2
            assert (await inner.statistics()).evicted == {"archived:max_count": 7}
            evictions = _sum_points(reader, METRIC_DEADLETTER_EVICTIONS)
    assert evictions == {
        ((ATTR_DEADLETTER_RULE, "max_count"), (ATTR_DEADLETTER_STATUS, "archived")): 7
    }
    infos = [r for r in caplog.records if "retention evicted" in r.getMessage()]
    assert [(r.levelno, r.getMessage()) for r in infos] == [
        (logging.INFO, "dead-letter retention evicted 3 archived records by max_count"),
        (logging.INFO, "dead-letter retention evicted 4 archived records by max_count"),
    ]


@VIRTUAL_TIME
async def test_evicting_active_records_is_logged_as_a_warning(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DL-5: an active-record limit evicts the oldest active records and says so at WARNING."""
    caplog.set_level(logging.INFO, logger="otpy.deadletter")
    inner = MemoryDeadLetterStore()
    policy = RetentionPolicy(active=RetentionRule(max_count=1))
    await inner.add_many([record(n=n) for n in range(3)])
    async with otpy.open_supervisor(dead_letter_children(inner, retention=policy)):
        await anyio.wait_all_tasks_blocked()
    assert await inner.count() == 1
    [warning] = [r for r in caplog.records if "retention evicted" in r.getMessage()]
    assert warning.levelno == logging.WARNING
    assert warning.getMessage().startswith("dead-letter retention evicted 2 active records")


@VIRTUAL_TIME
async def test_pruned_ledger_entries_are_logged_as_such_and_not_counted_as_evictions(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DL-5, DL-8: ledger entries a sweep prunes are logged at INFO; the evictions metric counts records only."""
    caplog.set_level(logging.INFO, logger="otpy.deadletter")
    now = [1e9]
    inner = MemoryDeadLetterStore(clock=lambda: now[0])
    dead = DeadLetter.capture(
        key="orders",
        source=Source.OUTBOUND,
        reason_class="HTTPError",
        payload=b"body",
        idempotency_key="order-1",
        now=now[0],
    )
    await inner.add_many([dead])
    assert await inner.mark_started((await inner.begin_replay(dead.id, lease=30.0)).record)
    await inner.finish(dead.id, ReplayOutcome.REPLAYED)
    await inner.archive(DeadLetterFilter())
    now[0] += 90 * 86400.0 + 1.0
    with capture_metrics() as reader:
        async with otpy.open_supervisor(dead_letter_children(inner)):
            await anyio.wait_all_tasks_blocked()
        evictions = _sum_points(reader, METRIC_DEADLETTER_EVICTIONS)
    assert evictions == {
        ((ATTR_DEADLETTER_RULE, "max_age"), (ATTR_DEADLETTER_STATUS, "archived")): 1
    }
    assert (await inner.statistics()).evicted == {"archived:max_age": 1, "ledger:max_age": 1}
    logged = [(r.levelno, r.getMessage()) for r in caplog.records if "retention" in r.getMessage()]
    assert logged == [
        (logging.INFO, "dead-letter retention evicted 1 archived records by max_age"),
        (
            logging.INFO,
            "dead-letter retention pruned 1 idempotency ledger entries: older than "
            "ledger_max_age, and no stored record uses them",
        ),
    ]


class FlakySweeps:
    """A store whose first sweep fails with StoreLocked."""

    def __init__(self, inner: MemoryDeadLetterStore) -> None:
        self.inner = inner
        self.sweeps = 0

    async def sweep(self, policy: RetentionPolicy) -> Any:
        self.sweeps += 1
        if self.sweeps == 1:
            raise otpy.StoreLocked("dead.db", 5.0)
        return await self.inner.sweep(policy)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@VIRTUAL_TIME
async def test_a_failed_sweep_is_logged_and_retried_next_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """DL-5: a store error in a sweep is a warning, not a crash; the next interval sweeps again."""
    inner = MemoryDeadLetterStore()
    await inner.add_many([record(n=n) for n in range(3)])
    store = FlakySweeps(inner)
    policy = RetentionPolicy(active=RetentionRule(max_count=1), interval=10.0)
    async with otpy.open_supervisor(
        dead_letter_children(cast("DeadLetterStore", store), retention=policy)
    ) as sup:
        sweeper = sup.child("dead-letters-retention")
        await anyio.wait_all_tasks_blocked()
        assert await inner.count() == 3
        await anyio.sleep(10.0)
        await anyio.wait_all_tasks_blocked()
        assert await inner.count() == 1
        assert sup.child("dead-letters-retention") is sweeper  # never crashed
    [failure] = [r for r in caplog.records if "sweep failed" in r.getMessage()]
    assert failure.levelno == logging.WARNING


@VIRTUAL_TIME
async def test_the_default_policy_evicts_nothing_active() -> None:
    """DL-5: the twin: under the default policy a sweep keeps every active record."""
    inner = MemoryDeadLetterStore(clock=lambda: 1e9 + anyio.current_time())
    await inner.add_many([record(n=n) for n in range(3)])
    async with otpy.open_supervisor(dead_letter_children(inner)):
        await anyio.sleep(3 * 300.0)
        await anyio.wait_all_tasks_blocked()
    assert await inner.count() == 3
    assert (await inner.statistics()).evicted == {}


# -- telemetry ---------------------------------------------------------------------------


def _sum_points(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    data = reader.get_metrics_data()
    points: dict[tuple[tuple[str, Any], ...], Any] = {}
    if data is None:
        return points
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        points[key] = cast("Any", point).value
    return points


async def test_each_committed_batch_is_a_span_linked_to_its_records_failures() -> None:
    """TEL-1, TEL-4: one 'otpy.deadletter.write' span per batch, with count and store, linked to each record's trace context."""
    inner = MemoryDeadLetterStore()
    client = DeadLetters()
    with capture_spans() as exporter, capture_metrics() as reader:
        with get_tracer().start_as_current_span("send orders") as failing:
            traced = record(n=1)
        untraced = record(n=2)
        assert untraced.trace_context == ()
        crash = DeadLetter.capture(key="parser", source=Source.ACTOR_CRASH, reason_class="E")
        async with otpy.open_supervisor(writer_tree(inner)):
            await client.capture([traced, untraced, crash])
        captured = _sum_points(reader, METRIC_DEADLETTER_CAPTURED)
    [span] = [s for s in exporter.get_finished_spans() if s.name == SPAN_DEADLETTER_WRITE]
    assert span.attributes is not None
    assert span.attributes[ATTR_DEADLETTER_COUNT] == 3
    assert span.attributes[ATTR_DEADLETTER_STORE] == "memory"
    assert span.status.status_code is StatusCode.UNSET
    [link] = span.links
    assert link.context.trace_id == failing.get_span_context().trace_id
    assert link.context.span_id == failing.get_span_context().span_id
    assert link.attributes == {ATTR_DEADLETTER_ID: traced.id}
    assert captured == {
        ((ATTR_DEADLETTER_SOURCE, "outbound"),): 2,
        ((ATTR_DEADLETTER_SOURCE, "actor_crash"),): 1,
    }


async def test_a_failed_batch_span_has_status_error_and_counts_nothing() -> None:
    """TEL-1, TEL-3: a batch the store refuses gives an Error span with error.type, and no captured count."""
    store = GatedStore(MemoryDeadLetterStore(), hold=None)
    store.fail[0] = StoreFull("dead.db")
    client = DeadLetters()
    with capture_spans() as exporter, capture_metrics() as reader:
        async with otpy.open_supervisor(writer_tree(store)):
            with pytest.raises(StoreFull):
                await client.capture(record())
        captured = _sum_points(reader, METRIC_DEADLETTER_CAPTURED)
    [span] = [s for s in exporter.get_finished_spans() if s.name == SPAN_DEADLETTER_WRITE]
    assert span.status.status_code is StatusCode.ERROR
    assert span.attributes is not None
    assert span.attributes["error.type"] == "StoreFull"
    assert captured == {}


async def test_store_errors_do_not_count_against_the_supervisor() -> None:
    """DL-2: a store refusing every batch never crashes the writer, so it never exhausts restart intensity."""
    store = GatedStore(MemoryDeadLetterStore(), hold=None)
    for call in range(10):
        store.fail[call] = StoreFull("dead.db")
    client = DeadLetters()
    flags = SupervisorFlags(intensity=1, period=60.0)
    async with otpy.open_supervisor(writer_tree(store), flags=flags) as sup:
        for _ in range(10):
            with pytest.raises(StoreFull):
                await client.capture(record())
        assert sup.statistics().total_restarts == 0


@VIRTUAL_TIME
async def test_a_running_writer_lists_its_store_by_name_until_it_stops() -> None:
    """running_stores() names each running writer's store; a stopped writer's store is gone."""
    first, second = MemoryDeadLetterStore(), MemoryDeadLetterStore()
    specs = [
        *dead_letter_children(first, sweep=False),
        *dead_letter_children(second, name="other", sweep=False),
    ]
    async with otpy.open_supervisor(specs) as sup:
        assert running_stores() == {"dead-letters": first, "other": second}
        await sup.terminate_child("other")
        assert running_stores() == {"dead-letters": first}
        await sup.restart_child("other")
        assert running_stores(node=otpy.current_node()) == {"dead-letters": first, "other": second}


@pytest.mark.parametrize(
    ("kwargs", "pattern"),
    [
        (
            {"min_backoff": True},
            r"^DeadLetters: min_backoff must be a finite number of seconds > 0",
        ),
        ({"max_backoff": "1"}, r"^DeadLetters: max_backoff must be a finite number of seconds"),
        ({"max_backoff": float("inf")}, r"^DeadLetters: max_backoff must be a finite number"),
        ({"max_backoff": 0.001}, r"^DeadLetters: max_backoff must be >= min_backoff \(0.01\)"),
        ({"name": ""}, r"^DeadLetters: name must not be empty"),
        ({"node": "node"}, r"^DeadLetters: node must be a Node or None, got 'node'"),
    ],
)
def test_client_arguments_are_checked_when_built(kwargs: dict[str, Any], pattern: str) -> None:
    """DeadLetters(min_backoff=True) or max_backoff=inf is an InvalidArgument naming it, when built."""
    with pytest.raises(otpy.InvalidArgument, match=pattern):
        DeadLetters(**kwargs)


# -- stores that group their own commits ------------------------------------------------


class GroupingStore:
    """A memory store that says it groups concurrent ``add_many`` calls itself.

    Attributes:
        calls: the record ids of each ``add_many`` call.
        gate: while set to an unset event, each call waits on it before storing.
        lose_after_commit: this many calls store their records, then raise as if
            the connection dropped after COMMIT.
    """

    groups_commits = True

    def __init__(self) -> None:
        self.inner = MemoryDeadLetterStore()
        self.calls: list[list[str]] = []
        self.gate: anyio.Event | None = None
        self.lose_after_commit = 0

    async def add_many(self, records: Sequence[DeadLetter], *, timeout: float | None = None) -> int:
        self.calls.append([r.id for r in records])
        if self.gate is not None:
            with anyio.fail_after(timeout):
                await self.gate.wait()
        new = await self.inner.add_many(records)
        if self.lose_after_commit:
            self.lose_after_commit -= 1
            raise RuntimeError("lost the connection after COMMIT")
        return new

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


async def test_a_capture_into_a_store_that_groups_commits_skips_the_writer() -> None:
    """DL-2: each capture calls the store itself (it batches them); the writer's mailbox sees none."""
    store = GroupingStore()
    client = DeadLetters()
    async with otpy.open_supervisor(writer_tree(store)):
        async with anyio.create_task_group() as tg:
            for n in range(20):
                tg.start_soon(client.capture, record(n=n))
        stats = await client.writer_statistics()
    assert len(store.calls) == 20
    assert (stats.batches, stats.records) == (0, 0)
    assert await store.inner.count() == 20
    assert client.statistics().captured == 20


async def test_a_capture_lost_after_its_commit_is_sent_again_and_stored_once() -> None:
    """DL-2: an unexpected error from the store is retried with the same ids, stored once."""
    store = GroupingStore()
    store.lose_after_commit = 2
    client = DeadLetters(min_backoff=0.01, max_backoff=0.01)
    async with otpy.open_supervisor(writer_tree(store)):
        record_id = await client.capture(record())
    assert store.calls == [[record_id]] * 3
    assert (await store.inner.statistics()).captured == 1
    assert client.statistics().retries == 2


@VIRTUAL_TIME
async def test_a_capture_the_store_does_not_commit_in_time_raises_call_timeout() -> None:
    """DL-2: the timeout bounds a direct capture too, raised as CallTimeout naming the writer."""
    store = GroupingStore()
    store.gate = anyio.Event()
    client = DeadLetters()
    async with otpy.open_supervisor(writer_tree(store)):
        start = anyio.current_time()
        with pytest.raises(CallTimeout, match=r"'dead-letters'.* within 2s"):
            await client.capture(record(), timeout=2.0)
        assert anyio.current_time() - start == 2.0
    assert await store.inner.count() == 0


async def test_flush_waits_for_what_was_handed_to_the_writer() -> None:
    """flush() returns once every fire-and-forget capture handed over before it is committed."""
    store = GatedStore(MemoryDeadLetterStore(), hold=None)
    client = DeadLetters()
    async with otpy.open_supervisor(writer_tree(store)):
        records = [record(n=n) for n in range(5)]
        for one in records:
            client.capture_nowait(one)
        await client.flush()
        assert await store.inner.count() == 5
        await client.flush()  # nothing pending: answered after an empty turn
    assert store.log == ["commit"]
