"""The SQL the SQLite store runs, and the builders of its filtered queries.

The statements read and write the tables of ``_schema.py``; rows go through
``_codec.py``. Listing never reads the ``payloads`` table.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Final

from ._schema import COLUMNS

if TYPE_CHECKING:
    from collections.abc import Sequence

    from ._store import DeadLetterFilter

__all__ = [
    "BUMP",
    "CAPTURE_COLUMNS",
    "GET_QUERY",
    "INSERT",
    "INSERT_PAYLOAD",
    "IN_DOUBT_QUERY",
    "LEDGER_QUERY",
    "NOT_RUNNING",
    "PRUNE_LEDGER",
    "RECLAIM_QUERY",
    "STATISTICS_QUERY",
    "STORED_CAPTURES",
    "UPDATE_STATE",
    "UPSERT_LEDGER",
    "joined",
    "list_query",
    "where_clauses",
]

_MAX_BOUND_IDS = 500  # beyond this many ids, a filter binds them as one JSON array

_SELECT: Final = ", ".join(f"d.{c}" for c in COLUMNS)

# ON CONFLICT (id) DO NOTHING, not INSERT OR IGNORE: only a stored id is skipped
# (add_many then checks it is the same record); OR IGNORE would also skip, silently,
# a row that breaks NOT NULL.
INSERT: Final = (
    f"INSERT INTO dead_letters ({', '.join(COLUMNS)}) "
    f"VALUES ({', '.join('?' * len(COLUMNS))}) ON CONFLICT (id) DO NOTHING"
)
CAPTURE_COLUMNS: Final = tuple(
    i
    for i, column in enumerate(COLUMNS)
    if column not in {"payload", "payload_external", "status", "updated_at", "lease_expires_at"}
    and not column.startswith("replay_")
)
"""Indexes in ``COLUMNS`` of what a record has from its capture on (``CAPTURE_FIELDS``)."""
STORED_CAPTURES: Final = (
    f"SELECT {', '.join(COLUMNS[i] for i in CAPTURE_COLUMNS)} FROM dead_letters "
    "WHERE id IN (SELECT value FROM json_each(?))"
)
INSERT_PAYLOAD: Final = (
    "INSERT OR IGNORE INTO payloads (id, data) "
    "SELECT id, ? FROM dead_letters WHERE id = ? AND payload_external = 1"
)
UPDATE_STATE: Final = (
    "UPDATE dead_letters SET status = ?, replay_status = ?, replay_attempts = ?, "
    "replay_last_attempt_at = ?, replay_last_outcome = ?, replay_last_error = ?, "
    "lease_expires_at = ?, updated_at = ? WHERE id = ?"
)
LEDGER_QUERY: Final = (
    "SELECT key, state, record_id, expires_at, updated_at FROM ledger WHERE key = ?"
)
UPSERT_LEDGER: Final = (
    "INSERT INTO ledger (key, state, record_id, expires_at, updated_at) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET state = excluded.state, record_id = excluded.record_id, "
    "expires_at = excluded.expires_at, updated_at = excluded.updated_at"
)
BUMP: Final = (
    "INSERT INTO counters (name, value) VALUES (?, ?) "
    "ON CONFLICT (name) DO UPDATE SET value = value + excluded.value"
)
NOT_RUNNING: Final = "replay_status IS NOT 'running'"

# -- filtered queries -------------------------------------------------------------------


def where_clauses(where: DeadLetterFilter) -> tuple[list[str], list[object]]:
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


def joined(clauses: Sequence[str]) -> str:
    return " AND ".join(clauses) if clauses else "1"


def list_query(
    where: DeadLetterFilter, *, limit: int, cursor: str | None
) -> tuple[str, list[object]]:
    """Return the SQL and parameters of one page of :meth:`SQLiteDeadLetterStore.list`.

    It selects ``limit + 1`` rows, newest first, after *cursor*, and never touches
    the ``payloads`` table.
    """
    clauses, params = where_clauses(where)
    if cursor is not None:
        clauses.append("id < ?")
        params.append(cursor)
    params.append(limit + 1)
    sql = (
        f"SELECT {_SELECT} FROM dead_letters AS d WHERE {joined(clauses)} ORDER BY id DESC LIMIT ?"
    )
    return sql, params


GET_QUERY: Final = (
    f"SELECT {_SELECT}, p.data FROM dead_letters AS d "
    "LEFT JOIN payloads AS p ON p.id = d.id WHERE d.id = ?"
)
RECLAIM_QUERY: Final = (
    f"SELECT {_SELECT}, p.data FROM dead_letters AS d LEFT JOIN payloads AS p ON p.id = d.id "
    "WHERE d.replay_status = 'running' AND (d.lease_expires_at IS NULL OR d.lease_expires_at <= ?)"
)
IN_DOUBT_QUERY: Final = (
    f"SELECT {_SELECT} FROM dead_letters AS d "
    "WHERE d.replay_status IN ('in_doubt', 'running') AND d.id != ?"
)
"""The in-doubt and running records but one (few, indexed): resolving a key settles those
of them that carry it (:func:`~otpy.deadletter.resolve_alongside`)."""
STATISTICS_QUERY: Final = """
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
