"""Serving an ASGI app with Hypercorn from an actor's task, on asyncio or trio.

The ingest's :class:`~otpy.ingest.IngestServer` and the node's admin API share it:
:func:`bind_listener` binds the socket in the actor's ``init`` (so the port is known,
port 0 included, and connections queue from then on), and :func:`serve_asgi` runs
Hypercorn on it, on whichever backend runs the node, until its shutdown trigger
returns.
"""

from __future__ import annotations

import socket
from typing import TYPE_CHECKING, Any

import sniffio

if TYPE_CHECKING:
    import logging
    from collections.abc import Awaitable, Callable

__all__ = ["bind_listener", "serve_asgi"]


def bind_listener(host: str, port: int) -> socket.socket:
    """Return a listening TCP socket on ``(host, port)``; port 0 picks a free one.

    Args:
        host: the address to bind, IPv4 or IPv6.
        port: the port, or 0.

    Raises:
        OSError: the address cannot be bound (in use, not local).

    .. versionadded:: 0.2.0
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
        sock.listen(128)
    except BaseException:
        sock.close()
        raise
    return sock


async def serve_asgi(
    app: object,
    sock: socket.socket,
    *,
    shutdown_trigger: Callable[[], Awaitable[None]],
    graceful_timeout: float = 5.0,
    read_timeout: float | None = None,
    errorlog: logging.Logger | None = None,
) -> None:
    """Serve *app* with Hypercorn on *sock* until *shutdown_trigger* returns.

    Hypercorn owns the socket from the call on (it is passed as ``fd://``). Once
    the trigger returns, Hypercorn stops accepting, waits up to *graceful_timeout*
    seconds for the requests in flight, and returns. No access log, no ``Server``
    header.

    Args:
        app: an ASGI app.
        sock: a listening socket (:func:`bind_listener`).
        shutdown_trigger: awaited by Hypercorn; its return starts the shutdown.
        graceful_timeout: seconds the requests in flight get once shutting down.
        read_timeout: seconds a connection may send nothing before it is closed;
            ``None``, Hypercorn's default (no limit: a client that stops sending
            mid-body would hold its request, and a drain, until it goes away).
        errorlog: the logger for Hypercorn's errors (its own by default).

    .. versionadded:: 0.2.0
    """
    from hypercorn.config import Config

    config = Config()
    config.bind = [f"fd://{sock.detach()}"]
    config.accesslog = None
    if errorlog is not None:
        config.errorlog = errorlog
    config.graceful_timeout = graceful_timeout
    if read_timeout is not None:
        config.read_timeout = read_timeout  # type: ignore[assignment]  # seconds; a float works
    config.include_server_header = False
    # Starlette's ASGI types are not Hypercorn's, though both follow the spec.
    served: Any = app
    if sniffio.current_async_library() == "trio":
        from hypercorn.trio import serve as trio_serve

        await trio_serve(served, config, shutdown_trigger=shutdown_trigger)
    else:
        from hypercorn.asyncio import serve as asyncio_serve

        await asyncio_serve(served, config, shutdown_trigger=shutdown_trigger)
