"""A bulkhead: at most so many deliveries in flight to one destination, the rest refused.

A slow destination holds its callers; without a bound it holds all of them, and every
other destination waits behind it. A bulkhead admits at most ``max_concurrent``
callers at once. One beyond waits up to ``max_wait`` seconds for a slot (in arrival
order) and is then refused with :class:`BulkheadFull`, so the caller can move on.
"""

from __future__ import annotations

import contextlib
from typing import TYPE_CHECKING, final

import anyio
import attrs

from .._check import count, name, number
from .._exceptions import BulkheadFull

if TYPE_CHECKING:
    from collections.abc import AsyncIterator

__all__ = ["Bulkhead", "BulkheadFull", "BulkheadStatistics"]


@attrs.frozen(kw_only=True)
class BulkheadStatistics:
    """A snapshot of a :class:`Bulkhead`.

    Attributes:
        max_concurrent: how many it admits at once.
        max_wait: how long a caller may wait for a slot, in seconds.
        in_use: slots held now.
        waiting: callers waiting for a slot now.
        admitted: callers admitted so far.
        rejected: callers refused with :class:`BulkheadFull` so far.
    """

    max_concurrent: int
    max_wait: float
    in_use: int
    waiting: int
    admitted: int
    rejected: int


@final
class Bulkhead:
    """At most *max_concurrent* callers inside :meth:`slot` at once; the rest wait, then give up.

    ``async with bulkhead.slot(): ...`` holds a slot for the block. When all are held,
    a caller waits up to *max_wait* seconds (in arrival order: the first to wait is the
    first admitted) and then raises :class:`BulkheadFull`; with ``max_wait=0`` it is
    refused at once. Time is anyio's clock, so a test clock controls it.

    Args:
        max_concurrent: slots: an integer >= 1.
        max_wait: seconds a caller may wait for a slot: a finite number >= 0.
        name: what the bulkhead guards (a destination's name), for messages.

    Raises:
        InvalidArgument: an argument is out of range (an
            :class:`~otpy.InvalidArgumentType` if it has the wrong type).
    """

    def __init__(self, max_concurrent: int, max_wait: float = 0.0, *, name: str | None = None):
        self._max_concurrent = count(max_concurrent, "max_concurrent", owner="Bulkhead")
        self._max_wait = number(
            max_wait, "max_wait", owner="Bulkhead", positive=False, unit=" of seconds"
        )
        self._name = None if name is None else _name(name)
        self._semaphore = anyio.Semaphore(self._max_concurrent)  # FIFO for its waiters
        self._waiting = 0
        self._admitted = 0
        self._rejected = 0

    def __repr__(self) -> str:
        where = f" {self._name!r}" if self._name is not None else ""
        return (
            f"<Bulkhead{where} max_concurrent={self._max_concurrent} max_wait={self._max_wait:g}>"
        )

    @property
    def max_concurrent(self) -> int:
        """How many callers it admits at once."""
        return self._max_concurrent

    @property
    def max_wait(self) -> float:
        """How long, in seconds, a caller may wait for a slot."""
        return self._max_wait

    async def _acquire(self) -> None:
        if self._max_wait == 0:
            try:
                self._semaphore.acquire_nowait()
            except anyio.WouldBlock:
                self._rejected += 1
                raise BulkheadFull(self._name, self._max_concurrent, self._max_wait) from None
            return
        self._waiting += 1
        try:
            with anyio.move_on_after(self._max_wait):
                await self._semaphore.acquire()
                return
        finally:
            self._waiting -= 1
        self._rejected += 1
        raise BulkheadFull(self._name, self._max_concurrent, self._max_wait)

    @contextlib.asynccontextmanager
    async def slot(self) -> AsyncIterator[None]:
        """Hold a slot for the ``async with`` block.

        Raises:
            BulkheadFull: no slot came free within ``max_wait`` seconds.
        """
        await self._acquire()
        self._admitted += 1
        try:
            yield
        finally:
            self._semaphore.release()

    def statistics(self) -> BulkheadStatistics:
        """Return a snapshot."""
        return BulkheadStatistics(
            max_concurrent=self._max_concurrent,
            max_wait=self._max_wait,
            in_use=self._max_concurrent - self._semaphore.value,
            waiting=self._waiting,
            admitted=self._admitted,
            rejected=self._rejected,
        )


def _name(value: object) -> str:
    return name(value, "name", owner="Bulkhead")
