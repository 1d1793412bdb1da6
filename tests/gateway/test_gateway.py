"""The gateway delivers the outbox's messages: retries on time, order per key, dead letters, breaker (GW-2..GW-5, GW-8)."""

from __future__ import annotations

import random

import anyio
import anyio.lowlevel
import pytest

import otpy
from otpy import InvalidArgument, InvalidArgumentType, UnknownDestination
from otpy.deadletter import (
    Category,
    DeadLetter,
    DeadLetters,
    MemoryDeadLetterStore,
    Source,
    dead_letter_children,
)
from otpy.gateway._breaker import BreakerPolicy, BreakerState
from otpy.gateway._classify import Outcome
from otpy.gateway._gateway import (
    DeliveryPolicy,
    DeliveryStatistics,
    Gateway,
)
from otpy.gateway._http import DeliveryResult, HttpDestination, OutboundRequest
from otpy.gateway._outbox import OutboxMessage, OutboxState
from otpy.gateway._outbox_memory import MemoryOutboxStore
from otpy.gateway._retry import RetryPolicy
from otpy.testing import virtual_time

from ._delivery import UNAVAILABLE, Call, Scripted, Sink, clock, gateway, running
from ._sink import Reply, running_sink

VIRTUAL_TIME = pytest.mark.parametrize("anyio_backend", [virtual_time()])
REAL_CLOCK = pytest.mark.parametrize("anyio_backend", ["asyncio", "trio"])  # real sockets


@VIRTUAL_TIME
async def test_a_delivered_message_leaves_the_outbox() -> None:
    outbox, sink, dest = MemoryOutboxStore(clock=clock), Sink(), Scripted()
    g = gateway(dest, outbox, sink)
    async with running(g):
        message_id = await g.enqueue("orders", key="a", body=b"one", idempotency_key="k-1")
        await anyio.sleep(5)
    assert dest.calls == [Call(b"one", 0.0, 1, "k-1")]
    assert await outbox.get(message_id) is None
    assert sink.records == []
    assert g.statistics().destinations["orders"] == DeliveryStatistics(
        breaker=None, disabled=False, in_flight=0, sent=1, succeeded=1, retried=0, dead_lettered=0
    )


@VIRTUAL_TIME
async def test_retries_run_at_the_scheduled_times_then_the_message_is_dead_lettered() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    dest = Scripted(one=[UNAVAILABLE] * 3)
    g = gateway(dest, outbox, sink, schedule=("1s", "2s"))
    async with running(g):
        message_id = await g.enqueue(
            "orders",
            key="a",
            body=b"one",
            content_type="application/json",
            headers={"X-Tenant": "t1"},
            idempotency_key="k-1",
            trace_context={
                "traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"
            },
        )
        await anyio.sleep(2)
        [waiting] = [m for m in [await outbox.get(message_id)] if m is not None]
        assert (waiting.attempts, waiting.next_attempt_at) == (2, clock() - 2 + 3.0)
        await anyio.sleep(60)
    assert [(c.at, c.attempt, c.idempotency_key) for c in dest.calls] == [
        (0.0, 1, "k-1"),
        (1.0, 2, "k-1"),
        (3.0, 3, "k-1"),
    ]
    assert await outbox.get(message_id) is None
    [record] = sink.records
    assert record.key == "orders"
    assert record.source is Source.OUTBOUND
    assert record.reason_class == "http.503"
    assert record.reason == "gave up after 3 attempts; HTTP 503; response: busy"
    assert record.category is Category.RETRYABLE
    assert (record.attempt, record.max_attempts) == (3, 3)
    assert record.payload == b"one"
    assert record.content_type == "application/json"
    assert record.headers == (("X-Tenant", "t1"),)
    assert record.idempotency_key == "k-1"
    assert record.correlation_id == message_id
    assert record.trace_context == (
        ("traceparent", "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"),
    )
    stats = g.statistics().destinations["orders"]
    assert (stats.sent, stats.retried, stats.dead_lettered) == (3, 2, 1)


@VIRTUAL_TIME
async def test_retry_after_pushes_the_next_attempt_later() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    throttled = DeliveryResult(outcome=Outcome.RETRYABLE, status=429, retry_after=7.0)
    dest = Scripted(one=[throttled])
    g = gateway(dest, outbox, sink, schedule=("1s", "2s"))
    async with running(g):
        await g.enqueue("orders", key="a", body=b"one")
        await anyio.sleep(30)
    assert dest.sent() == [("one", 0.0), ("one", 7.0)]
    assert sink.records == []


@VIRTUAL_TIME
async def test_a_keys_later_message_waits_for_its_head_while_other_keys_go_on() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    dest = Scripted(a1=[UNAVAILABLE])
    g = gateway(dest, outbox, sink, schedule=("2s",))
    async with running(g):
        await g.enqueue("orders", key="a", body=b"a1")
        await g.enqueue("orders", key="a", body=b"a2")
        await g.enqueue("orders", key="b", body=b"b1")
        await anyio.sleep(30)
    sent = dest.sent()
    assert sorted(sent[:2]) == [("a1", 0.0), ("b1", 0.0)]
    assert sent[2:] == [("a1", 2.0), ("a2", 2.0)]
    assert (await outbox.statistics()).depth == 0


@VIRTUAL_TIME
async def test_without_ordering_a_keys_later_message_overtakes_a_retrying_one() -> None:
    """ordering="none": a2 goes at once while a1 waits for its retry."""
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    dest = Scripted(a1=[UNAVAILABLE])
    policy = DeliveryPolicy(retry=RetryPolicy(schedule=("2s",)), breaker=None, ordering="none")
    g = Gateway(outbox, [dest], policy=policy, dead_letters=sink, clock=clock)
    async with running(g):
        await g.enqueue("orders", key="a", body=b"a1")
        await g.enqueue("orders", key="a", body=b"a2")
        await anyio.sleep(30)
    sent = dest.sent()
    assert sorted(sent[:2]) == [("a1", 0.0), ("a2", 0.0)]
    assert sent[2:] == [("a1", 2.0)]
    assert (await outbox.statistics()).depth == 0


@VIRTUAL_TIME
async def test_a_terminal_answer_is_dead_lettered_at_once() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    bad = DeliveryResult(outcome=Outcome.TERMINAL, status=400, response_excerpt=b"\xffbad field")
    dest = Scripted(one=[bad])
    g = gateway(dest, outbox, sink, breaker=BreakerPolicy(window_size=1, minimum_calls=1))
    async with running(g):
        message_id = await g.enqueue("orders", key="a", body=b"one")
        await anyio.sleep(30)
    assert dest.sent() == [("one", 0.0)]
    [record] = sink.records
    assert record.reason_class == "http.400"
    assert record.category is Category.TERMINAL
    assert record.reason == "refused, not retried; HTTP 400; response: \ufffdbad field"
    assert (record.attempt, record.correlation_id) == (1, message_id)
    assert await outbox.get(message_id) is None
    # A 4xx is the request's fault, not the destination's: the breaker stays closed.
    assert g.statistics().destinations["orders"].breaker is BreakerState.CLOSED


@VIRTUAL_TIME
async def test_gone_dead_letters_and_disables_the_destination_until_enabled() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    dest = Scripted(one=[DeliveryResult(outcome=Outcome.GONE, status=410)])
    g = gateway(dest, outbox, sink)
    async with running(g):
        await g.enqueue("orders", key="a", body=b"one")
        await anyio.sleep(1)
        assert g.disabled() == ("orders",)
        later = await g.enqueue("orders", key="b", body=b"two")
        await anyio.sleep(100)
        assert dest.sent() == [("one", 0.0)]
        waiting = await outbox.get(later)
        assert waiting is not None
        assert waiting.state is OutboxState.PENDING
        await g.enable("orders")
        await anyio.sleep(1)
    assert dest.sent() == [("one", 0.0), ("two", 101.0)]
    assert g.disabled() == ()
    [record] = sink.records
    assert record.reason_class == "http.410"
    assert await outbox.get(later) is None


@VIRTUAL_TIME
async def test_nothing_is_sent_while_the_breaker_is_open_then_a_trial_closes_it() -> None:
    outbox, sink = MemoryOutboxStore(clock=clock), Sink()
    dest = Scripted(a=[UNAVAILABLE], b=[UNAVAILABLE])
    breaker = BreakerPolicy(window_size=2, minimum_calls=2, wait_in_open=10, half_open_calls=1)
    g = gateway(dest, outbox, sink, schedule=("1s", "1s"), breaker=breaker)
    async with running(g):
        await g.enqueue("orders", key="a", body=b"a")
        await g.enqueue("orders", key="b", body=b"b")
        await anyio.sleep(5)
        assert g.statistics().destinations["orders"].breaker is BreakerState.OPEN
        await g.enqueue("orders", key="c", body=b"c")
        await anyio.sleep(4)
        assert len(dest.calls) == 2  # nothing sent while open
        stats = await outbox.statistics()
        assert (stats.depth, stats.in_flight) == (3, 0)  # waiting, not failed
        await anyio.sleep(20)
    sent = dest.sent()
    assert sorted(sent[:2]) == [("a", 0.0), ("b", 0.0)]
    assert sent[2] == ("a", 10.0)  # the one trial
    assert sorted(sent[3:]) == [("b", 10.0), ("c", 10.0)]
    assert g.statistics().destinations["orders"].breaker is BreakerState.CLOSED
    assert sink.records == []


@VIRTUAL_TIME
async def test_a_message_left_in_flight_is_sent_again_at_start_with_its_idempotency_key() -> None:
    outbox, sink, dest = MemoryOutboxStore(clock=clock), Sink(), Scripted()
    message = OutboxMessage.new(
        destination="orders", key="a", body=b"one", now=clock(), idempotency_key="k-1"
    )
    await outbox.enqueue([message])
    [claimed] = await outbox.claim("orders", now=clock(), limit=1, lease=3600)
    assert claimed.state is OutboxState.IN_FLIGHT  # as a process that died left it
    g = gateway(dest, outbox, sink)
    async with running(g):
        await anyio.sleep(1)
    assert dest.calls == [Call(b"one", 0.0, 1, "k-1")]
    assert await outbox.get(message.id) is None


class FailingOnce(Sink):
    """A dead-letter sink whose first store fails."""

    def __init__(self) -> None:
        super().__init__()
        self.failures = 1

    async def __call__(self, record: DeadLetter) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("dead-letter store unavailable")
        await super().__call__(record)


@VIRTUAL_TIME
async def test_a_message_whose_dead_letter_was_not_stored_stays_marked_dead_until_it_is() -> None:
    """Never neither: the message stays in the outbox, dead, holding its key, until its record is stored."""
    outbox, sink = MemoryOutboxStore(clock=clock), FailingOnce()
    bad = DeliveryResult(outcome=Outcome.TERMINAL, status=422)
    dest = Scripted(one=[bad])
    g = gateway(dest, outbox, sink)
    async with running(g):
        message_id = await g.enqueue("orders", key="a", body=b"one")
        later = await g.enqueue("orders", key="a", body=b"two")
        await anyio.sleep(0.5)
        kept = await outbox.get(message_id)
        assert kept is not None
        assert (kept.state, kept.attempts, kept.last_status) == (OutboxState.DEAD, 1, 422)
        assert dest.sent() == [("one", 0.0)]  # "two" waits behind its dead head
        await anyio.sleep(1)  # the next poll stores the dead letter and removes the row
        assert await outbox.get(message_id) is None
        await anyio.sleep(1)
    assert dest.sent() == [("one", 0.0), ("two", 1.0)]  # not sent again; its key moved on
    [record] = sink.records
    assert (record.reason_class, record.attempt, record.correlation_id) == (
        "http.422",
        1,
        message_id,
    )
    assert await outbox.get(later) is None


async def test_statistics_before_running() -> None:
    breaker = BreakerPolicy()
    g = Gateway(
        MemoryOutboxStore(),
        [Scripted("orders"), Scripted("billing")],
        policies={"billing": DeliveryPolicy(breaker=None)},
        policy=DeliveryPolicy(breaker=breaker),
    )
    stats = g.statistics().destinations
    assert list(stats) == ["billing", "orders"]
    assert stats["orders"].breaker is BreakerState.CLOSED
    assert stats["billing"].breaker is None
    await g.disable("orders")
    assert g.disabled() == ("orders",)


@VIRTUAL_TIME
async def test_a_full_bulkhead_puts_the_message_back_without_counting_an_attempt() -> None:
    outbox, sink, dest = MemoryOutboxStore(clock=clock), Sink(), Scripted(full=2)
    g = gateway(dest, outbox, sink)
    async with running(g):
        message_id = await g.enqueue("orders", key="a", body=b"one")
        await anyio.sleep(0.5)
        waiting = await outbox.get(message_id)
        assert waiting is not None
        assert (waiting.attempts, waiting.state) == (0, OutboxState.PENDING)
        await anyio.sleep(10)
    # Refused at 0 and again at the next look (poll_interval 1 s), sent at 2.
    assert dest.calls == [Call(b"one", 2.0, 1, message_id)]
    stats = g.statistics().destinations["orders"]
    assert (stats.sent, stats.succeeded, stats.retried) == (1, 1, 0)


async def test_enqueue_to_an_unknown_destination_names_it() -> None:
    g = gateway(Scripted(), MemoryOutboxStore(), Sink())
    with pytest.raises(UnknownDestination, match=r"'billing'.*'orders'") as caught:
        await g.enqueue("billing", key="a", body=b"x")
    assert caught.value.destination == "billing"
    with pytest.raises(UnknownDestination):
        await g.enable("billing")


@pytest.mark.parametrize(
    ("field", "value", "error"),
    [
        ("batch", 0, InvalidArgument),
        ("lease", 0, InvalidArgument),
        ("poll_interval", -1.0, InvalidArgument),
        ("retry", "3 times", InvalidArgumentType),
        ("breaker", 5, InvalidArgumentType),
        ("ordering", "fifo", InvalidArgument),
    ],
)
def test_a_bad_delivery_policy_names_the_field(
    field: str, value: object, error: type[Exception]
) -> None:
    with pytest.raises(error, match=field):
        DeliveryPolicy(**{field: value})  # type: ignore[arg-type]


def test_policies_for_unknown_destinations_are_refused() -> None:
    with pytest.raises(InvalidArgument, match="policies"):
        Gateway(MemoryOutboxStore(), [Scripted()], policies={"billing": DeliveryPolicy()})
    with pytest.raises(InvalidArgument, match="two destinations named 'orders'"):
        Gateway(MemoryOutboxStore(), [Scripted(), Scripted()])


@REAL_CLOCK
async def test_end_to_end_over_loopback_http_with_the_dead_letter_writer() -> None:
    """A 503 is retried with the same Idempotency-Key; a 400 lands in the dead-letter store."""
    dead = MemoryDeadLetterStore()
    outbox = MemoryOutboxStore()
    client = DeadLetters()
    captured = anyio.Event()

    async def capture(record: DeadLetter) -> None:
        await client.capture(record)
        captured.set()

    policy = DeliveryPolicy(retry=RetryPolicy(schedule=("50ms",)), poll_interval=0.05)
    replies = (Reply(status=503, body=b"down"), Reply(status=200), Reply(status=400, body=b"no"))
    async with (
        otpy.open_supervisor(dead_letter_children(dead, sweep=False)),
        running_sink(*replies) as sink,
        HttpDestination("orders", sink.url) as destination,
    ):
        g = Gateway(outbox, [destination], policy=policy, dead_letters=capture)
        async with running(g):
            # One key: the second is sent only once the first is delivered.
            first = await g.enqueue("orders", key="a", body=b'{"n": 1}')
            second = await g.enqueue("orders", key="a", body=b'{"n": 2}')
            with anyio.fail_after(10):
                await captured.wait()
            await anyio.wait_all_tasks_blocked()
    keys = [{k.lower(): v for k, v in r.headers.items()}["idempotency-key"] for r in sink.received]
    assert keys == [first, first, second]
    assert [r.body for r in sink.received] == [b'{"n": 1}', b'{"n": 1}', b'{"n": 2}']
    [record] = (await dead.list()).records
    assert (record.key, record.reason_class, record.correlation_id) == (
        "orders",
        "http.400",
        second,
    )
    assert record.reason == "refused, not retried; HTTP 400; response: no"
    assert (await outbox.statistics()).depth == 0
    stats = g.statistics().destinations["orders"]
    assert (stats.sent, stats.succeeded, stats.retried, stats.dead_lettered) == (3, 1, 1, 1)


def test_the_default_retries_are_svix_s_schedule_over_hours() -> None:
    """A destination down for an outage gets its messages after, not dead letters in seconds."""
    retry = DeliveryPolicy().retry
    assert retry.schedule == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
    assert retry.max_attempts == 7


class Hangs(Scripted):
    """A destination whose first attempt at each body never returns (a lost attempt)."""

    def __init__(self) -> None:
        super().__init__()
        self.hung: set[bytes] = set()

    async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
        if request.body not in self.hung:
            self.hung.add(request.body)
            assert self.start is not None  # set by the test
            self.calls.append(
                Call(request.body, anyio.current_time() - self.start, request.attempt, "")
            )
            await anyio.sleep_forever()
        return await super().send(request, now=now)


@VIRTUAL_TIME
async def test_a_message_whose_attempt_outlives_its_lease_is_sent_again() -> None:
    """An attempt lost without an outcome blocks its key only until its lease expires."""
    outbox, sink, dest = MemoryOutboxStore(clock=clock), Sink(), Hangs()
    policy = DeliveryPolicy(retry=RetryPolicy(schedule=("1s",)), breaker=None, lease=10.0)
    g = Gateway(
        outbox, [dest], policy=policy, dead_letters=sink, random=random.Random(7), clock=clock
    )
    async with running(g):
        dest.start = anyio.current_time()  # call times are relative to the enqueue
        message_id = await g.enqueue("orders", key="a", body=b"one", idempotency_key="k-1")
        await anyio.sleep(9)
        assert [(c.at, c.attempt) for c in dest.calls] == [(0.0, 1)]
        await anyio.sleep(2)  # the lease ran out at 10: the message is handed out again
    assert [(c.at, c.attempt) for c in dest.calls] == [(0.0, 1), (10.0, 1)]
    assert await outbox.get(message_id) is None  # delivered by the second attempt
    assert sink.records == []


@VIRTUAL_TIME
async def test_enqueue_many_stores_a_message_with_a_given_id_once() -> None:
    """A hand-over repeated after a crash (same derived ids) stores and delivers each message once."""
    outbox, sink, dest = MemoryOutboxStore(clock=clock), Sink(), Scripted()
    g = gateway(dest, outbox, sink)
    # Derived from the (time-sorted) ids of what they come from: they sort the same way.
    ids = [f"{otpy.deadletter.new_id(clock())}-orders" for _ in range(3)]
    messages = [
        OutboxMessage.new(
            destination="orders", key="a", body=f"m{i}".encode(), now=clock(), message_id=ids[i]
        )
        for i in range(3)
    ]
    async with running(g):
        assert await g.enqueue_many(messages) == ids
        assert await g.enqueue_many(messages) == ids  # again, as after a crash
        await anyio.sleep(1)
    assert [c.body for c in dest.calls] == [b"m0", b"m1", b"m2"]
    assert [c.idempotency_key for c in dest.calls] == ids


async def test_enqueue_many_refuses_an_unknown_destination_storing_nothing() -> None:
    """One bad destination in a batch: UnknownDestination names it, and nothing is stored."""
    outbox = MemoryOutboxStore()
    g = gateway(Scripted(), outbox, Sink())
    good = OutboxMessage.new(destination="orders", key="a", body=b"x", now=1.0)
    bad = OutboxMessage.new(destination="billing", key="a", body=b"x", now=1.0)
    with pytest.raises(UnknownDestination, match="billing"):
        await g.enqueue_many([good, bad])
    assert (await outbox.statistics()).depth == 0


def test_a_message_id_of_ones_own_must_be_a_webhook_id() -> None:
    """An id the Standard Webhooks headers could not carry is refused when the message is built."""
    with pytest.raises(InvalidArgument, match="message_id"):
        OutboxMessage.new(destination="d", key="k", body=b"", now=1.0, message_id="a b\n")
