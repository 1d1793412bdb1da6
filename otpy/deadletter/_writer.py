"""The dead-letter writer: group commit, acknowledgement after commit, and retention (DL-2, DL-5).

One :class:`DeadLetterWriter` actor owns the store's writes. Captures arriving while
a commit is in flight queue in its mailbox and go into the next batch, so a burst of
a thousand captures costs a handful of transactions, not a thousand; each capture is
answered only once the transaction holding it has committed. Use it through
:class:`DeadLetters`, which retries a capture whose batch was lost in a writer crash
(ids are fixed before the first attempt and the store ignores ids it already has, so
a retry never stores a record twice).

:func:`~otpy.deadletter.dead_letter_children` returns the child specs to put first
in a node's ``rest_for_one`` tree.
"""

from __future__ import annotations

import weakref
from collections import Counter
from typing import TYPE_CHECKING, Any, Final, final, overload

import anyio
import attrs

from .._check import name as check_name
from .._check import number, short
from .._core import (
    NO_REPLY,
    Actor,
    MailboxConfig,
    Node,
    Overflow,
    current_node,
    mailbox_has_room,
    node_clock,
)
from .._exceptions import (
    ActorStopped,
    CallTimeout,
    DeadLetterError,
    InvalidArgument,
    InvalidArgumentType,
    MailboxFull,
)
from .._redact import get_logger
from ..telemetry import providers_set
from ._record import DeadLetter, Status
from ._store import LEDGER_EVICTED, RetentionPolicy
from ._telemetry import record_dropped, record_evictions, store_kind, write_span

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._core import ActorRef, Caller, NamedRef
    from ._store import DeadLetterStore, SweepResult

__all__ = [
    "DEFAULT_NAME",
    "WRITER_MAILBOX",
    "Capture",
    "CaptureFailed",
    "DeadLetterWriter",
    "DeadLetters",
    "DeadLettersStatistics",
    "RetentionSweeper",
    "WriterStatistics",
    "count_undelivered",
    "running_stores",
]

logger = get_logger("otpy.deadletter")

DEFAULT_NAME: Final = "dead-letters"
"""The writer's registered name unless told otherwise."""

DEFAULT_MAX_BATCH: Final = 1000

WRITER_MAILBOX: Final = MailboxConfig(capacity=10_000, overflow=Overflow.WAIT, wait_timeout=None)
"""Large, and senders wait for room: a capture is never refused because of a burst.

``wait_timeout`` is ``None`` because :meth:`DeadLetters.capture` bounds the whole
capture, waiting for room included, with its own timeout.
"""


# -- messages --------------------------------------------------------------------------


def _records(value: Iterable[DeadLetter]) -> tuple[DeadLetter, ...]:
    return tuple(value)


@attrs.frozen
class Capture:
    """The writer's request: store *records*. As a call, the reply is their ids after commit.

    Attributes:
        records: the records, ids already set.
    """

    records: tuple[DeadLetter, ...] = attrs.field(converter=_records)


@attrs.frozen
class CaptureFailed:
    """The writer's reply when the batch holding a capture was not stored.

    Attributes:
        error: the store's typed error (or the ``ValueError``/``TypeError`` for a
            record that cannot be stored); :class:`DeadLetters` raises it.
    """

    error: Exception


class _Message:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"<dead-letter {self._name}>"


_FLUSH: Final = _Message("flush")
_FLUSH_REQUEST: Final = _Message("flush request")
_STATISTICS: Final = _Message("statistics")
_SWEEP: Final = _Message("sweep")


def _check(records: tuple[object, ...]) -> Exception | None:
    for record in records:
        if type(record) is DeadLetter and (record.payload is not None or not record.payload_size):
            continue  # the usual case, checked first and cheaply
        if not isinstance(record, DeadLetter):
            return TypeError(
                f"only otpy.deadletter.DeadLetter records can be captured, got "
                f"{type(record).__name__}; build one with DeadLetter.capture()"
            )
        if record.payload is None and record.payload_size:
            return ValueError(
                f"dead letter {record.id}: its payload is not loaded (records from a listing "
                "leave large payloads out); capture the record from store.get() instead"
            )
    return None


# -- the writer ------------------------------------------------------------------------


_running: weakref.WeakKeyDictionary[Node, dict[str, DeadLetterStore]] = weakref.WeakKeyDictionary()
"""The store of each running writer, by node and writer name (for the console)."""

_direct: weakref.WeakKeyDictionary[Node, dict[str, DeadLetterStore]] = weakref.WeakKeyDictionary()
"""The same, for stores that group concurrent ``add_many`` calls into commits themselves.

:meth:`DeadLetters.capture` calls these directly: the store's write path batches
what the writer would (DL-2), without a message round trip per capture.
"""


def running_stores(*, node: Node | None = None) -> dict[str, DeadLetterStore]:
    """Return the store of each dead-letter writer running on *node*, by writer name.

    This is how the live console finds the stores to read statistics from: a
    :class:`DeadLetterWriter` adds its store here when it starts and removes it
    when it stops, so a tree's stores need no wiring.

    Args:
        node: the node; the current one by default.

    Returns:
        A new dict, writer name (its registered name, else its label) to store.

    .. versionadded:: 0.1.0
    """
    return dict(_running.get(node or current_node(), {}))


@attrs.frozen(kw_only=True)
class WriterStatistics:
    """Counters of one writer incarnation.

    Attributes:
        batches: transactions committed.
        records: records in them.
        failed_batches: batches the store refused with a typed error.
        largest_batch: the most records committed in one transaction.
        pending: records waiting for the next commit.
    """

    batches: int
    records: int
    failed_batches: int
    largest_batch: int
    pending: int


_Entry = tuple["Caller | None", tuple[DeadLetter, ...]]


@attrs.frozen
class _Batch:
    """Writer -> committer: commit these captures in one transaction."""

    entries: tuple[_Entry, ...]


@attrs.frozen
class _Committed:
    """Committer -> writer: the batch is done (committed, or refused by the store)."""

    records: int
    failed: bool


async def _commit(
    store: DeadLetterStore, entries: tuple[_Entry, ...], kind: str, label: str
) -> bool:
    """Commit *entries* in one transaction, then answer their callers; return success.

    A :class:`~otpy.DeadLetterError` is answered to every caller and nothing is
    acknowledged; any other exception propagates (the caller crashes and captures are
    retried by :class:`DeadLetters`).
    """
    records = [record for _, chunk in entries for record in chunk]
    failure: CaptureFailed | None = None
    try:
        if records:  # else only flush requests: answered in turn, nothing to write
            with write_span(records, kind):
                await store.add_many(records)
    except DeadLetterError as exc:
        logger.error(
            "dead-letter writer %s: the store refused a batch of %d records; "
            "none was acknowledged: %s",
            label,
            len(records),
            exc,
        )
        failure = CaptureFailed(exc)
    except Exception:
        # Callers retry, but fire-and-forget records had nobody to retry them.
        unanswered = sum(len(chunk) for caller, chunk in entries if caller is None)
        if unanswered:
            record_dropped("writer_crashed", unanswered)
        raise
    for caller, chunk in entries:
        if caller is not None:
            caller.reply(failure or tuple([record.id for record in chunk]))
    return failure is None


@final
class _Committer(Actor):
    """Runs the writer's transactions one at a time, so the writer keeps batching meanwhile.

    Linked to its writer: if either dies, so does the other, and the writer's
    supervisor restarts the pair (captures in flight are retried by their clients).
    """

    async def init(self, store: DeadLetterStore, writer: ActorRef, kind: str) -> None:
        """Commit into *store* for *writer*."""
        self.store = store
        self.writer = writer
        self.kind = kind

    async def handle_cast(self, message: Any) -> None:
        """Commit a batch, answer its captures, and tell the writer."""
        if type(message) is _Batch:
            records = sum(len(chunk) for _, chunk in message.entries)
            ok = await _commit(self.store, message.entries, self.kind, self.writer.label)
            # Waits for room: the writer never waits for the committer, so room comes.
            await self.writer.cast(_Committed(records, failed=not ok))
            return
        await super().handle_cast(message)


_MAX_IN_FLIGHT: Final = 2
"""Batches handed to the committer at once: one committing, one queued behind it.

The queued one starts the moment the other commits, before the callers just
acknowledged wake up and send more: without it the disk would idle while they do.
"""


@final
class DeadLetterWriter(Actor):
    """Group-commits captures into a :class:`DeadLetterStore` and acknowledges after commit.

    A ``Capture`` call joins the pending batch and is answered later. The writer has
    a linked committer that runs one transaction at a time, with one more batch
    queued behind it: while it commits, new captures pile up here and become the
    next batch, which goes to the committer as soon as one is done. So a burst costs a handful of transactions, the
    next batch is formed while the disk syncs the last, and every capture is
    answered with its ids only after the transaction holding it has committed.

    If the store raises a :class:`~otpy.DeadLetterError` every capture in the batch
    gets that error and nothing is acknowledged; any other exception crashes the
    committer and with it the writer (its supervisor restarts it), and
    :class:`DeadLetters` retries.

    Start it with :func:`dead_letter_children`; ``init`` takes the store and,
    optionally, ``max_batch``.
    """

    mailbox = WRITER_MAILBOX

    async def init(self, store: DeadLetterStore, max_batch: int = DEFAULT_MAX_BATCH) -> None:
        """Hold *store*; commit at most about *max_batch* records per transaction."""
        if max_batch < 1:
            raise ValueError(f"dead-letter writer: max_batch must be >= 1, got {max_batch}")
        self.store = store
        self.max_batch = max_batch
        self.store_kind = store_kind(store)
        self._pending: list[_Entry] = []
        self._pending_records = 0
        self._flush_posted = False
        self._in_flight = 0  # batches handed to the committer and not yet done
        self._batches = 0
        self._records = 0
        self._failed_batches = 0
        self._largest = 0
        self._committer = await self.spawn_link(_Committer, store, self.ref, self.store_kind)
        _running.setdefault(self.node, {})[self._registered_as] = store
        if getattr(store, "groups_commits", False) is True:
            _direct.setdefault(self.node, {})[self._registered_as] = store

    @property
    def _registered_as(self) -> str:
        return self.ref.name or self.ref.label

    async def handle_call(self, message: Any, caller: Caller) -> Any:
        """Take a ``Capture`` (answered after commit); answer a statistics request."""
        if type(message) is Capture:
            error = _check(message.records)
            if error is not None:
                return CaptureFailed(error)
            if not message.records:
                return ()
            if self._add(caller, message.records):
                await self._send_batch()
            return NO_REPLY
        if message is _FLUSH_REQUEST:  # answered after the batch it joins commits
            if self._add(caller, ()):
                await self._send_batch()
            return NO_REPLY
        if message is _STATISTICS:
            return self.statistics()
        return await super().handle_call(message, caller)

    async def handle_cast(self, message: Any) -> None:
        """Take a fire-and-forget ``Capture`` (invalid records are logged and dropped); note a finished commit."""
        if type(message) is Capture:
            error = _check(message.records)
            if error is not None:
                logger.error("dead-letter writer %s dropped a capture: %s", self.ref.label, error)
                record_dropped("invalid", len(message.records))
                return
            if message.records and self._add(None, message.records):
                await self._send_batch()
            return
        if type(message) is _Committed:
            self._in_flight -= 1
            if message.failed:
                self._failed_batches += 1
            else:
                self._batches += 1
                self._records += message.records
                self._largest = max(self._largest, message.records)
            if self._pending and self._in_flight < _MAX_IN_FLIGHT:
                await self._send_batch()
            return
        await super().handle_cast(message)

    async def handle_info(self, message: Any) -> None:
        """Hand the pending batch to the committer on the flush the writer posted itself."""
        if message is _FLUSH:
            self._flush_posted = False
            if self._pending and self._in_flight < _MAX_IN_FLIGHT:
                await self._send_batch()
            return
        await super().handle_info(message)

    async def terminate(self, reason: object) -> None:
        """Commit what is pending (at most 2 s) so its captures are answered, not retried."""
        for registry in (_running, _direct):
            stores = registry.get(self.node, {})
            if stores.get(self._registered_as) is self.store:
                del stores[self._registered_as]
        if self._pending:
            entries = tuple(self._pending)
            self._pending = []
            with anyio.move_on_after(2.0, shield=True):
                try:
                    await _commit(self.store, entries, self.store_kind, self.ref.label)
                except Exception as exc:
                    logger.warning(
                        "dead-letter writer %s could not commit its last batch while stopping "
                        "(%s); its captures will be retried",
                        self.ref.label,
                        type(exc).__name__,
                    )

    def statistics(self) -> WriterStatistics:
        """Return this incarnation's counters."""
        return WriterStatistics(
            batches=self._batches,
            records=self._records,
            failed_batches=self._failed_batches,
            largest_batch=self._largest,
            pending=self._pending_records,
        )

    def format_status(self) -> dict[str, object]:
        """Show counters, never records."""
        return {"store": self.store_kind, **attrs.asdict(self.statistics())}

    # -- batching ---------------------------------------------------------------------

    def _add(self, caller: Caller | None, records: tuple[DeadLetter, ...]) -> bool:
        """Queue *records*; return whether the batch must go to the committer now."""
        self._pending.append((caller, records))
        self._pending_records += len(records)
        if self._in_flight >= _MAX_IN_FLIGHT:
            return False  # the next batch grows while the committer works
        if self._pending_records >= self.max_batch:
            return True
        if not self._flush_posted:
            # Timers are delivered whatever the mailbox holds, behind what is queued,
            # so the captures already queued join this batch.
            self.send_after(0.0, _FLUSH)
            self._flush_posted = True
        return False

    async def _send_batch(self) -> None:
        """Hand the oldest pending captures, about ``max_batch`` records, to the committer."""
        taken = 0
        count = 0
        for _, chunk in self._pending:
            if taken and count + len(chunk) > self.max_batch:
                break
            taken += 1
            count += len(chunk)
        entries = tuple(self._pending[:taken])
        del self._pending[:taken]
        self._pending_records -= count
        self._in_flight += 1
        await self._committer.cast(_Batch(entries))


# -- the client ------------------------------------------------------------------------


@attrs.frozen(kw_only=True)
class DeadLettersStatistics:
    """What one :class:`DeadLetters` client did.

    Attributes:
        captured: records acknowledged (committed) through it.
        retries: capture attempts repeated because the writer was down or crashed.
        dropped: fire-and-forget records that never reached the writer (its mailbox
            or restart stash was full, or nothing was registered under its name).
    """

    captured: int
    retries: int
    dropped: int


@final
class DeadLetters:
    """Captures dead letters through the writer registered as *name*.

    The writer is looked up by name at every capture (``otpy.named``), so a client
    outlives writer restarts: a capture sent while the writer restarts waits in the
    name's restart stash, and one whose batch was lost when the writer crashed is
    sent again (same ids, stored once) with a short capped backoff, until *timeout*.

    Args:
        name: the writer's registered name.
        node: the node to look the name up on; the current node by default.
        min_backoff: first delay between attempts, seconds (finite, > 0).
        max_backoff: the cap on that delay (finite, >= min_backoff).

    Raises:
        InvalidArgument: an argument is out of range or has the wrong type, named in
            the message.
    """

    def __init__(
        self,
        name: str = DEFAULT_NAME,
        *,
        node: Node | None = None,
        min_backoff: float = 0.01,
        max_backoff: float = 0.5,
    ) -> None:
        check_name(name, owner="DeadLetters")
        min_backoff = number(min_backoff, "min_backoff", owner="DeadLetters", unit=" of seconds")
        max_backoff = number(max_backoff, "max_backoff", owner="DeadLetters", unit=" of seconds")
        if min_backoff > max_backoff:
            raise InvalidArgument(
                "max_backoff",
                f"must be >= min_backoff ({min_backoff:g}), got {max_backoff:g}",
                owner="DeadLetters",
            )
        if node is not None and not isinstance(node, Node):
            raise InvalidArgumentType(
                "node", f"must be a Node or None, got {short(node)}", owner="DeadLetters"
            )
        self.name = name
        self._node = node
        self._min_backoff = min_backoff
        self._max_backoff = max_backoff
        self._captured = 0
        self._retries = 0
        self._dropped = 0

    def __repr__(self) -> str:
        return f"<DeadLetters {self.name!r}>"

    def _writer(self) -> NamedRef:
        return (self._node or current_node()).named(self.name)

    @overload
    async def capture(self, records: DeadLetter, *, timeout: float = 10.0) -> str: ...

    @overload
    async def capture(
        self, records: Iterable[DeadLetter], *, timeout: float = 10.0
    ) -> tuple[str, ...]: ...

    async def capture(
        self, records: DeadLetter | Iterable[DeadLetter], *, timeout: float = 10.0
    ) -> str | tuple[str, ...]:
        """Store *records* durably; return once they are committed (DL-2).

        Args:
            records: one record, or several stored in the same transaction.
            timeout: seconds for the whole capture, waiting for mailbox room and
                retries included.

        Returns:
            The record's id, or the records' ids in order.

        Raises:
            DeadLetterStoreError: the store refused the batch (full, locked...);
                nothing in it was stored. Not retried.
            CallTimeout: not acknowledged within *timeout*. The records may still be
                stored later; capturing them again is safe.
            TypeError: a record is not a :class:`DeadLetter`.
            ValueError: a record's payload is not loaded.
        """
        single = isinstance(records, DeadLetter)
        batch = (records,) if isinstance(records, DeadLetter) else tuple(records)
        error = _check(batch)
        if error is not None:
            raise error
        if not batch:
            await anyio.lowlevel.checkpoint()
            return ()
        node = self._node or current_node()
        clock = node_clock(node)  # anyio's clock, without a backend lookup per capture
        deadline = clock() + timeout
        message: Capture | None = None
        last: Exception | None = None
        attempt = 0
        while True:
            # The first try passes *timeout* itself: waits sharing a timeout share
            # one deadline queue, with no cancel scope to pay for.
            remaining = timeout if attempt == 0 else deadline - clock()
            store = _direct.get(node, {}).get(self.name)
            try:
                if store is not None:
                    # The writer's store, straight: its write path groups this capture
                    # with the others waiting; no message to the writer is needed.
                    await _add(store, batch, remaining)
                else:
                    message = message or Capture(batch)
                    reply = await self._call(node, message, remaining)
                    if type(reply) is CaptureFailed:
                        raise reply.error
            except TimeoutError:  # CallTimeout too
                raise CallTimeout(self.name, timeout) from last
            except ActorStopped as exc:  # also ActorExited: the batch died with it
                last = exc
            except DeadLetterError as exc:
                if store is None or _direct.get(node, {}).get(self.name) is store:
                    raise  # the store refused the records: not retried
                last = exc  # its writer stopped meanwhile and closed it: go again
            except Exception as exc:
                if store is None:
                    raise
                # Lost with its transaction (a connection dropped after COMMIT, say):
                # the ids are fixed, so going again stores each record once.
                logger.warning(
                    "dead-letter capture through %s failed (%s); retrying",
                    self.name,
                    type(exc).__name__,
                )
                last = exc
            else:
                self._captured += len(batch)
                return batch[0].id if single else tuple([record.id for record in batch])
            self._retries += 1
            pause = min(self._max_backoff, self._min_backoff * 2**attempt)
            if clock() + pause >= deadline:
                await anyio.sleep_until(deadline)
                raise CallTimeout(self.name, timeout) from last
            await anyio.sleep(pause)
            attempt += 1

    async def _call(self, node: Node, message: Capture, remaining: float) -> Any:
        """Call the writer with *message*: at once if its mailbox has room, else through its name."""
        ref = node.whereis(self.name)
        if ref is not None and mailbox_has_room(ref):
            # Room now, and nothing awaits before the message is queued: the call's
            # own timeout bounds the rest.
            return await ref.call(message, timeout=remaining)
        return await self._call_waiting(node, message, remaining)

    async def _call_waiting(self, node: Node, message: Capture, remaining: float) -> Any:
        """Call through the name, waiting for mailbox room or a restart, for *remaining* s."""
        if remaining > 0:
            with anyio.move_on_after(remaining):
                return await node.named(self.name).call(message, timeout=None)
        raise CallTimeout(self.name, remaining)

    def capture_nowait(self, records: DeadLetter | Iterable[DeadLetter]) -> None:
        """Hand *records* to the writer without waiting or an acknowledgement.

        For capture points with nobody to tell (a poison message, an undeliverable
        cast). Records that cannot be handed over are dropped and counted in
        :meth:`statistics` and ``otpy.deadletter.capture_dropped``; they are lost if
        the writer crashes before committing them. Never raises for a busy writer.

        Raises:
            TypeError: a record is not a :class:`DeadLetter`.
            ValueError: a record's payload is not loaded.
        """
        batch = (records,) if isinstance(records, DeadLetter) else tuple(records)
        error = _check(batch)
        if error is not None:
            raise error
        if not batch:
            return
        try:
            self._writer().cast_nowait(Capture(batch))
        except MailboxFull:
            self._count_dropped("mailbox_full", len(batch))

    def _count_dropped(self, reason: str, count: int) -> None:
        self._dropped += count
        record_dropped(reason, count)

    async def flush(self, *, timeout: float = 10.0) -> None:
        """Wait until everything handed to the writer before this call is committed.

        That is the records of :meth:`capture_nowait`, the captures routed from the
        node's dead-letter stream, and captures made while the store was not
        registered. (A :meth:`capture` into a store that groups its own commits,
        such as the SQLite store, goes straight to the store and is committed when
        it returns.) Batches commit in order, so this is answered after them.

        Raises:
            CallTimeout: not answered within *timeout*.
            ActorStopped: the writer stopped.
        """
        reply = await self._writer().call(_FLUSH_REQUEST, timeout=timeout)
        if type(reply) is CaptureFailed:
            raise reply.error

    async def writer_statistics(self, *, timeout: float = 5.0) -> WriterStatistics:
        """Ask the running writer for its counters."""
        result: WriterStatistics = await self._writer().call(_STATISTICS, timeout=timeout)
        return result

    def statistics(self) -> DeadLettersStatistics:
        """Return this client's counters."""
        return DeadLettersStatistics(
            captured=self._captured, retries=self._retries, dropped=self._dropped
        )


async def _add(store: DeadLetterStore, batch: tuple[DeadLetter, ...], timeout: float) -> None:
    """``store.add_many(batch)``, in a write span if anyone listens (the span costs ~10 µs)."""
    if providers_set():
        with write_span(batch, store_kind(store)):
            await store.add_many(batch, timeout=timeout)
    else:
        await store.add_many(batch, timeout=timeout)


def count_undelivered(client: DeadLetters, message: object, reason: str) -> bool:
    """Count *message* as dropped by *client* if it is a capture for the writer; return whether it was.

    The node's dead-letter stream also carries the writer's own messages that never
    reached it (nothing registered under its name, its restart stash full). A
    capture point must not capture those again (that would loop): it counts them
    here, in the statistics of the client that sent them.
    """
    if type(message) is not Capture:
        return False
    client._count_dropped(reason, len(message.records))
    return True


# -- retention -------------------------------------------------------------------------


@final
class RetentionSweeper(Actor):
    """Runs ``store.sweep(policy)`` at start and then every ``policy.interval`` seconds (DL-5).

    Every eviction is logged (INFO for archived records, WARNING for active ones:
    those were waiting for a decision) and counted in ``otpy.deadletter.evictions``
    by status and rule. Idempotency ledger entries pruned by
    ``policy.ledger_max_age`` are logged at INFO; they are not records, so that
    metric leaves them out. A store error is logged and the next sweep tries again.
    """

    async def init(self, store: DeadLetterStore, policy: RetentionPolicy | None = None) -> None:
        """Hold *store* and *policy*; the first sweep runs right after start."""
        self.store = store
        self.policy = policy or RetentionPolicy()
        self.sweeps = 0
        self.evicted: Counter[str] = Counter()
        self.send_after(0.0, _SWEEP)

    async def handle_info(self, message: Any) -> None:
        """Sweep, then schedule the next sweep."""
        if message is _SWEEP:
            await self._sweep_once()
            self.send_after(self.policy.interval, _SWEEP)
            return
        await super().handle_info(message)

    async def _sweep_once(self) -> SweepResult | None:
        """Sweep once; return what was evicted, or ``None`` if the store failed."""
        try:
            result = await self.store.sweep(self.policy)
        except DeadLetterError as exc:
            logger.warning("dead-letter retention sweep failed, retrying next interval: %s", exc)
            return None
        self.sweeps += 1
        self.evicted.update(result.evicted)
        for key, count in sorted(result.evicted.items()):
            status, _, rule = key.partition(":")
            if key == LEDGER_EVICTED:
                logger.info(
                    "dead-letter retention pruned %d idempotency ledger entries: older than "
                    "ledger_max_age, and no stored record uses them",
                    count,
                )
            elif status == Status.ACTIVE.value:
                logger.warning(
                    "dead-letter retention evicted %d active records by %s: they were never "
                    "replayed or archived; check RetentionPolicy.active",
                    count,
                    rule,
                )
            else:
                logger.info(
                    "dead-letter retention evicted %d %s records by %s", count, status, rule
                )
        record_evictions(result.evicted)
        return result
