"""A bounded, key-partitioned work queue with supervised, demand-driven workers (PRS-1, PRS-3, PRS-8, PRS-10).

Items go to partition ``partition_of(key, partitions)``, each partition a
:class:`BoundedQueue` with its own capacity and pressure level. One worker per
partition takes that partition's items in arrival order, so the same key is handled
strictly in order and distinct partitions run concurrently. The replay workers of
``otpy.deadletter`` are built on it.

Workers are actors (:class:`PartitionWorker`) under a supervisor: build their specs
with :meth:`PartitionedQueue.worker_specs` (to put them in a tree of your own) or
:meth:`PartitionedQueue.supervisor_spec`, or run them for a block with
:func:`open_partitioned_workers`. A worker handles its partition's items inside one
mailbox message at a time, at most ``max_demand`` items per message, so system
messages (a supervisor's stop, ``get_status``) get in between and a graceful stop
lets the item in hand finish. An idle worker costs one mailbox message to wake.

Flow is demand-driven, as in GenStage: a worker pulls at most ``max_demand`` items
out of its queue into the partition's *outstanding* buffer and asks for more only
when the outstanding count falls to ``min_demand``. Outstanding items belong to the
queue, not to the worker: an item is removed only once its handler has returned or
raised, so a worker stopped mid-item leaves it at the head of the buffer, and the
worker that takes over (its restarted successor, the next set of workers) handles it
again first: delivery is at least once, and ``redelivered`` counts those items.
"""

from __future__ import annotations

import collections
import contextlib
import inspect
from typing import TYPE_CHECKING, Any, Final, Generic, TypeAlias, TypeVar, final

import anyio
import anyio.lowlevel
import attrs

from .._check import callable_or_none, count, number, short
from .._check import name as check_name
from .._core import (
    SHUTDOWN,
    Actor,
    DeadLetterSuppression,
    activate_context,
    capture_sender_context,
    deliver_system_info,
    is_normal_exit,
    needs_attention,
    restore_context,
)
from .._exceptions import InvalidArgument, QueueClosed
from .._partition import partition_of
from .._redact import get_logger
from .._supervision import (
    ChildSpec,
    Restart,
    Strategy,
    SupervisorFlags,
    SupervisorSpec,
    open_supervisor,
)
from ._policy import PressurePolicy, Priority, as_priority
from ._queue import BoundedQueue, QueueStatistics

if TYPE_CHECKING:
    from collections.abc import AsyncIterator, Awaitable, Callable, Mapping

    from .._core import ActorRef, NamedRef

__all__ = [
    "PartitionStatistics",
    "PartitionWorker",
    "PartitionedQueue",
    "PartitionedQueueStatistics",
    "QueueDrainer",
    "open_partitioned_workers",
]

logger = get_logger("otpy.pressure")

T = TypeVar("T")

_DEFAULT_POLICY = PressurePolicy()

MAX_PARTITIONS: Final = 65536
"""The most partitions a queue has: each is a queue and a worker actor."""

_Entry: TypeAlias = "tuple[str, T, object | None]"
"""What a partition holds: key, item, and the producer's trace context (or ``None``)."""


Leftovers: TypeAlias = "Callable[[str, list[tuple[str, T]]], Awaitable[object]]"
"""``await on_leftovers(queue_name, leftovers)``: stores the ``(key, item)`` pairs a drain left."""


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
        redelivered: items handed to a worker again because the one before it
            stopped while handling them (at-least-once delivery).
        worker: the label of the worker attached now, or ``None``.
    """

    partition: int
    queue: QueueStatistics
    outstanding: int
    peak_outstanding: int
    demands: int
    processed: int
    errors: int
    redelivered: int
    worker: str | None


@attrs.frozen(kw_only=True)
class PartitionedQueueStatistics:
    """A snapshot of a :class:`PartitionedQueue`.

    ``queued`` and ``capacity`` are totals over the partitions, with the same names
    as :class:`QueueStatistics`; the pressure monitor reads ``partitions`` to give
    each partition its own level.

    Attributes:
        name: the queue's name.
        partitions: one :class:`PartitionStatistics` per partition, in order.
        closed: :meth:`PartitionedQueue.aclose` has been called.
        max_demand: the attached workers' ``max_demand`` (``None`` with no workers).
        min_demand: the attached workers' ``min_demand`` (``None`` with no workers).
    """

    name: str
    partitions: tuple[PartitionStatistics, ...]
    closed: bool
    max_demand: int | None
    min_demand: int | None

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

    @property
    def redelivered(self) -> int:
        """Items handed to a worker again after its predecessor stopped mid-item, in all."""
        return sum(p.redelivered for p in self.partitions)


@attrs.frozen(eq=False)
class _Consumer(Generic[T]):
    """What one set of workers does with the items: shared by the workers of a spec."""

    handler: Callable[[str, T], Awaitable[object]]
    max_demand: int
    min_demand: int
    on_error: Callable[[str, T, Exception], object] | None


@attrs.define(eq=False)
class _Partition(Generic[T]):
    queue: BoundedQueue[_Entry[T]]
    outstanding: collections.deque[_Entry[T]] = attrs.Factory(collections.deque)
    worker: ActorRef | None = None
    waiting: bool = False  # the worker is idle: wake it with one _WORK when an item arrives
    in_hand: bool = False  # the head of outstanding is being handled
    putting: int = 0
    peak_outstanding: int = 0
    demands: int = 0
    processed: int = 0
    errors: int = 0
    redelivered: int = 0


def _is_async(fn: object) -> bool:
    """Whether calling *fn* returns an awaitable: an ``async def``, or an object with one as ``__call__``."""
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an instance's async __call__
    )


def _check_callbacks(queue: str, handler: object, on_error: object) -> None:
    """Refuse, when the spec is built, callbacks that would fail on every item."""
    if not callable(handler) or not _is_async(handler):
        raise TypeError(
            f"workers of queue {queue!r}: handler must be an async function "
            f"(async def handler(key, item)), got {short(handler)}"
        )
    if on_error is not None and (not callable(on_error) or _is_async(on_error)):
        raise TypeError(
            f"workers of queue {queue!r}: on_error must be a plain function called "
            f"synchronously (def on_error(key, item, exc)), got {short(on_error)}"
        )


def _check_demand(queue: str, max_demand: int, min_demand: int | None) -> int:
    owner = f"workers of queue {queue!r}"
    count(max_demand, "max_demand", owner=owner)
    if min_demand is None:
        return max_demand // 2
    low = count(min_demand, "min_demand", owner=owner, minimum=0)
    if low >= max_demand:
        raise InvalidArgument(
            "min_demand",
            f"must be an integer in [0, max_demand={max_demand}), got {short(min_demand)}",
            owner=owner,
        )
    return low


@final
class PartitionedQueue(Generic[T]):
    """*partitions* bounded queues; an item's key picks its queue with :func:`partition_of`.

    ``await put(key, item, priority=...)`` applies that partition's admission, exactly
    as :meth:`BoundedQueue.put` does (throttle, defer, :class:`LoadShed`,
    :class:`QueueFull`): one hot key fills its own partition and leaves the others
    accepting. Consume with supervised workers (:meth:`worker_specs`,
    :meth:`supervisor_spec`, :func:`open_partitioned_workers`); stop with
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
        InvalidArgument: *partitions* is not an integer in ``[1, 65536]``,
            *capacity_per_partition* not one in ``[1, 2**53]``, *name* is empty or not
            valid text, or *policy* or *on_reject* has the wrong type (an
            :class:`~otpy.InvalidArgumentType`); also a ``ValueError``.

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
        check_name(name, owner="queue")
        owner = f"queue {name!r}"
        count(partitions, "partitions", owner=owner, maximum=MAX_PARTITIONS)
        count(capacity_per_partition, "capacity_per_partition", owner=owner)
        callable_or_none(on_reject, "on_reject", owner=owner)
        reject = None
        if on_reject is not None:
            callback = on_reject

            def reject(entry: _Entry[T], priority: Priority, reason: str) -> object:
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
        self._abandoned = False  # aclose timed out: workers stop without finishing
        self._drained: anyio.Event | None = None  # set once closed and every partition is empty
        self._consumer: _Consumer[T] | None = None

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

    def has_worker(self, partition: int) -> bool:
        """Whether a live worker is attached to *partition* now.

        Raises:
            InvalidArgument: *partition* is not an integer in ``range(partitions)``.
        """
        if partition.__class__ is not int or not 0 <= partition < len(self._parts):
            count(
                partition,
                "partition",
                owner=f"queue {self._name!r}",
                minimum=0,
                maximum=len(self._parts) - 1,
            )
        worker = self._parts[partition].worker
        return worker is not None and worker.is_alive

    def watch(self, monitor: ActorRef | NamedRef, source: str | None = None) -> None:
        """Hint *monitor* (a :class:`~otpy.pressure.PressureMonitor`) when any partition's level changes.

        *source* is the name the monitor knows this queue by (the queue's name by
        default); the monitor then samples every partition of it.
        """
        for part in self._parts:
            part.queue.watch(monitor, source or self._name)

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
        part = self._parts[partition_of(key, len(self._parts))]
        if self._closed:
            await anyio.lowlevel.checkpoint()
            raise self._closed_error(part, as_priority(priority, owner=f"queue {self._name!r}"))
        part.putting += 1
        try:
            await part.queue.put((key, item, capture_sender_context()), priority=priority)
        finally:
            part.putting -= 1
        if part.waiting:
            self._wake(part)

    def put_nowait(self, key: str, item: T, *, priority: Priority = Priority.NORMAL) -> None:
        """Queue *item* on *key*'s partition now, or refuse it (see :meth:`BoundedQueue.put_nowait`).

        Raises:
            QueueClosed: :meth:`aclose` has been called.
            LoadShed: the partition is at ``shed`` and sheds *priority*.
            QueueFull: the partition is at capacity (every priority).
            anyio.WouldBlock: *priority* is deferred at the partition's level.
        """
        part = self._parts[partition_of(key, len(self._parts))]
        if self._closed:
            raise self._closed_error(part, as_priority(priority, owner=f"queue {self._name!r}"))
        part.queue.put_nowait((key, item, capture_sender_context()), priority=priority)
        if part.waiting:
            self._wake(part)

    async def aclose(self, timeout: float = 30.0) -> list[tuple[str, T]]:
        """Stop accepting, let the workers finish what is queued, and return the rest (PRS-10).

        From the first call on, :meth:`put` raises :class:`QueueClosed`. Attached
        workers keep going until every partition is empty (puts already waiting to
        be admitted included), then idle until their supervisor stops them. If that
        takes longer than *timeout* seconds, the workers still running are killed
        with reason ``shutdown`` (transient children are not restarted after it),
        which cancels their handlers. Whatever was not
        finished is removed from the queue and returned as ``(key, item)`` pairs,
        partition by partition in order, for the caller to dead-letter: nothing is
        dropped. An item whose handler was cancelled midway is returned too (its
        side effect may or may not have happened). With no workers attached,
        everything queued is returned at once.

        Args:
            timeout: seconds to wait for the workers to drain (default 30, as PRS-10): a
                finite number > 0.

        Raises:
            InvalidArgument: *timeout* is not a finite number > 0; nothing changed.
        """
        number(timeout, "timeout", owner=f"queue {self._name!r}")
        await anyio.lowlevel.checkpoint()
        if not self._closed:
            self._closed = True
            self._drained = anyio.Event()
            for part in self._parts:
                self._wake(part)
            self._note_drained()
        drained = self._drained
        assert drained is not None
        if self._live_workers():
            with anyio.move_on_after(timeout):
                await drained.wait()
        if not drained.is_set() and self._live_workers():
            logger.warning(
                "queue %r: workers did not drain within %ss; cancelling them", self._name, timeout
            )
            self._abandoned = True
            for worker in self._live_workers():
                # Reason shutdown: a transient worker is not restarted after it.
                worker.kill(SHUTDOWN)
            with anyio.CancelScope(shield=True):
                await self._wait_workers()
        entries: collections.deque[_Entry[T]] = collections.deque()
        for part in self._parts:
            entries.extend(part.outstanding)
            part.outstanding.clear()
            part.in_hand = False
            part.queue._take_into(entries, len(part.queue))
        return [(key, item) for key, item, _context in entries]

    def clear(self) -> list[tuple[str, T]]:
        """Remove and return every item no worker has demanded yet; the queue stays open.

        Items are returned as ``(key, item)`` pairs, partition by partition in order.
        Outstanding items (demanded, or in a handler's hands) stay.
        """
        taken: collections.deque[_Entry[T]] = collections.deque()
        for part in self._parts:
            part.queue._take_into(taken, len(part.queue))
        return [(key, item) for key, item, _context in taken]

    def statistics(self) -> PartitionedQueueStatistics:
        """Return a snapshot: each partition's queue statistics and demand counters."""
        consumer = self._consumer
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
                    redelivered=part.redelivered,
                    worker=_label(part.worker),
                )
                for i, part in enumerate(self._parts)
            ),
            closed=self._closed,
            max_demand=None if consumer is None else consumer.max_demand,
            min_demand=None if consumer is None else consumer.min_demand,
        )

    # -- workers ---------------------------------------------------------------

    def worker_specs(
        self,
        handler: Callable[[str, T], Awaitable[object]],
        *,
        max_demand: int = 10,
        min_demand: int | None = None,
        on_error: Callable[[str, T, Exception], object] | None = None,
        shutdown: float = 5.0,
        id_prefix: str | None = None,
        register: bool = False,
    ) -> list[ChildSpec]:
        """Return one :class:`PartitionWorker` child spec per partition, for a tree of your own.

        Worker *i* calls ``await handler(key, item)`` for partition *i*'s items, one
        at a time, in arrival order (PRS-3); partitions run concurrently. It holds at
        most *max_demand* items outstanding and pulls more only when that falls to
        *min_demand* (PRS-1).

        A handler that raises an ``Exception`` does not stop the worker: the error
        is counted in ``errors`` and passed to ``on_error(key, item, exc)`` (or
        logged, type only, when there is none), and the worker goes on with the
        next item; other partitions never notice. An ``on_error`` that raises
        crashes the worker (the item is not handled again): its supervisor restarts
        it, within its intensity. Re-raise from ``on_error`` for errors that mean
        the worker's own resources are broken.

        The workers are :attr:`~otpy.Restart.TRANSIENT`: they are restarted after a
        crash, and not after :meth:`aclose` kills the ones that did not drain in
        time (reason ``shutdown``). A graceful stop lets the item in hand finish,
        within *shutdown* seconds; an item interrupted by a kill is handed to the
        next worker first.

        Args:
            handler: handles one item.
            max_demand: the most items a worker has outstanding (>= 1).
            min_demand: refill when outstanding falls to this (``0 <= min_demand <
                max_demand``); default ``max_demand // 2``.
            on_error: called with each item whose handler raised; raise to crash.
            shutdown: seconds a graceful stop waits for the item in hand.
            id_prefix: worker *i* has child id ``f"{id_prefix}.{i}"`` (default the
                queue's name).
            register: also register worker *i* under its child id.

        Raises:
            InvalidArgument: *max_demand* or *min_demand* is out of range (also a
                ``ValueError``).
            TypeError: *handler* is not an async function, or *on_error* is one.
        """
        _check_callbacks(self._name, handler, on_error)
        consumer = _Consumer(
            handler, max_demand, _check_demand(self._name, max_demand, min_demand), on_error
        )
        prefix = self._name if id_prefix is None else id_prefix
        return [
            ChildSpec(
                id=f"{prefix}.{i}",
                start=PartitionWorker,
                args=(self, i, consumer),
                restart=Restart.TRANSIENT,
                shutdown=shutdown,
                name=f"{prefix}.{i}" if register else None,
            )
            for i in range(len(self._parts))
        ]

    def supervisor_spec(
        self,
        handler: Callable[[str, T], Awaitable[object]],
        *,
        max_demand: int = 10,
        min_demand: int | None = None,
        on_error: Callable[[str, T, Exception], object] | None = None,
        shutdown: float = 5.0,
        name: str | None = None,
        intensity: int = 10,
        period: float = 60.0,
        drain: float | None = None,
        on_leftovers: Leftovers[T] | None = None,
    ) -> SupervisorSpec:
        """Return a ``one_for_one`` supervisor spec over :meth:`worker_specs`.

        Its id is *name* or ``f"{queue name}.workers"``; it is registered under
        *name* when one is given. A worker crashing more than *intensity* times in
        *period* seconds stops the supervisor, and its parent decides.

        With *drain* (seconds), the supervisor also runs :meth:`drain_spec` after
        the workers, so shutting it down drains the queue first (PRS-10) and hands
        what was not finished to *on_leftovers*.
        The other options are :meth:`worker_specs`'s.
        """
        children = self.worker_specs(
            handler, max_demand=max_demand, min_demand=min_demand, on_error=on_error,
            shutdown=shutdown,
        )  # fmt: skip
        if drain is not None:
            children.append(self.drain_spec(drain, on_leftovers=on_leftovers))
        # one_for_one: partitions are independent; a crashed worker restarts alone.
        return SupervisorSpec(
            id=name or f"{self._name}.workers",
            name=name,
            children=children,
            flags=SupervisorFlags(
                strategy=Strategy.ONE_FOR_ONE, intensity=intensity, period=period
            ),
        )

    def drain_spec(
        self,
        timeout: float = 30.0,
        *,
        on_leftovers: Leftovers[T] | None = None,
        id: str | None = None,
    ) -> ChildSpec:
        """Return a child that drains this queue when its supervisor shuts down (PRS-10).

        Put it *after* the workers in the same supervisor: children stop in reverse
        start order, so it stops first, while the workers still run. On a graceful
        stop it calls :meth:`aclose` with *timeout*, so producers are refused
        (:class:`QueueClosed`), the workers finish what is queued, and whatever they
        did not finish goes to ``await on_leftovers(queue_name, leftovers)``, e.g.
        :func:`otpy.deadletter.dead_letter_leftovers`. Without *on_leftovers* the
        leftovers are counted in a warning and dropped. When it starts again (its
        supervisor restarted), it reopens the queue.

        Args:
            timeout: seconds the workers get to drain (default 30, as PRS-10).
            on_leftovers: stores what was not finished.
            id: the child id (default ``f"{queue name}.drain"``).
        """
        timeout = number(timeout, "drain timeout", owner=f"queue {self._name!r}")
        if on_leftovers is not None and not _is_async(on_leftovers):
            raise TypeError(
                f"queue {self._name!r}: on_leftovers must be an async function "
                f"(async def on_leftovers(queue_name, leftovers)), got {short(on_leftovers)}"
            )
        return ChildSpec(
            id=id or f"{self._name}.drain",
            start=QueueDrainer,
            args=(self, timeout, on_leftovers),
            restart=Restart.TRANSIENT,
            # room for the drain and for storing the leftovers
            shutdown=timeout + 10.0,
        )

    def _reopen(self) -> None:
        self._closed = False
        self._abandoned = False
        self._drained = None

    def _note_drained(self) -> None:
        drained = self._drained
        if drained is not None and all(
            not part.outstanding and not len(part.queue) and not part.putting
            for part in self._parts
        ):
            drained.set()

    def _attach(self, index: int, worker: ActorRef, consumer: _Consumer[T]) -> _Partition[T]:
        part = self._parts[index]
        current = self._consumer
        # Only another consumer's attach scans the partitions: a worker per partition
        # attaching must not cost O(partitions) each.
        if self.has_worker(index) or (
            current is not None and current is not consumer and self._any_live_worker()
        ):
            raise anyio.BusyResourceError(
                f"consuming from partitioned queue {self._name!r}: it already has workers"
            )
        self._consumer = consumer
        part.worker = worker
        part.waiting = False
        if part.in_hand:
            part.in_hand = False
            part.redelivered += 1
            logger.warning(
                "queue %r: partition %d's worker stopped while handling an item; "
                "handing it to %s again (at-least-once delivery)",
                self._name,
                index,
                worker.label,
            )
        return part

    def _detach(self, index: int, worker: ActorRef) -> None:
        part = self._parts[index]
        if part.worker is worker:
            part.worker = None
            part.waiting = False
        if not self._any_live_worker():
            self._consumer = None

    def _any_live_worker(self) -> bool:
        return any(part.worker is not None and part.worker.is_alive for part in self._parts)

    def _live_workers(self) -> list[ActorRef]:
        return [
            part.worker for part in self._parts if part.worker is not None and part.worker.is_alive
        ]

    async def _wait_workers(self) -> None:
        """Wait until no worker is attached (a restarted worker is waited for too)."""
        while live := self._live_workers():
            await live[0].wait_exited()

    def _wake(self, part: _Partition[T]) -> None:
        part.waiting = False
        worker = part.worker
        if worker is not None and worker.is_alive:
            # At most one nudge is pending, so it skips the capacity check; being
            # housekeeping, it carries no trace (each item carries its own).
            deliver_system_info(worker, _WORK)

    def _demand(self, part: _Partition[T], max_demand: int) -> None:
        """Pull items until *max_demand* are outstanding or the queue is empty."""
        outstanding = part.outstanding
        if part.queue._take_into(outstanding, max_demand - len(outstanding)):
            part.demands += 1
            if len(outstanding) > part.peak_outstanding:
                part.peak_outstanding = len(outstanding)


def _label(worker: ActorRef | None) -> str | None:
    return worker.label if worker is not None and worker.is_alive else None


class _Work(DeadLetterSuppression):
    __slots__ = ()

    def __repr__(self) -> str:
        return "<work>"


_WORK: Final = _Work()


@final
class PartitionWorker(Actor):
    """Handles one partition of a :class:`PartitionedQueue`; made by its :meth:`~PartitionedQueue.worker_specs`.

    ``init(queue, partition, consumer)`` attaches it to the partition; a second live
    worker for the same partition fails to start with :class:`anyio.BusyResourceError`.
    """

    queue: PartitionedQueue[Any]
    partition: int
    _consumer: _Consumer[Any]
    _part: _Partition[Any]

    async def init(
        self, queue: PartitionedQueue[Any], partition: int, consumer: _Consumer[Any]
    ) -> None:
        """Attach to the partition and start with whatever is already queued."""
        self.queue = queue
        self.partition = partition
        self._consumer = consumer
        self._part = queue._attach(partition, self.ref, consumer)
        self.continue_with(_WORK)

    async def handle_continue(self, argument: Any) -> None:
        """Handle the first batch (see :meth:`handle_info`)."""
        await self._step()

    async def handle_info(self, message: Any) -> None:
        """On ``_WORK``: handle up to ``max_demand`` items, then go round the mailbox."""
        if message is _WORK:
            await self._step()
            return
        await super().handle_info(message)

    async def terminate(self, reason: object) -> None:
        """Detach from the partition; unfinished items stay in the queue."""
        self.queue._detach(self.partition, self.ref)

    def format_status(self) -> Mapping[str, object]:
        """Show the queue and partition, never the items."""
        part = self._part
        return {
            "queue": self.queue.name,
            "partition": self.partition,
            "outstanding": len(part.outstanding),
            "processed": part.processed,
            "errors": part.errors,
        }

    async def _step(self) -> None:
        queue, part, consumer = self.queue, self._part, self._consumer
        handler, max_demand, min_demand = consumer.handler, consumer.max_demand, consumer.min_demand
        outstanding = part.outstanding
        ref = self.ref
        budget = max_demand
        while not queue._abandoned:
            if len(outstanding) <= min_demand:
                queue._demand(part, max_demand)
            if not outstanding:
                part.waiting = True
                if queue._closed and not part.putting:
                    queue._note_drained()
                return
            if not budget or needs_attention(ref):
                # Go round the mailbox so a stop or get_status gets in first.
                deliver_system_info(ref, _WORK)
                return
            budget -= 1
            key, item, context = outstanding[0]
            # Killed mid-item, in_hand stays set: the next worker is handed it again
            # (or aclose hands it back).
            part.in_hand = True
            # The producer's trace context, current while its item is handled.
            token = None if context is None else activate_context(context)
            try:
                await handler(key, item)
            except Exception as exc:
                part.in_hand = False
                outstanding.popleft()
                part.errors += 1
                self._failed(key, item, exc)
            else:
                part.in_hand = False
                outstanding.popleft()
                part.processed += 1
            finally:
                if token is not None:
                    restore_context(token)

    def _failed(self, key: str, item: Any, exc: Exception) -> None:
        on_error = self._consumer.on_error
        if on_error is None:
            logger.error(
                "queue %r: handler raised %s in partition %d; the worker goes on",
                self.queue.name,
                type(exc).__name__,
                self.partition,
                exc_info=exc,
            )
            return
        on_error(key, item, exc)  # raising crashes this worker: its supervisor decides


@final
class QueueDrainer(Actor):
    """Drains a :class:`PartitionedQueue` when stopped gracefully; made by :meth:`~PartitionedQueue.drain_spec`."""

    queue: PartitionedQueue[Any]
    timeout: float
    on_leftovers: Leftovers[Any] | None

    async def init(
        self, queue: PartitionedQueue[Any], timeout: float, on_leftovers: Leftovers[Any] | None
    ) -> None:
        """Reopen the queue (a restarted tree accepts again)."""
        self.queue = queue
        self.timeout = timeout
        self.on_leftovers = on_leftovers
        queue._reopen()

    async def terminate(self, reason: object) -> None:
        """On a graceful stop: close the queue, let the workers drain, store the rest."""
        if not is_normal_exit(reason):
            return
        queue = self.queue
        leftovers = await queue.aclose(self.timeout)
        if not leftovers:
            logger.info("queue %r drained", queue.name)
            return
        if self.on_leftovers is None:
            logger.warning(
                "queue %r: %d items were not finished before shutdown and are dropped; "
                "pass on_leftovers (e.g. dead_letter_leftovers) to keep them",
                queue.name,
                len(leftovers),
            )
            return
        await self.on_leftovers(queue.name, leftovers)
        logger.warning(
            "queue %r: %d items were not finished before shutdown; handed to on_leftovers",
            queue.name,
            len(leftovers),
        )

    def format_status(self) -> Mapping[str, object]:
        """Show the queue and the timeout, never the items."""
        return {"queue": self.queue.name, "drain_timeout": self.timeout}


@contextlib.asynccontextmanager
async def open_partitioned_workers(
    queue: PartitionedQueue[T],
    handler: Callable[[str, T], Awaitable[object]],
    *,
    max_demand: int = 10,
    min_demand: int | None = None,
    on_error: Callable[[str, T, Exception], object] | None = None,
    shutdown: float = 5.0,
    intensity: int = 10,
    period: float = 60.0,
) -> AsyncIterator[PartitionedQueue[T]]:
    """Run *queue*'s supervised workers (:meth:`PartitionedQueue.supervisor_spec`) for a block.

    The supervisor runs on the current node (one is opened if none is running).
    Leaving the block stops the workers gracefully: each finishes the item in hand
    (within *shutdown* seconds) and unfinished items stay in the queue for the next
    workers or :meth:`PartitionedQueue.aclose`. For a full drain, ``await
    queue.aclose()`` inside the block. If the workers crash more than *intensity*
    times in *period* seconds, the block is cancelled and
    :class:`~otpy.RestartIntensityExceeded` is raised.

    Raises:
        ValueError: *max_demand* or *min_demand* is out of range.
        anyio.BusyResourceError: *queue* already has workers.
    """
    spec = queue.supervisor_spec(
        handler, max_demand=max_demand, min_demand=min_demand, on_error=on_error,
        shutdown=shutdown, intensity=intensity, period=period,
    )  # fmt: skip
    if queue._live_workers():
        raise anyio.BusyResourceError(
            f"consuming from partitioned queue {queue.name!r}: it already has workers"
        )
    async with open_supervisor(spec):
        yield queue
