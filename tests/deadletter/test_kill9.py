"""An acknowledged dead letter survives kill -9 of the process that captured it (DL-2)."""

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

from otpy.deadletter import DeadLetterFilter, SQLiteDeadLetterStore

CHILD = Path(__file__).with_name("_kill9_child.py")
ROOT = Path(__file__).parents[2]
KILL_AFTER = (1, 50, 200, 1000, 3000)
"""Acknowledgements before each run's SIGKILL: the first commit, early batches, a steady burst."""
PATIENCE = 30.0  # seconds to wait for the child's output before failing; never slept


def _read_lines(proc: subprocess.Popen[bytes], selector: selectors.BaseSelector) -> list[str]:
    """Return the complete lines *proc* has written so far, waiting up to PATIENCE for one."""
    assert proc.stdout is not None
    if not selector.select(timeout=PATIENCE):
        raise AssertionError(f"the child printed nothing for {PATIENCE:g}s")
    chunk = os.read(proc.stdout.fileno(), 65536)
    if not chunk:
        raise AssertionError(f"the child exited early with {proc.wait()}")
    return chunk.decode().splitlines(keepends=True)


def capture_then_kill(db: Path, stderr: Path, kill_after: int) -> list[str]:
    """Run the child until it has acknowledged *kill_after* ids, SIGKILL it mid-burst.

    Returns every id it acknowledged: those read before the kill, and those still in
    the pipe after it (a line cut short by the kill is not an acknowledgement).
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
            while len(lines) < kill_after + 1:  # + the "ready" line
                assert time.monotonic() < deadline, f"only {len(lines)} lines in {PATIENCE:g}s"
                for piece in _read_lines(proc, selector):
                    pending += piece
                    if pending.endswith("\n"):
                        lines.append(pending.strip())
                        pending = ""
        assert proc.poll() is None, "the child stopped producing before the kill"
        os.kill(proc.pid, signal.SIGKILL)
        assert proc.wait(timeout=PATIENCE) == -signal.SIGKILL
        rest = pending + proc.stdout.read().decode()
        lines.extend(line for line in rest.split("\n")[:-1])
    finally:
        with contextlib.suppress(ProcessLookupError):
            proc.kill()
        proc.wait()
        proc.stdout.close()
    assert lines[0] == "ready", stderr.read_text()
    return lines[1:]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kill_after", KILL_AFTER)
async def test_every_acknowledged_dead_letter_survives_kill_9(
    tmp_path: Path, kill_after: int
) -> None:
    """DL-2: SIGKILL during a burst of captures loses no acknowledged record and leaves an intact file."""
    db = tmp_path / "dead.db"
    acked = await anyio.to_thread.run_sync(
        capture_then_kill, db, tmp_path / "child.err", kill_after
    )
    assert len(acked) >= kill_after
    assert all(len(record_id) == 26 for record_id in acked)
    assert len(set(acked)) == len(acked)

    store = await SQLiteDeadLetterStore.open(db)
    try:
        # The ignore: attrs' optional(tuple) converter types ``ids`` with an unbound TypeVar.
        acked_filter = DeadLetterFilter(ids=tuple(acked))
        assert await store.count(acked_filter) == len(acked)
        total = await store.count()
        sample = await store.get(acked[-1])
    finally:
        await store.aclose()
    assert total >= len(acked)  # unacknowledged commits may be there too; never fewer
    assert sample.payload is not None
    assert sample.payload.startswith(b"message ")

    with contextlib.closing(sqlite3.connect(db)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
