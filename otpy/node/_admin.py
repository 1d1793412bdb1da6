"""The node's admin API: status, destinations and dead letters over HTTP, for operators.

:class:`AdminApp` is a Starlette app; :class:`AdminServer` serves it with Hypercorn
as a supervised actor's task (:func:`admin_server_spec`), on loopback by default.
The endpoints, their statuses and who may call them are in docs/node.md ("The admin
API"). Every answer is JSON; a refusal is ``{"error": code, "detail": text}``.

Who may call what: with a token configured, every endpoint but ``/healthz`` and
``/readyz`` wants ``Authorization: Bearer <token>`` (compared with
:func:`hmac.compare_digest`). Without one, the read-only endpoints that show no
payload answer, and anything that changes state or shows a payload answers ``403``.

Nothing secret leaves: dead letters are redacted when captured, and every text a
response carries from a record (reason, replay error, headers, attributes) goes
through the same redaction again on the way out. A payload is shown only to a
caller holding the token.

A replay (``POST /v1/dead-letters/{id}/replay``) follows the dead-letter store's
replay ledger exactly as the replay workers do (DL-6..DL-9): the store takes the
record's lease and writes its idempotency key ``pending`` in one step (or refuses:
already replayed, in progress, in doubt, archived), the gateway stores the message
in its outbox (:meth:`~otpy.gateway.Gateway.replay`), and the store commits the key.
A record replayed once is never sent again by a second request.
"""

from __future__ import annotations

import hmac
import re
import time
from typing import TYPE_CHECKING, Any, Final, final

import anyio
import anyio.lowlevel
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .. import Actor, ChildSpec, __version__, is_normal_exit
from .._check import count, number
from .._check import name as check_name
from .._exceptions import (
    CorruptRecord,
    DeadLetterNotFound,
    DeadLetterStoreError,
    InvalidArgument,
    InvalidArgumentType,
    JournalError,
    NoReplayHandler,
    OutboxError,
    ReplayOutcomeUnknown,
    UnknownDestination,
)
from .._redact import get_logger
from ..deadletter import (
    Action,
    DeadLetterFilter,
    DeadLetterStore,
    Replayer,
    ReplayOutcome,
    ReplayStarter,
    Source,
    iso_time,
    record_document,
    redact,
)
from ..gateway import Gateway
from ..ingest import IngestApp, JournalStore, bind_listener, serve_asgi

if TYPE_CHECKING:
    import socket
    from collections.abc import Callable, Mapping

    from starlette.requests import Request
    from starlette.types import Receive, Scope, Send

    from ..deadletter import DeadLetter, StoreStatistics
    from ..gateway import DeliveryStatistics
    from ..ingest import JournalStatistics

__all__ = [
    "ADMIN_READ_TIMEOUT",
    "DEFAULT_ADMIN_PORT",
    "DEFAULT_LIMIT",
    "MAX_LIMIT",
    "AdminApp",
    "AdminServer",
    "admin_server_spec",
]

logger = get_logger("otpy.node.admin")
hypercorn_logger = get_logger("otpy.node.admin.hypercorn")

ADMIN_READ_TIMEOUT: Final = 30.0
"""Seconds an admin connection may send nothing before it is closed."""

DEFAULT_ADMIN_PORT: Final = 8081
"""The admin API's default port."""

DEFAULT_LIMIT: Final = 50
"""Dead letters on a page unless ``limit`` says."""

MAX_LIMIT: Final = 1000
"""The most dead letters one page may hold."""

_ID = re.compile(r"[0-9A-HJKMNP-TV-Z]{26}")  # a record id: ULID's layout, as new_id makes

_TOKEN_REQUIRED: Final = (
    "this endpoint changes state or shows a payload, so it needs a bearer token, and the "
    "admin API has none: set [admin] token_env or token_file (OTPY_ADMIN_TOKEN_ENV, "
    "OTPY_ADMIN_TOKEN_FILE)"
)


class Refused(Exception):
    """A request refused: its status, error code, detail and extra headers."""

    def __init__(
        self, status: int, error: str, detail: str, *, headers: Mapping[str, str] | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.error = error
        self.detail = detail
        self.headers = dict(headers or {})

    def response(self) -> JSONResponse:
        return JSONResponse(
            {"error": self.error, "detail": self.detail},
            status_code=self.status,
            headers=self.headers,
        )


def _token(value: object) -> str | None:
    if value is None:
        return None
    reveal = getattr(value, "reveal", None)
    if callable(reveal):
        value = reveal()
    if not isinstance(value, str):
        raise InvalidArgumentType(
            "token",
            f"must be a str, a Secret or None, got {type(value).__name__}",
            owner="AdminApp",
        )
    if not value.strip():
        raise InvalidArgument("token", "must not be empty or blank", owner="AdminApp")
    return value


# -- JSON -------------------------------------------------------------------------------


def _times(name: str, epoch: float | None) -> dict[str, Any]:
    return {name: None if epoch is None else iso_time(epoch), f"{name}_epoch": epoch}


def _text(value: str | None) -> str | None:
    return None if value is None else redact(value)


def summary_document(record: DeadLetter) -> dict[str, Any]:
    """What a listing shows of *record*: its identity, reason and replay state; no payload."""
    return {
        "id": record.id,
        "key": record.key,
        "status": record.status.value,
        "source": record.source.value,
        "category": record.category.value,
        "reason_class": record.reason_class,
        "reason": redact(record.reason),
        "attempt": record.attempt,
        "max_attempts": record.max_attempts,
        "payload_size": record.payload_size,
        "replay": {
            "status": record.replay.status.value,
            "attempts": record.replay.attempts,
            "last_outcome": (
                None if record.replay.last_outcome is None else record.replay.last_outcome.value
            ),
        },
        **_times("created_at", record.created_at),
    }


def _destination_document(name: str, stats: DeliveryStatistics) -> dict[str, Any]:
    return {
        "name": name,
        "disabled": stats.disabled,
        "disabled_reason": stats.disabled_reason,
        "breaker": None if stats.breaker is None else stats.breaker.value,
        "in_flight": stats.in_flight,
        "sent": stats.sent,
        "succeeded": stats.succeeded,
        "retried": stats.retried,
        "dead_lettered": stats.dead_lettered,
        **_times("failing_since", stats.failing_since),
    }


def _journal_document(stats: JournalStatistics) -> dict[str, Any]:
    return {
        "depth": stats.depth,
        "oldest_age": stats.oldest_age,
        "bytes": stats.bytes_used,
        "max_bytes": stats.max_bytes,
        "routes": {
            name: {"depth": r.depth, "oldest_age": r.oldest_age, "bytes": r.bytes_used}
            for name, r in sorted(stats.routes.items())
        },
    }


def _dead_letters_document(stats: StoreStatistics) -> dict[str, Any]:
    return {
        "total": stats.total,
        "by_status": dict(sorted(stats.by_status.items())),
        "by_replay_status": dict(sorted(stats.by_replay_status.items())),
        "by_source": dict(sorted(stats.by_source.items())),
    }


# -- the app ----------------------------------------------------------------------------


@final
class AdminApp:
    """The node's admin API, an ASGI app (Starlette).

    The endpoints are in docs/node.md ("The admin API"). Every one but ``/healthz``
    and ``/readyz`` wants the bearer *token* when there is one; without one, those
    that change state or show a payload answer ``403 token_required``.

    Args:
        token: the bearer token (a ``str``, or a secret with ``reveal()`` such as
            :class:`~otpy.node.Secret`); ``None``: none configured.
        dead_letters: the node's dead-letter store.
        gateway: the node's gateway: its destinations, and replays go through it.
        ingest: the HTTP ingest: ``/readyz`` follows it, ``/v1/status`` shows its routes.
        journal: the ingest's journal (its statistics); the ingest's by default.
        node_name: the name ``/v1/status`` shows.
        replayer: the node's replay supervisor: replays go through its workers
            (one key at a time) instead of running in the request.
        replay_timeout: seconds the gateway may take to store a replayed message;
            past it the record is ``in_doubt``.
        lease_margin: a replay's lease is ``replay_timeout + lease_margin``: if the
            process dies mid-replay, the replay reclaimer settles the record after it.
        retry_after: the seconds a ``503`` tells the caller to wait.
        clock: the wall clock.

    Raises:
        InvalidArgument: a value is not allowed; the message names it.
        InvalidArgumentType: a value has the wrong type.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        *,
        token: object | None,
        dead_letters: DeadLetterStore,
        gateway: Gateway | None = None,
        ingest: IngestApp | None = None,
        journal: JournalStore | None = None,
        node_name: str = "otpy",
        replayer: Replayer | None = None,
        replay_timeout: float = 30.0,
        lease_margin: float = 30.0,
        retry_after: int = 1,
        clock: Callable[[], float] = time.time,
    ) -> None:
        owner = "AdminApp"
        self.token = _token(token)
        for argument, value, kind, allowed in (
            ("dead_letters", dead_letters, DeadLetterStore, "a DeadLetterStore"),
            ("gateway", gateway, Gateway, "a Gateway or None"),
            ("ingest", ingest, IngestApp, "an IngestApp or None"),
            ("journal", journal, JournalStore, "a JournalStore or None"),
            ("replayer", replayer, Replayer, "a Replayer or None"),
        ):
            if value is not None and not isinstance(value, kind):
                raise InvalidArgumentType(
                    argument, f"must be {allowed}, got {type(value).__name__}", owner=owner
                )
            if value is None and argument == "dead_letters":
                raise InvalidArgumentType(argument, f"must be {allowed}, got None", owner=owner)
        self.dead_letters = dead_letters
        self.gateway = gateway
        self.ingest = ingest
        self.journal = journal if journal is not None or ingest is None else ingest.journal
        self.node_name = check_name(node_name, "node_name", owner=owner)
        self.replayer = replayer
        self.replay_timeout = number(replay_timeout, "replay_timeout", owner=owner)
        self.lease_margin = number(lease_margin, "lease_margin", owner=owner)
        self.retry_after = count(retry_after, "retry_after", owner=owner)
        self.clock = clock
        self._starlette = Starlette(
            routes=[
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
                Route("/v1/status", self._status, methods=["GET"]),
                Route("/v1/destinations", self._destinations, methods=["GET"]),
                Route("/v1/destinations/{name}/disable", self._disable, methods=["POST"]),
                Route("/v1/destinations/{name}/enable", self._enable, methods=["POST"]),
                Route("/v1/dead-letters", self._list, methods=["GET"]),
                Route("/v1/dead-letters/{id}", self._get, methods=["GET"]),
                Route("/v1/dead-letters/{id}/replay", self._replay, methods=["POST"]),
            ],
            exception_handlers={HTTPException: self._http_error},  # type: ignore[dict-item]
        )

    def __repr__(self) -> str:
        token = "token" if self.token is not None else "no token"
        return f"<AdminApp {self.node_name!r} {token}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (Starlette routes it)."""
        await self._starlette(scope, receive, send)

    # -- checks ----------------------------------------------------------------------

    def _authorize(self, request: Request, *, sensitive: bool) -> None:
        """Refuse a caller without the token; without a token, refuse *sensitive* endpoints."""
        if self.token is None:
            if sensitive:
                raise Refused(403, "token_required", _TOKEN_REQUIRED)
            return
        challenge = {"WWW-Authenticate": "Bearer"}
        scheme, _, credentials = request.headers.get("authorization", "").partition(" ")
        credentials = credentials.strip()
        if scheme.lower() != "bearer" or not credentials:
            raise Refused(
                401,
                "unauthorized",
                "Authorization: Bearer <token> is required",
                headers=challenge,
            )
        if not hmac.compare_digest(credentials.encode(), self.token.encode()):
            raise Refused(401, "unauthorized", "the bearer token is not valid", headers=challenge)

    def _unavailable(self, what: str, exc: Exception) -> Refused:
        logger.warning("admin API: %s failed: %s", what, exc)
        return Refused(
            503,
            "unavailable",
            redact(f"{what} failed: {exc}"),
            headers={"Retry-After": str(self.retry_after)},
        )

    async def _handle(
        self, request: Request, *, sensitive: bool, handler: Callable[[], Any]
    ) -> Response:
        """Authorize, run *handler*, and turn refusals and store failures into answers."""
        await anyio.lowlevel.checkpoint()
        try:
            self._authorize(request, sensitive=sensitive)
            result: Response = await handler()
        except Refused as exc:
            return exc.response()
        except CorruptRecord as exc:
            return Refused(500, "corrupt_record", redact(str(exc))).response()
        except (DeadLetterStoreError, OutboxError, JournalError) as exc:
            return self._unavailable(request.url.path, exc).response()
        return result

    # -- probes ----------------------------------------------------------------------

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        await anyio.lowlevel.checkpoint()
        error = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        return JSONResponse(
            {"error": error, "detail": exc.detail}, status_code=exc.status_code, headers=exc.headers
        )

    async def _healthz(self, request: Request) -> Response:
        await anyio.lowlevel.checkpoint()
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        await anyio.lowlevel.checkpoint()
        ingest = self.ingest
        if ingest is not None and (ingest.draining or not ingest.ready):
            stopping = ingest.draining
            return Refused(
                503,
                "draining" if stopping else "not_ready",
                "the node is stopping" if stopping else "the node is starting",
                headers={"Retry-After": str(ingest.retry_after)},
            ).response()
        return JSONResponse({"status": "ready"})

    # -- status, destinations --------------------------------------------------------

    async def _status(self, request: Request) -> Response:
        async def status() -> Response:
            doc: dict[str, Any] = {"node": self.node_name, "version": __version__}
            ingest = self.ingest
            doc["ingest"] = (
                None
                if ingest is None
                else {
                    "ready": ingest.ready and not ingest.draining,
                    "draining": ingest.draining,
                    "in_flight": ingest.in_flight,
                    "routes": {
                        name: {"pending": ingest.pending(name), "level": ingest.level(name).label}
                        for name in sorted(ingest.routes)
                    },
                }
            )
            journal = self.journal
            doc["journal"] = (
                None if journal is None else _journal_document(await journal.statistics())
            )
            doc["gateway"] = (
                None if self.gateway is None else {"destinations": self._destination_documents()}
            )
            doc["dead_letters"] = _dead_letters_document(await self.dead_letters.statistics())
            return JSONResponse(doc)

        return await self._handle(request, sensitive=False, handler=status)

    def _destination_documents(self) -> list[dict[str, Any]]:
        if self.gateway is None:
            return []
        stats = self.gateway.statistics().destinations
        return [_destination_document(name, stats[name]) for name in sorted(stats)]

    async def _destinations(self, request: Request) -> Response:
        async def destinations() -> Response:
            await anyio.lowlevel.checkpoint()
            return JSONResponse({"destinations": self._destination_documents()})

        return await self._handle(request, sensitive=False, handler=destinations)

    async def _disable(self, request: Request) -> Response:
        return await self._switch(request, enable=False)

    async def _enable(self, request: Request) -> Response:
        return await self._switch(request, enable=True)

    async def _switch(self, request: Request, *, enable: bool) -> Response:
        name: str = request.path_params["name"]

        async def switch() -> Response:
            gateway = self.gateway
            if gateway is None or name not in gateway.statistics().destinations:
                raise Refused(404, "unknown_destination", f"no destination {name[:200]!r}")
            try:
                await (gateway.enable if enable else gateway.disable)(name)
            except UnknownDestination:  # pragma: no cover - checked just above
                raise Refused(404, "unknown_destination", f"no destination {name!r}") from None
            logger.info("admin API: destination %s %s", name, "enabled" if enable else "disabled")
            stats = gateway.statistics().destinations[name]
            return JSONResponse(_destination_document(name, stats))

        return await self._handle(request, sensitive=True, handler=switch)

    # -- dead letters ----------------------------------------------------------------

    async def _list(self, request: Request) -> Response:
        async def listing() -> Response:
            query = request.query_params
            limit = _limit(query.get("limit"))
            cursor = query.get("cursor") or None
            if cursor is not None and not _ID.fullmatch(cursor):
                raise Refused(
                    400,
                    "bad_cursor",
                    f"cursor must be a next_cursor from a page, got {cursor[:40]!r}",
                )
            where = _filter(source=query.get("source"), key=query.get("key"))
            page = await self.dead_letters.list(where, limit=limit, cursor=cursor)
            return JSONResponse(
                {
                    "records": [summary_document(r) for r in page.records],
                    "next_cursor": page.next_cursor,
                    "corrupt": [{"id": c.record_id, "error": redact(str(c))} for c in page.corrupt],
                }
            )

        return await self._handle(request, sensitive=False, handler=listing)

    async def _get(self, request: Request) -> Response:
        record_id: str = request.path_params["id"]

        async def get() -> Response:
            try:
                record = await self.dead_letters.get(record_id)
            except DeadLetterNotFound:
                raise _not_found(record_id) from None
            return JSONResponse(record_document(record, payload=True))

        return await self._handle(request, sensitive=True, handler=get)

    async def _replay(self, request: Request) -> Response:
        record_id: str = request.path_params["id"]

        async def replay() -> Response:
            outcome, record, error = await self._replay_one(record_id)
            if outcome is ReplayOutcome.IN_PROGRESS:
                raise Refused(
                    409,
                    "in_progress",
                    f"dead letter {record_id} is being replayed now (or another record with "
                    "its idempotency key is): wait for its outcome",
                )
            if outcome is ReplayOutcome.REJECTED_ARCHIVED:
                raise Refused(
                    409, "archived", f"dead letter {record_id} is archived: it is never replayed"
                )
            return JSONResponse(
                {
                    "id": record_id,
                    "outcome": outcome.value,
                    "error": _text(error),
                    "record": None if record is None else summary_document(record),
                }
            )

        return await self._handle(request, sensitive=True, handler=replay)

    async def _replay_one(
        self, record_id: str
    ) -> tuple[ReplayOutcome, DeadLetter | None, str | None]:
        """Replay *record_id*; return the outcome, the record after it, and the error."""
        store = self.dead_letters
        if not _ID.fullmatch(record_id):
            raise _not_found(record_id)
        page = await store.list(DeadLetterFilter(ids=(record_id,)), limit=1)
        if page.corrupt:
            raise page.corrupt[0]
        if not page.records:
            raise _not_found(record_id)
        if self.replayer is not None:
            try:
                result = await self.replayer.replay(record_id, timeout=self.replay_timeout * 2)
            except DeadLetterNotFound:
                raise _not_found(record_id) from None
            except NoReplayHandler as exc:
                raise Refused(409, "no_replay_handler", str(exc)) from None
            if result.outcome is None:
                raise Refused(
                    503,
                    "no_outcome",
                    redact(result.error or "the replay got no outcome"),
                    headers={"Retry-After": str(self.retry_after)},
                )
            return result.outcome, result.record, result.error
        source = page.records[0].source
        if self.gateway is None or source is not Source.OUTBOUND:
            raise Refused(
                409,
                "no_replay_handler",
                f"dead letter {record_id} comes from {source.value!r}: the admin API replays "
                "outbound dead letters through the gateway, and "
                + ("this node has no gateway" if self.gateway is None else "this is not one"),
            )
        # From the lease on, the replay finishes even if the caller goes away: a request
        # cancelled mid-replay would leave the record to the reclaimer, in doubt.
        with anyio.CancelScope(shield=True):
            answer = await self._replay_here(store, record_id)
        return answer

    async def _replay_here(
        self, store: DeadLetterStore, record_id: str
    ) -> tuple[ReplayOutcome, DeadLetter | None, str | None]:
        lease = self.replay_timeout + self.lease_margin
        try:
            if isinstance(store, ReplayStarter):
                # The lease and the key's pending entry in one step (DL-8).
                decision = await store.start_replay(record_id, lease=lease)
            else:
                decision = await store.begin_replay(record_id, lease=lease)
        except DeadLetterNotFound:
            raise _not_found(record_id) from None
        if decision.action is not Action.PROCEED:
            assert decision.outcome is not None
            return decision.outcome, decision.record, None
        record = decision.record
        if not isinstance(store, ReplayStarter):
            record = await store.get(record_id)
            if not await store.mark_started(record):
                # Another record's replay holds the key: nothing is sent.
                held = "another record's replay of the same idempotency key holds it"
                final = await store.finish(record_id, ReplayOutcome.FAILED, error=held)
                return ReplayOutcome.IN_PROGRESS, final, held
        outcome, error = await self._send(record)
        final = await store.finish(record_id, outcome, error=error)
        if outcome is not ReplayOutcome.REPLAYED:
            logger.warning(
                "admin API: replay of dead letter %s: %s (%s)", record_id, outcome, error
            )
        return outcome, final, error

    async def _send(self, record: DeadLetter) -> tuple[ReplayOutcome, str | None]:
        """Hand *record* to the gateway, as a replay handler; the outcome and the error."""
        gateway = self.gateway
        assert gateway is not None
        try:
            with anyio.move_on_after(self.replay_timeout) as scope:
                await gateway.replay(record, record.replay_key)
        except ReplayOutcomeUnknown as exc:
            return ReplayOutcome.IN_DOUBT, _describe(exc)
        except Exception as exc:
            return ReplayOutcome.FAILED, _describe(exc)
        if scope.cancelled_caught:
            return ReplayOutcome.IN_DOUBT, (
                f"the gateway did not answer within {self.replay_timeout:g}s: the message "
                "may be in its outbox"
            )
        return ReplayOutcome.REPLAYED, None


def _describe(exc: BaseException) -> str:
    message = str(exc)
    name = type(exc).__name__
    return redact(f"{name}: {message}"[:500] if message else name)


def _not_found(record_id: str) -> Refused:
    return Refused(404, "not_found", f"no dead letter {record_id[:40]!r}")


def _limit(value: str | None) -> int:
    if value is None:
        return DEFAULT_LIMIT
    if not value.isdigit() or not 1 <= int(value) <= MAX_LIMIT:
        raise Refused(
            400, "bad_limit", f"limit must be an integer from 1 to {MAX_LIMIT}, got {value[:40]!r}"
        )
    return int(value)


def _filter(*, source: str | None, key: str | None) -> DeadLetterFilter:
    if source is not None and source not in {s.value for s in Source}:
        allowed = ", ".join(s.value for s in Source)
        raise Refused(400, "bad_source", f"source must be one of {allowed}, got {source[:40]!r}")
    try:
        return DeadLetterFilter(source=source, key=key or None)
    except (InvalidArgument, InvalidArgumentType) as exc:
        raise Refused(400, "bad_request", str(exc)) from None


# -- the server -------------------------------------------------------------------------


@final
class AdminServer(Actor):
    """Serves an :class:`AdminApp` over HTTP with Hypercorn, as one supervised actor.

    ``init(app, host, port, graceful_timeout)``: binds (so the port is known, port 0
    included) and starts serving. A crash of the server task crashes the actor, and
    its supervisor restarts it (binding again). A stop lets the requests in flight
    finish within *graceful_timeout*. A call ``"address"`` answers ``(host, port)``,
    the port bound.

    .. versionadded:: 0.2.0
    """

    app: AdminApp
    address: tuple[str, int]

    async def init(
        self,
        app: AdminApp,
        host: str = "127.0.0.1",
        port: int = DEFAULT_ADMIN_PORT,
        graceful_timeout: float = 3.0,
    ) -> None:
        """Bind ``(host, port)`` and serve."""
        self.app = app
        self._stop = anyio.Event()
        self._stopped = anyio.Event()
        sock = bind_listener(host, port)
        self.address = (host, sock.getsockname()[1])
        self.start_task(self._serve, sock, graceful_timeout, name=f"{self.ref.label} http")
        logger.info("admin API listening on http://%s:%d", *self.address)

    async def _serve(self, sock: socket.socket, graceful_timeout: float) -> None:
        try:
            await serve_asgi(
                self.app,
                sock,
                shutdown_trigger=self._stop.wait,
                graceful_timeout=graceful_timeout,
                read_timeout=ADMIN_READ_TIMEOUT,
                errorlog=hypercorn_logger,
            )
        finally:
            self._stopped.set()

    async def terminate(self, reason: object) -> None:
        """On a stop, close the listener and let the requests in flight finish."""
        if is_normal_exit(reason):
            self._stop.set()
            await self._stopped.wait()

    async def handle_call(self, message: Any, caller: Any) -> Any:
        """``"address"``: the ``(host, port)`` the server listens on."""
        if message == "address":
            return self.address
        return await super().handle_call(message, caller)

    def format_status(self) -> Mapping[str, object]:
        """Where it listens; never the token."""
        return {"address": f"{self.address[0]}:{self.address[1]}"}


def admin_server_spec(
    app: AdminApp,
    *,
    host: str = "127.0.0.1",
    port: int = DEFAULT_ADMIN_PORT,
    id: str = "admin",
    name: str | None = "admin",
    shutdown: float = 5.0,
    graceful_timeout: float = 3.0,
) -> ChildSpec:
    """The :class:`AdminServer` child that serves *app* on ``host:port``.

    Args:
        app: the app to serve.
        host: the address to listen on (loopback by default).
        port: the port; 0 picks a free one (ask the actor ``"address"``).
        id: the child's id.
        name: the name it is registered under, or ``None``.
        shutdown: seconds a stop may take before the supervisor cancels it.
        graceful_timeout: seconds the requests in flight get once stopping
            (less than *shutdown*).

    Raises:
        InvalidArgument: a value is not allowed; the message names it.

    .. versionadded:: 0.2.0
    """
    function = "admin_server_spec"
    if not isinstance(app, AdminApp):
        raise InvalidArgumentType(
            "app", f"must be an AdminApp, got {type(app).__name__}", owner=function
        )
    check_name(host, "host", owner=function)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise InvalidArgument("port", f"must be an int in [0, 65535], got {port!r}", owner=function)
    number(graceful_timeout, "graceful_timeout", owner=function)
    return ChildSpec(
        id=id,
        start=AdminServer,
        args=(app, host, port, graceful_timeout),
        name=name,
        shutdown=shutdown,
    )
