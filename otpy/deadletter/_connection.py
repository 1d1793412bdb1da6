"""The SQLite connection under the store: read-only opening, errors, small helpers.

:func:`store_error` translates what sqlite3 raises into the store's error tree, so
every caller gets a typed :exc:`~otpy.DeadLetterStoreError` that says what to do.

aiosqlite only works on asyncio.
"""

from __future__ import annotations

import os
import sqlite3
import urllib.parse
from typing import TYPE_CHECKING, Final

from .._exceptions import DeadLetterStoreError, NotAnOtpyStore, StoreFull, StoreLocked
from .._redact import get_logger

if TYPE_CHECKING:
    from collections.abc import Sequence

    import aiosqlite

__all__ = [
    "probe",
    "read_only_uri",
    "rollback",
    "scalar",
    "store_error",
    "text_or_surrogates",
]

logger = get_logger("otpy.deadletter")

_SQLITE_READONLY_DIRECTORY: Final = 1544  # SQLITE_READONLY | (6 << 8), an extended code

# -- errors -----------------------------------------------------------------------------


def store_error(exc: sqlite3.Error, path: str, busy_timeout: float) -> DeadLetterStoreError:
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


# -- opening ----------------------------------------------------------------------------


def probe(location: str, busy_timeout: float, uri: bool) -> None:
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


def text_or_surrogates(data: bytes) -> str:
    """Decode a TEXT value; invalid UTF-8 becomes lone surrogates instead of failing the query.

    No record accepts a lone surrogate, so such a row is reported as corrupt by id
    and the rows around it are still read.
    """
    return data.decode("utf-8", "surrogateescape")


# -- statements -------------------------------------------------------------------------


async def scalar(db: aiosqlite.Connection, sql: str, params: Sequence[object] = ()) -> object:
    rows = list(await db.execute_fetchall(sql, params))
    return rows[0][0] if rows else None


async def rollback(db: aiosqlite.Connection) -> None:
    try:
        await db.rollback()
    except sqlite3.Error as exc:  # pragma: no cover - needs an I/O error during rollback
        logger.debug("rollback failed: %s", exc)  # the original error is what matters
