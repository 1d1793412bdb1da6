"""Benchmark 14: the gateway's throughput, from enqueue to a 200 from a loopback sink.

N messages over 64 ordering keys go to a minimal HTTP/1.1 sink on loopback (keep-alive,
an empty 200 to every request) that runs in the same event loop:

- otpy: a ``Gateway`` over a ``SQLiteOutboxStore`` (``synchronous="FULL"``) and one
  ``HttpDestination`` with 32 slots; 100 producers enqueue everything concurrently,
  and the clock stops when the gateway has delivered every message. The latency of a
  message runs from the start of its ``enqueue`` to the sink reading its request
  (matched by the ``webhook-id`` header).
- otpy, fsync off: the same with ``synchronous="OFF"``: what the outbox's fsync costs.
- baseline: raw httpx, 32 tasks sharing one ``httpx.AsyncClient`` (32 connections),
  posting the same bodies to the same sink; the latency is one request's round trip.

At a steady rate below capacity (open loop), the same two go again: messages are
produced on a fixed schedule (PACED_RATE a second, whatever happened before), and a
message's latency runs from its production to the sink reading it, for both: otpy's
includes the durable enqueue, the claim and the send; the baseline's the wait for
one of its 32 slots and the send.

The gateway does much more per message than the baseline (a durable insert, a claim,
per-key ordering, a delete, the breaker, the retry bookkeeping, the Standard Webhooks
headers), all of it on the same core as the sink and the client.
"""

from __future__ import annotations

import functools
import time
from typing import TYPE_CHECKING, Any

import anyio
import anyio.abc
import httpx

from otpy.gateway import DeliveryPolicy, Gateway, HttpDestination, open_outbox

from ._harness import (
    BenchmarkResult,
    Figure,
    Sample,
    Stopwatch,
    Target,
    column,
    gc_diagnostics,
    latency_figures,
    latency_sample,
    median,
    rounds_on_files,
)

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Coroutine
    from pathlib import Path

    from otpy.deadletter import DeadLetter

    from ._harness import Runtime, Size

__all__ = ["run"]

KEYS = 64
PRODUCERS = 100
CONCURRENCY = 32
DESTINATION = "sink"
BODY_TEMPLATE = '{{"event": "order.paid", "order": {i}, "amount": 4200, "currency": "EUR"}}'
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"
PACED_RATE = 200
"""Messages a second in the open-loop runs: about half what this machine delivers."""
ID_HEADER = b"webhook-id:"
LENGTH_HEADER = b"content-length:"


class _Sink:
    """A loopback HTTP/1.1 server: keep-alive, an empty 200 to every request.

    It notes when it read each request, by its ``webhook-id`` header, and sets
    ``done`` once it has read ``expected`` requests.
    """

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received: dict[str, int] = {}
        self.count = 0
        self.done = anyio.Event()
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _arrived(self, head: bytes) -> int:
        """Note one request by its head; return its body's length."""
        length = 0
        for line in head.split(b"\r\n")[1:]:
            lowered = line[:16].lower()
            if lowered.startswith(LENGTH_HEADER):
                length = int(line[len(LENGTH_HEADER) :])
            elif lowered.startswith(ID_HEADER):
                message_id = line[len(ID_HEADER) :].strip().decode("ascii")
                self.received.setdefault(message_id, time.perf_counter_ns())
        self.count += 1
        if self.count >= self.expected:
            self.done.set()
        return length

    async def serve(self, stream: anyio.abc.SocketStream) -> None:
        """Answer the requests of one connection until the client closes it."""
        buffer = b""
        async with stream:
            try:
                while True:
                    end = buffer.find(b"\r\n\r\n")
                    if end < 0:
                        buffer += await stream.receive()
                        continue
                    length = self._arrived(buffer[:end])
                    start = end + 4
                    while len(buffer) < start + length:
                        buffer += await stream.receive()
                    buffer = buffer[start + length :]
                    await stream.send(RESPONSE)
            except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
                return


async def _with_sink(expected: int, body: Callable[[_Sink], Awaitable[Sample]]) -> Sample:
    """Run *body* beside a sink expecting *expected* requests; stop the sink after."""
    sink = _Sink(expected)
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    sink.port = listener.extra(anyio.abc.SocketAttribute.local_port)
    async with listener, anyio.create_task_group() as tg:
        tg.start_soon(listener.serve, sink.serve)
        try:
            sample = await body(sink)
        finally:
            tg.cancel_scope.cancel()
    return sample


def _bodies(n: int) -> list[bytes]:
    return [BODY_TEMPLATE.format(i=i).encode() for i in range(n)]


async def _no_dead_letters(record: DeadLetter) -> None:
    raise RuntimeError(f"the benchmark's sink never fails, yet {record.correlation_id} failed")


async def _otpy(path: Path, n: int, *, synchronous: str) -> Sample:
    """N messages from PRODUCERS producers through the gateway, until all are delivered."""
    bodies = _bodies(n)

    async def body(sink: _Sink) -> Sample:
        destination = HttpDestination(
            DESTINATION, sink.url, max_concurrent=CONCURRENCY, timeout=30.0
        )
        enqueued: dict[str, int] = {}
        async with open_outbox(path, synchronous=synchronous) as outbox, destination:
            gateway = Gateway(
                outbox,
                [destination],
                policy=DeliveryPolicy(batch=CONCURRENCY),
                dead_letters=_no_dead_letters,
            )

            async def producer(first: int) -> None:
                for i in range(first, n, PRODUCERS):
                    started = time.perf_counter_ns()
                    message_id = await gateway.enqueue(
                        DESTINATION,
                        key=f"customer-{i % KEYS}",
                        body=bodies[i],
                        content_type="application/json",
                    )
                    enqueued[message_id] = started

            async with anyio.create_task_group() as tg:
                tg.start_soon(gateway.run)
                with Stopwatch() as watch:
                    began = time.perf_counter_ns()
                    async with anyio.create_task_group() as producers:
                        for p in range(min(PRODUCERS, n)):
                            producers.start_soon(producer, p)
                    all_enqueued = time.perf_counter_ns()
                    await sink.done.wait()
                    # Delivered means completed in the outbox, not only read by the sink.
                    stats = gateway.statistics().destinations[DESTINATION]
                    while stats.succeeded < n:
                        await anyio.sleep(0.001)
                        stats = gateway.statistics().destinations[DESTINATION]
                tg.cancel_scope.cancel()
            depth = (await outbox.statistics()).depth
        if depth or stats.sent != n or set(sink.received) != set(enqueued):
            raise RuntimeError(
                f"otpy: {stats.succeeded} delivered in {stats.sent} attempts, "
                f"{depth} left in the outbox, {len(sink.received)} distinct at the sink"
            )
        latencies = [sink.received[m] - started for m, started in enqueued.items()]
        sample = latency_sample("messages_per_s", latencies, watch)
        sample["enqueued_per_s"] = n / ((all_enqueued - began) / 1e9)
        return sample

    return await _with_sink(n, body)


async def _raw_httpx(_path: Path, n: int) -> Sample:
    """The same bodies posted by CONCURRENCY tasks through one shared httpx client."""
    bodies = _bodies(n)

    async def body(sink: _Sink) -> Sample:
        latencies: list[int] = []
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        headers = {"content-type": "application/json"}
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

            async def worker(first: int) -> None:
                for i in range(first, n, CONCURRENCY):
                    started = time.perf_counter_ns()
                    response = await client.post(
                        sink.url, content=bodies[i], headers={**headers, "webhook-id": f"m{i}"}
                    )
                    await response.aread()
                    latencies.append(time.perf_counter_ns() - started)
                    if response.status_code != 200:
                        raise RuntimeError(f"the sink answered {response.status_code}")

            with Stopwatch() as watch:
                async with anyio.create_task_group() as tg:
                    for w in range(min(CONCURRENCY, n)):
                        tg.start_soon(worker, w)
        if len(sink.received) != n:
            raise RuntimeError(f"raw httpx: {len(sink.received)} of {n} reached the sink")
        return latency_sample("messages_per_s", latencies, watch)

    return await _with_sink(n, body)


async def _at_rate(start: Callable[[int], Coroutine[Any, Any, None]], n: int, rate: float) -> None:
    """Start ``start(i)`` for i < n on a fixed schedule of *rate* a second; wait for all."""
    async with anyio.create_task_group() as tg:
        began = anyio.current_time()
        for i in range(n):
            delay = began + i / rate - anyio.current_time()
            if delay > 0:
                await anyio.sleep(delay)
            tg.start_soon(start, i)


async def _otpy_paced(path: Path, n: int, *, rate: float) -> Sample:
    """N messages produced at *rate* a second through the durable gateway."""
    bodies = _bodies(n)

    async def body(sink: _Sink) -> Sample:
        destination = HttpDestination(
            DESTINATION, sink.url, max_concurrent=CONCURRENCY, timeout=30.0
        )
        produced: dict[str, int] = {}
        async with open_outbox(path) as outbox, destination:
            gateway = Gateway(
                outbox,
                [destination],
                policy=DeliveryPolicy(batch=CONCURRENCY),
                dead_letters=_no_dead_letters,
            )

            async def produce(i: int) -> None:
                started = time.perf_counter_ns()
                message_id = await gateway.enqueue(
                    DESTINATION,
                    key=f"customer-{i % KEYS}",
                    body=bodies[i],
                    content_type="application/json",
                )
                produced[message_id] = started

            async with anyio.create_task_group() as tg:
                tg.start_soon(gateway.run)
                with Stopwatch() as watch:
                    await _at_rate(produce, n, rate)
                    await sink.done.wait()
                tg.cancel_scope.cancel()
        if set(sink.received) != set(produced):
            raise RuntimeError(f"otpy paced: {len(sink.received)} of {n} reached the sink")
        latencies = [sink.received[m] - started for m, started in produced.items()]
        return latency_sample("messages_per_s", latencies, watch)

    return await _with_sink(n, body)


async def _raw_httpx_paced(_path: Path, n: int, *, rate: float) -> Sample:
    """The same bodies produced at *rate* a second, each posted once one of 32 slots is free."""
    bodies = _bodies(n)

    async def body(sink: _Sink) -> Sample:
        produced: dict[str, int] = {}
        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        slots = anyio.Semaphore(CONCURRENCY)
        async with httpx.AsyncClient(limits=limits, timeout=30.0) as client:

            async def produce(i: int) -> None:
                message_id = f"m{i}"
                produced[message_id] = time.perf_counter_ns()
                async with slots:
                    response = await client.post(
                        sink.url,
                        content=bodies[i],
                        headers={"content-type": "application/json", "webhook-id": message_id},
                    )
                    await response.aread()
                if response.status_code != 200:
                    raise RuntimeError(f"the sink answered {response.status_code}")

            with Stopwatch() as watch:
                await _at_rate(produce, n, rate)
        latencies = [sink.received[m] - started for m, started in produced.items()]
        return latency_sample("messages_per_s", latencies, watch)

    return await _with_sink(n, body)


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """The gateway, durable and with fsync off, against raw httpx at the same concurrency."""
    n = size.pick(full=20_000, quick=5_000, smoke=200)
    samples = rounds_on_files(
        runtime,
        {
            "otpy": functools.partial(_otpy, synchronous="FULL"),
            "otpy_off": functools.partial(_otpy, synchronous="OFF"),
            "httpx": _raw_httpx,
        },
        n,
        repeat,
    )
    durable, fsync_off, raw = samples["otpy"], samples["otpy_off"], samples["httpx"]
    paced_n = size.pick(full=1_000, quick=400, smoke=20)
    rate_now = size.pick(full=PACED_RATE, quick=PACED_RATE, smoke=1_000)
    paced = rounds_on_files(
        runtime,
        {
            "otpy": functools.partial(_otpy_paced, rate=rate_now),
            "httpx": functools.partial(_raw_httpx_paced, rate=rate_now),
        },
        paced_n,
        repeat,
    )
    baseline = f"raw httpx, {CONCURRENCY} tasks, one client"

    def rate(metric: str, label: str, mine: list[Sample], target: Target | None) -> Figure:
        return Figure(
            metric=metric,
            label=label,
            unit="/s",
            higher_is_better=True,
            baseline_name=baseline,
            otpy_samples=column(mine, "messages_per_s"),
            baseline_samples=column(raw, "messages_per_s"),
            target=target,
        )

    return BenchmarkResult(
        name="gateway",
        title="14. gateway",
        size=(
            f"{n:,} messages over {KEYS} keys from {PRODUCERS} producers, "
            f"{CONCURRENCY} in flight, to a loopback sink"
        ),
        figures=(
            rate(
                "messages_per_s",
                "messages/s, synchronous=FULL",
                durable,
                Target(text=">= 0.8x", on="ratio", op=">=", threshold=0.8),
            ),
            *latency_figures(
                durable,
                raw,
                baseline_name=f"{baseline}, one request",
                label="enqueue to delivery, FULL",
            ),
            rate("messages_per_s_fsync_off", "messages/s, synchronous=OFF", fsync_off, None),
            *latency_figures(
                fsync_off,
                raw,
                baseline_name=f"{baseline}, one request",
                label="enqueue to delivery, OFF",
                metric_prefix="fsync_off_",
            ),
            *latency_figures(
                paced["otpy"],
                paced["httpx"],
                baseline_name=f"raw httpx at the same rate, {CONCURRENCY} slots",
                label=f"at {rate_now:,}/s, produced to received, FULL",
                metric_prefix="paced_",
            ),
        ),
        notes=(
            f"open loop: {paced_n:,} messages produced at {rate_now:,}/s on a fixed "
            "schedule; both latencies run from a message's production to the sink reading "
            "it (otpy's includes the durable enqueue)",
            "the sink, the gateway (or the raw client) and the producers share one event "
            "loop and one core; the sink answers an empty 200 with keep-alive",
            "otpy's latency runs from the start of enqueue (durable insert) to the sink "
            "reading the request; the baseline's is one request's round trip, so the two "
            "latencies measure different spans",
            "every message is enqueued at the start, faster than it can be delivered, so "
            "otpy's latency is mostly the time a message waits behind the backlog "
            f"({runtime.name}: all enqueued at a median "
            f"{median(column(durable, 'enqueued_per_s')):,.0f}/s with FULL, "
            f"{median(column(fsync_off, 'enqueued_per_s')):,.0f}/s with OFF)",
            f"{runtime.name}: median ms per message: otpy FULL "
            f"{1e3 / median(column(durable, 'messages_per_s')):.3f}, OFF "
            f"{1e3 / median(column(fsync_off, 'messages_per_s')):.3f}, raw httpx "
            f"{1e3 / median(column(raw, 'messages_per_s')):.3f}",
        ),
        diagnostics={
            **gc_diagnostics(samples),
            "enqueued_per_s.otpy": median(column(durable, "enqueued_per_s")),
            "enqueued_per_s.otpy_off": median(column(fsync_off, "enqueued_per_s")),
        },
    )
