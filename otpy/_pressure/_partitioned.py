"""A bounded, key-partitioned work queue with demand-driven workers (P1, P3, P8, P10).

Items go to partition ``partition_of(key, partitions)`` (the routing the dead-letter
replay workers use), each partition a :class:`BoundedQueue` with its own capacity
and pressure level. One worker per partition takes that partition's items in
arrival order, so the same key is handled strictly in order and distinct
partitions run concurrently.

Flow is demand-driven, as in GenStage: a worker pulls at most ``max_demand`` items
out of its queue into the partition's *outstanding* buffer and asks for more only
when the outstanding count falls to ``min_demand``. Outstanding items belong to
the queue, not to the worker task: an item is removed only once its handler has
returned or raised, so a worker that is cancelled mid-item leaves it at the head
of the buffer for the next worker (or for :meth:`PartitionedQueue.aclose` to hand
back).
"""

from __future__ import annotations

import collections
import contextlib
import logging
from typing import TYPE_CHECKING, Generic, TypeVar, final

import anyio
import anyio.lowlevel
import attrs

from .._exceptions import QueueClosed
from .._partition import partition_of
from ._policy import PressurePolicy, Priority
from ._queue import BoundedQueue, QueueStatistics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable

__all__ = [
    "PartitionStatistics",
    "PartitionedQueue",
    "PartitionedQueueStatistics",
    "open_partitioned_workers",
]

logger = logging.getLogger("otpy.pressure")

T = TypeVar("T")

_DEFAULT_POLICY = PressurePolicy()


@attrs.frozen(kw_only=True)
class PartitionStatistics:
    """One partition of a :class:`PartitionedQueue`.

    Attributes:
        partition: its index, in ``range(partitions)``.
        queue: the partition's :class:`QueueStatistics` (items not yet demanded).
        outstanding: items demanded by the worker and not finished (including the
            one its handler is running); never above ``max_demand``.
        peak_outstanding: the most outstanding at once so far.
        demands: how many times the worker asked for more (each refill counts once).
        processed: items whose handler returned.
        errors: items whose handler raised an ``Exception``.
    """

    partition: int
    queue: QueueStatistics
    outstanding: int
    peak_outstanding: int
    demands: int
    processed: int
    errors: int


@attrs.frozen(kw_only=True)
class PartitionedQueueStatistics:
    """A snapshot of a :class:`PartitionedQueue`.

    ``queued`` and ``capacity`` are totals over the partitions, with the same names
    as :class:`QueueStatistics`, so the pressure monitor reads this too.

    Attributes:
        name: the queue's name.
        partitions: one :class:`PartitionStatistics` per partition, in order.
        closed: :meth:`PartitionedQueue.aclose` has been called.
        max_demand: the attached workers' ``max_demand`` (``None`` with no workers).
        min_demand: the attached workers' ``min_demand`` (``None`` with no workers).
        callback_errors: ``on_error`` calls that raised (each is logged).
    """

    name: str
    partitions: tuple[PartitionStatistics, ...]
    closed: bool
    max_demand: int | None
    min_demand: int | None
    callback_errors: int

    @property
    def queued(self) -> int:
        """Items waiting in the partition queues, in all."""
        return sum(p.queue.queued for p in self.partitions)

    @property
    def capacity(self) -> int:
        """The partition queues' capacities, in all."""
        return sum(p.queue.capacity for p in self.partitions)

    @property
    def outstanding(self) -> int:
        """Items demanded and not finished, in all."""
        return sum(p.outstanding for p in self.partitions)

    @property
    def processed(self) -> int:
        """Items whose handler returned, in all."""
        return sum(p.processed for p in self.partitions)

    @property
    def errors(self) -> int:
        """Items whose handler raised, in all."""
        return sum(p.errors for p in self.partitions)


@attrs.define(eq=False)
class _Partition(Generic[T]):
    queue: BoundedQueue[tuple[str, T]]
    outstanding: collections.deque[tuple[str, T]] = attrs.Factory(collections.deque)
    arrived: anyio.Event = attrs.Factory(anyio.Event)  # set (and replaced) on put/close
    putting: int = 0
    peak_outstanding: int = 0
    demands: int = 0
    processed: int = 0
    errors: int = 0

    def wake(self) -> None:
        self.arrived.set()
        self.arrived = anyio.Event()


@attrs.define(eq=False)
class _Workers:
    max_demand: int
    min_demand: int
    scopes: list[anyio.CancelScope]
    running: int
    stopped: anyio.Event = attrs.Factory(anyio.Event)


@final
class PartitionedQueue(Generic[T]):
    """*partitions* bounded queues; an item's key picks its queue with :func:`partition_of`.

    ``await put(key, item, priority=...)`` applies that partition's admission, exactly
    as :meth:`BoundedQueue.put` does (throttle, defer, :class:`LoadShed`,
    :class:`QueueFull`): one hot key fills its own partition and leaves the others
    accepting. Consume with :func:`open_partitioned_workers`; stop with
    :meth:`aclose`.

    Args:
        partitions: how many partitions (and workers), >= 1.
        capacity_per_partition: each partition queue's capacity, >= 1.
        name: names the queue; partition *i* is ``f"{name}[{i}]"``.
        policy: the pressure policy of every partition queue.
        on_reject: called as ``on_reject(key, item, priority, reason)`` for every
            refused item (``reason`` ``"load_shed"`` or ``"queue_full"``), as
            :class:`BoundedQueue` does; the seam to dead letters.

    Raises:
        ValueError: *partitions* or *capacity_per_partition* is not an integer >= 1.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        partitions: int,
        capacity_per_partition: int,
        *,
        name: str = "partitioned",
        policy: PressurePolicy = _DEFAULT_POLICY,
        on_reject: Callable[[str, T, Priority, str], object] | None = None,
    ) -> None:
        if isinstance(partitions, bool) or not isinstance(partitions, int) or partitions < 1:
            raise ValueError(
                f"queue {name!r}: partitions must be an integer >= 1, got {partitions!r}"
            )
        reject = None
        if on_reject is not None:
            callback = on_reject

            def reject(entry: tuple[str, T], priority: Priority, reason: str) -> object:
                return callback(entry[0], entry[1], priority, reason)

        self._name = name
        self._parts: list[_Partition[T]] = [
            _Partition(
                BoundedQueue(
                    capacity_per_partition, name=f"{name}[{i}]", policy=policy, on_reject=reject
                )
            )
            for i in range(partitions)
        ]
        self._closed = False
        self._workers: _Workers | None = None
        self._callback_errors = 0

    def __repr__(self) -> str:
        state = " closed" if self._closed else ""
        return f"<PartitionedQueue {self._name!r} {len(self._parts)} partitions{state}>"

    @property
    def name(self) -> str:
        """The queue's name."""
        return self._name

    @property
    def partitions(self) -> int:
        """How many partitions."""
        return len(self._parts)

    @property
    def closed(self) -> bool:
        """Whether :meth:`aclose` has been called."""
        return self._closed

    def partition_of(self, key: str) -> int:
        """Return the partition that handles *key*: ``partition_of(key, partitions)``."""
        return partition_of(key, len(self._parts))

    def _closed_error(self, part: _Partition[T], priority: Priority) -> QueueClosed:
        queue = part.queue
        return QueueClosed(queue.name, priority, queue.level, len(queue), queue.capacity)

    async def put(self, key: str, item: T, *, priority: Priority = Priority.NORMAL) -> None:
        """Queue *item* on *key*'s partition, after the wait the pressure calls for.

        Raises:
            QueueClosed: :meth:`aclose` has been called.
            LoadShed: the partition is at ``shed`` and sheds *priority*.
            QueueFull: the partition is at capacity (every priority).
        """
        await anyio.lowlevel.checkpoint()
        part = self._parts[self.partition_of(key)]
        if self._closed:
            raise self._closed_error(part, priority)
        part.putting += 1
        try:
            await part.queue.put((key, item), priority=priority)
        finally:
            part.putting -= 1
            part.wake()

    def put_nowait(self, key: str, item: T, *, priority: Priority = Priority.NORMAL) -> None:
        """Queue *item* on *key*'s partition now, or refuse it (see :meth:`BoundedQueue.put_nowait`).

        Raises:
            QueueClosed: :meth:`aclose` has been called.
            LoadShed: the partition is at ``shed`` and sheds *priority*.
            QueueFull: the partition is at capacity (every priority).
            anyio.WouldBlock: *priority* is deferred at the partition's level.
        """
        part = self._parts[self.partition_of(key)]
        if self._closed:
            raise self._closed_error(part, priority)
        part.queue.put_nowait((key, item), priority=priority)
        part.wake()

    async def aclose(self, timeout: float = 30.0) -> list[tuple[str, T]]:
        """Stop accepting, let the workers finish what is queued, and return the rest (P10).

        From the first call on, :meth:`put` raises :class:`QueueClosed`. Attached
        workers keep going until every partition is empty (puts already waiting
        to be admitted included), then exit. If that takes longer than *timeout*
        seconds they are cancelled. Whatever was not finished is removed from the
        queue and returned as ``(key, item)`` pairs, partition by partition in
        order, for the caller to dead-letter: nothing is dropped. An item whose
        handler was cancelled midway is returned too (its side effect may or may
        not have happened). With no workers attached, everything queued is
        returned at once.

        Args:
            timeout: seconds to wait for the workers to drain (default 30, as P10).
        """
        await anyio.lowlevel.checkpoint()
        if not self._closed:
            self._closed = True
            for part in self._parts:
                part.wake()
        workers = self._workers
        if workers is not None:
            with anyio.move_on_after(timeout):
                await workers.stopped.wait()
            if not workers.stopped.is_set():
                logger.warning(
                    "queue %r: workers did not drain within %ss; cancelling them",
                    self._name,
                    timeout,
                )
                for scope in workers.scopes:
                    scope.cancel()
                with anyio.CancelScope(shield=True):
                    await workers.stopped.wait()
        leftovers: list[tuple[str, T]] = []
        for part in self._parts:
            leftovers.extend(part.outstanding)
            part.outstanding.clear()
            while True:
                try:
                    leftovers.append(part.queue.get_nowait())
                except anyio.WouldBlock:
                    break
        return leftovers

    def statistics(self) -> PartitionedQueueStatistics:
        """Return a snapshot: each partition's queue statistics and demand counters."""
        workers = self._workers
        return PartitionedQueueStatistics(
            name=self._name,
            partitions=tuple(
                PartitionStatistics(
                    partition=i,
                    queue=part.queue.statistics(),
                    outstanding=len(part.outstanding),
                    peak_outstanding=part.peak_outstanding,
                    demands=part.demands,
                    processed=part.processed,
                    errors=part.errors,
                )
                for i, part in enumerate(self._parts)
            ),
            closed=self._closed,
            max_demand=None if workers is None else workers.max_demand,
            min_demand=None if workers is None else workers.min_demand,
            callback_errors=self._callback_errors,
        )

    # -- workers ---------------------------------------------------------------

    def _attach(self, max_demand: int, min_demand: int) -> _Workers:
        if self._workers is not None:
            raise anyio.BusyResourceError(
                f"consuming from partitioned queue {self._name!r}: it already has workers"
            )
        workers = _Workers(
            max_demand=max_demand,
            min_demand=min_demand,
            scopes=[anyio.CancelScope() for _ in self._parts],
            running=len(self._parts),
        )
        self._workers = workers
        return workers

    def _detach(self, workers: _Workers) -> None:
        if self._workers is workers:
            self._workers = None

    def _demand(self, part: _Partition[T], max_demand: int) -> None:
        """Pull items until *max_demand* are outstanding or the queue is empty."""
        if len(part.outstanding) >= max_demand or not len(part.queue):
            return
        part.demands += 1
        while len(part.outstanding) < max_demand:
            try:
                part.outstanding.append(part.queue.get_nowait())
            except anyio.WouldBlock:
                break
        part.peak_outstanding = max(part.peak_outstanding, len(part.outstanding))

    async def _work(
        self,
        index: int,
        workers: _Workers,
        handler: Callable[[str, T], Awaitable[object]],
        on_error: Callable[[str, T, Exception], object] | None,
    ) -> None:
        part = self._parts[index]
        try:
            with workers.scopes[index]:
                while True:
                    if len(part.outstanding) <= workers.min_demand:
                        self._demand(part, workers.max_demand)
                    if not part.outstanding:
                        if self._closed and not part.putting:
                            return  # drained
                        await part.arrived.wait()
                        continue
                    key, item = part.outstanding[0]
                    try:
                        await handler(key, item)
                    except Exception as exc:
                        part.errors += 1
                        self._handle_error(index, key, item, exc, on_error)
                    else:
                        part.processed += 1
                    part.outstanding.popleft()
                    await anyio.lowlevel.checkpoint()  # one busy partition must not starve others
        finally:
            workers.running -= 1
            if workers.running == 0:
                workers.stopped.set()

    def _handle_error(
        self,
        index: int,
        key: str,
        item: T,
        exc: Exception,
        on_error: Callable[[str, T, Exception], object] | None,
    ) -> None:
        if on_error is None:
            logger.error(
                "queue %r: handler raised %s in partition %d; the worker goes on",
                self._name,
                type(exc).__name__,
                index,
                exc_info=exc,
            )
            return
        try:
            on_error(key, item, exc)
        except Exception:
            self._callback_errors += 1
            logger.exception(
                "queue %r: on_error raised in partition %d; the worker goes on",
                self._name,
                index,
            )


@contextlib.asynccontextmanager
async def open_partitioned_workers(
    queue: PartitionedQueue[T],
    handler: Callable[[str, T], Awaitable[object]],
    *,
    max_demand: int = 10,
    min_demand: int | None = None,
    on_error: Callable[[str, T, Exception], object] | None = None,
) -> AsyncIterator[PartitionedQueue[T]]:
    """Run one worker per partition of *queue* for the duration of the block.

    Each worker calls ``await handler(key, item)`` for its partition's items, one
    at a time, in arrival order (P3); partitions run concurrently. A worker holds
    at most *max_demand* items outstanding and pulls more only when that falls to
    *min_demand* (P1).

    A handler that raises an ``Exception`` does not stop anything: the error is
    counted in ``errors``, passed to ``on_error(key, item, exc)`` (or logged when
    there is none) and the worker goes on with the next item; other partitions
    never notice. Cancellation and other ``BaseException`` propagate.

    Leaving the block cancels the workers without draining; unfinished items stay
    in the queue (a cancelled item first in line) for the next workers or
    :meth:`PartitionedQueue.aclose`. For a graceful drain, ``await queue.aclose()``
    inside the block.

    Args:
        queue: the queue to consume; one set of workers at a time.
        handler: handles one item.
        max_demand: the most items a worker has outstanding (>= 1).
        min_demand: refill when outstanding falls to this (``0 <= min_demand <
            max_demand``); default ``max_demand // 2``.
        on_error: called with each item whose handler raised; if it raises, the
            error is logged and counted in ``callback_errors``.

    Raises:
        ValueError: *max_demand* or *min_demand* is out of range.
        anyio.BusyResourceError: *queue* already has workers.
    """
    if isinstance(max_demand, bool) or not isinstance(max_demand, int) or max_demand < 1:
        raise ValueError(
            f"workers of queue {queue.name!r}: max_demand must be an integer >= 1, "
            f"got {max_demand!r}"
        )
    low = max_demand // 2 if min_demand is None else min_demand
    if isinstance(low, bool) or not isinstance(low, int) or not 0 <= low < max_demand:
        raise ValueError(
            f"workers of queue {queue.name!r}: min_demand must be an integer in "
            f"[0, max_demand={max_demand}), got {min_demand!r}"
        )
    workers = queue._attach(max_demand, low)
    try:
        async with anyio.create_task_group() as tg:
            for index in range(queue.partitions):
                tg.start_soon(
                    queue._work, index, workers, handler, on_error, name=f"{queue.name}[{index}]"
                )
            try:
                yield queue
            finally:
                for scope in workers.scopes:
                    scope.cancel()
    finally:
        queue._detach(workers)
