"""The durable dead-letter store: one SQLite file, through aiosqlite (DL-2).

Every operation is one transaction. Writes go through otpy's one write path
(``otpy._durable``) on a connection of their own: captures are group-committed with
whatever else is waiting, and every other write (the replay guard, archive, purge,
retention) runs as one ``BEGIN IMMEDIATE`` transaction in one trip to the database
thread. ``BEGIN IMMEDIATE`` takes SQLite's write lock before reading, so the replay
guard (:func:`decide_replay` and friends, shared with the in-memory store) reads and
writes a record and its ledger key atomically even when several processes open the
same file. Reads run on the store's aiosqlite connection, serialised by an
:class:`anyio.Lock`; in WAL mode they never wait for a commit.

Opening checks the file and migrates its schema (``_schema.py``): a file that is
not an otpy store, or was written by a newer otpy, is refused without writing a byte.

Payloads larger than ``inline_limit`` live in their own table, so listing never
reads them: a listed record has ``payload=None`` and its ``payload_size``; ``get``
loads it.

Around this module: ``_schema.py`` (tables, version, migrations), ``_codec.py``
(rows <-> records), ``_queries.py`` (the SQL), ``_connection.py`` (sqlite3 errors,
read-only opening). aiosqlite only works on asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import time
from typing import TYPE_CHECKING, Final, TypeVar, final

import aiosqlite
import anyio
import anyio.lowlevel
import anyio.to_thread

from .._check import count
from .._durable import DEFAULT_MAX_BATCH, DEFAULT_MAX_PENDING, SQLiteWriter, Table, Write
from .._exceptions import CorruptRecord, DeadLetterNotFound, DeadLetterStoreError
from .._redact import get_logger
from ._codec import decode, decode_ledger, encode, state_row
from ._connection import probe, read_only_uri, scalar, store_error, text_or_surrogates
from ._guard import (
    Action,
    Decision,
    LedgerEntry,
    LedgerState,
    Reclaimed,
    decide_replay,
    finish_replay,
    ledger_held_by_other,
    reclaim,
    resolve,
    resolve_alongside,
)
from ._queries import (
    BUMP,
    CAPTURE_COLUMNS,
    GET_QUERY,
    IN_DOUBT_QUERY,
    INSERT_PAYLOAD,
    LEDGER_QUERY,
    NOT_RUNNING,
    PRUNE_LEDGER,
    RECLAIM_QUERY,
    STATISTICS_QUERY,
    STORED_CAPTURES,
    UPDATE_STATE,
    UPSERT_LEDGER,
    joined,
    list_query,
    where_clauses,
)
from ._record import ReplayOutcome, Status
from ._schema import COLUMNS, check_header, check_readable, check_schema, migrate
from ._store import (
    ALL,
    LEDGER_EVICTED,
    DeadLetterFilter,
    Page,
    RetentionPolicy,
    StoreStatistics,
    SweepResult,
    id_conflict,
)

if TYPE_CHECKING:
    import builtins
    from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Sequence

    from .._durable import Row
    from ._record import DeadLetter

__all__ = ["SQLiteDeadLetterStore", "open_store"]

logger = get_logger("otpy.deadletter")

_T = TypeVar("_T")

DEFAULT_INLINE_LIMIT: Final = 64 * 1024
SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL", "OFF")
SWEEP_CHUNK = 5000
"""Records a retention sweep deletes per transaction (about 100 ms of write lock)."""


def _count_captured(db: sqlite3.Connection, captured: int) -> None:
    """Add a batch's new records to the persisted ``captured`` counter (in its transaction)."""
    db.execute(BUMP, ("captured", captured))


# -- retention sweeps -------------------------------------------------------------------


def _older_than(
    _db: sqlite3.Connection, *, status: Status, cutoff: float
) -> tuple[str, tuple[object, ...]]:
    """Select (a chunk of) the *status* records created before *cutoff*, not running."""
    # `+status`: walk the created_at index (few rows are old), not the status index.
    sql = f"SELECT id FROM dead_letters WHERE +status = ? AND {NOT_RUNNING} AND created_at < ?"
    return f"{sql} LIMIT ?", (status.value, cutoff, SWEEP_CHUNK)


def _beyond(db: sqlite3.Connection, *, status: Status, keep: int) -> tuple[str, tuple[object, ...]]:
    """Select (a chunk of) the oldest *status* records beyond the newest *keep*, not running."""
    # Two index-only counts, rather than a lookup of every row's replay status.
    (kept,) = db.execute(
        "SELECT (SELECT count(*) FROM dead_letters WHERE status = ?) - "
        "(SELECT count(*) FROM dead_letters WHERE status = ? AND replay_status = 'running')",
        (status.value, status.value),
    ).fetchone()
    assert isinstance(kept, int)
    sql = f"SELECT id FROM dead_letters WHERE status = ? AND {NOT_RUNNING} ORDER BY id LIMIT ?"
    return sql, (status.value, min(max(kept - keep, 0), SWEEP_CHUNK))


# -- the store --------------------------------------------------------------------------


@final
class SQLiteDeadLetterStore:
    """A :class:`~otpy.deadletter.DeadLetterStore` in one SQLite file: durable, safe across processes.

    Open it with :meth:`open` (and :meth:`aclose` it) or with :func:`open_store`.
    Records committed by :meth:`add_many` survive a crash of the process (with the
    default ``synchronous="FULL"``, a power cut too).

    Attributes:
        path: the database file.
        inline_limit: payloads larger than this many bytes are stored apart and left
            out of listings.
        busy_timeout: seconds an operation waits for another process's write lock
            before raising :exc:`~otpy.StoreLocked`.
        clock: wall-clock time source.
        read_only: opened with ``read_only=True``: every write raises.

    .. versionadded:: 0.1.0
    """

    groups_commits: Final = True
    """Concurrent :meth:`add_many` calls are committed together by the store's write
    path, so :class:`~otpy.deadletter.DeadLetters` calls it directly rather than
    through its writer's mailbox."""

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: str,
        *,
        inline_limit: int,
        busy_timeout: float,
        clock: Callable[[], float],
        writer: SQLiteWriter | None = None,
    ) -> None:
        """Wrap an open, migrated connection and its writer; use :meth:`open` instead.

        Without a *writer* the store is read-only.
        """
        self.path = path
        self.read_only = writer is None
        self.inline_limit = inline_limit
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._db: aiosqlite.Connection | None = db
        self._lock = anyio.Lock()
        self._writer = writer
        self._table = Table(
            "dead_letters",
            COLUMNS,
            on_conflict="ON CONFLICT (id) DO NOTHING",
            sort=True,  # ids rise with time: sorted rows append to the indexes' last pages
            check=self._check_skipped,
            after=_count_captured,
        )

    def __repr__(self) -> str:
        state = " closed" if self._db is None else ""
        return f"<SQLiteDeadLetterStore {self.path!r}{state}>"

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        inline_limit: int = DEFAULT_INLINE_LIMIT,
        busy_timeout: float = 5.0,
        max_pages: int | None = None,
        clock: Callable[[], float] = time.time,
        read_only: bool = False,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
    ) -> SQLiteDeadLetterStore:
        """Open the store at *path*, creating or migrating it as needed.

        Args:
            path: the database file; created if missing (its directory must exist).
            synchronous: ``"FULL"`` (a commit survives a power cut), ``"NORMAL"`` (it
                survives a crash of the process; a power cut may lose the last
                commits) or ``"OFF"`` (tests only).
            inline_limit: payloads up to this many bytes are stored with their
                record; larger ones apart, so listings never read them.
            busy_timeout: seconds to wait for another process's write lock.
            max_pages: cap the file at this many pages (``PRAGMA max_page_count``;
                a page is 4 KiB unless the file says otherwise); writes beyond it
                raise :exc:`~otpy.StoreFull`. ``None``: no cap but the disk.
            clock: wall-clock time source; tests pass a fake one.
            read_only: only read: the file must be an otpy store of this otpy's
                schema version, and is never created, migrated or written (see
                :func:`read_only_uri`); every write raises
                :exc:`~otpy.DeadLetterStoreError`.
            max_batch: the most records one group commit takes.
            max_pending: the most records waiting for a commit; further captures
                wait for room (or time out), so memory stays bounded when the disk
                is slower than the producers.

        Raises:
            ValueError: an option is out of range.
            RuntimeError: not running on asyncio (aiosqlite needs it).
            NotAnOtpyStore: the file is not an otpy store (it is left untouched); with
                *read_only*, also an empty file.
            StoreVersionTooNew: a newer otpy wrote the file (it is left untouched).
            StoreSchemaDamaged: a table or column the store needs is missing (the
                file is left untouched).
            StoreLocked: another process held the write lock too long.
            DeadLetterStoreError: the file cannot be opened or migrated.
        """
        mode = str(synchronous).upper()
        if mode not in SYNCHRONOUS_MODES:
            raise ValueError(
                f"synchronous must be one of {', '.join(map(repr, SYNCHRONOUS_MODES))}, "
                f"got {synchronous!r}"
            )
        if inline_limit < 0:
            raise ValueError(f"inline_limit must be >= 0, got {inline_limit}")
        if busy_timeout < 0:
            raise ValueError(f"busy_timeout must be >= 0, got {busy_timeout}")
        if max_pages is not None and max_pages < 1:
            raise ValueError(f"max_pages must be >= 1 or None, got {max_pages}")
        count(max_batch, "max_batch", owner="SQLiteDeadLetterStore.open")
        count(max_pending, "max_pending", owner="SQLiteDeadLetterStore.open")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError(
                "the SQLite dead-letter store runs on asyncio only (aiosqlite): run the node "
                "with anyio.run(main, backend='asyncio'), or use MemoryDeadLetterStore"
            ) from None
        location = os.fspath(path)
        target = location
        if read_only:
            target = await anyio.to_thread.run_sync(read_only_uri, location)
        try:
            # Fail here rather than in aiosqlite.connect: when that fails, its worker
            # thread outlives the call and may report to an event loop that has closed.
            await anyio.to_thread.run_sync(probe, target, busy_timeout, read_only)
            db = await aiosqlite.connect(
                target, isolation_level=None, timeout=busy_timeout, uri=read_only
            )
        except sqlite3.Error as exc:
            raise store_error(exc, location, busy_timeout) from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute(f"PRAGMA synchronous = {mode}")
            db.text_factory = text_or_surrogates
            version = await check_header(db, location)  # refuse before writing anything
            if read_only:
                check_readable(location, version)
            if version:
                await check_schema(db, location, version)
            if read_only:
                return cls(
                    db, location, inline_limit=inline_limit, busy_timeout=busy_timeout, clock=clock
                )
            journal = await scalar(db, "PRAGMA journal_mode = WAL")
            in_wal = journal == "wal" or location == ":memory:"
            if not in_wal:  # pragma: no cover - needs a file system without shared memory
                logger.warning(
                    "dead-letter store %s: journal_mode is %s, not wal (is it on a network "
                    "file system?); readers will block the writer",
                    location,
                    journal,
                )
            await migrate(db, location)
            pragmas = () if max_pages is None else (f"max_page_count = {max_pages:d}",)
            for pragma in pragmas:
                # Fetched, not just executed: a statement left unfinished would keep
                # this connection reading an old snapshot of the file.
                await db.execute_fetchall(f"PRAGMA {pragma}")
            writer = await SQLiteWriter.open(
                location,
                synchronous=mode,
                busy_timeout=busy_timeout,
                pragmas=pragmas,
                translate=functools.partial(store_error, path=location, busy_timeout=busy_timeout),
                max_batch=max_batch,
                max_pending=max_pending,
            )
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await db.close()
            if isinstance(exc, sqlite3.Error):
                raise store_error(exc, location, busy_timeout) from exc
            raise
        return cls(
            db,
            location,
            inline_limit=inline_limit,
            busy_timeout=busy_timeout,
            clock=clock,
            writer=writer,
        )

    async def aclose(self) -> None:
        """Close the store, after the operation in progress; further calls raise. Idempotent."""
        db, self._db = self._db, None
        with anyio.CancelScope(shield=True):
            if self._writer is not None:
                await self._writer.aclose()
            async with self._lock:
                if db is not None:
                    await db.close()
        await anyio.lowlevel.checkpoint()

    # -- plumbing ---------------------------------------------------------------------

    def _error(self, exc: sqlite3.Error) -> DeadLetterStoreError:
        return store_error(exc, self.path, self.busy_timeout)

    def _connection(self) -> aiosqlite.Connection:
        if self._db is None:
            raise DeadLetterStoreError(self.path, "the store is closed")
        return self._db

    async def _read(self, body: Callable[[aiosqlite.Connection], Awaitable[_T]]) -> _T:
        """Run *body*, one statement or a read transaction, under the connection lock."""
        async with self._lock:
            db = self._connection()
            try:
                return await body(db)
            except sqlite3.Error as exc:
                raise self._error(exc) from exc

    def _write_path(self) -> SQLiteWriter:
        """The writer, or the error a write gets on a closed or read-only store."""
        self._connection()
        if self._writer is None:
            raise DeadLetterStoreError(
                self.path, "opened read-only; open it without read_only=True to change it"
            )
        if self._writer.closed:
            raise DeadLetterStoreError(self.path, "the store is closed")
        return self._writer

    async def _write(self, body: Callable[[sqlite3.Connection], _T], *, shared: bool = False) -> _T:
        """Run *body* in one ``BEGIN IMMEDIATE`` transaction on the write path; roll back on any exception.

        *body* runs in the database thread: callers read ``self.clock()`` before, on
        the event loop, and pass the time in. A *shared* body (the replay steps,
        short) may run under a savepoint in a transaction it shares with others
        queued with it, committed with one fsync; it is still all or nothing.
        """
        return await self._write_path().transaction(body, shared=shared)

    def _fetch(self, db: sqlite3.Connection, record_id: str) -> DeadLetter:
        """Return the record with its payload loaded (inside a write)."""
        return self._one(db.execute(GET_QUERY, (record_id,)).fetchall(), record_id)

    def _one(self, rows: Iterable[Sequence[object]], record_id: str) -> DeadLetter:
        for row in rows:
            return decode(row, self.path, loaded=True)
        raise DeadLetterNotFound(record_id)

    def _check_skipped(self, db: sqlite3.Connection, rows: Sequence[Row], _inserted: int) -> None:
        """Raise unless every row an insert skipped is stored, as the same capture."""
        ids = [row[0] for row in rows]
        stored = {
            found[0]: tuple(found)
            for found in db.execute(STORED_CAPTURES, (json.dumps(ids),)).fetchall()
        }
        for row in rows:
            have = stored.get(row[0])
            if have is None:  # pragma: no cover - ON CONFLICT skips stored ids only
                raise DeadLetterStoreError(
                    self.path,
                    f"dead letter {row[0]} was not stored by its insert, so the batch was "
                    "refused and nothing in it was stored",
                )
            if have != tuple(row[i] for i in CAPTURE_COLUMNS):
                raise id_conflict(self.path, str(row[0]))

    def _ledger(self, db: sqlite3.Connection, key: str) -> LedgerEntry | None:
        row = db.execute(LEDGER_QUERY, (key,)).fetchone()
        return decode_ledger(row, self.path) if row else None

    def _put_ledger(
        self,
        db: sqlite3.Connection,
        key: str,
        state: LedgerState,
        record_id: str,
        expires_at: float | None,
        now: float,
    ) -> None:
        db.execute(UPSERT_LEDGER, (key, state.value, record_id, expires_at, now))

    def _drop_pending(self, db: sqlite3.Connection, key: str, record_id: str) -> None:
        db.execute(
            "DELETE FROM ledger WHERE key = ? AND state = ? AND record_id = ?",
            (key, LedgerState.PENDING.value, record_id),
        )

    # -- the protocol -----------------------------------------------------------------

    async def add_many(self, records: Sequence[DeadLetter], *, timeout: float | None = None) -> int:
        """Store *records* in one transaction; skip ids already stored; return how many were new.

        A record whose id is stored is skipped only if it is the same record captured
        again (:func:`~otpy.deadletter.same_capture`); the rows inserted are counted
        and checked, so a record is never silently left out.

        Raises:
            ValueError: a record has no payload but a non-zero ``payload_size``
                (nothing is stored).
            DeadLetterStoreError: a record's id is stored with different content, or
                sqlite refused a row (nothing is stored).
            StoreFull: the disk or ``max_pages`` is full (nothing is stored).
            StoreLocked: another process held the write lock too long.
            TimeoutError: not committed within *timeout* (the records may still be).
        """
        writer = self._write_path()
        rows: list[Row] = []
        apart: list[Row] = []
        for record in records:
            if record.payload is None and record.payload_size:
                raise ValueError(
                    f"dead letter {record.id}: cannot store a record without its payload"
                )
            row, payload = encode(record, self.inline_limit)
            rows.append(row)
            if payload is not None:
                apart.append((payload, record.id))
        if not rows:
            await anyio.lowlevel.checkpoint()
            return 0
        # The write path sorts each batch's rows by id (the table's ``sort``), groups
        # them with other callers' and commits them together.
        return await writer.append(
            Write(((self._table, rows),), ((INSERT_PAYLOAD, apart),) if apart else ()),
            timeout=timeout,
        )

    async def get(self, record_id: str) -> DeadLetter:
        """Return the record with its payload loaded.

        Raises:
            DeadLetterNotFound: no such id.
            CorruptRecord: the row cannot be decoded.
        """

        async def body(db: aiosqlite.Connection) -> DeadLetter:
            return self._one(await db.execute_fetchall(GET_QUERY, (record_id,)), record_id)

        return await self._read(body)

    async def list(
        self, where: DeadLetterFilter = ALL, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Return one page of matching records, newest first (DL-3); large payloads are not read.

        A row that cannot be decoded is reported in ``Page.corrupt`` (by id, with
        what is wrong), and the others are listed; the page still covers *limit* rows.

        Raises:
            ValueError: *limit* is below 1.
        """
        if limit < 1:
            raise ValueError(f"limit must be >= 1, got {limit}")
        sql, params = list_query(where, limit=limit, cursor=cursor)

        async def body(db: aiosqlite.Connection) -> Page:
            rows = list(await db.execute_fetchall(sql, params))
            records: builtins.list[DeadLetter] = []
            corrupt: builtins.list[CorruptRecord] = []
            for row in rows[:limit]:
                try:
                    records.append(decode(row, self.path, loaded=False))
                except CorruptRecord as exc:
                    corrupt.append(exc)
            more = len(rows) > limit
            return Page(tuple(records), str(rows[limit - 1][0]) if more else None, tuple(corrupt))

        return await self._read(body)

    async def count(self, where: DeadLetterFilter = ALL) -> int:
        """Return how many records match."""
        clauses, params = where_clauses(where)
        sql = f"SELECT count(*) FROM dead_letters WHERE {joined(clauses)}"

        async def body(db: aiosqlite.Connection) -> int:
            value = await scalar(db, sql, params)
            assert isinstance(value, int)
            return value

        return await self._read(body)

    async def archive(self, where: DeadLetterFilter) -> int:
        """Archive matching active records that are not running; return how many (DL-4)."""
        clauses, params = where_clauses(where)
        clauses += ["status = 'active'", NOT_RUNNING]
        sql = (
            "UPDATE dead_letters SET status = 'archived', updated_at = max(?, created_at) "
            f"WHERE {joined(clauses)}"
        )

        now = self.clock()

        def body(db: sqlite3.Connection) -> int:
            return db.execute(sql, [now, *params]).rowcount

        return await self._write(body)

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching records that are not running, with their payloads; return how many (DL-5).

        It filters in SQL only, so it also removes rows that cannot be decoded.
        """
        clauses, params = where_clauses(where)
        clauses.append(NOT_RUNNING)
        sql = f"DELETE FROM dead_letters WHERE {joined(clauses)}"

        def body(db: sqlite3.Connection) -> int:
            return db.execute(sql, params).rowcount

        return await self._write(body)

    async def statistics(self) -> StoreStatistics:
        """Return counts by status, source, reason class, key and replay status; evictions."""
        rows = await self._read(lambda db: db.execute_fetchall(STATISTICS_QUERY))
        groups: dict[str, dict[str, int]] = {
            "status": {},
            "source": {},
            "reason_class": {},
            "replay_status": {},
            "key": {},
            "counter": {},
        }
        for group, name, value in rows:
            groups[group][str(name)] = int(value)
        counters = groups["counter"]
        return StoreStatistics(
            total=sum(groups["status"].values()),
            by_status=groups["status"],
            by_source=groups["source"],
            by_reason_class=groups["reason_class"],
            by_key=groups["key"],
            by_replay_status=groups["replay_status"],
            evicted={
                name.removeprefix("evicted:"): value
                for name, value in counters.items()
                if name.startswith("evicted:")
            },
            captured=counters.get("captured", 0),
        )

    async def sweep(self, policy: RetentionPolicy) -> SweepResult:
        """Evict by age, then by count (oldest first), per status; never running records (DL-5).

        Then prune the idempotency ledger by ``policy.ledger_max_age``, looking up each
        old entry's records by index (never scanning them). Evictions go in
        transactions of at most ``SWEEP_CHUNK`` records (or ledger entries), each
        adding its evictions to the persisted counters, so a large first sweep never
        holds the write lock (and so the writer) for long.
        """
        now = self.clock()
        evicted: dict[str, int] = {}
        for status in Status:
            rule = policy.rule_for(status)
            if rule.max_age is not None:
                old = functools.partial(_older_than, status=status, cutoff=now - rule.max_age)
                evicted[f"{status.value}:max_age"] = await self._evict(status, "max_age", old)
            if rule.max_count is not None:
                excess = functools.partial(_beyond, status=status, keep=rule.max_count)
                evicted[f"{status.value}:max_count"] = await self._evict(
                    status, "max_count", excess
                )
        if policy.ledger_max_age is not None:
            evicted[LEDGER_EVICTED] = await self._prune_ledger(now - policy.ledger_max_age)
        return SweepResult({name: n for name, n in evicted.items() if n})

    async def _evict(
        self,
        status: Status,
        rule: str,
        victims: Callable[[sqlite3.Connection], tuple[str, tuple[object, ...]]],
    ) -> int:
        """Delete what *victims* selects, a chunk per transaction, counting it; return how many."""

        def delete(db: sqlite3.Connection) -> sqlite3.Cursor:
            select, params = victims(db)
            return db.execute(f"DELETE FROM dead_letters WHERE id IN ({select})", params)

        return await self._delete_in_chunks(f"evicted:{status.value}:{rule}", delete)

    async def _prune_ledger(self, cutoff: float) -> int:
        """Delete ledger entries older than *cutoff* that no record can use; return how many."""

        def delete(db: sqlite3.Connection) -> sqlite3.Cursor:
            return db.execute(PRUNE_LEDGER, (cutoff, SWEEP_CHUNK))

        return await self._delete_in_chunks(f"evicted:{LEDGER_EVICTED}", delete)

    async def _delete_in_chunks(
        self,
        counter: str,
        delete: Callable[[sqlite3.Connection], sqlite3.Cursor],
    ) -> int:
        """Run *delete* (at most ``SWEEP_CHUNK`` rows) a transaction at a time until it
        deletes fewer, adding each chunk to the persisted *counter*; return the total.

        Short transactions: a large first sweep never holds the write lock (and so the
        writer) for long.
        """

        def chunk(db: sqlite3.Connection) -> int:
            deleted = delete(db).rowcount
            if deleted:
                db.execute(BUMP, (counter, deleted))
            return deleted

        total = 0
        while True:
            deleted = await self._write(chunk)
            total += deleted
            if deleted < SWEEP_CHUNK:
                return total

    async def begin_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Run :func:`~otpy.deadletter.decide_replay` atomically and store its result.

        Raises:
            DeadLetterNotFound: no such id.
            CorruptRecord: the row cannot be decoded.
        """

        now = self.clock()

        def body(db: sqlite3.Connection) -> Decision:
            record = self._fetch(db, record_id)
            ledger = self._ledger(db, record.replay_key)
            decision = decide_replay(record, ledger, now=now, lease=lease, force=force)
            if decision.action is not Action.REFUSE:
                db.execute(UPDATE_STATE, state_row(decision.record))
            return decision

        return await self._write(body, shared=True)

    async def start_replay(self, record_id: str, *, lease: float, force: bool = False) -> Decision:
        """Take the lease and mark the replay key pending, in one transaction (DL-8).

        Runs :func:`~otpy.deadletter.decide_replay` with the record and its key's
        ledger entry; when it proceeds, stores the running record and writes the
        ledger entry ``pending`` for its replay key, until the lease expires, as
        :meth:`begin_replay` and then :meth:`mark_started` would, with no moment
        between them. The decision's record has its payload loaded.

        Raises:
            DeadLetterNotFound: no such id.
            CorruptRecord: the row cannot be decoded.
        """

        now = self.clock()

        def body(db: sqlite3.Connection) -> Decision:
            record = self._fetch(db, record_id)
            ledger = self._ledger(db, record.replay_key)
            decision = decide_replay(record, ledger, now=now, lease=lease, force=force)
            if decision.action is not Action.REFUSE:
                running = decision.record
                db.execute(UPDATE_STATE, state_row(running))
                if decision.action is Action.PROCEED:
                    self._put_ledger(
                        db,
                        running.replay_key,
                        LedgerState.PENDING,
                        running.id,
                        running.replay.lease_expires_at,
                        now,
                    )
            return decision

        return await self._write(body, shared=True)

    async def mark_started(self, record: DeadLetter, *, force: bool = False) -> bool:
        """Write the ledger entry ``pending`` for the record's replay key just before its side effect.

        Returns ``False`` (and writes nothing) if the key is pending under another
        record's live lease or, unless *force* is set, committed or pending for
        another record at all (DL-8). One transaction: of two records racing with one
        key, in this process or another, only one passes.
        """
        key = record.replay_key

        now = self.clock()

        def body(db: sqlite3.Connection) -> bool:
            entry = self._ledger(db, key)
            if entry is not None:
                if ledger_held_by_other(entry, record.id, now=now):
                    return False
                if not force and (
                    entry.state is LedgerState.COMMITTED or entry.record_id != record.id
                ):
                    return False
            self._put_ledger(
                db, key, LedgerState.PENDING, record.id, record.replay.lease_expires_at, now
            )
            return True

        return await self._write(body, shared=True)

    async def finish(
        self, record_id: str, outcome: ReplayOutcome, *, error: str | None = None
    ) -> DeadLetter:
        """Apply :func:`~otpy.deadletter.finish_replay` and the ledger change in one transaction.

        Raises:
            DeadLetterNotFound: no such id.
            ValueError: *outcome* is not one a replay can finish with.
        """

        now = self.clock()

        def body(db: sqlite3.Connection) -> DeadLetter:
            record = finish_replay(self._fetch(db, record_id), outcome, error=error, now=now)
            if outcome is ReplayOutcome.REPLAYED:
                self._put_ledger(db, record.replay_key, LedgerState.COMMITTED, record_id, None, now)
            elif outcome is ReplayOutcome.FAILED:
                self._drop_pending(db, record.replay_key, record_id)
            else:  # in doubt: the attempt is over, so the key is in doubt now
                db.execute(
                    "UPDATE ledger SET expires_at = ?, updated_at = ? "
                    "WHERE key = ? AND state = ? AND record_id = ?",
                    (now, now, record.replay_key, LedgerState.PENDING.value, record_id),
                )
            db.execute(UPDATE_STATE, state_row(record))
            return record

        return await self._write(body, shared=True)

    async def reclaim_expired(self) -> builtins.list[Reclaimed]:
        """Apply :func:`~otpy.deadletter.reclaim` to every running record whose lease expired (DL-9).

        A row that cannot be decoded is logged (by id) and skipped, so it never
        blocks the others.
        """

        now = self.clock()

        def body(db: sqlite3.Connection) -> builtins.list[Reclaimed]:
            reclaimed: builtins.list[Reclaimed] = []
            for row in db.execute(RECLAIM_QUERY, (now,)).fetchall():
                try:
                    record = decode(row, self.path, loaded=True)
                except CorruptRecord as exc:
                    logger.warning("reclaim skipped a record: %s", exc)
                    continue
                result = reclaim(record, self._ledger(db, record.replay_key), now=now)
                if result is None:  # pragma: no cover - the query selects expired leases only
                    continue
                db.execute(UPDATE_STATE, state_row(result.record))
                reclaimed.append(result)
            return reclaimed

        return await self._write(body)

    async def resolve(self, record_id: str, *, succeeded: bool) -> DeadLetter:
        """Settle an in-doubt record by hand (runbooks/replay.md), with the others its key left in doubt.

        One transaction commits the replay key (*succeeded*) or removes its pending
        entry, and settles the named record and, alike, the other records with the
        same replay key that are in doubt or running under an expired lease. Such a
        row that cannot be decoded is logged and left as it is.

        Raises:
            DeadLetterNotFound: no such id.
            ValueError: the record is not in doubt, or a forced replay of another
                record holds the key under a live lease.
        """

        now = self.clock()

        def body(db: sqlite3.Connection) -> DeadLetter:
            named = self._fetch(db, record_id)
            key = named.replay_key
            entry = self._ledger(db, key)
            record = resolve(named, succeeded=succeeded, now=now, ledger=entry)
            if succeeded:
                self._put_ledger(db, key, LedgerState.COMMITTED, record_id, None, now)
            else:
                db.execute(
                    "DELETE FROM ledger WHERE key = ? AND state = ?",
                    (key, LedgerState.PENDING.value),
                )
            for row in db.execute(IN_DOUBT_QUERY, (record_id,)).fetchall():
                try:
                    other = decode(row, self.path, loaded=False)
                except CorruptRecord as exc:
                    logger.warning("resolve skipped a record: %s", exc)
                    continue
                settled = (
                    resolve_alongside(other, succeeded=succeeded, now=now)
                    if other.replay_key == key
                    else None
                )
                if settled is not None:
                    db.execute(UPDATE_STATE, state_row(settled))
            db.execute(UPDATE_STATE, state_row(record))
            return record

        return await self._write(body)

    async def ledger(self, key: str) -> LedgerEntry | None:
        """Return the ledger entry for an idempotency key."""

        async def body(db: aiosqlite.Connection) -> LedgerEntry | None:
            for row in await db.execute_fetchall(LEDGER_QUERY, (key,)):
                return decode_ledger(row, self.path)
            return None

        return await self._read(body)


@contextlib.asynccontextmanager
async def open_store(
    path: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    inline_limit: int = DEFAULT_INLINE_LIMIT,
    busy_timeout: float = 5.0,
    max_pages: int | None = None,
    clock: Callable[[], float] = time.time,
    read_only: bool = False,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_pending: int = DEFAULT_MAX_PENDING,
) -> AsyncIterator[SQLiteDeadLetterStore]:
    """Open the SQLite store at *path* for the duration of an ``async with`` block.

    Takes the options of :meth:`SQLiteDeadLetterStore.open`::

        async with open_store("var/dead.db") as store:
            page = await store.list()

    .. versionadded:: 0.1.0
    """
    store = await SQLiteDeadLetterStore.open(
        path,
        synchronous=synchronous,
        inline_limit=inline_limit,
        busy_timeout=busy_timeout,
        max_pages=max_pages,
        clock=clock,
        read_only=read_only,
        max_batch=max_batch,
        max_pending=max_pending,
    )
    try:
        yield store
    finally:
        await store.aclose()
