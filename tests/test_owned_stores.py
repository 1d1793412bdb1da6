"""Stores a tree owns: ``sqlite_outbox`` and ``sqlite_journal``, opened and tended by a keeper."""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import otpy
from otpy.gateway import OutboxMessage, OutboxStore, sqlite_outbox
from otpy.ingest import JournalEntry, JournalStore, MemoryJournalStore, sqlite_journal
from otpy.telemetry import (
    METRIC_INGEST_JOURNAL_BYTES,
    METRIC_INGEST_JOURNAL_DEPTH,
    METRIC_INGEST_JOURNAL_PURGED,
)
from otpy.testing import capture_metrics, virtual_time

if TYPE_CHECKING:
    from pathlib import Path

    from opentelemetry.sdk.metrics.export import MetricsData

VIRTUAL = pytest.mark.parametrize("anyio_backend", [virtual_time()])


class Clock:
    """A wall clock the test moves."""

    def __init__(self) -> None:
        self.now = 1_000.0

    def __call__(self) -> float:
        return self.now


def tree(*children: otpy.ChildSpec) -> otpy.SupervisorSpec:
    """A rest_for_one tree of *children*."""
    return otpy.SupervisorSpec(
        id="stores",
        flags=otpy.SupervisorFlags(strategy=otpy.Strategy.REST_FOR_ONE),
        children=list(children),
    )


def points(data: MetricsData | None, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    """The metric's data points by their sorted attributes."""
    found: dict[tuple[tuple[str, Any], ...], Any] = {}
    for resource_metrics in data.resource_metrics if data else ():
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        found[key] = getattr(point, "value", None)
    return found


@VIRTUAL
async def test_handles_are_stores_that_refuse_calls_until_their_keeper_opens_them(
    tmp_path: Path,
) -> None:
    """Before its keeper runs, a handle's call raises the store's typed error, naming the file."""
    outbox = sqlite_outbox(tmp_path / "outbox.db")
    journal = sqlite_journal(tmp_path / "journal.db")
    assert isinstance(outbox, OutboxStore)
    assert isinstance(journal, JournalStore)
    assert not outbox.is_open
    with pytest.raises(otpy.OutboxError, match=r"outbox .*outbox\.db: not open: its keeper"):
        await outbox.statistics()
    with pytest.raises(otpy.JournalError, match=r"journal .*journal\.db: not open: its keeper"):
        await journal.statistics()


@VIRTUAL
async def test_a_keeper_opens_the_file_in_a_new_directory_and_closes_it_at_stop(
    tmp_path: Path,
) -> None:
    """NODE-7: The keepers create the directory, open the files for the tree's lifetime, close them at stop."""
    outbox = sqlite_outbox(tmp_path / "var" / "outbox.db", synchronous="normal")
    journal = sqlite_journal(tmp_path / "var" / "journal.db", synchronous="off")
    clock = Clock()
    async with otpy.open_node():
        supervisor = await otpy.start_supervisor(tree(journal.child_spec(), outbox.child_spec()))
        assert (outbox.is_open, journal.is_open) == (True, True)
        entry = JournalEntry.new(route="orders", body=b"{}", now=clock())
        [accepted] = await journal.accept([entry])
        message = OutboxMessage.new(destination="billing", key="k", body=b"{}", now=clock())
        assert await outbox.enqueue([message]) == 1
        await supervisor.stop()
    assert (outbox.is_open, journal.is_open) == (False, False)
    with sqlite3.connect(tmp_path / "var" / "journal.db") as db:
        assert db.execute("SELECT count(*) FROM journal").fetchone() == (1,)
    with sqlite3.connect(tmp_path / "var" / "outbox.db") as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (1,)
    assert accepted.id == entry.id


@VIRTUAL
async def test_a_file_that_cannot_be_opened_fails_the_start_with_the_typed_error(
    tmp_path: Path,
) -> None:
    """NODE-7: A foreign file refuses to open: the keeper's init fails, so the tree does not start."""
    path = tmp_path / "outbox.db"
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA application_id = 42")
        db.execute("CREATE TABLE other (x)")
    outbox = sqlite_outbox(path)
    async with otpy.open_node():
        with pytest.raises(otpy.SpawnError) as caught:
            await otpy.start_supervisor(tree(outbox.child_spec()))
    assert "outbox" in str(caught.value)
    assert not outbox.is_open


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_the_journal_keeper_purges_expired_dedup_records_and_samples_its_gauges(
    tmp_path: Path,
) -> None:
    """Every purge_interval the keeper drops dedup records past the window; the gauges follow.

    On the real clock with short intervals: the store works on a thread, and a
    virtual clock would jump past the test's deadlines while it does. Each wait is
    for a condition, bounded.
    """
    clock = Clock()
    journal = sqlite_journal(
        tmp_path / "journal.db",
        synchronous="off",
        dedup_ttl=60.0,
        clock=clock,
        purge_interval=0.02,
        sample_interval=0.02,
        routes=["orders", "audit"],
    )
    with capture_metrics() as reader:
        async with otpy.open_node():
            supervisor = await otpy.start_supervisor(tree(journal.child_spec()))
            entry = JournalEntry.new(
                route="orders", body=b"12345", now=clock(), idempotency_key="a"
            )
            await journal.accept([entry])
            await journal.mark_handed_over([entry.id])
            assert (await journal.statistics()).dedup_records == 1
            clock.now += 61.0  # past the window: the next purge removes it
            with anyio.fail_after(20.0):
                while True:
                    if (await journal.statistics()).dedup_records == 0:
                        break
                    await anyio.sleep(0.01)
            again = JournalEntry.new(route="orders", body=b"123", now=clock())
            await journal.accept([again])
            orders = (("otpy.ingest.route", "orders"),)
            purged = 0
            with anyio.fail_after(20.0):  # each read holds what was recorded since the last
                while True:
                    data = reader.get_metrics_data()
                    purged += sum(points(data, METRIC_INGEST_JOURNAL_PURGED).values())
                    if points(data, METRIC_INGEST_JOURNAL_DEPTH).get(orders) == 1:
                        break
                    await anyio.sleep(0.01)
            await supervisor.stop()
    assert purged == 1
    depth = points(data, METRIC_INGEST_JOURNAL_DEPTH)
    mine = {key: depth[key] for key in depth if key[0][1] in ("audit", "orders")}
    assert mine == {  # a gauge also repeats the last value of other tests' routes
        (("otpy.ingest.route", "audit"),): 0,
        (("otpy.ingest.route", "orders"),): 1,
    }
    assert points(data, METRIC_INGEST_JOURNAL_BYTES) == {(): 3}


@VIRTUAL
@pytest.mark.parametrize(
    ("make", "argument", "value"),
    [
        (sqlite_outbox, "synchronous", "sometimes"),
        (sqlite_outbox, "busy_timeout", -1),
        (sqlite_outbox, "max_batch", 0),
        (sqlite_journal, "max_bytes", 0),
        (sqlite_journal, "dedup_ttl", 0),
        (sqlite_journal, "purge_interval", 0),
        (sqlite_journal, "sample_interval", float("nan")),
    ],
)
async def test_a_bad_option_is_refused_when_the_tree_is_built(
    tmp_path: Path, make: Any, argument: str, value: object
) -> None:
    """sqlite_outbox/sqlite_journal check their options at once, naming the argument."""
    with pytest.raises(otpy.InvalidArgument, match=rf"^{make.__name__}: {argument} must be"):
        make(tmp_path / "x.db", **{argument: value})


@VIRTUAL
async def test_a_sample_running_past_the_next_purge_does_not_crash_the_housekeeping(
    tmp_path: Path,
) -> None:
    """The keeper's wait never goes negative: a slow sample ending after the purge is due purges next."""
    journal = sqlite_journal(
        tmp_path / "journal.db", synchronous="off", purge_interval=6.0, sample_interval=5.0
    )

    class Slow:
        """A journal whose statistics take 0.9 s: the second sample ends after the purge is due."""

        def __init__(self) -> None:
            self.store = MemoryJournalStore()
            self.purges: list[float] = []

        async def statistics(self) -> Any:
            await anyio.sleep(0.9)
            return await self.store.statistics()

        async def purge(self) -> int:
            self.purges.append(anyio.current_time())
            return 0

    slow = Slow()
    journal._store = slow  # type: ignore[assignment]  # the store the keeper would have opened
    with capture_metrics():
        start = anyio.current_time()
        with anyio.move_on_after(20.0):
            await journal.housekeeping()
    assert [round(t - start, 1) for t in slow.purges] == [0.0, 6.8, 13.6]
