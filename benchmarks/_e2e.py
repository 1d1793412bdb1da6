"""Benchmark 19: the node end to end, ingest to delivery, against posting straight to the sink.

Both sides send N messages of about 200 B from 64 clients (an ``httpx.AsyncClient``
with one connection each, closed loop, one ordering key each) and count a message
when a receiving endpoint has it. The receiver is the same in both:
``benchmarks._sink_server``, a Starlette app on Hypercorn in a process of its own,
answering ``200``.

- otpy: the messaging node as users run it, ``python -m otpy run --config
  otpy.toml`` in its own process (asyncio, uvloop if installed), ``synchronous =
  "full"``: each message is journalled before its ``202``, handed over to the
  outbox, and delivered by the gateway (64 in flight, one per key) with a signature.
  The rate is N over the time from the first POST to the sink holding all N.
- baseline: the same clients POSTing straight to the sink: what the receiver and
  the clients cost with no node in between.

Latency is the sink's receipt time minus the client's send time (the body carries
it; the processes share the machine's clock): for the node, the whole way through.
"""

from __future__ import annotations

import contextlib
import functools
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

import anyio
import httpx

from ._harness import (
    BenchmarkResult,
    Sample,
    Stopwatch,
    Target,
    column,
    median,
    percentile,
    rate_and_latency_figures,
)

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Iterator

    from ._harness import Runtime, Size

__all__ = ["run", "running_node"]

CLIENTS = 64
BODY_PAD = "x" * 150
PATIENCE = 120.0
"""Seconds a run may take before it is given up as broken."""


def _body(i: int) -> bytes:
    return json.dumps({"t": time.time_ns(), "i": i, "pad": BODY_PAD}).encode()


@functools.cache
def _tls() -> ssl.SSLContext:
    return ssl.create_default_context()


@contextlib.contextmanager
def _sink() -> Iterator[str]:
    """Start the sink process; yield its base URL; stop it."""
    process = subprocess.Popen(
        [sys.executable, "-m", "benchmarks._sink_server"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        cwd=Path(__file__).resolve().parent.parent,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode()
        if not line.startswith("PORT "):
            raise RuntimeError(f"the sink did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}"
    finally:
        if process.stdin is not None:
            process.stdin.close()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


_CONFIG = """\
[node]
var_dir = "{var}"
synchronous = "full"

[ingest]
port = {port}

[ingest.routes.bench]
destinations = ["sink"]

[ingest.routes.bench.pressure]
capacity = 1_000_000

[gateway.destinations.sink]
url = "{sink}/hooks"
max_concurrent = {clients}
max_connections = {clients}
batch = {clients}
signing_secrets_env = ["BENCH_SIGNING_SECRET"]

[admin]
enabled = false
"""


def _free_port() -> int:
    """A loopback port free now (bound, then released for the node to take)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _ready(base: str) -> bool:
    try:
        return httpx.get(f"{base}/readyz", timeout=1.0).status_code == 200
    except httpx.TransportError:
        return False


@contextlib.contextmanager
def running_node(
    directory: Path, config_text: str, port: int, **environ: str
) -> Iterator[tuple[subprocess.Popen[bytes], str]]:
    """Run ``otpy run --config`` on *config_text* (its ingest on *port*) in *directory*.

    Yields the process and the ingest's base URL once ``/readyz`` answers; SIGTERM
    stops it after. Its stderr goes to ``node.log``: a pipe nobody reads fills up
    and stalls the node.
    """
    config = directory / "otpy.toml"
    config.write_text(config_text, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "OTPY_"))}
    env.update(OTEL_TRACES_EXPORTER="none", OTEL_METRICS_EXPORTER="none", **environ)
    log = directory / "node.log"
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [sys.executable, "-m", "otpy", "run", "--config", str(config)],
            stderr=stderr,
            env=env,
            cwd=directory,
        )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + PATIENCE
        while not _ready(base):
            if process.poll() is not None:
                raise RuntimeError(f"the node exited before it was ready: {log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError("the node was not ready in time")
            time.sleep(0.02)
        yield process, base
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def _node(directory: Path, sink: str) -> Iterator[str]:
    """The node of this benchmark, delivering to *sink*; yields the ingest's base URL."""
    port = _free_port()
    text = _CONFIG.format(var=directory / "var", sink=sink, clients=CLIENTS, port=port)
    secret = "whsec_" + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    with running_node(directory, text, port, BENCH_SIGNING_SECRET=secret) as (_, base):
        yield base


@contextlib.asynccontextmanager
async def _clients(base: str) -> AsyncIterator[list[httpx.AsyncClient]]:
    limits = httpx.Limits(max_connections=1, max_keepalive_connections=1)
    async with contextlib.AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(
                httpx.AsyncClient(base_url=base, limits=limits, timeout=60.0, verify=_tls())
            )
            for _ in range(CLIENTS)
        ]


async def _stats(sink: httpx.AsyncClient) -> tuple[int, list[int]]:
    response = await sink.get("/stats")
    data = response.json()
    return int(data["count"]), [int(x) for x in data["latencies_ns"]]


async def _send(base: str, path: str, sink_url: str, n: int, expected: int) -> Sample:
    """64 clients send N messages to *base*; time until the sink holds all N."""

    async def post(client: httpx.AsyncClient, w: int, i: int) -> None:
        response = await client.post(
            path,
            content=_body(i),
            headers={
                "content-type": "application/json",
                "idempotency-key": f"bench-{i:09d}",
                "x-otpy-key": f"client-{w:02d}",
            },
        )
        if response.status_code != expected:
            raise RuntimeError(f"{base}{path} answered {response.status_code}: {response.text}")

    async def worker(client: httpx.AsyncClient, w: int) -> None:
        for i in range(w, n, CLIENTS):
            await post(client, w, i)

    async with (
        httpx.AsyncClient(base_url=sink_url, verify=_tls()) as sink,
        _clients(base) as clients,
    ):
        # One untimed message per client first, so every connection is open; then reset.
        async with anyio.create_task_group() as warm:
            for w, client in enumerate(clients):
                warm.start_soon(post, client, w, n + w)
        with anyio.fail_after(PATIENCE):
            while (await _stats(sink))[0] < CLIENTS:
                await anyio.sleep(0.02)
        await sink.post("/reset")
        with Stopwatch() as watch:
            async with anyio.create_task_group() as tg:
                for w, client in enumerate(clients[:n]):
                    tg.start_soon(worker, client, w)
            with anyio.fail_after(PATIENCE):
                while True:
                    count, latencies = await _stats(sink)
                    if count >= n:
                        break
                    await anyio.sleep(0.005)
    latencies.sort()
    return {
        "messages_per_s": n / watch.seconds,
        "p50_us": percentile(latencies, 0.50) / 1000,
        "p99_us": percentile(latencies, 0.99) / 1000,
        "received": float(count),
        **watch.gc_sample(),
    }


async def _otpy(directory: Path, sink: str, n: int) -> Sample:
    with _node(directory, sink) as ingest:
        return await _send(ingest, "/v1/routes/bench/messages", sink, n, 202)


async def _direct(_directory: Path, sink: str, n: int) -> Sample:
    return await _send(sink, "/hooks", sink, n, 200)


async def _call(contender: str, directory: Path, sink: str, n: int, _: int) -> Sample:
    fn = _otpy if contender == "otpy" else _direct
    return await fn(directory, sink, n)


def run(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """The node from POST to delivery against the same clients posting to the sink."""
    n = size.pick(full=10_000, quick=3_000, smoke=128)
    samples: dict[str, list[Sample]] = {"otpy": [], "direct": []}
    with _sink() as sink, tempfile.TemporaryDirectory(prefix="otpy-bench-") as tmp:
        for rep in range(repeat):
            order = ["otpy", "direct"] if rep % 2 == 0 else ["direct", "otpy"]
            for name in order:
                directory = Path(tmp) / f"{name}-{rep}"
                directory.mkdir()
                fn = functools.partial(_call, name, directory, sink, n)
                samples[name].append(runtime.run(fn, 0))
    mine, theirs = samples["otpy"], samples["direct"]
    baseline = "the clients posting straight to the sink (raw httpx)"
    figures = rate_and_latency_figures(
        mine,
        theirs,
        baseline_name=baseline,
        rate_metric="messages_per_s",
        rate_label="delivered messages/s, POST to sink, FULL",
        latency_label="client send to sink receipt",
        rate_target=Target(text=">= 0.7x", on="ratio", op=">=", threshold=0.7),
    )
    return BenchmarkResult(
        name="e2e",
        title="19. the node end to end",
        size=(
            f"{n:,} messages of ~200 B from {CLIENTS} clients (one key each), closed loop, "
            "through `otpy run --config` to a sink process"
        ),
        figures=figures,
        notes=(
            "three processes: the clients (this one), the node and the sink; the node "
            "journals each message (fsync shared), hands it over, signs and delivers it",
            f"{runtime.name} clients; the node runs asyncio (uvloop when installed); "
            f"median ms per message: node {1e3 / median(column(mine, 'messages_per_s')):.3f}, "
            f"direct {1e3 / median(column(theirs, 'messages_per_s')):.3f}",
        ),
    )
