"""An acknowledged accept survives kill -9: every id answered as new is pending after it (IN-1, IN-4)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio.to_thread
import pytest
from kill9 import integrity, run_then_kill

from otpy.ingest import open_journal

CHILD = Path(__file__).with_name("_journal_kill9_child.py")
KILL_AFTER = (1, 100, 1000)
"""Acknowledgements before each run's SIGKILL: the first commit, early batches, a steady burst."""


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kill_after", KILL_AFTER)
async def test_every_acknowledged_accept_survives_kill_9(tmp_path: Path, kill_after: int) -> None:
    """SIGKILL during a burst of accepts loses no acknowledged entry and leaves an intact file."""
    db = tmp_path / "journal.db"
    lines = await anyio.to_thread.run_sync(
        run_then_kill, CHILD, [str(db)], tmp_path / "child.err", kill_after + 1
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
    assert await anyio.to_thread.run_sync(integrity, db) == [("ok",)]
