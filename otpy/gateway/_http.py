"""HTTP destinations: one attempt to deliver one request, and what came of it.

:class:`HttpDestination` holds a destination's configuration and its runtime: one
``httpx.AsyncClient`` (its connection pool), a :class:`~otpy.gateway.Bulkhead` and,
optionally, a rate limiter. :meth:`HttpDestination.send` makes one attempt and
returns a :class:`DeliveryResult`; retrying, ordering and the breaker are the
caller's. This module sends HTTP, so it imports httpx: the CLI does not load it at
start-up.
"""

from __future__ import annotations

import contextlib
import re
from typing import TYPE_CHECKING, Final, final

import anyio
import attrs
import httpx

from .._check import callable_or_none, count, name, number, short
from .._exceptions import InvalidArgument, InvalidArgumentType
from .._redact import REDACTED, redact
from ..pressure import RateLimiter
from ._bulkhead import Bulkhead
from ._classify import Classifier, Outcome, classify, classify_error
from ._retry import parse_retry_after
from ._signing import ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER, SigningSecret, webhook_headers
from ._signing import _message_id as _checked_message_id
from ._telemetry import trace_headers

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence
    from types import TracebackType

__all__ = [
    "DEFAULT_EXCERPT_LIMIT",
    "IDEMPOTENCY_HEADER",
    "DeliveryResult",
    "HttpDestination",
    "OutboundRequest",
    "classify_http_error",
]

IDEMPOTENCY_HEADER: Final = "Idempotency-Key"
"""The header that carries a request's idempotency key, the same on every attempt."""

POOL_SIZE: Final = 8
"""The most connections in one httpx pool. httpcore looks at every connection of a
pool on every request (is it expired? is it idle?), so a pool of 64 costs a request
64 socket checks (encode/httpcore#928); a destination with more connections than
this spreads them over several pools, and each attempt takes the least busy one."""

DEFAULT_EXCERPT_LIMIT: Final = 1024
"""How many bytes of a response's body a :class:`DeliveryResult` keeps, by default."""

_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
_SECRET_NAME: Final = re.compile(
    r"(?i)auth|cookie|token|secret|passw|signature|api[-_]?key|access[-_]?key|session"
)
# Set by the destination for every request: a static header may not replace them.
_RESERVED: Final = frozenset(
    {
        "content-type",
        "content-length",
        "transfer-encoding",
        "host",
        IDEMPOTENCY_HEADER.lower(),
        ID_HEADER,
        TIMESTAMP_HEADER,
        SIGNATURE_HEADER,
    }
)


def _secret_header(header: str) -> bool:
    """Whether a header's *name* suggests its value is a credential."""
    return _SECRET_NAME.search(header) is not None


def _header_text(value: object, argument: str, owner: str, what: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentType(argument, f"must be a string, got {short(value)}", owner=owner)
    if not value.isascii() or any(c in value for c in "\r\n\0"):
        raise InvalidArgument(
            argument, f"{what} must be ASCII without line breaks or NUL", owner=owner
        )
    return value


def _header_pairs(value: object, owner: str) -> tuple[tuple[str, str], ...]:
    items = value.items() if hasattr(value, "items") else value
    if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
        raise InvalidArgumentType(
            "headers", f"must be pairs of (name, value) strings, got {short(value)}", owner=owner
        )
    pairs: list[tuple[str, str]] = []
    for item in items:
        if not (isinstance(item, tuple) and len(item) == 2):
            raise InvalidArgumentType(
                "headers", f"must be pairs of (name, value) strings, got {short(item)}", owner=owner
            )
        header, text = item
        if not isinstance(header, str) or not _TOKEN.fullmatch(header):
            raise InvalidArgument(
                "headers",
                f"has a bad header name {short(header)}: use letters, digits and '-'",
                owner=owner,
            )
        if header.lower() in _RESERVED:
            raise InvalidArgument(
                "headers",
                f"may not set {header!r}: the destination sets it on every request",
                owner=owner,
            )
        pairs.append((header, _header_text(text, "headers", owner, f"value of {header!r}")))
    return tuple(pairs)


def _shown(pairs: tuple[tuple[str, str], ...]) -> dict[str, str]:
    return {h: (REDACTED if _secret_header(h) else v) for h, v in pairs}


def _request_message_id(value: object) -> str:
    return _checked_message_id(value, "OutboundRequest")


def _request_headers(value: object) -> tuple[tuple[str, str], ...]:
    return _header_pairs(value, "OutboundRequest")


def _attempt(value: object) -> int:
    return count(value, "attempt", owner="OutboundRequest")


@attrs.frozen(kw_only=True, repr=False)
class OutboundRequest:
    """One attempt's request: the message's body and the keys that identify it.

    Args:
        message_id: the message's id, sent as ``webhook-id`` and signed: the same on
            every attempt (printable ASCII, no spaces, no ``'.'``).
        idempotency_key: sent as ``Idempotency-Key``, so a receiver can drop a
            duplicate: the same on every attempt (printable ASCII, no line breaks).
        body: the exact bytes to send.
        content_type: the body's media type.
        headers: more headers for this request only, as ``(name, value)`` pairs.
        attempt: which attempt this is, counting from 1.

    Raises:
        InvalidArgument: a field is not allowed; the message names it.
    """

    message_id: str = attrs.field(converter=_request_message_id)
    idempotency_key: str = attrs.field()
    body: bytes = attrs.field()
    content_type: str = attrs.field(default="application/json")
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_request_headers)
    attempt: int = attrs.field(default=1, converter=_attempt)

    @idempotency_key.validator
    def _check_key(self, _: attrs.Attribute[str], value: object) -> None:
        text = _header_text(value, "idempotency_key", "OutboundRequest", "it")
        if not text.strip() or not text.isprintable():
            raise InvalidArgument(
                "idempotency_key",
                f"must be non-empty printable ASCII, got {short(value)}",
                owner="OutboundRequest",
            )

    @body.validator
    def _check_body(self, _: attrs.Attribute[bytes], value: object) -> None:
        if not isinstance(value, bytes):
            raise InvalidArgumentType(
                "body", f"must be bytes, got {type(value).__name__}", owner="OutboundRequest"
            )

    @content_type.validator
    def _check_content_type(self, _: attrs.Attribute[str], value: object) -> None:
        text = _header_text(value, "content_type", "OutboundRequest", "it")
        if "/" not in text:
            raise InvalidArgument(
                "content_type",
                f"must be a media type like 'application/json', got {short(value)}",
                owner="OutboundRequest",
            )

    def __repr__(self) -> str:
        return (
            f"OutboundRequest(message_id={self.message_id!r}, "
            f"idempotency_key={self.idempotency_key!r}, body=<{len(self.body)} bytes>, "
            f"content_type={self.content_type!r}, headers={_shown(self.headers)!r}, "
            f"attempt={self.attempt})"
        )


@attrs.frozen(kw_only=True)
class DeliveryResult:
    """What one attempt came to.

    Exactly one of :attr:`status` and :attr:`error_type` is set: the server answered
    with a whole status line and headers (and the excerpt was read), or it did not.

    Attributes:
        outcome: what to do next, from the status or the error (the destination's
            classifier first, then the defaults of :func:`~otpy.gateway.classify`).
        status: the response's HTTP status code, or ``None`` when the attempt failed
            without a complete answer.
        retry_after: the seconds the response's ``Retry-After`` asks to wait, or
            ``None`` (no header, or one that says nothing usable).
        duration: seconds the attempt took, on anyio's clock, from sending to the end
            of the excerpt (or the failure).
        error_type: the failure's class name (``"ConnectError"``, ``"TimeoutError"``...),
            or ``None``.
        error: the failure's message, redacted, or ``None``.
        response_excerpt: the first bytes of the response's body as received (at most
            the destination's ``excerpt_limit``), for a dead letter or a log.
        request: the failed attempt's request as attributes, for its dead letter:
            ``http.request.method``, ``url.full`` (credentials redacted) and one
            ``http.request.header.<name>`` per header, secret ones (authorization,
            cookies, keys, tokens, the signature) shown as ``[redacted]``; empty
            after a success, or from a destination that does not say.
    """

    outcome: Outcome
    status: int | None = None
    retry_after: float | None = None
    duration: float = 0.0
    error_type: str | None = None
    error: str | None = None
    response_excerpt: bytes = b""
    request: tuple[tuple[str, str], ...] = ()


def _httpx_outcome(exc: BaseException) -> Outcome | None:
    """The default outcome of an httpx failure, or ``None`` for any other exception."""
    if isinstance(exc, (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)):
        return Outcome.RETRYABLE  # the request may not have arrived, or its answer was lost
    if isinstance(exc, httpx.ProxyError):
        return Outcome.RETRYABLE  # the proxy may recover
    if isinstance(exc, httpx.HTTPError):
        # LocalProtocolError, UnsupportedProtocol, DecodingError...: a bug or a bad
        # configuration on our side, which another attempt will not fix.
        return Outcome.TERMINAL
    return None


def classify_http_error(exc: BaseException) -> Outcome:
    """Return what an exception raised while sending over HTTP means.

    httpx's timeouts, network errors (connect, read, write, close), a server that
    broke the protocol (closed mid-response, say) and proxy errors are
    :attr:`~Outcome.RETRYABLE`; httpx's other errors are :attr:`~Outcome.TERMINAL`;
    anything else is classified by :func:`~otpy.gateway.classify_error` (``OSError``
    and ``TimeoutError`` retryable, the rest terminal).

    Raises:
        InvalidArgumentType: *exc* is not an exception.
    """
    if isinstance(exc, BaseExceptionGroup):
        leaves = exc.exceptions
        if all(classify_http_error(leaf) is Outcome.RETRYABLE for leaf in leaves):
            return Outcome.RETRYABLE
        return Outcome.TERMINAL
    decided = _httpx_outcome(exc) if isinstance(exc, BaseException) else None
    return decided if decided is not None else classify_error(exc)


def _url(value: object) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentType(
            "url", f"must be a string, got {short(value)}", owner="HttpDestination"
        )
    try:
        parsed = httpx.URL(value)
    except (httpx.InvalidURL, ValueError, TypeError):
        parsed = None
    if parsed is None or parsed.scheme not in ("http", "https") or not parsed.host:
        raise InvalidArgument(
            "url",
            f"must be an http:// or https:// URL with a host, got {redact(short(value))}",
            owner="HttpDestination",
        )
    return value


def _secrets_tuple(value: object) -> tuple[SigningSecret, ...]:
    if isinstance(value, (SigningSecret, str, bytes)) or not hasattr(value, "__iter__"):
        raise InvalidArgumentType(
            "signing_secrets",
            f"must be a sequence of SigningSecret, got {type(value).__name__}",
            owner="HttpDestination",
        )
    found = tuple(value)
    for item in found:
        if not isinstance(item, SigningSecret):
            raise InvalidArgumentType(
                "signing_secrets",
                f"must hold only SigningSecret, got a {type(item).__name__}",
                owner="HttpDestination",
            )
    return found


async def _excerpt(response: httpx.Response, limit: int) -> bytes:
    """Read at most *limit* bytes of *response*'s body, as received, then stop."""
    if response.is_stream_consumed:  # a response built in memory (a mock transport's)
        return response.content[:limit]
    parts: list[bytes] = []
    size = 0
    chunks = response.aiter_raw()
    async for chunk in chunks:
        part = chunk[: limit - size]
        parts.append(part)
        size += len(part)
        if size >= limit:
            break
    else:
        return b"".join(parts)
    # Stopped early. Closing the response drops the connection; running the reader
    # on to the error that follows finishes httpx's chain of async generators, which
    # would otherwise be left half-consumed (trio warns about those when collected).
    await response.aclose()
    with contextlib.suppress(Exception):
        async for _ in chunks:
            pass
    return b"".join(parts)


@final
class HttpDestination:
    """An HTTP endpoint the gateway delivers to: its configuration, connection pool and limits.

    Every request carries the static *headers*, the request's own headers, its
    ``content-type``, ``Idempotency-Key`` and the Standard Webhooks headers
    (``webhook-id``, ``webhook-timestamp`` and, with *signing_secrets*, a
    ``webhook-signature``). Redirects are not followed (a 3xx is terminal).

    Use it as ``async with destination:`` (or call :meth:`aclose` at the end); the
    client is created on first use and closed on exit.

    Args:
        name: the destination's name, for messages and telemetry.
        url: where to send: an ``http://`` or ``https://`` URL.
        method: the HTTP method.
        headers: static headers for every request. Values of headers whose names
            look secret (``Authorization``, ``Cookie``, ``X-Api-Key``, anything with
            token, secret, auth or key...) are hidden in ``repr``.
        timeout: each attempt's hard deadline in seconds, from sending the request to
            reading the excerpt; past it the attempt is cancelled and is
            :attr:`~Outcome.RETRYABLE` with ``error_type="TimeoutError"``.
        max_concurrent: the bulkhead's slots: attempts in flight at once.
        max_wait: seconds an attempt waits for a slot before
            :class:`~otpy.gateway.BulkheadFull` (0: refused at once).
        rate_limit: requests per second, or ``None`` for no limit; an attempt waits
            for its token before it is sent.
        burst: how many requests may go at once after a quiet period (with *rate_limit*).
        signing_secrets: keys to sign with (during a rotation, the new and the old);
            none: unsigned.
        classifier: a :data:`~otpy.gateway.Classifier` asked first about every
            status and error; ``None`` from it means "use the defaults".
        max_connections: the connection pool's size (default: *max_concurrent*).
        excerpt_limit: bytes of the response body kept in the result (>= 0).
        transport: an httpx transport to send through instead of the network (tests).

    Raises:
        InvalidArgument: an argument is not allowed; the message names it.
    """

    def __init__(
        self,
        name: str,
        url: str,
        *,
        method: str = "POST",
        headers: Mapping[str, str] | None = None,
        timeout: float = 30.0,
        max_concurrent: int = 10,
        max_wait: float = 0.0,
        rate_limit: float | None = None,
        burst: int = 1,
        signing_secrets: Sequence[SigningSecret] = (),
        classifier: Classifier | None = None,
        max_connections: int | None = None,
        excerpt_limit: int = DEFAULT_EXCERPT_LIMIT,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        owner = "HttpDestination"
        self._name = _checked_name(name)
        self._url = _url(url)
        if not isinstance(method, str) or not _TOKEN.fullmatch(method):
            raise InvalidArgument(
                "method", f"must be an HTTP method like 'POST', got {short(method)}", owner=owner
            )
        self._method = method.upper()
        if headers is not None and not hasattr(headers, "items"):
            raise InvalidArgumentType(
                "headers", f"must be a mapping of str to str, got {short(headers)}", owner=owner
            )
        self._headers = _header_pairs(headers or {}, owner)
        self._timeout = number(timeout, "timeout", owner=owner, unit=" of seconds")
        self._bulkhead = Bulkhead(max_concurrent, max_wait, name=self._name)
        count(burst, "burst", owner=owner)
        if rate_limit is None:
            self._limiter: RateLimiter | None = None
        else:
            rate = number(rate_limit, "rate_limit", owner=owner, unit=" of requests per second")
            self._limiter = RateLimiter(rate, burst)
        self._secrets = _secrets_tuple(signing_secrets)
        callable_or_none(classifier, "classifier", owner=owner)
        self._classifier = classifier
        self._max_connections = (
            max_concurrent
            if max_connections is None
            else count(max_connections, "max_connections", owner=owner)
        )
        self._excerpt_limit = count(excerpt_limit, "excerpt_limit", owner=owner, minimum=0)
        if transport is not None and not isinstance(transport, httpx.AsyncBaseTransport):
            raise InvalidArgumentType(
                "transport",
                f"must be an httpx.AsyncBaseTransport, got {short(transport)}",
                owner=owner,
            )
        self._transport = transport
        self._pools: list[httpx.AsyncClient] = []
        self._busy: list[int] = []  # attempts using each pool now

    def __repr__(self) -> str:
        signed = f" signing_secrets=<{len(self._secrets)} redacted>" if self._secrets else ""
        return (
            f"<HttpDestination {self._name!r} {self._method} {redact(self._url)} "
            f"headers={_shown(self._headers)!r} timeout={self._timeout:g}s "
            f"max_concurrent={self._bulkhead.max_concurrent}{signed}>"
        )

    @property
    def name(self) -> str:
        """The destination's name."""
        return self._name

    @property
    def url(self) -> str:
        """Where requests go."""
        return self._url

    @property
    def timeout(self) -> float:
        """Each attempt's deadline, in seconds."""
        return self._timeout

    @property
    def bulkhead(self) -> Bulkhead:
        """The bulkhead that bounds attempts in flight (its :meth:`~Bulkhead.statistics`)."""
        return self._bulkhead

    @property
    def rate_limiter(self) -> RateLimiter | None:
        """The rate limiter, or ``None`` without a rate limit."""
        return self._limiter

    def _ensure_pools(self) -> list[httpx.AsyncClient]:
        """The connection pools, opened on first use: ``max_connections`` in pools of at most :data:`POOL_SIZE`."""
        if not self._pools:
            total = self._max_connections
            count_ = -(-total // POOL_SIZE)
            base, extra = divmod(total, count_)
            self._pools = [
                httpx.AsyncClient(
                    timeout=None,  # the deadline is ours: anyio.fail_after around the attempt
                    limits=httpx.Limits(max_connections=size, max_keepalive_connections=size),
                    follow_redirects=False,
                    transport=self._transport,
                )
                for size in (base + (1 if i < extra else 0) for i in range(count_))
            ]
            self._busy = [0] * count_
        return self._pools

    async def __aenter__(self) -> HttpDestination:
        self._ensure_pools()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pools; a later :meth:`send` opens new ones."""
        pools, self._pools = self._pools, []
        self._busy = []
        with anyio.CancelScope(shield=True):
            for client in pools:
                await client.aclose()

    def _request_headers(self, request: OutboundRequest, now: float) -> list[tuple[str, str]]:
        headers = [*self._headers, *request.headers]
        headers.append(("content-type", request.content_type))
        headers.append((IDEMPOTENCY_HEADER, request.idempotency_key))
        # The body as received, for the excerpt: a compressed one would need decoding.
        if not any(h.lower() == "accept-encoding" for h, _ in headers):
            headers.append(("accept-encoding", "identity"))
        signed = webhook_headers(request.message_id, int(now), request.body, self._secrets)
        headers.extend(signed.items())
        # The attempt's span, when one is current, so the receiver joins the trace.
        if not any(h.lower() == "traceparent" for h, _ in headers):
            headers.extend(trace_headers())
        return headers

    def _describe(self, headers: list[tuple[str, str]]) -> tuple[tuple[str, str], ...]:
        """The request as dead-letter attributes, secrets hidden (only for a failure)."""
        described = [("http.request.method", self._method), ("url.full", redact(self._url))]
        described.extend(
            (f"http.request.header.{h.lower()}", REDACTED if _secret_header(h) else v)
            for h, v in headers
        )
        return tuple(described)

    def _override(self, status: int | None, error: BaseException | None) -> Outcome | None:
        if self._classifier is not None:
            decided = self._classifier(status, error)
            if decided is not None:
                return decided
        if error is not None:
            return classify_http_error(error)
        return None

    async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
        """Make one attempt to deliver *request*; return what came of it.

        Waits for a bulkhead slot, then for a rate-limit token, then sends. A failure
        to deliver (an error status, a refused connection, the deadline) is not
        raised: it is the result's :attr:`~DeliveryResult.outcome`. Cancellation
        passes through.

        Args:
            request: what to send.
            now: the current Unix time (``time.time()``): the ``webhook-timestamp``
                (whole seconds), and what a ``Retry-After`` date is measured from.

        Returns:
            The :class:`DeliveryResult`.

        Raises:
            BulkheadFull: no slot came free within ``max_wait``; nothing was sent.
            InvalidArgument: *request* is not an :class:`OutboundRequest` or *now* is
                not a time.
        """
        if not isinstance(request, OutboundRequest):
            raise InvalidArgumentType(
                "request",
                f"must be an OutboundRequest, got {type(request).__name__}",
                owner="HttpDestination.send",
            )
        now = number(
            now, "now", owner="HttpDestination.send", positive=False, unit=" of Unix seconds"
        )
        async with self._bulkhead.slot():
            if self._limiter is not None:
                await self._limiter.acquire()
            return await self._attempt(request, now)

    async def _attempt(self, request: OutboundRequest, now: float) -> DeliveryResult:
        pools = self._ensure_pools()
        busy = self._busy
        index = min(range(len(pools)), key=busy.__getitem__)
        busy[index] += 1
        try:
            return await self._attempt_on(pools[index], request, now)
        finally:
            busy[index] -= 1

    async def _attempt_on(
        self, client: httpx.AsyncClient, request: OutboundRequest, now: float
    ) -> DeliveryResult:
        headers = self._request_headers(request, now)
        started = anyio.current_time()
        try:
            with anyio.fail_after(self._timeout):
                async with client.stream(
                    self._method, self._url, content=request.body, headers=headers
                ) as response:
                    status = response.status_code
                    retry_after = response.headers.get("retry-after")
                    excerpt = await _excerpt(response, self._excerpt_limit)
        except anyio.get_cancelled_exc_class():
            raise
        except Exception as exc:  # a failed attempt: classified, never raised
            duration = anyio.current_time() - started
            if isinstance(exc, TimeoutError) and not str(exc):
                message = f"no complete response within {self._timeout:g}s"
            else:
                message = redact(str(exc)) or type(exc).__name__
            return DeliveryResult(
                outcome=classify(error=exc, override=self._override),
                duration=duration,
                error_type=type(exc).__name__,
                error=message,
                request=self._describe(headers),
            )
        outcome = classify(status, override=self._override)
        return DeliveryResult(
            outcome=outcome,
            status=status,
            retry_after=parse_retry_after(retry_after, now=now),
            duration=anyio.current_time() - started,
            response_excerpt=excerpt,
            request=() if outcome is Outcome.SUCCESS else self._describe(headers),
        )


def _checked_name(value: object) -> str:
    return name(value, "name", owner="HttpDestination")
