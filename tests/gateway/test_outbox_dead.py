"""Dead messages and destination states in the outbox, against the SQLite and the memory store (GW-8, GW-9)."""

from __future__ import annotations

import contextlib
import json
import sqlite3
from typing import TYPE_CHECKING, Any

import attrs
import pytest

from otpy import InvalidArgument, InvalidArgumentType, OutboxError, OutboxMessageNotFound
from otpy.gateway._outbox import (
    DestinationState,
    OutboxMessage,
    OutboxState,
    OutboxStore,
)
from otpy.gateway._outbox_memory import MemoryOutboxStore
from otpy.gateway._outbox_sqlite import (
    APPLICATION_ID,
    MIGRATIONS,
    SCHEMA_VERSION,
    SQLiteOutboxStore,
    open_outbox,
)

from ._outbox_helpers import LEASE, T0, ids, message

if TYPE_CHECKING:
    from pathlib import Path

# -- the message ------------------------------------------------------------------------


def test_dead_at_goes_with_the_dead_state_and_only_with_it() -> None:
    """A dead message has a ``dead_at`` and no lease; no other state has a ``dead_at``."""
    m = message()
    dead = attrs.evolve(m, state=OutboxState.DEAD, dead_at=T0 + 1)
    assert (dead.state, dead.dead_at, dead.lease_expires_at) == (OutboxState.DEAD, T0 + 1, None)
    assert OutboxState("dead") is OutboxState.DEAD
    with pytest.raises(InvalidArgument, match=r"^OutboxMessage: dead_at must be set when"):
        attrs.evolve(m, state=OutboxState.DEAD)
    with pytest.raises(InvalidArgument, match=r"dead_at must be set when the state is dead and"):
        attrs.evolve(m, dead_at=T0)
    with pytest.raises(InvalidArgument, match="lease_expires_at"):
        attrs.evolve(dead, lease_expires_at=T0 + 30)
    with pytest.raises(InvalidArgument, match="dead_at"):
        attrs.evolve(dead, dead_at=-1.0)


# -- mark_dead --------------------------------------------------------------------------


async def test_mark_dead_from_pending_records_the_final_attempt(store: OutboxStore) -> None:
    """A pending message marked dead keeps its fields and gains the final attempt and the time."""
    m = message(idempotency_key="order-7")
    await store.enqueue([m])
    dead = await store.mark_dead(m.id, attempts=4, status=400, error="bad request", now=T0 + 9)
    assert dead == attrs.evolve(
        m,
        state=OutboxState.DEAD,
        attempts=4,
        last_status=400,
        last_error="bad request",
        dead_at=T0 + 9,
    )
    assert await store.get(m.id) == dead


async def test_mark_dead_from_in_flight_ends_the_lease(store: OutboxStore) -> None:
    """An in-flight message marked dead has no lease, and recovery leaves it dead."""
    m = message()
    await store.enqueue([m])
    [claimed] = await store.claim("hooks", now=T0, limit=1, lease=LEASE)
    dead = await store.mark_dead(m.id, attempts=1, status=None, error="timed out", now=T0 + 2)
    assert dead == attrs.evolve(
        claimed,
        state=OutboxState.DEAD,
        lease_expires_at=None,
        attempts=1,
        last_error="timed out",
        dead_at=T0 + 2,
    )
    assert await store.recover(now=T0 + LEASE, only_expired=True) == 0
    assert await store.recover(now=T0 + LEASE) == 0
    assert await store.get(m.id) == dead
    assert (await store.statistics(now=T0 + LEASE)).in_flight == 0


async def test_mark_dead_refuses_an_unknown_id(store: OutboxStore) -> None:
    """Marking a missing message dead raises OutboxMessageNotFound with its id."""
    with pytest.raises(OutboxMessageNotFound, match="'nope'") as caught:
        await store.mark_dead("nope", attempts=1, status=500, error=None, now=T0)
    assert caught.value.message_id == "nope"


async def test_the_first_marking_wins(store: OutboxStore) -> None:
    """A message marked dead twice keeps the first marking, so its dead letter is rebuilt the same."""
    m = message()
    await store.enqueue([m])
    first = await store.mark_dead(m.id, attempts=3, status=410, error="gone", now=T0 + 1)
    again = await store.mark_dead(m.id, attempts=5, status=500, error="later", now=T0 + 2)
    assert again == first
    assert await store.get(m.id) == first


async def test_a_retry_reported_late_leaves_a_dead_message_dead(store: OutboxStore) -> None:
    """record_retry from a worker whose lease ran out does not bring a dead message back."""
    m = message()
    await store.enqueue([m])
    await store.claim("hooks", now=T0, limit=1, lease=LEASE)
    dead = await store.mark_dead(m.id, attempts=2, status=503, error="busy", now=T0 + 1)
    await store.record_retry(m.id, attempts=3, next_attempt_at=T0 + 5, status=502)
    assert await store.get(m.id) == dead
    assert await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE) == []


@pytest.mark.parametrize(
    ("kw", "argument", "error"),
    [
        ({"message_id": 3}, "id", InvalidArgumentType),
        ({"message_id": ""}, "id", InvalidArgument),
        ({"attempts": -1}, "attempts", InvalidArgument),
        ({"attempts": 1.0}, "attempts", InvalidArgumentType),
        ({"status": 42}, "status", InvalidArgument),
        ({"status": "500"}, "status", InvalidArgumentType),
        ({"error": b"oops"}, "error", InvalidArgumentType),
        ({"now": float("nan")}, "now", InvalidArgument),
        ({"now": -1.0}, "now", InvalidArgument),
    ],
)
async def test_mark_dead_refuses_bad_arguments_by_name(
    store: OutboxStore, kw: dict[str, Any], argument: str, error: type
) -> None:
    """Each bad argument of mark_dead is named in the error."""
    args: dict[str, Any] = {
        "message_id": "x",
        "attempts": 1,
        "status": None,
        "error": None,
        "now": T0,
        **kw,
    }
    message_id = args.pop("message_id")
    with pytest.raises(error, match=rf"^\w+OutboxStore\.mark_dead: {argument} must"):
        await store.mark_dead(message_id, **args)


async def test_mark_dead_reads_the_store_clock_when_now_is_none(tmp_path: Path) -> None:
    """Without ``now``, ``dead_at`` is the store's clock."""
    async with open_outbox(tmp_path / "o.db", synchronous="OFF", clock=lambda: T0 + 42) as sqlite:
        for store in (sqlite, MemoryOutboxStore(clock=lambda: T0 + 42)):
            m = message()
            await store.enqueue([m])
            dead = await store.mark_dead(m.id, attempts=1, status=None, error=None)
            assert dead.dead_at == T0 + 42


# -- a dead message holds its key ----------------------------------------------------------


async def test_a_dead_head_is_never_claimed_and_blocks_its_key_until_removed(
    store: OutboxStore,
) -> None:
    """A key's later messages wait behind its dead head; other keys go on; removal frees the key."""
    a1, a2, b1 = message("a", now=T0), message("a", now=T0 + 1), message("b", now=T0 + 2)
    await store.enqueue([a1, a2, b1])
    [claimed] = await store.claim("hooks", now=T0 + 5, limit=1, lease=LEASE)
    assert claimed.id == a1.id
    dead = await store.mark_dead(a1.id, attempts=1, status=422, error="unprocessable", now=T0 + 6)
    assert ids(await store.claim("hooks", now=T0 + 1e6, limit=10, lease=LEASE)) == [b1.id]
    assert await store.claim("hooks", now=T0 + 1e6, limit=10, lease=LEASE) == []
    assert await store.recover(now=T0 + 1e6) == 1  # b1 only
    assert ids(await store.claim("hooks", now=T0 + 1e6, limit=10, lease=LEASE)) == [b1.id]
    assert await store.remove(a1.id) == dead
    assert ids(await store.claim("hooks", now=T0 + 1e6, limit=10, lease=LEASE)) == [a2.id]


async def test_a_dead_message_behind_its_head_waits_its_turn_and_is_not_claimed(
    store: OutboxStore,
) -> None:
    """A message dead-lettered while not the head is never claimed, and still holds the key after it."""
    a1, a2, a3 = message("a", now=T0), message("a", now=T0 + 1), message("a", now=T0 + 2)
    await store.enqueue([a1, a2, a3])
    await store.mark_dead(a2.id, attempts=0, status=None, error="expired", now=T0 + 3)
    assert ids(await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE)) == [a1.id]
    await store.complete(a1.id)
    assert await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE) == []
    await store.remove(a2.id)
    assert ids(await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE)) == [a3.id]


# -- dead() -----------------------------------------------------------------------------


async def test_dead_lists_dead_messages_oldest_first_by_destination_and_limit(
    store: OutboxStore,
) -> None:
    """dead() returns only dead messages, in id order, filtered by destination, at most *limit*."""
    h1, h2, o1, h3, alive = (
        message("a", now=T0),
        message("b", now=T0 + 1),
        message("a", now=T0 + 2, destination="other"),
        message("c", now=T0 + 3),
        message("d", now=T0 + 4),
    )
    await store.enqueue([alive, h3, o1, h2, h1])
    for m in (h3, h1, o1, h2):  # marking order does not matter; ids do
        await store.mark_dead(m.id, attempts=1, status=500, error=None, now=T0 + 10)
    assert ids(await store.dead()) == [h1.id, h2.id, o1.id, h3.id]
    assert ids(await store.dead(destination="hooks")) == [h1.id, h2.id, h3.id]
    assert ids(await store.dead(destination="hooks", limit=2)) == [h1.id, h2.id]
    assert ids(await store.dead(limit=1)) == [h1.id]
    assert ids(await store.dead(destination="other")) == [o1.id]
    assert await store.dead(destination="nobody") == []
    [first] = await store.dead(limit=1)
    assert first == await store.get(h1.id)
    await store.remove(h1.id)
    assert ids(await store.dead(destination="hooks")) == [h2.id, h3.id]


@pytest.mark.parametrize(
    ("kw", "argument", "error"),
    [
        ({"destination": ""}, "destination", InvalidArgument),
        ({"destination": 3}, "destination", InvalidArgumentType),
        ({"limit": 0}, "limit", InvalidArgument),
        ({"limit": True}, "limit", InvalidArgumentType),
    ],
)
async def test_dead_refuses_bad_arguments_by_name(
    store: OutboxStore, kw: dict[str, Any], argument: str, error: type
) -> None:
    """Each bad argument of dead() is named in the error."""
    with pytest.raises(error, match=rf"^\w+OutboxStore\.dead: {argument} must"):
        await store.dead(**kw)


async def test_statistics_count_dead_messages_in_depth(store: OutboxStore) -> None:
    """A dead message is in its destination's depth and in the dead count, not in flight."""
    a, b, c = message("a", now=T0), message("b", now=T0 + 10), message("c", now=T0 + 20)
    other = message("a", now=T0 + 5, destination="other")
    await store.enqueue([a, b, c, other])
    await store.claim("hooks", now=T0 + 30, limit=2, lease=LEASE)  # a and b
    await store.mark_dead(a.id, attempts=1, status=410, error="gone", now=T0 + 30)
    await store.mark_dead(other.id, attempts=0, status=None, error=None, now=T0 + 30)
    stats = await store.statistics(now=T0 + 30)
    assert (stats.depth, stats.in_flight, stats.dead) == (4, 1, 2)
    hooks, elsewhere = stats.destinations["hooks"], stats.destinations["other"]
    assert (hooks.depth, hooks.in_flight, hooks.dead, hooks.oldest_age) == (3, 1, 1, 30.0)
    assert (elsewhere.depth, elsewhere.in_flight, elsewhere.dead) == (1, 0, 1)
    await store.remove(a.id)
    assert (await store.statistics(now=T0 + 30)).destinations["hooks"].dead == 0


# -- destination states ---------------------------------------------------------------------


def test_the_default_destination_state_is_enabled_and_healthy() -> None:
    """``DestinationState()`` is not disabled, has no reason or times."""
    state = DestinationState()
    assert (state.disabled, state.disabled_reason, state.disabled_at, state.failing_since) == (
        False,
        None,
        None,
        None,
    )
    failing = DestinationState(failing_since=T0)
    assert failing.failing_since == T0
    assert not failing.disabled
    gone = DestinationState(disabled=True, disabled_reason="gone", disabled_at=T0, failing_since=1)
    assert (gone.disabled_at, gone.failing_since) == (T0, 1.0)
    assert isinstance(gone.failing_since, float)


@pytest.mark.parametrize(
    ("kw", "error", "message"),
    [
        ({"disabled": 1}, InvalidArgumentType, r"disabled must be True or False, got 1"),
        ({"disabled": True, "disabled_reason": ""}, InvalidArgument, r"disabled_reason must"),
        ({"disabled": True, "disabled_reason": 3}, InvalidArgumentType, r"disabled_reason must"),
        (
            {"disabled_reason": "manual"},
            InvalidArgument,
            r"disabled_reason must be None unless disabled is True, got 'manual'",
        ),
        (
            {"disabled_at": T0},
            InvalidArgument,
            r"disabled_at must be None unless disabled is True",
        ),
        (
            {"disabled": True, "disabled_at": -1.0},
            InvalidArgument,
            r"disabled_at must be a finite number >= 0, got -1\.0",
        ),
        ({"disabled": True, "disabled_at": "now"}, InvalidArgumentType, r"disabled_at must"),
        (
            {"failing_since": float("inf")},
            InvalidArgument,
            r"failing_since must be a finite number >= 0, got inf",
        ),
        ({"failing_since": True}, InvalidArgumentType, r"failing_since must"),
    ],
)
def test_a_bad_destination_state_is_refused_by_field(
    kw: dict[str, Any], error: type, message: str
) -> None:
    """Each bad field of a DestinationState is named, with what is allowed."""
    with pytest.raises(error, match=rf"^DestinationState: {message}"):
        DestinationState(**kw)


async def test_destination_states_round_trip(store: OutboxStore) -> None:
    """A stored state is read back, replaced by the next one, and deleted by the default."""
    assert dict(await store.destination_states()) == {}
    failing = DestinationState(failing_since=T0)
    gone = DestinationState(disabled=True, disabled_reason="gone", disabled_at=T0 + 5)
    await store.set_destination_state("orders", failing)
    await store.set_destination_state("billing", gone)
    states = await store.destination_states()
    assert dict(states) == {"billing": gone, "orders": failing}
    assert list(states) == ["billing", "orders"]
    stopped = DestinationState(
        disabled=True, disabled_reason="sustained_failure", disabled_at=T0 + 9, failing_since=T0
    )
    await store.set_destination_state("orders", stopped)
    assert dict(await store.destination_states()) == {"billing": gone, "orders": stopped}
    await store.set_destination_state("billing", DestinationState())
    await store.set_destination_state("never-stored", DestinationState())
    assert dict(await store.destination_states()) == {"orders": stopped}


@pytest.mark.parametrize(
    ("destination", "state", "argument", "error"),
    [
        ("", DestinationState(), "destination", InvalidArgument),
        (None, DestinationState(), "destination", InvalidArgumentType),
        ("orders", {"disabled": True}, "state", InvalidArgumentType),
        ("orders", None, "state", InvalidArgumentType),
    ],
)
async def test_set_destination_state_refuses_bad_arguments_by_name(
    store: OutboxStore, destination: Any, state: Any, argument: str, error: type
) -> None:
    """Each bad argument of set_destination_state is named in the error."""
    with pytest.raises(error, match=rf"^\w+OutboxStore\.set_destination_state: {argument} must"):
        await store.set_destination_state(destination, state)


async def test_a_closed_store_refuses_the_new_calls(store: OutboxStore) -> None:
    """mark_dead, dead and the destination states raise OutboxError once the store is closed."""
    await store.aclose()
    with pytest.raises(OutboxError, match="closed"):
        await store.mark_dead("x", attempts=1, status=None, error=None, now=T0)
    with pytest.raises(OutboxError, match="closed"):
        await store.dead()
    with pytest.raises(OutboxError, match="closed"):
        await store.destination_states()
    with pytest.raises(OutboxError, match="closed"):
        await store.set_destination_state("orders", DestinationState(failing_since=T0))


# -- SQLite: what survives a restart, and the file from before ---------------------------------


async def test_dead_messages_and_destination_states_survive_reopening(tmp_path: Path) -> None:
    """After close and open_outbox again, dead rows are listed and destination states read back."""
    path = tmp_path / "outbox.db"
    a1, a2 = message("a", now=T0), message("a", now=T0 + 1)
    manual = DestinationState(disabled=True, disabled_reason="manual", disabled_at=T0 + 3)
    async with open_outbox(path) as store:
        await store.enqueue([a1, a2])
        await store.claim("hooks", now=T0 + 2, limit=5, lease=LEASE)
        dead = await store.mark_dead(a1.id, attempts=2, status=410, error="gone", now=T0 + 3)
        await store.set_destination_state("hooks", manual)
        await store.set_destination_state("other", DestinationState(failing_since=T0 + 1))
    async with open_outbox(path) as store:
        assert await store.recover(now=T0 + 4) == 0
        assert await store.dead() == [dead]
        assert await store.claim("hooks", now=T0 + 4, limit=5, lease=LEASE) == []
        assert dict(await store.destination_states()) == {
            "hooks": manual,
            "other": DestinationState(failing_since=T0 + 1),
        }
        await store.remove(a1.id)
        assert ids(await store.claim("hooks", now=T0 + 4, limit=5, lease=LEASE)) == [a2.id]


def _version_1_file(path: Path, row: OutboxMessage) -> None:
    """Write an outbox file as version 1 left it (its own migration), holding *row*."""
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute(f"PRAGMA application_id = {APPLICATION_ID:d}")
        db.execute("PRAGMA user_version = 1")
        db.execute(
            "INSERT INTO outbox VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (
                row.id,
                row.destination,
                row.key,
                row.idempotency_key,
                row.body,
                row.content_type,
                json.dumps(row.headers),
                json.dumps(row.trace_context),
                row.created_at,
                row.attempts,
                row.next_attempt_at,
                row.state.value,
                row.lease_expires_at,
                row.last_status,
                row.last_error,
            ),
        )


async def test_a_version_1_file_is_migrated_keeping_its_messages(tmp_path: Path) -> None:
    """A file written before dead rows, destination states and settled ids gains them, its messages intact."""
    path = tmp_path / "outbox.db"
    old = attrs.evolve(message("a", headers={"X-A": "1"}), attempts=2, last_status=503)
    _version_1_file(path, old)
    assert SCHEMA_VERSION == 3
    async with open_outbox(path, synchronous="OFF") as store:
        assert await store.get(old.id) == old
        assert dict(await store.destination_states()) == {}
        dead = await store.mark_dead(old.id, attempts=3, status=410, error="gone", now=T0 + 1)
        assert await store.dead() == [dead]
        await store.set_destination_state("hooks", DestinationState(failing_since=T0))
    with contextlib.closing(sqlite3.connect(path)) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (3,)
        indexes = {row[1] for row in db.execute("PRAGMA index_list(outbox)")}
    assert "outbox_dead" in indexes
    async with open_outbox(path) as store:  # reopening a version 3 file changes nothing
        assert await store.dead() == [dead]
        assert dict(await store.destination_states()) == {
            "hooks": DestinationState(failing_since=T0)
        }


async def test_a_version_2_file_missing_a_destination_column_is_refused(tmp_path: Path) -> None:
    """A damaged destination_state table is named, not read."""
    path = tmp_path / "outbox.db"
    async with open_outbox(path):
        pass
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("ALTER TABLE destination_state DROP COLUMN failing_since")
    with pytest.raises(OutboxError, match=r"missing destination_state\.failing_since$"):
        await SQLiteOutboxStore.open(path)


async def test_an_unreadable_destination_row_is_an_outbox_error(tmp_path: Path) -> None:
    """A destination row no DestinationState allows raises OutboxError naming the destination."""
    path = tmp_path / "outbox.db"
    async with open_outbox(path):
        pass
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("INSERT INTO destination_state VALUES ('orders', 2, NULL, NULL, NULL)")
    async with open_outbox(path) as store:
        with pytest.raises(OutboxError, match=r"destination 'orders' cannot be read: disabled"):
            await store.destination_states()
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("UPDATE destination_state SET disabled = 0, disabled_reason = 'gone'")
    async with open_outbox(path) as store:
        with pytest.raises(OutboxError, match=r"cannot be read: DestinationState: disabled_reason"):
            await store.destination_states()
