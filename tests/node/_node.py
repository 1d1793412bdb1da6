"""What the node's end-to-end tests share: a recording sink, the node's tree, a poster.

Everything runs in one process on asyncio (the dead-letter store is aiosqlite), over
real HTTP on loopback: the ingest's Hypercorn and the sink's both listen on port 0.
The sink is started first, so the node's configuration can name its URLs.
"""

from __future__ import annotations

import base64
import contextlib
import inspect
import json
import os
import socket
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio
import attrs
from starlette.applications import Starlette
from starlette.responses import Response
from starlette.routing import Route

import otpy
from otpy.node import NodeConfig, NodeParts, node_parts
from supervisors.node import build

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Mapping
    from pathlib import Path

    import httpx
    from starlette.requests import Request

SECRET = "whsec_" + base64.b64encode(b"s" * 32).decode()
"""The signing secret every destination of these tests signs with."""

SECRET_ENV = "E2E_SIGNING_SECRET"

WAIT = 20.0
"""Seconds any wait of these tests may take before it fails (a shared 2-core machine)."""

Answer = Callable[["Received"], "int | Awaitable[int]"]


@attrs.frozen(kw_only=True)
class Received:
    """One request the sink read.

    Attributes:
        seq: its arrival order among all the sink's requests, from 0.
        path: the request's path (one per destination).
        headers: its headers, names in lower case.
        body: its body.
    """

    seq: int
    path: str
    headers: Mapping[str, str]
    body: bytes

    @property
    def message(self) -> tuple[str, int]:
        """``(key, n)`` from the body the tests send (:func:`message_body`)."""
        data = json.loads(self.body)
        return data["key"], data["n"]

    @property
    def idempotency_key(self) -> str:
        """The sender's idempotency key."""
        return self.headers["idempotency-key"]


@attrs.define
class Sink:
    """A Starlette app that records every request and answers what :attr:`answer` says.

    Attributes:
        port: the port it listens on (set once served).
        answer: the status for each request, after it is recorded (may be async, to
            hold it); 200 by default.
        received: every request, in arrival order.
        answered: every request answered, with its status, in answer order.
    """

    port: int = 0
    answer: Answer = lambda request: 200
    received: list[Received] = attrs.field(factory=list)
    answered: list[tuple[Received, int]] = attrs.field(factory=list)
    _changed: anyio.Event = attrs.field(factory=anyio.Event)

    def url(self, path: str) -> str:
        """The URL of *path* on the sink."""
        return f"http://127.0.0.1:{self.port}{path}"

    def delivered(self, path: str) -> list[Received]:
        """The requests to *path* answered 2xx, in answer order."""
        return [r for r, status in self.answered if r.path == path and 200 <= status < 300]

    async def wait_for(self, predicate: Callable[[], bool], timeout: float = WAIT) -> None:
        """Return once *predicate* holds, checked after every request and answer."""
        with anyio.fail_after(timeout):
            while not predicate():
                await self._changed.wait()

    def _notify(self) -> None:
        changed, self._changed = self._changed, anyio.Event()
        changed.set()

    async def endpoint(self, request: Request) -> Response:
        body = await request.body()
        received = Received(
            seq=len(self.received),
            path=request.url.path,
            headers={k.lower(): v for k, v in request.headers.items()},
            body=body,
        )
        self.received.append(received)
        self._notify()
        status = self.answer(received)
        if inspect.isawaitable(status):
            status = await status
        assert isinstance(status, int)
        self.answered.append((received, status))
        self._notify()
        return Response(b"", status_code=status)


@contextlib.asynccontextmanager
async def running_sink(answer: Answer | None = None) -> AsyncIterator[Sink]:
    """Serve a :class:`Sink` with Hypercorn on a free loopback port for the block."""
    from hypercorn.asyncio import serve
    from hypercorn.config import Config

    sink = Sink() if answer is None else Sink(answer=answer)
    app = Starlette(routes=[Route("/{path:path}", sink.endpoint, methods=["POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    sink.port = sock.getsockname()[1]
    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    config.graceful_timeout = 0.5
    stop = anyio.Event()
    server: Any = app
    async with anyio.create_task_group() as tg:
        tg.start_soon(lambda: serve(server, config, shutdown_trigger=stop.wait))
        try:
            yield sink
        finally:
            stop.set()
            with anyio.move_on_after(2.0):
                await anyio.sleep_forever()  # pragma: no cover - serve ends first
            tg.cancel_scope.cancel()


def destination(sink: Sink, path: str, **settings: object) -> dict[str, object]:
    """A destination table for *path* on *sink*: signed, fast retries, no breaker."""
    return {
        "url": sink.url(path),
        "signing_secrets_env": [SECRET_ENV],
        "retry": {"schedule": ["50ms", "50ms", "50ms", "50ms", "50ms"]},
        "breaker": {"enabled": False},
        "poll_interval": "50ms",
        "timeout": "10s",
        **settings,
    }


def _merge(base: dict[str, Any], extra: Mapping[str, Any]) -> dict[str, Any]:
    merged = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _merge(merged[key], value)
        else:
            merged[key] = value
    return merged


def node_config(var_dir: Path, document: Mapping[str, Any]) -> NodeConfig:
    """The config *document* describes, files in *var_dir*, ingest on a free port, no admin."""
    base: dict[str, Any] = {
        "node": {"var_dir": str(var_dir), "synchronous": "normal"},
        "ingest": {"port": 0},
        "admin": {"enabled": False},
        "telemetry": {"enabled": False},
        "drain": {"budget": "5s"},
    }
    return NodeConfig.from_mapping(_merge(base, document), environ={SECRET_ENV: SECRET})


@attrs.define
class RunningNode:
    """The node's tree running on the current otpy node.

    Attributes:
        node: the otpy node it runs on.
        parts: the parts it runs.
        spec: its root supervisor's spec.
        supervisor: its root supervisor.
        base: the ingest's base URL.
    """

    node: otpy.Node
    parts: NodeParts
    spec: otpy.SupervisorSpec
    supervisor: otpy.SupervisorRef
    base: str
    stopped: bool = False

    async def stop(self) -> None:
        """Stop the tree (a graceful stop: the drain), once."""
        if not self.stopped:
            self.stopped = True
            await self.supervisor.stop()

    def child(self, id: str) -> otpy.SupervisorSpec:
        """The spec of the root's child *id*."""
        [found] = [c for c in self.spec.children if c.id == id]
        # A supervisor among a tree's children is held as a ChildSpec starting it.
        spec = found.args[0] if isinstance(found, otpy.ChildSpec) else found
        assert isinstance(spec, otpy.SupervisorSpec)
        return spec


@contextlib.asynccontextmanager
async def running_node(config: NodeConfig) -> AsyncIterator[RunningNode]:
    """Run the node's tree built from *config* for the block; stop it after (if the test did not)."""
    parts = node_parts(config)
    spec = build(parts)
    async with otpy.open_node() as node:
        supervisor = await otpy.start_supervisor(spec)
        running = RunningNode(node, parts, spec, supervisor, base="")
        try:
            host, port = await node.named("ingest").call("address")
            running.base = f"http://{host}:{port}"
            yield running
        finally:
            await running.stop()


async def post(
    client: httpx.AsyncClient,
    route: str,
    body: bytes,
    *,
    key: str | None = None,
    idempotency_key: str | None = None,
    content_type: str = "application/json",
    **headers: str,
) -> httpx.Response:
    """POST one message to *route* through *client* (based at the ingest)."""
    sent = {"Content-Type": content_type, **headers}
    if key is not None:
        sent["X-Otpy-Key"] = key
    if idempotency_key is not None:
        sent["Idempotency-Key"] = idempotency_key
    return await client.post(f"/v1/routes/{route}/messages", content=body, headers=sent)


def connections_to(port: int) -> int:
    """This process's open TCP sockets connected to *port* on loopback (Linux: ``/proc``)."""
    inodes = set()
    for fd in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):
            target = os.readlink(f"/proc/self/fd/{fd}")
            if target.startswith("socket:["):
                inodes.add(target[len("socket:[") : -1])
    count = 0
    with open("/proc/net/tcp") as table:
        next(table)
        for line in table:
            fields = line.split()
            remote_port = int(fields[2].split(":")[1], 16)
            if remote_port == port and fields[9] in inodes:
                count += 1
    return count


def message_body(key: str, n: int) -> bytes:
    """The JSON body of a test's *n*-th message for *key*: the sink reads both back."""
    return json.dumps({"key": key, "n": n}).encode()


async def wait_until(predicate: Callable[[], Awaitable[bool]], timeout: float = WAIT) -> None:
    """Return once the async *predicate* holds (a state no event announces), within *timeout*."""
    with anyio.fail_after(timeout):
        # A state of the node no event announces (a store's count, a flag): look again.
        while not await predicate():  # noqa: ASYNC110
            await anyio.sleep(0.02)
