"""The DeadLetterStore protocol, run against every store: memory (the reference) and SQLite.

Both stores must answer alike, so every test here runs on both. The SQLite store only
runs on asyncio (aiosqlite); the memory store also runs on trio. Time comes from a
fake wall clock injected as ``clock=``, so leases and ages move without sleeping.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import anyio
import attrs
import pytest

from otpy._exceptions import DeadLetterNotFound, DeadLetterStoreError, InvalidArgument
from otpy.deadletter import (
    Action,
    DeadLetter,
    DeadLetterFilter,
    DeadLetterStore,
    LedgerState,
    MemoryDeadLetterStore,
    ReplayOutcome,
    ReplayStarter,
    ReplayStatus,
    RetentionPolicy,
    RetentionRule,
    Source,
    SQLiteDeadLetterStore,
    Status,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator
    from pathlib import Path

T0 = 1_700_000_000.0
INLINE_LIMIT = 100


@attrs.define
class FakeClock:
    """A wall clock that only moves when a test says so."""

    now: float = T0

    def __call__(self) -> float:
        """Return the current fake time."""
        return self.now

    def advance(self, seconds: float) -> None:
        """Move time forward."""
        self.now += seconds


@pytest.fixture(
    params=[
        pytest.param(("memory", "asyncio"), id="memory-asyncio"),
        pytest.param(("memory", "trio"), id="memory-trio"),
        pytest.param(("sqlite", "asyncio"), id="sqlite-asyncio"),
    ]
)
def flavour(request: pytest.FixtureRequest) -> tuple[str, str]:
    """Which store, on which backend (aiosqlite needs asyncio)."""
    value: tuple[str, str] = request.param
    return value


@pytest.fixture
def anyio_backend(flavour: tuple[str, str]) -> tuple[str, dict[str, Any]]:
    """The backend the flavour asks for."""
    if flavour[1] == "trio":
        from trio.testing import MockClock

        return ("trio", {"clock": MockClock(autojump_threshold=0)})
    return ("asyncio", {})


@pytest.fixture
def clock() -> FakeClock:
    """The store's wall clock."""
    return FakeClock()


@pytest.fixture
async def store(
    flavour: tuple[str, str], clock: FakeClock, tmp_path: Path
) -> AsyncIterator[DeadLetterStore]:
    """An empty store of the flavour, on the fake clock, with a 100-byte inline limit."""
    if flavour[0] == "memory":
        memory = MemoryDeadLetterStore(clock=clock, inline_limit=INLINE_LIMIT)
        yield memory
        await memory.aclose()
    else:
        sqlite = await SQLiteDeadLetterStore.open(
            tmp_path / "dead.db", synchronous="NORMAL", inline_limit=INLINE_LIMIT, clock=clock
        )
        yield sqlite
        await sqlite.aclose()


def make(clock: FakeClock, key: str = "dest", **changes: Any) -> DeadLetter:
    """A record captured now on *clock*, with *changes* applied."""
    fields: dict[str, Any] = {
        "key": key,
        "source": Source.OUTBOUND,
        "reason_class": "httpx.ConnectTimeout",
        "reason": "timed out",
        "payload": b"hello",
        "trace_context": {},
        "now": clock.now,
    }
    fields.update(changes)
    return DeadLetter.capture(**fields)


async def add(store: DeadLetterStore, *records: DeadLetter) -> tuple[DeadLetter, ...]:
    """Store *records* and return them."""
    assert await store.add_many(records) == len(records)
    return records


def only_ids(ids: tuple[str, ...]) -> DeadLetterFilter:
    """A filter for exactly *ids*."""
    # Through Any: mypy reads the `optional(tuple)` converter of `ids` as taking
    # `Iterable[_T_co]` with the type variable unbound, and rejects every tuple.
    build: Any = DeadLetterFilter
    where: DeadLetterFilter = build(ids=ids)
    return where


async def listed_ids(store: DeadLetterStore, where: DeadLetterFilter | None = None) -> list[str]:
    """Every matching id, newest first, across all pages."""
    where = where or DeadLetterFilter()
    ids: list[str] = []
    cursor = None
    while True:
        page = await store.list(where, limit=7, cursor=cursor)
        ids += [r.id for r in page.records]
        cursor = page.next_cursor
        if cursor is None:
            return ids


# -- add, get, list -------------------------------------------------------------------


async def test_store_implements_the_protocol(store: DeadLetterStore) -> None:
    """Each store is a DeadLetterStore (the runtime-checkable protocol)."""
    assert isinstance(store, DeadLetterStore)


async def test_dl_3_get_returns_the_record_as_added(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-3: get returns the stored record, payload and all."""
    (record,) = await add(store, make(clock, payload=b"\x00\xff" * 300, correlation_id="c-1"))
    assert await store.get(record.id) == record


async def test_dl_3_get_unknown_id_is_not_found(store: DeadLetterStore, clock: FakeClock) -> None:
    """DL-3: get of an id never stored raises DeadLetterNotFound naming it."""
    await add(store, make(clock))
    missing = make(clock).id
    with pytest.raises(DeadLetterNotFound, match=rf"^dead letter '{missing}' not found"):
        await store.get(missing)


async def test_add_many_stores_a_retried_capture_once(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """add_many skips ids already stored and reports only the new ones."""
    first, second = make(clock), make(clock)
    assert await store.add_many([first]) == 1
    assert await store.add_many([first, second, second]) == 1
    assert await store.count() == 2
    assert (await store.statistics()).captured == 2


async def test_add_many_refuses_another_record_under_a_stored_id(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """A different record under a stored id is an error and the whole batch is refused, never silently dropped."""
    (stored,) = await add(store, make(clock))
    impostor, bystander = attrs.evolve(stored, key="elsewhere"), make(clock)
    with pytest.raises(
        DeadLetterStoreError,
        match=rf"dead letter {stored.id} is already stored with different content, so the "
        "batch was refused and nothing in it was stored",
    ):
        await store.add_many([bystander, impostor])
    assert await store.get(stored.id) == stored
    assert await store.count() == 1
    assert (await store.statistics()).captured == 1


async def test_add_many_skips_a_recapture_whose_replay_state_moved_on(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """Twin: the same capture retried after its record was archived is skipped, not an error."""
    (stored,) = await add(store, make(clock, payload=b"x" * 500))
    clock.advance(5.0)
    assert await store.archive(only_ids((stored.id,))) == 1
    assert await store.add_many([stored, stored]) == 0
    assert (await store.get(stored.id)).status is Status.ARCHIVED
    assert await store.count() == 1


async def test_add_many_of_nothing_is_zero(store: DeadLetterStore) -> None:
    """An empty batch stores nothing and counts nothing."""
    assert await store.add_many([]) == 0
    assert (await store.statistics()).captured == 0


async def test_add_many_refuses_a_record_without_its_payload(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """A listed record (payload not loaded) cannot be stored: its body would be lost."""
    record = attrs.evolve(make(clock, payload=b"x" * 500), payload=None)
    with pytest.raises(ValueError, match="cannot store a record without its payload"):
        await store.add_many([record])
    assert await store.count() == 0


async def test_dl_3_list_is_newest_first(store: DeadLetterStore, clock: FakeClock) -> None:
    """DL-3: list returns records newest first."""
    records = []
    for _ in range(5):
        records.append(make(clock))
        clock.advance(1.0)
    await add(store, *records)
    page = await store.list()
    assert [r.id for r in page.records] == [r.id for r in reversed(records)]
    assert page.next_cursor is None


async def test_dl_3_list_stops_at_the_limit(store: DeadLetterStore, clock: FakeClock) -> None:
    """DL-3: a limit below the count returns that many, the newest, and a cursor."""
    records = await add(store, *(make(clock) for _ in range(5)))
    page = await store.list(limit=2)
    assert [r.id for r in page.records] == [records[4].id, records[3].id]
    assert page.next_cursor == records[3].id


async def test_dl_3_list_limit_equal_to_the_count_has_no_next_page(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-3 twin: a limit equal to the count returns everything and no cursor."""
    await add(store, *(make(clock) for _ in range(5)))
    page = await store.list(limit=5)
    assert len(page.records) == 5
    assert page.next_cursor is None


async def test_list_limit_below_one_is_refused(store: DeadLetterStore) -> None:
    """A limit of 0 is a mistake, not an empty page."""
    with pytest.raises(ValueError, match="limit must be >= 1, got 0"):
        await store.list(limit=0)


async def test_paging_is_stable_while_records_arrive(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """Records captured between pages neither repeat nor push a record off a page."""
    originals = await add(store, *(make(clock) for _ in range(10)))
    seen: list[str] = []
    cursor = None
    while True:
        page = await store.list(limit=3, cursor=cursor)
        seen += [r.id for r in page.records]
        await add(store, make(clock), make(clock))  # newer than everything being paged
        cursor = page.next_cursor
        if cursor is None:
            break
    assert seen == [r.id for r in reversed(originals)]


async def test_listing_leaves_large_payloads_out(store: DeadLetterStore, clock: FakeClock) -> None:
    """A payload over the inline limit is listed as None with its size; get loads it."""
    big, small = await add(
        store, make(clock, payload=b"b" * (INLINE_LIMIT + 1)), make(clock, payload=b"s")
    )
    listed = {r.id: r for r in (await store.list()).records}
    assert listed[big.id].payload is None
    assert listed[big.id].payload_size == INLINE_LIMIT + 1
    assert not listed[big.id].payload_loaded
    assert listed[small.id] == small
    assert (await store.get(big.id)).payload == b"b" * (INLINE_LIMIT + 1)


async def test_listing_keeps_a_payload_exactly_at_the_inline_limit(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """Twin: a payload of exactly the inline limit is listed in full."""
    (record,) = await add(store, make(clock, payload=b"e" * INLINE_LIMIT))
    assert (await store.list()).records == (record,)


# -- filters --------------------------------------------------------------------------


@pytest.fixture
async def population(store: DeadLetterStore, clock: FakeClock) -> dict[str, DeadLetter]:
    """Six records that differ in one field each, one second apart, some archived or replayed."""
    records = {}
    specs: dict[str, dict[str, Any]] = {
        "plain": {},
        "other_key": {"key": "elsewhere"},
        "ingest": {"source": Source.INGEST},
        "value_error": {"reason_class": "ValueError"},
        "archived": {},
        "failed_replay": {},
    }
    for name, changes in specs.items():
        records[name] = make(clock, **changes)
        clock.advance(1.0)
    await add(store, *records.values())
    assert await store.archive(only_ids((records["archived"].id,))) == 1
    decision = await store.begin_replay(records["failed_replay"].id, lease=30.0)
    assert decision.action is Action.PROCEED
    await store.finish(records["failed_replay"].id, ReplayOutcome.FAILED, error="503")
    return records


FILTERS: list[tuple[dict[str, Any], set[str]]] = [
    ({}, {"plain", "other_key", "ingest", "value_error", "archived", "failed_replay"}),
    (
        {"status": Status.ACTIVE},
        {"plain", "other_key", "ingest", "value_error", "failed_replay"},
    ),
    ({"status": "archived"}, {"archived"}),
    ({"key": "elsewhere"}, {"other_key"}),
    ({"source": Source.INGEST}, {"ingest"}),
    ({"reason_class": "ValueError"}, {"value_error"}),
    ({"replay_status": ReplayStatus.FAILED}, {"failed_replay"}),
    (
        {"replay_status": ReplayStatus.NEVER},
        {"plain", "other_key", "ingest", "value_error", "archived"},
    ),
    ({"since": T0 + 2.0}, {"ingest", "value_error", "archived", "failed_replay"}),
    ({"until": T0 + 2.0}, {"plain", "other_key"}),
    ({"since": T0 + 1.0, "until": T0 + 3.0}, {"other_key", "ingest"}),
    ({"status": Status.ACTIVE, "since": T0 + 3.0}, {"value_error", "failed_replay"}),
    ({"key": "dest", "source": Source.INGEST}, {"ingest"}),
    ({"key": "nobody"}, set()),
]


@pytest.mark.parametrize(("fields", "expected"), FILTERS, ids=[repr(f) for f, _ in FILTERS])
async def test_dl_3_every_filter_field_selects_exactly_its_records(
    store: DeadLetterStore,
    population: dict[str, DeadLetter],
    fields: dict[str, Any],
    expected: set[str],
) -> None:
    """DL-3: list and count apply each filter field (since inclusive, until exclusive), ANDed."""
    where = DeadLetterFilter(**fields)
    names = {record.id: name for name, record in population.items()}
    ids = await listed_ids(store, where)
    assert {names[i] for i in ids} == expected
    assert ids == sorted(ids, reverse=True)
    assert await store.count(where) == len(expected)


async def test_ids_filter_selects_exactly_those_ids(
    store: DeadLetterStore, population: dict[str, DeadLetter]
) -> None:
    """An ids filter lists those records only; unknown ids are ignored."""
    wanted = (population["plain"].id, population["archived"].id, "0" * 26)
    assert set(await listed_ids(store, only_ids(wanted))) == set(wanted[:2])


async def test_empty_ids_filter_selects_nothing(
    store: DeadLetterStore, population: dict[str, DeadLetter]
) -> None:
    """Twin: an empty ids filter matches no record (not every record)."""
    assert await listed_ids(store, only_ids(())) == []
    assert await store.count(only_ids(())) == 0


async def test_ids_filter_with_thousands_of_ids(store: DeadLetterStore, clock: FakeClock) -> None:
    """An ids filter of 1,200 ids (more than SQLite binds one by one) still selects exactly them."""
    records = await add(store, *(make(clock) for _ in range(1500)))
    wanted = tuple(r.id for r in records[100:1300])
    assert await store.count(only_ids(wanted)) == 1200
    assert await store.purge(only_ids(wanted)) == 1200
    assert await store.count() == 300


# -- archive and purge ----------------------------------------------------------------


async def test_dl_4_archive_marks_matching_active_records(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-4: archive sets status archived and bumps updated_at; other records stay active."""
    kept, archived = await add(store, make(clock, key="a"), make(clock, key="b"))
    clock.advance(60.0)
    assert await store.archive(DeadLetterFilter(key="b")) == 1
    record = await store.get(archived.id)
    assert record.status is Status.ARCHIVED
    assert record.updated_at == clock.now
    assert (await store.get(kept.id)).status is Status.ACTIVE


async def test_dl_4_archive_of_an_unknown_id_changes_nothing(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-4: archiving an id that is not stored reports 0 (the caller's not_found)."""
    await add(store, make(clock))
    assert await store.archive(only_ids((make(clock).id,))) == 0


async def test_dl_4_archive_twice_counts_once(store: DeadLetterStore, clock: FakeClock) -> None:
    """DL-4: an archived record is not archived again."""
    (record,) = await add(store, make(clock))
    assert await store.archive(only_ids((record.id,))) == 1
    assert await store.archive(only_ids((record.id,))) == 0


async def test_archive_leaves_running_records_alone(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """A record being replayed is not archived under its worker (DL-4)."""
    running, idle = await add(store, make(clock), make(clock))
    await store.begin_replay(running.id, lease=30.0)
    assert await store.archive(DeadLetterFilter()) == 1
    assert (await store.get(running.id)).status is Status.ACTIVE
    assert (await store.get(idle.id)).status is Status.ARCHIVED


async def test_dl_5_purge_removes_matching_records_and_counts_them(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5: purge by status and age deletes exactly those records and returns how many."""
    old_archived, old_active = await add(store, make(clock), make(clock))
    clock.advance(3600.0)
    (new_archived,) = await add(store, make(clock))
    await store.archive(only_ids((old_archived.id, new_archived.id)))
    where = DeadLetterFilter(status=Status.ARCHIVED, until=T0 + 1800.0)
    assert await store.purge(where) == 1
    with pytest.raises(DeadLetterNotFound):
        await store.get(old_archived.id)
    assert {r.id for r in (await store.list()).records} == {old_active.id, new_archived.id}


async def test_dl_5_purge_removes_large_payloads_too(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5: a purged record's payload goes with it; re-adding the id stores it afresh."""
    (record,) = await add(store, make(clock, payload=b"p" * 1000))
    assert await store.purge(only_ids((record.id,))) == 1
    assert await store.add_many([record]) == 1
    assert await store.get(record.id) == record


async def test_dl_5_purge_leaves_running_records_alone(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5: purge never deletes a record under a replay lease."""
    running, idle = await add(store, make(clock), make(clock))
    await store.begin_replay(running.id, lease=30.0)
    assert await store.purge(DeadLetterFilter()) == 1
    assert await store.get(running.id)
    with pytest.raises(DeadLetterNotFound):
        await store.get(idle.id)


async def test_dl_5_purge_of_unknown_ids_is_zero(store: DeadLetterStore, clock: FakeClock) -> None:
    """DL-5: purging ids that are not stored deletes nothing."""
    await add(store, make(clock))
    assert await store.purge(only_ids(("0" * 26,))) == 0
    assert await store.count() == 1


# -- statistics -----------------------------------------------------------------------


async def test_statistics_count_by_every_dimension(
    store: DeadLetterStore, population: dict[str, DeadLetter]
) -> None:
    """Statistics count records by status, source, reason class, key and replay status."""
    stats = await store.statistics()
    assert stats.total == 6
    assert stats.captured == 6
    assert stats.by_status == {"active": 5, "archived": 1}
    assert stats.by_source == {"outbound": 5, "ingest": 1}
    assert stats.by_reason_class == {"httpx.ConnectTimeout": 5, "ValueError": 1}
    assert stats.by_key == {"dest": 5, "elsewhere": 1}
    assert stats.by_replay_status == {"never": 5, "failed": 1}
    assert stats.evicted == {}


async def test_statistics_by_key_keeps_the_20_largest(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """by_key lists the 20 busiest keys; a 21st, smaller key is left out."""
    records = [
        make(clock, key=f"key-{k:02d}") for k in range(21) for _ in range(2 if k < 20 else 1)
    ]
    await add(store, *records)
    stats = await store.statistics()
    assert stats.by_key == {f"key-{k:02d}": 2 for k in range(20)}
    assert stats.total == 41


async def test_statistics_of_an_empty_store(store: DeadLetterStore) -> None:
    """An empty store reports zeros and empty groups."""
    stats = await store.statistics()
    assert (stats.total, stats.captured, stats.by_status, stats.evicted) == (0, 0, {}, {})


# -- retention ------------------------------------------------------------------------


async def test_dl_5_sweep_evicts_archived_records_older_than_max_age(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5: archived records older than max_age go, counted as archived:max_age."""
    old = await add(store, make(clock), make(clock))
    clock.advance(10.0)
    (young,) = await add(store, make(clock))
    await store.archive(DeadLetterFilter())
    clock.advance(100.0)
    policy = RetentionPolicy(archived=RetentionRule(max_age=105.0))
    result = await store.sweep(policy)
    assert result.evicted == {"archived:max_age": 2}
    assert result.total == 2
    assert await listed_ids(store) == [young.id]
    assert (await store.statistics()).evicted == {"archived:max_age": 2}
    assert {r.id for r in old}.isdisjoint(await listed_ids(store))


async def test_dl_5_sweep_keeps_a_record_exactly_max_age_old(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5 twin: a record exactly max_age seconds old is kept."""
    (record,) = await add(store, make(clock))
    await store.archive(DeadLetterFilter())
    clock.advance(100.0)
    result = await store.sweep(RetentionPolicy(archived=RetentionRule(max_age=100.0)))
    assert result.evicted == {}
    assert await listed_ids(store) == [record.id]


async def test_dl_5_sweep_evicts_the_oldest_beyond_max_count(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5: beyond max_count the oldest go first, counted as <status>:max_count."""
    records = await add(store, *(make(clock) for _ in range(5)))
    result = await store.sweep(RetentionPolicy(active=RetentionRule(max_count=3)))
    assert result.evicted == {"active:max_count": 2}
    assert await listed_ids(store) == [r.id for r in reversed(records[2:])]


async def test_dl_5_sweep_at_max_count_evicts_nothing(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5 twin: exactly max_count records are all kept."""
    await add(store, *(make(clock) for _ in range(3)))
    assert (await store.sweep(RetentionPolicy(active=RetentionRule(max_count=3)))).evicted == {}
    assert await store.count() == 3


async def test_dl_5_evictions_accumulate_across_sweeps(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5: the eviction counters add up over sweeps, per status and rule."""
    policy = RetentionPolicy(
        active=RetentionRule(max_count=1), archived=RetentionRule(max_age=10.0)
    )
    await add(store, make(clock), make(clock))
    (archived,) = await add(store, make(clock))
    await store.archive(only_ids((archived.id,)))
    clock.advance(11.0)
    assert (await store.sweep(policy)).evicted == {"active:max_count": 1, "archived:max_age": 1}
    await add(store, make(clock), make(clock), make(clock))
    assert (await store.sweep(policy)).evicted == {"active:max_count": 3}
    stats = await store.statistics()
    assert stats.evicted == {"active:max_count": 4, "archived:max_age": 1}
    assert stats.captured == 6


async def test_dl_5_default_policy_never_evicts_active_records(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5: the default policy keeps ancient active records.

    An active dead letter is a message nobody has decided about yet; evicting it
    silently would lose exactly what the store exists to keep. Only archived records
    age out by default.
    """
    active = await add(store, *(make(clock) for _ in range(3)))
    (archived,) = await add(store, make(clock))
    await store.archive(only_ids((archived.id,)))
    clock.advance(365 * 86400.0)
    result = await store.sweep(RetentionPolicy())
    assert result.evicted == {"archived:max_age": 1}
    assert sorted(await listed_ids(store)) == sorted(r.id for r in active)


async def test_dl_5_sweep_never_evicts_running_records(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5: a record under a replay lease survives even a rule that would evict it."""
    running, idle = await add(store, make(clock), make(clock))
    await store.begin_replay(running.id, lease=3600.0)
    clock.advance(100.0)
    policy = RetentionPolicy(active=RetentionRule(max_count=0, max_age=1.0))
    assert (await store.sweep(policy)).evicted == {"active:max_age": 1}
    assert await listed_ids(store) == [running.id]
    assert idle.id not in await listed_ids(store)


# -- retention of the idempotency ledger ----------------------------------------------

DAY = 86400.0
LEDGER_AGE = 90 * DAY  # RetentionPolicy's default ledger_max_age


@pytest.mark.parametrize("age", [0, -1.0, float("nan"), float("inf"), True])
def test_dl_5_retention_policy_refuses_a_ledger_max_age_not_above_zero(age: float) -> None:
    """DL-5: ledger_max_age must be finite and > 0 seconds, and the error says None is how to never prune."""
    with pytest.raises(
        ValueError,
        match=rf"^retention policy: ledger_max_age must be a finite number of seconds > 0, "
        rf"got {age!r}; "
        "use None to never prune the idempotency ledger$",
    ):
        RetentionPolicy(ledger_max_age=age)


def test_dl_5_retention_policy_ledger_max_age_defaults_to_90_days() -> None:
    """DL-5: by default the ledger keeps unused entries 90 days; None and any positive age are valid."""
    assert RetentionPolicy().ledger_max_age == 90 * 86400.0
    assert RetentionPolicy(ledger_max_age=None).ledger_max_age is None
    assert RetentionPolicy(ledger_max_age=0.5).ledger_max_age == 0.5


async def replayed(store: DeadLetterStore, record: DeadLetter) -> None:
    """Replay *record* successfully, so its replay key is committed in the ledger."""
    decision = await store.begin_replay(record.id, lease=30.0)
    assert decision.action is Action.PROCEED
    assert await store.mark_started(decision.record)
    await store.finish(record.id, ReplayOutcome.REPLAYED)


async def test_dl_5_dl_8_sweep_prunes_old_ledger_entries_no_record_can_use(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5, DL-8: entries of purged records, last updated more than ledger_max_age ago, are pruned and counted."""
    keyed, unkeyed = await add(store, make(clock, idempotency_key="order-1"), make(clock))
    await replayed(store, keyed)
    await replayed(store, unkeyed)
    assert await store.purge(DeadLetterFilter()) == 2
    clock.advance(LEDGER_AGE + 1.0)
    result = await store.sweep(RetentionPolicy())
    assert result.evicted == {"ledger:max_age": 2}
    assert result.total == 2
    assert await store.ledger("order-1") is None
    assert await store.ledger(unkeyed.replay_key) is None
    assert (await store.statistics()).evicted == {"ledger:max_age": 2}
    assert (await store.sweep(RetentionPolicy())).evicted == {}


@pytest.mark.parametrize(
    "age", [pytest.param(LEDGER_AGE - 1.0, id="younger"), pytest.param(LEDGER_AGE, id="exactly")]
)
async def test_dl_5_dl_8_sweep_keeps_ledger_entries_up_to_ledger_max_age_old(
    store: DeadLetterStore, clock: FakeClock, age: float
) -> None:
    """DL-5, DL-8 twin: an unused entry younger than, or exactly, ledger_max_age old is kept."""
    (record,) = await add(store, make(clock, idempotency_key="order-2"))
    await replayed(store, record)
    await store.purge(DeadLetterFilter())
    clock.advance(age)
    assert (await store.sweep(RetentionPolicy())).evicted == {}
    entry = await store.ledger("order-2")
    assert entry is not None
    assert entry.state is LedgerState.COMMITTED


async def test_dl_5_dl_8_sweep_keeps_a_key_another_record_still_carries(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5, DL-8: an entry whose key is another stored record's idempotency key is kept however old.

    Pruning it would let that record's replay send the side effect a second time.
    """
    first, second = await add(
        store, make(clock, idempotency_key="order-3"), make(clock, idempotency_key="order-3")
    )
    await replayed(store, first)
    await store.purge(only_ids((first.id,)))
    clock.advance(10 * 365 * DAY)
    assert (await store.sweep(RetentionPolicy(ledger_max_age=1.0))).evicted == {}
    entry = await store.ledger("order-3")
    assert entry is not None
    assert (entry.state, entry.record_id) == (LedgerState.COMMITTED, first.id)
    settled = await store.begin_replay(second.id, lease=30.0)
    assert (settled.action, settled.outcome) == (Action.SETTLE, ReplayOutcome.ALREADY_REPLAYED)


async def test_dl_5_dl_8_sweep_keeps_a_dead_letter_key_whose_record_exists(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5, DL-8: a key ``dead_letter:<id>`` committed by another record is kept while record <id> exists.

    The stored record replays under that key (it has no idempotency key of its own),
    so it still uses the entry although neither its id nor its idempotency key match.
    """
    (plain,) = await add(store, make(clock))
    (borrower,) = await add(store, make(clock, idempotency_key=plain.replay_key))
    await replayed(store, borrower)
    await store.purge(only_ids((borrower.id,)))
    clock.advance(10 * 365 * DAY)
    assert (await store.sweep(RetentionPolicy(ledger_max_age=1.0))).evicted == {}
    assert await store.ledger(plain.replay_key) is not None
    settled = await store.begin_replay(plain.id, lease=30.0)
    assert settled.outcome is ReplayOutcome.ALREADY_REPLAYED


@pytest.mark.parametrize("idempotency_key", [None, "pay-9"])
async def test_dl_5_dl_8_sweep_never_prunes_the_pending_entry_of_an_in_doubt_record(
    store: DeadLetterStore, clock: FakeClock, idempotency_key: str | None
) -> None:
    """DL-5, DL-8: a pending entry whose record still exists (in doubt) is kept however old.

    It is the store's evidence that the side effect may have happened, and it stays
    as long as the record does.
    """
    (record,) = await add(store, make(clock, idempotency_key=idempotency_key))
    decision = await store.begin_replay(record.id, lease=30.0)
    assert await store.mark_started(decision.record)
    await store.finish(record.id, ReplayOutcome.IN_DOUBT, error="timeout after send")
    clock.advance(10 * 365 * DAY)
    assert (await store.sweep(RetentionPolicy(ledger_max_age=1.0))).evicted == {}
    entry = await store.ledger(record.replay_key)
    assert entry is not None
    assert (entry.state, entry.record_id) == (LedgerState.PENDING, record.id)
    refused = await store.begin_replay(record.id, lease=30.0)
    assert (refused.action, refused.outcome) == (Action.REFUSE, ReplayOutcome.IN_DOUBT)


async def test_dl_5_dl_8_dl_9_sweep_keeps_the_pending_entry_of_a_dead_worker_until_reclaimed(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5, DL-8, DL-9: a dead worker's old pending entry survives the sweep, so reclaim still finds it in doubt.

    Had the sweep pruned it, the reclaimer would take the side effect for never
    started and resubmit the record: a second send.
    """
    (record,) = await add(store, make(clock, idempotency_key="pay-10"))
    decision = await store.begin_replay(record.id, lease=30.0)
    assert await store.mark_started(decision.record)
    clock.advance(10 * 365 * DAY)
    assert (await store.sweep(RetentionPolicy(ledger_max_age=1.0))).evicted == {}
    (reclaimed,) = await store.reclaim_expired()
    assert not reclaimed.resubmit
    assert reclaimed.record.replay.status is ReplayStatus.IN_DOUBT


async def test_dl_5_dl_8_ledger_max_age_none_never_prunes(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5, DL-8: with ledger_max_age=None the ledger keeps even ancient entries no record uses."""
    (record,) = await add(store, make(clock, idempotency_key="order-4"))
    await replayed(store, record)
    await store.purge(DeadLetterFilter())
    clock.advance(10 * 365 * DAY)
    assert (await store.sweep(RetentionPolicy(ledger_max_age=None))).evicted == {}
    assert await store.ledger("order-4") is not None
    assert (await store.statistics()).evicted == {}


async def test_dl_5_dl_8_records_evicted_by_a_sweep_lose_their_ledger_entries_in_it(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5, DL-8: a sweep evicts records first, then prunes the old entries they leave; both counted."""
    keyed, unkeyed = await add(store, make(clock, idempotency_key="order-5"), make(clock))
    await replayed(store, keyed)
    await replayed(store, unkeyed)
    await store.archive(DeadLetterFilter())
    clock.advance(LEDGER_AGE + 1.0)
    result = await store.sweep(RetentionPolicy())
    assert result.evicted == {"archived:max_age": 2, "ledger:max_age": 2}
    assert result.total == 4
    assert await store.count() == 0
    assert await store.ledger("order-5") is None
    stats = await store.statistics()
    assert stats.evicted == {"archived:max_age": 2, "ledger:max_age": 2}


async def test_dl_5_dl_8_duplicate_captured_within_ledger_max_age_is_already_replayed(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5, DL-8: a later duplicate of a replayed request finds the kept entry; its side effect never runs."""
    (original,) = await add(store, make(clock, idempotency_key="order-6"))
    await replayed(store, original)
    await store.purge(DeadLetterFilter())
    clock.advance(LEDGER_AGE)
    await store.sweep(RetentionPolicy())
    (duplicate,) = await add(store, make(clock, idempotency_key="order-6"))
    settled = await store.begin_replay(duplicate.id, lease=30.0)
    assert (settled.action, settled.outcome) == (Action.SETTLE, ReplayOutcome.ALREADY_REPLAYED)


async def test_dl_5_dl_8_duplicate_captured_after_pruning_replays_again(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-5, DL-8: once its entry is pruned, a later duplicate with the same key replays: its side effect runs.

    This is the documented trade-off of RetentionPolicy.ledger_max_age: the ledger
    stops protecting against duplicates captured more than that long after the
    original replay, so the store file does not grow without bound.
    """
    (original,) = await add(store, make(clock, idempotency_key="order-7"))
    await replayed(store, original)
    await store.purge(DeadLetterFilter())
    clock.advance(LEDGER_AGE + 1.0)
    assert (await store.sweep(RetentionPolicy())).evicted == {"ledger:max_age": 1}
    (duplicate,) = await add(store, make(clock, idempotency_key="order-7"))
    decision = await store.begin_replay(duplicate.id, lease=30.0)
    assert decision.action is Action.PROCEED
    assert await store.mark_started(decision.record)  # the side effect runs again
    await store.finish(duplicate.id, ReplayOutcome.REPLAYED)
    entry = await store.ledger("order-7")
    assert entry is not None
    assert (entry.state, entry.record_id) == (LedgerState.COMMITTED, duplicate.id)


# -- the replay guard -----------------------------------------------------------------


async def test_dl_4_archived_record_is_rejected_even_when_forced(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-4: replaying an archived record is refused as rejected_archived, force or not."""
    (record,) = await add(store, make(clock))
    await store.archive(only_ids((record.id,)))
    for force in (False, True):
        decision = await store.begin_replay(record.id, lease=30.0, force=force)
        assert (decision.action, decision.outcome) == (
            Action.REFUSE,
            ReplayOutcome.REJECTED_ARCHIVED,
        )
    assert (await store.get(record.id)).replay.attempts == 0


async def test_begin_replay_takes_a_lease(store: DeadLetterStore, clock: FakeClock) -> None:
    """A replayable record becomes running with one more attempt and a lease until now + lease."""
    (record,) = await add(store, make(clock, payload=b"L" * 1000))
    clock.advance(5.0)
    decision = await store.begin_replay(record.id, lease=30.0)
    assert decision.action is Action.PROCEED
    assert decision.record.payload == b"L" * 1000  # the worker gets the body to re-send
    stored = await store.get(record.id)
    assert stored == decision.record
    assert stored.replay.status is ReplayStatus.RUNNING
    assert stored.replay.attempts == 1
    assert stored.replay.last_attempt_at == clock.now
    assert stored.replay.lease_expires_at == clock.now + 30.0


async def test_begin_replay_of_an_unknown_id_is_not_found(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """begin_replay of an id never stored raises DeadLetterNotFound."""
    with pytest.raises(DeadLetterNotFound):
        await store.begin_replay(make(clock).id, lease=30.0)


async def test_dl_7_replay_under_a_live_lease_is_in_progress(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-7: a second replay while the first holds a live lease is in_progress, even forced."""
    (record,) = await add(store, make(clock))
    await store.begin_replay(record.id, lease=30.0)
    clock.advance(29.0)
    for force in (False, True):
        decision = await store.begin_replay(record.id, lease=30.0, force=force)
        assert (decision.action, decision.outcome) == (Action.REFUSE, ReplayOutcome.IN_PROGRESS)
    assert (await store.get(record.id)).replay.attempts == 1


async def test_dl_9_expired_lease_without_a_started_side_effect_is_replayable(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-9: once a dead worker's lease expires, and its side effect never started, replay proceeds."""
    (record,) = await add(store, make(clock))
    await store.begin_replay(record.id, lease=30.0)
    clock.advance(30.0)
    decision = await store.begin_replay(record.id, lease=30.0)
    assert decision.action is Action.PROCEED
    assert decision.record.replay.attempts == 2


async def test_dl_8_dl_9_expired_lease_after_the_side_effect_started_is_in_doubt(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8, DL-9: a dead worker that had marked its side effect started leaves the record in doubt."""
    (record,) = await add(store, make(clock))
    decision = await store.begin_replay(record.id, lease=30.0)
    assert await store.mark_started(decision.record)
    clock.advance(31.0)
    doubted = await store.begin_replay(record.id, lease=30.0)
    assert (doubted.action, doubted.outcome) == (Action.SETTLE, ReplayOutcome.IN_DOUBT)
    assert (await store.get(record.id)).replay.status is ReplayStatus.IN_DOUBT
    again = await store.begin_replay(record.id, lease=30.0)
    assert (again.action, again.outcome) == (Action.REFUSE, ReplayOutcome.IN_DOUBT)
    assert (await store.get(record.id)).replay.attempts == 1


async def test_dl_7_succeeded_record_is_already_replayed(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-7: a succeeded record answers already_replayed and takes no lease."""
    (record,) = await add(store, make(clock))
    decision = await store.begin_replay(record.id, lease=30.0)
    assert await store.mark_started(decision.record)
    done = await store.finish(record.id, ReplayOutcome.REPLAYED)
    assert done.replay.status is ReplayStatus.SUCCEEDED
    again = await store.begin_replay(record.id, lease=30.0)
    assert (again.action, again.outcome) == (Action.REFUSE, ReplayOutcome.ALREADY_REPLAYED)
    assert (await store.get(record.id)).replay.attempts == 1


async def test_dl_7_forced_replay_of_a_succeeded_record_proceeds(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-7 twin: force replays a succeeded record, and mark_started lets it past the committed key."""
    (record,) = await add(store, make(clock))
    await store.begin_replay(record.id, lease=30.0)
    await store.finish(record.id, ReplayOutcome.REPLAYED)
    decision = await store.begin_replay(record.id, lease=30.0, force=True)
    assert decision.action is Action.PROCEED
    assert decision.record.replay.attempts == 2
    assert not await store.mark_started(decision.record)
    assert await store.mark_started(decision.record, force=True)


async def test_dl_8_key_committed_by_another_record_is_already_replayed(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: a record whose idempotency key another record's replay committed is settled succeeded."""
    first, second = await add(
        store, make(clock, idempotency_key="order-7"), make(clock, idempotency_key="order-7")
    )
    decision = await store.begin_replay(first.id, lease=30.0)
    assert await store.mark_started(decision.record)
    await store.finish(first.id, ReplayOutcome.REPLAYED)
    settled = await store.begin_replay(second.id, lease=30.0)
    assert (settled.action, settled.outcome) == (Action.SETTLE, ReplayOutcome.ALREADY_REPLAYED)
    stored = await store.get(second.id)
    assert stored.replay.status is ReplayStatus.SUCCEEDED
    assert stored.replay.attempts == 0


async def test_dl_8_key_pending_under_another_live_lease_is_in_progress(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: while one record's side effect for a key is pending, another record with that key waits."""
    first, second = await add(
        store, make(clock, idempotency_key="order-8"), make(clock, idempotency_key="order-8")
    )
    decision = await store.begin_replay(first.id, lease=30.0)
    assert await store.mark_started(decision.record)
    blocked = await store.begin_replay(second.id, lease=30.0)
    assert (blocked.action, blocked.outcome) == (Action.REFUSE, ReplayOutcome.IN_PROGRESS)


async def test_dl_8_key_pending_under_another_live_lease_is_in_progress_even_forced(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: while another record's lease on the key is live, force does not make a second send."""
    first, second = await add(
        store, make(clock, idempotency_key="order-9"), make(clock, idempotency_key="order-9")
    )
    assert await store.mark_started((await store.begin_replay(first.id, lease=30.0)).record)
    clock.advance(29.0)
    for force in (False, True):
        blocked = await store.begin_replay(second.id, lease=30.0, force=force)
        assert (blocked.action, blocked.outcome) == (Action.REFUSE, ReplayOutcome.IN_PROGRESS)
    assert await store.get(second.id) == second


@pytest.mark.parametrize("running", [False, True], ids=["never-replayed", "dead-worker"])
async def test_dl_8_key_pending_after_another_records_lease_expired_is_in_doubt(
    store: DeadLetterStore, clock: FakeClock, running: bool
) -> None:
    """DL-8: a pending key whose lease expired is in doubt for every record carrying it, not replayable."""
    first, second, third = await add(
        store,
        make(clock, key="a", idempotency_key="order-10"),
        make(clock, key="b", idempotency_key="order-10"),
        make(clock, key="c", idempotency_key="order-10"),
    )
    if running:  # second's worker took a lease, then died before its side effect
        assert (await store.begin_replay(second.id, lease=1.0)).action is Action.PROCEED
    assert await store.mark_started((await store.begin_replay(first.id, lease=30.0)).record)
    clock.advance(30.0)  # first's worker died mid side effect
    doubted = await store.begin_replay(second.id, lease=30.0)
    assert (doubted.action, doubted.outcome) == (Action.SETTLE, ReplayOutcome.IN_DOUBT)
    stored = await store.get(second.id)
    assert stored == doubted.record
    assert stored.replay.status is ReplayStatus.IN_DOUBT
    assert stored.replay.attempts == (1 if running else 0)
    assert stored.replay.lease_expires_at is None
    assert stored.replay.last_error == (
        f"idempotency key 'order-10' is in doubt: the replay of dead letter {first.id} started "
        "its side effect and its outcome is unknown; check the destination and resolve it "
        "(runbooks/replay.md)"
    )
    again = await store.begin_replay(second.id, lease=30.0)
    assert (again.action, again.outcome) == (Action.REFUSE, ReplayOutcome.IN_DOUBT)
    assert (await store.begin_replay(first.id, lease=30.0)).outcome is ReplayOutcome.IN_DOUBT
    assert (await store.begin_replay(third.id, lease=30.0)).outcome is ReplayOutcome.IN_DOUBT
    entry = await store.ledger("order-10")
    assert entry is not None
    assert (entry.state, entry.record_id) == (LedgerState.PENDING, first.id)


async def test_dl_8_key_left_pending_by_an_unknown_outcome_is_in_doubt_for_other_records(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: a replay that ended in doubt puts its key in doubt for the other records at once."""
    first, second = await add(
        store,
        make(clock, key="a", idempotency_key="order-11"),
        make(clock, key="b", idempotency_key="order-11"),
    )
    assert await store.mark_started((await store.begin_replay(first.id, lease=30.0)).record)
    await store.finish(first.id, ReplayOutcome.IN_DOUBT, error="read timeout after send")
    doubted = await store.begin_replay(second.id, lease=30.0)
    assert (doubted.action, doubted.outcome) == (Action.SETTLE, ReplayOutcome.IN_DOUBT)
    clock.advance(3600.0)
    again = await store.begin_replay(second.id, lease=30.0)
    assert (again.action, again.outcome) == (Action.REFUSE, ReplayOutcome.IN_DOUBT)
    forced = await store.begin_replay(second.id, lease=30.0, force=True)
    assert forced.action is Action.PROCEED


async def test_dl_8_dl_9_reclaiming_a_record_whose_key_is_in_doubt_does_not_resubmit_it(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8, DL-9: a dead worker's record whose key another record left pending becomes in doubt, not resent."""
    first, second = await add(
        store,
        make(clock, key="a", idempotency_key="order-12"),
        make(clock, key="b", idempotency_key="order-12"),
    )
    assert (await store.begin_replay(second.id, lease=10.0)).action is Action.PROCEED
    assert await store.mark_started((await store.begin_replay(first.id, lease=10.0)).record)
    clock.advance(10.0)
    reclaimed = {r.record.id: r for r in await store.reclaim_expired()}
    assert set(reclaimed) == {first.id, second.id}
    for result in reclaimed.values():
        assert not result.resubmit
        assert result.record.replay.status is ReplayStatus.IN_DOUBT


async def test_dl_6_failed_replay_stays_on_the_record_and_is_replayable(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-6: a failed replay marks the same record failed (no new record) and it can be replayed."""
    (record,) = await add(store, make(clock))
    decision = await store.begin_replay(record.id, lease=30.0)
    assert await store.mark_started(decision.record)
    failed = await store.finish(record.id, ReplayOutcome.FAILED, error="HTTP 503")
    assert failed.replay.status is ReplayStatus.FAILED
    assert failed.replay.last_outcome is ReplayOutcome.FAILED
    assert failed.replay.last_error == "HTTP 503"
    assert failed.replay.lease_expires_at is None
    assert await store.get(record.id) == failed
    assert await store.count() == 1
    assert await store.ledger(record.replay_key) is None
    retry = await store.begin_replay(record.id, lease=30.0)
    assert retry.action is Action.PROCEED
    assert retry.record.replay.attempts == 2


async def test_dl_8_finish_replayed_commits_the_key(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: a successful replay leaves its idempotency key committed in the ledger."""
    (record,) = await add(store, make(clock))
    decision = await store.begin_replay(record.id, lease=30.0)
    assert await store.mark_started(decision.record)
    pending = await store.ledger(record.replay_key)
    assert pending is not None
    assert (pending.state, pending.record_id, pending.expires_at) == (
        LedgerState.PENDING,
        record.id,
        clock.now + 30.0,
    )
    clock.advance(2.0)
    await store.finish(record.id, ReplayOutcome.REPLAYED)
    committed = await store.ledger(record.replay_key)
    assert committed is not None
    assert (committed.state, committed.expires_at, committed.updated_at) == (
        LedgerState.COMMITTED,
        None,
        clock.now,
    )


async def test_dl_8_finish_in_doubt_keeps_the_key_pending(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: a worker that cannot tell whether its side effect happened leaves the record in doubt, key pending."""
    (record,) = await add(store, make(clock))
    assert await store.mark_started((await store.begin_replay(record.id, lease=30.0)).record)
    doubted = await store.finish(record.id, ReplayOutcome.IN_DOUBT, error="timeout after send")
    assert doubted.replay.status is ReplayStatus.IN_DOUBT
    assert await store.get(record.id) == doubted
    entry = await store.ledger(record.replay_key)
    assert entry is not None
    assert (entry.state, entry.expires_at) == (LedgerState.PENDING, clock.now)  # lease ended
    refused = await store.begin_replay(record.id, lease=30.0)
    assert (refused.action, refused.outcome) == (Action.REFUSE, ReplayOutcome.IN_DOUBT)


async def test_finish_refuses_an_outcome_no_replay_ends_with(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """finish with in_progress is a bug in the caller, and the record is left running."""
    (record,) = await add(store, make(clock))
    await store.begin_replay(record.id, lease=30.0)
    with pytest.raises(ValueError, match="cannot finish as 'in_progress'"):
        await store.finish(record.id, ReplayOutcome.IN_PROGRESS)
    assert (await store.get(record.id)).replay.status is ReplayStatus.RUNNING


async def test_dl_8_mark_started_refuses_a_committed_key(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: mark_started refuses (and writes nothing) when the key is already committed."""
    first, second = await add(
        store, make(clock, idempotency_key="pay-1"), make(clock, idempotency_key="pay-1")
    )
    decision = await store.begin_replay(first.id, lease=30.0)
    assert await store.mark_started(decision.record)
    await store.finish(first.id, ReplayOutcome.REPLAYED)
    before = await store.ledger("pay-1")
    assert not await store.mark_started(await store.get(second.id))
    assert await store.ledger("pay-1") == before


async def test_dl_8_mark_started_refuses_a_key_another_record_left_pending(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: a key pending for another record is refused, live lease or expired; force takes it only once expired."""
    first, second = await add(
        store, make(clock, idempotency_key="pay-2"), make(clock, idempotency_key="pay-2")
    )
    assert await store.mark_started((await store.begin_replay(first.id, lease=30.0)).record)
    assert not await store.mark_started(second)
    assert not await store.mark_started(second, force=True)  # its side effect may be running
    clock.advance(30.0)
    assert not await store.mark_started(second)  # in doubt now, not free
    entry = await store.ledger("pay-2")
    assert entry is not None
    assert entry.record_id == first.id
    assert await store.mark_started(second, force=True)
    entry = await store.ledger("pay-2")
    assert entry is not None
    assert entry.record_id == second.id


async def test_dl_8_two_records_racing_with_one_key_only_one_marks_started(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: two records with one key both hold leases; when both mark the key started, only one passes."""
    first, second = await add(
        store,
        make(clock, key="a", idempotency_key="pay-3"),
        make(clock, key="b", idempotency_key="pay-3"),
    )
    leased = [(await store.begin_replay(r.id, lease=30.0)).record for r in (first, second)]
    passed: list[str] = []

    async def mark(record: DeadLetter) -> None:
        if await store.mark_started(record):
            passed.append(record.id)

    async with anyio.create_task_group() as tg:
        for record in leased:
            tg.start_soon(mark, record)
    assert len(passed) == 1
    entry = await store.ledger("pay-3")
    assert entry is not None
    assert (entry.state, entry.record_id) == (LedgerState.PENDING, passed[0])


def starter(store: DeadLetterStore) -> ReplayStarter:
    """The store, as the one-step replay starter both of otpy's stores are."""
    assert isinstance(store, ReplayStarter)
    return store


async def test_dl_8_start_replay_takes_the_lease_and_marks_the_key_pending(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: start_replay leases the record and writes its key pending, payload loaded, in one step."""
    (record,) = await add(store, make(clock, payload=b"L" * 1000, idempotency_key="pay-9"))
    clock.advance(5.0)
    decision = await starter(store).start_replay(record.id, lease=30.0)
    assert (decision.action, decision.outcome) == (Action.PROCEED, None)
    assert decision.record.payload == b"L" * 1000
    assert await store.get(record.id) == decision.record
    assert decision.record.replay.status is ReplayStatus.RUNNING
    assert decision.record.replay.attempts == 1
    assert decision.record.replay.lease_expires_at == clock.now + 30.0
    entry = await store.ledger("pay-9")
    assert entry is not None
    assert (entry.state, entry.record_id, entry.expires_at, entry.updated_at) == (
        LedgerState.PENDING,
        record.id,
        clock.now + 30.0,
        clock.now,
    )


async def test_start_replay_of_an_unknown_id_is_not_found(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """start_replay of an id never stored raises DeadLetterNotFound and writes no ledger entry."""
    missing = make(clock)
    with pytest.raises(DeadLetterNotFound):
        await starter(store).start_replay(missing.id, lease=30.0)
    assert await store.ledger(missing.replay_key) is None


async def test_dl_8_dl_9_worker_dead_after_start_replay_leaves_the_record_in_doubt(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8, DL-9: once start_replay returned, an expired lease is reclaimed in doubt, never resubmitted."""
    (record,) = await add(store, make(clock))
    await starter(store).start_replay(record.id, lease=10.0)
    clock.advance(10.0)
    [reclaimed] = await store.reclaim_expired()
    assert (reclaimed.record.id, reclaimed.resubmit) == (record.id, False)
    assert reclaimed.record.replay.status is ReplayStatus.IN_DOUBT
    again = await starter(store).start_replay(record.id, lease=10.0)
    assert (again.action, again.outcome) == (Action.REFUSE, ReplayOutcome.IN_DOUBT)


async def test_dl_7_dl_8_start_replay_refusals_leave_the_ledger_as_it_was(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-7, DL-8: in progress, even forced, or a key another record committed: no pending entry is written."""
    first, second, third = await add(
        store,
        make(clock, key="a", idempotency_key="pay-10"),
        make(clock, key="b", idempotency_key="pay-10"),
        make(clock, key="c", idempotency_key="pay-11"),
    )
    one_step = starter(store)
    assert (await one_step.start_replay(first.id, lease=30.0)).action is Action.PROCEED
    pending = await store.ledger("pay-10")
    for force in (False, True):
        again = await one_step.start_replay(first.id, lease=30.0, force=force)
        assert (again.action, again.outcome) == (Action.REFUSE, ReplayOutcome.IN_PROGRESS)
        rival = await one_step.start_replay(second.id, lease=30.0, force=force)
        assert (rival.action, rival.outcome) == (Action.REFUSE, ReplayOutcome.IN_PROGRESS)
    assert await store.ledger("pay-10") == pending
    assert await store.get(second.id) == second
    await store.finish(first.id, ReplayOutcome.REPLAYED)
    committed = await store.ledger("pay-10")
    settled = await one_step.start_replay(second.id, lease=30.0)
    assert (settled.action, settled.outcome) == (Action.SETTLE, ReplayOutcome.ALREADY_REPLAYED)
    assert settled.record.replay.status is ReplayStatus.SUCCEEDED
    assert await store.ledger("pay-10") == committed
    assert await store.ledger("pay-11") is None
    assert (await store.get(third.id)).replay.attempts == 0


async def test_dl_7_forced_start_replay_of_a_committed_key_marks_it_pending_again(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-7 twin: force starts a succeeded record again, its key pending once more, for this attempt."""
    (record,) = await add(store, make(clock))
    one_step = starter(store)
    await one_step.start_replay(record.id, lease=30.0)
    await store.finish(record.id, ReplayOutcome.REPLAYED)
    clock.advance(1.0)
    decision = await one_step.start_replay(record.id, lease=30.0, force=True)
    assert decision.action is Action.PROCEED
    assert decision.record.replay.attempts == 2
    entry = await store.ledger(record.replay_key)
    assert entry is not None
    assert (entry.state, entry.record_id, entry.expires_at) == (
        LedgerState.PENDING,
        record.id,
        clock.now + 30.0,
    )


async def test_dl_8_two_records_racing_with_one_key_only_one_starts(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: two records with one key started at once: one proceeds, the other is in progress."""
    first, second = await add(
        store,
        make(clock, key="a", idempotency_key="pay-12"),
        make(clock, key="b", idempotency_key="pay-12"),
    )
    outcomes: dict[str, ReplayOutcome | None] = {}

    async def start(record: DeadLetter) -> None:
        outcomes[record.id] = (await starter(store).start_replay(record.id, lease=30.0)).outcome

    async with anyio.create_task_group() as tg:
        for record in (first, second):
            tg.start_soon(start, record)
    assert sorted(outcomes.values(), key=str) == [None, ReplayOutcome.IN_PROGRESS]
    [winner] = [record_id for record_id, outcome in outcomes.items() if outcome is None]
    entry = await store.ledger("pay-12")
    assert entry is not None
    assert (entry.state, entry.record_id) == (LedgerState.PENDING, winner)


async def test_dl_9_reclaim_expired_settles_dead_workers(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-9: expired leases are reclaimed: failed and resubmitted if nothing started, else in doubt."""
    never_started, started, live = await add(store, make(clock), make(clock), make(clock))
    await store.begin_replay(never_started.id, lease=10.0)
    assert await store.mark_started((await store.begin_replay(started.id, lease=10.0)).record)
    await store.begin_replay(live.id, lease=60.0)
    clock.advance(10.0)
    reclaimed = {r.record.id: r for r in await store.reclaim_expired()}
    assert set(reclaimed) == {never_started.id, started.id}
    assert reclaimed[never_started.id].resubmit
    assert reclaimed[never_started.id].record.replay.status is ReplayStatus.FAILED
    assert not reclaimed[started.id].resubmit
    assert reclaimed[started.id].record.replay.status is ReplayStatus.IN_DOUBT
    for record_id, result in reclaimed.items():
        assert await store.get(record_id) == result.record
    assert (await store.get(live.id)).replay.status is ReplayStatus.RUNNING
    assert await store.reclaim_expired() == []


async def test_dl_8_resolve_succeeded_commits_the_key(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: an operator resolving an in-doubt record as done commits its key: no resend ever."""
    (record,) = await add(store, make(clock))
    assert await store.mark_started((await store.begin_replay(record.id, lease=5.0)).record)
    clock.advance(5.0)
    await store.reclaim_expired()
    resolved = await store.resolve(record.id, succeeded=True)
    assert resolved.replay.status is ReplayStatus.SUCCEEDED
    entry = await store.ledger(record.replay_key)
    assert entry is not None
    assert entry.state is LedgerState.COMMITTED
    again = await store.begin_replay(record.id, lease=5.0)
    assert again.outcome is ReplayOutcome.ALREADY_REPLAYED


async def test_dl_8_resolve_not_done_clears_the_key_and_allows_replay(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8 twin: resolving an in-doubt record as not done clears its key; it is replayable."""
    (record,) = await add(store, make(clock))
    assert await store.mark_started((await store.begin_replay(record.id, lease=5.0)).record)
    clock.advance(5.0)
    await store.reclaim_expired()
    resolved = await store.resolve(record.id, succeeded=False)
    assert resolved.replay.status is ReplayStatus.FAILED
    assert await store.get(record.id) == resolved
    assert await store.ledger(record.replay_key) is None
    assert (await store.begin_replay(record.id, lease=5.0)).action is Action.PROCEED


async def in_doubt_key(
    store: DeadLetterStore, clock: FakeClock, key: str
) -> tuple[DeadLetter, DeadLetter, DeadLetter]:
    """Three records carrying *key*: the first's worker died mid side effect (still running,
    lease expired), the second then asked for a replay (in doubt), the third was never replayed."""
    first, second, third = await add(
        store,
        make(clock, key="a", idempotency_key=key),
        make(clock, key="b", idempotency_key=key),
        make(clock, key="c", idempotency_key=key),
    )
    assert await store.mark_started((await store.begin_replay(first.id, lease=5.0)).record)
    clock.advance(5.0)
    assert (await store.begin_replay(second.id, lease=5.0)).outcome is ReplayOutcome.IN_DOUBT
    return first, second, third


@pytest.mark.parametrize("named", [0, 1], ids=["the-sender", "another"])
async def test_dl_8_resolve_succeeded_settles_every_in_doubt_record_carrying_the_key(
    store: DeadLetterStore, clock: FakeClock, named: int
) -> None:
    """DL-8: resolving a key as done settles all its in-doubt records; none of its records is ever resent."""
    records = await in_doubt_key(store, clock, "pay-20")
    first, second, third = records
    if named == 0:  # its worker's death noticed: in doubt; else it is settled while running
        assert (await store.begin_replay(first.id, lease=5.0)).outcome is ReplayOutcome.IN_DOUBT
    other = (await add(store, make(clock)))[0]
    assert await store.mark_started((await store.begin_replay(other.id, lease=5.0)).record)
    clock.advance(5.0)
    await store.reclaim_expired()  # `other` is in doubt for a key of its own

    resolved = await store.resolve(records[named].id, succeeded=True)
    assert resolved == await store.get(records[named].id)
    for record in (first, second):
        stored = await store.get(record.id)
        assert stored.replay.status is ReplayStatus.SUCCEEDED
        assert stored.replay.last_outcome is ReplayOutcome.REPLAYED
    assert (await store.get(third.id)).replay.status is ReplayStatus.NEVER
    assert (await store.get(other.id)).replay.status is ReplayStatus.IN_DOUBT
    entry = await store.ledger("pay-20")
    assert entry is not None
    assert (entry.state, entry.record_id) == (LedgerState.COMMITTED, records[named].id)
    settled = await store.begin_replay(third.id, lease=5.0)
    assert settled.outcome is ReplayOutcome.ALREADY_REPLAYED


@pytest.mark.parametrize("named", [0, 1], ids=["the-sender", "another"])
async def test_dl_8_resolve_failed_settles_every_in_doubt_record_and_frees_the_key(
    store: DeadLetterStore, clock: FakeClock, named: int
) -> None:
    """DL-8 twin: resolving a key as not done makes all its in-doubt records failed; the key is free once."""
    records = await in_doubt_key(store, clock, "pay-21")
    first, second, third = records
    if named == 0:  # its worker's death noticed: in doubt; else it is settled while running
        assert (await store.begin_replay(first.id, lease=5.0)).outcome is ReplayOutcome.IN_DOUBT
    await store.resolve(records[named].id, succeeded=False)
    for record in (first, second):
        stored = await store.get(record.id)
        assert stored.replay.status is ReplayStatus.FAILED
        assert stored.replay.last_error == "resolved by an operator: the side effect did not happen"
    assert await store.ledger("pay-21") is None
    leased = (await store.begin_replay(second.id, lease=5.0)).record
    assert await store.mark_started(leased)
    blocked = await store.begin_replay(third.id, lease=5.0)
    assert blocked.outcome is ReplayOutcome.IN_PROGRESS


async def test_dl_8_resolve_waits_for_a_forced_replay_of_the_key(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """DL-8: while a forced replay of another record sends the key, resolve refuses and changes nothing."""
    first, second, _third = await in_doubt_key(store, clock, "pay-22")
    assert (await store.begin_replay(first.id, lease=5.0)).outcome is ReplayOutcome.IN_DOUBT
    forced = await store.begin_replay(second.id, lease=5.0, force=True)
    assert await store.mark_started(forced.record, force=True)
    before = await store.ledger("pay-22")
    with pytest.raises(
        ValueError,
        match=rf"^dead letter {first.id}: the replay of dead letter {second.id} is sending "
        r"idempotency key 'pay-22' now, under a live lease; wait for it to finish",
    ):
        await store.resolve(first.id, succeeded=False)
    assert await store.ledger("pay-22") == before
    assert (await store.get(first.id)).replay.status is ReplayStatus.IN_DOUBT


async def test_resolve_refuses_a_record_that_is_not_in_doubt(
    store: DeadLetterStore, clock: FakeClock
) -> None:
    """Only in-doubt records are resolved by hand; others are left as they are."""
    (record,) = await add(store, make(clock))
    with pytest.raises(ValueError, match="has replay status 'never', not 'in_doubt'"):
        await store.resolve(record.id, succeeded=True)
    assert await store.get(record.id) == record
    assert await store.ledger(record.replay_key) is None


async def test_ledger_of_an_unknown_key_is_none(store: DeadLetterStore) -> None:
    """A key no replay touched has no ledger entry."""
    assert await store.ledger("never-seen") is None


# -- lifecycle ------------------------------------------------------------------------


async def test_closed_store_refuses_every_call(store: DeadLetterStore, clock: FakeClock) -> None:
    """After aclose, calls raise DeadLetterStoreError instead of touching closed resources."""
    (record,) = await add(store, make(clock))
    await store.aclose()
    with pytest.raises(DeadLetterStoreError, match="the store is closed"):
        await store.get(record.id)
    with pytest.raises(DeadLetterStoreError, match="the store is closed"):
        await store.add_many([make(clock)])
    await store.aclose()  # idempotent


async def test_store_call_is_a_checkpoint(store: DeadLetterStore) -> None:
    """Every store call is a cancellation point, even one with nothing to do."""
    with anyio.CancelScope() as scope:
        scope.cancel()
        await store.count()
        pytest.fail("count() did not check for cancellation")
    assert scope.cancelled_caught


@pytest.mark.parametrize(
    ("build", "pattern"),
    [
        (lambda: RetentionRule(max_count="10"), r"^retention rule: max_count must be an integer"),  # type: ignore[arg-type]
        (lambda: RetentionRule(max_count=float("nan")), r"^retention rule: max_count must be"),  # type: ignore[arg-type]
        (lambda: RetentionRule(max_age=float("inf")), r"^retention rule: max_age must be a finite"),
        (lambda: RetentionPolicy(interval=True), r"^retention policy: interval must be a finite"),
        (
            lambda: RetentionPolicy(active=None),  # type: ignore[arg-type]
            r"^retention policy: active must be a RetentionRule",
        ),
        (lambda: DeadLetterFilter(source="nope"), r"^filter: source must be one of 'ingest', "),
        (lambda: DeadLetterFilter(status=None, key=5), r"^filter: key must be a string or None"),  # type: ignore[arg-type]
        (lambda: DeadLetterFilter(since="1h"), r"^filter: since must be a time \(a number\)"),  # type: ignore[arg-type]
        (lambda: DeadLetterFilter(since=2.0, until=1.0), r"^filter: until \(1.0\) is before since"),
        (lambda: DeadLetterFilter(ids="abc"), r"^filter: ids must be an iterable of record ids"),
        (lambda: DeadLetterFilter(ids=[1]), r"^filter: ids must hold strings, got 1"),  # type: ignore[list-item]
    ],
)
def test_store_options_name_the_field_they_refuse(build: object, pattern: str) -> None:
    """RetentionRule, RetentionPolicy and DeadLetterFilter raise InvalidArgument naming the field, not a bare comparison error."""
    with pytest.raises(InvalidArgument, match=pattern):
        build()  # type: ignore[operator]
