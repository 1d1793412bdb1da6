"""What the gateway's delivery tests share: a wall clock on virtual time, a dead-letter list, a runner."""

from __future__ import annotations

import contextlib
import random
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel
import attrs

from otpy import BulkheadFull
from otpy.gateway import BreakerPolicy, DeliveryPolicy, Gateway, RetryPolicy
from otpy.gateway._classify import Outcome
from otpy.gateway._http import DeliveryResult, OutboundRequest

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

    from otpy.deadletter import DeadLetter
    from otpy.gateway import Destination, MemoryOutboxStore

EPOCH = 1_700_000_000.0


def clock() -> float:
    """The wall clock, following virtual time."""
    return EPOCH + anyio.current_time()


class Sink:
    """Dead letters, stored in a list."""

    def __init__(self) -> None:
        self.records: list[DeadLetter] = []

    async def __call__(self, record: DeadLetter) -> None:
        self.records.append(record)


def gateway(
    destination: Destination,
    outbox: MemoryOutboxStore,
    sink: Sink,
    *,
    schedule: tuple[str, ...] = ("1s", "2s"),
    breaker: BreakerPolicy | None = None,
) -> Gateway:
    """A gateway for one destination, retrying on *schedule*, seeded jitter, the virtual clock."""
    policy = DeliveryPolicy(retry=RetryPolicy(schedule=schedule), breaker=breaker)
    return Gateway(
        outbox,
        [destination],
        policies={destination.name: policy},
        dead_letters=sink,
        random=random.Random(7),
        clock=clock,
    )


@contextlib.asynccontextmanager
async def running(g: Gateway) -> AsyncIterator[None]:
    """Run *g* for the block, then stop it."""
    async with anyio.create_task_group() as tg:
        tg.start_soon(g.run)
        yield
        tg.cancel_scope.cancel()


OK = DeliveryResult(outcome=Outcome.SUCCESS, status=200)
UNAVAILABLE = DeliveryResult(outcome=Outcome.RETRYABLE, status=503, response_excerpt=b"busy")


@attrs.frozen
class Call:
    body: bytes
    at: float
    attempt: int
    idempotency_key: str


class Scripted:
    """A destination answering each body with its scripted results in turn, then success."""

    def __init__(
        self, name: str = "orders", *, full: int = 0, **script: list[DeliveryResult]
    ) -> None:
        self.name = name
        self.full = full  # refuse this many attempts first, as a full bulkhead does
        self.script = {body.encode(): list(results) for body, results in script.items()}
        self.calls: list[Call] = []
        self.start: float | None = None  # times are relative to the first call

    async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
        assert now == clock()
        if self.start is None:
            self.start = anyio.current_time()
        if self.full:
            self.full -= 1
            raise BulkheadFull(self.name, 1, 0.0)
        self.calls.append(
            Call(
                request.body,
                anyio.current_time() - self.start,
                request.attempt,
                request.idempotency_key,
            )
        )
        await anyio.lowlevel.checkpoint()
        results = self.script.get(request.body)
        return results.pop(0) if results else OK

    def sent(self) -> list[tuple[str, float]]:
        return [(c.body.decode(), c.at) for c in self.calls]
