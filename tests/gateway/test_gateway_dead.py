"""What the gateway gives up: dead letters that are never both or neither, disabling that lasts, replay (GW-8, GW-9, GW-12)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING

import anyio
import attrs
import pytest

import otpy
from otpy.deadletter import (
    Category,
    DeadLetter,
    MemoryDeadLetterStore,
    ReplayOutcome,
    Source,
    open_replayer,
)
from otpy.gateway import (
    DeliveryPolicy,
    Gateway,
    MemoryOutboxStore,
    OutboxState,
    RetryPolicy,
)
from otpy.gateway._classify import Outcome
from otpy.gateway._gateway import DeadDetails, _bounded_request, _duration
from otpy.gateway._http import DeliveryResult
from otpy.testing import virtual_time

from ._delivery import UNAVAILABLE, Scripted, clock, running

if TYPE_CHECKING:
    from otpy.gateway import Destination


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """Trio on a clock that jumps: hours of retries take no time, exactly."""
    return virtual_time()


class Store:
    """A memory dead-letter store behind the gateway's sink, counting what it was handed."""

    def __init__(self) -> None:
        self.store = MemoryDeadLetterStore(clock=clock)
        self.handed = 0

    async def __call__(self, record: DeadLetter) -> None:
        self.handed += 1
        await self.store.add_many([record])

    async def records(self) -> list[DeadLetter]:
        return list((await self.store.list()).records)


def make(
    outbox: MemoryOutboxStore, destination: Destination, store: Store, **policy: object
) -> Gateway:
    options: dict[str, object] = {"retry": RetryPolicy(schedule=("1s",)), "breaker": None}
    options.update(policy)
    return Gateway(
        outbox,
        [destination],
        policy=DeliveryPolicy(**options),  # type: ignore[arg-type]
        dead_letters=store,
        random=random.Random(7),
        clock=clock,
    )


REFUSED = DeliveryResult(
    outcome=Outcome.TERMINAL,
    status=422,
    response_excerpt=b'{"error": "bad total"}',
    request=(
        ("http.request.method", "POST"),
        ("url.full", "https://orders.example/hook"),
        ("http.request.header.authorization", "[redacted]"),
    ),
)


# -- the dead letter ----------------------------------------------------------------------


async def test_a_dead_letter_keeps_where_it_was_going_and_what_was_sent() -> None:
    """The record names the destination, the ordering key, the outbox id, the status and the request."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    g = make(outbox, Scripted(one=[REFUSED]), store)
    async with running(g):
        message_id = await g.enqueue(
            "orders", key="customer-42", body=b"one", idempotency_key="idem-1"
        )
        await anyio.sleep(1)
    [record] = await store.records()
    assert record.source is Source.OUTBOUND
    assert (record.key, record.correlation_id, record.idempotency_key) == (
        "orders",
        message_id,
        "idem-1",
    )
    assert (record.reason_class, record.category, record.attempt) == (
        "http.422",
        Category.TERMINAL,
        1,
    )
    assert "bad total" in record.reason
    assert dict(record.attributes) == {
        "messaging.destination.name": "orders",
        "otpy.ordering_key": "customer-42",
        "otpy.outbox.message_id": message_id,
        "http.response.status_code": "422",
        "http.request.method": "POST",
        "url.full": "https://orders.example/hook",
        "http.request.header.authorization": "[redacted]",
    }


async def test_a_crash_after_marking_dead_is_finished_at_the_next_start() -> None:
    """Marked dead, nothing stored: the next start stores the dead letter and removes the row."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    dest = Scripted()
    g = make(outbox, dest, store)
    message_id = await g.enqueue("orders", key="a", body=b"one")
    details = DeadDetails(
        reason_class="http.422", reason="refused", category=Category.TERMINAL, why="terminal"
    )
    await outbox.mark_dead(message_id, attempts=1, status=422, error=details.encode())
    async with running(g):
        await anyio.sleep(1)
    assert dest.calls == []  # never sent again
    assert await outbox.get(message_id) is None
    [record] = await store.records()
    assert (record.correlation_id, record.reason_class, record.reason) == (
        message_id,
        "http.422",
        "refused",
    )


async def test_a_crash_after_storing_the_dead_letter_leaves_one_record() -> None:
    """Stored, not yet removed: the next start stores the same record again (kept once) and removes the row."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    g = make(outbox, Scripted(), store)
    message_id = await g.enqueue("orders", key="a", body=b"one")
    details = DeadDetails(
        reason_class="http.500", reason="gave up", category=Category.RETRYABLE, why="retries"
    )
    dead = await outbox.mark_dead(message_id, attempts=2, status=500, error=details.encode())
    await store(g.dead_letter_of(dead))  # the crash came right after this commit
    async with running(g):
        await anyio.sleep(1)
    assert store.handed == 2
    [record] = await store.records()
    assert record.id == g.dead_letter_of(dead).id
    assert await outbox.get(message_id) is None


# -- disabling ----------------------------------------------------------------------------


async def test_a_destination_failing_for_disable_after_is_disabled_and_keeps_its_messages() -> None:
    """Only failures for a minute: disabled, with its reason, durably; its messages wait."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    dest = Scripted(one=[UNAVAILABLE] * 100)
    g = make(outbox, dest, store, retry=RetryPolicy(schedule=("10s",) * 20), disable_after=60.0)
    async with running(g):
        start = anyio.current_time()
        message_id = await g.enqueue("orders", key="a", body=b"one")
        await anyio.sleep(200)
        stats = g.statistics().destinations["orders"]
        assert (stats.disabled, stats.disabled_reason) == (True, "sustained_failure")
        assert stats.failing_since == clock() - (anyio.current_time() - start)
    assert [at for _, at in dest.sent()] == [0.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0]
    waiting = await outbox.get(message_id)
    assert waiting is not None
    assert waiting.state is OutboxState.PENDING
    state = (await outbox.destination_states())["orders"]
    assert (state.disabled, state.disabled_reason) == (True, "sustained_failure")
    assert await store.records() == []


async def test_an_answer_within_disable_after_starts_the_count_again() -> None:
    """Twin: a success at 50 s clears the failing time; failing again does not disable at 60 s."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    dest = Scripted(one=[UNAVAILABLE] * 5, two=[UNAVAILABLE] * 5)
    g = make(outbox, dest, store, retry=RetryPolicy(schedule=("10s",) * 20), disable_after=60.0)
    async with running(g):
        await g.enqueue("orders", key="a", body=b"one")
        await anyio.sleep(55)  # failed at 0..40, delivered at 50
        assert g.statistics().destinations["orders"].failing_since is None
        await g.enqueue("orders", key="b", body=b"two")
        await anyio.sleep(60)  # fails at 55..95, delivered at 105
    stats = g.statistics().destinations["orders"]
    assert (stats.disabled, stats.failing_since, stats.succeeded) == (False, None, 2)
    assert await outbox.destination_states() == {}


async def test_a_disabled_destination_stays_disabled_after_a_restart_until_enabled() -> None:
    """The state is in the outbox: a new gateway on it sends nothing until enable()."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    first = make(outbox, Scripted(), store)
    await first.disable("orders")
    message_id = await first.enqueue("orders", key="a", body=b"one")
    dest = Scripted()
    again = make(outbox, dest, store)
    async with running(again):
        await anyio.sleep(10)
        assert again.disabled() == ("orders",)
        assert again.statistics().destinations["orders"].disabled_reason == "manual"
        assert dest.calls == []
        await again.enable("orders")
        await anyio.sleep(1)
    assert len(dest.calls) == 1
    assert await outbox.get(message_id) is None
    assert await outbox.destination_states() == {}


def test_disable_after_must_be_seconds_or_none() -> None:
    """A bad disable_after names the field; None turns disabling off."""
    assert DeliveryPolicy(disable_after=None).disable_after is None
    assert DeliveryPolicy().disable_after == 5 * 24 * 3600.0
    with pytest.raises(otpy.InvalidArgument, match="disable_after"):
        DeliveryPolicy(disable_after=0)


# -- replay through the gateway -------------------------------------------------------------


async def test_a_replayed_dead_letter_goes_out_again_through_the_gateway() -> None:
    """otpy dlq replay through gateway.replay: same destination, key and idempotency key, once."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    dest = Scripted(one=[REFUSED])
    g = make(outbox, dest, store)
    async with otpy.open_node(), running(g):
        await g.enqueue("orders", key="customer-42", body=b"one", idempotency_key="idem-1")
        await anyio.sleep(1)
        [record] = await store.records()
        async with open_replayer(store.store, {Source.OUTBOUND: g.replay}) as replayer:
            result = await replayer.replay(record.id)
            again = await replayer.replay(record.id)
        await anyio.sleep(1)
    assert result.outcome is ReplayOutcome.REPLAYED
    assert again.outcome is ReplayOutcome.ALREADY_REPLAYED
    assert [(c.body, c.idempotency_key) for c in dest.calls] == [
        (b"one", "idem-1"),
        (b"one", "idem-1"),
    ]
    assert (await outbox.statistics()).depth == 0
    assert len(await store.records()) == 1  # delivered this time: no new dead letter


async def test_replay_to_a_destination_the_gateway_lacks_fails_and_stays_replayable() -> None:
    """An unknown destination is a failed replay (nothing was sent), named in the error."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    g = make(outbox, Scripted(), store)
    record = DeadLetter.capture(
        key="billing", source=Source.OUTBOUND, payload=b"x", idempotency_key="k", now=clock()
    )
    await store.store.add_many([record])
    async with otpy.open_node(), open_replayer(store.store, {Source.OUTBOUND: g.replay}) as r:
        result = await r.replay(record.id)
    assert result.outcome is ReplayOutcome.FAILED
    assert "billing" in (result.error or "")
    assert (await outbox.statistics()).depth == 0


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (432_000.0, "5 days"),
        (86_400.0, "1 day"),
        (5_400.0, "1.5 hours"),
        (60.0, "1 minute"),
        (90.0, "1.5 minutes"),
        (1.0, "1 second"),
        (0.25, "0.2 seconds"),
    ],
)
def test_a_failing_time_reads_as_a_person_would_say_it(seconds: float, text: str) -> None:
    """The disabling warning says "5 days", "1 minute", never "1 minutes"."""
    assert _duration(seconds) == text


def test_a_dead_row_not_written_by_the_gateway_still_makes_a_dead_letter() -> None:
    """Text that is not the gateway's JSON becomes the reason; the status gives the class."""
    details = DeadDetails.decode("connection refused", None)
    assert (details.reason_class, details.reason, details.category) == (
        "DeliveryFailed",
        "connection refused",
        Category.TERMINAL,
    )
    assert DeadDetails.decode(None, 503).reason_class == "http.503"


def test_a_long_request_is_cut_to_what_a_dead_letter_holds() -> None:
    """Long values are shortened and the headers past the bound are left out, never the record."""
    many = [(f"http.request.header.x-h{i}", "v" * 5000) for i in range(200)]
    kept = _bounded_request(many)
    assert 0 < len(kept) < 200
    assert all(len(value) <= 2051 for _, value in kept)
    assert sum(len(n) + len(v) for n, v in kept) <= 12_288
    record = DeadLetter.capture(key="k", source="outbound", attributes=kept, now=1.0)
    assert len(record.attributes) == len(kept)


async def test_replaying_a_record_without_its_payload_is_refused() -> None:
    """A listed record (payload not loaded) is refused, naming the record, and nothing is enqueued."""
    outbox, store = MemoryOutboxStore(clock=clock), Store()
    g = make(outbox, Scripted(), store)
    record = DeadLetter.capture(key="orders", source="outbound", payload=b"x", now=clock())
    listed = attrs.evolve(record, payload=None)
    with pytest.raises(otpy.InvalidArgument, match=record.id):
        await g.replay(listed, "k")
    assert (await outbox.statistics()).depth == 0
