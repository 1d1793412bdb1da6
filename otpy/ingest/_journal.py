"""The ingest journal: the messages the node has accepted, until they are handed to the gateway.

A message is acknowledged (``202``) only once it is in the journal
(:meth:`JournalStore.accept` returns after the commit). A hand-over loop then reads
the pending entries oldest first (:meth:`~JournalStore.pending`), enqueues one
outbox message per destination of each entry's route, and marks the entry handed
over (:meth:`~JournalStore.mark_handed_over`), which deletes it. There is no "in
flight" state: after a crash the loop reads the pending entries again and hands
them over again, which is safe because it derives each outbox message's id from
the entry's id and the outbox skips ids it already holds.

Deduplication: an entry with an ``idempotency_key`` is stored unless an entry of
the same ``(route, idempotency_key)`` was accepted within the last ``dedup_ttl``
seconds (a record exactly ``dedup_ttl`` old still counts); a duplicate is answered
with the original's id (:class:`Accepted` with ``duplicate=True``) and stores
nothing. The dedup records (the inbox) outlive the hand-over; they leave with
:meth:`~JournalStore.purge` once older than the window, or oldest first when there
are more than ``dedup_max``.

Disk budget: the body and header bytes of the pending entries
(:attr:`JournalEntry.size`) never exceed ``max_bytes``; an accept that would pass
it raises :exc:`~otpy.JournalFull` and stores nothing.

:class:`~otpy.ingest._journal_sqlite.SQLiteJournalStore` and
:class:`~otpy.ingest._journal_memory.MemoryJournalStore` implement the protocol;
the checks of every call's arguments live here, shared by both.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import attrs

from .._check import count, number, short
from .._check import name as check_name
from .._check import pairs as check_pairs
from .._exceptions import InvalidArgument, InvalidArgumentType
from ..deadletter import new_id
from ..pressure import Priority

if TYPE_CHECKING:
    from collections.abc import Collection, Mapping, Sequence

__all__ = [
    "DEFAULT_DEDUP_MAX",
    "DEFAULT_DEDUP_TTL",
    "DEFAULT_MAX_BYTES",
    "Accepted",
    "JournalEntry",
    "JournalStatistics",
    "JournalStore",
    "RouteStatistics",
]

DEFAULT_MAX_BYTES: Final = 1 << 30
"""The default disk budget: 1 GiB of pending bodies and headers."""

DEFAULT_DEDUP_TTL: Final = 86_400.0
"""The default dedup window: 24 hours, as webhook senders keep retrying for about a day."""

DEFAULT_DEDUP_MAX: Final = 1_000_000
"""The default most dedup records kept (about 100 MB in a SQLite file)."""

_OWNER = "JournalEntry"


# -- checks -----------------------------------------------------------------------------


def check_time(value: object, argument: str, *, owner: str | None = None) -> float:
    """Return *value* as a float if it is a finite wall-clock time >= 0."""
    return number(value, argument, owner=owner, positive=False)


def _text(value: object, argument: str) -> str:
    return check_name(value, argument, owner=_OWNER)


def _optional_text(value: object, argument: str) -> str | None:
    return None if value is None else check_name(value, argument, owner=_OWNER)


def _pairs(value: object, argument: str) -> tuple[tuple[str, str], ...]:
    return check_pairs(value, argument, owner=_OWNER)


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    return _pairs(value, "headers")


def _trace_context(value: object) -> tuple[tuple[str, str], ...]:
    return _pairs(value, "trace_context")


def _received_at(value: object) -> float:
    return check_time(value, "received_at", owner=_OWNER)


def _body(value: object) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, bytes):
        raise InvalidArgumentType("body", f"must be bytes, got {short(value)}", owner=_OWNER)
    return value


def check_priority(value: object, *, owner: str | None = _OWNER) -> Priority:
    """Return *value* as a :class:`~otpy.pressure.Priority`: one, or its name in any case."""
    if isinstance(value, Priority):
        return value
    allowed = ", ".join(repr(p.name.lower()) for p in Priority)
    if not isinstance(value, str):
        raise InvalidArgumentType(
            "priority", f"must be a Priority or one of {allowed}, got {short(value)}", owner=owner
        )
    try:
        return Priority[value.upper()]
    except KeyError:
        raise InvalidArgument(
            "priority", f"must be a Priority or one of {allowed}, got {short(value)}", owner=owner
        ) from None


def _validate(field: str, check: Any) -> Any:
    def validator(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
        check(value, field)

    return validator


# -- the entry --------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class JournalEntry:
    """One accepted message, waiting in the journal to be handed to the gateway.

    Build a new one with :meth:`new`; stores return the pending ones. A handed-over
    entry is deleted (only its dedup record stays), so every entry a store returns
    is pending.

    Attributes:
        id: unique and sorting by reception time (:func:`otpy.deadletter.new_id`);
            the hand-over goes in id order.
        route: the route it came in on (``POST /v1/routes/{route}/messages``).
        key: the ordering key its outbox messages carry; its id by default (no
            order to keep).
        idempotency_key: the sender's key for dropping repeats, or ``None``: an
            entry without one is never a duplicate.
        priority: its :class:`~otpy.pressure.Priority` (a name is converted).
        body: the request body.
        content_type: its media type.
        headers: the request headers kept, ``(name, value)`` pairs.
        trace_context: the W3C trace context of the receiving span.
        received_at: when the request arrived (wall clock, seconds since the epoch).

    Raises:
        InvalidArgument: a value is not allowed; the message names it.
        InvalidArgumentType: a value has the wrong type.

    .. versionadded:: 0.1.0
    """

    id: str = attrs.field(validator=_validate("id", _text))
    route: str = attrs.field(validator=_validate("route", _text))
    key: str = attrs.field(validator=_validate("key", _text))
    idempotency_key: str | None = attrs.field(
        default=None, validator=_validate("idempotency_key", _optional_text)
    )
    priority: Priority = attrs.field(default=Priority.NORMAL, converter=check_priority)
    body: bytes = attrs.field(converter=_body)
    content_type: str = attrs.field(
        default="application/octet-stream", validator=_validate("content_type", _text)
    )
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_headers)
    trace_context: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_trace_context)
    received_at: float = attrs.field(converter=_received_at)

    @property
    def size(self) -> int:
        """The bytes it takes of the journal's budget: its body and its headers' names and values (UTF-8)."""
        return len(self.body) + sum(
            len(name.encode()) + len(value.encode()) for name, value in self.headers
        )

    @classmethod
    def new(
        cls,
        *,
        route: str,
        body: bytes | bytearray | memoryview,
        now: float,
        key: str | None = None,
        idempotency_key: str | None = None,
        priority: Priority | str = Priority.NORMAL,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        trace_context: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> JournalEntry:
        """Build a new entry with a fresh id.

        Args:
            route: the route it came in on.
            body: the request body.
            now: when it was received (wall clock): ``received_at`` and the time in
                its id.
            key: the ordering key; the new id if ``None``.
            idempotency_key: the sender's deduplication key, or ``None``.
            priority: a :class:`~otpy.pressure.Priority` or its name.
            content_type: its media type.
            headers: the request headers to keep.
            trace_context: the W3C trace context to carry.

        Raises:
            InvalidArgument: a value is not allowed; the message names it.
            InvalidArgumentType: a value has the wrong type.
        """
        received = check_time(now, "now", owner="JournalEntry.new")
        entry_id = new_id(received)
        return cls(
            id=entry_id,
            route=route,
            key=entry_id if key is None else key,
            idempotency_key=idempotency_key,
            priority=priority,
            body=body,
            content_type=content_type,
            headers=headers,
            trace_context=trace_context,
            received_at=received,
        )


@attrs.frozen
class Accepted:
    """What :meth:`JournalStore.accept` answers for one entry.

    Attributes:
        id: the entry's id, or for a duplicate the id of the entry it repeats.
        duplicate: whether it repeats an entry accepted within the dedup window (or
            one still pending with the same id); nothing was stored for it.

    .. versionadded:: 0.1.0
    """

    id: str
    duplicate: bool = False


# -- statistics -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class RouteStatistics:
    """What one route has pending in the journal.

    Attributes:
        depth: its entries not yet handed over.
        oldest_age: seconds since the oldest of them was received (0 if none, never
            negative).
        bytes_used: their share of the budget (:attr:`JournalEntry.size`).

    .. versionadded:: 0.1.0
    """

    depth: int
    oldest_age: float
    bytes_used: int


@attrs.frozen(kw_only=True)
class JournalStatistics:
    """A snapshot of the journal.

    Attributes:
        routes: per route with pending entries, by name.
        depth: entries not yet handed over, all routes.
        oldest_age: seconds since the oldest pending entry was received (0 if none).
        bytes_used: the budget they take.
        max_bytes: the budget.
        dedup_records: the dedup records kept (the inbox), handed-over entries'
            included.

    .. versionadded:: 0.1.0
    """

    routes: Mapping[str, RouteStatistics]
    depth: int
    oldest_age: float
    bytes_used: int
    max_bytes: int
    dedup_records: int

    @classmethod
    def of(
        cls,
        rows: Iterable[tuple[str, int, float, int]],
        *,
        now: float,
        max_bytes: int,
        dedup_records: int,
    ) -> JournalStatistics:
        """Build one from ``(route, depth, oldest received_at, bytes)`` rows."""
        routes = {
            route: RouteStatistics(depth=depth, oldest_age=max(now - oldest, 0.0), bytes_used=size)
            for route, depth, oldest, size in sorted(rows)
        }
        return cls(
            routes=routes,
            depth=sum(r.depth for r in routes.values()),
            oldest_age=max((r.oldest_age for r in routes.values()), default=0.0),
            bytes_used=sum(r.bytes_used for r in routes.values()),
            max_bytes=max_bytes,
            dedup_records=dedup_records,
        )


# -- argument checks of the stores' options and calls -----------------------------------


def check_options(
    max_bytes: object, dedup_ttl: object, dedup_max: object, function: str
) -> tuple[int, float, int]:
    """Check a store's budget and dedup options; return them converted."""
    return (
        count(max_bytes, "max_bytes", owner=function),
        number(dedup_ttl, "dedup_ttl", owner=function),
        count(dedup_max, "dedup_max", owner=function),
    )


def check_entries(entries: object, function: str) -> Sequence[JournalEntry]:
    """Refuse *entries* unless it is a list or tuple of :class:`JournalEntry`."""
    if not isinstance(entries, (list, tuple)):
        raise InvalidArgumentType(
            "entries",
            f"must be a list or tuple of JournalEntry, got {short(entries)}",
            owner=function,
        )
    for entry in entries:
        if not isinstance(entry, JournalEntry):
            raise InvalidArgumentType(
                "entries", f"must hold JournalEntry, got {short(entry)}", owner=function
            )
    return entries


def check_ids(ids: object, function: str) -> tuple[str, ...]:
    """Refuse *ids* unless it is a list or tuple of entry ids."""
    if not isinstance(ids, (list, tuple)):
        raise InvalidArgumentType(
            "ids", f"must be a list or tuple of entry ids, got {short(ids)}", owner=function
        )
    for entry_id in ids:
        if not isinstance(entry_id, str):
            raise InvalidArgumentType(
                "ids", f"must hold entry ids (strings), got {short(entry_id)}", owner=function
            )
    return tuple(ids)


def check_pending(
    limit: object, after: object, function: str, exclude: object = ()
) -> tuple[int, str | None, frozenset[str]]:
    """Check :meth:`JournalStore.pending`'s arguments; return them (*exclude* as a set)."""
    if after is not None and not isinstance(after, str):
        raise InvalidArgumentType(
            "after", f"must be an entry id or None, got {short(after)}", owner=function
        )
    if isinstance(exclude, (str, bytes)) or not isinstance(exclude, Iterable):
        raise InvalidArgumentType(
            "exclude", f"must be a collection of route names, got {short(exclude)}", owner=function
        )
    routes = frozenset(exclude)
    if not all(isinstance(route, str) for route in routes):
        raise InvalidArgumentType("exclude", "must hold route names (str)", owner=function)
    return count(limit, "limit", owner=function), after, routes


def check_timeout(timeout: object, function: str) -> float | None:
    """Return *timeout* if it is ``None`` or a number of seconds > 0 (infinity is ``None``)."""
    if timeout is None:
        return None
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and math.isinf(timeout):
        return None
    return number(timeout, "timeout", owner=function)


def dedup_cutoff(now: float, ttl: float) -> float:
    """The oldest acceptance time a dedup record may have to still count at *now*.

    A record accepted at or after it counts, so one exactly *ttl* seconds old still
    does; :meth:`JournalStore.purge` evicts those accepted before it. Both stores
    compare with this one float, so they agree to the last bit.
    """
    return now - ttl


# -- the protocol -----------------------------------------------------------------------


@runtime_checkable
class JournalStore(Protocol):
    """Where accepted messages wait for the hand-over to the gateway.
    :class:`SQLiteJournalStore` and :class:`MemoryJournalStore` implement it; every
    method is atomic.

    Times are wall-clock seconds since the epoch. A call that takes ``now`` reads
    the store's ``clock`` when it is ``None``.

    .. versionadded:: 0.1.0
    """

    async def accept(
        self,
        entries: Sequence[JournalEntry],
        *,
        now: float | None = None,
        timeout: float | None = None,
    ) -> list[Accepted]:
        """Store *entries* in one transaction, but for duplicates; return one answer each, in order.

        Returns only once they are durable (the SQLite store commits concurrent calls
        together). An entry is a duplicate, answered ``Accepted(original_id,
        duplicate=True)`` and not stored, if an entry of its ``(route,
        idempotency_key)`` was accepted at most ``dedup_ttl`` seconds before *now*
        (earlier in the same call included), or if an entry with its id is
        pending (so an accept retried after a timeout stores nothing twice). Others
        are stored, each with a dedup record accepted at *now*.

        Args:
            entries: the entries, built with :meth:`JournalEntry.new`.
            now: the time of acceptance, for the dedup window; the store's clock
                if ``None``.
            timeout: seconds to wait for the commit; ``None``, no limit.

        Raises:
            JournalFull: storing the new entries would take the pending bytes past
                ``max_bytes``; none was stored.
            TimeoutError: not committed within *timeout*; the entries may still be
                committed (accepting them again answers them as duplicates).
            JournalError: the store is closed or failed; none was stored.
        """
        ...

    async def pending(
        self, *, limit: int, after: str | None = None, exclude: Collection[str] = ()
    ) -> list[JournalEntry]:
        """Return up to *limit* pending entries, oldest (lowest id) first, with ids above *after*.

        The hand-over loop reads them, and after a crash reads them all again:
        every entry accepted and not yet marked handed over is pending.

        Args:
            limit: the most entries to return, >= 1.
            after: return only ids above this one (the last id of the previous
                page); from the start if ``None``.
            exclude: routes whose entries to leave out (the hand-over holds back
                the routes whose destinations' outboxes are full).
        """
        ...

    async def mark_handed_over(self, ids: Sequence[str]) -> int:
        """Delete these pending entries, in one transaction; return how many were pending.

        Their bytes leave the budget; their dedup records stay. An id not pending
        (handed over already, or unknown) is skipped, so repeating it is safe.

        Args:
            ids: the entries' ids.
        """
        ...

    async def purge(self, *, now: float | None = None) -> int:
        """Evict the dedup records more than ``dedup_ttl`` seconds old at *now*; return how many."""
        ...

    async def get(self, entry_id: str) -> JournalEntry | None:
        """Return the pending entry with this id, or ``None`` (handed over, or never accepted)."""
        ...

    async def steady_rate(self) -> float | None:
        """The hand-over's steady rate (entries per second) as last saved; ``None`` if never.

        The hand-over saves it as it measures it, so after a restart a backlog drains
        at the rate the node was running at (:class:`~otpy.ingest.BackfillPolicy`).
        """
        ...

    async def save_steady_rate(self, rate: float) -> None:
        """Save the hand-over's steady rate, entries per second.

        Raises:
            InvalidArgument: *rate* is not a finite number >= 0.
        """
        ...

    async def statistics(self, *, now: float | None = None) -> JournalStatistics:
        """Return the pending depth, oldest age and bytes per route and in total, and the dedup records."""
        ...

    async def aclose(self) -> None:
        """Close the store; further calls raise :exc:`~otpy.JournalError`. Idempotent."""
        ...
