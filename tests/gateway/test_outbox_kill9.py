"""An acknowledged enqueue survives kill -9, a killed sender's claims are recovered, its dead rows kept (GW-1)."""

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

from otpy.gateway._outbox import OutboxState
from otpy.gateway._outbox_sqlite import open_outbox

CHILD = Path(__file__).with_name("_outbox_kill9_child.py")
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


def run_then_kill(db: Path, stderr: Path, mode: str, until: int | str) -> list[str]:
    """Run the child in *mode*; SIGKILL it once it printed *until* lines (or the line *until*).

    Returns every complete line it printed: those read before the kill and those
    still in the pipe after it (a line cut short by the kill is not one).
    """
    with stderr.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, str(CHILD), str(db), mode],
            stdout=subprocess.PIPE,
            stderr=err,
            cwd=ROOT,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
    assert proc.stdout is not None
    pending = ""
    lines: list[str] = []

    def done() -> bool:
        return until in lines if isinstance(until, str) else len(lines) >= until

    try:
        with selectors.DefaultSelector() as selector:
            selector.register(proc.stdout, selectors.EVENT_READ)
            deadline = time.monotonic() + PATIENCE
            while not done():
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
async def test_every_acknowledged_enqueue_survives_kill_9(tmp_path: Path, kill_after: int) -> None:
    """SIGKILL during a burst of enqueues loses no acknowledged message and leaves an intact file."""
    db = tmp_path / "outbox.db"
    lines = await anyio.to_thread.run_sync(
        run_then_kill, db, tmp_path / "child.err", "enqueue", kill_after + 1
    )
    assert lines[0] == "ready"
    acked = lines[1:]
    assert len(acked) >= kill_after
    assert all(len(message_id) == 26 for message_id in acked)
    assert len(set(acked)) == len(acked)

    async with open_outbox(db) as store:
        for message_id in acked:
            found = await store.get(message_id)
            assert found is not None, message_id
            assert found.state is OutboxState.PENDING
        total = (await store.statistics(now=time.time())).depth
    assert total >= len(acked)  # unacknowledged commits may be there too; never fewer
    assert await anyio.to_thread.run_sync(_integrity, db) == [("ok",)]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_messages_in_flight_at_kill_9_are_recovered(tmp_path: Path) -> None:
    """A sender killed with messages in flight: recovery makes them pending, attempts kept.

    The one it marked dead stays dead, listed to finish, and its key waits behind it.
    """
    db = tmp_path / "outbox.db"
    lines = await anyio.to_thread.run_sync(
        run_then_kill, db, tmp_path / "child.err", "claim", "ready"
    )
    claimed = [line.removeprefix("claimed ") for line in lines if line.startswith("claimed ")]
    assert len(claimed) == 10  # one head per key
    [dead_id] = [line.removeprefix("dead ") for line in lines if line.startswith("dead ")]
    assert dead_id == claimed[0]
    claimed.remove(dead_id)

    async with open_outbox(db) as store:
        now = time.time()
        stats = await store.statistics(now=now)
        assert (stats.depth, stats.in_flight, stats.dead) == (30, 9, 1)
        assert await store.recover(now=now) == 9
        [dead] = await store.dead()
        assert (dead.id, dead.state, dead.attempts, dead.last_status, dead.last_error) == (
            dead_id,
            OutboxState.DEAD,
            4,
            410,
            "gone",
        )
        for message_id in claimed:
            back = await store.get(message_id)
            assert back is not None
            assert (back.state, back.attempts, back.last_status) == (OutboxState.PENDING, 3, 503)
            assert back.idempotency_key == message_id
            assert back.next_attempt_at == now
        again = await store.claim("hooks", now=now, limit=100, lease=30.0)
        assert sorted(m.id for m in again) == sorted(claimed)  # not the dead one's key
        await store.remove(dead_id)
        [after_dead] = await store.claim("hooks", now=now, limit=100, lease=30.0)
        assert after_dead.key == dead.key
    assert await anyio.to_thread.run_sync(_integrity, db) == [("ok",)]
