"""A receiving endpoint in a process of its own, for the end-to-end benchmark.

``python -m benchmarks._sink_server`` binds a free loopback port, prints
``PORT <n>`` on stdout and serves, with Hypercorn on asyncio:

- ``POST /hooks``: ``200`` (after ``?delay=SECONDS``, if given); the body's first field, ``{"t": <time.time_ns()>, ...}``,
  is when the client sent it, so the sink records how long the message took to
  arrive (the clients and the sink share the machine's clock);
- ``GET /stats``: ``{"count": n, "latencies_ns": [...]}`` since the last reset;
- ``POST /reset``: forget them.

It runs until stdin closes (the benchmark that started it exits or closes it).
"""

from __future__ import annotations

import json
import socket
import sys
import time
from typing import TYPE_CHECKING

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

if TYPE_CHECKING:
    from starlette.requests import Request

__all__ = ["main"]

_latencies: list[int] = []


async def _hooks(request: Request) -> Response:
    body = await request.body()
    delay = float(request.query_params.get("delay", 0))
    if delay > 0:  # a slow receiver: ?delay=SECONDS
        await anyio.sleep(delay)
    received = time.time_ns()
    try:
        sent = int(json.loads(body)["t"])
    except (ValueError, KeyError, TypeError):
        sent = received
    _latencies.append(received - sent)
    return Response(status_code=200)


async def _stats(request: Request) -> Response:
    return JSONResponse({"count": len(_latencies), "latencies_ns": _latencies})


async def _reset(request: Request) -> Response:
    _latencies.clear()
    return Response(status_code=204)


app = Starlette(
    routes=[
        Route("/hooks", _hooks, methods=["POST"]),
        Route("/stats", _stats, methods=["GET"]),
        Route("/reset", _reset, methods=["POST"]),
    ]
)


async def _serve() -> None:
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    print(f"PORT {sock.getsockname()[1]}", flush=True)
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.include_server_header = False
    stop = anyio.Event()

    async def until_stdin_closes() -> None:
        await anyio.to_thread.run_sync(sys.stdin.read, abandon_on_cancel=True)
        stop.set()

    async with anyio.create_task_group() as tg:
        tg.start_soon(until_stdin_closes)
        await serve(app, config, shutdown_trigger=stop.wait)  # type: ignore[arg-type]
        tg.cancel_scope.cancel()


def main() -> None:
    """Serve until stdin closes."""
    anyio.run(_serve, backend="asyncio")


if __name__ == "__main__":
    main()
