"""The gateway's outbox: the messages waiting for delivery, their store protocol and records.

A message enters the outbox durably (:meth:`OutboxStore.enqueue` returns after the
commit), is claimed by a delivery worker under a lease, and leaves it when it is
delivered (:meth:`~OutboxStore.complete`) or dead-lettered; a failed attempt puts it
back with its next time (:meth:`~OutboxStore.record_retry`).

Dead-lettering takes three steps, so that a crash leaves a message neither lost nor
both delivered and dead-lettered: :meth:`~OutboxStore.mark_dead` records the final
attempt on the message's row (state ``DEAD``), the dead letter is built from that row
alone and stored, then :meth:`~OutboxStore.remove` deletes the row. After a crash in
between, :meth:`~OutboxStore.dead` lists the rows whose dead-lettering is to finish.

Ordering is per ``(destination, key)``: only the oldest message of a key (its head,
the lowest id) can be claimed, and only while no message of that key is in flight.
A head waiting for its retry, or being dead-lettered, blocks its key; other keys go
on.

The store also keeps each destination's :class:`DestinationState` (disabled, failing
since when), so that a restart does not forget it.

:class:`~otpy.gateway._outbox_sqlite.SQLiteOutboxStore` and
:class:`~otpy.gateway._outbox_memory.MemoryOutboxStore` implement the protocol;
the checks of every call's arguments live here, shared by both.
"""

from __future__ import annotations

import enum
import math
from typing import TYPE_CHECKING, Any, Final, Protocol, runtime_checkable

import attrs

from .._check import count, number, short
from .._check import name as check_name
from .._check import pairs as check_pairs
from .._exceptions import (
    InvalidArgument,
    InvalidArgumentType,
)
from ..deadletter import new_id
from ._signing import _message_id as _webhook_id

if TYPE_CHECKING:
    from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "SETTLED_KEPT",
    "DestinationState",
    "DestinationStatistics",
    "OutboxMessage",
    "OutboxState",
    "OutboxStatistics",
    "OutboxStore",
]


_OWNER = "OutboxMessage"

SETTLED_KEPT: Final = 100_000
"""How many ids of the messages that left an outbox (delivered, or dead-lettered and
removed) it remembers: enqueuing one of them again stores nothing. The ingest's
hand-over commits the outbox, then its journal; a crash between the two hands the
page over again at the next start, when some of its messages may have been
delivered already. The count bounds the memory; the window it covers is the
messages settled between a hand-over and its repeat, a few seconds' worth."""


class OutboxState(enum.Enum):
    """Where a message is in its delivery.

    Delivered and dead-lettered messages are deleted from the outbox, so there are
    three states.
    """

    PENDING = "pending"
    """Waiting for its ``next_attempt_at`` (and for the messages of its key before it)."""
    IN_FLIGHT = "in_flight"
    """Claimed by a delivery worker, until ``lease_expires_at``."""
    DEAD = "dead"
    """Being dead-lettered since ``dead_at``: never claimed again, it waits for
    :meth:`OutboxStore.remove` once its dead letter is stored, and blocks its key
    until then.

    .. versionadded:: 0.1.0
    """


# -- checks -----------------------------------------------------------------------------


def check_time(value: object, argument: str, *, owner: str | None = None) -> float:
    """Return *value* as a float if it is a finite wall-clock time >= 0."""
    return number(value, argument, owner=owner, positive=False)


def _text(value: object, argument: str, *, owner: str | None = _OWNER) -> str:
    return check_name(value, argument, owner=owner)


def _optional_text(value: object, argument: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise InvalidArgumentType(
            argument, f"must be a string or None, got {short(value)}", owner=_OWNER
        )
    return value


def check_status(value: object, *, owner: str | None = _OWNER) -> int | None:
    """Return *value* if it is ``None`` or an HTTP status code (100 to 599)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentType(
            "last_status" if owner == _OWNER else "status",
            f"must be an HTTP status code (an integer 100..599) or None, got {short(value)}",
            owner=owner,
        )
    if not 100 <= value <= 599:
        raise InvalidArgument(
            "last_status" if owner == _OWNER else "status",
            f"must be an HTTP status code (an integer 100..599) or None, got {short(value)}",
            owner=owner,
        )
    return value


def _pairs(value: object, argument: str) -> tuple[tuple[str, str], ...]:
    return check_pairs(value, argument, owner=_OWNER)


def _headers(value: object) -> tuple[tuple[str, str], ...]:
    return _pairs(value, "headers")


def _trace_context(value: object) -> tuple[tuple[str, str], ...]:
    return _pairs(value, "trace_context")


def _created_at(value: object) -> float:
    return check_time(value, "created_at", owner=_OWNER)


def _next_attempt_at(value: object) -> float:
    return check_time(value, "next_attempt_at", owner=_OWNER)


def _lease_expires_at(value: object) -> float | None:
    return None if value is None else check_time(value, "lease_expires_at", owner=_OWNER)


def _dead_at(value: object) -> float | None:
    return None if value is None else check_time(value, "dead_at", owner=_OWNER)


def _body(value: object) -> bytes:
    if isinstance(value, (bytearray, memoryview)):
        return bytes(value)
    if not isinstance(value, bytes):
        raise InvalidArgumentType("body", f"must be bytes, got {short(value)}", owner=_OWNER)
    return value


def _validate(field: str, check: Any) -> Any:
    def validator(_inst: object, _attribute: attrs.Attribute[Any], value: object) -> None:
        check(value, field)

    return validator


def _state(value: object) -> OutboxState:
    if isinstance(value, OutboxState):
        return value
    try:
        return OutboxState(value)
    except ValueError:
        allowed = ", ".join(repr(m.value) for m in OutboxState)
        raise InvalidArgument(
            "state", f"must be one of {allowed}, got {short(value)}", owner=_OWNER
        ) from None


# -- the message ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class OutboxMessage:
    """One message waiting in the outbox for delivery to a destination.

    Build a new one with :meth:`new`; stores return them with their current state.

    Attributes:
        id: unique and sorting by creation time (:func:`otpy.deadletter.new_id`); a
            key's messages are delivered in id order.
        destination: the destination's name.
        key: the ordering key: messages of one ``(destination, key)`` are delivered
            one at a time, oldest first.
        idempotency_key: sent with every attempt so the receiver can drop a repeat
            (a message is delivered at least once); the id by default.
        body: the request body.
        content_type: its media type.
        headers: extra request headers, ``(name, value)`` pairs.
        trace_context: the W3C trace context of the enqueuing span, to link the
            delivery to it.
        created_at: when it was enqueued (wall clock, seconds since the epoch).
        attempts: attempts made so far.
        next_attempt_at: the earliest time of its next attempt (wall clock).
        state: pending, in flight or dead.
        lease_expires_at: while in flight, when the worker's lease ends; ``None``
            otherwise.
        last_status: the HTTP status of the last attempt, if it got one.
        last_error: what went wrong with the last attempt, if anything.
        dead_at: while dead, when :meth:`OutboxStore.mark_dead` marked it (wall
            clock); ``None`` otherwise.
    """

    id: str = attrs.field(validator=_validate("id", _text))
    destination: str = attrs.field(validator=_validate("destination", _text))
    key: str = attrs.field(validator=_validate("key", _text))
    idempotency_key: str = attrs.field(validator=_validate("idempotency_key", _text))
    body: bytes = attrs.field(converter=_body)
    content_type: str = attrs.field(
        default="application/octet-stream", validator=_validate("content_type", _text)
    )
    headers: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_headers)
    trace_context: tuple[tuple[str, str], ...] = attrs.field(default=(), converter=_trace_context)
    created_at: float = attrs.field(converter=_created_at)
    attempts: int = attrs.field(
        default=0,
        validator=_validate("attempts", lambda v, a: count(v, a, owner=_OWNER, minimum=0)),
    )
    next_attempt_at: float = attrs.field(converter=_next_attempt_at)
    state: OutboxState = attrs.field(default=OutboxState.PENDING, converter=_state)
    lease_expires_at: float | None = attrs.field(
        default=None,
        converter=_lease_expires_at,
    )
    last_status: int | None = attrs.field(
        default=None, validator=_validate("last_status", lambda v, _a: check_status(v))
    )
    last_error: str | None = attrs.field(
        default=None, validator=_validate("last_error", _optional_text)
    )
    dead_at: float | None = attrs.field(default=None, converter=_dead_at)

    def __attrs_post_init__(self) -> None:
        in_flight = self.state is OutboxState.IN_FLIGHT
        if in_flight != (self.lease_expires_at is not None):
            raise InvalidArgument(
                "lease_expires_at",
                "must be set when the state is in_flight and None otherwise, got "
                f"{short(self.lease_expires_at)} with state {self.state.value!r}",
                owner=_OWNER,
            )
        dead = self.state is OutboxState.DEAD
        if dead != (self.dead_at is not None):
            raise InvalidArgument(
                "dead_at",
                "must be set when the state is dead and None otherwise, got "
                f"{short(self.dead_at)} with state {self.state.value!r}",
                owner=_OWNER,
            )

    @classmethod
    def new(
        cls,
        *,
        destination: str,
        key: str,
        body: bytes | bytearray | memoryview,
        now: float,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        trace_context: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        idempotency_key: str | None = None,
        message_id: str | None = None,
    ) -> OutboxMessage:
        """Build a new pending message with a fresh id, due at once.

        Args:
            destination: the destination's name.
            key: the ordering key.
            body: the request body.
            now: the time it is enqueued (wall clock): ``created_at`` and
                ``next_attempt_at``, and the time in its id.
            content_type: its media type.
            headers: extra request headers.
            trace_context: the W3C trace context to carry.
            idempotency_key: the receiver's deduplication key; the new id if ``None``.
            message_id: the message's id (and ``webhook-id``: printable ASCII, no
                spaces, no ``.``); a new one by default. Give one derived from what
                the message comes from when the same message may be enqueued again
                after a crash: the outbox stores it once. A key's messages go in id
                order, so derive ids that sort like their sources (a time-sorted
                source id and a suffix per destination, say).

        Raises:
            InvalidArgument: a value is not allowed; the message names it.
        """
        created = check_time(now, "now", owner="OutboxMessage.new")
        if message_id is None:
            message_id = new_id(created)
        else:
            message_id = _webhook_id(message_id, "OutboxMessage.new")
        return cls(
            id=message_id,
            destination=destination,
            key=key,
            idempotency_key=message_id if idempotency_key is None else idempotency_key,
            body=body,
            content_type=content_type,
            headers=headers,
            trace_context=trace_context,
            created_at=created,
            next_attempt_at=created,
        )


# -- statistics -------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DestinationStatistics:
    """What waits in the outbox for one destination.

    Attributes:
        depth: messages in the outbox (pending, in flight and dead: a dead message
            is there until its dead letter is stored, and its key waits behind it).
        in_flight: messages claimed by a worker.
        oldest_age: seconds since the oldest message was created (0 if none, never
            negative).
        dead: messages being dead-lettered (state ``DEAD``), counted in *depth*.
    """

    depth: int
    in_flight: int
    oldest_age: float
    dead: int = 0


@attrs.frozen(kw_only=True)
class OutboxStatistics:
    """A snapshot of the outbox.

    Attributes:
        destinations: per destination with messages, by name.
        depth: messages in the outbox, all destinations (dead ones included).
        in_flight: of them, claimed by a worker.
        dead: of them, being dead-lettered.
    """

    destinations: Mapping[str, DestinationStatistics]
    depth: int
    in_flight: int
    dead: int = 0

    @classmethod
    def of(
        cls, rows: Iterable[tuple[str, int, int, int, float]], *, now: float
    ) -> OutboxStatistics:
        """Build one from ``(destination, depth, in_flight, dead, oldest created_at)`` rows."""
        destinations = {
            destination: DestinationStatistics(
                depth=depth, in_flight=in_flight, dead=dead, oldest_age=max(now - oldest, 0.0)
            )
            for destination, depth, in_flight, dead, oldest in sorted(rows)
        }
        return cls(
            destinations=destinations,
            depth=sum(d.depth for d in destinations.values()),
            in_flight=sum(d.in_flight for d in destinations.values()),
            dead=sum(d.dead for d in destinations.values()),
        )


# -- a destination's durable state ------------------------------------------------------

_DESTINATION_STATE = "DestinationState"


def _disabled(value: object) -> bool:
    if not isinstance(value, bool):
        raise InvalidArgumentType(
            "disabled", f"must be True or False, got {short(value)}", owner=_DESTINATION_STATE
        )
    return value


def _disabled_reason(value: object) -> str | None:
    return None if value is None else check_name(value, "disabled_reason", owner=_DESTINATION_STATE)


def _disabled_at(value: object) -> float | None:
    return None if value is None else check_time(value, "disabled_at", owner=_DESTINATION_STATE)


def _failing_since(value: object) -> float | None:
    return None if value is None else check_time(value, "failing_since", owner=_DESTINATION_STATE)


@attrs.frozen(kw_only=True)
class DestinationState:
    """What the gateway must remember about a destination across a restart.

    Stored with :meth:`OutboxStore.set_destination_state`, read back with
    :meth:`OutboxStore.destination_states`. The default, ``DestinationState()``, is a
    healthy destination in service.

    Attributes:
        disabled: the destination takes no deliveries until it is enabled again.
        disabled_reason: why, while disabled: ``"gone"`` (it answered 410),
            ``"manual"`` (an operator disabled it), ``"sustained_failure"`` (it failed
            without a success for too long), or other text; ``None`` when not
            disabled.
        disabled_at: when it was disabled (wall clock, seconds since the epoch);
            ``None`` when not disabled.
        failing_since: when its first failure after its last success happened
            (wall clock); ``None`` while it is healthy.

    Raises:
        InvalidArgument: a time is negative or not finite, a reason is empty, or a
            reason or ``disabled_at`` is given while ``disabled`` is False.
        InvalidArgumentType: a field has the wrong type.

    .. versionadded:: 0.1.0
    """

    disabled: bool = attrs.field(default=False, converter=_disabled)
    disabled_reason: str | None = attrs.field(default=None, converter=_disabled_reason)
    disabled_at: float | None = attrs.field(default=None, converter=_disabled_at)
    failing_since: float | None = attrs.field(default=None, converter=_failing_since)

    def __attrs_post_init__(self) -> None:
        if self.disabled:
            return
        for field in ("disabled_reason", "disabled_at"):
            value = getattr(self, field)
            if value is not None:
                raise InvalidArgument(
                    field,
                    f"must be None unless disabled is True, got {short(value)} with disabled=False",
                    owner=_DESTINATION_STATE,
                )


# -- argument checks of the store's calls -----------------------------------------------


def check_messages(messages: object, function: str) -> Sequence[OutboxMessage]:
    """Refuse *messages* unless it is a sequence of :class:`OutboxMessage`."""
    if isinstance(messages, (str, bytes)) or not isinstance(messages, (list, tuple)):
        raise InvalidArgumentType(
            "messages",
            f"must be a list or tuple of OutboxMessage, got {short(messages)}",
            owner=function,
        )
    for message in messages:
        if not isinstance(message, OutboxMessage):
            raise InvalidArgumentType(
                "messages", f"must hold OutboxMessage, got {short(message)}", owner=function
            )
    return messages


def check_timeout(timeout: object, function: str) -> float | None:
    """Return *timeout* if it is ``None`` or a number of seconds > 0."""
    if timeout is None:
        return None
    if isinstance(timeout, (int, float)) and not isinstance(timeout, bool) and math.isinf(timeout):
        return None
    return number(timeout, "timeout", owner=function)


def check_claim(
    destination: object, now: object, limit: object, lease: object, function: str
) -> tuple[str, float, int, float]:
    """Check :meth:`OutboxStore.claim`'s arguments; return them converted."""
    return (
        check_name(destination, "destination", owner=function),
        check_time(now, "now", owner=function),
        count(limit, "limit", owner=function, minimum=1),
        number(lease, "lease", owner=function),
    )


def check_destination_state(
    destination: object, state: object, function: str
) -> tuple[str, DestinationState]:
    """Check :meth:`OutboxStore.set_destination_state`'s arguments; return them."""
    if not isinstance(state, DestinationState):
        raise InvalidArgumentType(
            "state", f"must be a DestinationState, got {short(state)}", owner=function
        )
    return check_name(destination, "destination", owner=function), state


def check_dead(destination: object, limit: object, function: str) -> tuple[str | None, int]:
    """Check :meth:`OutboxStore.dead`'s arguments; return them converted."""
    return (
        None if destination is None else check_name(destination, "destination", owner=function),
        count(limit, "limit", owner=function, minimum=1),
    )


def check_mark_dead(
    message_id: object,
    attempts: object,
    status: object,
    error: object,
    function: str,
) -> tuple[str, int, int | None, str | None]:
    """Check :meth:`OutboxStore.mark_dead`'s arguments (but ``now``); return them converted."""
    message_id, attempts, _, status, error = check_retry(
        message_id, attempts, 0.0, status, error, function
    )
    return message_id, attempts, status, error


def check_retry(
    message_id: object,
    attempts: object,
    next_attempt_at: object,
    status: object,
    error: object,
    function: str,
) -> tuple[str, int, float, int | None, str | None]:
    """Check :meth:`OutboxStore.record_retry`'s arguments; return them converted."""
    if error is not None and not isinstance(error, str):
        raise InvalidArgumentType(
            "error", f"must be a string or None, got {short(error)}", owner=function
        )
    return (
        check_name(message_id, "id", owner=function),
        count(attempts, "attempts", owner=function, minimum=0),
        check_time(next_attempt_at, "next_attempt_at", owner=function),
        check_status(status, owner=function),
        error,
    )


# -- the protocol -----------------------------------------------------------------------


@runtime_checkable
class OutboxStore(Protocol):
    """Where the gateway's messages wait for delivery. :class:`SQLiteOutboxStore` and
    :class:`MemoryOutboxStore` implement it; every method is atomic.

    Times are wall-clock seconds since the epoch. A call that takes ``now`` reads
    the store's ``clock`` when it is ``None``.
    """

    async def enqueue(
        self, messages: Sequence[OutboxMessage], *, timeout: float | None = None
    ) -> int:
        """Store *messages*; return how many were new.

        Returns only once they are durable (the SQLite store commits concurrent calls
        together). A message whose id is already stored is skipped, so an enqueue
        retried after a crash between commit and acknowledgement stores it once.

        Args:
            messages: the messages, built with :meth:`OutboxMessage.new`.
            timeout: seconds to wait for the commit; ``None``, no limit.

        Raises:
            TimeoutError: not committed within *timeout*; the messages may still be
                committed (enqueuing them again is safe).
            OutboxError: the store refused them; none was stored.
        """
        ...

    async def claim(
        self, destination: str, *, now: float | None = None, limit: int, lease: float
    ) -> list[OutboxMessage]:
        """Claim the messages of *destination* due for sending, oldest first, in one transaction.

        A message is claimed if it is the head of its key (the lowest id of its
        ``(destination, key)``), is pending with ``next_attempt_at <= now``, and no
        message of its key is in flight. So at most one message per key is claimed,
        and a key's later messages wait behind its head, even while the head waits
        for a retry or is dead (being dead-lettered, until it is removed). Claimed messages are returned in flight, with
        ``lease_expires_at = now + lease``.

        Args:
            destination: whose messages.
            now: the time; the store's clock if ``None``.
            limit: the most messages to claim, >= 1.
            lease: seconds the worker has before :meth:`recover` may hand the message
                to another one.
        """
        ...

    async def record_retry(
        self,
        message_id: str,
        *,
        attempts: int,
        next_attempt_at: float,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        """Put a message back to pending after a failed attempt, due at *next_attempt_at*.

        A dead message is left as it is: once :meth:`mark_dead` decided, the message
        is dead-lettered, whatever a worker whose lease ran out reports later.

        Raises:
            OutboxMessageNotFound: no such id.
        """
        ...

    async def mark_dead(
        self,
        message_id: str,
        *,
        attempts: int,
        status: int | None,
        error: str | None,
        now: float | None = None,
    ) -> OutboxMessage:
        """Record that a message is being dead-lettered; return it as stored, state ``DEAD``.

        The first of dead-lettering's three steps: then the caller stores a dead
        letter built only from the returned message's fields, and then deletes the
        message with :meth:`remove`. A dead message is never claimed, :meth:`recover` and
        :meth:`record_retry` leave it dead, and its key's later messages wait
        behind it until it is removed; after a crash, :meth:`dead` lists it so the
        other two steps can be finished.

        Valid from pending and from in flight (the lease ends). A message already
        dead is returned unchanged: the first marking wins, so whoever rebuilds its
        dead letter rebuilds the same one.

        Args:
            message_id: the message.
            attempts: attempts made, the last one included.
            status: the HTTP status of the last attempt, if it got one.
            error: what went wrong with the last attempt, if anything.
            now: the time it is marked (``dead_at``); the store's clock if ``None``.

        Raises:
            OutboxMessageNotFound: no such id.

        .. versionadded:: 0.1.0
        """
        ...

    async def dead(
        self, *, destination: str | None = None, limit: int = 1000
    ) -> list[OutboxMessage]:
        """Return the dead messages (being dead-lettered), oldest first (by id).

        At start, after a crash, each is a dead-lettering to finish: store its dead
        letter (again: it is built from the row alone, so it is the same one), then
        :meth:`remove` it. Read again until the list is empty if there may be more
        than *limit*.

        Args:
            destination: only this destination's; all destinations' if ``None``.
            limit: the most messages to return, >= 1.

        .. versionadded:: 0.1.0
        """
        ...

    async def complete(self, message_id: str) -> None:
        """Delete a delivered message. A missing id is not an error (already gone)."""
        ...

    async def remove(self, message_id: str) -> OutboxMessage:
        """Delete a message, in any state, and return it (to dead-letter it).

        Raises:
            OutboxMessageNotFound: no such id.
        """
        ...

    async def get(self, message_id: str) -> OutboxMessage | None:
        """Return the message with this id, or ``None``."""
        ...

    async def recover(self, *, now: float | None = None, only_expired: bool = False) -> int:
        """Put in-flight messages back to pending, due at *now*; return how many.

        At start-up (``only_expired=False``) every in-flight message was claimed by
        a process that died, so all go back. While running
        (``only_expired=True``), only those whose lease ended before or at *now*. A
        message keeps its attempts and idempotency key: it is delivered at least
        once, and the receiver can drop the repeat. Dead messages stay dead.
        """
        ...

    async def statistics(self, *, now: float | None = None) -> OutboxStatistics:
        """Return depth, in-flight and dead counts and oldest age per destination, and totals.

        Depth counts every message in the outbox, dead ones included: a dead message
        holds its key's later messages until it is removed.
        """
        ...

    async def destination_states(self) -> Mapping[str, DestinationState]:
        """Return the stored state of every destination that has one, by name, sorted.

        A destination missing from the mapping has the default state,
        ``DestinationState()`` (enabled, healthy).

        .. versionadded:: 0.1.0
        """
        ...

    async def set_destination_state(self, destination: str, state: DestinationState) -> None:
        """Store *destination*'s state, replacing the one it had; durable once it returns.

        Storing the default ``DestinationState()`` deletes the destination's entry.

        Raises:
            InvalidArgument: *destination* is empty.
            InvalidArgumentType: *destination* is not a string or *state* not a
                :class:`DestinationState`.

        .. versionadded:: 0.1.0
        """
        ...

    async def aclose(self) -> None:
        """Close the store; further calls raise :exc:`OutboxError`. Idempotent."""
        ...
