"""Benchmarks 9-10: bounded growth under overload, and what pressure monitoring costs.

9. overload: a producer offers 10 messages for every one the consumer takes,
   1,000,000 offers in all, into a ``BoundedQueue`` of capacity 1,000 (the rest are
   shed or refused as full). Peak RSS during the run against the idle RSS before it:
   the queue must stay bounded, so the two are close.
10. monitor: producer/consumer throughput through a ``BoundedQueue`` with a
   ``PressureMonitor`` sampling it every 100 ms and notified on every level change, against the
   same queue unwatched. Target: within 5 %.
"""

from __future__ import annotations

import functools
import os
import resource
from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

import otpy
from otpy import LoadShed, QueueFull
from otpy.pressure import (
    BoundedQueue,
    PartitionedQueue,
    PressureMonitor,
    Priority,
    open_partitioned_workers,
    partition_of,
)

from ._harness import BenchmarkResult, Figure, Sample, Stopwatch, Target, column, run_rounds

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream

    from ._harness import Runtime, Size

__all__ = ["run_monitor", "run_overload", "run_partitioned"]

CAPACITY = 1000
PRIORITIES = (Priority.LOW, Priority.NORMAL, Priority.HIGH, Priority.CRITICAL)


def _rss() -> int:
    """Resident set size now, in bytes (Linux)."""
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


async def _overload(n: int) -> Sample:
    queue: BoundedQueue[int] = BoundedQueue(CAPACITY, name="overload")
    idle = _rss()
    peak = idle
    offered = rejected = taken = 0
    done = anyio.Event()

    async def consumer() -> None:
        nonlocal taken
        while not done.is_set() or len(queue):
            if len(queue):
                queue.get_nowait()
                taken += 1
            await anyio.lowlevel.checkpoint()

    with Stopwatch() as watch:
        async with anyio.create_task_group() as tg:
            tg.start_soon(consumer)
            while offered < n:
                for _ in range(10):  # ten offers for each message the consumer takes
                    try:
                        queue.put_nowait(offered, priority=PRIORITIES[offered % 4])
                    except (LoadShed, QueueFull, anyio.WouldBlock):
                        rejected += 1
                    offered += 1
                await anyio.lowlevel.checkpoint()
                if offered % 100_000 == 0:
                    peak = max(peak, _rss())
            done.set()
    peak = max(peak, _rss())
    if taken + rejected != n:
        raise RuntimeError(f"lost messages: {taken} taken + {rejected} rejected != {n}")
    stats = queue.statistics()
    if stats.peak > CAPACITY:
        raise RuntimeError(f"the queue grew to {stats.peak}, past its capacity")
    return {
        "peak_rss_mib": peak / 2**20,
        "idle_rss_mib": idle / 2**20,
        "offers_per_s": n / watch.seconds,
        "maxrss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def run_overload(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Peak RSS under 10x overload against the idle RSS."""
    n = size.pick(full=1_000_000, quick=20_000, smoke=1_000)
    samples = run_rounds(runtime, {"otpy": _overload}, size=n, repeat=repeat)["otpy"]
    return BenchmarkResult(
        name="overload",
        title="9. 10x overload",
        size=f"{n:,} offers at 10x the consumer's rate into a queue of {CAPACITY:,}",
        figures=(
            Figure(
                metric="peak_rss_mib",
                label="peak RSS",
                unit="MiB",
                higher_is_better=False,
                baseline_name="idle RSS before the run",
                otpy_samples=column(samples, "peak_rss_mib"),
                baseline_samples=column(samples, "idle_rss_mib"),
            ),
        ),
        notes=(
            "every offer is accounted for: taken + shed + refused as full == offered",
            f"offers/s {sorted(column(samples, 'offers_per_s'))[len(samples) // 2]:,.0f}",
        ),
    )


async def _through(n: int, *, monitored: bool) -> Sample:
    queue: BoundedQueue[int] = BoundedQueue(CAPACITY, name="q")
    async with otpy.open_node() as node:
        if monitored:
            monitor = await node.spawn(PressureMonitor, {"q": queue}, None, 0.1, "bench")
            queue.watch(monitor)  # a hint on every level change
        done = anyio.Event()
        taken = 0

        async def consumer() -> None:
            nonlocal taken
            while taken < n:
                await queue.get()
                taken += 1
            done.set()

        with Stopwatch() as watch:
            async with anyio.create_task_group() as tg:
                tg.start_soon(consumer)
                for i in range(n):
                    await queue.put(i, priority=Priority.CRITICAL)
                await done.wait()
    return {"messages_per_s": n / watch.seconds}


async def _monitored(n: int) -> Sample:
    return await _through(n, monitored=True)


async def _unmonitored(n: int) -> Sample:
    return await _through(n, monitored=False)


def run_monitor(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """Queue throughput with the pressure monitor on against off."""
    n = size.pick(full=300_000, quick=10_000, smoke=500)
    samples = run_rounds(
        runtime, {"on": _monitored, "off": _unmonitored}, size=n, repeat=repeat, warmup=n // 20
    )
    return BenchmarkResult(
        name="monitor",
        title="10. monitoring cost",
        size=f"{n:,} messages through one BoundedQueue({CAPACITY:,})",
        figures=(
            Figure(
                metric="messages_per_s",
                label="messages/s",
                unit="/s",
                higher_is_better=True,
                baseline_name="the same queue, no monitor",
                otpy_samples=column(samples["on"], "messages_per_s"),
                baseline_samples=column(samples["off"], "messages_per_s"),
                target=Target(text=">= 0.95x", on="ratio", op=">=", threshold=0.95),
            ),
        ),
        notes=(
            "the monitor samples every 100 ms, and the queue notifies it on every level change",
        ),
    )


# -- 11. partitioned queue ----------------------------------------------------------------

PARTITIONS = (1, 8, 64)


async def _partitioned(n: int, partitions: int) -> Sample:
    queue: PartitionedQueue[int] = PartitionedQueue(partitions, CAPACITY, name="bench")
    keys = [f"key-{k}" for k in range(max(partitions * 4, 16))]
    done = anyio.Event()
    handled = 0

    async def handler(key: str, item: int) -> None:
        nonlocal handled
        handled += 1
        if handled == n:
            done.set()

    with Stopwatch() as watch:
        async with open_partitioned_workers(queue, handler, max_demand=64):
            for i in range(n):
                await queue.put(keys[i % len(keys)], i, priority=Priority.CRITICAL)
            await done.wait()
    return {"messages_per_s": n / watch.seconds}


async def _raw_streams(n: int, partitions: int) -> Sample:
    """One anyio memory stream (buffer 1,000) and one consumer task per partition."""
    keys = [f"key-{k}" for k in range(max(partitions * 4, 16))]
    routes = [partition_of(key, partitions) for key in keys]
    streams = [anyio.create_memory_object_stream[int](CAPACITY) for _ in range(partitions)]
    done = anyio.Event()
    handled = 0

    async def consumer(receive: MemoryObjectReceiveStream[int]) -> None:
        nonlocal handled
        async with receive:
            async for _ in receive:
                handled += 1
                if handled == n:
                    done.set()

    with Stopwatch() as watch:
        async with anyio.create_task_group() as tg:
            for _, receive in streams:
                tg.start_soon(consumer, receive)
            for i in range(n):
                await streams[routes[i % len(keys)]][0].send(i)
            await done.wait()
            for send, _ in streams:
                await send.aclose()
    return {"messages_per_s": n / watch.seconds}


def run_partitioned(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """PartitionedQueue throughput against raw anyio streams, at 1, 8 and 64 partitions."""
    n = size.pick(full=200_000, quick=5_000, smoke=500)
    figures = []
    for partitions in PARTITIONS:
        samples = run_rounds(
            runtime,
            {
                "otpy": functools.partial(_partitioned, partitions=partitions),
                "raw": functools.partial(_raw_streams, partitions=partitions),
            },
            size=n,
            repeat=repeat,
        )
        figures.append(
            Figure(
                metric=f"messages_per_s_{partitions}",
                label=f"messages/s, {partitions} partition{'s' if partitions > 1 else ''}",
                unit="/s",
                higher_is_better=True,
                baseline_name="an anyio stream and a consumer per partition",
                otpy_samples=column(samples["otpy"], "messages_per_s"),
                baseline_samples=column(samples["raw"], "messages_per_s"),
            )
        )
    return BenchmarkResult(
        name="partitioned",
        title="11. partitioned queue",
        size=f"{n:,} messages, one producer, keys spread over the partitions",
        figures=tuple(figures),
        notes=("each partition holds up to 1,000; workers pull up to 64 at a time",),
    )
