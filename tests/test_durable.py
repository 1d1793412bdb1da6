"""otpy's one durable write path: group commit, answers after commit, failures, bounds (DL-11).

The writer's thread is held inside an exclusive transaction (``transaction(fn)``
with *fn* waiting on a ``threading.Event``), so what queues behind it, and when
each caller is answered, is decided by the test and never by timing.
"""

from __future__ import annotations

import sqlite3
import threading
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
import pytest

from otpy._durable import SQLiteWriter, Table, Write, connect
from otpy._durable._table import chunks

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable, Sequence
    from pathlib import Path

    from otpy._durable import Row


class StoreError(Exception):
    """What the test's translate() makes of a sqlite3 error."""

    def __init__(self, error: sqlite3.Error) -> None:
        super().__init__(f"store: {error}")
        self.error = error


def schema(path: Path) -> None:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT NOT NULL)")
    db.execute("CREATE TABLE counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL)")
    db.close()


def count_items(db: sqlite3.Connection, inserted: int) -> None:
    db.execute(
        "INSERT INTO counters VALUES ('items', ?) "
        "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
        (inserted,),
    )


def refuse_conflicts(db: sqlite3.Connection, rows: Sequence[Row], inserted: int) -> None:
    stored = dict(db.execute("SELECT id, body FROM items").fetchall())
    for row in rows:
        if stored.get(row[0]) != row[1]:
            raise ValueError(f"item {row[0]} is stored with another body")


ITEMS = Table(
    "items",
    ("id", "body"),
    on_conflict="ON CONFLICT (id) DO NOTHING",
    sort=True,
    check=refuse_conflicts,
    after=count_items,
)


def rows(*ids: int) -> list[Row]:
    return [(i, f"body {i}") for i in ids]


def stored(path: Path) -> tuple[list[int], int]:
    """The ids stored and the ``items`` counter, read on a connection of the test's own."""
    db = sqlite3.connect(path)
    try:
        ids = [i for (i,) in db.execute("SELECT id FROM items ORDER BY id")]
        counter = db.execute("SELECT value FROM counters WHERE name = 'items'").fetchone()
        return ids, counter[0] if counter else 0
    finally:
        db.close()


@asynccontextmanager
async def open_writer(
    path: Path, *, max_batch: int = 1000, max_pending: int = 20_000
) -> AsyncIterator[SQLiteWriter]:
    schema(path)
    writer = await SQLiteWriter.open(
        str(path), translate=StoreError, max_batch=max_batch, max_pending=max_pending
    )
    try:
        yield writer
    finally:
        await writer.aclose()


class Hold:
    """An exclusive transaction that keeps the writer's thread until released."""

    def __init__(self) -> None:
        self.entered = threading.Event()
        self.released = threading.Event()

    def __call__(self, db: sqlite3.Connection) -> str:
        self.entered.set()
        self.released.wait(30)
        return "held"

    async def start(self, writer: SQLiteWriter, tg: anyio.abc.TaskGroup) -> None:
        """Start holding; return once the thread is inside."""
        tg.start_soon(writer.transaction, self)
        await anyio.to_thread.run_sync(self.entered.wait, 30)


async def test_appends_queued_during_a_commit_are_committed_together(tmp_path: Path) -> None:
    """DL-11: what waits while the thread is busy goes in one transaction, each answered after it."""
    path = tmp_path / "items.db"
    answers: dict[int, int] = {}
    async with open_writer(path) as writer:
        hold = Hold()
        async with anyio.create_task_group() as tg:
            await hold.start(writer, tg)

            async def append(i: int) -> None:
                answers[i] = await writer.append(Write([(ITEMS, rows(i))]))

            for i in range(10):
                tg.start_soon(append, i)
            await anyio.wait_all_tasks_blocked()
            assert writer.statistics().pending == 10
            assert answers == {}  # nothing is answered before its commit
            assert stored(path) == ([], 0)
            hold.released.set()
        stats = writer.statistics()
    assert answers == dict.fromkeys(range(10), 1)
    assert (stats.transactions, stats.batches, stats.largest_batch, stats.rows) == (1, 1, 10, 10)
    assert stored(path) == (list(range(10)), 10)


async def test_an_append_returns_only_once_its_rows_are_committed(tmp_path: Path) -> None:
    """DL-11: when append returns, another connection sees the rows."""
    path = tmp_path / "items.db"
    async with open_writer(path) as writer:
        for i in range(3):
            assert await writer.append(Write([(ITEMS, rows(i))])) == 1
            assert stored(path) == (list(range(i + 1)), i + 1)


async def test_max_batch_caps_a_transaction(tmp_path: Path) -> None:
    """A batch takes whole writes up to max_batch rows; the rest goes in the next one."""
    path = tmp_path / "items.db"
    async with open_writer(path, max_batch=4) as writer:
        hold = Hold()
        async with anyio.create_task_group() as tg:
            await hold.start(writer, tg)
            for i in range(5):
                tg.start_soon(writer.append, Write([(ITEMS, rows(2 * i, 2 * i + 1))]))
            await anyio.wait_all_tasks_blocked()
            hold.released.set()
        stats = writer.statistics()
    assert (stats.batches, stats.largest_batch) == (3, 4)
    assert stored(path) == (list(range(10)), 10)


async def test_a_write_that_cannot_go_in_fails_alone(tmp_path: Path) -> None:
    """DL-11: a NOT NULL violation and a refused conflict fail their own callers; the batch commits."""
    path = tmp_path / "items.db"
    outcomes: dict[str, object] = {}
    async with open_writer(path) as writer:
        await writer.append(Write([(ITEMS, rows(1))]))
        hold = Hold()
        async with anyio.create_task_group() as tg:
            await hold.start(writer, tg)

            async def append(name: str, items: list[Row]) -> None:
                try:
                    outcomes[name] = await writer.append(Write([(ITEMS, items)]))
                except (StoreError, ValueError) as exc:
                    outcomes[name] = exc

            tg.start_soon(append, "good", rows(2, 3))
            null_body: list[Row] = [(4, None)]
            conflicting: list[Row] = [(1, "another body"), (5, "body 5")]
            tg.start_soon(append, "null", null_body)
            tg.start_soon(append, "conflict", conflicting)
            tg.start_soon(append, "again", rows(1, 6))  # 1 stored as it is: skipped
            await anyio.wait_all_tasks_blocked()
            hold.released.set()
        stats = writer.statistics()
    assert outcomes["good"] == 2
    assert outcomes["again"] == 1
    null = outcomes["null"]
    assert isinstance(null, StoreError)
    assert isinstance(null.error, sqlite3.IntegrityError)
    assert isinstance(outcomes["conflict"], ValueError)
    assert (stats.failed_writes, stats.failed_batches) == (2, 0)
    assert stored(path) == ([1, 2, 3, 6], 4)  # 5 went with its write's conflict


async def test_a_database_error_fails_the_whole_batch(tmp_path: Path) -> None:
    """DL-11: a full database refuses every write of the batch; none is stored, later writes work."""
    path = tmp_path / "items.db"
    schema(path)
    db = sqlite3.connect(path)
    (pages,) = db.execute("PRAGMA page_count").fetchone()
    db.close()
    writer = await SQLiteWriter.open(
        str(path), translate=StoreError, pragmas=(f"max_page_count = {pages + 2}",)
    )
    errors: list[BaseException] = []
    try:
        hold = Hold()
        async with anyio.create_task_group() as tg:
            await hold.start(writer, tg)

            async def append(i: int) -> None:
                try:
                    await writer.append(Write([(ITEMS, [(i, "x" * 4000)])]))
                except StoreError as exc:
                    errors.append(exc)

            for i in range(8):
                tg.start_soon(append, i)
            await anyio.wait_all_tasks_blocked()
            hold.released.set()
        assert len(errors) == 8
        assert all("full" in str(error) for error in errors)
        assert stored(path) == ([], 0)
        assert writer.statistics().failed_batches == 1
        assert await writer.append(Write([(ITEMS, rows(1))])) == 1
    finally:
        await writer.aclose()


async def test_a_cancelled_append_that_still_waits_is_taken_back(tmp_path: Path) -> None:
    """DL-11: cancelled while queued, its rows are never committed and the bound is released."""
    path = tmp_path / "items.db"
    async with open_writer(path) as writer:
        hold = Hold()
        async with anyio.create_task_group() as tg:
            await hold.start(writer, tg)
            async with anyio.create_task_group() as appends:
                appends.start_soon(writer.append, Write([(ITEMS, rows(1))]))
                await anyio.wait_all_tasks_blocked()
                assert writer.statistics().pending == 1
                appends.cancel_scope.cancel()
            assert writer.statistics().pending == 0
            hold.released.set()
        await writer.append(Write([(ITEMS, rows(2))]))
    assert stored(path) == ([2], 1)


async def test_a_cancelled_append_already_in_the_thread_is_committed(tmp_path: Path) -> None:
    """Cancelled once the thread has its rows: they commit, unanswered (storing again is safe)."""
    path = tmp_path / "items.db"
    inside, blocker = threading.Event(), threading.Event()

    def wait_for_blocker(db: sqlite3.Connection, inserted: int) -> None:
        inside.set()
        blocker.wait(30)

    gate = Table(
        "items", ("id", "body"), on_conflict="ON CONFLICT (id) DO NOTHING", after=wait_for_blocker
    )
    async with open_writer(path) as writer:
        async with anyio.create_task_group() as tg:
            tg.start_soon(writer.append, Write([(gate, rows(1))]))
            await anyio.to_thread.run_sync(inside.wait, 30)
            # The thread took it: nothing is pending, the caller still waits.
            assert writer.statistics().pending == 0
            tg.cancel_scope.cancel()
            blocker.set()
        assert await writer.append(Write([(ITEMS, rows(1))])) == 0  # already stored
    assert stored(path)[0] == [1]


async def test_a_timeout_takes_back_what_still_waits(tmp_path: Path) -> None:
    """An append not committed within its timeout raises TimeoutError; its rows are not stored."""
    path = tmp_path / "items.db"
    async with open_writer(path) as writer:
        hold = Hold()
        async with anyio.create_task_group() as tg:
            await hold.start(writer, tg)
            with pytest.raises(TimeoutError, match=r"not committed within 0\.01s"):
                await writer.append(Write([(ITEMS, rows(1))]), timeout=0.01)
            assert writer.statistics().pending == 0
            hold.released.set()
    assert stored(path) == ([], 0)


async def test_appends_beyond_max_pending_wait_for_room(tmp_path: Path) -> None:
    """DL-11: past max_pending rows a caller waits, queueing nothing, until a commit makes room."""
    path = tmp_path / "items.db"
    async with open_writer(path, max_pending=3) as writer:
        hold = Hold()
        async with anyio.create_task_group() as tg:
            await hold.start(writer, tg)
            for i in range(5):
                tg.start_soon(writer.append, Write([(ITEMS, rows(i))]))
            await anyio.wait_all_tasks_blocked()
            assert writer.statistics().pending == 3  # two callers wait for room
            hold.released.set()
    assert stored(path) == (list(range(5)), 5)


async def test_transaction_commits_its_result_or_rolls_back_what_it_raised(
    tmp_path: Path,
) -> None:
    """transaction(fn) is one BEGIN IMMEDIATE..COMMIT; a raise rolls back and reaches the caller."""
    path = tmp_path / "items.db"

    def insert_two(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO items VALUES (1, 'a')")
        db.execute("INSERT INTO items VALUES (2, 'b')")
        return 2

    def insert_then_fail(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO items VALUES (3, 'c')")
        raise LookupError("no such thing")

    def duplicate(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO items VALUES (1, 'again')")

    async with open_writer(path) as writer:
        assert await writer.transaction(insert_two) == 2
        with pytest.raises(LookupError, match="no such thing"):
            await writer.transaction(insert_then_fail)
        with pytest.raises(StoreError, match="UNIQUE"):
            await writer.transaction(duplicate)
    assert stored(path)[0] == [1, 2]


def insert(item: int) -> Callable[[sqlite3.Connection], int]:
    """A transaction body that inserts *item* and answers it."""

    def body(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO items VALUES (?, ?)", (item, f"body {item}"))
        return item

    return body


def peek(path: Path, seen: list[list[int]]) -> Callable[[sqlite3.Connection], int]:
    """A transaction body that notes what another connection sees, and answers what it sees itself."""

    def body(db: sqlite3.Connection) -> int:
        seen.append(stored(path)[0])
        (n,) = db.execute("SELECT count(*) FROM items").fetchone()
        assert isinstance(n, int)
        return n

    return body


async def queue_behind_hold(
    writer: SQLiteWriter, bodies: Sequence[tuple[Callable[[sqlite3.Connection], object], bool]]
) -> list[object]:
    """Queue *bodies* (each with its ``shared`` flag), in order, while the thread is held; return each answer or error."""
    answers: list[object] = [None] * len(bodies)

    async def run(i: int, body: Callable[[sqlite3.Connection], object], shared: bool) -> None:
        try:
            answers[i] = await writer.transaction(body, shared=shared)
        except Exception as exc:
            answers[i] = exc

    hold = Hold()
    async with anyio.create_task_group() as tg:
        await hold.start(writer, tg)
        for i, (body, shared) in enumerate(bodies):
            tg.start_soon(run, i, body, shared)
            await anyio.wait_all_tasks_blocked()  # queued in this order
        assert answers == [None] * len(bodies)  # nothing is answered before its commit
        hold.released.set()
    return answers


async def test_shared_transactions_queued_together_commit_together(tmp_path: Path) -> None:
    """DL-11: shared transactions waiting in a row run in order in one transaction, answered after it."""
    path = tmp_path / "items.db"
    seen: list[list[int]] = []
    async with open_writer(path) as writer:
        bodies = [(insert(i), True) for i in range(3)]
        answers = await queue_behind_hold(writer, [*bodies, (peek(path, seen), True)])
        stats = writer.statistics()
    assert answers == [0, 1, 2, 3]  # the last saw the three before it...
    assert seen == [[]]  # ...which no other connection could see before their one commit
    assert stats.transactions == 5  # the hold, then the four shared ones
    assert stored(path)[0] == [0, 1, 2]


async def test_exclusive_transactions_and_max_batch_are_not_shared(tmp_path: Path) -> None:
    """DL-11 twin: a shared transaction behind an exclusive one, or beyond max_batch, commits apart."""
    path = tmp_path / "items.db"
    seen: list[list[int]] = []
    async with open_writer(path, max_batch=2) as writer:
        answers = await queue_behind_hold(
            writer,
            [
                (insert(0), True),
                (peek(path, seen), False),  # exclusive: after the commit of 0
                (insert(1), True),
                (insert(2), True),
                (peek(path, seen), True),  # the third shared in a row: max_batch is 2
            ],
        )
    assert answers == [0, 1, 1, 2, 3]
    assert seen == [[0], [0, 1, 2]]
    assert stored(path)[0] == [0, 1, 2]


async def test_a_shared_transaction_that_raises_fails_alone(tmp_path: Path) -> None:
    """DL-11: what one shared transaction raises rolls back its own writes only; the others commit."""
    path = tmp_path / "items.db"

    def insert_then_fail(db: sqlite3.Connection) -> int:
        db.execute("INSERT INTO items VALUES (10, 'c')")
        raise LookupError("no such thing")

    async with open_writer(path) as writer:
        answers = await queue_behind_hold(
            writer,
            [(insert(0), True), (insert_then_fail, True), (insert(0), True), (insert(2), True)],
        )
    assert answers[0] == 0
    assert isinstance(answers[1], LookupError)
    assert str(answers[1]) == "no such thing"
    assert isinstance(answers[2], StoreError)
    assert "UNIQUE constraint failed: items.id" in str(answers[2])
    assert answers[3] == 2
    assert stored(path)[0] == [0, 2]


async def test_a_database_error_fails_every_shared_transaction_with_it(tmp_path: Path) -> None:
    """DL-11: an error of the database itself in one shared transaction stores none of them."""
    path = tmp_path / "items.db"

    def disk_full(db: sqlite3.Connection) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    async with open_writer(path) as writer:
        answers = await queue_behind_hold(
            writer, [(insert(0), True), (disk_full, True), (insert(2), True)]
        )
        assert await writer.transaction(insert(3), shared=True) == 3  # the next one commits
    assert [str(answer) for answer in answers] == ["store: database or disk is full"] * 3
    assert all(isinstance(answer, StoreError) for answer in answers)
    assert stored(path)[0] == [3]


async def test_close_commits_what_was_queued_and_then_refuses(tmp_path: Path) -> None:
    """aclose lets queued appends commit, then closes; a later append raises the closed error."""
    path = tmp_path / "items.db"
    schema(path)
    writer = await SQLiteWriter.open(str(path), translate=StoreError)
    hold = Hold()
    answers: list[int] = []
    async with anyio.create_task_group() as tg:
        await hold.start(writer, tg)

        async def append(i: int) -> None:
            answers.append(await writer.append(Write([(ITEMS, rows(i))])))

        for i in range(3):
            tg.start_soon(append, i)
        await anyio.wait_all_tasks_blocked()
        tg.start_soon(writer.aclose)
        await anyio.wait_all_tasks_blocked()
        assert writer.closed
        hold.released.set()
    assert answers == [1, 1, 1]
    with pytest.raises(StoreError, match="closed"):
        await writer.append(Write([(ITEMS, rows(9))]))
    await writer.aclose()  # idempotent
    assert stored(path) == ([0, 1, 2], 3)


async def test_a_batch_larger_than_one_statement_is_inserted_whole(tmp_path: Path) -> None:
    """Rows are cut into several multi-row INSERTs; all of them land, counted once."""
    path = tmp_path / "items.db"
    async with open_writer(path, max_batch=5000) as writer:
        assert await writer.append(Write([(ITEMS, rows(*range(2500)))])) == 2500
    assert stored(path) == (list(range(2500)), 2500)


async def test_a_timeout_while_waiting_for_room_queues_nothing(tmp_path: Path) -> None:
    """DL-11: a caller that gets no room within its timeout raises TimeoutError, nothing queued."""
    path = tmp_path / "items.db"
    async with open_writer(path, max_pending=1) as writer:
        hold = Hold()
        async with anyio.create_task_group() as tg:
            await hold.start(writer, tg)
            tg.start_soon(writer.append, Write([(ITEMS, rows(1))]))
            await anyio.wait_all_tasks_blocked()
            with pytest.raises(TimeoutError, match="no room"):
                await writer.append(Write([(ITEMS, rows(2))]), timeout=0.01)
            assert writer.statistics().pending == 1
            hold.released.set()
    assert stored(path) == ([1], 1)


async def test_a_steady_stream_of_appends_is_committed_in_few_batches(tmp_path: Path) -> None:
    """DL-11: 300 callers appending again and again all get their rows committed, in batches."""
    path = tmp_path / "items.db"
    async with open_writer(path) as writer:

        async def producer(first: int) -> None:
            for i in range(first, first + 3000, 300):
                assert await writer.append(Write([(ITEMS, rows(i))])) == 1

        async with anyio.create_task_group() as tg:
            for first in range(300):
                tg.start_soon(producer, first)
        stats = writer.statistics()
    assert stored(path) == (list(range(3000)), 3000)
    assert stats.rows == 3000
    assert stats.batches < 3000  # grouped (how much depends on timing)


async def test_a_table_too_wide_for_a_full_statement_gets_smaller_ones(tmp_path: Path) -> None:
    """Rows of a 50-column table are cut to fit the connection's limit on bound variables."""
    path = tmp_path / "wide.db"
    schema(path)
    columns = tuple(f"c{i}" for i in range(50))
    db = sqlite3.connect(path)
    db.execute(f"CREATE TABLE wide ({', '.join(columns)})")
    db.close()
    wide = Table("wide", columns)
    connection = connect(str(path), synchronous="FULL", busy_timeout=1.0)
    connection.setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)  # SQLite's old default
    writer = SQLiteWriter(connection, translate=StoreError, max_batch=5000)
    try:
        assert await writer.append(Write([(wide, [tuple(range(50))] * 1500)])) == 1500
    finally:
        await writer.aclose()
    db = sqlite3.connect(path)
    assert db.execute("SELECT count(*), sum(c49) FROM wide").fetchone() == (1500, 1500 * 49)
    db.close()


async def test_a_file_that_cannot_be_opened_is_reported_through_translate(tmp_path: Path) -> None:
    """Opening the write path on a path in a missing directory raises the store's own error."""
    with pytest.raises(StoreError, match="unable to open"):
        await SQLiteWriter.open(str(tmp_path / "missing" / "x.db"), translate=StoreError)


@pytest.mark.parametrize(
    ("total", "largest", "pieces"),
    [
        (0, 512, []),
        (1, 512, [(0, 1)]),
        (15, 512, [(0, 15)]),
        (17, 512, [(0, 16), (16, 1)]),
        (500, 512, [(0, 496), (496, 4)]),
        (1100, 512, [(0, 512), (512, 512), (1024, 64), (1088, 12)]),
        (40, 8, [(0, 8), (8, 8), (16, 8), (24, 8), (32, 8)]),
    ],
)
def test_chunks_cut_rows_into_few_cached_sizes(
    total: int, largest: int, pieces: list[tuple[int, int]]
) -> None:
    """At most two statements below *largest*, covering every row once, in order."""
    assert list(chunks(total, largest)) == pieces


def test_the_connection_is_opened_with_the_store_settings(tmp_path: Path) -> None:
    """connect() sets synchronous, foreign keys and busy timeout, then the extra pragmas."""
    path = tmp_path / "items.db"
    schema(path)
    db = connect(str(path), synchronous="NORMAL", busy_timeout=2.5, pragmas=("cache_size = 7",))
    try:
        assert db.execute("PRAGMA synchronous").fetchone() == (1,)
        assert db.execute("PRAGMA foreign_keys").fetchone() == (1,)
        assert db.execute("PRAGMA busy_timeout").fetchone() == (2500,)
        assert db.execute("PRAGMA cache_size").fetchone() == (7,)
    finally:
        db.close()


def test_bad_writer_options_are_refused_where_given(tmp_path: Path) -> None:
    """max_batch and max_pending must be positive integers, named in the error."""
    path = tmp_path / "items.db"
    schema(path)
    db = connect(str(path), synchronous="FULL", busy_timeout=1.0)
    try:
        with pytest.raises(ValueError, match="max_batch"):
            SQLiteWriter(db, translate=StoreError, max_batch=0)
        with pytest.raises(ValueError, match="max_pending"):
            SQLiteWriter(db, translate=StoreError, max_pending=0)
    finally:
        db.close()
