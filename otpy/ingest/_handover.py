"""The hand-over: from the ingest journal to the outbound gateway, idempotent across crashes.

:class:`Handover` reads the journal's pending entries a page at a time, oldest
first, builds one :class:`~otpy.gateway.OutboxMessage` per destination of each
entry's route, stores the page's messages in one commit
(:meth:`~otpy.gateway.Gateway.enqueue_many`), then marks the entries handed over
(:meth:`JournalStore.mark_handed_over`). Each message's id is derived from its
entry's id and its destination (:func:`handover_message_id`), so a crash between the
two commits only hands the page over again, and the outbox keeps each id once.

A backlog (after a restart, or a stall) drains at a governed rate, by default 1.5
times the steady rate measured while there was none (:class:`BackfillPolicy`), so
the destinations are not flooded when the node catches up.

:class:`HandoverWorker` runs the loop as a task of a supervised actor
(:meth:`Handover.child_spec`); a stop finishes the page in hand and returns.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Final, final

import anyio
import attrs
from opentelemetry import context as otel_context
from opentelemetry.trace import SpanKind

from .._check import callable_or_none, count, number, short
from .._check import name as check_name
from .._core import Actor, ActorRef, is_normal_exit
from .._exceptions import InvalidArgument, InvalidArgumentType, JournalError
from .._redact import get_logger
from .._supervision import ChildSpec
from ..deadletter import Category, DeadLetter, DeadLetters, Source, stable_id
from ..gateway import DeadLetterSink, Gateway, OutboxMessage
from ..pressure import RateLimiter
from ..telemetry import (
    ATTR_INGEST_BACKFILL_BACKLOG,
    ATTR_INGEST_BACKFILL_HANDED_OVER,
    ATTR_INGEST_BACKFILL_RATE,
    ATTR_INGEST_BACKFILL_STEADY_RATE,
    ATTR_INGEST_ROUTE,
    ATTR_ORDERING_KEY,
    METRIC_INGEST_HANDED_OVER,
    METRIC_INGEST_HANDOVER_BACKLOG,
    METRIC_INGEST_HANDOVER_RATE,
    METRIC_INGEST_UNROUTABLE,
    SPAN_INGEST_BACKFILL,
    cached_counter,
    cached_gauge,
    get_tracer,
    providers_set,
)
from ._journal import JournalEntry, JournalStore

if TYPE_CHECKING:
    from opentelemetry.trace import Span
    from opentelemetry.util.types import AttributeValue

__all__ = [
    "DEFAULT_OUTBOX_LIMIT",
    "BackfillPolicy",
    "Handover",
    "HandoverStatistics",
    "HandoverWorker",
    "RouteCountsHook",
    "handover_message_id",
]

logger = get_logger("otpy.ingest")

RouteCountsHook = Callable[[Mapping[str, int]], object]
"""Called after each page with ``{route: entries that left the journal}``."""

SUFFIX_BYTES: Final = 3
"""Bytes of BLAKE2b of a destination's name in its messages' ids: six hex characters."""

UNKNOWN_ROUTE: Final = "UnknownRoute"
"""The dead letter's ``reason_class`` for an entry of a route the node no longer has."""

INVALID_ENTRY_ID: Final = "InvalidEntryId"
"""The dead letter's ``reason_class`` for an entry whose id cannot make a message id."""

DEFAULT_OUTBOX_LIMIT: Final = 10_000
"""Messages a destination may have in the outbox before its routes wait in the journal."""

SAVE_INTERVAL: Final = 10.0
"""Seconds between saves of the steady rate in the journal (when it changed)."""


def destination_suffix(destination: str) -> str:
    """The stable suffix of *destination*'s message ids: six hex characters of its BLAKE2b."""
    return hashlib.blake2b(destination.encode(), digest_size=SUFFIX_BYTES).hexdigest()


def handover_message_id(entry_id: str, destination: str) -> str:
    """Return the outbox message id of the entry *entry_id* for *destination*.

    The entry's id, a ``-``, then six hex characters of BLAKE2b of the destination's
    name: the same for the same pair at every hand-over (so the outbox keeps it
    once), sorting like the entries (their ids have one length), and unchanged by a
    reordering of the route's destinations.

    .. versionadded:: 0.1.0
    """
    return f"{entry_id}-{destination_suffix(destination)}"


# -- the settings -----------------------------------------------------------------------


def _number(field: str, *, optional: bool = False) -> Callable[[Any, Any, Any], None]:
    def validator(_inst: object, _attribute: object, value: object) -> None:
        if not (optional and value is None):
            number(value, field, owner="BackfillPolicy")

    return validator


@attrs.frozen(kw_only=True)
class BackfillPolicy:
    """How fast a backlog of the journal is handed over; validated when built.

    The hand-over is in backlog when more than a page is pending (a read of
    ``page_size + 1`` entries comes back full). It then hands over at *rate*, or by
    default at ``max(min_rate, factor x steady rate)``, until a page comes back short.
    The steady rate is an exponentially weighted moving average of the entries
    handed over per second while there is no backlog, one sample per
    *sample_interval*; it is not measured during a backlog. It is saved in the
    journal every 10 s (:meth:`~otpy.ingest.JournalStore.save_steady_rate`) and
    read back when the hand-over starts, so a restart's backlog drains at the rate
    the node ran at; a journal with none saved (a new node) starts at *min_rate*.

    Attributes:
        factor: the backlog's rate as a multiple of the steady rate (> 0).
        min_rate: the least rate of a backlog, entries per second (> 0): an idle
            node's backlog, or a new process's, still drains.
        rate: a fixed backlog rate, entries per second (> 0), instead of
            ``factor x steady``; ``None`` (the default) to follow the steady rate.
        half_life: seconds after which a steady-rate sample weighs half as much (> 0).
        sample_interval: seconds between samples of the steady rate (> 0).

    Raises:
        InvalidArgument: a field is out of range; the message names it.

    .. versionadded:: 0.1.0
    """

    factor: float = attrs.field(default=1.5, validator=_number("factor"))
    min_rate: float = attrs.field(default=50.0, validator=_number("min_rate"))
    rate: float | None = attrs.field(default=None, validator=_number("rate", optional=True))
    half_life: float = attrs.field(default=60.0, validator=_number("half_life"))
    sample_interval: float = attrs.field(default=1.0, validator=_number("sample_interval"))

    def backlog_rate(self, steady: float | None) -> float:
        """The rate a backlog drains at, given the *steady* rate measured (``None``: none yet)."""
        if self.rate is not None:
            return self.rate
        return max(self.min_rate, 0.0 if steady is None else self.factor * steady)


@attrs.frozen(kw_only=True)
class HandoverStatistics:
    """A snapshot of the hand-over.

    Attributes:
        handed_over: entries enqueued to the gateway and marked handed over.
        dead_lettered: entries dead-lettered instead (their route is gone).
        steady_rate: the entries per second measured outside backlogs (an
            exponentially weighted moving average), or ``None`` before the first
            sample with traffic.
        backfilling: whether a backlog is draining now.
        rate: the backlog's rate limit, entries per second, while backfilling; else
            ``None``.
        backlog: the entries estimated pending while backfilling (the journal's depth
            at the start, less those handed over since); else 0.
        backfills: backlogs met since the hand-over was built.
        held: the routes held back now, because a destination of theirs has
            ``outbox_limit`` messages or more in the outbox.
    """

    handed_over: int
    dead_lettered: int
    steady_rate: float | None
    backfilling: bool
    rate: float | None
    backlog: int
    backfills: int
    held: tuple[str, ...] = ()


# -- telemetry --------------------------------------------------------------------------

_handed_over = cached_counter(
    METRIC_INGEST_HANDED_OVER,
    unit="{entry}",
    description="Journal entries handed over to the gateway, by route.",
)
_unroutable = cached_counter(
    METRIC_INGEST_UNROUTABLE,
    unit="{entry}",
    description="Journal entries dead-lettered at the hand-over: their route is gone.",
)
_rate_gauge = cached_gauge(
    METRIC_INGEST_HANDOVER_RATE,
    unit="{entry}/s",
    description="The hand-over's steady rate, or its rate limit during a backfill.",
)
_backlog_gauge = cached_gauge(
    METRIC_INGEST_HANDOVER_BACKLOG,
    unit="{entry}",
    description="Journal entries estimated pending during a backfill; 0 outside one.",
)


def _record(action: Callable[[], object], what: str) -> None:
    """Run a telemetry *action* if a provider is installed; never raise."""
    if not providers_set():
        return
    try:
        action()
    except Exception:
        logger.debug("could not record %s", what, exc_info=True)


def _count_routes(counter: Callable[[], object], counts: Mapping[str, int]) -> None:
    instrument = counter()
    for route, n in counts.items():
        instrument.add(n, {ATTR_INGEST_ROUTE: route})  # type: ignore[attr-defined]


@final
class _Backfill:
    """One backlog being drained: its limiter, its span, what it handed over."""

    def __init__(self, rate: float, chunk: int, backlog: int, span: Span | None) -> None:
        self.rate = rate
        self.chunk = chunk
        self.backlog = backlog
        self.span = span
        self.handed = 0
        self.limiter = RateLimiter(rate, burst=chunk)
        # Start empty: the first chunk waits its turn too, so no second passes more
        # than the rate.
        self.limiter.try_acquire(chunk)


# -- the hand-over ----------------------------------------------------------------------


@final
class Handover:
    """Hands the journal's pending entries to the gateway, one outbox message per destination.

    ::

        handover = Handover(journal, gateway, {"orders": ["billing", "crm"]})
        root = SupervisorSpec(children=[*stores, gateway.supervisor_spec(), handover.child_spec()])

    Each page: read up to *page_size* pending entries, oldest first; for each entry
    and each destination of its route build an
    :class:`~otpy.gateway.OutboxMessage` with the entry's ordering key, idempotency
    key (or, without one, the message id), body, content type, headers and trace
    context, and the id :func:`handover_message_id`; store them all in one commit;
    then mark the entries handed over. A crash between the two commits hands the
    page over again at the next start: the outbox keeps each id once. An entry of a
    route the node no longer has is dead-lettered (source ``ingest``, reason class
    ``UnknownRoute``) and marked handed over, never dropped. When nothing is
    pending the loop waits for :meth:`notify` or *poll_interval*.

    Args:
        journal: where accepted entries wait.
        gateway: where they go.
        routes: each route's destination names, all of them the gateway's, at least
            one per route, none twice.
        page_size: the most entries read and handed over in one commit (>= 1); more
            than one page pending is a backlog (see *backfill*).
        poll_interval: seconds between looks at the journal when not woken (> 0).
        backfill: how fast a backlog drains (:class:`BackfillPolicy`).
        dead_letters: where an entry whose route is gone goes: a
            :class:`~otpy.deadletter.DeadLetters` client or an async callable storing
            one :class:`~otpy.deadletter.DeadLetter` durably; by default
            ``DeadLetters()``, the node's default writer.
        outbox_limit: the most messages a destination may have in the outbox before
            the routes that send to it are held back in the journal (>= 1; ``None``:
            no limit). The journal is the spill and has a disk budget: held there,
            a route's pending depth rises and its pressure refuses (``429``), where
            an unbounded outbox would grow for as long as a destination is slow.
        on_handed_over: called after each page with ``{route: n}``, the entries of
            each route that left the journal (handed over or dead-lettered), so the
            HTTP app can lower its pending counts. It must not block; an exception
            from it is logged and the hand-over goes on.

    Raises:
        InvalidArgument: a value is not allowed; the message names the argument and,
            for *routes*, the route.
        InvalidArgumentType: a value has the wrong type.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self,
        journal: JournalStore,
        gateway: Gateway,
        routes: Mapping[str, Sequence[str]],
        *,
        page_size: int = 100,
        poll_interval: float = 1.0,
        backfill: BackfillPolicy | None = None,
        dead_letters: DeadLetters | DeadLetterSink | None = None,
        on_handed_over: RouteCountsHook | None = None,
        outbox_limit: int | None = DEFAULT_OUTBOX_LIMIT,
    ) -> None:
        owner = "Handover"
        if not isinstance(journal, JournalStore):
            raise InvalidArgumentType(
                "journal", f"must be a JournalStore, got {short(journal)}", owner=owner
            )
        if not isinstance(gateway, Gateway):
            raise InvalidArgumentType(
                "gateway", f"must be a Gateway, got {short(gateway)}", owner=owner
            )
        policy = BackfillPolicy() if backfill is None else backfill
        if not isinstance(policy, BackfillPolicy):
            raise InvalidArgumentType(
                "backfill", f"must be a BackfillPolicy or None, got {short(backfill)}", owner=owner
            )
        callable_or_none(on_handed_over, "on_handed_over", owner=owner)
        if dead_letters is not None and not (
            isinstance(dead_letters, DeadLetters) or callable(dead_letters)
        ):
            raise InvalidArgumentType(
                "dead_letters",
                f"must be a DeadLetters client, an async callable or None, got {short(dead_letters)}",
                owner=owner,
            )
        self.journal = journal
        self.gateway = gateway
        self.routes = _check_routes(routes, set(gateway.statistics().destinations))
        self.page_size = count(page_size, "page_size", owner=owner)
        self.poll_interval = number(poll_interval, "poll_interval", owner=owner)
        self.outbox_limit = (
            None if outbox_limit is None else count(outbox_limit, "outbox_limit", owner=owner)
        )
        self._held: frozenset[str] = frozenset()
        self._held_checked = -math.inf
        # Each destination's outbox depth: measured every poll_interval, and counted
        # up by the messages handed over since (so a limit is passed by a page at most).
        self._depths: dict[str, int] = {}
        self.backfill = policy
        if dead_letters is None:
            dead_letters = DeadLetters()
        self._sink: DeadLetterSink = (
            dead_letters.capture if isinstance(dead_letters, DeadLetters) else dead_letters
        )
        self._on_handed_over = on_handed_over
        self._wakeup = anyio.Event()
        self._scope: anyio.CancelScope | None = None  # the wait a drain interrupts
        self._draining = False
        self._running: object | None = None  # run() (self) or the actor running the loop
        self.stopped = anyio.Event()
        """Set while the loop is not running (after a drain, once its page is handed over)."""
        self.stopped.set()
        self._backfill: _Backfill | None = None
        self._steady: float | None = None
        self._saved_steady: float | None = None  # what the journal holds, as far as we know
        self._saved_at = -math.inf
        self._window_start = 0.0
        self._window_count = 0
        self._handed_over = 0
        self._dead_lettered = 0
        self._backfills = 0

    def __repr__(self) -> str:
        return f"<Handover {sorted(self.routes)}>"

    # -- waking and stopping ------------------------------------------------------------

    def notify(self) -> None:
        """Wake the loop: entries were accepted. Cheap, never blocks; call it after each accept."""
        self._wakeup.set()

    def drain(self) -> None:
        """Ask the loop to return once the page in hand is handed over; :attr:`stopped` is set then."""
        self._draining = True
        if self._scope is not None:
            self._scope.cancel("the hand-over is draining")

    def statistics(self) -> HandoverStatistics:
        """A snapshot of the hand-over's counters, steady rate and backlog."""
        backfill = self._backfill
        return HandoverStatistics(
            handed_over=self._handed_over,
            dead_lettered=self._dead_lettered,
            steady_rate=self._steady,
            backfilling=backfill is not None,
            rate=None if backfill is None else backfill.rate,
            backlog=0 if backfill is None else backfill.backlog,
            backfills=self._backfills,
            held=tuple(sorted(self._held)),
        )

    # -- running ------------------------------------------------------------------------

    def claim_running(self, owner: ActorRef | None = None) -> None:
        """Mark the loop running, by *owner* (a :class:`HandoverWorker`) or by :meth:`run`.

        Raises:
            RuntimeError: it runs already; one loop per hand-over (and per journal).
        """
        current = self._running
        if current is not None and (not isinstance(current, ActorRef) or current.is_alive):
            raise RuntimeError(
                "the hand-over is already running: Handover.run and a HandoverWorker "
                "from Handover.child_spec are two ways to run it, use one"
            )
        self._running = self if owner is None else owner
        self._draining = False

    def release_running(self) -> None:
        """Mark the loop stopped."""
        self._running = None

    async def run(self) -> None:
        """Hand over until cancelled or drained (:meth:`drain`).

        Raises:
            RuntimeError: the loop runs already.
        """
        self.claim_running()
        try:
            await self.loop()
        finally:
            self.release_running()

    async def loop(self) -> None:
        """The loop itself, for the one that claimed it (:meth:`run`, :class:`HandoverWorker`)."""
        self.stopped = anyio.Event()
        self._window_start = anyio.current_time()
        self._window_count = 0
        try:
            if self._steady is None:
                await self._load_steady_rate()
            while not self._draining:
                await self.step()
        finally:
            if self._backfill is not None:
                self._end_backfill()
            self.stopped.set()

    async def _load_steady_rate(self) -> None:
        """Start from the steady rate the journal saved (a restart's backlog drains at it)."""
        try:
            saved = await self.journal.steady_rate()
        except (JournalError, OSError):
            logger.warning(
                "could not read the saved steady rate; starting without one", exc_info=True
            )
            return
        if saved is not None:
            self._steady = saved
            self._saved_steady = saved
            self._saved_at = anyio.current_time()
            logger.info("hand-over starts from the saved steady rate, %.3g/s", saved)

    async def _save_steady_rate(self, now: float) -> None:
        """Save the steady rate every ``SAVE_INTERVAL`` seconds, when it changed."""
        steady = self._steady
        if steady is None or steady == self._saved_steady or now - self._saved_at < SAVE_INTERVAL:
            return
        self._saved_at = now
        try:
            await self.journal.save_steady_rate(steady)
        except (JournalError, OSError):
            logger.debug("could not save the steady rate", exc_info=True)
        else:
            self._saved_steady = steady

    async def step(self) -> None:
        """One turn of the loop: hand over a page, or wait for entries."""
        now = anyio.current_time()
        self._sample(now)
        await self._save_steady_rate(now)
        held = await self._held_routes(now)
        backfill = self._backfill
        if backfill is None:
            page = await self.journal.pending(limit=self.page_size + 1, exclude=held)
            if len(page) <= self.page_size:
                if page:
                    await self.hand_over(page)
                else:
                    await self._idle(held=bool(held))
                return
            backfill = await self._start_backfill()
            page = page[: backfill.chunk]
        else:
            page = await self.journal.pending(limit=backfill.chunk, exclude=held)
            if not page:
                self._end_backfill()
                return
        if not await self._paced(backfill, len(page)):
            return  # drained while waiting for the rate: the page was not handed over
        await self.hand_over(page)
        backfill.handed += len(page)
        backfill.backlog = max(backfill.backlog - len(page), 0)
        _record(lambda: _backlog_gauge().set(backfill.backlog), "the backlog")
        if len(page) < backfill.chunk:
            self._end_backfill()

    async def _held_routes(self, now: float) -> frozenset[str]:
        """The routes to hold back: a destination of theirs has ``outbox_limit`` messages or more.

        The outbox is measured at most once per ``poll_interval``; a failure to
        measure keeps the last answer (logged at DEBUG).
        """
        limit = self.outbox_limit
        if limit is None:
            return self._held
        if now - self._held_checked >= self.poll_interval:
            self._held_checked = now
            try:
                statistics = await self.gateway.outbox.statistics()
            except Exception:
                logger.debug(
                    "could not measure the outbox for the hand-over's limit", exc_info=True
                )
            else:
                self._depths = {n: d.depth for n, d in statistics.destinations.items()}
        full = {name for name, depth in self._depths.items() if depth >= limit}
        held = frozenset(
            route for route, destinations in self.routes.items() if full.intersection(destinations)
        )
        for route in sorted(held - self._held):
            logger.warning(
                "hand-over holds route %r in the journal: %s has %d messages or more in the "
                "outbox (outbox_limit)",
                route,
                ", ".join(sorted(full.intersection(self.routes[route]))),
                limit,
            )
        for route in sorted(self._held - held):
            logger.info("hand-over resumes route %r: its destinations' outboxes drained", route)
        self._held = held
        return held

    async def _idle(self, *, held: bool = False) -> None:
        """Wait for :meth:`notify` or the poll interval, whichever comes first; a drain ends it.

        With routes *held*, only the poll interval: an accept (a notify) cannot
        make room in a full outbox, and a read that skips the held routes is not
        worth repeating for every accept.
        """
        event = self._wakeup
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._draining:
                scope.cancel()
            with anyio.move_on_after(self.poll_interval):
                if held:
                    await anyio.sleep_forever()
                await event.wait()
        self._scope = None
        if event.is_set():
            self._wakeup = anyio.Event()

    async def _paced(self, backfill: _Backfill, entries: int) -> bool:
        """Wait for the backlog's rate to allow *entries*; ``False`` if a drain came first."""
        with anyio.CancelScope() as scope:
            self._scope = scope
            if self._draining:
                scope.cancel()
            await backfill.limiter.acquire(entries)
        self._scope = None
        return not scope.cancelled_caught

    # -- one page -----------------------------------------------------------------------

    def messages_of(self, entry: JournalEntry, now: float) -> list[OutboxMessage]:
        """The outbox messages of *entry*, one per destination of its route (none if it has none)."""
        return [
            OutboxMessage.new(
                destination=destination,
                key=entry.key,
                body=entry.body,
                now=now,
                content_type=entry.content_type,
                headers=entry.headers,
                trace_context=entry.trace_context,
                idempotency_key=entry.idempotency_key,
                message_id=handover_message_id(entry.id, destination),
            )
            for destination in self.routes.get(entry.route, ())
        ]

    async def hand_over(self, entries: Sequence[JournalEntry]) -> dict[str, int]:
        """Hand *entries* over: enqueue their messages in one commit, dead-letter the unroutable, mark them.

        Safe to repeat for the same entries (after a crash between the enqueue and
        the mark): the outbox keeps each message id once, and the dead-letter store
        each dead letter's id once.

        Returns:
            ``{route: n}``: the entries of each route that left the journal.
        """
        now = self.gateway.clock()
        messages: list[OutboxMessage] = []
        dead: list[DeadLetter] = []
        for entry in entries:
            if entry.route not in self.routes:
                dead.append(
                    self._dead_letter(
                        entry,
                        UNKNOWN_ROUTE,
                        f"route {entry.route!r} is not configured on this node: "
                        "no destination to hand the entry over to",
                    )
                )
                continue
            try:
                messages.extend(self.messages_of(entry, now))
            except InvalidArgument as exc:
                dead.append(self._dead_letter(entry, INVALID_ENTRY_ID, str(exc)))
        if messages:
            await self.gateway.enqueue_many(messages)
            for message in messages:
                self._depths[message.destination] = self._depths.get(message.destination, 0) + 1
        for record in dead:
            await self._sink(record)
        await self.journal.mark_handed_over([entry.id for entry in entries])
        counts: dict[str, int] = {}
        lost: dict[str, int] = {}
        dead_ids = {record.correlation_id for record in dead}
        for entry in entries:
            counts[entry.route] = counts.get(entry.route, 0) + 1
            if entry.id in dead_ids:
                lost[entry.route] = lost.get(entry.route, 0) + 1
        for record in dead:
            logger.warning(
                "hand-over dead-lettered journal entry %s (%s): %s",
                record.correlation_id,
                record.reason_class,
                record.reason,
            )
        handed = {r: n - lost.get(r, 0) for r, n in counts.items() if n > lost.get(r, 0)}
        self._handed_over += len(entries) - len(dead)
        self._dead_lettered += len(dead)
        self._window_count += len(entries)
        _record(lambda: _count_routes(_handed_over, handed), "entries handed over")
        if lost:
            _record(lambda: _count_routes(_unroutable, lost), "unroutable entries")
        if self._on_handed_over is not None:
            try:
                self._on_handed_over(counts)
            except Exception:
                logger.exception("the hand-over's on_handed_over hook raised; going on")
        return counts

    def _dead_letter(self, entry: JournalEntry, reason_class: str, reason: str) -> DeadLetter:
        """The dead letter of *entry*: the same record at every hand-over (its id is stable)."""
        return DeadLetter.capture(
            id=stable_id(entry.id, entry.received_at),
            key=entry.route,
            source=Source.INGEST,
            reason_class=reason_class,
            reason=reason,
            payload=entry.body,
            content_type=entry.content_type,
            headers=entry.headers,
            category=Category.TERMINAL,
            correlation_id=entry.id,
            idempotency_key=entry.idempotency_key,
            trace_context=dict(entry.trace_context),
            attributes=[(ATTR_INGEST_ROUTE, entry.route), (ATTR_ORDERING_KEY, entry.key)],
            now=entry.received_at,
        )

    # -- the steady rate and the backfill -----------------------------------------------

    def _sample(self, now: float) -> None:
        """Fold the entries handed over since the last sample into the steady rate, once per interval."""
        if self._backfill is not None:
            return
        elapsed = now - self._window_start
        policy = self.backfill
        if elapsed < policy.sample_interval:
            return
        if self._steady is not None or self._window_count:
            sample = self._window_count / elapsed
            if self._steady is None:
                self._steady = sample
            else:
                weight = 1.0 - 0.5 ** (elapsed / policy.half_life)
                self._steady += weight * (sample - self._steady)
            steady = self._steady
            _record(lambda: _rate_gauge().set(steady), "the steady rate")
        self._window_start = now
        self._window_count = 0

    async def _start_backfill(self) -> _Backfill:
        """More than a page is pending: measure the backlog, start pacing at the backlog's rate."""
        backlog = (await self.journal.statistics()).depth
        rate = self.backfill.backlog_rate(self._steady)
        chunk = max(1, min(self.page_size, int(rate)))
        attributes: dict[str, AttributeValue] = {
            ATTR_INGEST_BACKFILL_BACKLOG: backlog,
            ATTR_INGEST_BACKFILL_RATE: rate,
        }
        if self._steady is not None:
            attributes[ATTR_INGEST_BACKFILL_STEADY_RATE] = self._steady
        span: Span | None = None
        if providers_set():
            try:
                span = get_tracer().start_span(
                    SPAN_INGEST_BACKFILL,
                    context=otel_context.Context(),
                    kind=SpanKind.INTERNAL,
                    attributes=attributes,
                )
            except Exception:
                logger.debug("could not start the backfill span", exc_info=True)
        self._backfill = backfill = _Backfill(rate, chunk, backlog, span)
        self._backfills += 1
        _record(lambda: _rate_gauge().set(rate), "the backfill rate")
        _record(lambda: _backlog_gauge().set(backlog), "the backlog")
        steady = "none yet" if self._steady is None else f"{self._steady:.3g}/s"
        logger.info(
            "hand-over backlog of %d entries: draining at %.3g/s (steady rate %s)",
            backlog,
            rate,
            steady,
        )
        return backfill

    def _end_backfill(self) -> None:
        """The backlog is drained (or the loop stops): end its span, measure afresh."""
        backfill = self._backfill
        assert backfill is not None
        self._backfill = None
        span = backfill.span
        if span is not None:
            try:
                span.set_attribute(ATTR_INGEST_BACKFILL_HANDED_OVER, backfill.handed)
                span.end()
            except Exception:
                logger.debug("could not end the backfill span", exc_info=True)
        steady = 0.0 if self._steady is None else self._steady
        _record(lambda: _backlog_gauge().set(0), "the backlog")
        _record(lambda: _rate_gauge().set(steady), "the steady rate")
        logger.info("hand-over backlog drained: %d entries handed over", backfill.handed)
        # The backlog's pace is not the steady rate: measure from now.
        self._window_start = anyio.current_time()
        self._window_count = 0

    # -- supervision ----------------------------------------------------------------------

    def child_spec(
        self, *, id: str = "ingest.handover", name: str | None = None, shutdown: float = 10.0
    ) -> ChildSpec:
        """Return the child spec of a :class:`HandoverWorker` running this hand-over.

        Args:
            id: the child's id in its supervisor.
            name: register the actor under this name; ``None``, unregistered.
            shutdown: seconds a stop may take to finish the page in hand (>= 0).

        Raises:
            InvalidChildSpec: a value is out of range; the message names it.
        """
        return ChildSpec(id=id, start=HandoverWorker, args=(self,), name=name, shutdown=shutdown)


def _check_routes(routes: object, known: set[str]) -> dict[str, tuple[str, ...]]:
    """Check *routes* against the gateway's destinations *known*; return them as tuples."""
    owner = "Handover"
    if not isinstance(routes, Mapping):
        raise InvalidArgumentType(
            "routes",
            f"must map route names to destination names, got {short(routes)}",
            owner=owner,
        )
    checked: dict[str, tuple[str, ...]] = {}
    for route, destinations in routes.items():
        check_name(route, "routes", owner=owner)
        if isinstance(destinations, (str, bytes)) or not isinstance(destinations, Sequence):
            raise InvalidArgumentType(
                "routes",
                f"route {route!r} must map to a sequence of destination names, "
                f"got {short(destinations)}",
                owner=owner,
            )
        if not destinations:
            raise InvalidArgument(
                "routes", f"route {route!r} has no destinations: give it one or more", owner=owner
            )
        suffixes: dict[str, str] = {}
        for destination in destinations:
            if not isinstance(destination, str):
                raise InvalidArgumentType(
                    "routes",
                    f"route {route!r} must hold destination names, got {short(destination)}",
                    owner=owner,
                )
            if destination not in known:
                raise InvalidArgument(
                    "routes",
                    f"route {route!r} names destination {destination!r}, which the gateway "
                    f"does not have (it has {sorted(known)})",
                    owner=owner,
                )
            suffix = destination_suffix(destination)
            if suffix in suffixes:
                other = suffixes[suffix]
                problem = (
                    f"route {route!r} names destination {destination!r} twice"
                    if other == destination
                    else f"route {route!r}: destinations {other!r} and {destination!r} "
                    "derive the same message id suffix; rename one"
                )
                raise InvalidArgument("routes", problem, owner=owner)
            suffixes[suffix] = destination
        checked[route] = tuple(destinations)
    return checked


# -- the actor --------------------------------------------------------------------------


@final
class HandoverWorker(Actor):
    """Runs a :class:`Handover`'s loop as its task; a stop finishes the page in hand.

    Build its spec with :meth:`Handover.child_spec`. A crash (a store error) restarts
    it, and the restarted loop reads the pending entries again: a page enqueued but
    not marked is handed over again, and the outbox keeps it once.

    .. versionadded:: 0.1.0
    """

    handover: Handover

    async def init(self, handover: Handover) -> None:
        """Take the hand-over's loop (one runner at a time) and start it."""
        handover.claim_running(self.ref)
        self.handover = handover
        self.start_task(handover.loop, name=f"{self.ref.label} loop")

    async def terminate(self, reason: object) -> None:
        """On a stop, let the page in hand be handed over, then return.

        The supervisor's ``shutdown`` bounds the wait; a page cancelled past it was
        not marked, and is handed over again at the next start.
        """
        handover = self.handover
        if is_normal_exit(reason):
            handover.drain()
            await handover.stopped.wait()
        if handover._running is self.ref:
            handover.release_running()

    def format_status(self) -> Mapping[str, object]:
        """The hand-over's counters; never an entry."""
        stats = self.handover.statistics()
        return {
            "routes": sorted(self.handover.routes),
            "handed_over": stats.handed_over,
            "dead_lettered": stats.dead_lettered,
            "backfilling": stats.backfilling,
        }
