"""What the gateway's delivery tests share: a wall clock on virtual time, a dead-letter list, a runner."""

from __future__ import annotations

import contextlib
import random
from typing import TYPE_CHECKING

import anyio

from otpy.gateway import BreakerPolicy, DeliveryPolicy, Gateway, RetryPolicy

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
