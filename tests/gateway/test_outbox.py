"""The outbox store contract, run against the SQLite and the memory store on both backends (GW-1, GW-3)."""

from __future__ import annotations

import contextlib
import sqlite3
from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otpy import InvalidArgument, InvalidArgumentType, OutboxError, OutboxMessageNotFound
from otpy.gateway._outbox import (
    SETTLED_KEPT,
    OutboxMessage,
    OutboxState,
    OutboxStore,
)
from otpy.gateway._outbox_memory import MemoryOutboxStore
from otpy.gateway._outbox_sqlite import (
    APPLICATION_ID,
    SCHEMA_VERSION,
    SQLiteOutboxStore,
    open_outbox,
)

from ._outbox_helpers import LEASE, T0, ids, message

if TYPE_CHECKING:
    from pathlib import Path

# -- the message ------------------------------------------------------------------------


def test_new_message_is_pending_due_at_once_with_its_id_as_idempotency_key() -> None:
    m = OutboxMessage.new(
        destination="hooks",
        key="order-1",
        body=bytearray(b"hi"),
        now=T0,
        headers={"X-A": "1"},
        trace_context=[("traceparent", "00-abc-def-01")],
    )
    assert (m.state, m.attempts, m.lease_expires_at) == (OutboxState.PENDING, 0, None)
    assert m.created_at == m.next_attempt_at == T0
    assert m.idempotency_key == m.id
    assert len(m.id) == 26
    assert m.body == b"hi"
    assert isinstance(m.body, bytes)
    assert m.headers == (("X-A", "1"),)
    assert m.trace_context == (("traceparent", "00-abc-def-01"),)
    assert (
        OutboxMessage.new(
            destination="d", key="k", body=b"", now=T0, idempotency_key="mine"
        ).idempotency_key
        == "mine"
    )


def test_ids_sort_by_creation_time() -> None:
    first, second = message(now=T0), message(now=T0 + 5)
    assert first.id < second.id


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("destination", "", InvalidArgument),
        ("key", "", InvalidArgument),
        ("key", 3, InvalidArgumentType),
        ("body", "text", InvalidArgumentType),
        ("headers", "X-A: 1", InvalidArgumentType),
        ("headers", [("X-A", 1)], InvalidArgumentType),
        ("now", -1.0, InvalidArgument),
        ("now", float("nan"), InvalidArgument),
        ("idempotency_key", "", InvalidArgument),
    ],
)
def test_a_bad_message_field_is_refused_by_name(field: str, value: object, error: type) -> None:
    kw: dict[str, Any] = {"destination": "d", "key": "k", "body": b"", "now": T0, field: value}
    with pytest.raises(error, match=field):
        OutboxMessage.new(**kw)


def test_a_lease_goes_with_in_flight_and_only_with_it() -> None:
    m = message()
    with pytest.raises(InvalidArgument, match="lease_expires_at"):
        attrs.evolve(m, state=OutboxState.IN_FLIGHT)
    with pytest.raises(InvalidArgument, match="lease_expires_at"):
        attrs.evolve(m, lease_expires_at=T0)
    with pytest.raises(InvalidArgument, match="attempts"):
        attrs.evolve(m, attempts=-1)
    with pytest.raises(InvalidArgument, match="last_status"):
        attrs.evolve(m, last_status=99)
    with pytest.raises(InvalidArgument, match="state"):
        attrs.evolve(m, state="delivered")


# -- enqueue ----------------------------------------------------------------------------


async def test_both_stores_implement_the_protocol(store: OutboxStore) -> None:
    assert isinstance(store, OutboxStore)


async def test_enqueue_is_idempotent_by_id(store: OutboxStore) -> None:
    a, b = message("a"), message("b")
    assert await store.enqueue([a, b]) == 2
    assert await store.enqueue([a]) == 0
    c = message("c")
    assert await store.enqueue([b, c]) == 1
    assert await store.enqueue([]) == 0
    assert (await store.statistics(now=T0)).depth == 3
    assert await store.get(a.id) == a
    assert await store.get("nope") is None


async def test_enqueue_refuses_what_is_not_a_list_of_messages(store: OutboxStore) -> None:
    with pytest.raises(InvalidArgumentType, match="messages"):
        await store.enqueue(message())  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match="messages"):
        await store.enqueue(["x"])  # type: ignore[list-item]
    with pytest.raises(InvalidArgument, match="timeout"):
        await store.enqueue([message()], timeout=-1)


# -- claim ------------------------------------------------------------------------------


async def test_claim_marks_messages_in_flight_with_a_lease(store: OutboxStore) -> None:
    m = message(headers={"X-A": "1"}, trace_context={"traceparent": "t"})
    await store.enqueue([m])
    [claimed] = await store.claim("hooks", now=T0 + 1, limit=10, lease=LEASE)
    assert claimed == attrs.evolve(m, state=OutboxState.IN_FLIGHT, lease_expires_at=T0 + 1 + LEASE)
    assert await store.get(m.id) == claimed
    assert await store.claim("hooks", now=T0 + 1, limit=10, lease=LEASE) == []


async def test_claim_takes_one_head_per_key_oldest_first(store: OutboxStore) -> None:
    a1, b1, a2, c1, b2 = (
        message("a", now=T0),
        message("b", now=T0 + 1),
        message("a", now=T0 + 2),
        message("c", now=T0 + 3),
        message("b", now=T0 + 4),
    )
    await store.enqueue([b2, c1, a2, b1, a1])  # enqueue order does not matter; ids do
    claimed = await store.claim("hooks", now=T0 + 10, limit=10, lease=LEASE)
    assert ids(claimed) == [a1.id, b1.id, c1.id]


async def test_an_in_flight_head_blocks_its_key_only(store: OutboxStore) -> None:
    a1, a2, b1 = message("a", now=T0), message("a", now=T0 + 1), message("b", now=T0 + 2)
    await store.enqueue([a1, a2])
    assert ids(await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE)) == [a1.id]
    await store.enqueue([b1])
    assert ids(await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE)) == [b1.id]
    await store.complete(a1.id)
    assert ids(await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE)) == [a2.id]


async def test_a_head_waiting_for_its_retry_blocks_its_key(store: OutboxStore) -> None:
    a1, a2, b1 = message("a", now=T0), message("a", now=T0 + 1), message("b", now=T0 + 2)
    await store.enqueue([a1, a2, b1])
    await store.claim("hooks", now=T0 + 5, limit=1, lease=LEASE)  # a1
    await store.record_retry(a1.id, attempts=1, next_attempt_at=T0 + 60, status=503, error="busy")
    # a1 is pending but not due: a2 waits behind it; b goes on.
    assert ids(await store.claim("hooks", now=T0 + 59.999, limit=10, lease=LEASE)) == [b1.id]
    assert await store.claim("hooks", now=T0 + 59.999, limit=10, lease=LEASE) == []
    [again] = await store.claim("hooks", now=T0 + 60, limit=10, lease=LEASE)  # exactly due
    assert again.id == a1.id
    assert (again.attempts, again.last_status, again.last_error) == (1, 503, "busy")
    assert again.lease_expires_at == T0 + 60 + LEASE


async def test_an_earlier_message_enqueued_late_waits_for_the_one_in_flight(
    store: OutboxStore,
) -> None:
    early, late = message("a", now=T0), message("a", now=T0 + 1)
    await store.enqueue([late])
    assert ids(await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE)) == [late.id]
    await store.enqueue([early])  # now the head, but its key has a message in flight
    assert await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE) == []
    await store.complete(late.id)
    assert ids(await store.claim("hooks", now=T0 + 5, limit=10, lease=LEASE)) == [early.id]


async def test_claim_respects_limit_due_time_and_destination(store: OutboxStore) -> None:
    keys = [message(f"k{i}", now=T0 + i) for i in range(5)]
    other = message("k0", now=T0, destination="other")
    future = attrs.evolve(message("later", now=T0), next_attempt_at=T0 + 100)
    await store.enqueue([*keys, other, future])
    assert ids(await store.claim("hooks", now=T0 + 50, limit=2, lease=LEASE)) == ids(keys[:2])
    assert ids(await store.claim("hooks", now=T0 + 50, limit=10, lease=LEASE)) == ids(keys[2:])
    assert ids(await store.claim("other", now=T0 + 50, limit=10, lease=LEASE)) == [other.id]
    assert await store.claim("nobody", now=T0 + 50, limit=10, lease=LEASE) == []
    assert ids(await store.claim("hooks", now=T0 + 100, limit=10, lease=LEASE)) == [future.id]


async def test_not_due_until_next_attempt_at(store: OutboxStore) -> None:
    m = message(now=T0)
    await store.enqueue([m])
    assert await store.claim("hooks", now=T0 - 0.001, limit=1, lease=LEASE) == []
    assert ids(await store.claim("hooks", now=T0, limit=1, lease=LEASE)) == [m.id]


@pytest.mark.parametrize(
    ("kw", "argument", "error"),
    [
        ({"destination": ""}, "destination", InvalidArgument),
        ({"destination": None}, "destination", InvalidArgumentType),
        ({"limit": 0}, "limit", InvalidArgument),
        ({"limit": -1}, "limit", InvalidArgument),
        ({"limit": 1.5}, "limit", InvalidArgumentType),
        ({"lease": 0}, "lease", InvalidArgument),
        ({"lease": -1.0}, "lease", InvalidArgument),
        ({"now": float("nan")}, "now", InvalidArgument),
        ({"now": -1.0}, "now", InvalidArgument),
    ],
)
async def test_claim_refuses_bad_arguments_by_name(
    store: OutboxStore, kw: dict[str, Any], argument: str, error: type
) -> None:
    args: dict[str, Any] = {"destination": "hooks", "now": T0, "limit": 1, "lease": LEASE, **kw}
    destination = args.pop("destination")
    with pytest.raises(error, match=argument):
        await store.claim(destination, **args)


# -- retry, complete, remove --------------------------------------------------------------


async def test_record_retry_refuses_a_missing_id_and_bad_arguments(store: OutboxStore) -> None:
    with pytest.raises(OutboxMessageNotFound, match="nope"):
        await store.record_retry("nope", attempts=1, next_attempt_at=T0)
    with pytest.raises(InvalidArgument, match="attempts"):
        await store.record_retry("x", attempts=-1, next_attempt_at=T0)
    with pytest.raises(InvalidArgument, match="next_attempt_at"):
        await store.record_retry("x", attempts=1, next_attempt_at=-5.0)
    with pytest.raises(InvalidArgument, match="status"):
        await store.record_retry("x", attempts=1, next_attempt_at=T0, status=42)
    with pytest.raises(InvalidArgumentType, match="error"):
        await store.record_retry("x", attempts=1, next_attempt_at=T0, error=b"x")  # type: ignore[arg-type]


async def test_complete_deletes_and_is_idempotent(store: OutboxStore) -> None:
    m = message()
    await store.enqueue([m])
    await store.claim("hooks", now=T0, limit=1, lease=LEASE)
    await store.complete(m.id)
    assert await store.get(m.id) is None
    await store.complete(m.id)  # delivered twice (a reclaimed lease): no error
    assert (await store.statistics(now=T0)).depth == 0


async def test_remove_returns_the_message_and_deletes_it(store: OutboxStore) -> None:
    m = message()
    await store.enqueue([m])
    [claimed] = await store.claim("hooks", now=T0, limit=1, lease=LEASE)
    assert await store.remove(m.id) == claimed
    assert await store.get(m.id) is None
    with pytest.raises(OutboxMessageNotFound):
        await store.remove(m.id)


# -- recovery ---------------------------------------------------------------------------


async def test_recover_puts_in_flight_back_keeping_attempts_and_idempotency_key(
    store: OutboxStore,
) -> None:
    a, b, c = message("a", idempotency_key="order-7"), message("b"), message("c")
    await store.enqueue([a, b, c])
    await store.claim("hooks", now=T0, limit=1, lease=LEASE)  # a
    await store.record_retry(a.id, attempts=2, next_attempt_at=T0 + 1)
    await store.claim("hooks", now=T0 + 1, limit=2, lease=LEASE)  # a again, and b
    assert await store.recover(now=T0 + 2) == 2
    back = await store.get(a.id)
    assert back is not None
    assert (back.state, back.lease_expires_at, back.next_attempt_at) == (
        OutboxState.PENDING,
        None,
        T0 + 2,
    )
    assert (back.attempts, back.idempotency_key) == (2, "order-7")
    assert (await store.statistics(now=T0 + 2)).in_flight == 0
    assert ids(await store.claim("hooks", now=T0 + 2, limit=10, lease=LEASE)) == [a.id, b.id, c.id]


async def test_recover_only_expired_leaves_live_leases(store: OutboxStore) -> None:
    a, b = message("a"), message("b")
    await store.enqueue([a])
    await store.claim("hooks", now=T0, limit=1, lease=10.0)  # a's lease ends at T0 + 10
    await store.enqueue([b])
    await store.claim("hooks", now=T0 + 5, limit=1, lease=10.0)  # b's at T0 + 15
    assert await store.recover(now=T0 + 9.999, only_expired=True) == 0
    assert await store.recover(now=T0 + 10, only_expired=True) == 1  # exactly at expiry
    got_a, got_b = await store.get(a.id), await store.get(b.id)
    assert got_a is not None
    assert got_a.state is OutboxState.PENDING
    assert got_b is not None
    assert got_b.state is OutboxState.IN_FLIGHT


# -- statistics, clock, closing --------------------------------------------------------------


async def test_statistics_per_destination(store: OutboxStore) -> None:
    await store.enqueue(
        [
            message("a", now=T0),
            message("b", now=T0 + 10),
            message("a", now=T0 + 20, destination="other"),
        ]
    )
    await store.claim("hooks", now=T0 + 30, limit=1, lease=LEASE)
    stats = await store.statistics(now=T0 + 30)
    assert (stats.depth, stats.in_flight) == (3, 1)
    hooks, other = stats.destinations["hooks"], stats.destinations["other"]
    assert (hooks.depth, hooks.in_flight, hooks.oldest_age) == (2, 1, 30.0)
    assert (other.depth, other.in_flight, other.oldest_age) == (1, 0, 10.0)
    assert list(stats.destinations) == ["hooks", "other"]
    empty = await MemoryOutboxStore().statistics(now=T0)
    assert (empty.depth, empty.in_flight, dict(empty.destinations)) == (0, 0, {})


async def test_now_defaults_to_the_store_clock(tmp_path: Path) -> None:
    clock = [T0 + 100.0]
    for store in (
        MemoryOutboxStore(clock=lambda: clock[0]),
        await SQLiteOutboxStore.open(tmp_path / "c.db", clock=lambda: clock[0]),
    ):
        await store.enqueue([message(now=T0)])
        [claimed] = await store.claim("hooks", limit=1, lease=LEASE)
        assert claimed.lease_expires_at == T0 + 100 + LEASE
        assert (await store.statistics()).destinations["hooks"].oldest_age == 100.0
        assert await store.recover() == 1
        await store.aclose()


async def test_a_closed_store_raises(store: OutboxStore) -> None:
    await store.aclose()
    await store.aclose()  # idempotent
    with pytest.raises(OutboxError, match="closed"):
        await store.enqueue([message()])
    with pytest.raises(OutboxError, match="closed"):
        await store.claim("hooks", now=T0, limit=1, lease=LEASE)
    with pytest.raises(OutboxError, match="closed"):
        await store.statistics(now=T0)


# -- SQLite only ------------------------------------------------------------------------


async def test_sqlite_reopened_finds_everything(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    a1, a2 = message("a", now=T0, headers={"X-A": "1"}), message("a", now=T0 + 1)
    async with open_outbox(path) as store:
        await store.enqueue([a1, a2])
        [claimed] = await store.claim("hooks", now=T0 + 2, limit=5, lease=LEASE)
    async with open_outbox(path) as store:
        assert await store.get(a1.id) == claimed
        assert await store.get(a2.id) == a2
        assert await store.recover(now=T0 + 3) == 1
        assert ids(await store.claim("hooks", now=T0 + 3, limit=5, lease=LEASE)) == [a1.id]
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone() == (APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    db.close()


def _snapshot(path: Path) -> bytes:
    return path.read_bytes()


async def test_sqlite_refuses_a_foreign_file_untouched(tmp_path: Path) -> None:
    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    before = _snapshot(foreign)
    with pytest.raises(OutboxError, match="another application"):
        await SQLiteOutboxStore.open(foreign)
    assert _snapshot(foreign) == before

    dead_letters = tmp_path / "dead.db"
    with sqlite3.connect(dead_letters) as db:
        db.execute(f"PRAGMA application_id = {0x6F747079:d}")  # the dead-letter store's
    db.close()
    before = _snapshot(dead_letters)
    with pytest.raises(OutboxError, match="application_id is 0x6f747079"):
        await SQLiteOutboxStore.open(dead_letters)
    assert _snapshot(dead_letters) == before


async def test_sqlite_refuses_a_newer_schema_untouched(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with open_outbox(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1:d}")
    db.close()
    before = _snapshot(path)
    with pytest.raises(OutboxError, match="newer otpy"):
        await SQLiteOutboxStore.open(path)
    assert _snapshot(path) == before


async def test_sqlite_refuses_a_damaged_schema(tmp_path: Path) -> None:
    path = tmp_path / "outbox.db"
    async with open_outbox(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE outbox DROP COLUMN last_error")
    db.close()
    with pytest.raises(OutboxError, match=r"outbox\.last_error"):
        await SQLiteOutboxStore.open(path)


async def test_sqlite_open_refuses_bad_options(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgument, match="synchronous"):
        await SQLiteOutboxStore.open(tmp_path / "o.db", synchronous="SOMETIMES")
    with pytest.raises(InvalidArgument, match="busy_timeout"):
        await SQLiteOutboxStore.open(tmp_path / "o.db", busy_timeout=-1)
    with pytest.raises(InvalidArgument, match="max_batch"):
        await SQLiteOutboxStore.open(tmp_path / "o.db", max_batch=0)
    with pytest.raises(OutboxError, match="cannot open"):
        await SQLiteOutboxStore.open(tmp_path / "missing" / "o.db")


async def test_sqlite_group_commits_concurrent_enqueues(tmp_path: Path) -> None:
    async with open_outbox(tmp_path / "o.db", synchronous="OFF") as store:
        results: list[int] = []

        async def one(n: int) -> None:
            results.append(await store.enqueue([message(f"k{n}", now=T0 + n)]))

        async with anyio.create_task_group() as tg:
            for n in range(50):
                tg.start_soon(one, n)
        assert results == [1] * 50
        assert (await store.statistics(now=T0)).depth == 50


# -- the two stores agree, and keys stay in order, whatever the calls ---------------------

_OPERATION = st.one_of(
    st.tuples(st.just("enqueue"), st.sampled_from("abc"), st.sampled_from(["hooks", "other"])),
    st.tuples(st.just("claim"), st.integers(1, 3), st.sampled_from(["hooks", "other"])),
    st.tuples(st.just("retry"), st.integers(0, 9), st.integers(0, 3)),
    st.tuples(st.just("complete"), st.integers(0, 9), st.just(0)),
    st.tuples(st.just("recover"), st.booleans(), st.just(0)),
    st.tuples(st.just("tick"), st.integers(1, 20), st.just(0)),
    st.tuples(st.just("mark_dead"), st.integers(0, 9), st.booleans()),
    st.tuples(st.just("remove_dead"), st.integers(0, 9), st.just(0)),
)


async def _play(store: OutboxStore, operations: list[tuple[str, Any, Any]]) -> list[object]:
    """Apply *operations* to *store*; return what each returned. Checks per-key order as it goes."""
    now = T0
    enqueued: list[OutboxMessage] = []
    in_flight: list[str] = []
    dead: list[str] = []
    gone: set[str] = set()
    seen: list[object] = []
    for step, (op, a, b) in enumerate(operations):
        if op == "enqueue":
            m = OutboxMessage.new(destination=b, key=a, body=b"x", now=now + step * 1e-3)
            enqueued.append(m)
            seen.append(await store.enqueue([m]))
        elif op == "claim":
            claimed = await store.claim(b, now=now, limit=a, lease=10.0)
            for m in claimed:  # the head of its key: nothing older of that key is left
                older = [
                    e.id
                    for e in enqueued
                    if (e.destination, e.key) == (m.destination, m.key)
                    and e.id < m.id
                    and e.id not in gone
                ]
                assert older == [], (m.id, older)
            in_flight += [m.id for m in claimed]
            seen.append(ids(claimed))
        elif op in ("retry", "complete") and in_flight:
            message_id = in_flight.pop(a % len(in_flight))
            if op == "retry":
                await store.record_retry(message_id, attempts=1, next_attempt_at=now + b)
            else:
                await store.complete(message_id)
                gone.add(message_id)
            seen.append((op, message_id))
        elif op == "recover":
            recovered = await store.recover(now=now, only_expired=a)
            if not a:
                in_flight.clear()
            seen.append(recovered)
        elif op == "tick":
            now += a
        elif op == "mark_dead":
            # An in-flight message (b) or any one left, pending or already dead.
            left = [e.id for e in enqueued if e.id not in gone]
            pool = in_flight if b and in_flight else left
            if pool:
                message_id = pool[a % len(pool)]
                if message_id in in_flight:
                    in_flight.remove(message_id)
                marked = await store.mark_dead(
                    message_id, attempts=a, status=500, error="x", now=now
                )
                dead += [message_id] if message_id not in dead else []
                seen.append(("mark_dead", message_id, marked.attempts, marked.dead_at))
        elif op == "remove_dead" and dead:
            message_id = dead.pop(a % len(dead))
            seen.append(("remove", (await store.remove(message_id)).id))
            gone.add(message_id)
    seen.append(ids(await store.dead()))
    seen.append(await store.statistics(now=now))
    return seen


@settings(max_examples=40)
@given(operations=st.lists(_OPERATION, max_size=40))
def test_the_sqlite_and_memory_stores_agree(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, Any, Any]]
) -> None:
    """Any sequence of calls gives the same answers from both stores, each claim a key's head."""
    path = tmp_path_factory.mktemp("agree") / "outbox.db"

    async def main() -> tuple[list[object], list[object]]:
        memory = MemoryOutboxStore()
        async with open_outbox(path, synchronous="OFF") as sqlite:
            from_sqlite = await _play(sqlite, operations)
        return await _play(memory, operations), from_sqlite

    from_memory, from_sqlite = anyio.run(main)
    # Ids differ between the runs (fresh ids); compare the shapes instead.
    assert _shape(from_memory) == _shape(from_sqlite)


def _shape(seen: list[object]) -> list[object]:
    """Replace ids by their order of first appearance, so two runs can be compared."""
    names: dict[str, int] = {}

    def one(value: object) -> object:
        if isinstance(value, str) and len(value) == 26:
            return names.setdefault(value, len(names))
        if isinstance(value, (list, tuple)):
            return [one(v) for v in value]
        return value

    return [one(v) for v in seen]


def test_a_header_that_could_not_be_sent_is_refused_when_the_message_is_built() -> None:
    """A lone surrogate cannot be encoded for the store or the request: refused at once, named."""
    with pytest.raises(InvalidArgument, match=r"headers.*lone surrogate"):
        message(headers={"x-note": "broken \udc80"})


async def test_gw_1_an_id_that_left_the_outbox_is_not_stored_again(store: OutboxStore) -> None:
    """GW-1: a message delivered (complete) or dead-lettered (remove) is refused if enqueued again."""
    delivered, dead, fresh = message("a"), message("b"), message("c")
    assert await store.enqueue([delivered, dead]) == 2
    await store.claim("hooks", now=T0, limit=5, lease=LEASE)
    await store.complete(delivered.id)
    await store.remove(dead.id)
    assert await store.enqueue([delivered, fresh, dead]) == 1
    assert await store.get(delivered.id) is None
    assert await store.get(dead.id) is None
    assert await store.get(fresh.id) == fresh


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sqlite_remembers_the_latest_settled_ids_only(tmp_path: Path) -> None:
    """The settled ids are bounded: past SETTLED_KEPT more, the oldest one may be stored again."""
    path = tmp_path / "outbox.db"
    first = message("a")
    async with open_outbox(path, synchronous="OFF") as store:
        await store.enqueue([first])
        await store.complete(first.id)
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute(
            "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ?) "
            "INSERT INTO settled (id) SELECT 'filler-' || i FROM n",
            (SETTLED_KEPT - 1,),
        )
        assert db.execute("SELECT count(*) FROM settled").fetchone() == (SETTLED_KEPT,)
    async with open_outbox(path, synchronous="OFF") as store:
        assert await store.enqueue([first]) == 0  # still among the latest SETTLED_KEPT
    with contextlib.closing(sqlite3.connect(path, isolation_level=None)) as db:
        db.execute("INSERT INTO settled (id) VALUES ('one-more')")
        assert db.execute("SELECT count(*) FROM settled").fetchone() == (SETTLED_KEPT,)
    async with open_outbox(path, synchronous="OFF") as store:
        assert await store.enqueue([first]) == 1


async def test_memory_remembers_the_latest_settled_ids_only(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The memory store keeps the same bound (here 2): the oldest settled id may come back."""
    monkeypatch.setattr("otpy.gateway._outbox_memory.SETTLED_KEPT", 2)
    store = MemoryOutboxStore(clock=lambda: T0)
    a, b, c = message("a"), message("b"), message("c")
    await store.enqueue([a, b, c])
    for m in (a, b, c):
        await store.complete(m.id)
    assert await store.enqueue([b, c]) == 0
    assert await store.enqueue([a]) == 1
