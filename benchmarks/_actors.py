"""The actors and raw primitives the benchmarks share."""

from __future__ import annotations

from typing import Any, Generic, TypeVar

import anyio

import otpy

__all__ = ["Counter", "Echo", "Idle", "Slot"]

T = TypeVar("T")


class Counter(otpy.Actor):
    """Counts its casts; any call answers with the count."""

    count: int

    async def init(self) -> None:
        """Start at zero."""
        self.count = 0

    async def handle_cast(self, message: Any) -> None:
        """Count one cast."""
        self.count += 1

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        """Answer with the count."""
        return self.count


class Echo(otpy.Actor):
    """Answers every call with its message."""

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        """Echo *message*."""
        return message


class Idle(otpy.Actor):
    """An actor with no state that waits for messages it never gets."""


class Slot(Generic[T]):
    """A one-shot reply slot on ``anyio.Event``: the raw request/reply on any backend."""

    __slots__ = ("event", "value")

    def __init__(self) -> None:
        self.event = anyio.Event()
        self.value: T | None = None

    def set(self, value: T) -> None:
        """Store *value* and wake the waiter."""
        self.value = value
        self.event.set()

    async def wait(self) -> T | None:
        """Wait for the value."""
        await self.event.wait()
        return self.value
