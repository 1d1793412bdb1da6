"""What every source hands the ingest, and what it answers: :class:`IngestMessage`, :class:`SubmitResult`.

The HTTP endpoints build the same thing from a request; :meth:`IngestApp.submit
<otpy.ingest.IngestApp.submit>` takes them from any other source (JSON lines, memory),
with the same checks and the same answers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Final

import attrs

from .._check import name as check_name
from .._check import pairs as check_pairs
from .._check import short
from .._exceptions import InvalidArgumentType
from ._journal import check_priority

if TYPE_CHECKING:
    from ..pressure import Priority

__all__ = ["IngestMessage", "SubmitResult"]

_OWNER: Final = "IngestMessage"

RETRYABLE: Final = 429
"""The status of a refusal that goes away by itself: the route's pressure, a full journal."""


def _route(value: object) -> str:
    return check_name(value, "route", owner=_OWNER)


def _body(value: object) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, bytes):
        raise InvalidArgumentType("body", f"must be bytes, got {short(value)}", owner=_OWNER)
    return value


def _key(value: object) -> str | None:
    return None if value is None else check_name(value, "key", owner=_OWNER)


def _idempotency_key(value: object) -> str | None:
    return None if value is None else check_name(value, "idempotency_key", owner=_OWNER)


def _priority(value: object) -> Priority | None:
    return None if value is None else check_priority(value, owner=_OWNER)


def _content_type(value: object) -> str:
    return check_name(value, "content_type", owner=_OWNER)


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    return check_pairs(value, "headers", owner=_OWNER)


@attrs.frozen(kw_only=True)
class IngestMessage:
    """One message for :meth:`IngestApp.submit <otpy.ingest.IngestApp.submit>`, from any source.

    It says what an HTTP request says: the route, the body and the fields of the
    headers (or of a batch line). It is checked when it is built (types, non-empty
    text); what depends on the route (it exists, the body limit, the keys' 256
    characters, its pressure) is checked by :meth:`~otpy.ingest.IngestApp.submit`,
    which answers a refusal as the HTTP ingest does.

    Attributes:
        route: the route it goes to (a configured route's name).
        body: the message's bytes (``bytearray`` and ``memoryview`` are copied).
        key: the ordering key; ``None``: the route's name, as over HTTP.
        idempotency_key: the sender's key for dropping repeats (``Idempotency-Key``),
            or ``None``.
        priority: a :class:`~otpy.pressure.Priority` or its name in any case;
            ``None``: the route's priority.
        content_type: its media type.
        headers: ``(name, value)`` pairs to keep with it (a mapping is converted);
            credentials and the transport's headers are dropped, as over HTTP.

    Raises:
        InvalidArgument: a value is not allowed (an empty text, an unknown
            priority name); the message names the field.
        InvalidArgumentType: a value has the wrong type; the message names the field.

    .. versionadded:: 0.2.0
    """

    route: str = attrs.field(converter=_route)
    body: bytes = attrs.field(converter=_body, repr=False)
    key: str | None = attrs.field(default=None, converter=_key)
    idempotency_key: str | None = attrs.field(default=None, converter=_idempotency_key)
    priority: Priority | None = attrs.field(default=None, converter=_priority)
    content_type: str = attrs.field(default="application/octet-stream", converter=_content_type)
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_headers, repr=False)


@attrs.frozen(kw_only=True)
class SubmitResult:
    """What :meth:`IngestApp.submit <otpy.ingest.IngestApp.submit>` answers for one message.

    The status is the one the HTTP ingest would answer (a batch line's): ``202``
    journalled, ``200`` a duplicate, or a refusal (``400``, ``404``, ``413``,
    ``429``) with its ``error`` and ``detail`` as in docs/ingest.md.

    Attributes:
        status: the HTTP status the same message would get.
        id: the entry's id (for a duplicate, the original's); ``None`` if refused.
        duplicate: whether it repeats a message accepted within the dedup window.
        error: the refusal's reason (``unknown_route``, ``too_large``,
            ``bad_request``, ``shed``, ``deferred``, ``route_full``,
            ``journal_full``), or ``None``.
        detail: what was wrong, or ``None``.
        retry_after: for a ``429``, the seconds to wait before trying again.

    .. versionadded:: 0.2.0
    """

    status: int
    id: str | None = None
    duplicate: bool = False
    error: str | None = None
    detail: str | None = None
    retry_after: int | None = None

    @property
    def journalled(self) -> bool:
        """It is in the journal: accepted now (``202``) or before (``200``, a duplicate)."""
        return self.status in (200, 202)

    @property
    def retryable(self) -> bool:
        """A ``429``: the route's pressure or a full journal; the same message may pass later."""
        return self.status == RETRYABLE
