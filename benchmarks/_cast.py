"""Benchmark 1: cast throughput from one sender task to one actor.

The sender does ``await ref.cast(i)`` N times; the actor's ``handle_cast`` counts;
the clock stops when a final ``call`` returns the count. The baselines move the same
N integers through a bounded producer/consumer pair of the same capacity (1000) and
stop when the consumer hands back its count through a one-shot reply:

- on asyncio, an ``asyncio.Queue(maxsize=1000)`` and a future;
- on trio, a ``trio.open_memory_channel(1000)`` and a ``trio.Event``;
- on both, an anyio memory object stream (buffer 1000) and an ``anyio.Event`` slot.
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
    Target,
    column,
    gc_diagnostics,
    run_rounds,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskStatus

    from ._harness import Runtime, Size

__all__ = ["run"]

FULL = 1_000_000
QUICK = 50_000
SMOKE = 1_000


def _check(count: object, expected: int, who: str) -> None:
    if count != expected:
        raise RuntimeError(f"{who} counted {count!r} messages, expected {expected}")


async def otpy_casts(n: int) -> Sample:
    """One sender, one actor, N casts, then a call for the count."""
    async with otpy.open_node():
        ref = await otpy.spawn(Counter)
        with Stopwatch() as watch:
            for i in range(n):
                await ref.cast(i)
            count = await ref.call("count")
        _check(count, n, "otpy")
    return {"casts_per_s": n / watch.seconds, **watch.gc_sample()}


async def asyncio_queue(n: int) -> Sample:
    """The same through ``asyncio.Queue(maxsize=1000)``; a future brings the count back."""
    queue: asyncio.Queue[int | asyncio.Future[int]] = asyncio.Queue(CAPACITY)

    async def consumer(*, task_status: TaskStatus[None]) -> None:
        count = 0
        task_status.started()
        while True:
            item = await queue.get()
            if isinstance(item, int):
                count += 1
            else:
                item.set_result(count)
                return

    async with anyio.create_task_group() as tg:
        await tg.start(consumer)
        done: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        with Stopwatch() as watch:
            for i in range(n):
                await queue.put(i)
            await queue.put(done)
            count = await done
    _check(count, n, "asyncio.Queue")
    return {"casts_per_s": n / watch.seconds, **watch.gc_sample()}


async def trio_channel(n: int) -> Sample:
    """The same through ``trio.open_memory_channel(1000)``; a ``trio.Event`` slot."""
    import trio

    send, receive = trio.open_memory_channel[int | list[int]](CAPACITY)
    done = trio.Event()

    async def consumer(*, task_status: TaskStatus[None]) -> None:
        count = 0
        task_status.started()
        async for item in receive:
            if isinstance(item, int):
                count += 1
            else:
                item.append(count)
                done.set()
                return

    box: list[int] = []
    async with anyio.create_task_group() as tg:
        await tg.start(consumer)
        with Stopwatch() as watch:
            for i in range(n):
                await send.send(i)
            await send.send(box)
            await done.wait()
    _check(box[0], n, "trio memory channel")
    return {"casts_per_s": n / watch.seconds, **watch.gc_sample()}


async def anyio_stream(n: int) -> Sample:
    """The same through an anyio memory object stream; an ``anyio.Event`` slot."""
    send, receive = anyio.create_memory_object_stream[int | Slot[int]](CAPACITY)

    async def consumer(*, task_status: TaskStatus[None]) -> None:
        count = 0
        task_status.started()
        async for item in receive:
            if isinstance(item, int):
                count += 1
            else:
                item.set(count)
                return

    async with anyio.create_task_group() as tg:
        await tg.start(consumer)
        done: Slot[int] = Slot()
        with Stopwatch() as watch:
            for i in range(n):
                await send.send(i)
            await send.send(done)
            count = await done.wait()
    _check(count, n, "anyio memory object stream")
    return {"casts_per_s": n / watch.seconds, **watch.gc_sample()}


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Measure otpy's casts/s against both raw queues of this runtime."""
    n = size.pick(full=FULL, quick=QUICK, smoke=SMOKE)
    native_name = "asyncio.Queue" if runtime.is_asyncio else "trio memory channel"
    native: Callable[[int], Awaitable[Sample]] = (
        asyncio_queue if runtime.is_asyncio else trio_channel
    )
    samples = run_rounds(
        runtime,
        {"otpy": otpy_casts, native_name: native, "anyio stream": anyio_stream},
        size=n,
        repeat=repeat,
        warmup=n // 20,
    )
    mine = column(samples["otpy"], "casts_per_s")
    figures = (
        Figure(
            metric="casts_per_s",
            label="casts/s",
            unit="/s",
            higher_is_better=True,
            baseline_name=f"{native_name} pair",
            otpy_samples=mine,
            baseline_samples=column(samples[native_name], "casts_per_s"),
            target=Target(text=">= 0.5x", on="ratio", op=">=", threshold=0.5)
            if runtime.is_asyncio
            else None,
        ),
        Figure(
            metric="casts_per_s",
            label="casts/s",
            unit="/s",
            higher_is_better=True,
            baseline_name="anyio memory stream pair",
            otpy_samples=mine,
            baseline_samples=column(samples["anyio stream"], "casts_per_s"),
        ),
    )
    return BenchmarkResult(
        name="cast",
        title="1. cast throughput",
        size=f"{n:,} casts, 1 sender -> 1 actor, capacity {CAPACITY}",
        figures=figures,
        diagnostics=gc_diagnostics(samples),
    )
