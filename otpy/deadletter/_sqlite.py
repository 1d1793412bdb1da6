"""The durable dead-letter store: one SQLite file, through aiosqlite (D2).

Every operation is one transaction. Writes start with ``BEGIN IMMEDIATE``, which takes
SQLite's write lock before reading, so the replay guard (:func:`decide_replay` and
friends, shared with the in-memory store) reads and writes a record and its ledger
key atomically even when several processes open the same file. Within one process
the store's single connection is serialised by an :class:`anyio.Lock`.

The file is marked as ours with ``PRAGMA application_id`` and versioned with
``PRAGMA user_version``; opening migrates an older schema and refuses (without
writing a byte) a file that is not an otpy store or was written by a newer otpy.

Payloads larger than ``inline_limit`` live in their own table, so listing never
reads them: a listed record has ``payload=None`` and its ``payload_size``; ``get``
loads it.

aiosqlite only works on asyncio.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import sqlite3
import time
import urllib.parse
from typing import TYPE_CHECKING, Final, TypeVar, final

import aiosqlite
import anyio
import anyio.lowlevel
import anyio.to_thread

from .._exceptions import (
    CorruptRecord,
    DeadLetterNotFound,
    DeadLetterStoreError,
    InvalidDeadLetter,
    NotAnOtpyStore,
    StoreFull,
    StoreLocked,
    StoreSchemaDamaged,
    StoreVersionTooNew,
)
from .._redact import get_logger
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
from ._record import (
    Category,
    DeadLetter,
    Diagnostics,
    ReplayOutcome,
    ReplayState,
    ReplayStatus,
    Source,
    Status,
)
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
    from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

__all__ = ["SQLiteDeadLetterStore", "open_store"]

logger = get_logger("otpy.deadletter")

_T = TypeVar("_T")

APPLICATION_ID: Final = 0x6F747079
"""``PRAGMA application_id`` of an otpy store: ``"otpy"`` in ASCII."""

DEFAULT_INLINE_LIMIT: Final = 64 * 1024
SYNCHRONOUS_MODES: Final = ("FULL", "NORMAL", "OFF")
_MAX_BOUND_IDS = 500  # beyond this many ids, a filter binds them as one JSON array
_SQLITE_READONLY_DIRECTORY: Final = 1544  # SQLITE_READONLY | (6 << 8), an extended code
SWEEP_CHUNK = 5000
"""Records a retention sweep deletes per transaction (about 100 ms of write lock)."""

# -- schema -----------------------------------------------------------------------------

_V1: Final = (
    """
    CREATE TABLE dead_letters (
        id TEXT PRIMARY KEY NOT NULL,
        key TEXT NOT NULL,
        source TEXT NOT NULL,
        status TEXT NOT NULL,
        reason_class TEXT NOT NULL,
        reason TEXT NOT NULL,
        category TEXT NOT NULL,
        correlation_id TEXT,
        idempotency_key TEXT,
        attempt INTEGER NOT NULL,
        max_attempts INTEGER NOT NULL,
        payload BLOB,
        payload_size INTEGER NOT NULL,
        payload_external INTEGER NOT NULL,
        content_type TEXT NOT NULL,
        headers TEXT NOT NULL,
        pressure_level TEXT,
        queue_depth INTEGER,
        queue_capacity INTEGER,
        trace_context TEXT NOT NULL,
        replay_status TEXT NOT NULL,
        replay_attempts INTEGER NOT NULL,
        replay_last_attempt_at REAL,
        replay_last_outcome TEXT,
        replay_last_error TEXT,
        lease_expires_at REAL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL
    )
    """,
    "CREATE INDEX dead_letters_status_id ON dead_letters (status, id)",
    "CREATE INDEX dead_letters_key_id ON dead_letters (key, id)",
    "CREATE INDEX dead_letters_idempotency_key ON dead_letters (idempotency_key)"
    " WHERE idempotency_key IS NOT NULL",
    # Listing by replay status, newest first; and reclaiming: running records are few
    # (one per replay worker), so their range of this index is all reclaim reads.
    "CREATE INDEX dead_letters_replay_status_id ON dead_letters (replay_status, id)",
    "CREATE INDEX dead_letters_created_at ON dead_letters (created_at)",
    """
    CREATE TABLE payloads (
        id TEXT PRIMARY KEY NOT NULL REFERENCES dead_letters (id) ON DELETE CASCADE,
        data BLOB NOT NULL
    )
    """,
    """
    CREATE TABLE ledger (
        key TEXT PRIMARY KEY NOT NULL,
        state TEXT NOT NULL,
        record_id TEXT NOT NULL,
        expires_at REAL,
        updated_at REAL NOT NULL
    )
    """,
    "CREATE TABLE counters (name TEXT PRIMARY KEY NOT NULL, value INTEGER NOT NULL)",
)

_V2: Final = (
    # Ledger pruning (RetentionPolicy.ledger_max_age) reads only the entries older
    # than its cutoff, instead of the whole ledger at every sweep.
    "CREATE INDEX ledger_updated_at ON ledger (updated_at)",
)

MIGRATIONS: tuple[tuple[str, ...], ...] = (_V1, _V2)
"""``MIGRATIONS[n]`` takes a store from ``user_version`` n to n + 1, in one transaction."""

_COLUMNS: Final = (
    "id",
    "key",
    "source",
    "status",
    "reason_class",
    "reason",
    "category",
    "correlation_id",
    "idempotency_key",
    "attempt",
    "max_attempts",
    "payload",
    "payload_size",
    "payload_external",
    "content_type",
    "headers",
    "pressure_level",
    "queue_depth",
    "queue_capacity",
    "trace_context",
    "replay_status",
    "replay_attempts",
    "replay_last_attempt_at",
    "replay_last_outcome",
    "replay_last_error",
    "lease_expires_at",
    "created_at",
    "updated_at",
)
_SELECT: Final = ", ".join(f"d.{c}" for c in _COLUMNS)
REQUIRED_SCHEMA: Final = {
    "dead_letters": _COLUMNS,
    "payloads": ("id", "data"),
    "ledger": ("key", "state", "record_id", "expires_at", "updated_at"),
    "counters": ("name", "value"),
}
"""The tables and columns the store reads and writes; opening checks they are there."""
# ON CONFLICT (id) DO NOTHING, not INSERT OR IGNORE: only a stored id is skipped
# (add_many then checks it is the same record); OR IGNORE would also skip, silently,
# a row that breaks NOT NULL.
_INSERT: Final = (
    f"INSERT INTO dead_letters ({', '.join(_COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(_COLUMNS))}) ON CONFLICT (id) DO NOTHING"
)
_CAPTURE_COLUMNS: Final = tuple(
    i
    for i, column in enumerate(_COLUMNS)
    if column not in {"payload", "payload_external", "status", "updated_at", "lease_expires_at"}
    and not column.startswith("replay_")
)
"""Indexes in ``_COLUMNS`` of what a record has from its capture on (``CAPTURE_FIELDS``)."""
_STORED_CAPTURES: Final = (
    f"SELECT {', '.join(_COLUMNS[i] for i in _CAPTURE_COLUMNS)} FROM dead_letters "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
_INSERT_PAYLOAD: Final = (
    "INSERT OR IGNORE INTO payloads (id, data) "
    "SELECT id, ? FROM dead_letters WHERE id = ? AND payload_external = 1"
)
_UPDATE_STATE: Final = (
    "UPDATE dead_letters SET status = ?, replay_status = ?, replay_attempts = ?, "
    "replay_last_attempt_at = ?, replay_last_outcome = ?, replay_last_error = ?, "
    "lease_expires_at = ?, updated_at = ? WHERE id = ?"
)
_UPSERT_LEDGER: Final = (
    "INSERT INTO ledger (key, state, record_id, expires_at, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET state = excluded.state, record_id = excluded.record_id, "
    "expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
_BUMP: Final = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)
_NOT_RUNNING: Final = "replay_status IS NOT 'running'"

# -- rows <-> records -------------------------------------------------------------------


_JSON = json.JSONEncoder(separators=(",", ":"))


def _record_id(record: DeadLetter) -> str:
    return record.id


@functools.lru_cache(maxsize=256)
def _pairs_to_json(pairs: tuple[tuple[str, str], ...]) -> str:
    # Cached: records from one capture point share their headers, and the trace
    # context is usually empty; encoding JSON is most of what a capture costs here.
    return _JSON.encode([[name, value] for name, value in pairs])


def _encode(record: DeadLetter, inline_limit: int) -> tuple[tuple[object, ...], bytes | None]:
    """Return the ``dead_letters`` row for *record*, and its payload if stored apart."""
    external = record.payload is not None and len(record.payload) > inline_limit
    replay = record.replay
    diagnostics = record.diagnostics
    row = (
        record.id,
        record.key,
        record.source.value,
        record.status.value,
        record.reason_class,
        record.reason,
        record.category.value,
        record.correlation_id,
        record.idempotency_key,
        record.attempt,
        record.max_attempts,
        None if external else record.payload,
        record.payload_size,
        int(external),
        record.content_type,
        _pairs_to_json(record.headers),
        diagnostics.pressure_level,
        diagnostics.queue_depth,
        diagnostics.queue_capacity,
        _pairs_to_json(record.trace_context),
        replay.status.value,
        replay.attempts,
        replay.last_attempt_at,
        None if replay.last_outcome is None else replay.last_outcome.value,
        replay.last_error,
        replay.lease_expires_at,
        record.created_at,
        record.updated_at,
    )
    return row, record.payload if external else None


def _state_row(record: DeadLetter) -> tuple[object, ...]:
    """Return the parameters of ``_UPDATE_STATE`` for *record*."""
    replay = record.replay
    return (
        record.status.value,
        replay.status.value,
        replay.attempts,
        replay.last_attempt_at,
        None if replay.last_outcome is None else replay.last_outcome.value,
        replay.last_error,
        replay.lease_expires_at,
        record.updated_at,
        record.id,
    )


class _Undecodable(Exception):
    """A column holds something no record could have written."""


def _text(value: object, column: str) -> str:
    if not isinstance(value, str):
        raise _Undecodable(f"{column} is {type(value).__name__}, not text")
    return value


def _optional_text(value: object, column: str) -> str | None:
    return None if value is None else _text(value, column)


def _integer(value: object, column: str) -> int:
    if not isinstance(value, int):
        raise _Undecodable(f"{column} is {type(value).__name__}, not an integer")
    return value


def _optional_integer(value: object, column: str) -> int | None:
    return None if value is None else _integer(value, column)


def _real(value: object, column: str) -> float:
    if not isinstance(value, (int, float)):
        raise _Undecodable(f"{column} is {type(value).__name__}, not a number")
    return float(value)


def _optional_real(value: object, column: str) -> float | None:
    return None if value is None else _real(value, column)


def _optional_blob(value: object, column: str) -> bytes | None:
    if value is not None and not isinstance(value, bytes):
        raise _Undecodable(f"{column} is {type(value).__name__}, not a blob")
    return value


_E = TypeVar("_E", Source, Status, Category, ReplayStatus, ReplayOutcome, LedgerState)


def _enum(kind: type[_E], value: object, column: str) -> _E:
    try:
        return kind(_text(value, column))
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise _Undecodable(f"{column} {value!r:.40} is not one of {allowed}") from None


def _pairs_from_json(value: object, column: str) -> tuple[tuple[str, str], ...]:
    try:
        decoded = json.loads(_text(value, column))
    except json.JSONDecodeError:
        raise _Undecodable(f"{column} is not valid JSON") from None
    if not isinstance(decoded, list) or not all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], str)
        for pair in decoded
    ):
        raise _Undecodable(f"{column} is not a JSON list of [name, value] string pairs")
    return tuple((name, value) for name, value in decoded)


def _decode(row: Sequence[object], path: str, *, loaded: bool) -> DeadLetter:
    """Return the record in *row* (``_COLUMNS``, then ``payloads.data`` when *loaded*).

    Raises:
        CorruptRecord: the row holds something no record could have written.
    """
    record_id = str(row[0])
    try:
        (
            id_,
            key,
            source,
            status,
            reason_class,
            reason,
            category,
            correlation_id,
            idempotency_key,
            attempt,
            max_attempts,
            payload,
            payload_size,
            payload_external,
            content_type,
            headers,
            pressure_level,
            queue_depth,
            queue_capacity,
            trace_context,
            replay_status,
            replay_attempts,
            last_attempt_at,
            last_outcome,
            last_error,
            lease_expires_at,
            created_at,
            updated_at,
        ) = row[: len(_COLUMNS)]
        body = _optional_blob(payload, "payload")
        if _integer(payload_external, "payload_external"):
            if loaded:
                body = _optional_blob(row[len(_COLUMNS)], "payloads.data")
                if body is None:
                    raise _Undecodable("its payload is missing from the payloads table")
            else:
                body = None
        return DeadLetter(
            id=_text(id_, "id"),
            key=_text(key, "key"),
            source=_enum(Source, source, "source"),
            reason_class=_text(reason_class, "reason_class"),
            reason=_text(reason, "reason"),
            category=_enum(Category, category, "category"),
            correlation_id=_optional_text(correlation_id, "correlation_id"),
            idempotency_key=_optional_text(idempotency_key, "idempotency_key"),
            attempt=_integer(attempt, "attempt"),
            max_attempts=_integer(max_attempts, "max_attempts"),
            payload=body,
            payload_size=_integer(payload_size, "payload_size"),
            content_type=_text(content_type, "content_type"),
            headers=_pairs_from_json(headers, "headers"),
            diagnostics=Diagnostics(
                pressure_level=_optional_text(pressure_level, "pressure_level"),
                queue_depth=_optional_integer(queue_depth, "queue_depth"),
                queue_capacity=_optional_integer(queue_capacity, "queue_capacity"),
            ),
            trace_context=_pairs_from_json(trace_context, "trace_context"),
            status=_enum(Status, status, "status"),
            replay=ReplayState(
                status=_enum(ReplayStatus, replay_status, "replay_status"),
                attempts=_integer(replay_attempts, "replay_attempts"),
                last_attempt_at=_optional_real(last_attempt_at, "replay_last_attempt_at"),
                last_outcome=None
                if last_outcome is None
                else _enum(ReplayOutcome, last_outcome, "replay_last_outcome"),
                last_error=_optional_text(last_error, "replay_last_error"),
                lease_expires_at=_optional_real(lease_expires_at, "lease_expires_at"),
            ),
            created_at=_real(created_at, "created_at"),
            updated_at=_real(updated_at, "updated_at"),
        )
    except _Undecodable as exc:
        raise CorruptRecord(path, record_id, str(exc)) from None
    except InvalidDeadLetter as exc:  # the record's own validation
        raise CorruptRecord(path, record_id, f"{exc.field} {exc.problem}") from None
    except (ValueError, TypeError) as exc:  # pragma: no cover - the record raises the above
        raise CorruptRecord(path, record_id, f"{type(exc).__name__}: {exc}") from None


def _decode_ledger(row: Sequence[object], path: str) -> LedgerEntry:
    key = row[0]
    try:
        return LedgerEntry(
            key=_text(key, "ledger.key"),
            state=_enum(LedgerState, row[1], "ledger.state"),
            record_id=_text(row[2], "ledger.record_id"),
            expires_at=_optional_real(row[3], "ledger.expires_at"),
            updated_at=_real(row[4], "ledger.updated_at"),
        )
    except _Undecodable as exc:
        raise DeadLetterStoreError(
            path, f"the ledger entry for idempotency key {key!r} is corrupt ({exc})"
        ) from None


# -- queries ----------------------------------------------------------------------------


def _where(where: DeadLetterFilter) -> tuple[list[str], list[object]]:
    """Return SQL conditions (to AND together) and their parameters for *where*."""
    clauses: list[str] = []
    params: list[object] = []
    for column, value in (
        ("status", where.status),
        ("key", where.key),
        ("source", where.source),
        ("reason_class", where.reason_class),
        ("replay_status", where.replay_status),
    ):
        if value is not None:
            clauses.append(f"{column} = ?")
            params.append(str(value))
    if where.since is not None:
        clauses.append("created_at >= ?")
        params.append(where.since)
    if where.until is not None:
        clauses.append("created_at < ?")
        params.append(where.until)
    if where.ids is not None:
        if not where.ids:
            clauses.append("0")
        elif len(where.ids) <= _MAX_BOUND_IDS:
            clauses.append(f"id IN ({', '.join('?' * len(where.ids))})")
            params.extend(where.ids)
        else:
            clauses.append("id IN (SELECT value FROM json_each(?))")
            params.append(json.dumps(list(where.ids)))
    return clauses, params


def _joined(clauses: Sequence[str]) -> str:
    return " AND ".join(clauses) if clauses else "1"


def list_query(
    where: DeadLetterFilter, *, limit: int, cursor: str | None
) -> tuple[str, list[object]]:
    """Return the SQL and parameters of one page of :meth:`SQLiteDeadLetterStore.list`.

    It selects ``limit + 1`` rows, newest first, after *cursor*, and never touches
    the ``payloads`` table.
    """
    clauses, params = _where(where)
    if cursor is not None:
        clauses.append("id < ?")
        params.append(cursor)
    params.append(limit + 1)
    sql = (
        f"SELECT {_SELECT} FROM dead_letters AS d WHERE {_joined(clauses)} ORDER BY id DESC LIMIT ?"
    )
    return sql, params


_GET_QUERY: Final = (
    f"SELECT {_SELECT}, p.data FROM dead_letters AS d "
    "LEFT JOIN payloads AS p ON p.id = d.id WHERE d.id = ?"
)
RECLAIM_QUERY: Final = (
    f"SELECT {_SELECT}, p.data FROM dead_letters AS d LEFT JOIN payloads AS p ON p.id = d.id "
    "WHERE d.replay_status = 'running' AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= ?)"
)
_IN_DOUBT_QUERY: Final = (
    f"SELECT {_SELECT} FROM dead_letters AS d "
    "WHERE d.replay_status IN ('in_doubt', 'running') AND d.id != ?"
)
"""The in-doubt and running records but one (few, indexed): resolving a key settles those
of them that carry it (:func:`~otpy.deadletter.resolve_alongside`)."""
_STATISTICS: Final = """
    SELECT 'status', status, count(*) FROM dead_letters GROUP BY status
    UNION ALL SELECT 'source', source, count(*) FROM dead_letters GROUP BY source
    UNION ALL SELECT 'reason_class', reason_class, count(*) FROM dead_letters GROUP BY reason_class
    UNION ALL SELECT 'replay_status', replay_status, count(*) FROM dead_letters GROUP BY replay_status
    UNION ALL SELECT 'key', key, n FROM (
        SELECT key, count(*) AS n FROM dead_letters GROUP BY key ORDER BY n DESC, key LIMIT 20
    )
    UNION ALL SELECT 'counter', name, value FROM counters
"""

# 'dead_letter:<id>' (12 characters, then the id) is DeadLetter.replay_key for a record
# without an idempotency key: that record still uses the entry.
PRUNE_LEDGER: Final = """
    DELETE FROM ledger WHERE key IN (
        SELECT l.key FROM ledger AS l
        WHERE l.updated_at < ?
            AND NOT EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.id = l.record_id)
            AND NOT EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.idempotency_key = l.key)
            AND NOT (
                substr(l.key, 1, 12) = 'dead_letter:'
                AND EXISTS (SELECT 1 FROM dead_letters AS d WHERE d.id = substr(l.key, 13))
            )
        LIMIT ?
    )
"""
"""Delete (a chunk of) the ledger entries :func:`~otpy.deadletter.ledger_prunable` allows.

Parameters: the cutoff (``now - ledger_max_age``) and the chunk size. It reads only
the ledger entries older than the cutoff (index ``ledger_updated_at``, schema
version 2); each costs three lookups in ``dead_letters``: by primary key
(its ``record_id``), by the ``dead_letters_idempotency_key`` index (its key), and by
primary key again for a key ``dead_letter:<id>``. It never scans ``dead_letters``.
"""

# -- errors -----------------------------------------------------------------------------


def _store_error(exc: sqlite3.Error, path: str, busy_timeout: float) -> DeadLetterStoreError:
    """Translate a sqlite3 error into the store's error tree."""
    code = getattr(exc, "sqlite_errorcode", None)
    primary = code & 0xFF if isinstance(code, int) else None
    message = str(exc)
    if primary in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED) or (
        primary is None and "locked" in message
    ):
        return StoreLocked(path, busy_timeout)
    if primary == sqlite3.SQLITE_FULL or (primary is None and "is full" in message):
        return StoreFull(path)
    if primary == sqlite3.SQLITE_NOTADB or (primary is None and "not a database" in message):
        return NotAnOtpyStore(path, "sqlite says the file is not a database")
    if primary == sqlite3.SQLITE_CORRUPT:
        return DeadLetterStoreError(
            path,
            f"the database file is damaged ({message}); stop the node and recover it with "
            "'sqlite3 FILE .recover'",
        )
    if primary == sqlite3.SQLITE_CANTOPEN:
        return DeadLetterStoreError(
            path,
            f"cannot open the file ({message}); check that its directory exists and is writable",
        )
    if primary == sqlite3.SQLITE_READONLY:
        return DeadLetterStoreError(
            path,
            f"{_not_writable(path, code if isinstance(code, int) else None)} ({message}); the node needs write access to it",
        )
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    return DeadLetterStoreError(path, f"sqlite failed with {name}: {message}")


def _not_writable(path: str, code: int | None) -> str:
    """Say why SQLite could not write *path*: its directory, or the file itself."""
    directory = os.path.dirname(os.path.abspath(path))
    if code == _SQLITE_READONLY_DIRECTORY or not os.access(directory, os.W_OK):
        name = os.path.basename(path)
        return (
            f"its directory {directory} is not writable (SQLite creates {name}-wal and "
            f"{name}-shm next to the file)"
        )
    if not os.access(path, os.W_OK):
        return "the file is read-only"
    return "the file cannot be written"


async def _older_than(
    _db: aiosqlite.Connection, *, status: Status, cutoff: float
) -> tuple[str, tuple[object, ...]]:
    """Select (a chunk of) the *status* records created before *cutoff*, not running."""
    # `+status`: walk the created_at index (few rows are old), not the status index.
    sql = f"SELECT id FROM dead_letters WHERE +status = ? AND {_NOT_RUNNING} AND created_at < ?"
    return f"{sql} LIMIT ?", (status.value, cutoff, SWEEP_CHUNK)


async def _beyond(
    db: aiosqlite.Connection, *, status: Status, keep: int
) -> tuple[str, tuple[object, ...]]:
    """Select (a chunk of) the oldest *status* records beyond the newest *keep*, not running."""
    # Two index-only counts, rather than a lookup of every row's replay status.
    kept = await _scalar(
        db,
        "SELECT (SELECT count(*) FROM dead_letters WHERE status = ?) - "
        "(SELECT count(*) FROM dead_letters WHERE status = ? AND replay_status = 'running')",
        (status.value, status.value),
    )
    assert isinstance(kept, int)
    sql = f"SELECT id FROM dead_letters WHERE status = ? AND {_NOT_RUNNING} ORDER BY id LIMIT ?"
    return sql, (status.value, min(max(kept - keep, 0), SWEEP_CHUNK))


async def _scalar(db: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> object:
    rows = list(await db.execute_fetchall(sql, params))
    return rows[0][0] if rows else None


async def _check_header(db: aiosqlite.Connection, path: str) -> int:
    """Return the file's schema version (0 when it is new), or refuse it without writing."""
    application_id = await _scalar(db, "PRAGMA application_id")
    version = await _scalar(db, "PRAGMA user_version")
    assert isinstance(application_id, int)
    assert isinstance(version, int)
    if application_id == 0:
        tables = await _scalar(db, "SELECT count(*) FROM sqlite_master")
        if tables:
            raise NotAnOtpyStore(path, "it is an SQLite database of another application")
        return 0
    if application_id != APPLICATION_ID:
        raise NotAnOtpyStore(
            path, f"its SQLite application_id is {application_id:#010x}, not {APPLICATION_ID:#010x}"
        )
    if version > len(MIGRATIONS):
        raise StoreVersionTooNew(path, version, len(MIGRATIONS))
    return version


async def _check_schema(db: aiosqlite.Connection, path: str) -> None:
    """Refuse, without writing, a store missing a table or column in ``REQUIRED_SCHEMA``."""
    rows = await db.execute_fetchall(
        "SELECT m.name, c.name FROM sqlite_master AS m, pragma_table_info(m.name) AS c "
        "WHERE m.type = 'table'"
    )
    columns = {(str(table), str(column)) for table, column in rows}
    tables = {table for table, _ in columns}
    missing: list[str] = []
    for table, needed in REQUIRED_SCHEMA.items():
        if table not in tables:
            missing.append(f"table {table}")
        else:
            missing += [f"column {table}.{c}" for c in needed if (table, c) not in columns]
    if missing:
        raise StoreSchemaDamaged(path, tuple(missing))


def _text_or_surrogates(data: bytes) -> str:
    """Decode a TEXT value; invalid UTF-8 becomes lone surrogates instead of failing the query.

    No record accepts a lone surrogate, so such a row is reported as corrupt by id
    and the rows around it are still read.
    """
    return data.decode("utf-8", "surrogateescape")


def _check_readable(path: str, version: int) -> None:
    """Refuse, for a read-only open, a file with no otpy schema or an older one."""
    if version == 0:
        detail = "the file is empty" if os.path.getsize(path) == 0 else "it has no otpy schema"
        raise NotAnOtpyStore(path, detail)
    if version < len(MIGRATIONS):
        raise DeadLetterStoreError(
            path,
            f"schema version {version} is older than this otpy's ({len(MIGRATIONS)}) and a "
            "read-only open does not migrate it: start the node on it, or run a command that "
            "writes ('otpy dlq archive', 'otpy dlq purge'), to migrate it",
        )


async def _migrate(db: aiosqlite.Connection, path: str) -> None:
    """Bring the schema to ``len(MIGRATIONS)``, one transaction per step."""
    while True:
        try:
            await db.execute("BEGIN IMMEDIATE")
            version = await _check_header(db, path)  # again, under the write lock
            if version == len(MIGRATIONS):
                await db.execute("COMMIT")
                return
            for statement in MIGRATIONS[version]:
                await db.execute(statement)
            await db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
            await db.execute(f"PRAGMA user_version = {version + 1:d}")
            await db.execute("COMMIT")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await _rollback(db)
            raise
        logger.info("dead-letter store %s: schema migrated to version %d", path, version + 1)


def _probe(location: str, busy_timeout: float, uri: bool) -> None:
    sqlite3.connect(location, timeout=busy_timeout, uri=uri).close()


def read_only_uri(path: str) -> str:
    """Return the SQLite URI that reads *path* without writing or creating any file.

    ``mode=ro`` alone is not enough for a store in WAL mode: SQLite creates the
    ``-wal`` and ``-shm`` files next to it when they are missing (and leaves them
    there, owned by whoever ran the read). Without a ``-wal`` (or ``-journal``) file
    every commit is in the database file itself and nobody has it open, so it is
    read as ``immutable=1``: no locks, no files. With one, the log holds commits the
    file lacks and a node may be writing: it is read with ``mode=ro`` through the
    existing log, as any reader would.
    """
    if not os.path.isfile(path):
        raise DeadLetterStoreError(path, "no such file; a read-only open never creates a store")
    absolute = os.path.abspath(path)
    uri = f"file:{urllib.parse.quote(absolute)}?mode=ro"
    if any(os.path.exists(absolute + suffix) for suffix in ("-wal", "-journal")):
        return uri
    return uri + "&immutable=1"


async def _rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.rollback()
    except sqlite3.Error as exc:  # pragma: no cover - needs an I/O error during rollback
        logger.debug("rollback failed: %s", exc)  # the original error is what matters


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

    def __init__(
        self,
        db: aiosqlite.Connection,
        path: str,
        *,
        inline_limit: int,
        busy_timeout: float,
        clock: Callable[[], float],
        read_only: bool = False,
    ) -> None:
        """Wrap an open, migrated connection; use :meth:`open` instead."""
        self.path = path
        self.read_only = read_only
        self.inline_limit = inline_limit
        self.busy_timeout = busy_timeout
        self.clock = clock
        self._db: aiosqlite.Connection | None = db
        self._lock = anyio.Lock()

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
            await anyio.to_thread.run_sync(_probe, target, busy_timeout, read_only)
            db = await aiosqlite.connect(
                target, isolation_level=None, timeout=busy_timeout, uri=read_only
            )
        except sqlite3.Error as exc:
            raise _store_error(exc, location, busy_timeout) from exc
        try:
            await db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000):d}")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute(f"PRAGMA synchronous = {mode}")
            db.text_factory = _text_or_surrogates
            version = await _check_header(db, location)  # refuse before writing anything
            if read_only:
                _check_readable(location, version)
            if version:
                await _check_schema(db, location)
            if read_only:
                return cls(
                    db,
                    location,
                    inline_limit=inline_limit,
                    busy_timeout=busy_timeout,
                    clock=clock,
                    read_only=True,
                )
            journal = await _scalar(db, "PRAGMA journal_mode = WAL")
            in_wal = journal == "wal" or location == ":memory:"
            if not in_wal:  # pragma: no cover - needs a file system without shared memory
                logger.warning(
                    "dead-letter store %s: journal_mode is %s, not wal (is it on a network "
                    "file system?); readers will block the writer",
                    location,
                    journal,
                )
            await _migrate(db, location)
            if max_pages is not None:
                await db.execute(f"PRAGMA max_page_count = {max_pages:d}")
        except BaseException as exc:
            with anyio.CancelScope(shield=True):
                await db.close()
            if isinstance(exc, sqlite3.Error):
                raise _store_error(exc, location, busy_timeout) from exc
            raise
        return cls(db, location, inline_limit=inline_limit, busy_timeout=busy_timeout, clock=clock)

    async def aclose(self) -> None:
        """Close the store, after the operation in progress; further calls raise. Idempotent."""
        db, self._db = self._db, None
        with anyio.CancelScope(shield=True):
            async with self._lock:
                if db is not None:
                    await db.close()
        await anyio.lowlevel.checkpoint()

    # -- plumbing ---------------------------------------------------------------------

    def _error(self, exc: sqlite3.Error) -> DeadLetterStoreError:
        return _store_error(exc, self.path, self.busy_timeout)

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

    async def _write(self, body: Callable[[aiosqlite.Connection], Awaitable[_T]]) -> _T:
        """Run *body* in one ``BEGIN IMMEDIATE`` transaction; roll back on any exception."""
        async with self._lock:
            db = self._connection()
            if self.read_only:
                raise DeadLetterStoreError(
                    self.path, "opened read-only; open it without read_only=True to change it"
                )
            try:
                # Inside the try: cancelled while waiting for the lock, BEGIN still runs
                # on aiosqlite's thread, and the rollback queued behind it ends it.
                await db.execute("BEGIN IMMEDIATE")
                result = await body(db)
                await db.execute("COMMIT")
            except BaseException as exc:
                with anyio.CancelScope(shield=True):
                    await _rollback(db)
                if isinstance(exc, sqlite3.Error):
                    raise self._error(exc) from exc
                raise
            return result

    async def _fetch(self, db: aiosqlite.Connection, record_id: str) -> DeadLetter:
        """Return the record with its payload loaded."""
        rows = list(await db.execute_fetchall(_GET_QUERY, (record_id,)))
        if not rows:
            raise DeadLetterNotFound(record_id)
        return _decode(rows[0], self.path, loaded=True)

    async def _check_skipped(
        self, db: aiosqlite.Connection, rows: Sequence[tuple[object, ...]]
    ) -> None:
        """Raise unless every row an insert skipped is stored, as the same capture."""
        ids = [row[0] for row in rows]
        stored = {
            found[0]: tuple(found)
            for found in await db.execute_fetchall(_STORED_CAPTURES, (json.dumps(ids),))
        }
        for row in rows:
            have = stored.get(row[0])
            if have is None:  # pragma: no cover - ON CONFLICT skips stored ids only
                raise DeadLetterStoreError(
                    self.path,
                    f"dead letter {row[0]} was not stored by its insert, so the batch was "
                    "refused and nothing in it was stored",
                )
            if have != tuple(row[i] for i in _CAPTURE_COLUMNS):
                raise id_conflict(self.path, str(row[0]))

    async def _ledger(self, db: aiosqlite.Connection, key: str) -> LedgerEntry | None:
        rows = list(
            await db.execute_fetchall(
                "SELECT key, state, record_id, expires_at, updated_at FROM ledger WHERE key = ?",
                (key,),
            )
        )
        return _decode_ledger(rows[0], self.path) if rows else None

    async def _put_ledger(
        self,
        db: aiosqlite.Connection,
        key: str,
        state: LedgerState,
        record_id: str,
        expires_at: float | None,
        now: float,
    ) -> None:
        await db.execute(_UPSERT_LEDGER, (key, state.value, record_id, expires_at, now))

    async def _drop_pending(self, db: aiosqlite.Connection, key: str, record_id: str) -> None:
        await db.execute(
            "DELETE FROM ledger WHERE key = ? AND state = ? AND record_id = ?",
            (key, LedgerState.PENDING.value, record_id),
        )

    # -- the protocol -----------------------------------------------------------------

    async def add_many(self, records: Sequence[DeadLetter]) -> int:
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
        """
        rows: list[tuple[object, ...]] = []
        apart: list[tuple[bytes, str]] = []
        # In id order: ids rise with time, so sorted rows append to the indexes'
        # right-hand pages instead of touching pages all over them.
        for record in sorted(records, key=_record_id):
            if record.payload is None and record.payload_size:
                raise ValueError(
                    f"dead letter {record.id}: cannot store a record without its payload"
                )
            row, payload = _encode(record, self.inline_limit)
            rows.append(row)
            if payload is not None:
                apart.append((payload, record.id))

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.executemany(_INSERT, rows)
            new = cursor.rowcount
            if new != len(rows):
                await self._check_skipped(db, rows)
            if apart:
                await db.executemany(_INSERT_PAYLOAD, apart)
            if new:
                await db.execute(_BUMP, ("captured", new))
            return new

        if not rows:
            async with self._lock:
                self._connection()
            return 0
        return await self._write(body)

    async def get(self, record_id: str) -> DeadLetter:
        """Return the record with its payload loaded.

        Raises:
            DeadLetterNotFound: no such id.
            CorruptRecord: the row cannot be decoded.
        """
        return await self._read(lambda db: self._fetch(db, record_id))

    async def list(
        self, where: DeadLetterFilter = ALL, *, limit: int = 50, cursor: str | None = None
    ) -> Page:
        """Return one page of matching records, newest first (D3); large payloads are not read.

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
                    records.append(_decode(row, self.path, loaded=False))
                except CorruptRecord as exc:
                    corrupt.append(exc)
            more = len(rows) > limit
            return Page(tuple(records), str(rows[limit - 1][0]) if more else None, tuple(corrupt))

        return await self._read(body)

    async def count(self, where: DeadLetterFilter = ALL) -> int:
        """Return how many records match."""
        clauses, params = _where(where)
        sql = f"SELECT count(*) FROM dead_letters WHERE {_joined(clauses)}"

        async def body(db: aiosqlite.Connection) -> int:
            value = await _scalar(db, sql, params)
            assert isinstance(value, int)
            return value

        return await self._read(body)

    async def archive(self, where: DeadLetterFilter) -> int:
        """Archive matching active records that are not running; return how many (D4)."""
        clauses, params = _where(where)
        clauses += ["status = 'active'", _NOT_RUNNING]
        sql = (
            "UPDATE dead_letters SET status = 'archived', updated_at = max(?, created_at) "
            f"WHERE {_joined(clauses)}"
        )

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(sql, [self.clock(), *params])
            return cursor.rowcount

        return await self._write(body)

    async def purge(self, where: DeadLetterFilter) -> int:
        """Delete matching records that are not running, with their payloads; return how many (D5).

        It filters in SQL only, so it also removes rows that cannot be decoded.
        """
        clauses, params = _where(where)
        clauses.append(_NOT_RUNNING)
        sql = f"DELETE FROM dead_letters WHERE {_joined(clauses)}"

        async def body(db: aiosqlite.Connection) -> int:
            cursor = await db.execute(sql, params)
            return cursor.rowcount

        return await self._write(body)

    async def statistics(self) -> StoreStatistics:
        """Return counts by status, source, reason class, key and replay status; evictions."""
        rows = await self._read(lambda db: db.execute_fetchall(_STATISTICS))
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
        """Evict by age, then by count (oldest first), per status; never running records (D5).

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
        victims: Callable[[aiosqlite.Connection], Awaitable[tuple[str, tuple[object, ...]]]],
    ) -> int:
        """Delete what *victims* selects, a chunk per transaction, counting it; return how many."""

        async def delete(db: aiosqlite.Connection) -> aiosqlite.Cursor:
            select, params = await victims(db)
            return await db.execute(f"DELETE FROM dead_letters WHERE id IN ({select})", params)

        return await self._delete_in_chunks(f"evicted:{status.value}:{rule}", delete)

    async def _prune_ledger(self, cutoff: float) -> int:
        """Delete ledger entries older than *cutoff* that no record can use; return how many."""

        async def delete(db: aiosqlite.Connection) -> aiosqlite.Cursor:
            return await db.execute(PRUNE_LEDGER, (cutoff, SWEEP_CHUNK))

        return await self._delete_in_chunks(f"evicted:{LEDGER_EVICTED}", delete)

    async def _delete_in_chunks(
        self,
        counter: str,
        delete: Callable[[aiosqlite.Connection], Awaitable[aiosqlite.Cursor]],
    ) -> int:
        """Run *delete* (at most ``SWEEP_CHUNK`` rows) a transaction at a time until it
        deletes fewer, adding each chunk to the persisted *counter*; return the total.

        Short transactions: a large first sweep never holds the write lock (and so the
        writer) for long.
        """

        async def chunk(db: aiosqlite.Connection) -> int:
            cursor = await delete(db)
            if cursor.rowcount:
                await db.execute(_BUMP, (counter, cursor.rowcount))
            return cursor.rowcount

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

        async def body(db: aiosqlite.Connection) -> Decision:
            record = await self._fetch(db, record_id)
            ledger = await self._ledger(db, record.replay_key)
            decision = decide_replay(record, ledger, now=self.clock(), lease=lease, force=force)
            if decision.action is not Action.REFUSE:
                await db.execute(_UPDATE_STATE, _state_row(decision.record))
            return decision

        return await self._write(body)

    async def mark_started(self, record: DeadLetter, *, force: bool = False) -> bool:
        """Write the ledger entry ``pending`` for the record's replay key just before its side effect.

        Returns ``False`` (and writes nothing) if the key is pending under another
        record's live lease or, unless *force* is set, committed or pending for
        another record at all (D8). One transaction: of two records racing with one
        key, in this process or another, only one passes.
        """
        key = record.replay_key

        async def body(db: aiosqlite.Connection) -> bool:
            now = self.clock()
            entry = await self._ledger(db, key)
            if entry is not None:
                if ledger_held_by_other(entry, record.id, now=now):
                    return False
                if not force and (
                    entry.state is LedgerState.COMMITTED or entry.record_id != record.id
                ):
                    return False
            await self._put_ledger(
                db, key, LedgerState.PENDING, record.id, record.replay.lease_expires_at, now
            )
            return True

        return await self._write(body)

    async def finish(
        self, record_id: str, outcome: ReplayOutcome, *, error: str | None = None
    ) -> DeadLetter:
        """Apply :func:`~otpy.deadletter.finish_replay` and the ledger change in one transaction.

        Raises:
            DeadLetterNotFound: no such id.
            ValueError: *outcome* is not one a replay can finish with.
        """

        async def body(db: aiosqlite.Connection) -> DeadLetter:
            now = self.clock()
            record = finish_replay(await self._fetch(db, record_id), outcome, error=error, now=now)
            if outcome is ReplayOutcome.REPLAYED:
                await self._put_ledger(
                    db, record.replay_key, LedgerState.COMMITTED, record_id, None, now
                )
            elif outcome is ReplayOutcome.FAILED:
                await self._drop_pending(db, record.replay_key, record_id)
            else:  # in doubt: the attempt is over, so the key is in doubt now
                await db.execute(
                    "UPDATE ledger SET expires_at = ?, updated_at = ? "
                    "WHERE key = ? AND state = ? AND record_id = ?",
                    (now, now, record.replay_key, LedgerState.PENDING.value, record_id),
                )
            await db.execute(_UPDATE_STATE, _state_row(record))
            return record

        return await self._write(body)

    async def reclaim_expired(self) -> builtins.list[Reclaimed]:
        """Apply :func:`~otpy.deadletter.reclaim` to every running record whose lease expired (D9).

        A row that cannot be decoded is logged (by id) and skipped, so it never
        blocks the others.
        """

        async def body(db: aiosqlite.Connection) -> builtins.list[Reclaimed]:
            now = self.clock()
            reclaimed: builtins.list[Reclaimed] = []
            for row in await db.execute_fetchall(RECLAIM_QUERY, (now,)):
                try:
                    record = _decode(row, self.path, loaded=True)
                except CorruptRecord as exc:
                    logger.warning("reclaim skipped a record: %s", exc)
                    continue
                result = reclaim(record, await self._ledger(db, record.replay_key), now=now)
                if result is None:  # pragma: no cover - the query selects expired leases only
                    continue
                await db.execute(_UPDATE_STATE, _state_row(result.record))
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

        async def body(db: aiosqlite.Connection) -> DeadLetter:
            now = self.clock()
            named = await self._fetch(db, record_id)
            key = named.replay_key
            entry = await self._ledger(db, key)
            record = resolve(named, succeeded=succeeded, now=now, ledger=entry)
            if succeeded:
                await self._put_ledger(db, key, LedgerState.COMMITTED, record_id, None, now)
            else:
                await db.execute(
                    "DELETE FROM ledger WHERE key = ? AND state = ?",
                    (key, LedgerState.PENDING.value),
                )
            for row in await db.execute_fetchall(_IN_DOUBT_QUERY, (record_id,)):
                try:
                    other = _decode(row, self.path, loaded=False)
                except CorruptRecord as exc:
                    logger.warning("resolve skipped a record: %s", exc)
                    continue
                settled = (
                    resolve_alongside(other, succeeded=succeeded, now=now)
                    if other.replay_key == key
                    else None
                )
                if settled is not None:
                    await db.execute(_UPDATE_STATE, _state_row(settled))
            await db.execute(_UPDATE_STATE, _state_row(record))
            return record

        return await self._write(body)

    async def ledger(self, key: str) -> LedgerEntry | None:
        """Return the ledger entry for an idempotency key."""
        return await self._read(lambda db: self._ledger(db, key))


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
    )
    try:
        yield store
    finally:
        await store.aclose()
