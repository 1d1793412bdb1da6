"""Benchmark 17: the HTTP ingest, durable, against the same server that journals nothing.

64 clients (each an ``httpx.AsyncClient`` with one connection) POST small
JSON bodies (about 200 bytes, each with its own ``Idempotency-Key``, as a webhook
sender does) to ``/v1/routes/bench/messages`` in a closed loop, N in all, on
loopback, to a Hypercorn server in the same event loop:

- otpy: ``IngestApp`` over a ``SQLiteJournalStore`` (``synchronous="FULL"``, a temp
  directory), served by the ``IngestServer`` actor (``ingest_server_spec(app,
  port=0)``) in an otpy node, as the node serves it. A ``202`` means the message is
  committed: the journal's accept shares one commit among the accepts queued
  together, so the 64 requests in flight share their fsyncs.
- otpy, memory journal: the same app and server over a ``MemoryJournalStore``: what
  the app costs without the disk.
- baseline: a bare Starlette app with the same route, served by Hypercorn with the
  same settings, that reads the body and answers ``202`` with the same JSON shape
  (``{"id": ..., "duplicate": false}``) without journalling anything.

A request's latency runs from the client's ``post`` to the end of reading its
response. The clients, the server and (for otpy) the journal's writer thread share
one process, so the clients' own cost is in every figure.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import socket
import ssl
import time
from typing import TYPE_CHECKING, Any

import anyio
import httpx
import sniffio
from starlette.applications import Starlette
from starlette.responses import JSONResponse
from starlette.routing import Route

import otpy
from otpy.deadletter import new_id
from otpy.ingest import IngestApp, IngestRoute, MemoryJournalStore, ingest_server_spec, open_journal

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
    rate_and_latency_figures,
    rounds_on_files,
)

if TYPE_CHECKING:
    from pathlib import Path

    from starlette.requests import Request
    from starlette.responses import Response

    from otpy.ingest import JournalStore

    from ._harness import Runtime, Size

__all__ = ["run"]

CLIENTS = 64
ROUTE = "bench"
PATH = f"/v1/routes/{ROUTE}/messages"
BODY_TEMPLATE = (
    '{{"type": "invoice.paid", "id": "evt_{i:012d}", "created": 1733500000, '
    '"data": {{"invoice": "in_{i:012d}", "customer": "cus_{c:06d}", "amount_paid": 4200, '
    '"currency": "eur", "status": "paid"}}}}'
)


def _bodies(n: int) -> list[bytes]:
    return [BODY_TEMPLATE.format(i=i, c=i % 997).encode() for i in range(n)]


def _bind() -> socket.socket:
    """A listening socket on a free loopback port, set up as ``IngestServer`` sets up its own."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    return sock


async def _accepted(request: Request) -> Response:
    """The baseline's endpoint: read the body, answer 202 as the ingest does, store nothing."""
    await request.body()
    return JSONResponse({"id": new_id(time.time()), "duplicate": False}, status_code=202)


async def _serve_bare(app: Any, sock: socket.socket, stop: anyio.Event) -> None:
    """Serve *app* with Hypercorn on *sock*, configured as ``IngestServer`` configures it."""
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.include_server_header = False
    config.errorlog = logging.getLogger("benchmarks.hypercorn")  # quiet, as the node's
    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve as trio_serve

        await trio_serve(app, config, shutdown_trigger=stop.wait)
    else:
        from hypercorn.asyncio import serve as asyncio_serve

        await asyncio_serve(app, config, shutdown_trigger=stop.wait)


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


async def _load(base: str, n: int) -> Sample:
    """CLIENTS clients post N bodies to *base* in a closed loop; every answer must be 202.

    Each client is its own ``httpx.AsyncClient`` with one connection: one pool shared
    by 64 tasks costs more than the server (httpcore walks every connection of its
    pool for every request), and a webhook sender is one client anyway.
    """
    bodies = _bodies(n + CLIENTS)
    latencies: list[int] = []
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    headers = {"content-type": "application/json"}

    async def post(client: httpx.AsyncClient, i: int) -> None:
        response = await client.post(
            PATH, content=bodies[i], headers={**headers, "idempotency-key": f"evt_{i:012d}"}
        )
        await response.aread()
        if response.status_code != 202:
            raise RuntimeError(f"the server answered {response.status_code}: {response.text}")

    async def worker(client: httpx.AsyncClient, first: int) -> None:
        for i in range(first, n, CLIENTS):
            started = time.perf_counter_ns()
            await post(client, i)
            latencies.append(time.perf_counter_ns() - started)

    tls = _tls()  # plain HTTP, but each client would build its own (slow) TLS context
    async with contextlib.AsyncExitStack() as stack:
        clients = [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0, verify=tls)
            )
            for _ in range(CLIENTS)
        ]
        # One untimed request per client first, so every connection is open.
        async with anyio.create_task_group() as warm:
            for w, client in enumerate(clients):
                warm.start_soon(post, client, n + w)
        with Stopwatch() as watch:
            async with anyio.create_task_group() as tg:
                for w, client in enumerate(clients[:n]):
                    tg.start_soon(worker, client, w)
    return latency_sample("messages_per_s", latencies, watch)


@functools.cache
def _route(capacity: int) -> IngestRoute:
    # Nothing hands the journal over here, so the route's pending depth only grows:
    # a capacity above every run's count keeps its pressure out of the measure.
    return IngestRoute(name=ROUTE, capacity=capacity)


async def _ingest(journal: JournalStore, n: int) -> Sample:
    """N messages through ``IngestApp`` over *journal*, served by an ``IngestServer`` child."""
    app = IngestApp(journal, [_route(max(n * 2, 1_000) + CLIENTS)])
    spec = ingest_server_spec(app, port=0)
    async with (
        otpy.open_node() as node,
        otpy.open_supervisor(otpy.SupervisorSpec(children=[spec])),
    ):
        ref = node.whereis("ingest")
        assert ref is not None
        host, port = await ref.call("address")
        sample = await _load(f"http://{host}:{port}", n)
    stored = (await journal.statistics()).depth
    if stored != n + CLIENTS:
        raise RuntimeError(f"otpy: {stored} entries in the journal, {n + CLIENTS} expected")
    return sample


async def _otpy(path: Path, n: int) -> Sample:
    """The ingest over a SQLite journal, ``synchronous="FULL"``."""
    async with open_journal(path, synchronous="FULL") as journal:
        return await _ingest(journal, n)


async def _otpy_memory(_path: Path, n: int) -> Sample:
    """The ingest over a memory journal."""
    return await _ingest(MemoryJournalStore(), n)


async def _bare(_path: Path, n: int) -> Sample:
    """The same route on a bare Starlette app that journals nothing."""
    app = Starlette(routes=[Route("/v1/routes/{route}/messages", _accepted, methods=["POST"])])
    sock = _bind()
    port = sock.getsockname()[1]
    stop = anyio.Event()
    async with anyio.create_task_group() as tg:
        tg.start_soon(_serve_bare, app, sock, stop)
        try:
            sample = await _load(f"http://127.0.0.1:{port}", n)
        finally:
            stop.set()
    return sample


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """The durable HTTP ingest against the same server answering 202 without a journal."""
    n = size.pick(full=10_000, quick=3_000, smoke=128)
    samples = rounds_on_files(
        runtime, {"otpy": _otpy, "otpy_memory": _otpy_memory, "bare": _bare}, n, repeat
    )
    durable, memory, bare = samples["otpy"], samples["otpy_memory"], samples["bare"]
    baseline = "Starlette + Hypercorn answering 202, no journal"
    figures = (
        *rate_and_latency_figures(
            durable,
            bare,
            baseline_name=baseline,
            rate_metric="messages_per_s",
            rate_label="accepted messages/s, FULL",
            latency_label="POST to 202, FULL",
            rate_target=Target(text=">= 0.5x", on="ratio", op=">=", threshold=0.5),
        ),
        Figure(
            metric="memory_messages_per_s",
            label="accepted messages/s, memory journal",
            unit="/s",
            higher_is_better=True,
            baseline_name=baseline,
            otpy_samples=column(memory, "messages_per_s"),
            baseline_samples=column(bare, "messages_per_s"),
        ),
        *latency_figures(
            memory,
            bare,
            baseline_name=baseline,
            label="POST to 202, memory journal",
            metric_prefix="memory_",
        ),
    )
    return BenchmarkResult(
        name="ingest",
        title="17. HTTP ingest",
        size=(
            f"{n:,} POSTs of ~{len(_bodies(1)[0])} B from {CLIENTS} clients "
            "(an httpx client each, closed loop) on loopback"
        ),
        figures=figures,
        notes=(
            "the clients, Hypercorn and the app share one event loop and one core; the "
            "journal's writer thread is the only other thread",
            "each request carries its own Idempotency-Key, so each accept also checks and "
            "records it in the dedup table",
            f"{runtime.name}: median ms per message: otpy FULL "
            f"{1e3 / median(column(durable, 'messages_per_s')):.3f}, memory journal "
            f"{1e3 / median(column(memory, 'messages_per_s')):.3f}, bare "
            f"{1e3 / median(column(bare, 'messages_per_s')):.3f}",
        ),
        diagnostics=gc_diagnostics(samples),
    )
