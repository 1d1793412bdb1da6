"""The outbox a tree owns: :func:`sqlite_outbox` names it, its keeper opens it."""

from __future__ import annotations

import os
import time
from typing import TYPE_CHECKING, final

import attrs

from .._check import count, number
from .._durable import (
    DEFAULT_MAX_BATCH,
    DEFAULT_MAX_PENDING,
    Owned,
    StoreKeeper,
    synchronous_mode,
)
from .._exceptions import OutboxError
from .._supervision import ChildSpec
from ._outbox_sqlite import SQLiteOutboxStore

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from ._outbox import DestinationState, OutboxMessage, OutboxStatistics

__all__ = ["OutboxHandle", "sqlite_outbox"]


@attrs.frozen(kw_only=True)
class _Options:
    synchronous: str
    busy_timeout: float
    max_batch: int
    max_pending: int
    clock: Callable[[], float]


@final
class OutboxHandle(Owned[SQLiteOutboxStore]):
    """An :class:`~otpy.gateway.OutboxStore` whose SQLite file a keeper in the tree opens.

    Make one with :func:`sqlite_outbox`, give it to the :class:`~otpy.gateway.Gateway`
    when the tree is built, and put :meth:`child_spec` before the gateway in a
    ``rest_for_one`` tree. Every method raises :exc:`~otpy.OutboxError` while the
    keeper is not running.

    .. versionadded:: 0.2.0
    """

    kind = "outbox"

    def __init__(self, path: str, options: _Options) -> None:
        super().__init__(path)
        self.options = options

    def closed_error(self, problem: str) -> Exception:
        """An :exc:`~otpy.OutboxError` naming the file."""
        return OutboxError(f"outbox {self.path}: {problem}")

    async def open_store(self) -> SQLiteOutboxStore:
        """Open the SQLite outbox with the handle's options."""
        options = self.options
        return await SQLiteOutboxStore.open(
            self.path,
            synchronous=options.synchronous,
            busy_timeout=options.busy_timeout,
            max_batch=options.max_batch,
            max_pending=options.max_pending,
            clock=options.clock,
        )

    def child_spec(self, *, id: str = "outbox", name: str | None = "outbox") -> ChildSpec:
        """The keeper that opens the file at start and closes it at stop.

        Args:
            id: the child's id.
            name: the name it is registered under, or ``None``.
        """
        return ChildSpec(id=id, start=StoreKeeper, args=(self,), name=name)

    # -- OutboxStore, on the open store -----------------------------------------------

    async def enqueue(
        self, messages: Sequence[OutboxMessage], *, timeout: float | None = None
    ) -> int:
        """See :meth:`OutboxStore.enqueue`."""
        return await self.store.enqueue(messages, timeout=timeout)

    async def claim(
        self, destination: str, *, now: float | None = None, limit: int, lease: float
    ) -> list[OutboxMessage]:
        """See :meth:`OutboxStore.claim`."""
        return await self.store.claim(destination, now=now, limit=limit, lease=lease)

    async def record_retry(
        self,
        message_id: str,
        *,
        attempts: int,
        next_attempt_at: float,
        status: int | None = None,
        error: str | None = None,
    ) -> None:
        """See :meth:`OutboxStore.record_retry`."""
        await self.store.record_retry(
            message_id,
            attempts=attempts,
            next_attempt_at=next_attempt_at,
            status=status,
            error=error,
        )

    async def mark_dead(
        self,
        message_id: str,
        *,
        attempts: int,
        status: int | None,
        error: str | None,
        now: float | None = None,
    ) -> OutboxMessage:
        """See :meth:`OutboxStore.mark_dead`."""
        return await self.store.mark_dead(
            message_id, attempts=attempts, status=status, error=error, now=now
        )

    async def dead(
        self, *, destination: str | None = None, limit: int = 1000
    ) -> list[OutboxMessage]:
        """See :meth:`OutboxStore.dead`."""
        return await self.store.dead(destination=destination, limit=limit)

    async def complete(self, message_id: str) -> None:
        """See :meth:`OutboxStore.complete`."""
        await self.store.complete(message_id)

    async def remove(self, message_id: str) -> OutboxMessage:
        """See :meth:`OutboxStore.remove`."""
        return await self.store.remove(message_id)

    async def get(self, message_id: str) -> OutboxMessage | None:
        """See :meth:`OutboxStore.get`."""
        return await self.store.get(message_id)

    async def recover(self, *, now: float | None = None, only_expired: bool = False) -> int:
        """See :meth:`OutboxStore.recover`."""
        return await self.store.recover(now=now, only_expired=only_expired)

    async def statistics(self, *, now: float | None = None) -> OutboxStatistics:
        """See :meth:`OutboxStore.statistics`."""
        return await self.store.statistics(now=now)

    async def destination_states(self) -> Mapping[str, DestinationState]:
        """See :meth:`OutboxStore.destination_states`."""
        return await self.store.destination_states()

    async def set_destination_state(self, destination: str, state: DestinationState) -> None:
        """See :meth:`OutboxStore.set_destination_state`."""
        await self.store.set_destination_state(destination, state)


def sqlite_outbox(
    path: str | os.PathLike[str],
    *,
    synchronous: str = "FULL",
    busy_timeout: float = 5.0,
    max_batch: int = DEFAULT_MAX_BATCH,
    max_pending: int = DEFAULT_MAX_PENDING,
    clock: Callable[[], float] = time.time,
) -> OutboxHandle:
    """Name a SQLite outbox for a tree to own.

    The file is opened when the handle's keeper (:meth:`OutboxHandle.child_spec`)
    starts, its directory created if missing, and closed when it stops. The options
    are :meth:`SQLiteOutboxStore.open`'s, checked now so a bad one fails when the
    tree is built::

        outbox = sqlite_outbox("var/outbox.sqlite3")
        gateway = Gateway(outbox, destinations)
        # rest_for_one: the outbox opens first; if its keeper restarts, the gateway
        # (which uses it) restarts too.
        root = SupervisorSpec(
            id="node",
            flags=SupervisorFlags(strategy=Strategy.REST_FOR_ONE),
            children=[outbox.child_spec(), gateway.supervisor_spec()],
        )

    Raises:
        InvalidArgument: an option is out of range; the message names it.

    .. versionadded:: 0.2.0
    """
    function = "sqlite_outbox"
    options = _Options(
        synchronous=synchronous_mode(synchronous, owner=function),
        busy_timeout=number(busy_timeout, "busy_timeout", owner=function, positive=False),
        max_batch=count(max_batch, "max_batch", owner=function),
        max_pending=count(max_pending, "max_pending", owner=function),
        clock=clock,
    )
    return OutboxHandle(os.fspath(path), options)
