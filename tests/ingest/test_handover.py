"""The hand-over: journal entries become outbox messages once, in order, at a governed pace (IN-6..IN-9)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import anyio
import pytest
from gateway._delivery import Scripted, Sink, clock, running

import otpy
from otpy import InvalidArgument
from otpy.deadletter import Source
from otpy.gateway import DeliveryPolicy, Gateway, MemoryOutboxStore, OutboxStore, RetryPolicy
from otpy.ingest import (
    BackfillPolicy,
    Handover,
    JournalEntry,
    MemoryJournalStore,
    handover_message_id,
)
from otpy.telemetry import (
    ATTR_INGEST_BACKFILL_BACKLOG,
    ATTR_INGEST_BACKFILL_HANDED_OVER,
    ATTR_INGEST_BACKFILL_RATE,
    ATTR_INGEST_ROUTE,
    METRIC_INGEST_HANDED_OVER,
    METRIC_INGEST_HANDOVER_BACKLOG,
    METRIC_INGEST_HANDOVER_RATE,
    METRIC_INGEST_UNROUTABLE,
    SPAN_INGEST_BACKFILL,
)
from otpy.testing import capture_metrics, capture_spans, virtual_time

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

    from opentelemetry.sdk.metrics.export import MetricsData

    from otpy.gateway import OutboxMessage

ROUTES = {"orders": ["billing", "crm"]}


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """Trio on a clock that jumps: rates and waits are exact."""
    return virtual_time()


def make_gateway(*names: str, outbox: OutboxStore | None = None) -> Gateway:
    """A gateway over a memory outbox with a scripted destination per name."""
    return Gateway(
        MemoryOutboxStore(clock=clock) if outbox is None else outbox,
        [Scripted(name) for name in names],
        policy=DeliveryPolicy(retry=RetryPolicy(schedule=("1s",)), breaker=None),
        dead_letters=Sink(),
        random=random.Random(7),
        clock=clock,
    )


def destination(g: Gateway, name: str) -> Scripted:
    """The scripted destination *name* of *g*."""
    return g._workers[name].destination  # type: ignore[return-value]


def new_entry(body: bytes = b"{}", *, route: str = "orders", **kw: Any) -> JournalEntry:
    """An entry received now (virtual wall clock)."""
    return JournalEntry.new(route=route, body=body, now=clock(), **kw)


async def accept(journal: MemoryJournalStore, n: int, *, route: str = "orders") -> None:
    """Accept *n* entries on *route* in one call."""
    await journal.accept([new_entry(route=route) for _ in range(n)])


class Pages:
    """The ``on_handed_over`` hook: when each page left the journal, and how many entries."""

    def __init__(self) -> None:
        self.start = 0.0
        self.pages: list[tuple[float, int]] = []
        self.routes: list[dict[str, int]] = []

    def __call__(self, counts: Mapping[str, int]) -> None:
        self.pages.append((anyio.current_time() - self.start, sum(counts.values())))
        self.routes.append(dict(counts))

    def restart(self) -> None:
        """Forget the pages so far; times count from now."""
        self.start = anyio.current_time()
        self.pages.clear()


async def steady(journal: MemoryJournalStore, h: Handover, seconds: int, per_second: int) -> None:
    """Accept *per_second* entries each whole second, for *seconds*, notifying the hand-over."""
    for _ in range(seconds):
        await accept(journal, per_second)
        h.notify()
        await anyio.sleep(1)


class MarkFailsOnce:
    """A memory journal whose first ``mark_handed_over`` raises, as a crash between the commits would."""

    def __init__(self) -> None:
        self.store = MemoryJournalStore(clock=clock)
        self.failed = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def mark_handed_over(self, ids: Sequence[str]) -> int:
        if not self.failed:
            self.failed = True
            raise RuntimeError("killed between the enqueue and the mark")
        return await self.store.mark_handed_over(ids)


async def outbox_ids(outbox: MemoryOutboxStore, ids: Sequence[str]) -> list[OutboxMessage]:
    """The outbox messages with these ids, in order, each present."""
    found = [await outbox.get(i) for i in ids]
    assert all(m is not None for m in found)
    return [m for m in found if m is not None]


# -- the messages -------------------------------------------------------------------------


async def test_each_entry_becomes_one_message_per_destination_of_its_route() -> None:
    """A page of two entries gives four messages: the entry's key, body, headers, keys, own ids."""
    outbox, journal = MemoryOutboxStore(clock=clock), MemoryJournalStore(clock=clock)
    g = make_gateway("billing", "crm", outbox=outbox)
    keyed = new_entry(
        b"one",
        key="customer-7",
        idempotency_key="pay-1",
        content_type="application/json",
        headers={"x-shop": "7"},
        trace_context={"traceparent": "00-" + "a" * 32 + "-" + "b" * 16 + "-01"},
    )
    plain = new_entry(b"two", key="customer-7")
    await journal.accept([keyed, plain])
    h = Handover(journal, g, ROUTES, dead_letters=Sink())

    counts = await h.hand_over(await journal.pending(limit=10))

    assert counts == {"orders": 2}
    assert await journal.pending(limit=10) == []
    ids = [handover_message_id(e.id, d) for e in (keyed, plain) for d in ("billing", "crm")]
    one_b, one_c, two_b, two_c = await outbox_ids(outbox, ids)
    assert (one_b.destination, one_c.destination, two_b.destination) == (
        "billing",
        "crm",
        "billing",
    )
    assert {m.key for m in (one_b, one_c, two_b, two_c)} == {"customer-7"}
    assert (one_b.body, one_b.content_type, one_b.headers) == (
        b"one",
        "application/json",
        (("x-shop", "7"),),
    )
    assert one_b.trace_context == keyed.trace_context
    assert (one_b.idempotency_key, one_c.idempotency_key) == ("pay-1", "pay-1")
    assert (two_b.idempotency_key, two_c.idempotency_key) == (two_b.id, two_c.id)
    assert one_b.id < two_b.id
    assert one_c.id < two_c.id


async def test_message_ids_survive_a_reordering_of_the_routes_destinations() -> None:
    """The id is the entry's id, '-', six hex of BLAKE2b of the destination: not its position."""
    journal = MemoryJournalStore(clock=clock)
    g = make_gateway("billing", "crm")
    entry = new_entry()
    forward = Handover(journal, g, {"orders": ["billing", "crm"]}, dead_letters=Sink())
    backward = Handover(journal, g, {"orders": ["crm", "billing"]}, dead_letters=Sink())
    now = clock()
    ids = {m.destination: m.id for m in forward.messages_of(entry, now)}
    assert ids == {m.destination: m.id for m in backward.messages_of(entry, now)}
    assert ids["billing"] == f"{entry.id}-{ids['billing'][-6:]}"
    assert ids["billing"] == handover_message_id(entry.id, "billing")
    assert ids["billing"][-6:] != ids["crm"][-6:]
    assert all(
        i.isascii() and i.isprintable() and " " not in i and "." not in i for i in ids.values()
    )


async def test_a_crash_between_enqueue_and_mark_hands_over_again_and_delivers_once() -> None:
    """The page goes to the outbox twice; the outbox keeps each id once and each destination gets it once."""
    outbox, journal = MemoryOutboxStore(clock=clock), MarkFailsOnce()
    g = make_gateway("billing", "crm", outbox=outbox)
    await journal.store.accept([new_entry(b"one", key="k"), new_entry(b"two", key="k")])
    h = Handover(journal, g, ROUTES, dead_letters=Sink())

    with pytest.raises(RuntimeError, match="killed between"):
        await h.step()
    assert len(await journal.store.pending(limit=10)) == 2  # still pending: not marked
    assert (await outbox.statistics()).depth == 4
    await h.step()  # the restarted loop reads them again

    assert await journal.store.pending(limit=10) == []
    assert (await outbox.statistics()).depth == 4  # no second outbox message
    async with running(g):
        await anyio.sleep(5)
    for name in ("billing", "crm"):
        assert [c.body for c in destination(g, name).calls] == [b"one", b"two"]


async def test_in_6_a_page_handed_over_again_after_its_delivery_is_not_sent_again() -> None:
    """IN-6, GW-1: delivered between the outbox's commit and a crash before the mark, it is not resent."""
    outbox, journal = MemoryOutboxStore(clock=clock), MarkFailsOnce()
    g = make_gateway("billing", "crm", outbox=outbox)
    await journal.store.accept([new_entry(b"one", key="k"), new_entry(b"two", key="k")])
    h = Handover(journal, g, ROUTES, dead_letters=Sink())
    with pytest.raises(RuntimeError, match="killed between"):
        await h.step()
    async with running(g):  # the restarted node's gateway delivers them first
        await anyio.sleep(5)
    assert (await outbox.statistics()).depth == 0
    await h.step()  # then its hand-over reads the unmarked page again
    assert await journal.store.pending(limit=10) == []
    assert (await outbox.statistics()).depth == 0  # the outbox remembers they left
    async with running(g):
        await anyio.sleep(5)
    for name in ("billing", "crm"):
        assert [c.body for c in destination(g, name).calls] == [b"one", b"two"]


async def test_in_18_a_route_whose_destination_has_a_full_outbox_waits_in_the_journal() -> None:
    """IN-18: at outbox_limit the route's entries stay in the journal; other routes go on; it resumes."""
    outbox, journal = MemoryOutboxStore(clock=clock), MemoryJournalStore(clock=clock)
    g = make_gateway("billing", "crm", outbox=outbox)
    h = Handover(
        journal,
        g,
        {"orders": ["billing"], "contacts": ["crm"]},
        outbox_limit=3,
        page_size=2,
        dead_letters=Sink(),
    )
    await accept(journal, 5, route="orders")
    await accept(journal, 2, route="contacts")
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.run)
        await anyio.sleep(2.5)  # billing is not delivering: its outbox fills to the limit
        held = h.statistics().held
        left = {e.route for e in await journal.pending(limit=10)}
        depth = (await outbox.statistics()).destinations["billing"].depth
        async with running(g):  # billing delivers: its outbox drains, orders resumes
            await anyio.sleep(5)
        tg.cancel_scope.cancel()
    assert held == ("orders",)
    assert left == {"orders"}  # contacts went through; one of orders waits
    assert depth == 4  # a page (2) at most past the limit (3)
    assert await journal.pending(limit=10) == []
    assert h.statistics().held == ()
    assert len(destination(g, "billing").calls) == 5


async def test_a_keys_order_holds_across_pages() -> None:
    """Seven entries of one key, in pages of two, reach the destination in the order accepted."""
    journal, pages = MemoryJournalStore(clock=clock), Pages()
    g = make_gateway("billing")
    bodies = [f"m{i}".encode() for i in range(7)]
    for body in bodies:
        await journal.accept([new_entry(body, key="customer-1")])
    h = Handover(
        journal,
        g,
        {"orders": ["billing"]},
        page_size=2,
        backfill=BackfillPolicy(rate=1000.0),
        dead_letters=Sink(),
        on_handed_over=pages,
    )
    async with running(g), anyio.create_task_group() as tg:
        tg.start_soon(h.run)
        await anyio.sleep(5)
        tg.cancel_scope.cancel()
    assert [n for _, n in pages.pages] == [2, 2, 2, 1]
    assert [c.body for c in destination(g, "billing").calls] == bodies


async def test_an_entry_of_a_route_gone_is_dead_lettered_and_marked() -> None:
    """A route the node no longer has: its entry becomes one dead letter (stable id), never dropped."""
    journal, sink = MarkFailsOnce(), Sink()
    g = make_gateway("billing")
    gone = new_entry(b"old", route="legacy", key="k", idempotency_key="i-1")
    kept = new_entry(b"new")
    await journal.store.accept([gone, kept])
    pages = Pages()
    h = Handover(
        journal,
        g,
        {"orders": ["billing"]},
        dead_letters=sink,
        on_handed_over=pages,
    )

    with pytest.raises(RuntimeError):
        await h.step()
    await h.step()  # handed over again after the crash: the same dead letter

    assert await journal.store.pending(limit=10) == []
    first, again = sink.records
    assert first.id == again.id
    assert (first.source, first.key, first.reason_class) == (
        Source.INGEST,
        "legacy",
        "UnknownRoute",
    )
    assert first.reason == (
        "route 'legacy' is not configured on this node: no destination to hand the entry over to"
    )
    assert (first.payload, first.correlation_id, first.idempotency_key) == (b"old", gone.id, "i-1")
    assert dict(first.attributes)[ATTR_INGEST_ROUTE] == "legacy"
    assert pages.routes == [{"legacy": 1, "orders": 1}]
    stats = h.statistics()
    assert (stats.handed_over, stats.dead_lettered) == (1, 1)


@pytest.mark.parametrize(
    ("routes", "message"),
    [
        (
            {"orders": []},
            r"^Handover: routes route 'orders' has no destinations: give it one or more$",
        ),
        (
            {"orders": ["billing", "nope"]},
            r"^Handover: routes route 'orders' names destination 'nope', which the gateway does "
            r"not have \(it has \['billing', 'crm'\]\)$",
        ),
        (
            {"orders": ["crm", "crm"]},
            r"^Handover: routes route 'orders' names destination 'crm' twice$",
        ),
        ({"orders": "billing"}, r"^Handover: routes route 'orders' must map to a sequence"),
        (["orders"], r"^Handover: routes must map route names to destination names"),
    ],
)
async def test_bad_routes_are_refused_naming_the_route(routes: Any, message: str) -> None:
    """An empty route, an unknown or repeated destination, a wrong shape: refused, naming it."""
    with pytest.raises(InvalidArgument, match=message):
        Handover(MemoryJournalStore(), make_gateway("billing", "crm"), routes, dead_letters=Sink())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"page_size": 0}, r"^Handover: page_size must be an integer >= 1, got 0$"),
        ({"poll_interval": 0}, r"^Handover: poll_interval must be a finite number > 0, got 0$"),
        ({"backfill": 1.5}, r"^Handover: backfill must be a BackfillPolicy or None, got 1.5$"),
        ({"on_handed_over": 3}, r"^Handover: on_handed_over "),
        ({"dead_letters": 3}, r"^Handover: dead_letters must be a DeadLetters client"),
    ],
)
async def test_bad_options_are_refused_naming_them(options: dict[str, Any], message: str) -> None:
    """A page size, poll interval, policy, hook or sink out of range is refused, naming it."""
    with pytest.raises(InvalidArgument, match=message):
        Handover(MemoryJournalStore(), make_gateway("billing"), {"orders": ["billing"]}, **options)


async def test_bad_journal_gateway_and_policy_fields_are_refused() -> None:
    """The journal and gateway must be the real things; a policy's rates must be > 0."""
    g = make_gateway("billing")
    with pytest.raises(InvalidArgument, match=r"^Handover: journal must be a JournalStore"):
        Handover(object(), g, {"orders": ["billing"]})  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^Handover: gateway must be a Gateway"):
        Handover(MemoryJournalStore(), object(), {"orders": ["billing"]})  # type: ignore[arg-type]
    for field in ("factor", "min_rate", "rate", "half_life", "sample_interval"):
        with pytest.raises(InvalidArgument, match=rf"^BackfillPolicy: {field} must be a finite"):
            BackfillPolicy(**{field: 0})


# -- the loop -----------------------------------------------------------------------------


async def test_notify_wakes_the_loop_at_once_and_it_polls_otherwise() -> None:
    """An accept with notify() goes at once; one without waits for the poll interval."""
    journal = MemoryJournalStore(clock=clock)
    pages = Pages()
    h = Handover(
        journal,
        make_gateway("billing"),
        {"orders": ["billing"]},
        poll_interval=30.0,
        dead_letters=Sink(),
        on_handed_over=pages,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.run)
        await anyio.sleep(1)
        pages.restart()
        await accept(journal, 3)
        h.notify()
        await anyio.sleep(1)
        await accept(journal, 2)  # no notify: the poll finds it
        await anyio.sleep(60)
        tg.cancel_scope.cancel()
    assert pages.pages == [(0.0, 3), (30.0, 2)]


# -- the backfill ---------------------------------------------------------------------------


async def test_a_backlog_drains_at_one_and_a_half_times_the_steady_rate() -> None:
    """After 10/s steady, 1,000 entries go 15 a second, exactly: 66 whole seconds, then the last 10."""
    journal, pages = MemoryJournalStore(clock=clock), Pages()
    h = Handover(
        journal,
        make_gateway("billing"),
        {"orders": ["billing"]},
        page_size=100,
        backfill=BackfillPolicy(min_rate=1.0),
        dead_letters=Sink(),
        on_handed_over=pages,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.run)
        await steady(journal, h, seconds=20, per_second=10)
        assert pages.pages[-3:] == [(17.0, 10), (18.0, 10), (19.0, 10)]  # each as it came
        assert h.statistics().steady_rate == 10.0
        pages.restart()
        await accept(journal, 1000)
        h.notify()
        await anyio.sleep(30.5)
        during = h.statistics()
        await anyio.sleep(40)
        tg.cancel_scope.cancel()
    assert (during.backfilling, during.rate, during.steady_rate) == (True, 15.0, 10.0)
    assert during.backlog == 1000 - 30 * 15
    assert pages.pages[:66] == [(float(k), 15) for k in range(1, 67)]
    [(last_at, last)] = pages.pages[66:]
    assert last_at == pytest.approx(1000 / 15)
    assert last == 10
    after = h.statistics()
    assert (after.backfilling, after.backlog, after.backfills, after.handed_over) == (
        False,
        0,
        1,
        1200,
    )


async def test_an_idle_nodes_backlog_drains_at_the_floor() -> None:
    """No steady rate measured (an idle or new node): the backlog drains at min_rate, 50/s by default."""
    journal, pages = MemoryJournalStore(clock=clock), Pages()
    h = Handover(
        journal,
        make_gateway("billing"),
        {"orders": ["billing"]},
        page_size=100,
        dead_letters=Sink(),
        on_handed_over=pages,
    )
    await accept(journal, 1000)
    async with anyio.create_task_group() as tg:
        pages.restart()
        tg.start_soon(h.run)
        await anyio.sleep(25)
        tg.cancel_scope.cancel()
    assert pages.pages == [(float(k), 50) for k in range(1, 21)]
    assert h.statistics().steady_rate is None


async def test_a_node_gone_quiet_drains_at_the_floor_not_at_its_old_rate() -> None:
    """A steady rate that decayed while idle (2/s, then quiet) falls under the floor: min_rate wins."""
    journal, pages = MemoryJournalStore(clock=clock), Pages()
    h = Handover(
        journal,
        make_gateway("billing"),
        {"orders": ["billing"]},
        page_size=10,
        backfill=BackfillPolicy(min_rate=4.0, half_life=1.0),
        dead_letters=Sink(),
        on_handed_over=pages,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.run)
        await steady(journal, h, seconds=5, per_second=2)
        await anyio.sleep(30)  # quiet: samples of 0 pull the average down
        quiet = h.statistics().steady_rate
        pages.restart()
        await accept(journal, 20)
        h.notify()
        await anyio.sleep(10)
        tg.cancel_scope.cancel()
    assert quiet is not None
    assert quiet < 0.001
    assert pages.pages == [(float(k), 4) for k in range(1, 6)]


async def test_in_9_a_restarted_hand_over_drains_a_backlog_at_the_saved_steady_rate() -> None:
    """IN-9: the steady rate is saved in the journal, so a new process's backlog drains at 1.5x it."""
    journal = MemoryJournalStore(clock=clock)

    def handover(pages: Pages) -> Handover:
        return Handover(
            journal,
            make_gateway("billing"),
            {"orders": ["billing"]},
            page_size=100,
            backfill=BackfillPolicy(min_rate=1.0),
            dead_letters=Sink(),
            on_handed_over=pages,
        )

    first = handover(Pages())
    async with anyio.create_task_group() as tg:
        tg.start_soon(first.run)
        await steady(journal, first, seconds=20, per_second=10)  # saved every 10 s
        tg.cancel_scope.cancel()
    assert await journal.steady_rate() == 10.0
    await accept(journal, 300)  # accepted while the node was down
    pages = Pages()
    second = handover(pages)  # a new process: nothing measured in memory
    async with anyio.create_task_group() as tg:
        pages.restart()
        tg.start_soon(second.run)
        await anyio.sleep(10.5)
        during = second.statistics()
        tg.cancel_scope.cancel()
    assert (during.backfilling, during.rate, during.steady_rate) == (True, 15.0, 10.0)
    assert pages.pages == [(float(k), 15) for k in range(1, 11)]


async def test_a_journal_that_cannot_give_its_saved_rate_starts_at_the_floor() -> None:
    """A failing read of the saved rate is logged; the hand-over starts as a new node would."""

    class NoSavedRate:
        def __init__(self) -> None:
            self.store = MemoryJournalStore(clock=clock)

        def __getattr__(self, name: str) -> Any:
            return getattr(self.store, name)

        async def steady_rate(self) -> float | None:
            raise otpy.JournalError("journal x: the store is closed")

    journal, pages = NoSavedRate(), Pages()
    h = Handover(
        journal,  # a JournalStore by delegation
        make_gateway("billing"),
        {"orders": ["billing"]},
        page_size=100,
        dead_letters=Sink(),
        on_handed_over=pages,
    )
    await accept(journal.store, 200)
    async with anyio.create_task_group() as tg:
        pages.restart()
        tg.start_soon(h.run)
        await anyio.sleep(2.5)
        tg.cancel_scope.cancel()
    assert pages.pages == [(1.0, 50), (2.0, 50)]


async def test_the_steady_rate_recovers_after_a_backlog_and_governs_the_next() -> None:
    """A backfill does not count as steady; 10/s afterwards brings the average back to 10."""
    journal, pages = MemoryJournalStore(clock=clock), Pages()
    h = Handover(
        journal,
        make_gateway("billing"),
        {"orders": ["billing"]},
        page_size=50,
        backfill=BackfillPolicy(min_rate=1.0, half_life=2.0),
        dead_letters=Sink(),
        on_handed_over=pages,
    )
    async with anyio.create_task_group() as tg:
        tg.start_soon(h.run)
        await steady(journal, h, seconds=10, per_second=10)
        await accept(journal, 200)
        h.notify()
        await anyio.sleep(15)  # 200 at 15/s: 13.3 seconds
        drained = h.statistics()
        await steady(journal, h, seconds=30, per_second=10)
        recovered = h.statistics()
        pages.restart()
        await accept(journal, 300)
        h.notify()
        await anyio.sleep(1.5)
        second = h.statistics()
        tg.cancel_scope.cancel()
    assert (drained.backfilling, drained.backfills) == (False, 1)
    # Not measured during the backfill; the quiet second after it weighs 1 - 2**-0.5.
    assert drained.steady_rate == pytest.approx(10.0 * 2**-0.5)
    assert recovered.steady_rate == pytest.approx(10.0, abs=1e-3)
    assert (second.backfilling, second.backfills) == (True, 2)
    assert second.rate == pytest.approx(15.0, abs=2e-3)
    assert second.rate is not None
    [(at, n)] = pages.pages  # whole entries per second, at the rate
    assert at == pytest.approx(int(second.rate) / second.rate)
    assert n == int(second.rate)


def points(data: MetricsData | None, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    """The metric's data points by their sorted attributes."""
    found: dict[tuple[tuple[str, Any], ...], Any] = {}
    if data is None:
        return found
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        found[key] = getattr(point, "value", None)
    return found


async def test_a_backfill_is_a_span_and_the_hand_over_is_counted_and_gauged() -> None:
    """The backfill span has its backlog, rate and count; the counters go by route, the gauges end at 0."""
    journal = MemoryJournalStore(clock=clock)
    h = Handover(
        journal,
        make_gateway("billing"),
        {"metered": ["billing"]},
        page_size=10,
        backfill=BackfillPolicy(min_rate=5.0),
        dead_letters=Sink(),
    )
    await accept(journal, 25, route="metered")
    await accept(journal, 2, route="retired")
    with capture_spans() as exporter, capture_metrics() as reader:
        async with anyio.create_task_group() as tg:
            tg.start_soon(h.run)
            await anyio.sleep(2.5)
            during = reader.get_metrics_data()
            await anyio.sleep(10)
            tg.cancel_scope.cancel()
        after = reader.get_metrics_data()
    [span] = [s for s in exporter.get_finished_spans() if s.name == SPAN_INGEST_BACKFILL]
    assert dict(span.attributes or {}) == {
        ATTR_INGEST_BACKFILL_BACKLOG: 27,
        ATTR_INGEST_BACKFILL_RATE: 5.0,
        ATTR_INGEST_BACKFILL_HANDED_OVER: 27,
    }
    assert span.parent is None
    by = ATTR_INGEST_ROUTE
    assert points(during, METRIC_INGEST_HANDED_OVER) == {((by, "metered"),): 10}
    assert points(during, METRIC_INGEST_HANDOVER_RATE) == {(): 5.0}
    assert points(during, METRIC_INGEST_HANDOVER_BACKLOG) == {(): 17}
    assert points(after, METRIC_INGEST_HANDED_OVER) == {((by, "metered"),): 15}
    assert points(after, METRIC_INGEST_UNROUTABLE) == {((by, "retired"),): 2}
    assert points(after, METRIC_INGEST_HANDOVER_BACKLOG) == {(): 0}
    assert points(after, METRIC_INGEST_HANDOVER_RATE) == {(): 0.0}


# -- the actor -----------------------------------------------------------------------------


class SlowOutbox:
    """A memory outbox whose enqueue takes three seconds, as a slow disk would."""

    def __init__(self) -> None:
        self.store = MemoryOutboxStore(clock=clock)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def enqueue(
        self, messages: Sequence[OutboxMessage], *, timeout: float | None = None
    ) -> int:
        await anyio.sleep(3)
        return await self.store.enqueue(messages, timeout=timeout)


async def test_the_worker_finishes_the_page_in_hand_when_stopped() -> None:
    """A stop during a page's enqueue waits for it and its mark; the loop then returns."""
    journal, outbox = MemoryJournalStore(clock=clock), SlowOutbox()
    h = Handover(
        journal,
        make_gateway("billing", outbox=outbox),
        {"orders": ["billing"]},
        dead_letters=Sink(),
    )
    await accept(journal, 3)
    async with otpy.open_node():
        async with otpy.open_supervisor(
            otpy.SupervisorSpec(children=[h.child_spec(shutdown=10.0)])
        ):
            await anyio.sleep(1)
            started = anyio.current_time()
        stopped_after = anyio.current_time() - started
    assert stopped_after == 2.0  # the enqueue's remaining two seconds
    assert await journal.pending(limit=10) == []
    assert (await outbox.statistics()).depth == 3
    assert h.stopped.is_set()


async def test_an_idle_worker_stops_at_once_and_a_second_runner_is_refused() -> None:
    """Waiting for entries, a stop returns at once; run() while the worker runs is refused."""
    h = Handover(
        MemoryJournalStore(clock=clock),
        make_gateway("billing"),
        {"orders": ["billing"]},
        dead_letters=Sink(),
    )
    async with otpy.open_node():
        async with otpy.open_supervisor(otpy.SupervisorSpec(children=[h.child_spec()])):
            await anyio.sleep(1)
            with pytest.raises(RuntimeError, match="already running"):
                await h.run()
            started = anyio.current_time()
        assert anyio.current_time() == started
    async with anyio.create_task_group() as tg:  # released: run() works again
        tg.start_soon(h.run)
        await anyio.sleep(1)
        h.drain()
        await h.stopped.wait()
