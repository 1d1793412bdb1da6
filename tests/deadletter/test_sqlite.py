"""What only the SQLite store does: durability, the file format, locking, disk full, corruption.

The protocol's semantics are tested on both stores in test_store_contract.py. Here a
plain ``sqlite3`` connection plays the other process (or the vandal) beside the store.
aiosqlite runs on asyncio only.
"""

from __future__ import annotations

import os
import re
import signal
import sqlite3
import sys
import textwrap
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest

from otpy._exceptions import (
    CorruptRecord,
    DeadLetterNotFound,
    DeadLetterStoreError,
    NotAnOtpyStore,
    StoreFull,
    StoreLocked,
    StoreSchemaDamaged,
    StoreVersionTooNew,
)
from otpy.deadletter import (
    Action,
    DeadLetter,
    DeadLetterFilter,
    LedgerState,
    ReplayOutcome,
    ReplayStatus,
    RetentionPolicy,
    RetentionRule,
    Source,
    SQLiteDeadLetterStore,
    Status,
    _codec,
    _connection,
    _queries,
    _schema,
    _sqlite,
    open_replayer,
    open_store,
)

if TYPE_CHECKING:
    from collections.abc import Iterator
    from pathlib import Path


T0 = 1_700_000_000.0
APPLICATION_ID = 0x6F747079


def make(key: str = "dest", **changes: Any) -> DeadLetter:
    """A captured record at T0 with *changes* applied."""
    fields: dict[str, Any] = {
        "key": key,
        "source": Source.OUTBOUND,
        "reason_class": "httpx.ConnectTimeout",
        "reason": "timed out",
        "payload": b"hello",
        "trace_context": {},
        "now": T0,
    }
    fields.update(changes)
    return DeadLetter.capture(**fields)


def only_ids(ids: tuple[str, ...]) -> DeadLetterFilter:
    """A filter for exactly *ids*."""
    # Through Any: mypy reads the `optional(tuple)` converter of `ids` as taking
    # `Iterable[_T_co]` with the type variable unbound, and rejects every tuple.
    build: Any = DeadLetterFilter
    where: DeadLetterFilter = build(ids=ids)
    return where


@pytest.fixture
def anyio_backend() -> str:
    """aiosqlite resolves asyncio futures: these tests run on asyncio only."""
    return "asyncio"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the store file goes."""
    return tmp_path / "dead.db"


@pytest.fixture
def raw(path: Path) -> Iterator[sqlite3.Connection]:
    """A plain sqlite3 connection to the store file: another process, or a vandal."""
    connection = sqlite3.connect(path, isolation_level=None, timeout=0)
    yield connection
    connection.close()


def pragma(path: Path, name: str) -> object:
    """Read one PRAGMA from the file with a fresh connection."""
    with sqlite3.connect(path) as connection:
        value: object = connection.execute(f"PRAGMA {name}").fetchone()[0]
    connection.close()
    return value


def snapshot(path: Path) -> dict[str, bytes]:
    """The bytes of the file and of any SQLite side files next to it."""
    return {p.name: p.read_bytes() for p in path.parent.iterdir() if p.name.startswith(path.name)}


# -- the file format ------------------------------------------------------------------


async def test_new_store_is_marked_and_versioned(path: Path) -> None:
    """A new file gets otpy's application_id, the latest schema version (3), and WAL."""
    async with open_store(path) as store:
        assert store.path == str(path)
        assert repr(store) == f"<SQLiteDeadLetterStore {str(path)!r}>"
    assert pragma(path, "application_id") == APPLICATION_ID
    assert pragma(path, "user_version") == len(_schema.MIGRATIONS) == 3
    assert pragma(path, "journal_mode") == "wal"


async def test_an_empty_file_becomes_a_store(path: Path) -> None:
    """A zero-byte file (touched by a deploy script) is an empty database: it is initialised."""
    await anyio.Path(path).touch()
    async with open_store(path) as store:
        await store.add_many([make()])
    assert pragma(path, "application_id") == APPLICATION_ID


async def test_reopening_is_idempotent(path: Path) -> None:
    """Opening an up-to-date store again changes neither its schema nor its records."""
    record = make()
    async with open_store(path) as store:
        await store.add_many([record])
    with sqlite3.connect(path) as connection:
        schema = connection.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall()
    connection.close()
    for _ in range(2):
        async with open_store(path) as store:
            assert await store.get(record.id) == record
    with sqlite3.connect(path) as connection:
        assert (
            connection.execute("SELECT sql FROM sqlite_master ORDER BY name").fetchall() == schema
        )
    connection.close()
    assert pragma(path, "user_version") == 3


async def test_open_migrates_an_older_schema(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store written by an older otpy is migrated on open, records intact."""
    record = make(payload=b"x" * 100_000)
    async with open_store(path) as store:
        await store.add_many([record])
    v2 = ("ALTER TABLE dead_letters ADD COLUMN note TEXT",)
    monkeypatch.setattr(_schema, "MIGRATIONS", (*_schema.MIGRATIONS, v2))
    async with open_store(path) as store:
        assert await store.get(record.id) == record
    assert pragma(path, "user_version") == 4
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(dead_letters)")]
    connection.close()
    assert "note" in columns


async def test_failed_migration_leaves_the_store_as_it_was(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A migration that fails rolls back whole: old version, old schema, records intact."""
    record = make()
    async with open_store(path) as store:
        await store.add_many([record])
    broken = ("ALTER TABLE dead_letters ADD COLUMN note TEXT", "THIS IS NOT SQL")
    monkeypatch.setattr(_schema, "MIGRATIONS", (*_schema.MIGRATIONS, broken))
    with pytest.raises(DeadLetterStoreError, match="sqlite failed with SQLITE_ERROR"):
        await SQLiteDeadLetterStore.open(path)
    monkeypatch.undo()
    assert pragma(path, "user_version") == 3
    async with open_store(path) as store:
        assert await store.get(record.id) == record
    with sqlite3.connect(path) as connection:
        columns = [row[1] for row in connection.execute("PRAGMA table_info(dead_letters)")]
    connection.close()
    assert "note" not in columns


async def test_store_from_a_newer_otpy_is_refused_untouched(path: Path) -> None:
    """A schema version above what this otpy knows raises StoreVersionTooNew and writes nothing."""
    async with open_store(path):
        pass
    with sqlite3.connect(path, isolation_level=None) as connection:
        connection.execute("PRAGMA user_version = 7")
    connection.close()
    before = await anyio.Path(path).read_bytes()
    with pytest.raises(
        StoreVersionTooNew, match="schema version 7 was written by a newer otpy"
    ) as info:
        await SQLiteDeadLetterStore.open(path)
    assert (info.value.found, info.value.supported) == (7, 3)
    assert await anyio.Path(path).read_bytes() == before


async def test_text_file_is_not_a_store(path: Path) -> None:
    """A text file at the path raises NotAnOtpyStore and is left exactly as it was."""
    await anyio.Path(path).write_text("these are my notes, not a database\n" * 20)
    before = snapshot(path)
    with pytest.raises(NotAnOtpyStore, match=r"not an otpy dead-letter store \(sqlite says"):
        await SQLiteDeadLetterStore.open(path)
    assert snapshot(path) == before


async def test_another_applications_database_is_not_a_store(path: Path) -> None:
    """An SQLite database of some other program raises NotAnOtpyStore and is left untouched."""
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE invoices (id INTEGER PRIMARY KEY, total REAL)")
        connection.execute("INSERT INTO invoices (total) VALUES (9.5)")
    connection.close()
    before = snapshot(path)
    with pytest.raises(NotAnOtpyStore, match="SQLite database of another application"):
        await SQLiteDeadLetterStore.open(path)
    assert snapshot(path) == before


async def test_database_with_a_foreign_application_id_is_not_a_store(path: Path) -> None:
    """An empty database stamped with another application_id is refused, not claimed."""
    with sqlite3.connect(path, isolation_level=None) as connection:
        connection.execute("PRAGMA application_id = 42")
    connection.close()
    before = snapshot(path)
    with pytest.raises(NotAnOtpyStore, match="application_id is 0x0000002a, not 0x6f747079"):
        await SQLiteDeadLetterStore.open(path)
    assert snapshot(path) == before


async def test_missing_directory_is_a_store_error(tmp_path: Path) -> None:
    """A path in a directory that does not exist says so, instead of a bare sqlite3 error."""
    with pytest.raises(DeadLetterStoreError, match="check that its directory exists"):
        await SQLiteDeadLetterStore.open(tmp_path / "nowhere" / "dead.db")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"synchronous": "EXTRA"},
            r"synchronous must be one of 'FULL', 'NORMAL', 'OFF', got 'EXTRA'",
        ),
        ({"inline_limit": -1}, "inline_limit must be >= 0, got -1"),
        ({"busy_timeout": -0.5}, "busy_timeout must be >= 0, got -0.5"),
        ({"max_pages": 0}, "max_pages must be >= 1 or None, got 0"),
        (
            {"max_batch": 0},
            "SQLiteDeadLetterStore.open: max_batch must be an integer >= 1, got 0",
        ),
        (
            {"max_pending": 0},
            "SQLiteDeadLetterStore.open: max_pending must be an integer >= 1, got 0",
        ),
    ],
)
async def test_bad_options_are_refused_before_the_file_is_created(
    path: Path, options: dict[str, Any], message: str
) -> None:
    """Out-of-range options raise ValueError naming the option, and no file appears."""
    with pytest.raises(ValueError, match=f"^{message}$"):
        await SQLiteDeadLetterStore.open(path, **options)
    assert not await anyio.Path(path).exists()


async def test_a_small_pending_bound_still_stores_every_capture(path: Path) -> None:
    """DL-11: with max_pending=2 and max_batch=2, 20 concurrent captures wait their turn, all stored."""
    records = [make() for _ in range(20)]
    async with open_store(path, max_batch=2, max_pending=2) as store:
        async with anyio.create_task_group() as tg:
            for one in records:
                tg.start_soon(store.add_many, [one])
        assert await store.count() == 20


@pytest.mark.parametrize("synchronous", ["FULL", "normal", "OFF"])
async def test_each_synchronous_mode_is_accepted(path: Path, synchronous: str) -> None:
    """Twin: every allowed synchronous mode, in any case, opens a working store."""
    async with open_store(path, synchronous=synchronous) as store:
        assert await store.add_many([make()]) == 1


@pytest.mark.parametrize("anyio_backend", ["trio"])
async def test_opening_on_trio_says_asyncio_is_needed(path: Path) -> None:
    """aiosqlite cannot run on trio: open says so, and what to use instead."""
    with pytest.raises(RuntimeError, match=r"runs on asyncio only .* or use MemoryDeadLetterStore"):
        await SQLiteDeadLetterStore.open(path)
    assert not await anyio.Path(path).exists()


# -- durability -----------------------------------------------------------------------


async def test_dl_2_everything_survives_close_and_reopen(path: Path) -> None:
    """DL-2: records (large payloads too), replay state, ledger and counters are all on disk."""
    small, large, archived = make(), make(payload=os.urandom(200_000)), make(key="old")
    clock = [T0]
    async with open_store(path, inline_limit=1000, clock=lambda: clock[0]) as store:
        await store.add_many([small, large, archived])
        await store.archive(only_ids((archived.id,)))
        decision = await store.begin_replay(large.id, lease=30.0)
        assert await store.mark_started(decision.record)
        await store.begin_replay(small.id, lease=30.0)
        await store.finish(small.id, ReplayOutcome.REPLAYED)
        clock[0] += 10 * 86400.0
        await store.sweep(RetentionPolicy(archived=RetentionRule(max_age=86400.0)))
        before = {r.id: await store.get(r.id) for r in (small, large)}
        ledger = {r.id: await store.ledger(r.replay_key) for r in (small, large)}
        stats = await store.statistics()
    async with open_store(path, inline_limit=1000) as store:
        assert {r.id: await store.get(r.id) for r in (small, large)} == before
        assert before[large.id].payload == large.payload
        assert {r.id: await store.ledger(r.replay_key) for r in (small, large)} == ledger
        assert await store.statistics() == stats
    assert stats.evicted == {"archived:max_age": 1}
    assert stats.captured == 3
    entry = ledger[large.id]
    assert entry is not None
    assert entry.state is LedgerState.PENDING


async def test_dl_2_committed_records_survive_kill_9(path: Path) -> None:
    """DL-2: once add_many returns, a SIGKILL of the process loses nothing."""
    script = textwrap.dedent(
        """
        import sys, anyio
        from otpy.deadletter import DeadLetter, open_store

        async def main():
            async with open_store(sys.argv[1]) as store:
                records = [
                    DeadLetter.capture(key="k", source="ingest", payload=bytes([i]) * 70_000,
                                       trace_context={})
                    for i in range(3)
                ]
                await store.add_many(records)
                print(" ".join(r.id for r in records), flush=True)
                await anyio.sleep_forever()

        anyio.run(main, backend="asyncio")
        """
    )
    async with await anyio.open_process([sys.executable, "-c", script, str(path)]) as process:
        assert process.stdout is not None
        line = b""
        async for chunk in process.stdout:
            line += chunk
            if line.endswith(b"\n"):
                break
        process.send_signal(signal.SIGKILL)
        assert await process.wait() == -signal.SIGKILL
    ids = line.decode().split()
    assert len(ids) == 3
    async with open_store(path) as store:
        for i, record_id in enumerate(ids):
            assert (await store.get(record_id)).payload == bytes([i]) * 70_000


async def test_large_payloads_live_apart_and_go_with_their_record(path: Path) -> None:
    """Payloads over inline_limit are stored in their own table and deleted with the record."""
    small, large = make(payload=b"s" * 10), make(payload=b"L" * 11)
    async with open_store(path, inline_limit=10) as store:
        await store.add_many([small, large])
        with sqlite3.connect(path) as connection:
            assert connection.execute("SELECT id FROM payloads").fetchall() == [(large.id,)]
            inline = connection.execute(
                "SELECT payload FROM dead_letters WHERE id = ?", (small.id,)
            ).fetchone()
        connection.close()
        assert inline == (b"s" * 10,)
        assert await store.purge(DeadLetterFilter()) == 2
        with sqlite3.connect(path) as connection:
            assert connection.execute("SELECT count(*) FROM payloads").fetchone() == (0,)
        connection.close()


async def test_list_never_reads_the_payloads_table(path: Path, raw: sqlite3.Connection) -> None:
    """Listing leaves large payloads unread: it works even with the payload gone; get does not."""
    (large,) = [make(payload=b"L" * 200)]
    async with open_store(path, inline_limit=100) as store:
        await store.add_many([large])
        raw.execute("DELETE FROM payloads")
        (listed,) = (await store.list()).records
        assert listed == attrs.evolve(large, payload=None)
        with pytest.raises(CorruptRecord, match="its payload is missing"):
            await store.get(large.id)
    for where in (DeadLetterFilter(), DeadLetterFilter(status=Status.ACTIVE)):
        sql, params = _queries.list_query(where, limit=50, cursor=None)
        plan = " ".join(row[3] for row in raw.execute(f"EXPLAIN QUERY PLAN {sql}", params))
        assert "payloads" not in plan


async def test_dl_5_large_sweeps_evict_in_chunks_and_count_everything(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DL-5: a sweep evicting more than one chunk commits chunk by chunk and counts every eviction."""
    monkeypatch.setattr(_sqlite, "SWEEP_CHUNK", 2)
    clock = [T0]
    async with open_store(path, clock=lambda: clock[0]) as store:
        old = [make() for _ in range(5)]
        await store.add_many(old)
        await store.archive(DeadLetterFilter())
        clock[0] += 100.0
        young = [make(now=clock[0]) for _ in range(7)]
        await store.add_many(young)
        policy = RetentionPolicy(
            active=RetentionRule(max_count=2), archived=RetentionRule(max_age=50.0)
        )
        result = await store.sweep(policy)
        assert result.evicted == {"archived:max_age": 5, "active:max_count": 5}
        assert (await store.statistics()).evicted == result.evicted
        assert [r.id for r in (await store.list()).records] == [r.id for r in reversed(young[5:])]


async def test_dl_5_dl_8_large_ledger_prunes_go_in_chunks_and_persist_their_count(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DL-5, DL-8: pruning more ledger entries than one chunk commits chunk by chunk; the count survives reopening."""
    monkeypatch.setattr(_sqlite, "SWEEP_CHUNK", 2)
    clock = [T0]
    async with open_store(path, clock=lambda: clock[0]) as store:
        records = [make(idempotency_key=f"order-{n}") for n in range(6)]
        await store.add_many(records)
        for record in records:
            decision = await store.begin_replay(record.id, lease=30.0)
            assert await store.mark_started(decision.record)
            await store.finish(record.id, ReplayOutcome.REPLAYED)
        await store.purge(only_ids(tuple(r.id for r in records[:5])))
        clock[0] += 90 * 86400.0 + 1.0
        result = await store.sweep(RetentionPolicy())
        assert result.evicted == {"ledger:max_age": 5}
    async with open_store(path) as store:
        assert (await store.statistics()).evicted == {"ledger:max_age": 5}
        assert [await store.ledger(f"order-{n}") is None for n in range(6)] == [True] * 5 + [False]


# -- locking and concurrency ----------------------------------------------------------


async def test_write_while_another_process_holds_the_lock_is_store_locked(
    path: Path, raw: sqlite3.Connection
) -> None:
    """A write waits busy_timeout for another connection's write lock, then raises StoreLocked."""
    async with open_store(path, busy_timeout=0) as store:
        raw.execute("BEGIN EXCLUSIVE")
        with pytest.raises(StoreLocked, match="held the write lock for more than 0s") as info:
            await store.add_many([make()])
        assert info.value.busy_timeout == 0
        assert await store.count() == 0  # readers are not blocked (WAL)
        raw.execute("ROLLBACK")
        assert await store.add_many([make()]) == 1


async def test_dl_7_replay_guard_takes_the_write_lock_before_reading(
    path: Path, raw: sqlite3.Connection
) -> None:
    """DL-7: begin_replay reads the record under the write lock, so two processes cannot both proceed."""
    record = make()
    async with open_store(path, busy_timeout=0) as store:
        await store.add_many([record])
        raw.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreLocked):
            await store.begin_replay(record.id, lease=30.0)
        assert (await store.get(record.id)).replay.status is ReplayStatus.NEVER
        raw.execute("COMMIT")
        assert (await store.begin_replay(record.id, lease=30.0)).action is Action.PROCEED


async def test_dl_7_two_stores_on_one_file_never_both_proceed(path: Path) -> None:
    """DL-7: concurrent replays of one record through two connections: one proceeds, one is in progress."""
    record = make()
    decisions = []
    async with open_store(path) as first, open_store(path) as second:
        await first.add_many([record])

        async def replay(store: SQLiteDeadLetterStore) -> None:
            decisions.append(await store.begin_replay(record.id, lease=30.0))

        async with anyio.create_task_group() as tg:
            tg.start_soon(replay, first)
            tg.start_soon(replay, second)
    assert sorted(d.action.value for d in decisions) == ["proceed", "refuse"]
    assert {d.outcome for d in decisions} == {None, ReplayOutcome.IN_PROGRESS}


async def test_dl_8_two_stores_racing_with_one_idempotency_key_never_both_start(
    path: Path,
) -> None:
    """DL-8: two records sharing a key, leased through two connections: only one marks it started."""
    a, b = make(key="a", idempotency_key="pay-1"), make(key="b", idempotency_key="pay-1")
    passed: list[str] = []
    async with open_store(path) as first, open_store(path) as second:
        await first.add_many([a, b])
        leased = [
            (store, (await store.begin_replay(r.id, lease=30.0)).record)
            for store, r in ((first, a), (second, b))
        ]

        async def mark(store: SQLiteDeadLetterStore, record: DeadLetter) -> None:
            if await store.mark_started(record):
                passed.append(record.id)

        async with anyio.create_task_group() as tg:
            for store, record in leased:
                tg.start_soon(mark, store, record)
        entry = await first.ledger("pay-1")
    assert len(passed) == 1
    assert entry is not None
    assert (entry.state, entry.record_id) == (LedgerState.PENDING, passed[0])


async def test_concurrent_add_many_from_many_tasks(path: Path) -> None:
    """Batches added from 20 tasks at once are all stored, each once, and all counted."""
    batches = [[make(key=f"k{t}") for _ in range(25)] for t in range(20)]
    added = []
    async with open_store(path) as store:

        async def writer(batch: list[DeadLetter]) -> None:
            added.append(await store.add_many(batch))

        async with anyio.create_task_group() as tg:
            for batch in batches:
                tg.start_soon(writer, batch)
        assert added == [25] * 20
        assert await store.count() == 500
        assert (await store.statistics()).captured == 500
        assert await store.add_many([r for batch in batches for r in batch]) == 0


async def test_cancelled_operation_rolls_back_and_leaves_the_store_usable(path: Path) -> None:
    """A call cancelled before its transaction runs commits nothing and leaves the store usable."""
    record = make()
    scope = anyio.CancelScope()

    def cancelling_clock() -> float:
        scope.cancel()  # called just before the transaction is handed to the database
        return T0

    async with open_store(path, clock=cancelling_clock) as store:
        await store.add_many([record])
        with scope:
            await store.archive(DeadLetterFilter())
        assert scope.cancelled_caught
        assert (await store.get(record.id)).status is Status.ACTIVE
        store.clock = lambda: T0
        assert await store.archive(DeadLetterFilter()) == 1


async def test_cancelled_while_waiting_for_the_lock_leaves_no_transaction_open(
    path: Path, raw: sqlite3.Connection
) -> None:
    """A call cancelled while BEGIN waits for another process's lock leaves the store usable.

    If the write path's thread had taken the call, it runs to its end (its record is
    committed, unanswered) and the cancellation takes effect after; if not, the call
    is taken back. Either way capturing the record again stores it once.
    """
    first, second = make(), make()
    async with open_store(path) as store:
        raw.execute("BEGIN EXCLUSIVE")
        async with anyio.create_task_group() as tg:
            tg.start_soon(store.add_many, [first])
            await anyio.wait_all_tasks_blocked()
            tg.cancel_scope.cancel()
            raw.execute("ROLLBACK")  # BEGIN goes through on the database thread after all
        assert await store.add_many([second]) == 1
        assert await store.add_many([first]) in (0, 1)
        assert await store.count() == 2


async def test_error_inside_a_transaction_rolls_it_back(path: Path) -> None:
    """An exception raised mid-transaction (here by the clock) propagates and nothing is written."""
    record = make()

    def broken_clock() -> float:
        raise RuntimeError("clock unplugged")

    async with open_store(path, clock=broken_clock) as store:
        await store.add_many([record])
        with pytest.raises(RuntimeError, match="clock unplugged"):
            await store.begin_replay(record.id, lease=30.0)
        assert (await store.get(record.id)).replay.attempts == 0
        assert await store.add_many([make()]) == 1


# -- a full disk ----------------------------------------------------------------------


async def test_store_full_rolls_back_the_batch_and_keeps_what_was_committed(path: Path) -> None:
    """When max_pages is reached add_many raises StoreFull, stores none of that batch, loses nothing."""
    async with open_store(path):
        pass
    pages = pragma(path, "page_count")
    assert isinstance(pages, int)
    committed: list[DeadLetter] = []
    async with open_store(path, max_pages=pages + 8) as store:
        full: StoreFull | None = None
        for _ in range(100):
            batch = [make(payload=os.urandom(1500)) for _ in range(4)]
            try:
                await store.add_many(batch)
            except StoreFull as exc:
                full = exc
                break
            committed += batch
        assert full is not None, "the store never filled up"
        assert "the disk or the store's size limit is full" in str(full)
        assert committed
        assert await store.count() == len(committed)
        await store.purge(only_ids(tuple(r.id for r in committed[:4])))
        assert await store.add_many([make(payload=b"fits again")]) == 1  # freed pages are reused
    async with open_store(path) as store:
        for record in committed[4:]:
            assert await store.get(record.id) == record
        assert await store.count() == len(committed) - 3


# -- damaged rows ---------------------------------------------------------------------

DAMAGE = [
    ("status", "bogus", r"status 'bogus' is not one of active, archived"),
    ("category", "sad", r"category 'sad' is not one of retryable, terminal, fatal"),
    ("replay_last_outcome", "meh", r"replay_last_outcome 'meh' is not one of replayed"),
    ("headers", "{not json", r"headers is not valid JSON"),
    ("trace_context", '{"traceparent": "x"}', r"trace_context is not a JSON list of \[name"),
    ("attributes", '{"url.full": "x"}', r"attributes is not a JSON list of \[name"),
    ("attributes", '[["URL", "x"]]', r"\(attributes\[0\] name 'URL' must be a dotted lowercase"),
    ("created_at", "yesterday", r"created_at is str, not a number"),
    ("attempt", -1, r"\(attempt must be >= 0 and < 2\*\*63, got -1\)"),
    ("created_at", float("inf"), r"\(created_at must be a finite time >= 0 and < 2534"),
    ("max_attempts", 2.5, r"max_attempts is float, not an integer"),
    ("payload_size", 999, r"payload_size is 999 but the payload has 5 bytes"),
    ("payload", "text, not bytes", r"payload is str, not a blob"),
    ("key", "", r"key must not be empty"),
    ("reason_class", b"\x00", r"reason_class is bytes, not text"),
    ("attempt", "many", r"attempt is str, not an integer"),
]


@pytest.mark.parametrize(("column", "value", "detail"), DAMAGE, ids=[d[0] for d in DAMAGE])
async def test_damaged_row_is_a_corrupt_record_and_can_be_purged(
    path: Path, raw: sqlite3.Connection, column: str, value: object, detail: str
) -> None:
    """A row no record could have written raises CorruptRecord naming it; the others read fine; purge removes it."""
    damaged, intact = make(), make()
    async with open_store(path) as store:
        await store.add_many([damaged, intact])
        raw.execute(f"UPDATE dead_letters SET {column} = ? WHERE id = ?", (value, damaged.id))
        with pytest.raises(CorruptRecord, match=detail) as info:
            await store.get(damaged.id)
        assert info.value.record_id == damaged.id
        assert f"'otpy dlq purge --id {damaged.id}' removes it" in str(info.value)
        page = await store.list()
        assert page.records == (intact,)
        assert [(c.record_id, str(c)) for c in page.corrupt] == [(damaged.id, str(info.value))]
        with pytest.raises(CorruptRecord):
            await store.begin_replay(damaged.id, lease=30.0)
        assert await store.get(intact.id) == intact
        assert await store.count() == 2
        assert await store.purge(only_ids((damaged.id,))) == 1
        with pytest.raises(DeadLetterNotFound):
            await store.get(damaged.id)
        assert (await store.list()).records == (intact,)


async def test_listing_reports_corrupt_rows_by_id_and_lists_the_others(
    path: Path, raw: sqlite3.Connection
) -> None:
    """Rows with a bad enum, bad JSON, a wrong type or invalid UTF-8 are reported by id; every other record is listed, across pages."""
    records = [make() for _ in range(7)]
    async with open_store(path) as store:
        await store.add_many(records)
        damage = {
            records[1].id: "UPDATE dead_letters SET status = 'bogus' WHERE id = ?",
            records[3].id: "UPDATE dead_letters SET headers = '{not json' WHERE id = ?",
            records[4].id: "UPDATE dead_letters SET attempt = 'many' WHERE id = ?",
            records[6].id: "UPDATE dead_letters SET key = CAST(x'ff6b6579' AS TEXT) WHERE id = ?",
        }
        for record_id, sql in damage.items():
            raw.execute(sql, (record_id,))
        first = await store.list(limit=4)
        second = await store.list(limit=4, cursor=first.next_cursor)
        assert [r.id for r in first.records + second.records] == [records[i].id for i in (5, 2, 0)]
        corrupt = {c.record_id: str(c) for c in first.corrupt + second.corrupt}
        assert list(corrupt) == [records[i].id for i in (6, 4, 3, 1)]
        assert "key must be text that encodes as UTF-8" in corrupt[records[6].id]
        assert "attempt is str, not an integer" in corrupt[records[4].id]
        assert "headers is not valid JSON" in corrupt[records[3].id]
        assert "status 'bogus' is not one of active, archived" in corrupt[records[1].id]
        assert second.next_cursor is None
        with pytest.raises(CorruptRecord, match=rf"record '{records[6].id}' is corrupt \(key "):
            await store.get(records[6].id)


async def replay_nothing(record: DeadLetter, key: str) -> None:
    """A replay handler that succeeds without doing anything."""
    await anyio.lowlevel.checkpoint()


async def test_replay_reports_a_corrupt_row_and_replays_the_others(path: Path) -> None:
    """Bulk replay gives an undecodable row a result with no outcome naming it and replays the others; replay of it raises CorruptRecord."""
    damaged, healthy = make("a"), make("b")
    async with open_store(path) as store:
        await store.add_many([damaged, healthy])
        with sqlite3.connect(path) as raw:
            raw.execute("UPDATE dead_letters SET source = 'martian' WHERE id = ?", (damaged.id,))
        raw.close()
        async with open_replayer(store, {Source.OUTBOUND: replay_nothing}) as replayer:
            results = await replayer.replay_many(DeadLetterFilter())
            assert [(r.record_id, r.outcome) for r in results] == [
                (damaged.id, None),
                (healthy.id, ReplayOutcome.REPLAYED),
            ]
            assert results[0].error is not None
            assert f"record '{damaged.id}' is corrupt (source 'martian'" in results[0].error
            with pytest.raises(CorruptRecord, match=rf"record '{damaged.id}' is corrupt"):
                await replayer.replay(damaged.id)


async def test_damaged_id_is_still_purgeable_by_that_id(
    path: Path, raw: sqlite3.Connection
) -> None:
    """A row whose id itself is malformed is reported under that id, and purge removes it."""
    record = make()
    async with open_store(path) as store:
        await store.add_many([record])
        raw.execute("UPDATE dead_letters SET id = 'not-an-id' WHERE id = ?", (record.id,))
        page = await store.list()
        assert page.records == ()
        assert [str(c) for c in page.corrupt] == [
            f"dead-letter store {path}: record 'not-an-id' is corrupt (id 'not-an-id' is not a "
            "26-character otpy id; make ids with otpy.deadletter.new_id()); the other records "
            "are intact: 'otpy dlq purge --id not-an-id' removes it"
        ]
        assert await store.purge(only_ids(("not-an-id",))) == 1
        assert await store.count() == 0


async def test_reclaim_skips_a_damaged_running_record(
    path: Path, raw: sqlite3.Connection, caplog: pytest.LogCaptureFixture
) -> None:
    """DL-9: one undecodable running row is logged by id and skipped; the others are reclaimed."""
    damaged, healthy = make(), make()
    clock = [T0]
    async with open_store(path, clock=lambda: clock[0]) as store:
        await store.add_many([damaged, healthy])
        for record in (damaged, healthy):
            await store.begin_replay(record.id, lease=5.0)
        raw.execute("UPDATE dead_letters SET source = 'martian' WHERE id = ?", (damaged.id,))
        clock[0] += 5.0
        reclaimed = await store.reclaim_expired()
        assert [r.record.id for r in reclaimed] == [healthy.id]
    assert f"record '{damaged.id}' is corrupt" in caplog.text


async def test_damaged_ledger_entry_is_a_store_error(path: Path, raw: sqlite3.Connection) -> None:
    """A ledger row with an unknown state is reported, never read as 'not started'."""
    record = make()
    async with open_store(path) as store:
        await store.add_many([record])
        raw.execute(
            "INSERT INTO ledger VALUES (?, 'maybe', ?, NULL, 0)", (record.replay_key, record.id)
        )
        with pytest.raises(DeadLetterStoreError, match="ledger entry for idempotency key"):
            await store.begin_replay(record.id, lease=30.0)
        assert (await store.get(record.id)).replay.status is ReplayStatus.NEVER


async def test_damaged_schema_is_a_store_error(path: Path, raw: sqlite3.Connection) -> None:
    """A table dropped behind the store's back surfaces as a store error with sqlite's complaint."""
    async with open_store(path) as store:
        raw.execute("DROP TABLE counters")
        with pytest.raises(
            DeadLetterStoreError, match="sqlite failed with SQLITE_ERROR: no such table: counters"
        ):
            await store.statistics()
        with pytest.raises(DeadLetterStoreError, match="no such table: counters"):
            await store.add_many([make()])
        assert await store.count() == 0  # the failed capture was rolled back


@pytest.mark.parametrize(
    ("damage", "missing"),
    [
        ("DROP TABLE ledger", "table ledger"),
        ("DROP TABLE payloads", "table payloads"),
        ("ALTER TABLE dead_letters DROP COLUMN reason", "column dead_letters.reason"),
        ("ALTER TABLE counters RENAME COLUMN value TO amount", "column counters.value"),
        # a version-3 file lacks a column its own migration added: damage, not age
        ("ALTER TABLE dead_letters DROP COLUMN attributes", "column dead_letters.attributes"),
    ],
)
async def test_store_missing_a_table_or_column_is_refused_at_open(
    path: Path, damage: str, missing: str
) -> None:
    """A store whose tables or columns were dropped is refused when it is opened, naming the file and what is missing, and left untouched."""
    async with open_store(path) as store:
        await store.add_many([make()])
    with sqlite3.connect(path) as connection:
        connection.execute(damage)
    connection.close()
    before = snapshot(path)
    with pytest.raises(
        StoreSchemaDamaged,
        match=rf"^dead-letter store {re.escape(str(path))}: its schema is damaged, missing "
        rf"{re.escape(missing)}; restore the file from a backup",
    ) as info:
        await SQLiteDeadLetterStore.open(path)
    assert info.value.missing == (missing,)
    assert snapshot(path) == before


async def test_store_with_its_whole_schema_opens(path: Path) -> None:
    """Twin: a store written by this otpy, with an extra table of an operator's, opens and reads."""
    record = make()
    async with open_store(path) as store:
        await store.add_many([record])
    with sqlite3.connect(path) as connection:
        connection.execute("CREATE TABLE notes (text TEXT)")
    connection.close()
    async with open_store(path) as store:
        assert await store.get(record.id) == record


async def test_a_row_sqlite_would_refuse_is_a_loud_error_not_a_silent_skip(path: Path) -> None:
    """A record that slipped past validation (NaN created_at) makes add_many raise; nothing in the batch is stored."""
    bad, good = make(), make()
    object.__setattr__(bad, "created_at", float("nan"))  # what validation now refuses
    async with open_store(path) as store:
        with pytest.raises(DeadLetterStoreError, match=r"NOT NULL constraint failed"):
            await store.add_many([good, bad])
        assert await store.count() == 0
        assert (await store.statistics()).captured == 0


# -- query plans ----------------------------------------------------------------------

INDEXED = [
    DeadLetterFilter(),
    DeadLetterFilter(status=Status.ACTIVE),
    DeadLetterFilter(status=Status.ARCHIVED, key="dest"),
    DeadLetterFilter(key="dest"),
    DeadLetterFilter(replay_status=ReplayStatus.FAILED),
    only_ids(("A" * 26, "B" * 26)),
    only_ids(tuple(f"{i:026d}" for i in range(600))),
]


@pytest.mark.parametrize("cursor", [None, "0" * 26])
@pytest.mark.parametrize("where", INDEXED, ids=range(len(INDEXED)))
async def test_listing_uses_an_index_and_never_sorts(
    path: Path, where: DeadLetterFilter, cursor: str | None
) -> None:
    """Listing pages walk an index in id order (no table scan, no sort), so they stay fast at 1M rows."""
    async with open_store(path):
        pass
    sql, params = _queries.list_query(where, limit=50, cursor=cursor)
    with sqlite3.connect(path) as connection:
        plan = [row[3] for row in connection.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
    connection.close()
    main = [step for step in plan if " d " in f" {step} "]
    assert main
    assert all("USING INDEX" in step or "USING COVERING INDEX" in step for step in main), plan
    assert not any("TEMP B-TREE" in step for step in plan), plan


async def test_reclaim_reads_only_running_records_through_an_index(path: Path) -> None:
    """DL-9: finding expired leases searches the replay-status index instead of scanning the table."""
    async with open_store(path):
        pass
    with sqlite3.connect(path) as connection:
        plan = [
            row[3]
            for row in connection.execute(f"EXPLAIN QUERY PLAN {_queries.RECLAIM_QUERY}", (T0,))
        ]
    connection.close()
    assert any(
        "SEARCH d USING INDEX dead_letters_replay_status_id (replay_status=?)" in s for s in plan
    )


async def test_dl_5_dl_8_ledger_pruning_never_scans_the_records(path: Path) -> None:
    """DL-5, DL-8: pruning reads the ledger once and looks each entry's records up by index, never scanning them."""
    async with open_store(path):
        pass
    with sqlite3.connect(path) as connection:
        plan = [
            row[3]
            for row in connection.execute(
                f"EXPLAIN QUERY PLAN {_queries.PRUNE_LEDGER}", (T0, _sqlite.SWEEP_CHUNK)
            )
        ]
    connection.close()
    lookups = [step for step in plan if " d " in f" {step} "]
    assert lookups == [
        "SEARCH d USING COVERING INDEX sqlite_autoindex_dead_letters_1 (id=?)",
        "SEARCH d USING COVERING INDEX dead_letters_idempotency_key (idempotency_key=?)",
        "SEARCH d USING COVERING INDEX sqlite_autoindex_dead_letters_1 (id=?)",
    ], plan
    assert "SEARCH ledger USING INDEX sqlite_autoindex_ledger_1 (key=?)" in plan
    assert "SEARCH l USING INDEX ledger_updated_at (updated_at<?)" in plan  # no ledger scan


# -- error translation ----------------------------------------------------------------


def _error(message: str, code: int | None = None) -> sqlite3.Error:
    """An sqlite3 error as the module raises it (with a code) or as older ones did (without)."""
    exc = sqlite3.OperationalError(message)
    if code is not None:
        exc.sqlite_errorcode = code
        exc.sqlite_errorname = "SQLITE_X"
    return exc


@pytest.mark.parametrize(
    ("exc", "kind", "message"),
    [
        (_error("database is locked"), StoreLocked, "database is locked"),
        (_error("database table is locked"), StoreLocked, "database is locked"),
        (_error("x", sqlite3.SQLITE_BUSY | 0x100), StoreLocked, "database is locked"),
        (_error("database or disk is full"), StoreFull, "is full"),
        (_error("file is not a database"), NotAnOtpyStore, "file is not a database"),
        (_error("damaged", sqlite3.SQLITE_CORRUPT), DeadLetterStoreError, r"\.recover"),
        (_error("ro", sqlite3.SQLITE_READONLY), DeadLetterStoreError, "needs write access"),
        (_error("odd", sqlite3.SQLITE_MISMATCH), DeadLetterStoreError, "SQLITE_X: odd"),
        (_error("odd"), DeadLetterStoreError, "OperationalError: odd"),
    ],
)
def test_sqlite_errors_become_store_errors(
    exc: sqlite3.Error, kind: type[DeadLetterStoreError], message: str
) -> None:
    """Each sqlite3 failure maps to the store error an operator can act on (codes, or messages without them)."""
    error = _connection.store_error(exc, "dead.db", 5.0)
    assert type(error) is kind
    assert error.path == "dead.db"
    assert re.search(message, str(error))


def older_store(path: Path, version: int, records: tuple[DeadLetter, ...] = ()) -> None:
    """Write the file an otpy of schema *version* wrote, holding *records*.

    The tables come from the first *version* migrations, and each record is stored
    as such an otpy stored it: without the columns later migrations added.
    """
    with sqlite3.connect(path, isolation_level=None) as connection:
        for statement in (s for step in _schema.MIGRATIONS[:version] for s in step):
            connection.execute(statement)
        columns = [row[1] for row in connection.execute("PRAGMA table_info(dead_letters)")]
        for record in records:
            row, _ = _codec.encode(record, inline_limit=65_536)
            values = dict(zip(_schema.COLUMNS, row, strict=True))
            connection.execute(
                f"INSERT INTO dead_letters ({', '.join(columns)}) "
                f"VALUES ({', '.join('?' * len(columns))})",
                [values[column] for column in columns],
            )
        connection.execute(f"PRAGMA application_id = {APPLICATION_ID}")
        connection.execute(f"PRAGMA user_version = {version}")
    connection.close()


async def test_a_version_1_store_gains_the_ledger_index_and_keeps_its_ledger(path: Path) -> None:
    """DL-5/DL-8: a store written before ledger pruning is migrated on open.

    The migration only adds the index pruning reads; records and ledger entries are
    kept, and the old entry is pruned by the next sweep as usual.
    """
    record = make()
    older_store(path, 1, (record,))
    with sqlite3.connect(path, isolation_level=None) as connection:
        connection.execute(
            "INSERT INTO ledger (key, state, record_id, expires_at, updated_at) "
            "VALUES ('dead_letter:gone', 'committed', 'gone', NULL, ?)",
            (T0,),
        )
    connection.close()
    async with open_store(path, clock=lambda: T0 + 100 * 86400.0) as store:
        assert await store.get(record.id) == record
        assert pragma(path, "user_version") == len(_schema.MIGRATIONS)
        assert (await store.ledger("dead_letter:gone")) is not None
        result = await store.sweep(RetentionPolicy())
        assert result.evicted == {"ledger:max_age": 1}
        assert (await store.ledger("dead_letter:gone")) is None
    with sqlite3.connect(path) as connection:
        indexes = [row[1] for row in connection.execute("PRAGMA index_list(ledger)")]
    connection.close()
    assert "ledger_updated_at" in indexes


async def test_a_version_2_store_gains_attributes_and_keeps_its_records(path: Path) -> None:
    """DL-1: a store written before attributes is migrated to version 3 on open, records intact.

    Its records come back with no attributes; records captured after carry theirs.
    """
    old = make(headers={"X-Request-Id": "r-1"}, payload=b"x" * 100)
    older_store(path, 2, (old,))
    new = make(attributes={"otpy.ordering_key": "order-7", "url.full": "https://h.example/"})
    async with open_store(path) as store:
        assert pragma(path, "user_version") == 3
        assert await store.get(old.id) == old
        assert old.attributes == ()
        assert await store.add_many([new]) == 1
        assert await store.get(new.id) == new
        page = await store.list(DeadLetterFilter())
        assert [r.attributes for r in page.records] == [
            (("otpy.ordering_key", "order-7"), ("url.full", "https://h.example/")),
            (),
        ]
