"""An acknowledged dead letter survives kill -9 of the process that captured it (DL-2)."""

from __future__ import annotations

from pathlib import Path

import anyio.to_thread
import pytest
from kill9 import integrity, run_then_kill

from otpy.deadletter import DeadLetterFilter, SQLiteDeadLetterStore

CHILD = Path(__file__).with_name("_kill9_child.py")
KILL_AFTER = (1, 50, 200, 1000, 3000)
"""Acknowledgements before each run's SIGKILL: the first commit, early batches, a steady burst."""


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kill_after", KILL_AFTER)
async def test_every_acknowledged_dead_letter_survives_kill_9(
    tmp_path: Path, kill_after: int
) -> None:
    """DL-2: SIGKILL during a burst of captures loses no acknowledged record and leaves an intact file."""
    db = tmp_path / "dead.db"
    lines = await anyio.to_thread.run_sync(
        run_then_kill, CHILD, [str(db)], tmp_path / "child.err", kill_after + 1
    )
    assert lines[0] == "ready"
    acked = lines[1:]  # every id acknowledged, before the kill and still in the pipe
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

    assert await anyio.to_thread.run_sync(integrity, db) == [("ok",)]
