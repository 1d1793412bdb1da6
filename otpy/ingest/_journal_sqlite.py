"""The durable journal: one SQLite file, written through otpy's one write path.

Every change (accept, hand-over, purge) is a read-modify-write run on the
``otpy._durable`` writer's thread as a *shared* transaction: the accepts, hand-overs
and purges queued together run one after another, each under its own savepoint, in
one ``BEGIN IMMEDIATE`` transaction with one fsync, and each call returns once that
transaction has committed. An accept refused (its budget, say) rolls back its own
savepoint alone. Reads (``pending``, ``get``, ``statistics``) run on a second,
read-only connection in a worker thread, one at a time; in WAL mode they never wait
for a commit. Only the standard library's ``sqlite3`` is used, so the store runs on
asyncio and on trio.

Three tables:

- ``journal``: the pending entries, one row each, deleted when handed over;
- ``inbox``: the dedup records, ``(route, idempotency_key) -> (id, accepted_at)``,
  kept after the hand-over until :meth:`~SQLiteJournalStore.purge` or ``dedup_max``
  evicts them;
- ``usage``: one row, the pending bytes and the dedup record count, kept by
  triggers in the same transactions, so the budget check and the ``dedup_max``
  eviction read two integers instead of scanning a table.

The file is the journal's own (``var/journal.db``, say): marked with
``PRAGMA application_id`` :data:`APPLICATION_ID` and versioned with
``PRAGMA user_version``. Opening refuses, without writing a byte, a file of another
application or of a newer schema.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import time
from typing import TYPE_CHECKING, Final, TypeVar, final

import anyio
import anyio.lowlevel
import anyio.to_thread

from .._check import check_type
from .._check import number as check_number
from .._durable import (
    StoreFile,
    check_header,
    describe_error,
    missing_columns,
    prepare,
    scalar,
)
from .._exceptions import JournalError, JournalFull
from ._journal import (
    DEFAULT_DEDUP_MAX,
    DEFAULT_DEDUP_TTL,
    DEFAULT_MAX_BYTES,
    Accepted,
    JournalEntry,
    JournalStatistics,
    check_entries,
    check_ids,
    check_options,
    check_pending,
    check_time,
    check_timeout,
    dedup_cutoff,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import AsyncIterator, Callable, Collection, Sequence

__all__ = ["APPLICATION_ID", "SCHEMA_VERSION", "SQLiteJournalStore", "open_journal"]

_T = TypeVar("_T")

APPLICATION_ID: Final = 0x6F74706A
"""``PRAGMA application_id`` of a journal file: ``"otpj"`` in ASCII (otpy's journal).

Distinct from the dead-letter store's ``"otpy"`` (0x6F747079) and the outbox's
``"otpo"`` (0x6F74706F), so no store opens another's file by mistake.
"""


_V1: Final = (
    # A rowid table, not WITHOUT ROWID: bodies can be large, and a rowid table keeps
    # them out of the id index's pages. The id's unique index is the only one the
    # journal needs: the hand-over pages through it in id order, get and
    # mark_handed_over seek it. statistics() reads the whole table (a snapshot).
    """
    CREATE TABLE journal (
        id TEXT PRIMARY KEY NOT NULL,
        route TEXT NOT NULL,
        key TEXT NOT NULL,
        idempotency_key TEXT,
        priority TEXT NOT NULL,
        body BLOB NOT NULL,
        content_type TEXT NOT NULL,
        headers TEXT NOT NULL,
        trace_context TEXT NOT NULL,
        received_at REAL NOT NULL,
        size INTEGER NOT NULL
    )
    """,
    # Small rows looked up by their key: WITHOUT ROWID keeps them in the key's b-tree.
    """
    CREATE TABLE inbox (
        route TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        id TEXT NOT NULL,
        accepted_at REAL NOT NULL,
        PRIMARY KEY (route, idempotency_key)
    ) WITHOUT ROWID
    """,
    # purge() deletes the records accepted before the window, and dedup_max evicts
    # the oldest: both walk the records oldest first.
    "CREATE INDEX inbox_accepted_at ON inbox (accepted_at, id)",
    """
    CREATE TABLE usage (
        one INTEGER PRIMARY KEY NOT NULL CHECK (one = 1),
        pending_bytes INTEGER NOT NULL,
        dedup_records INTEGER NOT NULL
    )
    """,
    "INSERT INTO usage (one, pending_bytes, dedup_records) VALUES (1, 0, 0)",
    """
    CREATE TRIGGER journal_insert AFTER INSERT ON journal BEGIN
        UPDATE usage SET pending_bytes = pending_bytes + NEW.size;
    END
    """,
    """
    CREATE TRIGGER journal_delete AFTER DELETE ON journal BEGIN
        UPDATE usage SET pending_bytes = pending_bytes - OLD.size;
    END
    """,
    """
    CREATE TRIGGER inbox_insert AFTER INSERT ON inbox BEGIN
        UPDATE usage SET dedup_records = dedup_records + 1;
    END
    """,
    """
    CREATE TRIGGER inbox_delete AFTER DELETE ON inbox BEGIN
        UPDATE usage SET dedup_records = dedup_records - 1;
    END
    """,
)

_V2: Final = (
    # The hand-over's steady rate, saved as it is measured, so a backlog found after a
    # restart drains at the rate the node was running at, not at the minimum.
    "ALTER TABLE usage ADD COLUMN steady_rate REAL",
)

MIGRATIONS: Final = (_V1, _V2)
"""``MIGRATIONS[n]`` takes a journal file from ``user_version`` n to n + 1, in one transaction.

Version 2 added ``usage.steady_rate``.
"""

SCHEMA_VERSION: Final = len(MIGRATIONS)

COLUMNS: Final = (
    "id",
    "route",
    "key",
    "idempotency_key",
    "priority",
    "body",
    "content_type",
    "headers",
    "trace_context",
    "received_at",
    "size",
)
INBOX_COLUMNS: Final = ("route", "idempotency_key", "id", "accepted_at")
USAGE_COLUMNS: Final = ("one", "pending_bytes", "dedup_records", "steady_rate")

ADDED_IN: Final = {"usage.steady_rate": 2}
"""The schema version that added each column not in version 1."""

_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM journal"
_INSERT: Final = (
    f"INSERT INTO journal ({', '.join(COLUMNS)}) VALUES ({', '.join('?' * len(COLUMNS))})"
)
_RECORD: Final = (
    "INSERT INTO inbox (route, idempotency_key, id, accepted_at) VALUES (?, ?, ?, ?) "
    "ON CONFLICT (route, idempotency_key) DO UPDATE SET id = excluded.id, "
    "accepted_at = excluded.accepted_at"
)
"""A new dedup record, or one replacing a record older than the window (not purged yet)."""
_EVICT: Final = (
    "DELETE FROM inbox WHERE (route, idempotency_key) IN ("
    "SELECT route, idempotency_key FROM inbox "
    "ORDER BY accepted_at, id, route, idempotency_key LIMIT ?)"
)
_STATISTICS: Final = (
    "SELECT route, count(*), min(received_at), sum(size) FROM journal GROUP BY route"
)


# -- the file: checks, migration, errors ------------------------------------------------


def journal_error(exc: sqlite3.Error, path: str, busy_timeout: float) -> JournalError:
    """Translate a sqlite3 error into a :exc:`JournalError` that says what to do."""
    detail = describe_error(
        exc,
        busy_timeout,
        full="the disk is full: free space, then retry (max_bytes leaves room for the file)",
    )
    return JournalError(f"journal {path}: {detail}")


def _check_header(db: sqlite3.Connection, path: str) -> int:
    """Return the file's schema version (0 when it is new), or refuse it without writing."""
    return check_header(
        db,
        what="the journal",
        application_id=APPLICATION_ID,
        schema_version=SCHEMA_VERSION,
        refuse=lambda reason: JournalError(f"journal {path}: {reason}"),
    )


def _check_schema(db: sqlite3.Connection, path: str, version: int) -> None:
    """Refuse, without writing, a file of *version* whose tables lack a column or the usage row."""
    tables = (("journal", COLUMNS), ("inbox", INBOX_COLUMNS), ("usage", USAGE_COLUMNS))
    missing = missing_columns(db, tables, version, ADDED_IN)
    if not missing and scalar(db, "SELECT count(*) FROM usage WHERE one = 1") != 1:
        missing.append("the usage row")
    if missing:
        raise JournalError(
            f"journal {path}: refused: the schema is damaged, missing " + ", ".join(missing)
        )


def _prepare(path: str, busy_timeout: float) -> None:
    """Check the file, switch it to WAL and migrate it (blocking: run it in a thread)."""
    prepare(
        path,
        busy_timeout,
        migrations=MIGRATIONS,
        application_id=APPLICATION_ID,
        header=lambda db: _check_header(db, path),
        schema=lambda db, version: _check_schema(db, path, version),
    )


def _closed(path: str) -> JournalError:
    return JournalError(f"journal {path}: the store is closed")


# -- rows <-> entries -------------------------------------------------------------------


def _encode(entry: JournalEntry) -> tuple[object, ...]:
    return (
        entry.id,
        entry.route,
        entry.key,
        entry.idempotency_key,
        entry.priority.name,
        entry.body,
        entry.content_type,
        json.dumps(entry.headers),
        json.dumps(entry.trace_context),
        entry.received_at,
        entry.size,
    )


def _decode(row: Sequence[object], path: str) -> JournalEntry:
    try:
        fields = dict(zip(COLUMNS, row, strict=True))
        del fields["size"]  # derived from the body and headers
        for name in ("headers", "trace_context"):
            text = fields[name]
            assert isinstance(text, str)
            fields[name] = tuple(tuple(pair) for pair in json.loads(text))
        return JournalEntry(**fields)  # type: ignore[arg-type]
    except (ValueError, TypeError, AssertionError) as exc:
        raise JournalError(f"journal {path}: entry {row[0]!r} cannot be read: {exc}") from exc


# -- the store --------------------------------------------------------------------------


@final
class SQLiteJournalStore:
    """A :class:`JournalStore` in one SQLite file: durable across kill -9 and, with FULL, power cuts.

    Open it with :meth:`open` (and :meth:`aclose` it) or with :func:`open_journal`.

    Attributes:
        path: the database file.
        max_bytes: the budget of the pending entries' bodies and headers.
        dedup_ttl: seconds a dedup record counts after its acceptance.
        dedup_max: the most dedup records kept; the oldest go first.
        busy_timeout: seconds a call waits for another process's write lock.
        clock: the wall clock read for a call's ``now`` when it is ``None``.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        path: str,
        *,
        file: StoreFile,
        max_bytes: int,
        dedup_ttl: float,
        dedup_max: int,
        busy_timeout: float,
        clock: Callable[[], float],
    ) -> None:
        """Wrap an open file; use :meth:`open` instead."""
        self.path = path
        self.max_bytes = max_bytes
        self.dedup_ttl = dedup_ttl
        self.dedup_max = dedup_max
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._file = file

    def __repr__(self) -> str:
        state = " closed" if self._file.is_closed else ""
        return f"<SQLiteJournalStore {self.path!r}{state}>"

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        max_bytes: int = DEFAULT_MAX_BYTES,
        dedup_ttl: float = DEFAULT_DEDUP_TTL,
        dedup_max: int = DEFAULT_DEDUP_MAX,
        busy_timeout: float = 5.0,
        clock: Callable[[], float] = time.time,
    ) -> SQLiteJournalStore:
        """Open the journal at *path*, creating or migrating it as needed.

        Args:
            path: the database file; created if missing (its directory must exist).
            synchronous: ``"FULL"`` (a commit survives a power cut), ``"NORMAL"`` (it
                survives a crash of the process) or ``"OFF"`` (tests only).
            max_bytes: the budget of the pending entries' bodies and headers
                (:attr:`JournalEntry.size`); the file is larger (the dedup records,
                indexes, the WAL), so leave the disk room beyond it.
            dedup_ttl: seconds a dedup record counts after its acceptance.
            dedup_max: the most dedup records kept; beyond it the oldest go.
            busy_timeout: seconds to wait for another process's write lock.
            clock: wall-clock time source; tests pass a fake one.

        Raises:
            InvalidArgument: an option is out of range.
            JournalError: the file is another application's or a newer otpy's (it is
                left untouched), or cannot be opened.
        """
        function = "SQLiteJournalStore.open"
        max_bytes, dedup_ttl, dedup_max = check_options(max_bytes, dedup_ttl, dedup_max, function)
        busy_timeout = check_number(busy_timeout, "busy_timeout", owner=function, positive=False)
        location = os.fspath(path)
        file = await StoreFile.open(
            location,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            prepare=_prepare,
            translate=functools.partial(journal_error, path=location, busy_timeout=busy_timeout),
            closed=functools.partial(_closed, location),
            owner="SQLiteJournalStore.open",
        )
        return cls(
            location,
            file=file,
            max_bytes=max_bytes,
            dedup_ttl=dedup_ttl,
            dedup_max=dedup_max,
            busy_timeout=busy_timeout,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the store, after the operations in progress; further calls raise. Idempotent."""
        await self._file.aclose()

    # -- plumbing ---------------------------------------------------------------------

    def _now(self, now: float | None, function: str) -> float:
        return check_time(self.clock() if now is None else now, "now", owner=function)

    async def _write(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run *body* atomically on the writer's thread (a shared transaction: see :class:`StoreFile`)."""
        return await self._file.write(body)

    async def _read(self, body: Callable[[sqlite3.Connection], _T]) -> _T:
        """Run *body* on the read connection, one read at a time."""
        return await self._file.read(body)

    # -- the protocol -------------------------------------------------------------------

    async def accept(
        self,
        entries: Sequence[JournalEntry],
        *,
        now: float | None = None,
        timeout: float | None = None,
    ) -> list[Accepted]:
        """Store *entries* durably but for duplicates (see :meth:`JournalStore.accept`).

        Raises:
            JournalFull: the new entries would pass ``max_bytes``; none was stored.
            TimeoutError: not committed within *timeout*; they may be committed still.
        """
        function = "SQLiteJournalStore.accept"
        check_entries(entries, function)
        timeout = check_timeout(timeout, function)
        now = self._now(now, function)
        self._file.check_open()
        if not entries:
            await anyio.lowlevel.checkpoint()
            return []
        cutoff = dedup_cutoff(now, self.dedup_ttl)
        rows = [_encode(entry) for entry in entries]  # on the loop: the thread only binds
        max_bytes, dedup_max = self.max_bytes, self.dedup_max

        def body(db: sqlite3.Connection) -> list[Accepted]:
            answers: list[Accepted] = []
            requested = stored = 0
            for entry, row in zip(entries, rows, strict=True):
                original = None
                if entry.idempotency_key is not None:
                    record = db.execute(
                        "SELECT id, accepted_at FROM inbox WHERE route = ? AND idempotency_key = ?",
                        (entry.route, entry.idempotency_key),
                    ).fetchone()
                    if record is not None and record[1] >= cutoff:
                        original = str(record[0])
                if (
                    original is None
                    and db.execute("SELECT 1 FROM journal WHERE id = ?", (entry.id,)).fetchone()
                ):
                    original = entry.id
                if original is not None:
                    answers.append(Accepted(original, duplicate=True))
                    continue
                db.execute(_INSERT, row)
                if entry.idempotency_key is not None:
                    db.execute(_RECORD, (entry.route, entry.idempotency_key, entry.id, now))
                answers.append(Accepted(entry.id))
                requested += entry.size
                stored += 1
            used, records = db.execute(
                "SELECT pending_bytes, dedup_records FROM usage WHERE one = 1"
            ).fetchone()
            if stored and used > max_bytes:
                raise JournalFull(max_bytes, used - requested, requested)
            if records > dedup_max:
                db.execute(_EVICT, (records - dedup_max,))
            return answers

        if timeout is None:
            return await self._write(body)
        with anyio.move_on_after(timeout):
            return await self._write(body)
        raise TimeoutError(
            f"journal {self.path}: the accept was not committed within {timeout:g}s; it may "
            "still be: accepting the same entries again answers them as duplicates"
        )

    async def pending(
        self, *, limit: int, after: str | None = None, exclude: Collection[str] = ()
    ) -> list[JournalEntry]:
        """Return pending entries oldest first, ids above *after* (see :meth:`JournalStore.pending`)."""
        limit, after, routes = check_pending(limit, after, "SQLiteJournalStore.pending", exclude)
        skip = f" AND route NOT IN ({', '.join('?' * len(routes))})" if routes else ""
        sql = f"{_SELECT} WHERE id > ?{skip} ORDER BY id LIMIT ?"
        # every id sorts above ""
        parameters = ("" if after is None else after, *sorted(routes), limit)

        def body(db: sqlite3.Connection) -> list[tuple[object, ...]]:
            found: list[tuple[object, ...]] = db.execute(sql, parameters).fetchall()
            return found

        return [_decode(row, self.path) for row in await self._read(body)]

    async def mark_handed_over(self, ids: Sequence[str]) -> int:
        """Delete these pending entries; return how many were pending (their dedup records stay)."""
        handed = check_ids(ids, "SQLiteJournalStore.mark_handed_over")
        if not handed:
            self._file.check_open()
            await anyio.lowlevel.checkpoint()
            return 0

        def body(db: sqlite3.Connection) -> int:
            return sum(
                db.execute("DELETE FROM journal WHERE id = ?", (entry_id,)).rowcount
                for entry_id in handed
            )

        return await self._write(body)

    async def purge(self, *, now: float | None = None) -> int:
        """Evict the dedup records older than ``dedup_ttl`` at *now*; return how many."""
        cutoff = dedup_cutoff(self._now(now, "SQLiteJournalStore.purge"), self.dedup_ttl)

        def body(db: sqlite3.Connection) -> int:
            return db.execute("DELETE FROM inbox WHERE accepted_at < ?", (cutoff,)).rowcount

        return await self._write(body)

    async def get(self, entry_id: str) -> JournalEntry | None:
        """Return the pending entry with this id, or ``None``."""
        check_type("SQLiteJournalStore.get", "entry_id", entry_id, str, "an entry id")

        def body(db: sqlite3.Connection) -> tuple[object, ...] | None:
            row: tuple[object, ...] | None = db.execute(
                f"{_SELECT} WHERE id = ?", (entry_id,)
            ).fetchone()
            return row

        row = await self._read(body)
        return None if row is None else _decode(row, self.path)

    async def steady_rate(self) -> float | None:
        """The hand-over's steady rate as last saved, or ``None`` if never saved."""

        def body(db: sqlite3.Connection) -> float | None:
            (value,) = db.execute("SELECT steady_rate FROM usage WHERE one = 1").fetchone()
            return None if value is None else float(value)

        return await self._read(body)

    async def save_steady_rate(self, rate: float) -> None:
        """Save the hand-over's steady rate, entries per second (a finite number >= 0)."""
        rate = check_number(
            rate, "rate", owner="SQLiteJournalStore.save_steady_rate", positive=False
        )

        def body(db: sqlite3.Connection) -> None:
            db.execute("UPDATE usage SET steady_rate = ? WHERE one = 1", (rate,))

        await self._write(body)

    async def statistics(self, *, now: float | None = None) -> JournalStatistics:
        """Return the pending depth, oldest age and bytes per route (one scan), and the dedup records."""
        now = self._now(now, "SQLiteJournalStore.statistics")

        def body(db: sqlite3.Connection) -> tuple[list[tuple[str, int, float, int]], int]:
            # One read transaction, so the routes and the record count agree.
            db.execute("BEGIN")
            try:
                rows = [
                    (str(r), int(n), float(o), int(b)) for r, n, o, b in db.execute(_STATISTICS)
                ]
                records = scalar(db, "SELECT dedup_records FROM usage WHERE one = 1")
            finally:
                db.execute("COMMIT")
            return rows, records

        rows, records = await self._read(body)
        return JournalStatistics.of(rows, now=now, max_bytes=self.max_bytes, dedup_records=records)


@contextlib.asynccontextmanager
async def open_journal(
    path: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    max_bytes: int = DEFAULT_MAX_BYTES,
    dedup_ttl: float = DEFAULT_DEDUP_TTL,
    dedup_max: int = DEFAULT_DEDUP_MAX,
    busy_timeout: float = 5.0,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[SQLiteJournalStore]:
    """Open the SQLite journal at *path* for the duration of an ``async with`` block.

    Takes the options of :meth:`SQLiteJournalStore.open`::

        async with open_journal("var/journal.db", max_bytes=2**30) as journal:
            [accepted] = await journal.accept([entry])  # durable when it returns

    .. versionadded:: 0.1.0
    """
    store = await SQLiteJournalStore.open(
        path,
        synchronous=synchronous,
        max_bytes=max_bytes,
        dedup_ttl=dedup_ttl,
        dedup_max=dedup_max,
        busy_timeout=busy_timeout,
        clock=clock,
    )
    try:
        yield store
    finally:
        await store.aclose()
