"""The outbox in memory: the :class:`OutboxStore` semantics, for tests and ephemeral nodes.

Nothing survives the process. Each call runs without awaiting in between, so it is
atomic on the event loop; it works on asyncio and trio.
"""

from __future__ import annotations

import bisect
import collections
import time
from typing import TYPE_CHECKING, final

import anyio.lowlevel
import attrs

from .._check import check_type
from .._exceptions import OutboxError, OutboxMessageNotFound
from ._outbox import (
    SETTLED_KEPT,
    DestinationState,
    OutboxMessage,
    OutboxState,
    OutboxStatistics,
    check_claim,
    check_dead,
    check_destination_state,
    check_mark_dead,
    check_messages,
    check_retry,
    check_time,
    check_timeout,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

__all__ = ["MemoryOutboxStore"]


@final
class MemoryOutboxStore:
    """An :class:`OutboxStore` in memory, with the SQLite store's semantics.

    Its destination states, like its messages, last as long as the process.

    Args:
        clock: the wall clock read for a call's ``now`` when it is ``None``.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._messages: dict[str, OutboxMessage] = {}
        # (destination, key) -> the ids of its messages, ascending: the head first.
        self._keys: dict[tuple[str, str], list[str]] = {}
        self._destinations: dict[str, DestinationState] = {}
        # The ids of the latest SETTLED_KEPT messages that left: never stored again.
        self._settled: collections.OrderedDict[str, None] = collections.OrderedDict()
        self._closed = False

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<MemoryOutboxStore{state} {len(self._messages)} messages>"

    def _open(self) -> None:
        if self._closed:
            raise OutboxError("the outbox store is closed")

    def _now(self, now: float | None, function: str) -> float:
        return check_time(self.clock() if now is None else now, "now", owner=function)

    async def enqueue(
        self, messages: Sequence[OutboxMessage], *, timeout: float | None = None
    ) -> int:
        """Store *messages*; return how many were new (see :meth:`OutboxStore.enqueue`)."""
        check_messages(messages, "MemoryOutboxStore.enqueue")
        check_timeout(timeout, "MemoryOutboxStore.enqueue")
        self._open()
        new = 0
        for message in messages:
            if message.id in self._messages or message.id in self._settled:
                continue
            self._messages[message.id] = message
            bisect.insort(self._keys.setdefault((message.destination, message.key), []), message.id)
            new += 1
        await anyio.lowlevel.checkpoint()
        return new

    async def claim(
        self, destination: str, *, now: float | None = None, limit: int, lease: float
    ) -> list[OutboxMessage]:
        """Claim the due heads of *destination*'s keys (see :meth:`OutboxStore.claim`)."""
        function = "MemoryOutboxStore.claim"
        destination, now, limit, lease = check_claim(
            destination, self._now(now, function), limit, lease, function
        )
        self._open()
        heads: list[OutboxMessage] = []
        for (where, _key), ids in self._keys.items():
            if where != destination:
                continue
            head = self._messages[ids[0]]
            if head.state is not OutboxState.PENDING or head.next_attempt_at > now:
                continue
            if any(self._messages[i].state is OutboxState.IN_FLIGHT for i in ids[1:]):
                continue
            heads.append(head)
        heads.sort(key=lambda m: m.id)
        claimed = [
            attrs.evolve(m, state=OutboxState.IN_FLIGHT, lease_expires_at=now + lease)
            for m in heads[:limit]
        ]
        for message in claimed:
            self._messages[message.id] = message
        await anyio.lowlevel.checkpoint()
        return claimed

    async def record_retry(
        self,
        message_id: str,
        *,
        attempts: int,
        next_attempt_at: float,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        """Put a message back to pending, due at *next_attempt_at*; a dead one stays dead."""
        message_id, attempts, next_attempt_at, status, error = check_retry(
            message_id, attempts, next_attempt_at, status, error, "MemoryOutboxStore.record_retry"
        )
        self._open()
        message = self._messages.get(message_id)
        if message is None:
            raise OutboxMessageNotFound(message_id)
        if message.state is not OutboxState.DEAD:
            self._messages[message_id] = attrs.evolve(
                message,
                state=OutboxState.PENDING,
                lease_expires_at=None,
                attempts=attempts,
                next_attempt_at=next_attempt_at,
                last_status=status,
                last_error=error,
            )
        await anyio.lowlevel.checkpoint()

    async def mark_dead(
        self,
        message_id: str,
        *,
        attempts: int,
        status: int | None,
        error: str | None,
        now: float | None = None,
    ) -> OutboxMessage:
        """Record that a message is being dead-lettered (see :meth:`OutboxStore.mark_dead`).

        Raises:
            OutboxMessageNotFound: no such id.
        """
        function = "MemoryOutboxStore.mark_dead"
        message_id, attempts, status, error = check_mark_dead(
            message_id, attempts, status, error, function
        )
        now = self._now(now, function)
        self._open()
        message = self._messages.get(message_id)
        if message is None:
            raise OutboxMessageNotFound(message_id)
        if message.state is not OutboxState.DEAD:
            message = self._messages[message_id] = attrs.evolve(
                message,
                state=OutboxState.DEAD,
                lease_expires_at=None,
                attempts=attempts,
                last_status=status,
                last_error=error,
                dead_at=now,
            )
        await anyio.lowlevel.checkpoint()
        return message

    async def dead(
        self, *, destination: str | None = None, limit: int = 1000
    ) -> list[OutboxMessage]:
        """Return the dead messages, oldest first (see :meth:`OutboxStore.dead`)."""
        destination, limit = check_dead(destination, limit, "MemoryOutboxStore.dead")
        self._open()
        dead = sorted(
            (
                m
                for m in self._messages.values()
                if m.state is OutboxState.DEAD
                and (destination is None or m.destination == destination)
            ),
            key=lambda m: m.id,
        )
        await anyio.lowlevel.checkpoint()
        return dead[:limit]

    def _delete(self, message_id: str) -> OutboxMessage | None:
        message = self._messages.pop(message_id, None)
        if message is not None:
            where = (message.destination, message.key)
            ids = self._keys[where]
            ids.remove(message_id)
            if not ids:
                del self._keys[where]
            self._settled[message_id] = None
            if len(self._settled) > SETTLED_KEPT:
                self._settled.popitem(last=False)
        return message

    async def complete(self, message_id: str) -> None:
        """Delete a delivered message; a missing id is not an error."""
        check_type("MemoryOutboxStore.complete", "message_id", message_id, str, "a message id")
        self._open()
        self._delete(message_id)
        await anyio.lowlevel.checkpoint()

    async def remove(self, message_id: str) -> OutboxMessage:
        """Delete a message and return it.

        Raises:
            OutboxMessageNotFound: no such id.
        """
        check_type("MemoryOutboxStore.remove", "message_id", message_id, str, "a message id")
        self._open()
        message = self._delete(message_id)
        await anyio.lowlevel.checkpoint()
        if message is None:
            raise OutboxMessageNotFound(message_id)
        return message

    async def get(self, message_id: str) -> OutboxMessage | None:
        """Return the message with this id, or ``None``."""
        check_type("MemoryOutboxStore.get", "message_id", message_id, str, "a message id")
        self._open()
        await anyio.lowlevel.checkpoint()
        return self._messages.get(message_id)

    async def recover(self, *, now: float | None = None, only_expired: bool = False) -> int:
        """Put in-flight messages (with *only_expired*, those whose lease ended) back to pending."""
        now = self._now(now, "MemoryOutboxStore.recover")
        self._open()
        recovered = 0
        for message in list(self._messages.values()):
            if message.state is not OutboxState.IN_FLIGHT:
                continue
            assert message.lease_expires_at is not None
            if only_expired and message.lease_expires_at > now:
                continue
            self._messages[message.id] = attrs.evolve(
                message, state=OutboxState.PENDING, lease_expires_at=None, next_attempt_at=now
            )
            recovered += 1
        await anyio.lowlevel.checkpoint()
        return recovered

    async def statistics(self, *, now: float | None = None) -> OutboxStatistics:
        """Return depth (dead messages included), in flight, dead and oldest age per destination."""
        now = self._now(now, "MemoryOutboxStore.statistics")
        self._open()
        rows: dict[str, tuple[str, int, int, int, float]] = {}
        for m in self._messages.values():
            _, depth, in_flight, dead, oldest = rows.get(
                m.destination, (m.destination, 0, 0, 0, m.created_at)
            )
            rows[m.destination] = (
                m.destination,
                depth + 1,
                in_flight + (m.state is OutboxState.IN_FLIGHT),
                dead + (m.state is OutboxState.DEAD),
                min(oldest, m.created_at),
            )
        await anyio.lowlevel.checkpoint()
        return OutboxStatistics.of(rows.values(), now=now)

    async def destination_states(self) -> Mapping[str, DestinationState]:
        """Return the stored state of every destination that has one, by name."""
        self._open()
        await anyio.lowlevel.checkpoint()
        return dict(sorted(self._destinations.items()))

    async def set_destination_state(self, destination: str, state: DestinationState) -> None:
        """Store *destination*'s state; the default state deletes its entry."""
        destination, state = check_destination_state(
            destination, state, "MemoryOutboxStore.set_destination_state"
        )
        self._open()
        if state == DestinationState():
            self._destinations.pop(destination, None)
        else:
            self._destinations[destination] = state
        await anyio.lowlevel.checkpoint()

    async def aclose(self) -> None:
        """Close the store; further calls raise :exc:`OutboxError`. Idempotent."""
        self._closed = True
        await anyio.lowlevel.checkpoint()
