"""The durable outbox: one SQLite file, written through otpy's one write path.

Enqueues are group-committed with whatever else is waiting (``otpy._durable``):
:meth:`SQLiteOutboxStore.enqueue` returns once its messages are committed. Every
other change (claim, retry, mark dead, complete, remove, recover, a destination's
state) is one ``BEGIN IMMEDIATE`` transaction run on the writer's thread, so a claim
reads and marks its messages atomically, even with several processes on one file.
Reads (``get``, ``dead``, ``statistics``, ``destination_states``) run on a second,
read-only connection in a worker thread, one at a time; in WAL mode they never wait
for a commit. Only the standard library's
``sqlite3`` is used, so the store runs on asyncio and on trio.

The file is the outbox's own (``var/outbox.db``, say): marked with
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
import attrs

from .._check import check_type, count
from .._check import number as check_number
from .._durable import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_PENDING,
    StoreFile,
    Table,
    Write,
    check_header,
    describe_error,
    missing_columns,
    prepare,
)
from .._exceptions import OutboxError, OutboxMessageNotFound
from ._outbox import (
    SETTLED_KEPT,
    DestinationState,
    OutboxMessage,
    OutboxState,
    OutboxStatistics,
    check_claim,
    check_dead,
    check_destination_state,
    check_mark_dead,
    check_messages,
    check_retry,
    check_time,
    check_timeout,
)

if TYPE_CHECKING:
    import sqlite3
    from collections.abc import AsyncIterator, Callable, Mapping, Sequence

__all__ = [
    "APPLICATION_ID",
    "SCHEMA_VERSION",
    "SQLiteOutboxStore",
    "open_outbox",
]

_T = TypeVar("_T")

APPLICATION_ID: Final = 0x6F74706F
"""``PRAGMA application_id`` of an outbox file: ``"otpo"`` in ASCII (otpy's outbox).

Distinct from the dead-letter store's ``"otpy"`` (0x6F747079), so neither store
opens the other's file by mistake.
"""


_V1: Final = (
    """
    CREATE TABLE outbox (
        id TEXT PRIMARY KEY NOT NULL,
        destination TEXT NOT NULL,
        key TEXT NOT NULL,
        idempotency_key TEXT NOT NULL,
        body BLOB NOT NULL,
        content_type TEXT NOT NULL,
        headers TEXT NOT NULL,
        trace_context TEXT NOT NULL,
        created_at REAL NOT NULL,
        attempts INTEGER NOT NULL,
        next_attempt_at REAL NOT NULL,
        state TEXT NOT NULL,
        lease_expires_at REAL,
        last_status INTEGER,
        last_error TEXT
    )
    """,
    # A claim walks a destination's messages oldest first (ids sort by time) and
    # stops once it has `limit` heads.
    "CREATE INDEX outbox_destination_id ON outbox (destination, id)",
    # The head of a key: the lowest id of (destination, key), one index seek.
    "CREATE INDEX outbox_destination_key_id ON outbox (destination, key, id)",
    # Whether a key has a message in flight, and recovery's scan: only in-flight rows
    # are in it (a few per worker), so it stays small however deep the outbox is.
    "CREATE INDEX outbox_in_flight ON outbox (destination, key, lease_expires_at)"
    " WHERE state = 'in_flight'",
)

_V2: Final = (
    # Dead-lettering in three steps: the row records its final attempt first.
    "ALTER TABLE outbox ADD COLUMN dead_at REAL",
    # The dead rows to finish after a crash: few, and only they are in it.
    "CREATE INDEX outbox_dead ON outbox (destination, id) WHERE state = 'dead'",
    """
    CREATE TABLE destination_state (
        destination TEXT PRIMARY KEY NOT NULL,
        disabled INTEGER NOT NULL,
        disabled_reason TEXT,
        disabled_at REAL,
        failing_since REAL
    )
    """,
)

_V3: Final = (
    # The ids of the messages that left the outbox (delivered, or dead-lettered and
    # removed), the latest SETTLED_KEPT of them: a message handed over again after a
    # crash (the ingest's hand-over commits the outbox, then its journal) is not
    # stored, and so not sent, again.
    "CREATE TABLE settled (seq INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE)",
    """
    CREATE TRIGGER outbox_settled AFTER DELETE ON outbox BEGIN
        INSERT OR IGNORE INTO settled (id) VALUES (OLD.id);
    END
    """,
    f"""
    CREATE TRIGGER settled_kept AFTER INSERT ON settled BEGIN
        DELETE FROM settled WHERE seq <= NEW.seq - {SETTLED_KEPT};
    END
    """,
    """
    CREATE TRIGGER outbox_once BEFORE INSERT ON outbox
    WHEN EXISTS (SELECT 1 FROM settled WHERE id = NEW.id) BEGIN
        SELECT RAISE(IGNORE);
    END
    """,
)

MIGRATIONS: Final = (_V1, _V2, _V3)
"""``MIGRATIONS[n]`` takes an outbox file from ``user_version`` n to n + 1, in one transaction.

Version 2 added ``outbox.dead_at`` (the ``dead`` state) and the ``destination_state``
table; version 3 the ``settled`` table and its triggers.
"""

SCHEMA_VERSION: Final = len(MIGRATIONS)

DESTINATION_COLUMNS: Final = (
    "destination",
    "disabled",
    "disabled_reason",
    "disabled_at",
    "failing_since",
)

SETTLED_COLUMNS: Final = ("seq", "id")

ADDED_IN: Final = {
    "outbox.dead_at": 2,
    **{f"destination_state.{c}": 2 for c in DESTINATION_COLUMNS},
    **{f"settled.{c}": 3 for c in SETTLED_COLUMNS},
}
"""The schema version that added each column not in version 1."""

COLUMNS: Final = (
    "id",
    "destination",
    "key",
    "idempotency_key",
    "body",
    "content_type",
    "headers",
    "trace_context",
    "created_at",
    "attempts",
    "next_attempt_at",
    "state",
    "lease_expires_at",
    "last_status",
    "last_error",
    "dead_at",
)
_SELECT: Final = f"SELECT {', '.join(COLUMNS)} FROM outbox"

_IN_FLIGHT: Final = OutboxState.IN_FLIGHT.value
_PENDING: Final = OutboxState.PENDING.value
_DEAD: Final = OutboxState.DEAD.value

_CLAIM: Final = f"""
    SELECT {", ".join("o." + c for c in COLUMNS)} FROM outbox AS o
    WHERE o.destination = ?1 AND o.state = '{_PENDING}' AND o.next_attempt_at <= ?2
      AND o.id = (
        SELECT min(h.id) FROM outbox AS h WHERE h.destination = ?1 AND h.key = o.key
      )
      AND NOT EXISTS (
        SELECT 1 FROM outbox AS f
        WHERE f.destination = ?1 AND f.key = o.key AND f.state = '{_IN_FLIGHT}'
      )
    ORDER BY o.id
    LIMIT ?3
"""
"""The due heads of a destination's keys with nothing in flight, oldest first.

A key whose head is not due, or is dead, blocks its later messages: they fail the
head test.
"""

_STATISTICS: Final = (
    f"SELECT destination, count(*), sum(state = '{_IN_FLIGHT}'), sum(state = '{_DEAD}'), "
    "min(created_at) FROM outbox GROUP BY destination"
)


# -- the file: checks, migration, errors ------------------------------------------------


def outbox_error(exc: sqlite3.Error, path: str, busy_timeout: float) -> OutboxError:
    """Translate a sqlite3 error into a :exc:`OutboxError` that says what to do."""
    detail = describe_error(
        exc, busy_timeout, full="the disk (or the file's page cap) is full: free space, then retry"
    )
    return OutboxError(f"outbox {path}: {detail}")


def _check_header(db: sqlite3.Connection, path: str) -> int:
    """Return the file's schema version (0 when it is new), or refuse it without writing."""
    return check_header(
        db,
        what="the outbox",
        application_id=APPLICATION_ID,
        schema_version=SCHEMA_VERSION,
        refuse=lambda reason: OutboxError(f"outbox {path}: {reason}"),
    )


def _check_schema(db: sqlite3.Connection, path: str, version: int) -> None:
    """Refuse, without writing, a file of schema *version* whose tables lack a column."""
    tables = (
        ("outbox", COLUMNS),
        ("destination_state", DESTINATION_COLUMNS),
        ("settled", SETTLED_COLUMNS),
    )
    missing = missing_columns(db, tables, version, ADDED_IN)
    if missing:
        raise OutboxError(
            f"outbox {path}: refused: the schema is damaged, missing " + ", ".join(missing)
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


def _closed(path: str) -> OutboxError:
    return OutboxError(f"outbox {path}: the store is closed")


# -- rows <-> messages --------------------------------------------------------------------


def _encode(message: OutboxMessage) -> tuple[object, ...]:
    return (
        message.id,
        message.destination,
        message.key,
        message.idempotency_key,
        message.body,
        message.content_type,
        json.dumps(message.headers),
        json.dumps(message.trace_context),
        message.created_at,
        message.attempts,
        message.next_attempt_at,
        message.state.value,
        message.lease_expires_at,
        message.last_status,
        message.last_error,
        message.dead_at,
    )


def _decode(row: Sequence[object], path: str) -> OutboxMessage:
    try:
        fields = dict(zip(COLUMNS, row, strict=True))
        for name in ("headers", "trace_context"):
            text = fields[name]
            assert isinstance(text, str)
            fields[name] = tuple(tuple(pair) for pair in json.loads(text))
        if isinstance(fields["body"], memoryview):  # pragma: no cover - sqlite3 returns bytes
            fields["body"] = bytes(fields["body"])
        return OutboxMessage(**fields)  # type: ignore[arg-type]
    except (ValueError, TypeError, AssertionError) as exc:
        raise OutboxError(f"outbox {path}: message {row[0]!r} cannot be read: {exc}") from exc


def _decode_destination(row: Sequence[object], path: str) -> tuple[str, DestinationState]:
    destination, disabled, reason, disabled_at, failing_since = row
    try:
        if disabled not in (0, 1) or isinstance(disabled, float):
            raise ValueError(f"disabled must be 0 or 1, got {disabled!r}")
        return str(destination), DestinationState(
            disabled=bool(disabled),
            disabled_reason=reason,
            disabled_at=disabled_at,
            failing_since=failing_since,
        )
    except (ValueError, TypeError) as exc:
        raise OutboxError(
            f"outbox {path}: the state of destination {destination!r} cannot be read: {exc}"
        ) from exc


# -- the store --------------------------------------------------------------------------


@final
class SQLiteOutboxStore:
    """An :class:`OutboxStore` in one SQLite file: durable across kill -9 and, with FULL, power cuts.

    Open it with :meth:`open` (and :meth:`aclose` it) or with :func:`open_outbox`.

    Attributes:
        path: the database file.
        busy_timeout: seconds a call waits for another process's write lock.
        clock: the wall clock read for a call's ``now`` when it is ``None``.
    """

    def __init__(
        self,
        path: str,
        *,
        file: StoreFile,
        busy_timeout: float,
        clock: Callable[[], float],
    ) -> None:
        """Wrap an open file; use :meth:`open` instead."""
        self.path = path
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._file = file
        self._table = Table(
            "outbox",
            COLUMNS,
            on_conflict="ON CONFLICT (id) DO NOTHING",
            sort=True,  # ids rise with time: sorted rows append to the indexes' last pages
        )

    def __repr__(self) -> str:
        state = " closed" if self._file.is_closed else ""
        return f"<SQLiteOutboxStore {self.path!r}{state}>"

    @classmethod
    async def open(
        cls,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "FULL",
        busy_timeout: float = 5.0,
        max_batch: int = DEFAULT_MAX_BATCH,
        max_pending: int = DEFAULT_MAX_PENDING,
        clock: Callable[[], float] = time.time,
    ) -> SQLiteOutboxStore:
        """Open the outbox at *path*, creating or migrating it as needed.

        Args:
            path: the database file; created if missing (its directory must exist).
            synchronous: ``"FULL"`` (a commit survives a power cut), ``"NORMAL"`` (it
                survives a crash of the process) or ``"OFF"`` (tests only).
            busy_timeout: seconds to wait for another process's write lock.
            max_batch: the most messages one group commit takes.
            max_pending: the most messages waiting for a commit; further enqueues
                wait for room (or time out).
            clock: wall-clock time source; tests pass a fake one.

        Raises:
            InvalidArgument: an option is out of range.
            OutboxError: the file is another application's or a newer otpy's (it is
                left untouched), or cannot be opened.
        """
        busy_timeout = check_number(
            busy_timeout, "busy_timeout", owner="SQLiteOutboxStore.open", positive=False
        )
        count(max_batch, "max_batch", owner="SQLiteOutboxStore.open")
        count(max_pending, "max_pending", owner="SQLiteOutboxStore.open")
        location = os.fspath(path)
        file = await StoreFile.open(
            location,
            synchronous=synchronous,
            busy_timeout=busy_timeout,
            prepare=_prepare,
            translate=functools.partial(outbox_error, path=location, busy_timeout=busy_timeout),
            closed=functools.partial(_closed, location),
            owner="SQLiteOutboxStore.open",
            max_batch=max_batch,
            max_pending=max_pending,
        )
        return cls(location, file=file, busy_timeout=busy_timeout, clock=clock)

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

    async def enqueue(
        self, messages: Sequence[OutboxMessage], *, timeout: float | None = None
    ) -> int:
        """Store *messages* durably; return how many were new (see :meth:`OutboxStore.enqueue`)."""
        check_messages(messages, "SQLiteOutboxStore.enqueue")
        timeout = check_timeout(timeout, "SQLiteOutboxStore.enqueue")
        self._file.check_open()
        if not messages:
            await anyio.lowlevel.checkpoint()
            return 0
        rows = [_encode(message) for message in messages]
        return await self._file.writer.append(Write([(self._table, rows)]), timeout=timeout)

    async def claim(
        self, destination: str, *, now: float | None = None, limit: int, lease: float
    ) -> list[OutboxMessage]:
        """Claim the due heads of *destination*'s keys (see :meth:`OutboxStore.claim`)."""
        function = "SQLiteOutboxStore.claim"
        destination, now, limit, lease = check_claim(
            destination, self._now(now, function), limit, lease, function
        )
        expires = now + lease

        def body(db: sqlite3.Connection) -> list[OutboxMessage]:
            rows = db.execute(_CLAIM, (destination, now, limit)).fetchall()
            db.executemany(
                "UPDATE outbox SET state = ?, lease_expires_at = ? WHERE id = ?",
                [(_IN_FLIGHT, expires, row[0]) for row in rows],
            )
            claimed = []
            for row in rows:
                fields = list(row)
                fields[COLUMNS.index("state")] = _IN_FLIGHT
                fields[COLUMNS.index("lease_expires_at")] = expires
                claimed.append(_decode(fields, self.path))
            return claimed

        return await self._write(body)

    async def record_retry(
        self,
        message_id: str,
        *,
        attempts: int,
        next_attempt_at: float,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        """Put a message back to pending, due at *next_attempt_at*; a dead one stays dead.

        Raises:
            OutboxMessageNotFound: no such id.
        """
        message_id, attempts, next_attempt_at, status, error = check_retry(
            message_id, attempts, next_attempt_at, status, error, "SQLiteOutboxStore.record_retry"
        )

        def body(db: sqlite3.Connection) -> None:
            updated = db.execute(
                "UPDATE outbox SET state = ?, lease_expires_at = NULL, attempts = ?, "
                f"next_attempt_at = ?, last_status = ?, last_error = ? WHERE id = ? "
                f"AND state != '{_DEAD}'",
                (_PENDING, attempts, next_attempt_at, status, error, message_id),
            ).rowcount
            if (
                not updated
                and not db.execute("SELECT 1 FROM outbox WHERE id = ?", (message_id,)).fetchone()
            ):
                raise OutboxMessageNotFound(message_id)

        await self._write(body)

    async def mark_dead(
        self,
        message_id: str,
        *,
        attempts: int,
        status: int | None,
        error: str | None,
        now: float | None = None,
    ) -> OutboxMessage:
        """Record that a message is being dead-lettered (see :meth:`OutboxStore.mark_dead`).

        Raises:
            OutboxMessageNotFound: no such id.
        """
        function = "SQLiteOutboxStore.mark_dead"
        message_id, attempts, status, error = check_mark_dead(
            message_id, attempts, status, error, function
        )
        now = self._now(now, function)

        def body(db: sqlite3.Connection) -> OutboxMessage:
            row = db.execute(f"{_SELECT} WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise OutboxMessageNotFound(message_id)
            message = _decode(row, self.path)
            if message.state is OutboxState.DEAD:
                return message  # the first marking wins
            db.execute(
                "UPDATE outbox SET state = ?, lease_expires_at = NULL, attempts = ?, "
                "last_status = ?, last_error = ?, dead_at = ? WHERE id = ?",
                (_DEAD, attempts, status, error, now, message_id),
            )
            return attrs.evolve(
                message,
                state=OutboxState.DEAD,
                lease_expires_at=None,
                attempts=attempts,
                last_status=status,
                last_error=error,
                dead_at=now,
            )

        return await self._write(body)

    async def dead(
        self, *, destination: str | None = None, limit: int = 1000
    ) -> list[OutboxMessage]:
        """Return the dead messages, oldest first (see :meth:`OutboxStore.dead`)."""
        destination, limit = check_dead(destination, limit, "SQLiteOutboxStore.dead")
        sql = f"{_SELECT} WHERE state = '{_DEAD}'"
        parameters: tuple[object, ...] = (limit,)
        if destination is not None:
            sql += " AND destination = ?2"
            parameters = (limit, destination)
        sql += " ORDER BY id LIMIT ?1"

        def body(db: sqlite3.Connection) -> list[tuple[object, ...]]:
            rows: list[tuple[object, ...]] = db.execute(sql, parameters).fetchall()
            return rows

        return [_decode(row, self.path) for row in await self._read(body)]

    async def complete(self, message_id: str) -> None:
        """Delete a delivered message; a missing id is not an error."""
        check_type("SQLiteOutboxStore.complete", "message_id", message_id, str, "a message id")

        def body(db: sqlite3.Connection) -> None:
            db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))

        await self._write(body)

    async def remove(self, message_id: str) -> OutboxMessage:
        """Delete a message and return it.

        Raises:
            OutboxMessageNotFound: no such id.
        """
        check_type("SQLiteOutboxStore.remove", "message_id", message_id, str, "a message id")

        def body(db: sqlite3.Connection) -> OutboxMessage:
            row = db.execute(f"{_SELECT} WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise OutboxMessageNotFound(message_id)
            db.execute("DELETE FROM outbox WHERE id = ?", (message_id,))
            return _decode(row, self.path)

        return await self._write(body)

    async def get(self, message_id: str) -> OutboxMessage | None:
        """Return the message with this id, or ``None``."""
        check_type("SQLiteOutboxStore.get", "message_id", message_id, str, "a message id")

        def body(db: sqlite3.Connection) -> tuple[object, ...] | None:
            row: tuple[object, ...] | None = db.execute(
                f"{_SELECT} WHERE id = ?", (message_id,)
            ).fetchone()
            return row

        row = await self._read(body)
        return None if row is None else _decode(row, self.path)

    async def recover(self, *, now: float | None = None, only_expired: bool = False) -> int:
        """Put in-flight messages (with *only_expired*, those whose lease ended) back to pending."""
        now = self._now(now, "SQLiteOutboxStore.recover")
        sql = (
            f"UPDATE outbox SET state = '{_PENDING}', lease_expires_at = NULL, next_attempt_at = ?1 "
            f"WHERE state = '{_IN_FLIGHT}'"
        )
        if only_expired:
            sql += " AND lease_expires_at <= ?1"

        def body(db: sqlite3.Connection) -> int:
            return db.execute(sql, (now,)).rowcount

        return await self._write(body)

    async def statistics(self, *, now: float | None = None) -> OutboxStatistics:
        """Return depth, in flight and oldest age per destination (one scan of the table)."""
        now = self._now(now, "SQLiteOutboxStore.statistics")

        def body(db: sqlite3.Connection) -> list[tuple[str, int, int, int, float]]:
            return [
                (str(d), int(n), int(f), int(x), float(o))
                for d, n, f, x, o in db.execute(_STATISTICS)
            ]

        return OutboxStatistics.of(await self._read(body), now=now)

    async def destination_states(self) -> Mapping[str, DestinationState]:
        """Return the stored state of every destination that has one, by name."""

        def body(db: sqlite3.Connection) -> list[tuple[object, ...]]:
            rows: list[tuple[object, ...]] = db.execute(
                f"SELECT {', '.join(DESTINATION_COLUMNS)} FROM destination_state "
                "ORDER BY destination"
            ).fetchall()
            return rows

        return dict(_decode_destination(row, self.path) for row in await self._read(body))

    async def set_destination_state(self, destination: str, state: DestinationState) -> None:
        """Store *destination*'s state, committed when this returns; the default state deletes it."""
        destination, state = check_destination_state(
            destination, state, "SQLiteOutboxStore.set_destination_state"
        )
        if state == DestinationState():
            sql = "DELETE FROM destination_state WHERE destination = ?"
            parameters: tuple[object, ...] = (destination,)
        else:
            sql = (
                f"INSERT INTO destination_state ({', '.join(DESTINATION_COLUMNS)}) "
                "VALUES (?, ?, ?, ?, ?) ON CONFLICT (destination) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in DESTINATION_COLUMNS[1:])
            )
            parameters = (
                destination,
                int(state.disabled),
                state.disabled_reason,
                state.disabled_at,
                state.failing_since,
            )

        def body(db: sqlite3.Connection) -> None:
            db.execute(sql, parameters)

        await self._write(body)


@contextlib.asynccontextmanager
async def open_outbox(
    path: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    busy_timeout: float = 5.0,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_pending: int = DEFAULT_MAX_PENDING,
    clock: Callable[[], float] = time.time,
) -> AsyncIterator[SQLiteOutboxStore]:
    """Open the SQLite outbox at *path* for the duration of an ``async with`` block.

    Takes the options of :meth:`SQLiteOutboxStore.open`::

        async with open_outbox("var/outbox.db") as outbox:
            await outbox.enqueue([message])
    """
    store = await SQLiteOutboxStore.open(
        path,
        synchronous=synchronous,
        busy_timeout=busy_timeout,
        max_batch=max_batch,
        max_pending=max_pending,
        clock=clock,
    )
    try:
        yield store
    finally:
        await store.aclose()
