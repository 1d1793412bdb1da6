"""``NamedRef``: talking to whichever actor holds a name, and the hold a name keeps
while its supervised actor restarts (ACT-11, SUP-14).
"""

from __future__ import annotations

from collections import deque
from typing import TYPE_CHECKING, Any, final

import anyio

from .._check import check_seconds
from .._exceptions import ActorStopped, CallTimeout
from . import _envelope
from ._lowlevel import TIMED_OUT, wait_for
from ._ref import CALL, CAST, INFO, ActorRef

if TYPE_CHECKING:
    from ._node import Node

__all__ = ["Hold", "NamedRef", "undeliverable"]


class Hold:
    """A name whose supervised actor is restarting: sends by name wait here (SUP-14)."""

    __slots__ = ("capacity", "dropped", "items")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[tuple[Any, ...]] = deque()
        self.dropped = 0


def undeliverable(node: Node, name: str, item: tuple[Any, ...], reason: str) -> None:
    kind = item[0]
    if kind == CALL:
        fut = item[2]
        if not fut.done():
            fut.set_exception(ActorStopped(name, reason))
        return
    node.dead_letters.publish_undeliverable(
        recipient=name,
        message=_envelope.unwrap(item[1]),
        kind="cast" if kind == CAST else "info",
        reason=reason,
    )


@final
class NamedRef:
    """Talks to whatever actor currently holds a name (ACT-11, SUP-14).

    While a supervised actor with that name is restarting or backing off, messages
    wait in a bounded stash and reach the new incarnation first; beyond the stash
    capacity they are dropped and counted. With nobody behind the name, casts and
    sends become dead letters and calls raise :class:`~otpy.ActorStopped` at once.
    """

    __slots__ = ("_node", "name")

    def __init__(self, node: Node, name: str) -> None:
        self._node = node
        self.name = name

    def __repr__(self) -> str:
        return f"<NamedRef {self.name!r}>"

    def resolve(self) -> ActorRef | None:
        """Return the live actor behind the name now, or ``None``."""
        return self._node.whereis(self.name)

    def _target(self) -> ActorRef | Hold | None:
        target = self._node._registry.get(self.name)
        if isinstance(target, ActorRef) and target._exit_reason is not None:
            return None
        return target

    def _hold(self, hold: Hold, item: tuple[Any, ...]) -> bool:
        if len(hold.items) >= hold.capacity:
            hold.dropped += 1
            undeliverable(self._node, self.name, item, "stash_full")
            return False
        hold.items.append(item)
        return True

    async def call(self, message: Any, *, timeout: float | None = 5.0) -> Any:
        """Call the current incarnation; while it restarts, the call waits in the stash.

        Raises:
            CallTimeout: no reply within *timeout*.
            ActorStopped: nobody holds the name.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN.
        """
        if timeout != 5.0 and timeout is not None:
            check_seconds("NamedRef.call", "timeout", timeout)
        target = self._target()
        if isinstance(target, ActorRef):
            return await target.call(message, timeout=timeout)
        if target is None:
            await anyio.lowlevel.checkpoint()
            raise ActorStopped(self.name)
        backend = self._node._backend
        fut = backend.new_future()
        self._hold(target, (CALL, _envelope.wrap(message), fut))
        result = await wait_for(backend, fut, timeout)
        if result is TIMED_OUT:
            raise CallTimeout(self.name, timeout or 0.0)
        return result

    async def cast(self, message: Any) -> None:
        """Cast to the current incarnation; never raises for a missing actor."""
        target = self._target()
        if isinstance(target, ActorRef):
            await target.cast(message)
        else:
            self._offer(target, (CAST, _envelope.wrap(message)))

    def cast_nowait(self, message: Any) -> None:
        """Cast without waiting for mailbox room."""
        target = self._target()
        if isinstance(target, ActorRef):
            target.cast_nowait(message)
        else:
            self._offer(target, (CAST, _envelope.wrap(message)))

    async def send(self, message: Any) -> None:
        """Send an info to the current incarnation."""
        target = self._target()
        if isinstance(target, ActorRef):
            await target.send(message)
        else:
            self._offer(target, (INFO, _envelope.wrap(message)))

    def send_nowait(self, message: Any) -> None:
        """Send an info without waiting for mailbox room."""
        target = self._target()
        if isinstance(target, ActorRef):
            target.send_nowait(message)
        else:
            self._offer(target, (INFO, _envelope.wrap(message)))

    def _offer(self, target: Hold | None, item: tuple[Any, ...]) -> None:
        if target is None:
            undeliverable(self._node, self.name, item, "noproc")
        else:
            self._hold(target, item)

    def stash_statistics(self) -> tuple[int, int]:
        """Return ``(waiting, dropped)`` for the restart stash, ``(0, 0)`` if none."""
        target = self._node._registry.get(self.name)
        if isinstance(target, Hold):
            return len(target.items), target.dropped
        return 0, 0
