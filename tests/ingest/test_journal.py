"""The journal store contract, run against the SQLite and the memory store on both backends (IN-1..IN-5)."""

from __future__ import annotations

import re
import sqlite3
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otpy import InvalidArgument, InvalidArgumentType, JournalError, JournalFull
from otpy.ingest import (
    JOURNAL_APPLICATION_ID,
    Accepted,
    JournalEntry,
    JournalStore,
    MemoryJournalStore,
    RouteStatistics,
    SQLiteJournalStore,
    open_journal,
)
from otpy.ingest._journal_sqlite import MIGRATIONS, SCHEMA_VERSION, journal_error
from otpy.pressure import Priority

from ._helpers import T0, TTL, entry

if TYPE_CHECKING:
    from pathlib import Path

    from .conftest import OpenStore

# -- the entry --------------------------------------------------------------------------


def test_a_new_entry_has_a_fresh_id_its_id_as_key_and_converted_fields() -> None:
    """JournalEntry.new stamps a sortable id, keys by it by default, and converts bodies and pairs."""
    e = JournalEntry.new(
        route="orders",
        body=bytearray(b"hi"),
        now=T0,
        headers={"X-A": "1"},
        trace_context=[["traceparent", "00-abc-def-01"]],  # type: ignore[list-item]
        priority="high",
    )
    assert len(e.id) == 26
    assert e.key == e.id
    assert e.idempotency_key is None
    assert e.body == b"hi"
    assert type(e.body) is bytes
    assert e.headers == (("X-A", "1"),)
    assert e.trace_context == (("traceparent", "00-abc-def-01"),)
    assert e.priority is Priority.HIGH
    assert e.received_at == T0
    assert e.content_type == "application/octet-stream"
    keyed = JournalEntry.new(route="r", body=b"", now=T0, key="customer-1", idempotency_key="k")
    assert (keyed.key, keyed.idempotency_key, keyed.priority) == (
        "customer-1",
        "k",
        Priority.NORMAL,
    )
    assert entry(now=T0).id < entry(now=T0 + 0.001).id


def test_size_counts_the_body_and_the_headers_in_utf8() -> None:
    """An entry's budget share is its body's bytes plus its header names and values, UTF-8."""
    e = entry(body=b"12345", headers=[("X-É", "vé")], trace_context={"traceparent": "x" * 50})
    assert e.size == 5 + len("X-É".encode()) + len("vé".encode())
    assert entry(body=b"").size == 0


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("route", "", InvalidArgument),
        ("route", 3, InvalidArgumentType),
        ("key", "", InvalidArgument),
        ("idempotency_key", "", InvalidArgument),
        ("idempotency_key", 7, InvalidArgumentType),
        ("body", "text", InvalidArgumentType),
        ("headers", "X-A: 1", InvalidArgumentType),
        ("headers", [("X-A", 1)], InvalidArgumentType),
        ("headers", [("X-A", "\udc80")], InvalidArgument),
        ("trace_context", [("a", "b", "c")], InvalidArgumentType),
        ("priority", "urgent", InvalidArgument),
        ("priority", 2, InvalidArgumentType),
        ("content_type", "", InvalidArgument),
        ("now", -1.0, InvalidArgument),
        ("now", float("nan"), InvalidArgument),
    ],
)
def test_a_bad_entry_field_is_refused_by_name(field: str, value: object, error: type) -> None:
    """Each bad field raises the matching InvalidArgument, naming the field."""
    kw: dict[str, Any] = {"route": "r", "body": b"", "now": T0, field: value}
    with pytest.raises(error, match=rf"\b{field}\b"):
        JournalEntry.new(**kw)


def test_priority_takes_a_priority_or_its_name_in_any_case() -> None:
    """'low', 'CRITICAL' and Priority.HIGH are priorities; the stored value is the enum."""
    assert entry(priority="low").priority is Priority.LOW
    assert entry(priority="CRITICAL").priority is Priority.CRITICAL
    assert entry(priority=Priority.HIGH).priority is Priority.HIGH
    with pytest.raises(InvalidArgument, match="must be a Priority or one of 'low', 'normal'"):
        entry(priority="urgent")


# -- accept and deduplication -----------------------------------------------------------


async def test_both_stores_implement_the_protocol(open_store: OpenStore) -> None:
    """The SQLite and the memory store are JournalStores."""
    assert isinstance(await open_store(), JournalStore)


async def test_accept_stores_every_entry_and_answers_in_order(open_store: OpenStore) -> None:
    """Entries accepted together are each stored and answered, in order, as new."""
    store = await open_store()
    a = entry("a", headers={"X-A": "1"}, trace_context={"traceparent": "t"}, priority="high")
    b, c = entry(now=T0 + 1), entry("c", route="refunds", now=T0 + 2, key="customer-9")
    assert await store.accept([a, b, c], now=T0) == [Accepted(a.id), Accepted(b.id), Accepted(c.id)]
    assert await store.get(a.id) == a
    assert await store.get(b.id) == b
    assert await store.get(c.id) == c
    assert await store.get("nope") is None
    assert await store.accept([], now=T0) == []
    assert (await store.statistics(now=T0)).depth == 3


async def test_a_repeat_within_the_window_is_a_duplicate_of_the_original(
    open_store: OpenStore,
) -> None:
    """Up to dedup_ttl seconds after acceptance, a repeated (route, key) gets the original's id."""
    store = await open_store(dedup_ttl=TTL)
    first = entry("k")
    assert await store.accept([first], now=T0) == [Accepted(first.id)]
    again = entry("k", now=T0 + TTL, body=b"another body")
    assert await store.accept([again], now=T0 + TTL) == [Accepted(first.id, duplicate=True)]
    assert await store.get(again.id) is None
    assert (await store.statistics(now=T0)).depth == 1


async def test_a_repeat_after_the_window_is_stored_and_opens_a_new_window(
    open_store: OpenStore,
) -> None:
    """Just past dedup_ttl the repeat is new, and later repeats point to it."""
    store = await open_store(dedup_ttl=TTL)
    first = entry("k")
    await store.accept([first], now=T0)
    late = entry("k", now=T0 + TTL + 0.001)
    assert await store.accept([late], now=T0 + TTL + 0.001) == [Accepted(late.id)]
    later = entry("k", now=T0 + 2 * TTL)
    assert await store.accept([later], now=T0 + 2 * TTL) == [Accepted(late.id, duplicate=True)]
    assert [e.id for e in await store.pending(limit=10)] == [first.id, late.id]
    assert (await store.statistics(now=T0)).dedup_records == 1
    assert await store.purge(now=T0 + 3 * TTL) == 1  # the replaced record is not counted twice
    assert (await store.statistics(now=T0)).dedup_records == 0


async def test_only_the_same_route_and_key_is_a_duplicate(open_store: OpenStore) -> None:
    """Another key on the route, the same key on another route, or no key: all stored."""
    store = await open_store()
    entries = [
        entry("k"),
        entry("k2"),
        entry("k", route="refunds"),
        entry(),
        entry(),
    ]
    answers = await store.accept(entries, now=T0)
    assert answers == [Accepted(e.id) for e in entries]
    assert (await store.statistics(now=T0)).dedup_records == 3  # entries without a key have none


async def test_a_repeat_within_one_call_is_a_duplicate_of_the_first(open_store: OpenStore) -> None:
    """The second of two entries with one (route, key) in a call answers the first's id."""
    store = await open_store()
    first, second, other = entry("k"), entry("k", now=T0 + 1), entry("j")
    assert await store.accept([first, second, other], now=T0) == [
        Accepted(first.id),
        Accepted(first.id, duplicate=True),
        Accepted(other.id),
    ]
    assert [e.id for e in await store.pending(limit=10)] == [first.id, other.id]


async def test_accepting_a_pending_entry_again_stores_nothing(open_store: OpenStore) -> None:
    """An accept retried after a timeout answers its pending entries as duplicates of themselves."""
    store = await open_store()
    e = entry()
    await store.accept([e], now=T0)
    assert await store.accept([e, e], now=T0 + 1) == [Accepted(e.id, duplicate=True)] * 2
    assert (await store.statistics(now=T0)).depth == 1
    assert await store.mark_handed_over([e.id]) == 1
    assert await store.accept([e], now=T0 + 2) == [Accepted(e.id)]  # no key: only the id dedups


async def test_a_repeat_of_a_handed_over_entry_is_still_a_duplicate(open_store: OpenStore) -> None:
    """The dedup record outlives the hand-over: the repeat is answered, nothing stored."""
    store = await open_store()
    e = entry("k")
    await store.accept([e], now=T0)
    assert await store.mark_handed_over([e.id]) == 1
    assert await store.accept([entry("k", now=T0 + 5)], now=T0 + 5) == [
        Accepted(e.id, duplicate=True)
    ]
    stats = await store.statistics(now=T0)
    assert (stats.depth, stats.dedup_records) == (0, 1)


# -- the budget -------------------------------------------------------------------------


async def test_the_budget_holds_exactly_max_bytes(open_store: OpenStore) -> None:
    """Pending bytes may reach max_bytes exactly; one byte more is refused until a hand-over."""
    store = await open_store(max_bytes=100)
    a = entry(body=b"x" * 60)
    b = entry(body=b"y" * 30, headers={"X-Ab": "cdefgh"})  # 30 + 4 + 6
    await store.accept([a, b], now=T0)
    assert (await store.statistics(now=T0)).bytes_used == 100
    one = entry(body=b"z")
    with pytest.raises(JournalFull) as refused:
        await store.accept([one], now=T0)
    assert (refused.value.max_bytes, refused.value.used, refused.value.requested) == (100, 100, 1)
    assert str(refused.value) == (
        "the ingest journal is full: 100 of its 100 bytes are pending and this accept needs 1 "
        "more; nothing was stored and the node answers 429 until the hand-over to the gateway "
        "frees room: check that the gateway keeps up, or raise max_bytes"
    )
    assert await store.get(one.id) is None
    assert await store.mark_handed_over([b.id]) == 1
    assert (await store.statistics(now=T0)).bytes_used == 60
    assert await store.accept([one], now=T0) == [Accepted(one.id)]
    assert (await store.statistics(now=T0)).bytes_used == 61


async def test_a_refused_accept_stores_nothing_of_its_call(open_store: OpenStore) -> None:
    """Past the budget, no entry of the call is stored and no dedup record is kept."""
    store = await open_store(max_bytes=100)
    small, large = entry("small", body=b"x" * 50), entry("large", body=b"x" * 51)
    with pytest.raises(JournalFull) as refused:
        await store.accept([small, large], now=T0)
    assert (refused.value.used, refused.value.requested) == (0, 101)
    stats = await store.statistics(now=T0)
    assert (stats.depth, stats.bytes_used, stats.dedup_records) == (0, 0, 0)
    assert await store.accept([small], now=T0) == [Accepted(small.id)]  # not a duplicate


async def test_duplicates_take_no_budget(open_store: OpenStore) -> None:
    """A full journal still answers a repeat with the original's id."""
    store = await open_store(max_bytes=10)
    e = entry("k", body=b"x" * 10)
    await store.accept([e], now=T0)
    assert await store.accept([entry("k", body=b"x" * 10)], now=T0 + 1) == [
        Accepted(e.id, duplicate=True)
    ]


# -- pending and the hand-over ----------------------------------------------------------


async def test_pending_pages_oldest_first_by_id(open_store: OpenStore) -> None:
    """Pages of `limit` entries in id order, whatever the order of acceptance."""
    store = await open_store()
    entries = [entry(now=T0 + i) for i in range(5)]
    await store.accept([entries[3], entries[0]], now=T0)
    await store.accept([entries[4], entries[1], entries[2]], now=T0)
    first = await store.pending(limit=2)
    assert first == entries[:2]
    second = await store.pending(limit=2, after=first[-1].id)
    assert second == entries[2:4]
    assert await store.pending(limit=2, after=second[-1].id) == entries[4:]
    assert await store.pending(limit=2, after=entries[4].id) == []
    assert await store.pending(limit=100) == entries


async def test_mark_handed_over_deletes_pending_entries_and_is_idempotent(
    open_store: OpenStore,
) -> None:
    """It counts the entries that were pending; repeats and unknown ids count nothing."""
    store = await open_store()
    a, b, c = entry(body=b"aa"), entry(body=b"bbb"), entry(body=b"c")
    await store.accept([a, b, c], now=T0)
    assert await store.mark_handed_over([a.id, b.id, a.id, "unknown"]) == 2
    assert await store.mark_handed_over([a.id, b.id]) == 0
    assert await store.mark_handed_over([]) == 0
    assert await store.get(a.id) is None
    assert await store.pending(limit=10) == [c]
    assert (await store.statistics(now=T0)).bytes_used == 1


# -- dedup retention --------------------------------------------------------------------


async def test_purge_evicts_the_records_older_than_the_window(open_store: OpenStore) -> None:
    """A record exactly dedup_ttl old stays; once older it goes, and the key is new again."""
    store = await open_store(dedup_ttl=TTL)
    a, b = entry("a"), entry("b", now=T0 + 10)
    await store.accept([a], now=T0)
    await store.accept([b], now=T0 + 10)
    assert await store.purge(now=T0 + TTL) == 0
    assert await store.purge(now=T0 + TTL + 1) == 1
    assert (await store.statistics(now=T0)).dedup_records == 1
    assert await store.purge(now=T0 + TTL + 1) == 0
    assert await store.purge(now=T0 + TTL + 11) == 1
    assert (await store.statistics(now=T0)).dedup_records == 0


async def test_dedup_max_evicts_the_oldest_records(open_store: OpenStore) -> None:
    """Past dedup_max records the oldest accepted go first, so their repeats are new."""
    store = await open_store(dedup_max=2)
    a, b, c = entry("a"), entry("b"), entry("c")
    await store.accept([a], now=T0 + 2)
    await store.accept([b], now=T0 + 1)  # the clock stepped back: b is the oldest
    await store.accept([c], now=T0 + 3)
    assert (await store.statistics(now=T0)).dedup_records == 2
    a2, b2 = entry("a"), entry("b")
    assert await store.accept([a2, b2], now=T0 + 4) == [
        Accepted(a.id, duplicate=True),
        Accepted(b2.id),
    ]


# -- statistics, clock, closing, arguments ----------------------------------------------


async def test_the_steady_rate_is_saved_and_read_back(open_store: OpenStore) -> None:
    """steady_rate() is None until saved; the last save wins; a bad rate is refused by name."""
    store = await open_store()
    assert await store.steady_rate() is None
    await store.save_steady_rate(12)
    await store.save_steady_rate(40.5)
    assert await store.steady_rate() == 40.5
    with pytest.raises(InvalidArgument, match=r"save_steady_rate: rate must be a finite number"):
        await store.save_steady_rate(float("nan"))
    assert await store.steady_rate() == 40.5


async def test_statistics_per_route_and_in_total(open_store: OpenStore) -> None:
    """Depth, oldest age and bytes per route with pending entries, summed; ages from received_at."""
    store = await open_store(max_bytes=1000)
    empty = await store.statistics(now=T0)
    assert (empty.routes, empty.depth, empty.oldest_age, empty.bytes_used) == ({}, 0, 0.0, 0)
    assert (empty.max_bytes, empty.dedup_records) == (1000, 0)
    await store.accept(
        [
            entry("a", now=T0, body=b"1234"),
            entry(now=T0 + 30, body=b"12"),
            entry("a", route="refunds", now=T0 + 50, body=b"1"),
        ],
        now=T0 + 60,
    )
    stats = await store.statistics(now=T0 + 100)
    assert stats.routes == {
        "orders": RouteStatistics(depth=2, oldest_age=100.0, bytes_used=6),
        "refunds": RouteStatistics(depth=1, oldest_age=50.0, bytes_used=1),
    }
    assert list(stats.routes) == ["orders", "refunds"]
    assert (stats.depth, stats.oldest_age, stats.bytes_used, stats.dedup_records) == (
        3,
        100.0,
        7,
        2,
    )
    assert (await store.statistics(now=T0 - 10)).oldest_age == 0.0  # never negative


async def test_now_defaults_to_the_store_clock(open_store: OpenStore) -> None:
    """accept, purge and statistics read the store's clock when no time is given."""
    clock = [T0]
    store = await open_store(dedup_ttl=TTL, clock=lambda: clock[0])
    first = entry("k")
    await store.accept([first])
    clock[0] = T0 + TTL
    assert await store.accept([entry("k")]) == [Accepted(first.id, duplicate=True)]
    assert await store.purge() == 0
    clock[0] = T0 + TTL + 1
    assert (await store.statistics()).oldest_age == TTL + 1
    assert await store.purge() == 1


async def test_a_closed_store_raises_journal_error(open_store: OpenStore) -> None:
    """Every call on a closed store raises JournalError saying it is closed; closing twice is fine."""
    store = await open_store()
    e = entry()
    await store.accept([e], now=T0)
    await store.aclose()
    await store.aclose()
    for call in (
        store.accept([entry()], now=T0),
        store.accept([], now=T0),
        store.pending(limit=1),
        store.mark_handed_over([e.id]),
        store.mark_handed_over([]),
        store.purge(now=T0),
        store.get(e.id),
        store.statistics(now=T0),
    ):
        with pytest.raises(JournalError, match="closed"):
            await call


async def test_calls_refuse_bad_arguments_by_name(open_store: OpenStore) -> None:
    """Each bad argument raises InvalidArgument(Type) naming it, before anything changes."""
    store = await open_store()
    bad: list[tuple[Any, type[Exception], str]] = [
        (store.accept(entry()), InvalidArgumentType, "entries"),  # type: ignore[arg-type]
        (store.accept(["x"]), InvalidArgumentType, "entries"),  # type: ignore[list-item]
        (store.accept([entry()], timeout=-1), InvalidArgument, "timeout"),
        (store.accept([entry()], now=-1), InvalidArgument, "now"),
        (store.pending(limit=0), InvalidArgument, "limit"),
        (store.pending(limit=1, after=3), InvalidArgumentType, "after"),  # type: ignore[arg-type]
        (store.mark_handed_over("id"), InvalidArgumentType, "ids"),
        (store.mark_handed_over([1]), InvalidArgumentType, "ids"),  # type: ignore[list-item]
        (store.purge(now=float("inf")), InvalidArgument, "now"),
        (store.get(3), InvalidArgumentType, "entry_id"),  # type: ignore[arg-type]
        (store.statistics(now="now"), InvalidArgumentType, "now"),  # type: ignore[arg-type]
    ]
    for call, error, argument in bad:
        with pytest.raises(error, match=rf"\b{argument}\b"):
            await call
    assert (await store.statistics(now=T0)).depth == 0


@pytest.mark.parametrize(
    ("option", "value"), [("max_bytes", 0), ("dedup_ttl", 0), ("dedup_max", 0)]
)
async def test_a_store_refuses_bad_options_by_name(
    open_store: OpenStore, option: str, value: object
) -> None:
    """A budget, window or record cap below its minimum is refused, naming it."""
    with pytest.raises(InvalidArgument, match=rf"\b{option}\b"):
        await open_store(**{option: value})


async def test_accept_takes_a_timeout(open_store: OpenStore) -> None:
    """An infinite timeout is no limit: the accept commits as any other."""
    store = await open_store()
    a, b = entry(), entry()
    assert await store.accept([a], now=T0, timeout=float("inf")) == [Accepted(a.id)]
    assert await store.accept([b], now=T0, timeout=None) == [Accepted(b.id)]


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_sqlite_an_accept_timed_out_may_commit_and_is_then_a_duplicate(
    tmp_path: Path,
) -> None:
    """A timed-out accept whose commit went through later answers a retry as duplicates."""
    path = tmp_path / "journal.db"
    async with open_journal(path, busy_timeout=30.0) as store:
        keyed, plain = entry("k"), entry()
        blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        try:
            blocker.execute("BEGIN IMMEDIATE")  # the writer waits for this lock
            with pytest.raises(TimeoutError, match=r"not committed within 0\.05s; it may still"):
                await store.accept([keyed, plain], now=T0, timeout=0.05)
            blocker.execute("COMMIT")
        finally:
            blocker.close()
        assert await store.accept([keyed, plain], now=T0) == [
            Accepted(keyed.id, duplicate=True),
            Accepted(plain.id, duplicate=True),
        ]


async def test_concurrent_accepts_store_one_entry_per_key(open_store: OpenStore) -> None:
    """Fifty concurrent accepts of ten keys: exactly one stored per key, the rest its duplicates."""
    store = await open_store()
    answers: list[tuple[str, Accepted]] = []

    async def one(n: int) -> None:
        [answer] = await store.accept([entry(f"k{n % 10}")], now=T0)
        answers.append((f"k{n % 10}", answer))

    async with anyio.create_task_group() as tg:
        for n in range(50):
            tg.start_soon(one, n)
    stored = {key: a.id for key, a in answers if not a.duplicate}
    assert len(stored) == 10
    assert all(a.id == stored[key] for key, a in answers)
    assert (await store.statistics(now=T0)).depth == 10


# -- SQLite only ------------------------------------------------------------------------


async def test_sqlite_reopened_finds_everything(tmp_path: Path) -> None:
    """Pending entries, their bytes and the dedup records survive a close and reopen."""
    path = tmp_path / "journal.db"
    a = entry("a", headers={"X-A": "1"}, trace_context={"traceparent": "t"}, priority="low")
    b, c = entry("b", body=b"12345"), entry()
    async with open_journal(path, dedup_ttl=TTL) as store:
        await store.accept([a, b, c], now=T0)
        await store.mark_handed_over([b.id])
    async with open_journal(path, dedup_ttl=TTL) as store:
        assert await store.pending(limit=10) == [a, c]
        assert await store.accept([entry("b")], now=T0 + 1) == [Accepted(b.id, duplicate=True)]
        stats = await store.statistics(now=T0)
        assert (stats.depth, stats.bytes_used, stats.dedup_records) == (2, a.size + c.size, 2)
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA application_id").fetchone() == (JOURNAL_APPLICATION_ID,)
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("SELECT pending_bytes, dedup_records FROM usage").fetchone() == (
            a.size + c.size,
            2,
        )
    db.close()


async def test_sqlite_reopened_with_a_smaller_budget_refuses_until_it_drains(
    tmp_path: Path,
) -> None:
    """Over a lowered budget even an empty entry is refused; a repeat is still answered."""
    path = tmp_path / "journal.db"
    e = entry("k", body=b"x" * 50)
    async with open_journal(path) as store:
        await store.accept([e], now=T0)
    async with open_journal(path, max_bytes=40) as store:
        with pytest.raises(JournalFull) as refused:
            await store.accept([entry(body=b"")], now=T0)
        assert (refused.value.used, refused.value.requested) == (50, 0)
        assert await store.accept([entry("k")], now=T0) == [Accepted(e.id, duplicate=True)]
        await store.mark_handed_over([e.id])
        assert (await store.accept([entry(body=b"")], now=T0))[0].duplicate is False


async def test_sqlite_keeps_the_steady_rate_across_a_reopen_and_migrates_a_version_1_file(
    tmp_path: Path,
) -> None:
    """The saved rate survives a reopen; a version 1 file gains the column, its entries kept."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as store:
        await store.save_steady_rate(250.0)
    async with open_journal(path) as store:
        assert await store.steady_rate() == 250.0

    old = tmp_path / "v1.db"
    with sqlite3.connect(old) as db:
        for statement in MIGRATIONS[0]:
            db.execute(statement)
        db.execute(f"PRAGMA application_id = {JOURNAL_APPLICATION_ID:d}")
        db.execute("PRAGMA user_version = 1")
    db.close()
    e = entry("k")
    async with open_journal(old) as store:
        await store.accept([e], now=T0)
        assert await store.steady_rate() is None
        await store.save_steady_rate(3.0)
    async with open_journal(old) as store:
        assert await store.pending(limit=10) == [e]
        assert await store.steady_rate() == 3.0
    with sqlite3.connect(old) as db:
        assert db.execute("PRAGMA user_version").fetchone() == (SCHEMA_VERSION,)
    db.close()


async def test_sqlite_refuses_a_foreign_file_untouched(tmp_path: Path) -> None:
    """Another application's database, the dead-letter store's and the outbox's are left as they are."""
    foreign = tmp_path / "app.db"
    with sqlite3.connect(foreign) as db:
        db.execute("CREATE TABLE t (x)")
    db.close()
    before = foreign.read_bytes()
    with pytest.raises(JournalError, match="another application"):
        await SQLiteJournalStore.open(foreign)
    assert foreign.read_bytes() == before

    for application_id in (0x6F747079, 0x6F74706F):  # the dead-letter store's, the outbox's
        other = tmp_path / f"{application_id:x}.db"
        with sqlite3.connect(other) as db:
            db.execute(f"PRAGMA application_id = {application_id:d}")
        db.close()
        before = other.read_bytes()
        with pytest.raises(JournalError, match=f"application_id is {application_id:#010x}"):
            await SQLiteJournalStore.open(other)
        assert other.read_bytes() == before


async def test_sqlite_refuses_a_newer_schema_untouched(tmp_path: Path) -> None:
    """A file of a newer otpy is refused with an upgrade hint, unchanged."""
    path = tmp_path / "journal.db"
    async with open_journal(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1:d}")
    db.close()
    before = path.read_bytes()
    with pytest.raises(JournalError, match="newer otpy"):
        await SQLiteJournalStore.open(path)
    assert path.read_bytes() == before


async def test_sqlite_refuses_a_damaged_schema(tmp_path: Path) -> None:
    """A missing column, or the missing usage row, is named."""
    path = tmp_path / "journal.db"
    async with open_journal(path):
        pass
    with sqlite3.connect(path) as db:
        db.execute("DELETE FROM usage")
    db.close()
    with pytest.raises(JournalError, match="damaged, missing the usage row"):
        await SQLiteJournalStore.open(path)
    with sqlite3.connect(path) as db:
        db.execute("DROP INDEX inbox_accepted_at")
        db.execute("ALTER TABLE inbox DROP COLUMN accepted_at")
    db.close()
    with pytest.raises(JournalError, match=r"missing inbox\.accepted_at$"):
        await SQLiteJournalStore.open(path)


async def test_sqlite_open_refuses_bad_options(tmp_path: Path) -> None:
    """Bad synchronous and busy_timeout values are named; a missing directory says so."""
    with pytest.raises(InvalidArgument, match="synchronous"):
        await SQLiteJournalStore.open(tmp_path / "j.db", synchronous="SOMETIMES")
    with pytest.raises(InvalidArgument, match="busy_timeout"):
        await SQLiteJournalStore.open(tmp_path / "j.db", busy_timeout=-1)
    with pytest.raises(JournalError, match="cannot open"):
        await SQLiteJournalStore.open(tmp_path / "missing" / "j.db")


async def test_sqlite_an_unreadable_row_is_a_journal_error(tmp_path: Path) -> None:
    """A row with a priority otpy does not know raises JournalError naming the entry."""
    path = tmp_path / "journal.db"
    e = entry()
    async with open_journal(path) as store:
        await store.accept([e], now=T0)
    with sqlite3.connect(path) as db:
        db.execute("UPDATE journal SET priority = 'urgent'")
    db.close()
    async with open_journal(path) as store:
        with pytest.raises(JournalError, match=rf"entry '{e.id}' cannot be read: .*priority"):
            await store.get(e.id)


@pytest.mark.parametrize(
    ("code", "detail"),
    [
        (sqlite3.SQLITE_BUSY, "another process held the write lock for more than 5s"),
        (sqlite3.SQLITE_FULL, "the disk is full"),
        (sqlite3.SQLITE_NOTADB, "not a database"),
        (sqlite3.SQLITE_CORRUPT, "the file is damaged (boom)"),
        (sqlite3.SQLITE_READONLY, "not writable (boom)"),
        (sqlite3.SQLITE_IOERR, "sqlite failed with"),
    ],
)
def test_sqlite_errors_are_translated_with_what_to_do(code: int, detail: str) -> None:
    """Each SQLite failure becomes a JournalError naming the file and the cause."""
    exc = sqlite3.OperationalError("boom")
    exc.sqlite_errorcode = code
    error = journal_error(exc, "var/journal.db", 5.0)
    assert str(error).startswith("journal var/journal.db: ")
    assert re.escape(detail) in re.escape(str(error))


async def test_sqlite_a_read_sqlite_refuses_is_a_journal_error(tmp_path: Path) -> None:
    """A read failing in SQLite (its table dropped under it) raises JournalError naming the file."""
    path = tmp_path / "journal.db"
    async with open_journal(path) as store:
        assert repr(store) == f"<SQLiteJournalStore {str(path)!r}>"
        with sqlite3.connect(path) as db:
            db.execute("DROP TABLE journal")
        db.close()
        with pytest.raises(JournalError, match=rf"^journal {re.escape(str(path))}: sqlite failed"):
            await store.get("x")
    assert repr(store) == f"<SQLiteJournalStore {str(path)!r} closed>"


async def test_the_memory_store_says_what_it_holds() -> None:
    """Its repr counts the pending entries and says when it is closed."""
    store = MemoryJournalStore()
    await store.accept([entry()], now=T0)
    assert repr(store) == "<MemoryJournalStore 1 pending>"
    await store.aclose()
    assert repr(store) == "<MemoryJournalStore closed 1 pending>"


# -- the two stores agree, whatever the calls -------------------------------------------

_ENTRY = st.tuples(
    st.sampled_from(["orders", "refunds"]),
    st.sampled_from([None, "x", "y", "z"]),
    st.integers(0, 30),
)
_OPERATION = st.one_of(
    st.tuples(st.just("accept"), st.lists(_ENTRY, max_size=3)),
    st.tuples(st.just("tick"), st.integers(1, 40)),
    st.tuples(st.just("hand_over"), st.lists(st.integers(0, 9), max_size=3)),
    st.tuples(st.just("purge"), st.just(0)),
    st.tuples(st.just("pending"), st.integers(1, 3)),
)


def _build(operations: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Build the entries of each accept once, so both stores get the same ids."""
    built: list[tuple[str, Any]] = []
    for step, (op, argument) in enumerate(operations):
        if op == "accept":
            argument = [
                entry(key, route=route, now=T0 + step, body=b"x" * size)
                for route, key, size in argument
            ]
        built.append((op, argument))
    return built


async def _play(store: JournalStore, operations: list[tuple[str, Any]]) -> list[object]:
    """Apply *operations* to *store*; return what each returned."""
    now = T0
    seen: list[object] = []
    for op, argument in operations:
        if op == "accept":
            try:
                seen.append(await store.accept(argument, now=now))
            except JournalFull as full:
                seen.append(("full", full.used, full.requested))
        elif op == "tick":
            now += argument
        elif op == "hand_over":
            pending = [e.id for e in await store.pending(limit=100)]
            chosen = [pending[i % len(pending)] for i in argument] if pending else ["unknown"]
            seen.append(await store.mark_handed_over(chosen))
        elif op == "purge":
            seen.append(await store.purge(now=now))
        else:
            first = await store.pending(limit=argument)
            after = first[-1].id if first else None
            seen.append((first, await store.pending(limit=argument, after=after)))
        seen.append(await store.statistics(now=now))
    seen.append(await store.pending(limit=1000))
    return seen


@settings(max_examples=40)
@given(operations=st.lists(_OPERATION, max_size=30))
def test_the_sqlite_and_memory_stores_agree(
    tmp_path_factory: pytest.TempPathFactory, operations: list[tuple[str, Any]]
) -> None:
    """Any sequence of calls gives the same answers and statistics from both stores."""
    path = tmp_path_factory.mktemp("agree") / "journal.db"
    played = _build(operations)
    options: dict[str, Any] = {"max_bytes": 80, "dedup_ttl": TTL, "dedup_max": 3}

    async def main() -> tuple[list[object], list[object]]:
        memory = MemoryJournalStore(**options)
        async with open_journal(path, synchronous="OFF", **options) as sqlite:
            from_sqlite = await _play(sqlite, played)
        return await _play(memory, played), from_sqlite

    from_memory, from_sqlite = anyio.run(main)
    assert from_memory == from_sqlite
