"""Benchmark 3: fan-out, one sender casting round-robin to many actors.

1,000 actors are spawned first (not timed). Then one sender task casts round-robin,
``await refs[k].cast(i)`` for ``i`` in 0..999 and every ``k``, and the clock stops
when a call to each actor in turn has returned its count. With 1,000 messages per
actor and mailboxes of 1,000, the sender never blocks: the figure is the cost of
enqueueing, waking each actor and dispatching every message, not of back-pressure.

The baseline is the same with 1,000 bounded consumer tasks (capacity 1000), each
answering a final count request through a one-shot reply:

- on asyncio, ``asyncio.Queue`` consumers and futures;
- on trio, anyio memory object stream consumers and ``anyio.Event`` slots.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING

import anyio

import otpy

from ._actors import Counter, Slot
from ._harness import (
    CAPACITY,
    BenchmarkResult,
    Figure,
    Sample,
    Stopwatch,
    column,
    gc_diagnostics,
    run_rounds,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import ObjectReceiveStream, ObjectSendStream, TaskStatus

    from ._harness import Runtime, Size

__all__ = ["run"]

ACTORS = 1000
PER_ACTOR = 1000
QUICK_ACTORS = 50
SMOKE_ACTORS = 10


def _check(total: int, expected: int, who: str) -> None:
    if total != expected:
        raise RuntimeError(f"{who} counted {total} messages, expected {expected}")


def _sample(messages: int, watch: Stopwatch) -> Sample:
    return {"messages_per_s": messages / watch.seconds, **watch.gc_sample()}


async def otpy_fanout(actors: int) -> Sample:
    """Round-robin casts from one task to *actors* actors, then a count call to each."""
    async with otpy.open_node():
        refs = [await otpy.spawn(Counter) for _ in range(actors)]
        with Stopwatch() as watch:
            for i in range(PER_ACTOR):
                for ref in refs:
                    await ref.cast(i)
            total = 0
            for ref in refs:
                total += await ref.call("count")
        _check(total, actors * PER_ACTOR, "otpy")
    return _sample(actors * PER_ACTOR, watch)


async def asyncio_queues(actors: int) -> Sample:
    """The same with *actors* ``asyncio.Queue`` consumer tasks."""
    loop = asyncio.get_running_loop()

    async def consumer(
        queue: asyncio.Queue[int | asyncio.Future[int]], *, task_status: TaskStatus[None]
    ) -> None:
        count = 0
        task_status.started()
        while True:
            item = await queue.get()
            if isinstance(item, int):
                count += 1
            else:
                item.set_result(count)

    async with anyio.create_task_group() as tg:
        queues: list[asyncio.Queue[int | asyncio.Future[int]]] = []
        for _ in range(actors):
            queue: asyncio.Queue[int | asyncio.Future[int]] = asyncio.Queue(CAPACITY)
            await tg.start(consumer, queue)
            queues.append(queue)
        with Stopwatch() as watch:
            for i in range(PER_ACTOR):
                for queue in queues:
                    await queue.put(i)
            total = 0
            for queue in queues:
                fut: asyncio.Future[int] = loop.create_future()
                await queue.put(fut)
                total += await fut
        tg.cancel_scope.cancel()
    _check(total, actors * PER_ACTOR, "asyncio.Queue")
    return _sample(actors * PER_ACTOR, watch)


async def anyio_streams(actors: int) -> Sample:
    """The same with *actors* anyio memory object stream consumer tasks."""

    async def consumer(
        receive: ObjectReceiveStream[int | Slot[int]],
        *,
        task_status: TaskStatus[None],
    ) -> None:
        count = 0
        task_status.started()
        async for item in receive:
            if isinstance(item, int):
                count += 1
            else:
                item.set(count)

    async with anyio.create_task_group() as tg:
        senders: list[ObjectSendStream[int | Slot[int]]] = []
        for _ in range(actors):
            send, receive = anyio.create_memory_object_stream[int | Slot[int]](CAPACITY)
            await tg.start(consumer, receive)
            senders.append(send)
        with Stopwatch() as watch:
            for i in range(PER_ACTOR):
                for sender in senders:
                    await sender.send(i)
            total = 0
            for sender in senders:
                slot: Slot[int] = Slot()
                await sender.send(slot)
                total += await slot.wait() or 0
        tg.cancel_scope.cancel()
    _check(total, actors * PER_ACTOR, "anyio memory object stream")
    return _sample(actors * PER_ACTOR, watch)


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Measure otpy's fan-out messages/s against as many raw consumer tasks."""
    actors = size.pick(full=ACTORS, quick=QUICK_ACTORS, smoke=SMOKE_ACTORS)
    raw: Callable[[int], Awaitable[Sample]]
    if runtime.is_asyncio:
        raw, raw_name = asyncio_queues, f"{actors:,} asyncio.Queue consumers"
    else:
        raw, raw_name = anyio_streams, f"{actors:,} anyio stream consumers"
    samples = run_rounds(
        runtime,
        {"otpy": otpy_fanout, "raw": raw},
        size=actors,
        repeat=repeat,
        warmup=max(1, actors // 10),
    )
    figures = (
        Figure(
            metric="messages_per_s",
            label="messages/s",
            unit="/s",
            higher_is_better=True,
            baseline_name=raw_name,
            otpy_samples=column(samples["otpy"], "messages_per_s"),
            baseline_samples=column(samples["raw"], "messages_per_s"),
        ),
    )
    return BenchmarkResult(
        name="fanout",
        title="3. fan-out",
        size=f"{actors:,} actors x {PER_ACTOR:,} casts, one round-robin sender",
        figures=figures,
        notes=(
            "one sender task casts round-robin; each mailbox receives exactly its "
            "capacity, so the sender never blocks",
        ),
        diagnostics=gc_diagnostics(samples),
    )
