"""Benchmark 2: call round trip, sequential calls from one task.

Each ``await ref.call(i)`` (default 5 s timeout) is timed with
``time.perf_counter_ns``; the figures are calls/s over the whole loop and the p50
and p99 of the per-call latencies. The raw baseline is a server task answering
requests from a bounded queue (capacity 1000) through a one-shot reply per request:

- on asyncio, an ``asyncio.Queue`` plus a future per request;
- on trio, an anyio memory object stream plus an ``anyio.Event`` slot per request.
"""

from __future__ import annotations

import asyncio
import time
from typing import TYPE_CHECKING, Any

import anyio

import otpy

from ._actors import Echo, Slot
from ._harness import (
    CAPACITY,
    BenchmarkResult,
    Sample,
    Stopwatch,
    Target,
    gc_diagnostics,
    latency_sample,
    rate_and_latency_figures,
    run_rounds,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from anyio.abc import TaskStatus

    from ._harness import Runtime, Size

__all__ = ["run"]

FULL = 100_000
QUICK = 10_000
SMOKE = 200


async def otpy_calls(n: int) -> Sample:
    """N sequential ``ref.call(i)`` to an actor that echoes."""
    clock = time.perf_counter_ns
    latencies = [0] * n
    async with otpy.open_node():
        ref = await otpy.spawn(Echo)
        with Stopwatch() as watch:
            for i in range(n):
                sent = clock()
                await ref.call(i)
                latencies[i] = clock() - sent
    return latency_sample("calls_per_s", latencies, watch)


async def raw_asyncio(n: int) -> Sample:
    """N sequential requests through ``asyncio.Queue``, each answered through a future."""
    clock = time.perf_counter_ns
    latencies = [0] * n
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] = asyncio.Queue(CAPACITY)

    async def server(*, task_status: TaskStatus[None]) -> None:
        task_status.started()
        while True:
            message, reply = await queue.get()
            reply.set_result(message)

    async with anyio.create_task_group() as tg:
        await tg.start(server)
        with Stopwatch() as watch:
            for i in range(n):
                sent = clock()
                fut = loop.create_future()
                await queue.put((i, fut))
                await fut
                latencies[i] = clock() - sent
        tg.cancel_scope.cancel()
    return latency_sample("calls_per_s", latencies, watch)


async def raw_anyio(n: int) -> Sample:
    """N sequential requests through an anyio stream, each answered through a slot."""
    clock = time.perf_counter_ns
    latencies = [0] * n
    send, receive = anyio.create_memory_object_stream[tuple[Any, Slot[Any]]](CAPACITY)

    async def server(*, task_status: TaskStatus[None]) -> None:
        task_status.started()
        async for message, slot in receive:
            slot.set(message)

    async with anyio.create_task_group() as tg:
        await tg.start(server)
        with Stopwatch() as watch:
            for i in range(n):
                sent = clock()
                slot: Slot[Any] = Slot()
                await send.send((i, slot))
                await slot.event.wait()
                latencies[i] = clock() - sent
        tg.cancel_scope.cancel()
    return latency_sample("calls_per_s", latencies, watch)


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Measure otpy's call rate and latency against a raw request/reply pair."""
    n = size.pick(full=FULL, quick=QUICK, smoke=SMOKE)
    raw: Callable[[int], Awaitable[Sample]]
    if runtime.is_asyncio:
        raw, raw_name = raw_asyncio, "asyncio.Queue + future"
    else:
        raw, raw_name = raw_anyio, "anyio stream + Event slot"
    samples = run_rounds(
        runtime, {"otpy": otpy_calls, "raw": raw}, size=n, repeat=repeat, warmup=n // 20
    )
    mine, theirs = samples["otpy"], samples["raw"]
    figures = rate_and_latency_figures(
        mine,
        theirs,
        baseline_name=raw_name,
        rate_metric="calls_per_s",
        rate_label="calls/s",
        latency_label="latency",
        rate_target=Target(text=">= 0.8x", on="ratio", op=">=", threshold=0.8),
        p99_target=None,
    )
    return BenchmarkResult(
        name="call",
        title="2. call round trip",
        size=f"{n:,} sequential calls from one task",
        figures=figures,
        diagnostics=gc_diagnostics(samples),
    )
