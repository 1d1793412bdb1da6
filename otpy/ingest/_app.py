"""The HTTP ingest: a Starlette app that journals each message before it answers ``202``.

``POST /v1/routes/{route}/messages`` takes the raw body as one message;
``POST /v1/routes/{route}/batch`` takes JSON lines, one message a line, accepted in
one journal call. A message is answered ``202`` only once
:meth:`~otpy.ingest.JournalStore.accept` has returned (it is durable), ``200`` for a
repeat within the dedup window. Refusals are JSON ``{"error": ..., "detail": ...}``
with the status that says what to do (docs/ingest.md, "The HTTP ingest").

Route pressure is the route's pending depth in the journal against its capacity,
through :func:`~otpy.pressure.advance` (the levels and hysteresis every bounded
queue uses) and :func:`~otpy.pressure.admit`. The depth is kept in memory: raised
on accept, lowered by :meth:`IngestApp.handed_over`, which the hand-over calls once
it has marked entries handed over; no request reads the journal's statistics.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hmac
import json
import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Final, Protocol, final

import anyio
import anyio.lowlevel
import attrs
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from .._check import count, number
from .._check import name as check_name
from .._exceptions import InvalidArgument, InvalidArgumentType, JournalFull, SignatureError
from .._redact import get_logger
from ..deadletter import redact_headers
from ..gateway import DEFAULT_TOLERANCE, ID_HEADER, SigningSecret, verify
from ..pressure import Level, LevelState, PressurePolicy, Priority, Verdict, admit, advance
from ..telemetry import (
    ATTR_ERROR_TYPE,
    ATTR_INGEST_DUPLICATE,
    ATTR_INGEST_REASON,
    ATTR_INGEST_ROUTE,
    ATTR_MESSAGING_DESTINATION_NAME,
    ATTR_MESSAGING_MESSAGE_ID,
    ATTR_MESSAGING_OPERATION_NAME,
    ATTR_MESSAGING_OPERATION_TYPE,
    ATTR_MESSAGING_SYSTEM,
    METRIC_INGEST_ACCEPTED,
    METRIC_INGEST_DUPLICATES,
    METRIC_INGEST_REFUSED,
    SPAN_INGEST_RECEIVE,
    cached_counter,
    get_tracer,
    providers_set,
)
from ._journal import JournalEntry, JournalStore, check_priority
from ._message import IngestMessage, SubmitResult

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue
    from starlette.types import Receive, Scope, Send

    from ._journal import Accepted

__all__ = [
    "DEFAULT_MAX_BATCH_SIZE",
    "DEFAULT_MAX_BODY_SIZE",
    "IngestApp",
    "IngestRoute",
    "RouteSettings",
]

logger = get_logger("otpy.ingest")

DEFAULT_MAX_BODY_SIZE: Final = 1_048_576
"""The largest message body accepted unless a route says: 1 MiB."""

DEFAULT_MAX_BATCH_SIZE: Final = 16 * 1_048_576
"""The largest batch request accepted (all its lines): 16 MiB."""

MAX_KEY_LENGTH: Final = 256
"""The longest ordering key or idempotency key accepted, in characters.

An idempotency key is kept in the dedup table for the whole window, and neither
key counts against the journal's budget: without a bound, one request could store
megabytes outside it."""

KEY_HEADER: Final = "x-otpy-key"
PRIORITY_HEADER: Final = "x-otpy-priority"
IDEMPOTENCY_HEADER: Final = "idempotency-key"

# Headers never kept with an entry: the transport's, the ones the entry holds in its
# own fields, and the trace context (the entry's is the receive span's).
_DROPPED: Final = frozenset(
    {
        "host",
        "content-length",
        "content-type",
        "connection",
        "keep-alive",
        "transfer-encoding",
        "te",
        "trailer",
        "upgrade",
        "expect",
        "proxy-connection",
        "traceparent",
        "tracestate",
        IDEMPOTENCY_HEADER,
        KEY_HEADER,
        PRIORITY_HEADER,
    }
)

_LINE_FIELDS: Final = frozenset(
    {"body", "body_base64", "key", "idempotency_key", "priority", "content_type"}
)
SOURCE_LINE_FIELDS: Final = _LINE_FIELDS | {"route"}
"""A source's JSON line: the batch endpoint's fields, and the route it goes to."""
_TEXT_FIELDS: Final = (
    "body",
    "body_base64",
    "key",
    "idempotency_key",
    "priority",
    "content_type",
    "route",
)

_propagator = TraceContextTextMapPropagator()

_accepted_counter = cached_counter(
    METRIC_INGEST_ACCEPTED, unit="{message}", description="Messages journalled, by route."
)
_duplicate_counter = cached_counter(
    METRIC_INGEST_DUPLICATES,
    unit="{message}",
    description="Repeats answered with the original's id, by route.",
)
_refused_counter = cached_counter(
    METRIC_INGEST_REFUSED,
    unit="{message}",
    description="Messages or requests refused, by route and reason.",
)


# -- routes -----------------------------------------------------------------------------


class RouteSettings(Protocol):
    """What :meth:`IngestRoute.of` reads: the fields of ``otpy.node.RouteConfig``."""

    @property
    def name(self) -> str: ...
    @property
    def priority(self) -> Priority: ...
    @property
    def max_body_size(self) -> int | None: ...
    @property
    def token(self) -> Any: ...  # a Secret, with reveal(), or None
    @property
    def signing_secrets(self) -> tuple[SigningSecret, ...]: ...
    @property
    def tolerance(self) -> float: ...
    @property
    def pressure(self) -> Any: ...  # capacity, and policy()


def _token(value: object) -> str | None:
    if value is None:
        return None
    reveal = getattr(value, "reveal", None)
    if callable(reveal):
        value = reveal()
    if not isinstance(value, str) or not value:
        raise InvalidArgumentType(
            "token", f"must be a non-empty str, a Secret or None, got {type(value).__name__}"
        )
    return value


def _secrets(value: object) -> tuple[SigningSecret, ...]:
    if isinstance(value, SigningSecret):
        return (value,)
    if not isinstance(value, (list, tuple)) or not all(isinstance(s, SigningSecret) for s in value):
        raise InvalidArgumentType(
            "signing_secrets", "must be a sequence of SigningSecret", owner="IngestRoute"
        )
    return tuple(value)


def _route_name(_inst: object, _attribute: attrs.Attribute[str], value: str) -> None:
    check_name(value, "name", owner="IngestRoute")


def _route_priority(value: object) -> Priority:
    return check_priority(value, owner="IngestRoute")


def _tolerance(value: object) -> float:
    return number(value, "tolerance", owner="IngestRoute", positive=False)


def _capacity(value: object) -> int:
    return count(value, "capacity", owner="IngestRoute")


def _optional_size(value: object) -> int | None:
    return None if value is None else count(value, "max_body_size", owner="IngestRoute")


@attrs.frozen(kw_only=True)
class IngestRoute:
    """One route of the HTTP ingest: who may post to it, how much, and its pressure.

    Attributes:
        name: the route's name, the ``{route}`` of its URLs.
        priority: the priority of its messages when a request names none.
        max_body_size: the largest body, bytes (``None``: the app's).
        token: the bearer token its callers present (``None``: the app's).
        signing_secrets: Standard Webhooks secrets a request's signature is
            verified with (any one is enough); none: not verified.
        tolerance: how far a signed request's timestamp may be from now, seconds.
        capacity: the pending depth its pressure ratio is measured against.
        policy: its pressure levels and what each level refuses.

    Raises:
        InvalidArgument: a value is not allowed; the message names it.
        InvalidArgumentType: a value has the wrong type.

    .. versionadded:: 0.2.0
    """

    name: str = attrs.field(validator=_route_name)
    priority: Priority = attrs.field(default=Priority.NORMAL, converter=_route_priority)
    max_body_size: int | None = attrs.field(default=None, converter=_optional_size)
    token: str | None = attrs.field(default=None, converter=_token, repr=False)
    signing_secrets: tuple[SigningSecret, ...] = attrs.field(
        default=(), converter=_secrets, repr=False
    )
    tolerance: float = attrs.field(
        default=DEFAULT_TOLERANCE,
        converter=_tolerance,
    )
    capacity: int = attrs.field(default=1000, converter=_capacity)
    policy: PressurePolicy = attrs.field(factory=PressurePolicy)

    @classmethod
    def of(cls, settings: RouteSettings) -> IngestRoute:
        """Build the route a node's ``RouteConfig`` describes (its fields, by name)."""
        return cls(
            name=settings.name,
            priority=settings.priority,
            max_body_size=settings.max_body_size,
            token=settings.token,
            signing_secrets=settings.signing_secrets,
            tolerance=settings.tolerance,
            capacity=settings.pressure.capacity,
            policy=settings.pressure.policy(),
        )


def _routes(value: object) -> dict[str, IngestRoute]:
    items: Iterable[object]
    if isinstance(value, Mapping):
        items = value.values()
    elif isinstance(value, Iterable) and not isinstance(value, (str, bytes)):
        items = value
    else:
        raise InvalidArgumentType(
            "routes", "must be IngestRoute or RouteConfig objects", owner="IngestApp"
        )
    routes: dict[str, IngestRoute] = {}
    for item in items:
        route = item if isinstance(item, IngestRoute) else IngestRoute.of(item)  # type: ignore[arg-type]
        if route.name in routes:
            raise InvalidArgument(
                "routes",
                f"must name each route once; {route.name!r} is given twice",
                owner="IngestApp",
            )
        routes[route.name] = route
    return routes


@final
class _Pressure:
    """A route's pending depth and level; the level moves only when the depth does.

    ``reserved`` counts the messages admitted but not yet answered by the journal
    (a commit in progress, the lines of a batch): they count towards the level and
    the capacity, so concurrent requests, or a batch's lines, cannot all pass a
    level that only their sum reaches.
    """

    __slots__ = ("capacity", "pending", "policy", "reserved", "state")

    def __init__(self, route: IngestRoute) -> None:
        self.capacity = route.capacity
        self.policy = route.policy
        self.pending = 0
        self.reserved = 0
        self.state = LevelState()

    @property
    def depth(self) -> int:
        return self.pending + self.reserved

    def observe(self) -> Level:
        self.state = advance(
            self.policy, self.state, self.depth / self.capacity, anyio.current_time()
        )
        return self.state.level


# -- refusals ---------------------------------------------------------------------------


class Refused(Exception):
    """A request or a batch line refused: its status, reason and detail."""

    def __init__(
        self, status: int, reason: str, detail: str, *, retry_after: int | None = None
    ) -> None:
        super().__init__(detail)
        self.status = status
        self.reason = reason
        self.detail = detail
        self.retry_after = retry_after

    def response(self) -> JSONResponse:
        headers = {} if self.retry_after is None else {"Retry-After": str(self.retry_after)}
        return JSONResponse(
            {"error": self.reason, "detail": self.detail}, status_code=self.status, headers=headers
        )


@attrs.frozen
class _Message:
    """A message parsed from a request or a batch line, not yet journalled."""

    entry: JournalEntry
    span: Span | None


# -- the app ----------------------------------------------------------------------------


@final
class IngestApp:
    """The node's HTTP ingest, an ASGI app (Starlette): journal first, then ``202``.

    The endpoints, headers and statuses are in docs/ingest.md ("The HTTP ingest").
    It starts not ready (``/readyz`` and the message endpoints answer ``503``) until
    :meth:`set_ready`; :meth:`drain` makes it answer ``503`` again and waits for the
    requests in flight. :class:`IngestServer` does both.

    Args:
        journal: where accepted messages go.
        routes: the routes, :class:`IngestRoute` or ``otpy.node.RouteConfig``
            objects (a sequence, or a mapping of them).
        token: the bearer token callers present unless a route has its own
            (a ``str`` or a secret with ``reveal()``); ``None``: none asked.
        max_body_size: the largest message body, unless a route says.
        max_batch_size: the largest batch request (all its lines).
        retry_after: the seconds a ``429`` or ``503`` tells the caller to wait.
        on_accepted: called with the entries stored by each journal call (not the
            duplicates), after the commit; the hand-over may wake on it.
        clock: the wall clock: entries' ``received_at``, signatures' ``now``.

    Raises:
        InvalidArgument: an option is not allowed; the message names it.

    .. versionadded:: 0.2.0
    """

    def __init__(
        self,
        journal: JournalStore,
        routes: Iterable[IngestRoute] | Mapping[str, Any],
        *,
        token: object = None,
        max_body_size: int = DEFAULT_MAX_BODY_SIZE,
        max_batch_size: int = DEFAULT_MAX_BATCH_SIZE,
        retry_after: int = 1,
        on_accepted: Callable[[Sequence[JournalEntry]], object] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        owner = "IngestApp"
        if not isinstance(journal, JournalStore):
            raise InvalidArgumentType("journal", "must be a JournalStore", owner=owner)
        self.journal = journal
        self.routes = _routes(routes)
        self.token = _token(token)
        self.max_body_size = count(max_body_size, "max_body_size", owner=owner)
        self.max_batch_size = count(max_batch_size, "max_batch_size", owner=owner)
        self.retry_after = count(retry_after, "retry_after", owner=owner)
        self.on_accepted = on_accepted
        self.clock = clock
        self._pressure = {name: _Pressure(route) for name, route in self.routes.items()}
        self.ready = False
        self.draining = False
        self._in_flight = 0
        self._idle: anyio.Event | None = None  # set when the last request in flight ends
        self._starlette = Starlette(
            routes=[
                Route("/v1/routes/{route}/messages", self._messages, methods=["POST"]),
                Route("/v1/routes/{route}/batch", self._batch, methods=["POST"]),
                Route("/healthz", self._healthz, methods=["GET"]),
                Route("/readyz", self._readyz, methods=["GET"]),
            ],
            exception_handlers={HTTPException: self._http_error},  # type: ignore[dict-item]
        )

    def __repr__(self) -> str:
        state = "draining" if self.draining else "ready" if self.ready else "not ready"
        return f"<IngestApp {state} routes={sorted(self.routes)}>"

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Serve one ASGI connection scope (Starlette routes it)."""
        await self._starlette(scope, receive, send)

    # -- lifecycle, pending depth ---------------------------------------------------

    def set_ready(self) -> None:
        """Start answering the message endpoints (and ``/readyz`` with ``200``)."""
        self.ready = True

    async def drain(self) -> None:
        """Answer ``503`` to new requests from now on; return once those in flight have finished."""
        self.draining = True
        await anyio.lowlevel.checkpoint()
        while self._idle is not None:
            await self._idle.wait()

    @property
    def in_flight(self) -> int:
        """The message requests being handled now."""
        return self._in_flight

    def pending(self, route: str) -> int:
        """The depth *route*'s pressure level is measured on: its entries not yet handed over, and its messages admitted and waiting for the journal's answer."""
        return self._pressure[route].depth

    def level(self, route: str) -> Level:
        """*route*'s pressure level now (brought up to date with ``min_dwell`` first)."""
        return self._pressure[route].observe()

    def handed_over(self, route: str, count: int = 1) -> None:
        """The hand-over's hook: *count* entries of *route* left the journal.

        Call it after :meth:`~otpy.ingest.JournalStore.mark_handed_over` with the
        number of the route's entries it deleted. The route's pending depth falls by
        that much (never below 0), and its pressure level follows. An unknown
        route is ignored (an entry of a route since removed from the config).
        """
        pressure = self._pressure.get(route)
        if pressure is None or count <= 0:
            return
        pressure.pending = max(pressure.pending - count, 0)
        pressure.observe()

    def set_pending(self, depths: Mapping[str, int]) -> None:
        """Set the routes' pending depths from the journal, as its statistics give them.

        :class:`IngestServer` calls it once at start, with the entries left from
        before a restart; routes not named have 0.
        """
        for name, pressure in self._pressure.items():
            pressure.pending = max(int(depths.get(name, 0)), 0)
            pressure.observe()

    async def load_pending(self) -> None:
        """Read the pending depths from the journal's statistics (one scan), for :meth:`set_pending`."""
        stats = await self.journal.statistics()
        self.set_pending({name: r.depth for name, r in stats.routes.items()})

    # -- other sources ----------------------------------------------------------------

    async def submit(self, messages: Sequence[IngestMessage]) -> list[SubmitResult]:
        """Journal *messages* from a source other than HTTP, as the batch endpoint would.

        Each message goes through the checks an HTTP request's does, in the same
        order: its route exists (``404 unknown_route``), its body is within the
        route's limit (``413 too_large``), the route's pressure admits its priority
        (``429 shed``, ``deferred``, ``route_full``; the messages admitted before it
        in the call count), its keys are at most 256 characters (``400
        bad_request``). Those admitted are accepted in one journal call, so a
        :exc:`~otpy.JournalFull` refuses them all (``429 journal_full``). Then, as
        for HTTP: the routes' pending depths rise, ``on_accepted`` is called with
        the entries stored, each message has its ``receive {route}`` span, and the
        accepted, duplicates and refusals are counted.

        A refusal is a result, not an exception, so a batch load reports each
        message. The app need not be ready (readiness and draining are the HTTP
        server's), and there is no token or signature to check: whoever runs a
        source can write the journal anyway.

        Args:
            messages: the messages, of any routes, in order.

        Returns:
            One :class:`SubmitResult` per message, in order.

        Raises:
            InvalidArgumentType: *messages* holds something else than an
                :class:`IngestMessage`.
            JournalError: the journal failed (a closed or broken store); nothing
                was acknowledged.

        .. versionadded:: 0.2.0
        """
        await anyio.lowlevel.checkpoint()
        messages = list(messages)
        for message in messages:
            if not isinstance(message, IngestMessage):
                raise InvalidArgumentType(
                    "messages",
                    f"must hold IngestMessage objects, got {type(message).__name__}",
                    owner="IngestApp.submit",
                )
        now = self.clock()
        results: list[SubmitResult | None] = [None] * len(messages)
        admitted: dict[str, int] = {}
        prepared: list[tuple[int, _Message]] = []
        for index, message in enumerate(messages):
            route = self.routes.get(message.route)
            try:
                if route is None:
                    raise Refused(404, "unknown_route", f"no route {message.route!r}")
                prepared.append((index, self._prepare(route, message, now)))
            except Refused as exc:
                _count_refused(None if route is None else route.name, exc.reason)
                results[index] = _refusal(exc)
                continue
            admitted[route.name] = admitted.get(route.name, 0) + 1
        if prepared:
            try:
                answers = await self._journal([m for _, m in prepared])
            except Refused as exc:
                for route_name, n in admitted.items():
                    _count_refused(route_name, exc.reason, n)
                for index, _ in prepared:
                    results[index] = _refusal(exc)
            else:
                for (index, _), answer in zip(prepared, answers, strict=True):
                    results[index] = SubmitResult(
                        status=200 if answer.duplicate else 202,
                        id=answer.id,
                        duplicate=answer.duplicate,
                    )
        return [result for result in results if result is not None]

    def _prepare(self, route: IngestRoute, message: IngestMessage, now: float) -> _Message:
        """Check *message* against its route (size, pressure, keys) and build its entry."""
        limit = route.max_body_size if route.max_body_size is not None else self.max_body_size
        if len(message.body) > limit:
            raise Refused(
                413, "too_large", f"the body is {len(message.body)} bytes, over the {limit} allowed"
            )
        priority = route.priority if message.priority is None else message.priority
        self._admit(route, priority)
        try:
            return self._entry(
                route,
                message.body,
                now=now,
                key=message.key,
                idempotency_key=message.idempotency_key,
                priority=priority,
                content_type=message.content_type,
                headers=_kept(message.headers),
                parent=None,
            )
        except BaseException:
            self._release([route.name])
            raise

    # -- handlers --------------------------------------------------------------------

    async def _http_error(self, request: Request, exc: HTTPException) -> Response:
        await anyio.lowlevel.checkpoint()
        reason = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "bad_request")
        # Labelled with the route only if it is one of ours: a label per path a
        # scanner tries would be a metric series each.
        route = request.path_params.get("route")
        _count_refused(route if route in self.routes else None, reason)
        return JSONResponse(
            {"error": reason, "detail": exc.detail},
            status_code=exc.status_code,
            headers=exc.headers,
        )

    async def _healthz(self, request: Request) -> Response:
        await anyio.lowlevel.checkpoint()
        return JSONResponse({"status": "ok"})

    async def _readyz(self, request: Request) -> Response:
        await anyio.lowlevel.checkpoint()
        refused = self._unavailable()
        if refused is not None:
            return refused.response()
        return JSONResponse({"status": "ready"})

    def _unavailable(self) -> Refused | None:
        if self.draining:
            return Refused(503, "draining", "the node is stopping", retry_after=self.retry_after)
        if not self.ready:
            return Refused(503, "not_ready", "the node is starting", retry_after=self.retry_after)
        return None

    async def _messages(self, request: Request) -> Response:
        return await self._handle(request, batch=False)

    async def _batch(self, request: Request) -> Response:
        return await self._handle(request, batch=True)

    async def _handle(self, request: Request, *, batch: bool) -> Response:
        route_name = request.path_params["route"]
        refused = self._unavailable()
        if refused is not None:
            return self._refuse(refused, route_name if route_name in self.routes else None)
        self._in_flight += 1
        if self._idle is None:
            self._idle = anyio.Event()
        try:
            route = self.routes.get(route_name)
            if route is None:
                raise Refused(404, "unknown_route", f"no route {route_name!r}")
            try:
                return await (self._batch_request if batch else self._one)(request, route)
            except Refused as exc:
                return self._refuse(exc, route.name)
        except Refused as exc:
            return self._refuse(exc, None)
        finally:
            self._in_flight -= 1
            if self._in_flight == 0 and self._idle is not None:
                self._idle.set()
                self._idle = None

    def _refuse(self, refused: Refused, route: str | None, n: int = 1) -> Response:
        _count_refused(route, refused.reason, n)
        return refused.response()

    # -- checks shared by both endpoints ---------------------------------------------

    def _authorize(self, request: Request, route: IngestRoute) -> None:
        expected = route.token if route.token is not None else self.token
        if expected is None:
            return
        given = request.headers.get("authorization", "")
        scheme, _, credentials = given.partition(" ")
        if scheme.lower() != "bearer" or not credentials:
            raise Refused(401, "unauthorized", "Authorization: Bearer <token> is required")
        if not hmac.compare_digest(credentials.strip().encode(), expected.encode()):
            raise Refused(401, "unauthorized", "the bearer token is not valid for this route")

    async def _read(self, request: Request, limit: int) -> bytes:
        """The request body, refused with 413 as soon as it passes *limit* (never buffered past it)."""
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise Refused(
                413, "too_large", f"the body is {declared} bytes, over the {limit} allowed"
            )
        chunks: list[bytes] = []
        size = 0
        try:
            async with contextlib.aclosing(request.stream()) as stream:
                async for chunk in stream:
                    size += len(chunk)
                    if size > limit:
                        raise Refused(
                            413, "too_large", f"the body is over the {limit} bytes allowed"
                        )
                    chunks.append(chunk)
        except ClientDisconnect:
            raise Refused(400, "disconnected", "the client went away mid-body") from None
        return b"".join(chunks)

    def _verify(self, request: Request, route: IngestRoute, body: bytes) -> str | None:
        """Check the Standard Webhooks signature if the route has secrets; return the ``webhook-id``."""
        if not route.signing_secrets:
            return request.headers.get(ID_HEADER) or None
        try:
            return verify(
                route.signing_secrets,
                headers=request.headers,
                body=body,
                now=self.clock(),
                tolerance=route.tolerance,
            )
        except SignatureError as exc:
            raise Refused(401, "bad_signature", str(exc)) from None

    def _admit(self, route: IngestRoute, priority: Priority) -> None:
        """Refuse with 429 what the route's pressure level does not let in; reserve a place for the rest.

        The place is the journal's to settle (:meth:`_journal`), or the caller's to
        give back (:meth:`_release`) if the message is refused before it gets there.
        """
        pressure = self._pressure[route.name]
        level = pressure.observe()
        verdict = admit(
            pressure.policy,
            level,
            priority,
            depth=pressure.depth,
            capacity=pressure.capacity,
        ).verdict
        label = priority.name.lower()
        if verdict is Verdict.SHED:
            raise Refused(
                429,
                "shed",
                f"route {route.name!r} is at level shed: {label} priority is refused",
                retry_after=self.retry_after,
            )
        if verdict is Verdict.DEFER:
            raise Refused(
                429,
                "deferred",
                f"route {route.name!r} is at level {level.label}: {label} priority waits",
                retry_after=self.retry_after,
            )
        if verdict is Verdict.QUEUE_FULL:
            raise Refused(
                429,
                "route_full",
                f"route {route.name!r} has {pressure.capacity} messages pending, its capacity",
                retry_after=self.retry_after,
            )
        pressure.reserved += 1
        pressure.observe()

    def _release(self, routes: Iterable[str]) -> None:
        """Give back the places :meth:`_admit` reserved for messages of *routes* (one each)."""
        for name in routes:
            pressure = self._pressure[name]
            pressure.reserved = max(pressure.reserved - 1, 0)
            pressure.observe()

    def _entry(
        self,
        route: IngestRoute,
        body: bytes,
        *,
        now: float,
        key: str | None,
        idempotency_key: str | None,
        priority: Priority,
        content_type: str,
        headers: Iterable[tuple[str, str]],
        parent: otel_context.Context | None,
    ) -> _Message:
        """Build the entry, with its receive span's trace context (or the caller's, without a provider)."""
        for what, value in (("ordering key", key), ("idempotency key", idempotency_key)):
            if value is not None and len(value) > MAX_KEY_LENGTH:
                raise Refused(
                    400,
                    "bad_request",
                    f"the {what} is {len(value)} characters, over the {MAX_KEY_LENGTH} allowed",
                )
        span = _start_receive(route.name, parent)
        if span is not None:
            carrier: dict[str, str] = {}
            _propagator.inject(carrier, context=trace.set_span_in_context(span))
            trace_context: Iterable[tuple[str, str]] = carrier.items()
        else:
            trace_context = _carried(parent)
        try:
            entry = JournalEntry.new(
                route=route.name,
                body=body,
                now=now,
                key=route.name if key is None else key,
                idempotency_key=idempotency_key,
                priority=priority,
                content_type=content_type,
                headers=headers,
                trace_context=trace_context,
            )
        except (InvalidArgument, InvalidArgumentType) as exc:
            _end_span(span, error="bad_request")
            raise Refused(400, "bad_request", str(exc)) from None
        return _Message(entry, span)

    async def _journal(self, messages: Sequence[_Message]) -> list[Accepted]:
        """Accept *messages* (of any routes) in one journal call; count them and end their spans."""
        try:
            answers = await self.journal.accept([m.entry for m in messages])
        except JournalFull as exc:
            self._release(m.entry.route for m in messages)
            for message in messages:
                _end_span(message.span, error="journal_full")
            raise Refused(429, "journal_full", str(exc), retry_after=self.retry_after) from None
        except BaseException:
            self._release(m.entry.route for m in messages)
            for message in messages:
                _end_span(message.span, error="journal_error")
            raise
        stored = [m.entry for m, a in zip(messages, answers, strict=True) if not a.duplicate]
        counts: dict[str, list[int]] = {}  # route: [accepted, duplicates], in first-seen order
        for message, answer in zip(messages, answers, strict=True):
            counts.setdefault(message.entry.route, [0, 0])[1 if answer.duplicate else 0] += 1
        for route_name, (accepted, duplicates) in counts.items():
            pressure = self._pressure[route_name]
            pressure.reserved = max(pressure.reserved - accepted - duplicates, 0)
            pressure.pending += accepted
            pressure.observe()
            _count(route_name, accepted=accepted, duplicates=duplicates)
        for message, answer in zip(messages, answers, strict=True):
            _end_span(message.span, message_id=answer.id, duplicate=answer.duplicate)
        if stored and self.on_accepted is not None:
            try:
                self.on_accepted(stored)
            except Exception:
                logger.exception("the ingest's on_accepted callback failed")
        return answers

    # -- POST /v1/routes/{route}/messages ----------------------------------------------

    async def _one(self, request: Request, route: IngestRoute) -> Response:
        self._authorize(request, route)
        limit = route.max_body_size if route.max_body_size is not None else self.max_body_size
        body = await self._read(request, limit)
        webhook_id = self._verify(request, route, body)
        headers = request.headers
        priority = _header_priority(headers.get(PRIORITY_HEADER), route.priority)
        self._admit(route, priority)
        try:
            message = self._entry(
                route,
                body,
                now=self.clock(),
                key=headers.get(KEY_HEADER),
                idempotency_key=headers.get(IDEMPOTENCY_HEADER) or webhook_id,
                priority=priority,
                content_type=headers.get("content-type") or "application/octet-stream",
                headers=_kept(headers.items()),
                parent=_extract(headers),
            )
        except BaseException:
            self._release([route.name])
            raise
        [answer] = await self._journal([message])
        return JSONResponse(
            {"id": answer.id, "duplicate": answer.duplicate},
            status_code=200 if answer.duplicate else 202,
        )

    # -- POST /v1/routes/{route}/batch ---------------------------------------------------

    async def _batch_request(self, request: Request, route: IngestRoute) -> Response:
        self._authorize(request, route)
        body = await self._read(request, self.max_batch_size)
        self._verify(request, route, body)
        limit = route.max_body_size if route.max_body_size is not None else self.max_body_size
        parent = _extract(request.headers)
        headers = _kept(request.headers.items())
        now = self.clock()
        results: dict[int, dict[str, object]] = {}
        messages: list[tuple[int, _Message]] = []
        for number_, raw in enumerate(body.split(b"\n"), start=1):
            if not raw.strip():
                continue
            admitted = False
            try:
                fields = _parse_line(raw, limit, route.priority)
                self._admit(route, fields["priority"])
                admitted = True
                message = self._entry(
                    route,
                    fields["body"],
                    now=now,
                    key=fields["key"],
                    idempotency_key=fields["idempotency_key"],
                    priority=fields["priority"],
                    content_type=fields["content_type"],
                    headers=headers,
                    parent=parent,
                )
            except Refused as exc:
                if admitted:
                    self._release([route.name])
                _count_refused(route.name, exc.reason)
                results[number_] = {
                    "line": number_,
                    "status": exc.status,
                    "error": exc.reason,
                    "detail": exc.detail,
                }
                continue
            messages.append((number_, message))
        if messages:
            try:
                answers = await self._journal([m for _, m in messages])
            except Refused as exc:
                # The lines already refused were counted; count those refused now.
                return self._refuse(exc, route.name, len(messages))
            for (number_, _), answer in zip(messages, answers, strict=True):
                results[number_] = {
                    "line": number_,
                    "status": 200 if answer.duplicate else 202,
                    "id": answer.id,
                    "duplicate": answer.duplicate,
                }
        return JSONResponse({"results": [results[n] for n in sorted(results)]})


def _refusal(refused: Refused) -> SubmitResult:
    return SubmitResult(
        status=refused.status,
        error=refused.reason,
        detail=refused.detail,
        retry_after=refused.retry_after,
    )


# -- parsing ----------------------------------------------------------------------------


def _header_priority(value: str | None, default: Priority) -> Priority:
    if value is None:
        return default
    try:
        return Priority[value.strip().upper()]
    except KeyError:
        raise Refused(
            400,
            "bad_priority",
            f"X-Otpy-Priority must be low, normal, high or critical, got {value[:40]!r}",
        ) from None


def _kept(headers: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request headers worth keeping: not the transport's, not a credential or signature."""
    pairs = [(name.lower(), value) for name, value in headers if name.lower() not in _DROPPED]
    return [
        pair
        for pair, (_, redacted) in zip(pairs, redact_headers(pairs), strict=True)
        if redacted == pair[1]
    ]


def _parse_line(raw: bytes, limit: int, default: Priority) -> dict[str, Any]:
    """One batch line's fields, checked; a :class:`Refused` (400/413) says what is wrong."""
    fields = line_fields(raw, _LINE_FIELDS)
    body = fields["body"]
    if len(body) > limit:
        raise Refused(413, "too_large", f"the body is {len(body)} bytes, over the {limit} allowed")
    fields["priority"] = _header_priority(fields["priority"], default)
    return fields


def line_fields(raw: bytes, allowed: frozenset[str]) -> dict[str, Any]:
    """A JSON line's fields, their types checked and its body decoded; the priority is left a name.

    *allowed* is the fields a line may have (the batch endpoint's, or a source's, which
    adds ``route``). A :class:`Refused` (400, ``bad_json`` or ``bad_line``) says what
    is wrong.
    """
    try:
        line = json.loads(raw)
    except (ValueError, UnicodeDecodeError, RecursionError) as exc:
        # RecursionError: arrays or objects nested deeper than the parser goes.
        raise Refused(400, "bad_json", f"the line is not JSON: {exc}") from None
    if not isinstance(line, dict):
        raise Refused(400, "bad_line", f"a line must be a JSON object, got {type(line).__name__}")
    unknown = sorted(set(line) - allowed)
    if unknown:
        raise Refused(400, "bad_line", f"unknown fields {unknown}; allowed: {sorted(allowed)}")
    if ("body" in line) == ("body_base64" in line):
        raise Refused(400, "bad_line", "a line has exactly one of 'body' and 'body_base64'")
    for field in _TEXT_FIELDS:
        if field in line and not isinstance(line[field], str):
            raise Refused(
                400, "bad_line", f"{field!r} must be a string, got {type(line[field]).__name__}"
            )
    if "body" in line:
        try:
            body = line["body"].encode()
        except UnicodeEncodeError:
            raise Refused(400, "bad_line", "'body' has a lone surrogate") from None
    else:
        try:
            body = base64.b64decode(line["body_base64"], validate=True)
        except (binascii.Error, ValueError):
            raise Refused(400, "bad_line", "'body_base64' is not valid base64") from None
    return {
        "body": body,
        "key": line.get("key"),
        "idempotency_key": line.get("idempotency_key"),
        "priority": line.get("priority"),
        "content_type": line.get("content_type", "application/octet-stream"),
        "route": line.get("route"),
    }


# -- telemetry --------------------------------------------------------------------------


def _extract(headers: Mapping[str, str]) -> otel_context.Context | None:
    """The caller's trace context, from its ``traceparent``/``tracestate``, or ``None``."""
    carrier = {k: v for k in ("traceparent", "tracestate") if (v := headers.get(k)) is not None}
    if not carrier:
        return None
    context = _propagator.extract(carrier=carrier)
    if trace.get_current_span(context).get_span_context().is_valid:
        return context
    return None


def _carried(parent: otel_context.Context | None) -> list[tuple[str, str]]:
    """The caller's trace context as pairs, kept as the entry's when no span is recorded."""
    if parent is None:
        return []
    carrier: dict[str, str] = {}
    _propagator.inject(carrier, context=parent)
    return list(carrier.items())


def _start_receive(route: str, parent: otel_context.Context | None) -> Span | None:
    """Start the ``receive {route}`` CONSUMER span, a child of the caller's context, if any."""
    if not providers_set():
        return None
    try:
        attributes: dict[str, AttributeValue] = {
            ATTR_MESSAGING_SYSTEM: "otpy",
            ATTR_MESSAGING_OPERATION_NAME: SPAN_INGEST_RECEIVE,
            ATTR_MESSAGING_OPERATION_TYPE: SPAN_INGEST_RECEIVE,
            ATTR_MESSAGING_DESTINATION_NAME: route,
            ATTR_INGEST_ROUTE: route,
        }
        return get_tracer().start_span(
            f"{SPAN_INGEST_RECEIVE} {route}",
            context=parent if parent is not None else otel_context.Context(),
            kind=SpanKind.CONSUMER,
            attributes=attributes,
        )
    except Exception:
        logger.debug("could not start a receive span", exc_info=True)
        return None


def _end_span(
    span: Span | None,
    *,
    message_id: str | None = None,
    duplicate: bool = False,
    error: str | None = None,
) -> None:
    if span is None:
        return
    try:
        if span.is_recording():
            if message_id is not None:
                span.set_attribute(ATTR_MESSAGING_MESSAGE_ID, message_id)
                span.set_attribute(ATTR_INGEST_DUPLICATE, duplicate)
            if error is not None:
                span.set_attribute(ATTR_ERROR_TYPE, error)
                span.set_status(Status(StatusCode.ERROR, error))
        span.end()
    except Exception:
        logger.debug("could not end a receive span", exc_info=True)


def _count(route: str, *, accepted: int, duplicates: int) -> None:
    if not providers_set():
        return
    try:
        labels = {ATTR_INGEST_ROUTE: route}
        if accepted:
            _accepted_counter().add(accepted, labels)
        if duplicates:
            _duplicate_counter().add(duplicates, labels)
    except Exception:
        logger.debug("could not count accepted messages", exc_info=True)


def _count_refused(route: str | None, reason: str, n: int = 1) -> None:
    if not providers_set():
        return
    try:
        labels: dict[str, AttributeValue] = {ATTR_INGEST_REASON: reason}
        if route is not None:
            labels[ATTR_INGEST_ROUTE] = route
        _refused_counter().add(n, labels)
    except Exception:
        logger.debug("could not count a refusal", exc_info=True)
