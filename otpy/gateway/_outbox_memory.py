"""The outbox in memory: the :class:`OutboxStore` semantics, for tests and ephemeral nodes.

Nothing survives the process. Each call runs without awaiting in between, so it is
atomic on the event loop; it works on asyncio and trio.
"""

from __future__ import annotations

import bisect
import time
from typing import TYPE_CHECKING, final

import anyio.lowlevel
import attrs

from .._check import check_type
from .._exceptions import OutboxError, OutboxMessageNotFound
from ._outbox import (
    OutboxMessage,
    OutboxState,
    OutboxStatistics,
    check_claim,
    check_messages,
    check_retry,
    check_time,
    check_timeout,
)

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

__all__ = ["MemoryOutboxStore"]


@final
class MemoryOutboxStore:
    """An :class:`OutboxStore` in memory, with the SQLite store's semantics.

    Args:
        clock: the wall clock read for a call's ``now`` when it is ``None``.
    """

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._messages: dict[str, OutboxMessage] = {}
        # (destination, key) -> the ids of its messages, ascending: the head first.
        self._keys: dict[tuple[str, str], list[str]] = {}
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
            if message.id in self._messages:
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
        """Put a message back to pending, due at *next_attempt_at*."""
        message_id, attempts, next_attempt_at, status, error = check_retry(
            message_id, attempts, next_attempt_at, status, error, "MemoryOutboxStore.record_retry"
        )
        self._open()
        message = self._messages.get(message_id)
        if message is None:
            raise OutboxMessageNotFound(message_id)
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

    def _delete(self, message_id: str) -> OutboxMessage | None:
        message = self._messages.pop(message_id, None)
        if message is not None:
            where = (message.destination, message.key)
            ids = self._keys[where]
            ids.remove(message_id)
            if not ids:
                del self._keys[where]
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
        """Return depth, in flight and oldest age per destination."""
        now = self._now(now, "MemoryOutboxStore.statistics")
        self._open()
        rows: dict[str, tuple[str, int, int, float]] = {}
        for m in self._messages.values():
            _, depth, in_flight, oldest = rows.get(
                m.destination, (m.destination, 0, 0, m.created_at)
            )
            rows[m.destination] = (
                m.destination,
                depth + 1,
                in_flight + (m.state is OutboxState.IN_FLIGHT),
                min(oldest, m.created_at),
            )
        await anyio.lowlevel.checkpoint()
        return OutboxStatistics.of(rows.values(), now=now)

    async def aclose(self) -> None:
        """Close the store; further calls raise :exc:`OutboxError`. Idempotent."""
        self._closed = True
        await anyio.lowlevel.checkpoint()
