"""An acknowledged accept survives kill -9: every id answered as new is pending after it (IN-1, IN-4)."""

from __future__ import annotations

import contextlib
import os
import selectors
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import anyio.to_thread
import pytest

from otpy.ingest import open_journal

CHILD = Path(__file__).with_name("_journal_kill9_child.py")
ROOT = Path(__file__).parents[2]
KILL_AFTER = (1, 100, 1000)
"""Acknowledgements before each run's SIGKILL: the first commit, early batches, a steady burst."""
PATIENCE = 30.0  # seconds to wait for the child's output before failing; never slept


def _read_lines(proc: subprocess.Popen[bytes], selector: selectors.BaseSelector) -> list[str]:
    """Return the output *proc* has written so far, waiting up to PATIENCE for some."""
    assert proc.stdout is not None
    if not selector.select(timeout=PATIENCE):
        raise AssertionError(f"the child printed nothing for {PATIENCE:g}s")
    chunk = os.read(proc.stdout.fileno(), 65536)
    if not chunk:
        raise AssertionError(f"the child exited early with {proc.wait()}")
    return chunk.decode().splitlines(keepends=True)


def run_then_kill(db: Path, stderr: Path, until: int) -> list[str]:
    """Run the child; SIGKILL it once it printed *until* lines.

    Returns every complete line it printed: those read before the kill and those
    still in the pipe after it (a line cut short by the kill is not one).
    """
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db)],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert proc.stdout is not None
    pending = ""
    lines: list[str] = []
    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + PATIENCE
            while len(lines) < until:
                assert time.monotonic() < deadline, f"only {len(lines)} lines in {PATIENCE:g}s"
                for piece in _read_lines(proc, selector):
                    pending += piece
                    if pending.endswith("\n"):
                        lines.append(pending.strip())
                        pending = ""
        assert proc.poll() is None, "the child stopped before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=PATIENCE) == -signal.SIGKILL
        rest = pending + proc.stdout.read().decode()
        lines.extend(rest.split("\n")[:-1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        proc.stdout.close()
    assert lines, stderr.read_text()
    return lines


def _integrity(db: Path) -> list[tuple[str]]:
    with contextlib.closing(sqlite3.connect(db)) as connection:
        result: list[tuple[str]] = connection.execute("PRAGMA integrity_check").fetchall()
    return result


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kill_after", KILL_AFTER)
async def test_every_acknowledged_accept_survives_kill_9(tmp_path: Path, kill_after: int) -> None:
    """SIGKILL during a burst of accepts loses no acknowledged entry and leaves an intact file."""
    db = tmp_path / "journal.db"
    lines = await anyio.to_thread.run_sync(
        run_then_kill, db, tmp_path / "child.err", kill_after + 1
    )
    assert lines[0] == "ready"
    acked = lines[1:]
    assert len(acked) >= kill_after
    assert all(len(entry_id) == 26 for entry_id in acked)
    assert len(set(acked)) == len(acked)

    async with open_journal(db) as store:
        for entry_id in acked:
            found = await store.get(entry_id)
            assert found is not None, entry_id
            assert found.route == "orders"
        pending = await store.pending(limit=len(acked) + 10_000)
        stats = await store.statistics(now=time.time())
    assert set(acked) <= {e.id for e in pending}
    assert stats.depth == len(pending) >= len(acked)  # unacknowledged commits may be there too
    assert stats.bytes_used == sum(e.size for e in pending)  # the usage row matches the rows
    assert await anyio.to_thread.run_sync(_integrity, db) == [("ok",)]
