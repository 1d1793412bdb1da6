"""Service discovery by key, like Akka's receptionist (ACT-16).

Several actors may register under one key. ``find`` returns the current set;
``subscribe`` yields the current set at once and again after every change. An
actor's entries vanish when it exits.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, final

import anyio

from ._ref import add_exit_hook

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

    from ._ref import ActorRef

__all__ = ["Receptionist"]


@final
class Receptionist:
    """The node's registry of services (``node.receptionist``)."""

    def __init__(self) -> None:
        self._members: dict[str, set[ActorRef]] = {}
        self._keys_of: dict[ActorRef, set[str]] = {}
        self._subscribers: dict[str, list[MemoryObjectSendStream[frozenset[ActorRef]]]] = {}
        self.dropped_listings = 0

    def register(self, key: str, ref: ActorRef) -> None:
        """Make *ref* discoverable under *key*; registering twice is a no-op."""
        if not ref.is_alive:
            return
        members = self._members.setdefault(key, set())
        if ref in members:
            return
        members.add(ref)
        if ref not in self._keys_of:
            self._keys_of[ref] = set()
            add_exit_hook(ref, self._on_exit)
        self._keys_of[ref].add(key)
        self._publish(key)

    def deregister(self, key: str, ref: ActorRef) -> None:
        """Remove *ref* from *key*, if it is there."""
        members = self._members.get(key)
        if members is None or ref not in members:
            return
        members.discard(ref)
        if not members:
            del self._members[key]
        keys = self._keys_of.get(ref)
        if keys is not None:
            keys.discard(key)
        self._publish(key)

    def find(self, key: str) -> frozenset[ActorRef]:
        """Return the live actors registered under *key*."""
        return frozenset(self._members.get(key, ()))

    def subscribe(
        self, key: str, max_buffer: int = 100
    ) -> MemoryObjectReceiveStream[frozenset[ActorRef]]:
        """Return a stream of listings for *key*: the current one now, then one per change.

        A subscriber more than *max_buffer* listings behind misses listings (counted in
        ``dropped_listings``); each listing is complete, so the next one catches it up.
        """
        send, receive = anyio.create_memory_object_stream[frozenset["ActorRef"]](max_buffer)
        send.send_nowait(self.find(key))
        self._subscribers.setdefault(key, []).append(send)
        return receive

    def _on_exit(self, ref: ActorRef, reason: object) -> None:
        for key in self._keys_of.pop(ref, set()):
            members = self._members.get(key)
            if members is not None:
                members.discard(ref)
                if not members:
                    del self._members[key]
            self._publish(key)

    def _publish(self, key: str) -> None:
        streams = self._subscribers.get(key)
        if not streams:
            return
        listing = self.find(key)
        for stream in list(streams):
            try:
                stream.send_nowait(listing)
            except anyio.WouldBlock:
                self.dropped_listings += 1
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                streams.remove(stream)

    def close(self) -> None:
        """Close every subscription (the node is stopping)."""
        for streams in self._subscribers.values():
            for stream in streams:
                stream.close()
        self._subscribers.clear()
