"""A loopback HTTP/1.1 server for the destination tests, answering as each test scripts.

Minimal on purpose: it reads a request line, headers and a ``Content-Length`` body,
records them, and answers with the next scripted :class:`Reply` (the last one
repeats), or with what an ``answer`` function decides for each request. A reply can
hang until an event the test controls, cut the connection mid-body, or close
without answering.
"""

from __future__ import annotations

import contextlib
import socket
import struct
from typing import TYPE_CHECKING

import anyio
import anyio.abc
import attrs

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Callable


@attrs.frozen(kw_only=True)
class Reply:
    """What the sink answers to one request.

    Attributes:
        status: the status code.
        headers: extra response headers.
        body: the response body.
        hang: an event to wait on before answering (a test that never sets it gets
            no answer until the client gives up).
        reset_after: send the head and this many body bytes, then close abruptly
            (``Content-Length`` still announces the whole body).
        close: close the connection without answering at all.
    """

    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    hang: anyio.Event | None = None
    reset_after: int | None = None
    close: bool = False


@attrs.frozen(kw_only=True)
class Received:
    """One request the sink read."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@attrs.define
class Sink:
    """The running server: its URL, its script and what it received.

    Attributes:
        answer: decides the reply to each request (after it is recorded), instead of
            the script; ``None``: the script answers.
    """

    port: int
    replies: list[Reply] = attrs.field(factory=list)
    received: list[Received] = attrs.field(factory=list)
    arrived: anyio.Event = attrs.field(factory=anyio.Event)
    answer: Callable[[Received], Reply] | None = None
    # Set (and replaced) at every request: what wait_for waits on.
    _changed: anyio.Event = attrs.field(factory=anyio.Event, init=False)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def script(self, *replies: Reply) -> None:
        self.replies[:] = replies

    async def wait_for(self, predicate: Callable[[], bool]) -> None:
        """Return once *predicate* holds, checking it after every request received."""
        while not predicate():
            await self._changed.wait()

    def _reply_to(self, request: Received) -> Reply:
        self.received.append(request)
        self.arrived.set()
        changed, self._changed = self._changed, anyio.Event()
        changed.set()
        return self._next() if self.answer is None else self.answer(request)

    def _next(self) -> Reply:
        if len(self.replies) > 1:
            return self.replies.pop(0)
        return self.replies[0] if self.replies else Reply()


async def _read_request(stream: anyio.abc.ByteStream, buffer: bytearray) -> Received | None:
    while b"\r\n\r\n" not in buffer:
        try:
            buffer.extend(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return None
    head, _, rest = bytes(buffer).partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, path, _version = lines[0].split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines[1:]:
        key, _, value = line.partition(":")
        headers[key.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = bytearray(rest)
    while len(body) < length:
        try:
            body.extend(await stream.receive())
        except (anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return None
    buffer[:] = body[length:]
    return Received(method=method, path=path, headers=headers, body=bytes(body[:length]))


def _head(reply: Reply) -> bytes:
    lines = [f"HTTP/1.1 {reply.status} Scripted", f"Content-Length: {len(reply.body)}"]
    lines += [f"{key}: {value}" for key, value in reply.headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _serve(sink: Sink, stream: anyio.abc.SocketStream) -> None:
    buffer = bytearray()
    async with stream:
        while True:
            request = await _read_request(stream, buffer)
            if request is None:
                return
            reply = sink._reply_to(request)
            if reply.hang is not None:
                await reply.hang.wait()
            try:
                if reply.close:
                    return
                if reply.reset_after is not None:
                    await stream.send(_head(reply) + reply.body[: reply.reset_after])
                    # Linger 0: closing sends a RST, not an orderly FIN.
                    raw = stream.extra(anyio.abc.SocketAttribute.raw_socket)
                    raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    return
                await stream.send(_head(reply) + reply.body)
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return  # the client gave up (read only an excerpt, say)


@contextlib.asynccontextmanager
async def running_sink(
    *replies: Reply, answer: Callable[[Received], Reply] | None = None
) -> AsyncIterator[Sink]:
    """Run a sink on a free loopback port for the block; stop it after.

    Args:
        replies: the script: the replies in order, the last one repeating.
        answer: decides each reply from its request instead (see :attr:`Sink.answer`).
    """
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port = listener.extra(anyio.abc.SocketAttribute.local_port)
    sink = Sink(port=port, replies=list(replies), answer=answer)

    async def handle(stream: anyio.abc.SocketStream) -> None:
        with contextlib.suppress(anyio.BrokenResourceError, anyio.ClosedResourceError):
            await _serve(sink, stream)

    async with listener, anyio.create_task_group() as group:
        group.start_soon(listener.serve, handle)
        try:
            yield sink
        finally:
            group.cancel_scope.cancel()


async def free_port() -> int:
    """A loopback port with nothing listening on it (bound, then closed)."""
    listener = await anyio.create_tcp_listener(local_host="127.0.0.1", local_port=0)
    port: int = listener.extra(anyio.abc.SocketAttribute.local_port)
    await listener.aclose()
    return port
