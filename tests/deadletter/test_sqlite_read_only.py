"""The SQLite store opened ``read_only=True``: it reads, and never creates, migrates or writes.

The tests run as root, where permission bits stop nothing, so "read-only" is proved
by the file and its directory staying byte for byte (and mtime) as they were, with
no ``-wal``, ``-shm`` or ``-journal`` file appearing; and by the URI the open uses.
"""

from __future__ import annotations

import os
import sqlite3
from typing import TYPE_CHECKING

import pytest

from otpy._exceptions import DeadLetterStoreError, NotAnOtpyStore, StoreVersionTooNew
from otpy.deadletter import DeadLetter, Source, _connection, _schema, open_store

if TYPE_CHECKING:
    from pathlib import Path

T0 = 1_700_000_000.0


def make(key: str = "dest") -> DeadLetter:
    """A captured record at T0."""
    return DeadLetter.capture(
        key=key,
        source=Source.OUTBOUND,
        reason_class="httpx.ConnectTimeout",
        reason="timed out",
        payload=b"hello",
        trace_context={},
        now=T0,
    )


@pytest.fixture
def anyio_backend() -> str:
    """aiosqlite resolves asyncio futures: these tests run on asyncio only."""
    return "asyncio"


@pytest.fixture
def path(tmp_path: Path) -> Path:
    """Where the store file goes, alone in its directory."""
    directory = tmp_path / "store"
    directory.mkdir()
    return directory / "dead.db"


def state(directory: Path, *, create: Path | None = None) -> dict[str, tuple[bytes, int, int]]:
    """Every file in *directory*: its bytes, mtime and mode; and the directory's own.

    *create*, if given, is created empty first.
    """
    if create is not None:
        create.touch()
    files = {
        p.name: (p.read_bytes(), p.stat().st_mtime_ns, p.stat().st_mode)
        for p in directory.iterdir()
    }
    files["."] = (b"", directory.stat().st_mtime_ns, directory.stat().st_mode)
    return files


def chmod(path: Path, *, file: int, directory: int) -> None:
    """Set the modes of the store file and of its directory."""
    path.chmod(file)
    path.parent.chmod(directory)


async def stored(path: Path, *records: DeadLetter) -> None:
    """Write *records* to a store at *path* and close it (its -wal and -shm go with it)."""
    async with open_store(path, synchronous="OFF") as store:
        await store.add_many(records)


async def open_read_only(path: Path) -> None:
    """Open the store at *path* read-only, and close it."""
    async with open_store(path, read_only=True):
        pass


async def test_reads_a_closed_store_without_touching_it(path: Path) -> None:
    """A closed store (chmod 0444 in a 0555 directory) is read; nothing next to it changes."""
    record = make()
    await stored(path, record)
    chmod(path, file=0o444, directory=0o555)
    try:
        before = state(path.parent)
        async with open_store(path, read_only=True) as store:
            assert (await store.list()).records == (record,)
            assert await store.get(record.id) == record
            assert (await store.statistics()).total == 1
            assert state(path.parent) == before
        assert state(path.parent) == before
    finally:
        chmod(path, file=0o644, directory=0o755)


async def test_reads_through_the_log_of_a_store_a_node_has_open(path: Path) -> None:
    """With a writer's -wal beside the file, its latest commits are read and no file is added."""
    first, second = make("a"), make("b")
    await stored(path, first)
    async with open_store(path, synchronous="OFF") as writer:
        await writer.add_many([second])
        names = sorted(p.name for p in path.parent.iterdir())
        assert names == ["dead.db", "dead.db-shm", "dead.db-wal"]
        async with open_store(path, read_only=True) as reader:
            assert {r.id for r in (await reader.list()).records} == {first.id, second.id}
        assert sorted(p.name for p in path.parent.iterdir()) == names


def test_the_uri_is_immutable_only_without_a_log(path: Path) -> None:
    """mode=ro always; immutable=1 (no locks, no -shm) only when no -wal or -journal exists."""
    path.write_bytes(b"")
    absolute = os.path.abspath(path)
    assert _connection.read_only_uri(str(path)) == f"file:{absolute}?mode=ro&immutable=1"
    (path.parent / "dead.db-shm").write_bytes(b"")
    assert _connection.read_only_uri(str(path)) == f"file:{absolute}?mode=ro&immutable=1"
    for log in ("dead.db-wal", "dead.db-journal"):
        (path.parent / log).write_bytes(b"")
        assert _connection.read_only_uri(str(path)) == f"file:{absolute}?mode=ro"
        (path.parent / log).unlink()


def test_the_uri_escapes_what_sqlite_would_read_as_a_query(tmp_path: Path) -> None:
    """A '?' or '#' or '%' in the path is quoted, so the URI names that very file."""
    odd = tmp_path / "a?b#c%d e.db"
    odd.write_bytes(b"")
    uri = _connection.read_only_uri(str(odd))
    assert uri.endswith("/a%3Fb%23c%25d%20e.db?mode=ro&immutable=1")
    sqlite3.connect(uri, uri=True).close()


async def test_a_zero_byte_file_is_refused_and_stays_empty(path: Path) -> None:
    """An empty file is not a store: refused, and left at zero bytes."""
    before = state(path.parent, create=path)
    with pytest.raises(
        NotAnOtpyStore, match=r"not an otpy dead-letter store \(the file is empty\)"
    ):
        await open_read_only(path)
    assert state(path.parent) == before


async def test_an_sqlite_file_without_the_schema_is_refused(path: Path) -> None:
    """A database with no tables and no otpy mark is not a store either."""
    connection = sqlite3.connect(path)
    connection.execute("CREATE TABLE t (x)")
    connection.execute("DROP TABLE t")
    connection.close()
    with pytest.raises(NotAnOtpyStore, match=r"\(it has no otpy schema\)"):
        await open_read_only(path)


async def test_a_missing_file_is_refused_and_not_created(path: Path) -> None:
    """A read-only open of a path with no file says so and creates nothing."""
    with pytest.raises(DeadLetterStoreError, match=r"no such file; a read-only open never creates"):
        await open_read_only(path)
    assert sorted(path.parent.iterdir()) == []


async def test_an_older_schema_is_refused_unmigrated(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store of an older schema is not migrated by a read: the message says what migrates it."""
    await stored(path, make())
    v4 = ("ALTER TABLE dead_letters ADD COLUMN note TEXT",)
    monkeypatch.setattr(_schema, "MIGRATIONS", (*_schema.MIGRATIONS, v4))
    before = state(path.parent)
    with pytest.raises(
        DeadLetterStoreError,
        match=r"schema version 3 is older than this otpy's \(4\) and a read-only open does "
        r"not migrate it: start the node on it, or run a command that writes",
    ):
        await open_read_only(path)
    assert state(path.parent) == before


async def test_a_newer_schema_is_refused(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A store from a newer otpy is refused by a read too."""
    await stored(path, make())
    monkeypatch.setattr(_schema, "MIGRATIONS", _schema.MIGRATIONS[:1])
    with pytest.raises(StoreVersionTooNew):
        await open_read_only(path)


async def test_writes_through_a_read_only_store_raise(path: Path) -> None:
    """A store opened read-only refuses every write with a message, before SQLite is asked."""
    await stored(path)
    async with open_store(path, read_only=True) as store:
        assert store.read_only
        with pytest.raises(DeadLetterStoreError, match=r"opened read-only; open it without"):
            await store.add_many([make()])
        assert await store.count() == 0


def readonly_error() -> sqlite3.OperationalError:
    """The error SQLite raises when it cannot write."""
    exc = sqlite3.OperationalError("attempt to write a readonly database")
    exc.sqlite_errorcode = sqlite3.SQLITE_READONLY
    exc.sqlite_errorname = "SQLITE_READONLY"
    return exc


def test_a_read_only_directory_is_named_not_the_file(
    path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A writable file in a directory SQLite cannot write to: the message says the directory."""
    path.write_bytes(b"")
    directory = str(path.parent)
    monkeypatch.setattr(os, "access", lambda p, mode: os.fspath(p) != directory)
    error = _connection.store_error(readonly_error(), str(path), 5.0)
    assert f"its directory {directory} is not writable (SQLite creates dead.db-wal" in str(error)
    assert "the file is read-only" not in str(error)


def test_a_read_only_file_is_named(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A file without write permission, in a writable directory, is reported as read-only."""
    path.write_bytes(b"")
    monkeypatch.setattr(os, "access", lambda p, mode: os.fspath(p) != str(path))
    error = _connection.store_error(readonly_error(), str(path), 5.0)
    assert "the file is read-only (attempt to write a readonly database)" in str(error)


def test_sqlites_own_read_only_directory_code_is_believed(path: Path) -> None:
    """SQLITE_READONLY_DIRECTORY names the directory even where access() would say yes."""
    exc = readonly_error()
    exc.sqlite_errorcode = sqlite3.SQLITE_READONLY | (6 << 8)
    assert "is not writable" in str(_connection.store_error(exc, str(path), 5.0))
