"""Benchmark 5: restart latency under a one_for_one supervisor.

One supervisor (``Strategy.ONE_FOR_ONE``, ``SupervisorFlags(intensity=10**9,
period=1.0)`` so it never gives up) runs one child. Each round injects a crash
with ``otpy.testing.inject_crash(ref)`` and measures, with ``perf_counter_ns``,
the time until the restarted child has answered a call: ``wait_child("worker",
other_than=old)`` then ``call``. Crash reports are logged at ERROR level, so
logging is silenced with ``logging.disable(logging.CRITICAL)`` for the run: the
figure is the restart machinery, not a log handler writing to stderr. The report
dicts that go with the log calls are still built.

The baseline is a bare task-group loop: a supervisor task starts the worker task
again each time it raises, and the new task answers a request through a one-shot
reply. On asyncio it uses ``asyncio.Queue`` and futures; on trio, anyio memory
object streams and ``anyio.Event`` slots.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any, Final

import anyio

import otpy
from otpy.testing import inject_crash

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

    from anyio.abc import TaskGroup, TaskStatus
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._harness import Runtime, Size

__all__ = ["run"]

FULL = 10_000
QUICK = 1_000
SMOKE = 50

_CRASH: Final = object()


class _Crash(Exception):
    """What the baseline worker raises."""


async def otpy_restarts(n: int) -> Sample:
    """Crash the supervised child *n* times; time each crash until its successor answers."""
    clock = time.perf_counter_ns
    latencies = [0] * n
    flags = otpy.SupervisorFlags(strategy=otpy.Strategy.ONE_FOR_ONE, intensity=10**9, period=1.0)
    spec = otpy.ChildSpec(id="worker", start=Echo)
    previous = logging.root.manager.disable
    logging.disable(logging.CRITICAL)
    try:
        async with otpy.open_supervisor([spec], flags=flags) as sup:
            ref = await sup.wait_child("worker")
            with Stopwatch() as watch:
                for i in range(n):
                    crashed = clock()
                    inject_crash(ref)
                    ref = await sup.wait_child("worker", other_than=ref)
                    await ref.call(i)
                    latencies[i] = clock() - crashed
            restarts = sup.statistics().total_restarts
    finally:
        logging.disable(previous)
    if restarts != n:
        raise RuntimeError(f"the supervisor counted {restarts} restarts, expected {n}")
    return latency_sample("restarts_per_s", latencies, watch)


async def bare_asyncio(n: int) -> Sample:
    """A task-group loop that starts a new worker task whenever the last one raised."""
    clock = time.perf_counter_ns
    latencies = [0] * n
    loop = asyncio.get_running_loop()
    exits: asyncio.Queue[None] = asyncio.Queue()
    waiter: list[asyncio.Future[asyncio.Queue[Any]]] = []

    async def worker(inbox: asyncio.Queue[Any]) -> None:
        try:
            while True:
                item = await inbox.get()
                if item is _CRASH:
                    raise _Crash
                message, reply = item
                reply.set_result(message)
        except _Crash:
            exits.put_nowait(None)

    async def supervisor(tg: TaskGroup, *, task_status: TaskStatus[asyncio.Queue[Any]]) -> None:
        inbox: asyncio.Queue[Any] = asyncio.Queue(CAPACITY)
        tg.start_soon(worker, inbox)
        task_status.started(inbox)
        while True:
            await exits.get()
            inbox = asyncio.Queue(CAPACITY)
            tg.start_soon(worker, inbox)
            waiter.pop().set_result(inbox)

    async with anyio.create_task_group() as tg:
        inbox = await tg.start(supervisor, tg)
        with Stopwatch() as watch:
            for i in range(n):
                crashed = clock()
                restarted: asyncio.Future[asyncio.Queue[Any]] = loop.create_future()
                waiter.append(restarted)
                inbox.put_nowait(_CRASH)
                inbox = await restarted
                reply: asyncio.Future[Any] = loop.create_future()
                inbox.put_nowait((i, reply))
                await reply
                latencies[i] = clock() - crashed
        tg.cancel_scope.cancel()
    return latency_sample("restarts_per_s", latencies, watch)


async def bare_anyio(n: int) -> Sample:
    """The same loop with anyio memory object streams and ``anyio.Event`` slots."""
    clock = time.perf_counter_ns
    latencies = [0] * n
    exits_send, exits = anyio.create_memory_object_stream[None](CAPACITY)
    waiter: list[Slot[MemoryObjectSendStream[Any]]] = []

    async def worker(inbox: MemoryObjectReceiveStream[Any]) -> None:
        try:
            async for item in inbox:
                if item is _CRASH:
                    raise _Crash
                message, reply = item
                reply.set(message)
        except _Crash:
            exits_send.send_nowait(None)

    async def supervisor(
        tg: TaskGroup, *, task_status: TaskStatus[MemoryObjectSendStream[Any]]
    ) -> None:
        send, receive = anyio.create_memory_object_stream[Any](CAPACITY)
        tg.start_soon(worker, receive)
        task_status.started(send)
        async for _ in exits:
            send, receive = anyio.create_memory_object_stream[Any](CAPACITY)
            tg.start_soon(worker, receive)
            waiter.pop().set(send)

    async with anyio.create_task_group() as tg:
        inbox: MemoryObjectSendStream[Any] = await tg.start(supervisor, tg)
        with Stopwatch() as watch:
            for i in range(n):
                crashed = clock()
                restarted: Slot[MemoryObjectSendStream[Any]] = Slot()
                waiter.append(restarted)
                inbox.send_nowait(_CRASH)
                await restarted.event.wait()
                assert restarted.value is not None
                inbox = restarted.value
                reply: Slot[Any] = Slot()
                inbox.send_nowait((i, reply))
                await reply.event.wait()
                latencies[i] = clock() - crashed
        tg.cancel_scope.cancel()
    return latency_sample("restarts_per_s", latencies, watch)


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Measure otpy's restart latency and rate against a bare restart loop."""
    n = size.pick(full=FULL, quick=QUICK, smoke=SMOKE)
    raw: Callable[[int], Awaitable[Sample]]
    if runtime.is_asyncio:
        raw, raw_name = bare_asyncio, "task-group loop, asyncio.Queue"
    else:
        raw, raw_name = bare_anyio, "task-group loop, anyio stream"
    samples = run_rounds(
        runtime, {"otpy": otpy_restarts, "bare": raw}, size=n, repeat=repeat, warmup=n // 20
    )
    mine, theirs = samples["otpy"], samples["bare"]
    figures = rate_and_latency_figures(
        mine,
        theirs,
        baseline_name=raw_name,
        rate_metric="restarts_per_s",
        rate_label="restarts/s",
        latency_label="crash->answer",
        rate_target=Target(text=">= 10,000/s", on="value", op=">=", threshold=10_000),
        p99_target=Target(text="< 150 us", on="value", op="<", threshold=150),
    )
    return BenchmarkResult(
        name="restart",
        title="5. restart latency",
        size=f"{n:,} crashes of one child under one_for_one",
        figures=figures,
        diagnostics=gc_diagnostics(samples),
        notes=(
            "crash reports silenced with logging.disable(logging.CRITICAL) during the run",
            "SupervisorFlags(intensity=10**9, period=1.0); no OpenTelemetry SDK installed",
        ),
    )
