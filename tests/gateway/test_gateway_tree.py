"""The gateway as a supervision tree: one actor per destination, drained on stop, isolated on crash (GW-11)."""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any

import anyio
import pytest

import otpy
from otpy.gateway import (
    DeliveryPolicy,
    Gateway,
    MemoryOutboxStore,
    OutboxState,
    OutboxStore,
    RetryPolicy,
)
from otpy.testing import virtual_time

from ._delivery import Scripted, Sink, clock

if TYPE_CHECKING:
    from otpy.gateway._http import DeliveryResult, OutboundRequest


@pytest.fixture
def anyio_backend() -> tuple[str, dict[str, object]]:
    """Trio on a clock that jumps: attempts of seconds take no time, exactly."""
    return virtual_time()


class Slow(Scripted):
    """A destination whose every attempt takes *seconds*, or never ends when it is ``None``."""

    def __init__(self, name: str = "orders", seconds: float | None = 3.0) -> None:
        super().__init__(name)
        self.seconds = seconds

    async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
        self.start = self.start if self.start is not None else anyio.current_time()
        result = await super().send(request, now=now)
        if self.seconds is None:
            await anyio.sleep_forever()
        else:
            await anyio.sleep(self.seconds)
        return result


class CompleteFailsOnce:
    """A memory outbox whose first ``complete`` of a listed message raises, as a broken disk would."""

    def __init__(self, failing: set[str]) -> None:
        self.store = MemoryOutboxStore(clock=clock)
        self.failing = failing

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def complete(self, message_id: str) -> None:
        if message_id in self.failing:
            self.failing.discard(message_id)
            raise RuntimeError("disk I/O error")
        await self.store.complete(message_id)


def make(
    outbox: OutboxStore, *destinations: Scripted, batch: int = 32, lease: float = 60.0
) -> Gateway:
    policy = DeliveryPolicy(
        retry=RetryPolicy(schedule=("1s",)), breaker=None, batch=batch, lease=lease
    )
    return Gateway(
        outbox,
        list(destinations),
        policy=policy,
        dead_letters=Sink(),
        random=random.Random(7),
        clock=clock,
    )


async def test_the_tree_delivers_each_destination_from_its_own_actor() -> None:
    """The tree has a keeper and one registered actor per destination; messages go out."""
    outbox = MemoryOutboxStore(clock=clock)
    a, b = Scripted("a"), Scripted("b")
    g = make(outbox, a, b)
    async with otpy.open_node() as node, otpy.open_supervisor(g.supervisor_spec()) as sup:
        assert [c.id for c in sup.which_children()] == ["gateway.outbox", "gateway.a", "gateway.b"]
        first = await g.enqueue("a", key="k", body=b"one")
        second = await g.enqueue("b", key="k", body=b"two")
        await anyio.sleep(1)
        assert await outbox.get(first) is None
        assert await outbox.get(second) is None
        worker = node.whereis("gateway.a")
        assert worker is not None
        stats = await worker.call("statistics")
        assert (stats.sent, stats.succeeded) == (1, 1)
    assert [c.body for c in a.calls] == [b"one"]
    assert [c.body for c in b.calls] == [b"two"]


async def test_a_crashed_destination_restarts_alone_and_its_message_goes_out_again() -> None:
    """A store error while settling crashes that destination's actor only; the other keeps going."""
    a, b = Scripted("a"), Scripted("b")
    outbox = CompleteFailsOnce(set())
    g = make(outbox, a, b, lease=10.0)
    async with otpy.open_node() as node, otpy.open_supervisor(g.supervisor_spec()) as sup:
        b_actor = node.whereis("gateway.b")
        a_actor = node.whereis("gateway.a")
        doomed = await g.enqueue("a", key="k", body=b"a1", idempotency_key="a-1")
        outbox.failing.add(doomed)
        await anyio.sleep(1)
        assert sup.statistics().restarts_in_window == 1
        assert node.whereis("gateway.a") is not a_actor  # a new incarnation
        assert node.whereis("gateway.b") is b_actor  # untouched
        await g.enqueue("b", key="k", body=b"b1")
        await anyio.sleep(1)
        assert [c.body for c in b.calls] == [b"b1"]
        # The crashed attempt had no recorded outcome: its lease expires, it goes out again.
        await anyio.sleep(10)
        assert await outbox.get(doomed) is None
    assert [(c.body, c.idempotency_key) for c in a.calls] == [(b"a1", "a-1"), (b"a1", "a-1")]
    assert a.calls[1].at - a.calls[0].at == 10.0  # the lease, reclaimed on its sweep


async def test_stopping_the_tree_lets_attempts_in_flight_finish_and_claims_nothing_more() -> None:
    """A graceful stop drains: the attempt running settles, the waiting message stays pending."""
    outbox = MemoryOutboxStore(clock=clock)
    dest = Slow(seconds=3.0)
    g = make(outbox, dest, batch=1)
    async with otpy.open_node():
        async with otpy.open_supervisor(g.supervisor_spec(shutdown=10.0)):
            running = await g.enqueue("orders", key="a", body=b"running")
            waiting = await g.enqueue("orders", key="b", body=b"waiting")
            await anyio.sleep(1)
            started = anyio.current_time()
        stopped_after = anyio.current_time() - started
    assert stopped_after == pytest.approx(2.0)  # the attempt's remaining two seconds
    assert [c.body for c in dest.calls] == [b"running"]
    assert await outbox.get(running) is None  # delivered and completed
    left = await outbox.get(waiting)
    assert left is not None
    assert left.state is OutboxState.PENDING
    assert left.attempts == 0


async def test_an_attempt_past_the_shutdown_budget_goes_back_to_the_outbox() -> None:
    """Cancelled at the end of the budget, the message is pending again, its attempts unchanged."""
    outbox = MemoryOutboxStore(clock=clock)
    dest = Slow(seconds=None)
    g = make(outbox, dest)
    async with otpy.open_node():
        async with otpy.open_supervisor(g.supervisor_spec(shutdown=1.0)):
            message_id = await g.enqueue("orders", key="a", body=b"one", idempotency_key="k-1")
            await anyio.sleep(1)
            started = anyio.current_time()
        assert anyio.current_time() - started == pytest.approx(1.0)
    left = await outbox.get(message_id)
    assert left is not None
    assert (left.state, left.attempts) == (OutboxState.PENDING, 0)
    # The next start sends it again with its idempotency key.
    again = Scripted()
    g2 = make(outbox, again)
    async with otpy.open_node(), otpy.open_supervisor(g2.supervisor_spec()):
        await anyio.sleep(1)
    assert [(c.body, c.attempt, c.idempotency_key) for c in again.calls] == [(b"one", 1, "k-1")]
    assert await outbox.get(message_id) is None


async def test_a_restarted_keeper_does_not_take_back_live_claims() -> None:
    """Recovery runs once per gateway: killing the keeper leaves attempts in flight alone."""
    outbox = MemoryOutboxStore(clock=clock)
    dest = Slow(seconds=None)
    g = make(outbox, dest)
    async with otpy.open_node() as node, otpy.open_supervisor(g.supervisor_spec(shutdown=0.0)):
        message_id = await g.enqueue("orders", key="a", body=b"one")
        await anyio.sleep(1)
        keeper = node.whereis("gateway.outbox")
        assert keeper is not None
        keeper.kill()
        await anyio.sleep(1)
        assert node.whereis("gateway.outbox") not in (None, keeper)
        held = await outbox.get(message_id)
        assert held is not None
        assert held.state is OutboxState.IN_FLIGHT
        assert len(dest.calls) == 1


async def test_a_gateway_runs_one_way_at_a_time() -> None:
    """While a tree runs the gateway, Gateway.run refuses, naming the two ways."""
    g = make(MemoryOutboxStore(clock=clock), Scripted())
    async with otpy.open_node(), otpy.open_supervisor(g.supervisor_spec()):
        with pytest.raises(RuntimeError, match="already running"):
            await g.run()


def test_the_spec_names_its_children_after_the_tree() -> None:
    """A second gateway on the node takes another name, and its children follow it."""
    g = make(MemoryOutboxStore(clock=clock), Scripted("a"))
    spec = g.supervisor_spec(name="billing", shutdown=5.0)
    assert spec.name == "billing"
    assert [(c.id, c.name, c.shutdown) for c in spec.children] == [
        ("billing.outbox", "billing.outbox", 5.0),
        ("billing.a", "billing.a", 5.0),
    ]


async def test_a_second_tree_for_the_same_gateway_fails_to_start() -> None:
    """Two trees would deliver the same outbox twice: the second one's start fails, naming why."""
    g = make(MemoryOutboxStore(clock=clock), Scripted())
    async with otpy.open_node(), otpy.open_supervisor(g.supervisor_spec()):
        with pytest.raises(otpy.OtpyError) as caught:
            async with otpy.open_supervisor(g.supervisor_spec(name="again")):
                pass  # pragma: no cover - it does not start
    assert "already running" in repr(caught.value) + repr(caught.value.__cause__)


async def test_the_actors_show_their_destination_and_counters_never_a_message() -> None:
    """get_status shows the destination's counters; an unknown call crashes as any actor's does."""
    outbox = MemoryOutboxStore(clock=clock)
    g = make(outbox, Scripted())
    async with otpy.open_node() as node, otpy.open_supervisor(g.supervisor_spec()):
        await g.enqueue("orders", key="a", body=b"secret body")
        await anyio.sleep(1)
        worker = node.whereis("gateway.orders")
        keeper = node.whereis("gateway.outbox")
        assert worker is not None
        assert keeper is not None
        status = (await worker.get_status()).state
        assert status["destination"] == "orders"
        assert status["sent"] == 1
        assert "secret body" not in repr(status)
        assert (await keeper.get_status()).state == {"gateway": "<Gateway ['orders']>"}


@pytest.mark.parametrize("shutdown", [-1.0, float("nan"), "5s"])
def test_a_bad_shutdown_is_refused_naming_it(shutdown: object) -> None:
    """The drain budget is checked where it is given, even for a gateway with no destination."""
    g = Gateway(MemoryOutboxStore(), [], dead_letters=Sink())
    with pytest.raises((otpy.InvalidArgument, otpy.InvalidArgumentType), match="shutdown"):
        g.supervisor_spec(shutdown=shutdown)  # type: ignore[arg-type]
