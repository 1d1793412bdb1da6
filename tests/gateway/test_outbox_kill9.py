"""An acknowledged enqueue survives kill -9, a killed sender's claims are recovered, its dead rows kept (GW-1)."""

from __future__ import annotations

import time
from pathlib import Path

import anyio.to_thread
import pytest
from kill9 import integrity, run_then_kill

from otpy.gateway._outbox import OutboxState
from otpy.gateway._outbox_sqlite import open_outbox

CHILD = Path(__file__).with_name("_outbox_kill9_child.py")
KILL_AFTER = (1, 100, 1000)
"""Acknowledgements before each run's SIGKILL: the first commit, early batches, a steady burst."""


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
@pytest.mark.parametrize("kill_after", KILL_AFTER)
async def test_every_acknowledged_enqueue_survives_kill_9(tmp_path: Path, kill_after: int) -> None:
    """SIGKILL during a burst of enqueues loses no acknowledged message and leaves an intact file."""
    db = tmp_path / "outbox.db"
    lines = await anyio.to_thread.run_sync(
        run_then_kill, CHILD, [str(db), "enqueue"], tmp_path / "child.err", kill_after + 1
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
    assert await anyio.to_thread.run_sync(integrity, db) == [("ok",)]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_messages_in_flight_at_kill_9_are_recovered(tmp_path: Path) -> None:
    """A sender killed with messages in flight: recovery makes them pending, attempts kept.

    The one it marked dead stays dead, listed to finish, and its key waits behind it.
    """
    db = tmp_path / "outbox.db"
    lines = await anyio.to_thread.run_sync(
        run_then_kill, CHILD, [str(db), "claim"], tmp_path / "child.err", "ready"
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
    assert await anyio.to_thread.run_sync(integrity, db) == [("ok",)]
