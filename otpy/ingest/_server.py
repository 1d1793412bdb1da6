"""The HTTP ingest as a supervised actor: Hypercorn serves :class:`IngestApp` as the actor's task.

:class:`IngestServer` binds its socket in ``init`` (so the port is known, port 0
included, and connections queue from then on), reads the journal's pending depths
once, then runs Hypercorn's ``serve`` as an actor task (ACT-17) on whichever
backend runs the node, asyncio or trio. A stop drains it: the app answers ``503``
to new requests at once, the requests in flight finish (within the child's
``shutdown``; past it the supervisor cancels them), then Hypercorn's shutdown
trigger fires and the server closes.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

import anyio

from .._check import name as check_name
from .._check import number
from .._core import Actor, is_normal_exit
from .._exceptions import InvalidArgument
from .._redact import get_logger
from .._supervision import ChildSpec
from ._serve import bind_listener, serve_asgi

if TYPE_CHECKING:
    import socket
    from collections.abc import Mapping

    from ._app import IngestApp

__all__ = ["DEFAULT_HOST", "DEFAULT_PORT", "IngestServer", "ingest_server_spec"]

DEFAULT_HOST: Final = "127.0.0.1"
"""The ingest listens on loopback unless configured otherwise."""

DEFAULT_PORT: Final = 8080
"""The ingest's default port."""

DEFAULT_READ_TIMEOUT: Final = 30.0
"""Seconds a connection may send nothing before the server closes it."""

logger = get_logger("otpy.ingest")
hypercorn_logger = get_logger("otpy.ingest.hypercorn")


@final
class IngestServer(Actor):
    """Serves an :class:`IngestApp` over HTTP with Hypercorn, as one supervised actor.

    ``init(app, host, port, graceful_timeout, read_timeout)``: binds, loads the pending depths
    (:meth:`IngestApp.load_pending`), starts serving, and marks the app ready. A
    crash of the server task crashes the actor, and its supervisor restarts it
    (binding again). A call ``"address"`` answers ``(host, port)``, the port bound.

    .. versionadded:: 0.2.0
    """

    app: IngestApp
    address: tuple[str, int]

    async def init(
        self,
        app: IngestApp,
        host: str = DEFAULT_HOST,
        port: int = DEFAULT_PORT,
        graceful_timeout: float = 5.0,
        read_timeout: float = DEFAULT_READ_TIMEOUT,
    ) -> None:
        """Bind ``(host, port)``, read the journal's pending depths, serve, and become ready."""
        self.app = app
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        sock = bind_listener(host, port)
        self.address = (host, sock.getsockname()[1])
        try:
            await app.load_pending()
        except BaseException:
            sock.close()
            raise
        self.start_task(
            self._serve, sock, graceful_timeout, read_timeout, name=f"{self.ref.label} http"
        )
        app.draining = False
        app.set_ready()
        logger.info("ingest listening on http://%s:%d", *self.address)

    async def _serve(
        self, sock: socket.socket, graceful_timeout: float, read_timeout: float
    ) -> None:
        try:
            await serve_asgi(
                self.app,
                sock,
                shutdown_trigger=self._stop.wait,
                graceful_timeout=graceful_timeout,
                read_timeout=read_timeout,
                errorlog=hypercorn_logger,
            )
        finally:
            self._stopped.set()

    async def terminate(self, reason: object) -> None:
        """On a stop, drain: ``503`` to new requests, let those in flight finish, then close.

        The child's ``shutdown`` bounds the whole drain; past it the supervisor
        cancels what is left (the journal never stored half a request).
        """
        self.app.ready = False
        if is_normal_exit(reason):
            await self.app.drain()
            self._stop.set()
            await self._stopped.wait()
        else:
            self.app.draining = True

    async def handle_call(self, message: Any, caller: Any) -> Any:
        """``"address"``: the ``(host, port)`` the server listens on."""
        if message == "address":
            return self.address
        return await super().handle_call(message, caller)

    def format_status(self) -> Mapping[str, object]:
        """Where it listens and how many requests are in flight; never a message."""
        return {"address": f"{self.address[0]}:{self.address[1]}", "in_flight": self.app.in_flight}


def ingest_server_spec(
    app: IngestApp,
    *,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    id: str = "ingest",
    name: str | None = "ingest",
    shutdown: float = 30.0,
    graceful_timeout: float = 5.0,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
) -> ChildSpec:
    """The :class:`IngestServer` child that serves *app* on ``host:port``.

    Args:
        app: the app to serve.
        host: the address to listen on (loopback by default).
        port: the port; 0 picks a free one (ask the actor ``"address"``).
        id: the child's id.
        name: the name it is registered under, or ``None``.
        shutdown: seconds a stop may take to drain the requests in flight.
        graceful_timeout: seconds Hypercorn waits for its connections to close
            once the requests are done.
        read_timeout: seconds a connection may send nothing before it is closed:
            a client stalled mid-body gets ``400 disconnected``. A request whose
            commit takes that long still gets its answer, then the connection
            closes.

    Raises:
        InvalidArgument: a value is not allowed; the message names it.

    .. versionadded:: 0.2.0
    """
    function = "ingest_server_spec"
    check_name(host, "host", owner=function)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidArgument("port", f"must be an int in [0, 65535], got {port!r}", owner=function)
    number(graceful_timeout, "graceful_timeout", owner=function)
    number(read_timeout, "read_timeout", owner=function)
    return ChildSpec(
        id=id,
        start=IngestServer,
        args=(app, host, port, graceful_timeout, read_timeout),
        name=name,
        shutdown=shutdown,
    )
