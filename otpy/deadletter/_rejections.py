"""Dead-letter the messages a bounded queue refuses (PRS-7, PRS-8, DL-1).

A :class:`~otpy.pressure.BoundedQueue` hands every refused message to its ``on_reject``
callback, synchronously, before the producer's :class:`~otpy.LoadShed` or
:class:`~otpy.QueueFull` is raised. :func:`dead_letter_rejections` builds such a
callback: it turns each refusal into a :class:`~otpy.deadletter.DeadLetter` (source
``load_shed`` or ``queue_full``, category retryable, the queue's level, depth and
capacity as diagnostics) and hands it to the writer without waiting::

    rejections = dead_letter_rejections(DeadLetters(), key="ingest")
    queue = BoundedQueue(1000, name="ingest", on_reject=rejections)
    rejections.bind(queue)

or, in one step, ``queue = dead_lettering_queue(1000, DeadLetters(), key="ingest")``.

The queue takes its callback when it is built and the callback reads the queue's
``statistics()``, hence the separate :meth:`RejectionDeadLetters.bind`. Capture is
fire-and-forget (:meth:`~otpy.deadletter.DeadLetters.capture_nowait`): a producer
being refused must not wait for a disk, and a busy writer drops the record and
counts it (``otpy.deadletter.capture_dropped``) rather than slowing the queue.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final, Generic, Protocol, TypeVar, final

from .._check import callable_or_none, short
from .._check import name as check_name
from .._exceptions import InvalidArgumentType
from .._redact import get_logger
from ..pressure import BoundedQueue, PressurePolicy, Priority
from ._capture import encode_payload
from ._record import Category, DeadLetter, Diagnostics, Source
from ._writer import DeadLetters

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..pressure import PartitionedQueue, QueueStatistics
    from ._capture import Encoder

__all__ = [
    "PRIORITY_HEADER",
    "QUEUE_HEADER",
    "PartitionedRejectionDeadLetters",
    "RejectionDeadLetters",
    "dead_letter_partitioned_rejections",
    "dead_letter_leftovers",
    "dead_letter_rejections",
    "dead_lettering_queue",
]

logger = get_logger("otpy.pressure")

T = TypeVar("T")

PRIORITY_HEADER: Final = "otpy-priority"
"""Header holding the refused message's priority label (``low`` ... ``critical``)."""
QUEUE_HEADER: Final = "otpy-queue"
"""Header holding the name of the queue that refused the message."""

_SOURCES: Final = {"load_shed": Source.LOAD_SHED, "queue_full": Source.QUEUE_FULL}
_REASON_CLASSES: Final = {"load_shed": "otpy.LoadShed", "queue_full": "otpy.QueueFull"}


Q = TypeVar("Q", bound="_Named")


class _Named(Protocol):
    @property
    def name(self) -> str: ...


class _Bound(Generic[Q]):
    """The queue a rejection callback reads its diagnostics from, bound once."""

    _what: ClassVar[str]
    _queue: Q | None = None

    def __repr__(self) -> str:
        queue = "unbound" if self._queue is None else repr(self._queue.name)
        return f"<{type(self).__name__} {queue}>"

    @property
    def queue(self) -> Q | None:
        """The queue whose statistics records carry, or ``None`` before :meth:`bind`."""
        return self._queue

    def bind(self, queue: Q) -> None:
        """Read diagnostics from *queue*, the queue this callback was given to.

        Raises:
            ValueError: already bound to another queue.
        """
        if self._queue is not None and self._queue is not queue:
            raise ValueError(
                f"{self._what}: already bound to queue {self._queue.name!r}; "
                "build one callback per queue"
            )
        self._queue = queue


def _check_client(what: str, client: object, encoder: object) -> None:
    if not isinstance(client, DeadLetters):
        raise InvalidArgumentType(
            "client", f"must be a DeadLetters client, got {short(client)}", owner=what
        )
    if encoder is None:
        raise InvalidArgumentType("encoder", "must be a function, got None", owner=what)
    callable_or_none(encoder, "encoder", owner=what)


@final
class RejectionDeadLetters(_Bound["BoundedQueue[T]"], Generic[T]):
    """An ``on_reject`` callback that stores each refused message as a dead letter.

    Build it with :func:`dead_letter_rejections`. Call :meth:`bind` with the queue it
    is given to, so records carry the queue's level, depth and capacity; unbound, it
    still stores every refusal, with empty diagnostics and the queue name
    ``"queue"``.

    Attributes:
        client: the dead-letter writer's client.
        encoder: turns a message into ``(body, content_type)``.
    """

    _what = "dead_letter_rejections"

    def __init__(
        self,
        client: DeadLetters,
        *,
        key: str | Callable[[object], str],
        encoder: Encoder = encode_payload,
    ) -> None:
        if not callable(key):
            if not isinstance(key, str):
                raise InvalidArgumentType(
                    "key",
                    f"must be a non-empty string or a function, got {short(key)}",
                    owner=self._what,
                )
            check_name(key, "key", owner=self._what)
        _check_client(self._what, client, encoder)
        self.client = client
        self.encoder = encoder
        self._key = key

    def record(self, item: T, priority: Priority, reason: str) -> DeadLetter:
        """Return the dead letter for *item*, refused with *reason*, without storing it.

        Raises:
            ValueError: *reason* is neither ``"load_shed"`` nor ``"queue_full"``, or
                the key function returned an empty key.
        """
        key = self._key if isinstance(self._key, str) else self._key(item)
        stats = None if self._queue is None else self._queue.statistics()
        return _rejection_record(key, item, priority, reason, stats, self.encoder)

    def __call__(self, item: T, priority: Priority, reason: str) -> None:
        """Store the refused *item* through the writer, without waiting (the ``on_reject`` hook)."""
        self.client.capture_nowait(self.record(item, priority, reason))


def _rejection_record(
    key: str,
    item: object,
    priority: Priority,
    reason: str,
    stats: QueueStatistics | None,
    encoder: Encoder,
) -> DeadLetter:
    """The dead letter for *item*, refused with *reason* by the queue *stats* describes."""
    source = _SOURCES.get(reason)
    if source is None:
        raise ValueError(
            f"dead_letter_rejections: unknown rejection reason {reason!r}; "
            f"expected one of {sorted(_SOURCES)}"
        )
    name = "queue"
    diagnostics = Diagnostics()
    if stats is not None:
        name = stats.name
        diagnostics = Diagnostics(
            pressure_level=stats.level.label,
            queue_depth=stats.queued,
            queue_capacity=stats.capacity,
        )
    body, content_type = encoder(item)
    level = diagnostics.pressure_level or "unknown"
    return DeadLetter.capture(
        key=key,
        source=source,
        reason_class=_REASON_CLASSES[reason],
        reason=(
            f"queue {name!r} refused a {priority.name.lower()} priority message "
            f"({reason}, level {level}, "
            f"{diagnostics.queue_depth}/{diagnostics.queue_capacity} queued)"
        ),
        payload=body,
        content_type=content_type,
        headers=((PRIORITY_HEADER, priority.name.lower()), (QUEUE_HEADER, name)),
        category=Category.RETRYABLE,
        diagnostics=diagnostics,
    )


@final
class PartitionedRejectionDeadLetters(_Bound["PartitionedQueue[T]"], Generic[T]):
    """An ``on_reject`` for a :class:`~otpy.pressure.PartitionedQueue` that stores each refusal (PRS-7, PRS-8).

    Build it with :func:`dead_letter_partitioned_rejections`. Each record takes the
    item's own key (so a replay lands on the same partition) and, once bound, the
    refusing partition's name (``"jobs[2]"``), level, depth and capacity.
    """

    _what = "dead_letter_partitioned_rejections"

    def __init__(self, client: DeadLetters, *, encoder: Encoder = encode_payload) -> None:
        _check_client(self._what, client, encoder)
        self.client = client
        self.encoder = encoder

    def record(self, key: str, item: T, priority: Priority, reason: str) -> DeadLetter:
        """Return the dead letter for *item* (routed by *key*), without storing it."""
        queue = self._queue
        stats = None
        if queue is not None:
            stats = queue.statistics().partitions[queue.partition_of(key)].queue
        return _rejection_record(key, item, priority, reason, stats, self.encoder)

    def __call__(self, key: str, item: T, priority: Priority, reason: str) -> None:
        """Store the refused *item* through the writer, without waiting (the ``on_reject`` hook)."""
        self.client.capture_nowait(self.record(key, item, priority, reason))


def dead_letter_partitioned_rejections(
    client: DeadLetters,
    *,
    queue: PartitionedQueue[T] | None = None,
    encoder: Encoder = encode_payload,
) -> PartitionedRejectionDeadLetters[T]:
    """Return an ``on_reject`` for a :class:`~otpy.pressure.PartitionedQueue` that dead-letters refusals.

    The records are those of :func:`dead_letter_rejections`, keyed by each item's
    own key. Bind it to the queue afterwards (``callback.bind(queue)``) or pass
    *queue* for the refusing partition's diagnostics.
    """
    callback: PartitionedRejectionDeadLetters[T] = PartitionedRejectionDeadLetters(
        client, encoder=encoder
    )
    if queue is not None:
        callback.bind(queue)
    return callback


def dead_letter_rejections(
    client: DeadLetters,
    *,
    key: str | Callable[[object], str],
    queue: BoundedQueue[T] | None = None,
    encoder: Encoder = encode_payload,
) -> RejectionDeadLetters[T]:
    """Return an ``on_reject`` callback that dead-letters each refused message (PRS-7, PRS-8).

    Each ``load_shed`` or ``queue_full`` refusal becomes a record with source
    :attr:`~otpy.deadletter.Source.LOAD_SHED` or :attr:`~otpy.deadletter.Source.QUEUE_FULL`,
    ``reason_class`` ``"otpy.LoadShed"`` or ``"otpy.QueueFull"``, category retryable,
    the headers ``otpy-priority`` and ``otpy-queue``, and (once bound to the queue)
    the queue's level, depth and capacity as diagnostics. It is handed to the writer
    with :meth:`~otpy.deadletter.DeadLetters.capture_nowait`, so the refused producer
    never waits for storage; a busy writer's drops are counted, not raised.

    Args:
        client: the dead-letter writer's client (``DeadLetters()``).
        key: the dead-letter key: a string, or a function of the message (replays
            are partitioned by key, so use the routing key if there is one).
        queue: the queue to read diagnostics from; usually not built yet, so bind it
            afterwards with :meth:`RejectionDeadLetters.bind`, or use
            :func:`dead_lettering_queue`.
        encoder: turns a message into ``(body, content_type)``; the default never
            pickles (see :func:`~otpy.deadletter.encode_payload`).

    Raises:
        ValueError: *key* is an empty string.
    """
    callback: RejectionDeadLetters[T] = RejectionDeadLetters(client, key=key, encoder=encoder)
    if queue is not None:
        callback.bind(queue)
    return callback


def dead_lettering_queue(
    capacity: int,
    client: DeadLetters,
    *,
    key: str | Callable[[object], str],
    name: str = "queue",
    policy: PressurePolicy | None = None,
    encoder: Encoder = encode_payload,
) -> BoundedQueue[T]:
    """Return a :class:`~otpy.pressure.BoundedQueue` whose refused messages are dead-lettered.

    The same as building the queue with ``on_reject=dead_letter_rejections(...)`` and
    binding the callback to it.

    Raises:
        ValueError: *capacity* is not an integer >= 1, or *key* is empty.
    """
    callback: RejectionDeadLetters[T] = RejectionDeadLetters(client, key=key, encoder=encoder)
    queue: BoundedQueue[T] = BoundedQueue(
        capacity,
        name=name,
        policy=policy if policy is not None else PressurePolicy(),
        on_reject=callback,
    )
    callback.bind(queue)
    return queue


def dead_letter_leftovers(
    client: DeadLetters, *, encoder: Encoder = encode_payload, timeout: float = 10.0
) -> Callable[[str, list[tuple[str, Any]]], Awaitable[None]]:
    """Return an ``on_leftovers`` for :meth:`~otpy.pressure.PartitionedQueue.drain_spec` that dead-letters them (PRS-10).

    Each ``(key, item)`` a drain left unfinished becomes a record with the item's key
    (so a replay lands on the same partition), source
    :attr:`~otpy.deadletter.Source.UNDELIVERABLE`, ``reason_class``
    ``"otpy.QueueClosed"``, category retryable and the ``otpy-queue`` header. All of
    them are stored in one transaction, and the drain waits for the commit: the
    items are durable before the supervisor finishes shutting down.

    Args:
        client: the dead-letter writer's client (``DeadLetters()``); the writer must
            still run, so put the dead-letter service before the workers' supervisor.
        encoder: turns an item into ``(body, content_type)``.
        timeout: seconds to wait for the commit.
    """

    async def store(queue: str, leftovers: list[tuple[str, Any]]) -> None:
        records = []
        for key, item in leftovers:
            body, content_type = encoder(item)
            records.append(
                DeadLetter.capture(
                    key=key,
                    source=Source.UNDELIVERABLE,
                    reason_class="otpy.QueueClosed",
                    reason=(
                        f"queue {queue!r} shut down before this item was handled "
                        "(its workers did not drain in time)"
                    ),
                    payload=body,
                    content_type=content_type,
                    headers=((QUEUE_HEADER, queue),),
                    category=Category.RETRYABLE,
                )
            )
        await client.capture(records, timeout=timeout)

    return store
