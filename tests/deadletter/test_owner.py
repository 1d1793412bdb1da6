"""A tree that owns its SQLite store: opened by a StoreOwner, closed when it stops (DL-1, DL-2)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

import otpy
from otpy import ChildSpec, Strategy, SupervisorFlags, SupervisorSpec
from otpy.deadletter import (
    DeadLetter,
    DeadLetterFilter,
    DeadLetters,
    LedgerState,
    ReplayOutcome,
    ReplayStarter,
    ReplayStatus,
    RetentionPolicy,
    Source,
    Status,
    dead_letter_children,
    open_store,
    sqlite_store,
)

if TYPE_CHECKING:
    from pathlib import Path

asyncio_only = pytest.mark.parametrize("anyio_backend", ["asyncio"])  # aiosqlite needs asyncio


class Enricher(otpy.Actor):
    """Crashes on the record ``"poison"``; its crash dead-letters the record."""

    dead_letter_on_crash = True

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        if message == "poison":
            raise ValueError("cannot enrich 'poison'")
        return f"enriched {message}"


def node_tree(path: Path, **options: Any) -> SupervisorSpec:
    # rest_for_one: the store and its writer start first; if they restart,
    # everything that captures restarts too.
    return SupervisorSpec(
        id="node",
        flags=SupervisorFlags(strategy=Strategy.REST_FOR_ONE, intensity=5, period=5.0),
        children=[
            *dead_letter_children(sqlite_store(path), sweep=False, route=True, **options),
            ChildSpec(id="enrich", start=Enricher, name="enrich"),
        ],
    )


async def settle() -> None:
    """Wait until every capture handed to the writer so far is committed."""
    await DeadLetters().flush()


@asyncio_only
async def test_poison_message_lands_in_the_tree_owned_sqlite_file(tmp_path: Path) -> None:
    """DL-1/DL-2: a crash on a message stores it in the file the tree opened; the tree goes on."""
    path = tmp_path / "var" / "dead-letters.db"  # the directory does not exist yet
    async with otpy.open_supervisor(node_tree(path)) as sup:
        with pytest.raises(otpy.ActorExited):
            await otpy.named("enrich").call("poison")
        await sup.wait_child("enrich")
        assert await otpy.named("enrich").call("r1") == "enriched r1"
        await settle()
    async with open_store(path) as store:
        page = await store.list()
    poison = [r for r in page.records if r.source is Source.ACTOR_CRASH]
    assert [(r.key, r.reason_class, r.payload) for r in poison] == [
        ("enrich", "ValueError", b"poison")
    ]
    assert poison[0].reason == "cannot enrich 'poison'"


@asyncio_only
async def test_without_route_the_node_stream_is_not_stored(tmp_path: Path) -> None:
    """Twin: without route=True a poison message is only published in memory, never stored."""
    path = tmp_path / "dead.db"
    spec = SupervisorSpec(
        id="node",
        flags=SupervisorFlags(strategy=Strategy.REST_FOR_ONE),
        children=[
            *dead_letter_children(sqlite_store(path), sweep=False),
            ChildSpec(id="enrich", start=Enricher, name="enrich"),
        ],
    )
    async with otpy.open_supervisor(spec) as sup:
        with pytest.raises(otpy.ActorExited):
            await otpy.named("enrich").call("poison")
        await sup.wait_child("enrich")
        await settle()
        assert otpy.current_node().dead_letters.statistics().by_reason == {"poison": 1}
    async with open_store(path) as store:
        assert (await store.list()).records == ()


@asyncio_only
async def test_handle_is_open_only_while_its_owner_runs(tmp_path: Path) -> None:
    """The handle opens with the tree and closes with it; closed, it raises a typed error."""
    handle = sqlite_store(tmp_path / "dead.db")
    with pytest.raises(otpy.DeadLetterStoreError, match=r"not open: its StoreOwner is not running"):
        await handle.count()
    spec = SupervisorSpec(id="node", children=dead_letter_children(handle, sweep=False))
    async with otpy.open_supervisor(spec):
        while_running = handle.is_open
        assert await handle.count() == 0
    assert (while_running, handle.is_open) == (True, False)
    with pytest.raises(otpy.DeadLetterStoreError, match="not open"):
        await handle.list()


@asyncio_only
async def test_handle_passes_every_store_operation_through(tmp_path: Path) -> None:
    """DL-3..DL-8 through a tree-owned handle: it is a full store, guard and ledger included."""
    handle = sqlite_store(tmp_path / "dead.db")
    spec = SupervisorSpec(id="node", children=dead_letter_children(handle, sweep=False))
    async with otpy.open_supervisor(spec):
        kept, archived = (
            DeadLetter.capture(key=k, source=Source.OUTBOUND, reason_class="E") for k in "ab"
        )
        assert await handle.add_many([kept, archived]) == 2
        assert (await handle.get(kept.id)).key == "a"
        assert [r.id for r in (await handle.list()).records] == [archived.id, kept.id]
        assert await handle.archive(DeadLetterFilter(ids=[archived.id])) == 1
        assert await handle.purge(DeadLetterFilter(status=Status.ARCHIVED)) == 1
        assert await handle.count() == 1
        assert (await handle.statistics()).by_status == {"active": 1}
        assert (await handle.sweep(RetentionPolicy())).total == 0
        decision = await handle.begin_replay(kept.id, lease=30.0)
        assert await handle.mark_started(decision.record)
        assert (await handle.ledger(kept.replay_key)) is not None
        assert await handle.reclaim_expired() == []
        done = await handle.finish(kept.id, ReplayOutcome.IN_DOUBT)
        assert done.replay.status is ReplayStatus.IN_DOUBT
        settled = await handle.resolve(kept.id, succeeded=True)
        assert settled.replay.status is ReplayStatus.SUCCEEDED
        assert isinstance(handle, ReplayStarter)
        again = await handle.start_replay(kept.id, lease=30.0, force=True)
        assert again.record.replay.status is ReplayStatus.RUNNING
        entry = await handle.ledger(kept.replay_key)
        assert entry is not None
        assert (entry.state, entry.record_id) == (LedgerState.PENDING, kept.id)
        assert "open" in repr(handle)


@asyncio_only
async def test_a_file_that_is_not_a_store_stops_the_tree_from_starting(tmp_path: Path) -> None:
    """The owner's typed error reaches whoever starts the tree, and the file is untouched."""
    path = tmp_path / "notes.txt"
    path.write_text("shopping list\n")
    with pytest.raises(otpy.SpawnError) as caught:
        async with otpy.open_supervisor(node_tree(path)):
            pass  # pragma: no cover - the tree must not start
    assert "not an otpy dead-letter store" in str(caught.value)
    assert path.read_text() == "shopping list\n"


def test_bad_options_fail_when_the_tree_is_built(tmp_path: Path) -> None:
    """A bad store option fails at spec time, naming the allowed values."""
    with pytest.raises(ValueError, match=r"synchronous must be one of 'FULL', 'NORMAL', 'OFF'"):
        sqlite_store(tmp_path / "x.db", synchronous="EXTRA")
    with pytest.raises(ValueError, match="inline_limit must be >= 0"):
        sqlite_store(tmp_path / "x.db", inline_limit=-1)
    with pytest.raises(ValueError, match="busy_timeout must be >= 0"):
        sqlite_store(tmp_path / "x.db", busy_timeout=-1.0)
    with pytest.raises(ValueError, match="sqlite_store: max_batch must be an integer >= 1"):
        sqlite_store(tmp_path / "x.db", max_batch=0)
    with pytest.raises(TypeError, match="sqlite_store: max_pending must be an integer >= 1"):
        sqlite_store(tmp_path / "x.db", max_pending=2.5)  # type: ignore[arg-type]


def test_children_come_in_start_order_with_derived_names(tmp_path: Path) -> None:
    """The owner comes first, then writer, sweeper and router, each under a derived name."""
    children = dead_letter_children(sqlite_store(tmp_path / "x.db"), name="dl", route=True)
    assert [(c.id, c.name) for c in children] == [
        ("dl.store", "dl.store"),
        ("dl", "dl"),
        ("dl-retention", "dl-retention"),
        ("dl-router", "dl-router"),
    ]
