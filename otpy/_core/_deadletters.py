"""The in-memory dead-letter event stream (ACT-13).

Every message that could not be delivered (its actor had exited, its mailbox dropped
it, a name had nobody behind it, a restart stash overflowed) is published here as a
:class:`DeadLetterEvent`. Subscribers get a bounded stream each; sinks (the durable
store, later) get every event synchronously. Logging is rate-limited like Akka's:
the first ``log_first`` events, then one summary per ``suppress_for`` seconds.
The message itself is never logged, only its type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._redact import get_logger
from ._reasons import Down, Exit

if TYPE_CHECKING:
    from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

__all__ = [
    "DeadLetterEvent",
    "DeadLetterStreamStatistics",
    "DeadLetterStream",
    "DeadLetterSuppression",
]

logger = get_logger("otpy.deadletters")


class DeadLetterSuppression:
    """A marker base: messages of its subclasses are never published as dead letters.

    For an actor's own housekeeping messages (a timer tick, a "work" nudge) and for
    signals (:class:`~otpy.Down`, :class:`~otpy.Exit`, which are treated alike): left
    in the mailbox of an actor that stopped, they are only counted, in
    ``statistics().suppressed``, as Akka's ``DeadLetterSuppression`` does.
    """

    __slots__ = ()


@attrs.frozen
class DeadLetterEvent:
    """A message that could not be delivered.

    Attributes:
        recipient: the intended actor's name or label.
        message: the message object (never logged).
        kind: ``"cast"``, ``"info"`` or ``"call"``.
        reason: why: ``"actor_stopped"``, ``"noproc"``, ``"mailbox_full"``,
            ``"mailbox_full_dropped_oldest"``, ``"stash_full"``; or ``"poison"``: the
            actor crashed handling it (only for actors with ``dead_letter_on_crash``).
        at: ``anyio.current_time()`` when it happened.
        error: for ``"poison"``, the exception the handler raised; else ``None``.
    """

    recipient: str
    message: Any
    kind: str
    reason: str
    at: float
    error: BaseException | None = None


@attrs.frozen
class DeadLetterStreamStatistics:
    """Counters of the dead-letter stream.

    Attributes:
        total: events published.
        by_reason: events per reason.
        subscriber_drops: events a slow subscriber missed because its buffer was full.
        logs_suppressed: events not logged because of the rate limit.
        suppressed: undeliverable signals and :class:`DeadLetterSuppression`
            messages, counted and not published.
    """

    total: int
    by_reason: dict[str, int]
    subscriber_drops: int
    logs_suppressed: int
    suppressed: int = 0


Sink = Callable[[DeadLetterEvent], None]

_SUPPRESSED = (DeadLetterSuppression, Down, Exit)


class DeadLetterStream:
    """Where undeliverable messages go; one per node (``node.dead_letters``)."""

    def __init__(self, *, log_first: int = 10, suppress_for: float = 300.0) -> None:
        self._counts: Counter[str] = Counter()
        self._subscribers: list[MemoryObjectSendStream[DeadLetterEvent]] = []
        self._sinks: list[Sink] = []
        self._log_first = log_first
        self._suppress_for = suppress_for
        self._logged_in_window = 0
        self._window_start: float | None = None
        self._suppressed = 0
        self._suppressed_total = 0
        self._subscriber_drops = 0
        self._suppressed_messages = 0

    def publish_undeliverable(
        self, *, recipient: str, message: Any, kind: str, reason: str
    ) -> None:
        """Record one undeliverable message (a suppressed one is only counted)."""
        if isinstance(message, _SUPPRESSED):
            self._suppressed_messages += 1
            return
        self.publish(DeadLetterEvent(recipient, message, kind, reason, anyio.current_time()))

    def publish(self, event: DeadLetterEvent) -> None:
        """Count, log (rate-limited), and hand *event* to sinks and subscribers."""
        self._counts[event.reason] += 1
        self._log(event)
        for sink in self._sinks:
            try:
                sink(event)
            except Exception:
                logger.exception("dead-letter sink %r failed", sink)
        if self._subscribers:
            for stream in list(self._subscribers):
                try:
                    stream.send_nowait(event)
                except anyio.WouldBlock:
                    self._subscriber_drops += 1
                except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                    self._subscribers.remove(stream)

    def _log(self, event: DeadLetterEvent) -> None:
        now = event.at
        if self._window_start is None or now >= self._window_start + self._suppress_for:
            if self._suppressed:
                logger.info(
                    "%d more dead letters were not logged in the last %gs",
                    self._suppressed,
                    self._suppress_for,
                )
            self._window_start = now
            self._logged_in_window = 0
            self._suppressed = 0
        if self._logged_in_window < self._log_first:
            self._logged_in_window += 1
            logger.info(
                "dead letter: %s of type %s to %s (%s)%s",
                event.kind,
                type(event.message).__name__,
                event.recipient,
                event.reason,
                f" - no more will be logged for {self._suppress_for:g}s"
                if self._logged_in_window == self._log_first
                else "",
            )
        else:
            self._suppressed += 1
            self._suppressed_total += 1

    def subscribe(self, max_buffer: int = 1000) -> MemoryObjectReceiveStream[DeadLetterEvent]:
        """Return a stream of every event from now on; close it to unsubscribe.

        A subscriber that falls more than *max_buffer* events behind misses events;
        they are counted in ``statistics().subscriber_drops``.
        """
        send, receive = anyio.create_memory_object_stream[DeadLetterEvent](max_buffer)
        self._subscribers.append(send)
        return receive

    def add_sink(self, sink: Sink) -> Callable[[], None]:
        """Call *sink* with every event (it must not block); return a function removing it."""
        self._sinks.append(sink)
        return lambda: self._sinks.remove(sink)

    def statistics(self) -> DeadLetterStreamStatistics:
        """Return a snapshot of the counters."""
        return DeadLetterStreamStatistics(
            total=sum(self._counts.values()),
            by_reason=dict(self._counts),
            subscriber_drops=self._subscriber_drops,
            logs_suppressed=self._suppressed_total,
            suppressed=self._suppressed_messages,
        )

    def close(self) -> None:
        """Close every subscriber stream (the node is stopping)."""
        for stream in self._subscribers:
            stream.close()
        self._subscribers.clear()
