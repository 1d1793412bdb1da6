"""The gateway: one delivery loop per destination, joining the outbox, retries and the breaker.

:class:`Gateway` takes messages (:meth:`Gateway.enqueue`, durable when it returns),
and :meth:`Gateway.run` delivers them: each destination's loop claims the heads of
its keys from the outbox, sends them concurrently, and settles each attempt by its
outcome (delivered, retried later, dead-lettered, or the destination disabled).

The loops are plain tasks in one task group (no actors): run the gateway inside a
supervised actor or a task group of your own; cancelling :meth:`Gateway.run` stops
it, and messages in flight go back to pending at the next start
(:meth:`OutboxStore.recover`).
"""

from __future__ import annotations

import contextlib
import functools
import heapq
import json
import random as random_module
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Final, Protocol, final, runtime_checkable

import anyio
import attrs

from .._check import count, number, short
from .._check import name as check_name
from .._core import ActorRef
from .._exceptions import (
    InvalidArgument,
    InvalidArgumentType,
    OtpyError,
    OutboxMessageNotFound,
    UnknownDestination,
)
from .._redact import REDACTED, get_logger, redact
from ..deadletter import Category, DeadLetter, DeadLetters, Source, stable_id
from ..telemetry import (
    ATTR_HTTP_RESPONSE_STATUS_CODE,
    ATTR_MESSAGING_DESTINATION_NAME,
    ATTR_ORDERING_KEY,
    ATTR_OUTBOX_MESSAGE_ID,
)
from ._breaker import BreakerPolicy, BreakerState, CircuitBreaker
from ._bulkhead import BulkheadFull
from ._classify import Outcome, classify_error
from ._http import DeliveryResult, OutboundRequest
from ._outbox import DestinationState, OutboxMessage, OutboxStore, check_messages
from ._retry import RetryPolicy
from ._telemetry import (
    dead_letter_reason,
    record_breaker_transition,
    record_dead_lettered,
    record_disabled,
    sample_outbox,
    start_attempt,
)
from ._tree import gateway_supervisor_spec

if TYPE_CHECKING:
    from anyio.abc import TaskGroup

    from .._supervision import Backoff, SupervisorSpec

__all__ = [
    "DeadLetterSink",
    "DeliveryPolicy",
    "DeliveryStatistics",
    "Destination",
    "Gateway",
    "GatewayStatistics",
]

logger = get_logger("otpy.gateway")

RELEASE_TIMEOUT = 2.0
"""Seconds a cancelled attempt waits, shielded, to hand its message back to the outbox."""

EXCERPT_CHARS = 500
"""The most characters of a response's body a dead letter's reason quotes."""

DeadLetterSink = Callable[[DeadLetter], Awaitable[object]]
"""Stores one dead letter durably and returns once it is stored (``DeadLetters.capture``)."""


@runtime_checkable
class Destination(Protocol):
    """Where a destination's messages go: one attempt per :meth:`send`.

    :class:`~otpy.gateway.HttpDestination` implements it; tests use a scripted fake.
    """

    @property
    def name(self) -> str:
        """The destination's name, as messages are enqueued for it."""
        ...

    async def send(self, request: OutboundRequest, *, now: float) -> DeliveryResult:
        """Make one attempt; return its result (a failure is a result, not raised).

        Raises:
            BulkheadFull: no slot for the attempt: nothing was sent.
        """
        ...


def _owner_check(check: Callable[..., object], field: str) -> Callable[..., None]:
    def validator(_inst: object, _attribute: object, value: object) -> None:
        check(value, field, owner="DeliveryPolicy")

    return validator


def _retry(_inst: object, _attribute: object, value: object) -> None:
    if not isinstance(value, RetryPolicy):
        raise InvalidArgumentType(
            "retry", f"must be a RetryPolicy, got {short(value)}", owner="DeliveryPolicy"
        )


DISABLE_AFTER: Final = 5 * 24 * 3600.0
"""Seconds of nothing but failures after which a destination is disabled: five days."""


def _optional_seconds(value: object, field: str, *, owner: str) -> None:
    if value is not None:
        number(value, field, owner=owner)


ORDERINGS: Final = ("key", "none")
"""The values of :attr:`DeliveryPolicy.ordering`."""


def _ordering(_inst: object, _attribute: object, value: object) -> None:
    if not isinstance(value, str) or value not in ORDERINGS:
        raise InvalidArgument(
            "ordering",
            f"must be 'key' (in order per key) or 'none' (no order), got {short(value)}",
            owner="DeliveryPolicy",
        )


def _breaker(_inst: object, _attribute: object, value: object) -> None:
    if value is not None and not isinstance(value, BreakerPolicy):
        raise InvalidArgumentType(
            "breaker",
            f"must be a BreakerPolicy or None (no breaker), got {short(value)}",
            owner="DeliveryPolicy",
        )


DEFAULT_RETRY: Final = RetryPolicy(schedule=("5s", "5m", "30m", "2h", "5h", "10h"))
"""A destination's default retries: Svix's schedule, seven attempts over about 18 hours.

A webhook receiver that is down for a deploy or an outage should get its messages
when it is back, not find them dead-lettered after three quick tries (the
breaker, meanwhile, stops the gateway hammering it).
"""


@attrs.frozen(kw_only=True)
class DeliveryPolicy:
    """How a destination's messages are delivered; validated when built.

    Attributes:
        retry: when a retryable failure is tried again, and when to give up
            (:data:`DEFAULT_RETRY` by default).
        breaker: the destination's circuit breaker, or ``None`` for none.
        lease: seconds an attempt may stay in flight before
            ``outbox.recover(only_expired=True)`` may hand its message out again
            (finite, > 0): longer than the destination's time limit.
        batch: the most messages of the destination in flight at once, from this
            gateway (an integer >= 1); the destination's bulkhead bounds it too.
        poll_interval: seconds between looks at the outbox while idle (finite, > 0):
            a retry scheduled by another process, or the breaker's wait, is noticed
            within it. Enqueues and this gateway's own retries wake the loop at once.
        disable_after: seconds of nothing but failures (no answer but retryable
            ones) after which the destination is disabled, with an event; its
            messages then wait in the outbox until :meth:`Gateway.enable`. Five
            days by default, as webhook services do; ``None`` never disables.
        ordering: ``"key"`` (the default): a key's messages go one at a time, in
            order, and a message waiting for its retry holds back the later ones of
            its key. ``"none"``: every message is its own key, so later messages
            overtake a retrying one (the ordering key is then only a label).

    Raises:
        InvalidArgument: a field is out of range; the message names it.
    """

    retry: RetryPolicy = attrs.field(default=DEFAULT_RETRY, validator=_retry)
    breaker: BreakerPolicy | None = attrs.field(factory=BreakerPolicy, validator=_breaker)
    lease: float = attrs.field(default=60.0, validator=_owner_check(number, "lease"))
    batch: int = attrs.field(default=32, validator=_owner_check(count, "batch"))
    poll_interval: float = attrs.field(default=1.0, validator=_owner_check(number, "poll_interval"))
    ordering: str = attrs.field(default="key", validator=_ordering)
    disable_after: float | None = attrs.field(
        default=DISABLE_AFTER, validator=_owner_check(_optional_seconds, "disable_after")
    )


@attrs.frozen(kw_only=True)
class DeliveryStatistics:
    """A snapshot of one destination's delivery.

    Attributes:
        breaker: the breaker's state, or ``None`` without a breaker.
        disabled: whether delivery is stopped (after a 410, after failing for the
            policy's ``disable_after``, or by :meth:`Gateway.disable`).
        disabled_reason: why: ``"gone"``, ``"sustained_failure"`` or ``"manual"``;
            ``None`` while enabled.
        failing_since: wall time of the first failure since the destination last
            answered, or ``None`` while it is healthy.
        in_flight: attempts running now.
        sent: attempts made (an attempt refused by the bulkhead is not one).
        succeeded: messages delivered.
        retried: attempts that failed and were scheduled again.
        dead_lettered: messages given up and stored as dead letters.
    """

    breaker: BreakerState | None
    disabled: bool
    in_flight: int
    sent: int
    succeeded: int
    retried: int
    dead_lettered: int
    disabled_reason: str | None = None
    failing_since: float | None = None


@attrs.frozen(kw_only=True)
class GatewayStatistics:
    """A snapshot of the gateway.

    Attributes:
        destinations: per destination, by name.
    """

    destinations: Mapping[str, DeliveryStatistics]


def _reason_class(result: DeliveryResult) -> str:
    if result.status is not None:
        return f"http.{result.status}"
    return result.error_type or "DeliveryFailed"


def _reason(result: DeliveryResult, what: str) -> str:
    parts = [what]
    if result.status is not None:
        parts.append(f"HTTP {result.status}")
    if result.error_type or result.error:
        parts.append(f"{result.error_type or 'error'}: {result.error or ''}".rstrip(": "))
    if result.response_excerpt:
        text = result.response_excerpt.decode("utf-8", errors="replace")[:EXCERPT_CHARS]
        parts.append(f"response: {text}")
    return redact("; ".join(parts))


DEAD_PAGE: Final = 100
"""Messages marked dead read from the outbox at a time, to finish their dead-lettering."""

_REQUEST_ATTRIBUTES: Final = 80
_REQUEST_BYTES: Final = 12_288
_VALUE_CHARS: Final = 2_048


def _bounded_request(request: Iterable[tuple[str, str]]) -> list[tuple[str, str]]:
    """The request's attributes, within what a dead letter holds beside the gateway's own."""
    kept: list[tuple[str, str]] = []
    size = 0
    for name, value in request:
        value = value if len(value) <= _VALUE_CHARS else value[:_VALUE_CHARS] + "..."
        size += len(name.encode()) + len(value.encode())
        if len(kept) == _REQUEST_ATTRIBUTES or size > _REQUEST_BYTES:
            break
        kept.append((name, value))
    return kept


def _duration(seconds: float) -> str:
    """*seconds* for a person: ``"5 days"``, ``"3.5 hours"``, ``"90 seconds"``."""
    for unit, size in (("day", 86400.0), ("hour", 3600.0), ("minute", 60.0), ("second", 1.0)):
        if seconds >= size or unit == "second":
            value = round(seconds / size, 1)
            return f"{value:g} {unit}" + ("" if value == 1 else "s")
    raise AssertionError("unreachable")  # pragma: no cover - "second" always returns


@attrs.frozen(kw_only=True)
class DeadDetails:
    """What a dead row keeps beside its status, so its dead letter can be built again.

    Stored as JSON in the row's ``last_error``.
    """

    reason_class: str
    reason: str
    category: Category
    why: str
    request: tuple[tuple[str, str], ...] = ()

    def encode(self) -> str:
        """The JSON text kept in the dead row."""
        return json.dumps(
            {
                "reason_class": self.reason_class,
                "reason": self.reason,
                "category": self.category.value,
                "why": self.why,
                "request": [list(pair) for pair in self.request],
            },
            separators=(",", ":"),
        )

    @classmethod
    def decode(cls, text: str | None, status: int | None) -> DeadDetails:
        """Read :meth:`encode`'s text; text from elsewhere becomes the reason as it is."""
        try:
            data = json.loads(text or "")
            return cls(
                reason_class=str(data["reason_class"]),
                reason=str(data["reason"]),
                category=Category(data["category"]),
                why=str(data["why"]),
                request=tuple((str(n), str(v)) for n, v in data["request"]),
            )
        except (ValueError, KeyError, TypeError):
            return cls(
                reason_class=f"http.{status}" if status is not None else "DeliveryFailed",
                reason=text or "given up",
                category=Category.TERMINAL,
                why="terminal",
            )


@final
class _Worker:
    """One destination's delivery loop and counters."""

    def __init__(self, gateway: Gateway, destination: Destination, policy: DeliveryPolicy) -> None:
        self.gateway = gateway
        self.destination = destination
        self.name = destination.name
        self.policy = policy
        # Made when the loop starts: anyio's clock needs the event loop.
        self.breaker: CircuitBreaker | None = None
        self.disabled = False
        self.disabled_reason: str | None = None
        self.disabled_at: float | None = None
        # Wall time of the first failure since the destination last answered, or None.
        self.failing_since: float | None = None
        # When the destination's bulkhead last refused an attempt of ours, or None.
        self.saturated: float | None = None
        self.in_flight = 0
        self.sent = 0
        self.succeeded = 0
        self.retried = 0
        self.dead_lettered = 0
        self.wakeup = anyio.Event()
        # Wall times of the retries this loop scheduled, so it wakes for them on time.
        self.due: list[float] = []
        # Set by drain(): claim nothing more; the loop returns once its attempts end.
        self.draining = False
        # The destination actor running the loop, when supervised (one at a time).
        self.owner: ActorRef | None = None
        # Set when the loop has returned (after a drain, its last attempt settled).
        self.stopped = anyio.Event()
        self.stopped.set()

    def wake(self) -> None:
        self.wakeup.set()

    async def wait(self, timeout: float) -> None:
        """Wait for a wake-up or *timeout* seconds, whichever comes first."""
        event = self.wakeup
        with anyio.move_on_after(max(timeout, 0.0)):
            await event.wait()
        if event.is_set():
            self.wakeup = anyio.Event()

    def idle_timeout(self, claimed_at: float) -> float:
        """Seconds until this loop's next scheduled retry, at most ``poll_interval``."""
        while self.due and self.due[0] <= claimed_at:
            heapq.heappop(self.due)
        timeout = self.policy.poll_interval
        if self.due:
            timeout = min(timeout, self.due[0] - self.gateway.clock())
        return timeout

    def breaker_timeout(self) -> float:
        """Seconds until an open breaker may let a trial through, at most ``poll_interval``."""
        timeout = self.policy.poll_interval
        breaker = self.breaker
        if breaker is not None and breaker.state is BreakerState.OPEN:
            now = self.gateway.monotonic()
            opened = breaker.statistics(now).since
            timeout = min(timeout, opened + breaker.policy.wait_in_open - now)
        return timeout

    def permits(self, capacity: int) -> int:
        """Ask the breaker for up to *capacity* calls; return how many it admits."""
        breaker = self.breaker
        if breaker is None:
            return capacity
        now = self.gateway.monotonic()
        admitted = 0
        while admitted < capacity and breaker.try_acquire(now):
            admitted += 1
            if breaker.state is BreakerState.CLOSED or breaker.state is BreakerState.DISABLED:
                return capacity  # a closed breaker admits every call
        return admitted

    async def run(self) -> None:
        policy = self.policy
        if policy.breaker is not None and self.breaker is None:
            self.breaker = CircuitBreaker(
                policy.breaker,
                now=self.gateway.monotonic(),
                on_transition=functools.partial(record_breaker_transition, self.name),
            )
        self.draining = False
        self.stopped = anyio.Event()
        try:
            await self._loop()
        finally:
            # The loop's attempts have all ended: close the destination's connection
            # pool (an HttpDestination opens a new one at its next send, after a restart).
            aclose = getattr(self.destination, "aclose", None)
            if aclose is not None:
                await aclose()
            self.stopped.set()

    async def _loop(self) -> None:
        policy = self.policy
        async with anyio.create_task_group() as tg:
            while not self.draining:
                capacity = policy.batch - self.in_flight
                if self.disabled or capacity <= 0:
                    await self.wait(policy.poll_interval)  # for an attempt to end, or enable()
                    continue
                if self.saturated is not None:
                    # The bulkhead refused one: claim again once an attempt ends, or a
                    # poll after the refusal at the latest.
                    since = self.gateway.monotonic() - self.saturated
                    await self.wait(policy.poll_interval - since)
                    self.saturated = None
                    continue
                admitted = self.permits(capacity)
                if admitted == 0:
                    # The breaker is open (or its trials are all out): send nothing,
                    # claim nothing; the messages wait in the outbox, not failed.
                    await self.wait(self.breaker_timeout())
                    continue
                await self.claim(tg, admitted)

    def drain(self) -> None:
        """Claim nothing more: the loop returns once its attempts in flight have ended."""
        self.draining = True
        self.wake()

    async def claim(self, tg: TaskGroup, admitted: int) -> None:
        gateway = self.gateway
        claimed_at = gateway.clock()
        messages = await gateway.outbox.claim(
            self.name, now=claimed_at, limit=admitted, lease=self.policy.lease
        )
        if self.breaker is not None:
            for _ in range(admitted - len(messages)):
                self.breaker.on_ignored(gateway.monotonic())  # unused permits go back
        for message in messages:
            self.in_flight += 1
            tg.start_soon(self.deliver, message, name=f"gateway {self.name} {message.id}")
        if len(messages) < admitted:  # nothing else is due now
            await self.wait(self.idle_timeout(claimed_at))

    async def deliver(self, message: OutboxMessage) -> None:
        gateway = self.gateway
        request = OutboundRequest(
            message_id=message.id,
            idempotency_key=message.idempotency_key,
            body=message.body,
            content_type=message.content_type,
            headers=message.headers,
            attempt=message.attempts + 1,
        )
        ended = True
        settling = False
        attempt = start_attempt(self.name, message, request.attempt)
        try:
            started = gateway.monotonic()
            try:
                result = await self.destination.send(request, now=gateway.clock())
            except BulkheadFull:
                # Nothing was sent: put it back due now, its attempts unchanged, and
                # claim again once an attempt of ours ends.
                if self.breaker is not None:
                    self.breaker.on_ignored(gateway.monotonic())
                self.saturated = gateway.monotonic()
                ended = False  # no wake-up: that would claim it again at once
                attempt.refused()
                await gateway.outbox.record_retry(
                    message.id,
                    attempts=message.attempts,
                    next_attempt_at=gateway.clock(),
                    status=message.last_status,
                    error=message.last_error,
                )
                return
            except Exception as exc:  # a Destination of the user's that raised
                result = DeliveryResult(
                    outcome=classify_error(exc),
                    duration=gateway.monotonic() - started,
                    error_type=type(exc).__name__,
                    error=redact(str(exc)),
                )
            attempt.finished(result)
            self.sent += 1
            settling = True
            await self.settle(message, result)
        except Exception as exc:
            attempt.failed(exc)
            raise
        except BaseException:
            if not settling:
                # Cancelled mid-attempt (a stop past its budget, a crash beside it):
                # hand the message back now rather than after its lease. Its attempts
                # stay as they were; it goes out again with the same idempotency key.
                attempt.cancelled()
                await self.release(message)
            raise
        finally:
            attempt.end()
            self.in_flight -= 1
            if ended:
                self.wake()

    async def release(self, message: OutboxMessage) -> None:
        """Put a claimed message back to pending, due now, within a short shielded wait."""
        gateway = self.gateway
        with anyio.move_on_after(RELEASE_TIMEOUT, shield=True):
            try:
                await gateway.outbox.record_retry(
                    message.id,
                    attempts=message.attempts,
                    next_attempt_at=gateway.clock(),
                    status=message.last_status,
                    error=message.last_error,
                )
            except OtpyError as exc:  # its lease runs out instead
                logger.warning(
                    "gateway %s could not hand back outbox message %s (%s); it goes out "
                    "again once its lease expires",
                    self.name,
                    message.id,
                    type(exc).__name__,
                )

    async def settle(self, message: OutboxMessage, result: DeliveryResult) -> None:
        gateway = self.gateway
        breaker = self.breaker
        now = gateway.monotonic()
        attempts = message.attempts + 1
        outcome = result.outcome
        if breaker is not None:
            if outcome is Outcome.RETRYABLE:
                breaker.on_failure(now, result.duration)
            elif outcome is Outcome.TERMINAL and result.status is None:
                breaker.on_ignored(now)  # refused locally: says nothing of the destination
            else:
                # A 2xx, a 4xx or a 410 all show the destination is up: the breaker
                # guards against an unavailable destination, not against bad requests.
                breaker.on_success(now, result.duration)
        if outcome is Outcome.RETRYABLE:
            await self.note_failure()
        elif result.status is not None:
            await self.note_answer()
        if outcome is Outcome.SUCCESS:
            await gateway.outbox.complete(message.id)
            self.succeeded += 1
            return
        if outcome is Outcome.RETRYABLE:
            next_attempt_at = self.policy.retry.next_attempt(
                attempts,
                now=gateway.clock(),
                random=gateway.random.random(),
                retry_after=result.retry_after,
            )
            if next_attempt_at is not None:
                await gateway.outbox.record_retry(
                    message.id,
                    attempts=attempts,
                    next_attempt_at=next_attempt_at,
                    status=result.status,
                    error=_reason(result, f"attempt {attempts} failed")[:EXCERPT_CHARS],
                )
                heapq.heappush(self.due, next_attempt_at)
                self.retried += 1
                return
            what = f"gave up after {attempts} attempts"
            category = Category.RETRYABLE
        elif outcome is Outcome.GONE:
            what = "the destination answered 410 Gone: it is disabled"
            category = Category.TERMINAL
            if not self.disabled:
                await self.set_disabled("gone")
                logger.warning(
                    "destination %s answered 410 Gone: delivery to it is disabled until "
                    "gateway.enable(%r)",
                    self.name,
                    self.name,
                )
        else:
            what = "refused, not retried"
            category = Category.TERMINAL
        await self.dead_letter(message, result, attempts, what, category)

    async def dead_letter(
        self,
        message: OutboxMessage,
        result: DeliveryResult,
        attempts: int,
        what: str,
        category: Category,
    ) -> None:
        """Give the message up: mark it dead, store its dead letter, then remove it.

        Marking it dead first (one commit) makes the rest repeatable: the dead
        letter is built from the dead row alone, with an id derived from it, so a
        crash before the removal is finished at the next start by storing the same
        record again (the store keeps it once) and removing the row. Never both for
        good, never neither.
        """
        gateway = self.gateway
        details = DeadDetails(
            reason_class=_reason_class(result),
            reason=_reason(result, what),
            category=category,
            why=dead_letter_reason(result.outcome),
            request=result.request,
        )
        dead = await gateway.outbox.mark_dead(
            message.id,
            attempts=attempts,
            status=result.status,
            error=details.encode(),
            now=gateway.clock(),
        )
        await gateway.finish_dead(dead)

    async def note_failure(self) -> None:
        """An attempt found the destination unavailable: start or extend its failing time.

        Past the policy's ``disable_after`` of nothing but failures, disable it.
        """
        now = self.gateway.clock()
        if self.failing_since is None:
            self.failing_since = now
            await self.save_state()
            return
        limit = self.policy.disable_after
        if limit is not None and not self.disabled and now - self.failing_since >= limit:
            await self.set_disabled("sustained_failure")
            logger.warning(
                "destination %s has failed for %s without a success: delivery to it is "
                "disabled until gateway.enable(%r); its messages wait in the outbox",
                self.name,
                _duration(now - self.failing_since),
                self.name,
            )

    async def note_answer(self) -> None:
        """The destination answered (not a retryable failure): it is not failing."""
        if self.failing_since is not None:
            self.failing_since = None
            await self.save_state()

    async def set_disabled(self, reason: str) -> None:
        """Disable delivery for *reason*, durably, with its event."""
        self.disabled = True
        self.disabled_reason = reason
        self.disabled_at = self.gateway.clock()
        record_disabled(self.name, reason)
        await self.save_state()

    async def save_state(self) -> None:
        """Store the destination's disabled and failing state, so a restart keeps it."""
        await self.gateway.outbox.set_destination_state(self.name, self.state())

    def state(self) -> DestinationState:
        """The destination's state, as the outbox keeps it."""
        if self.disabled:
            return DestinationState(
                disabled=True,
                disabled_reason=self.disabled_reason,
                disabled_at=self.disabled_at,
                failing_since=self.failing_since,
            )
        return DestinationState(failing_since=self.failing_since)

    def restore(self, state: DestinationState) -> None:
        """Take the state a previous run stored."""
        self.disabled = state.disabled
        self.disabled_reason = state.disabled_reason
        self.disabled_at = state.disabled_at
        self.failing_since = state.failing_since

    def statistics(self) -> DeliveryStatistics:
        return DeliveryStatistics(
            breaker=(
                self.breaker.state
                if self.breaker is not None
                else None
                if self.policy.breaker is None
                else BreakerState.CLOSED
            ),
            disabled=self.disabled,
            in_flight=self.in_flight,
            sent=self.sent,
            succeeded=self.succeeded,
            retried=self.retried,
            dead_lettered=self.dead_lettered,
            disabled_reason=self.disabled_reason,
            failing_since=self.failing_since,
        )


@final
class Gateway:
    """Delivers the outbox's messages to destinations, in order per key, with retries.

    ::

        gateway = Gateway(outbox, [orders], policies={"orders": DeliveryPolicy()})
        async with anyio.create_task_group() as tg:
            tg.start_soon(gateway.run)
            await gateway.enqueue("orders", key="customer-42", body=b"{...}")

    Args:
        outbox: where messages wait.
        destinations: the destinations, by their distinct names.
        policies: a :class:`DeliveryPolicy` per destination name; *policy* for the rest.
        policy: the policy of destinations not in *policies*.
        dead_letters: where undeliverable messages go: a
            :class:`~otpy.deadletter.DeadLetters` client, or an async callable storing
            one :class:`~otpy.deadletter.DeadLetter` durably; by default
            ``DeadLetters()``, the node's default writer.
        random: the source of retry jitter (seed it for exact tests).
        clock: the wall clock for the outbox's times (seconds since the epoch).

    Raises:
        InvalidArgument: two destinations share a name, or *policies* names an
            unknown one; the message names the argument.
    """

    def __init__(
        self,
        outbox: OutboxStore,
        destinations: Sequence[Destination],
        *,
        policies: Mapping[str, DeliveryPolicy] | None = None,
        policy: DeliveryPolicy | None = None,
        dead_letters: DeadLetters | DeadLetterSink | None = None,
        random: random_module.Random | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        owner = "Gateway"
        if not isinstance(outbox, OutboxStore):
            raise InvalidArgumentType(
                "outbox", f"must be an OutboxStore, got {short(outbox)}", owner=owner
            )
        given: object = destinations
        if isinstance(given, (str, bytes)) or not isinstance(given, Sequence):
            raise InvalidArgumentType(
                "destinations",
                f"must be a sequence of destinations, got {short(destinations)}",
                owner=owner,
            )
        default = DeliveryPolicy() if policy is None else policy
        if not isinstance(default, DeliveryPolicy):
            raise InvalidArgumentType(
                "policy", f"must be a DeliveryPolicy or None, got {short(policy)}", owner=owner
            )
        policies = {} if policies is None else dict(policies)
        self.outbox = outbox
        self.clock = clock
        self.random = random_module.Random() if random is None else random
        if dead_letters is None:
            dead_letters = DeadLetters()
        self._sink: DeadLetterSink = (
            dead_letters.capture if isinstance(dead_letters, DeadLetters) else dead_letters
        )
        self._workers: dict[str, _Worker] = {}
        for destination in destinations:
            if not isinstance(destination, Destination):
                raise InvalidArgumentType(
                    "destinations",
                    f"must hold destinations (a name and an async send), got {short(destination)}",
                    owner=owner,
                )
            name = check_name(destination.name, "destinations", owner=owner)
            if name in self._workers:
                raise InvalidArgument(
                    "destinations", f"holds two destinations named {name!r}", owner=owner
                )
            chosen = policies.pop(name, default)
            if not isinstance(chosen, DeliveryPolicy):
                raise InvalidArgumentType(
                    "policies",
                    f"must map names to DeliveryPolicy, got {short(chosen)}",
                    owner=owner,
                )
            self._workers[name] = _Worker(self, destination, chosen)
        if policies:
            raise InvalidArgument(
                "policies",
                f"names destinations the gateway does not have: {sorted(policies)}",
                owner=owner,
            )
        self._running: object | None = None  # run() (self) or the tree's keeper
        self._recovered = False
        # Ids of dead messages whose dead letter is being stored now, and whether one
        # failed (the housekeeping then tries them again).
        self._finishing: set[str] = set()
        self._dead_pending = False

    def __repr__(self) -> str:
        return f"<Gateway {sorted(self._workers)}>"

    @staticmethod
    def monotonic() -> float:
        """anyio's clock: the breaker's and the sleeps' time."""
        return anyio.current_time()

    def _worker(self, destination: str) -> _Worker:
        worker = self._workers.get(destination)
        if worker is None:
            raise UnknownDestination(destination, self._workers)
        return worker

    async def store_dead_letter(self, record: DeadLetter) -> None:
        """Store *record* through the dead-letter sink (once it returns, it is durable)."""
        await self._sink(record)

    def dead_letter_of(self, dead: OutboxMessage) -> DeadLetter:
        """Build the dead letter of a message marked dead, from its row alone.

        The same row always gives the same record (its id is derived from the
        message's id and the time it was marked), so storing it again after a crash
        stores nothing new.
        """
        return self._dead_letter(dead, DeadDetails.decode(dead.last_error, dead.last_status))

    def _dead_letter(self, dead: OutboxMessage, details: DeadDetails) -> DeadLetter:
        assert dead.dead_at is not None  # a dead row has its time
        worker = self._workers.get(dead.destination)
        attributes = [
            (ATTR_MESSAGING_DESTINATION_NAME, dead.destination),
            (ATTR_ORDERING_KEY, dead.key),
            (ATTR_OUTBOX_MESSAGE_ID, dead.id),
        ]
        if dead.last_status is not None:
            attributes.append((ATTR_HTTP_RESPONSE_STATUS_CODE, str(dead.last_status)))
        attributes.extend(_bounded_request(details.request))
        return DeadLetter.capture(
            id=stable_id(dead.id, dead.dead_at),
            key=dead.destination,
            source=Source.OUTBOUND,
            reason_class=details.reason_class,
            reason=details.reason,
            payload=dead.body,
            content_type=dead.content_type,
            headers=dead.headers,
            category=details.category,
            correlation_id=dead.id,
            idempotency_key=dead.idempotency_key,
            attempt=max(dead.attempts, 1),
            max_attempts=(
                worker.policy.retry.max_attempts if worker is not None else max(dead.attempts, 1)
            ),
            trace_context=dict(dead.trace_context),
            attributes=attributes,
            now=dead.dead_at,
        )

    async def finish_dead(self, dead: OutboxMessage) -> bool:
        """Store the dead letter of a message marked dead, then remove it from the outbox.

        Returns whether it is done. If the dead-letter store fails, the message
        stays dead in the outbox (holding back its key) and the housekeeping tries
        again every poll interval.
        """
        if dead.id in self._finishing:
            return False  # the other caller finishes it
        self._finishing.add(dead.id)
        details = DeadDetails.decode(dead.last_error, dead.last_status)
        try:
            record = self._dead_letter(dead, details)
            try:
                await self.store_dead_letter(record)
            except Exception as exc:
                self._dead_pending = True
                logger.error(
                    "could not store the dead letter of outbox message %s for %s (%s); "
                    "it stays in the outbox, marked dead, and is tried again",
                    dead.id,
                    dead.destination,
                    type(exc).__name__,
                )
                return False
            with contextlib.suppress(OutboxMessageNotFound):  # removed by a racing sweep
                await self.outbox.remove(dead.id)
        finally:
            self._finishing.discard(dead.id)
        worker = self._workers.get(dead.destination)
        if worker is not None:
            worker.dead_lettered += 1
            worker.wake()  # the key's next message may go now
        record_dead_lettered(dead.destination, dead.id, record.id, details.why)
        return True

    async def finish_dead_rows(self) -> int:
        """Finish every message left marked dead (by a crash, or a store that failed); return how many."""
        self._dead_pending = False
        finished = 0
        seen: set[str] = set()
        while True:
            rows = [d for d in await self.outbox.dead(limit=DEAD_PAGE) if d.id not in seen]
            if not rows:
                return finished
            for dead in rows:
                seen.add(dead.id)
                if await self.finish_dead(dead):
                    finished += 1

    async def enqueue(
        self,
        destination: str,
        *,
        key: str,
        body: bytes,
        content_type: str = "application/octet-stream",
        headers: Mapping[str, str] | Iterable[tuple[str, str]] = (),
        idempotency_key: str | None = None,
        trace_context: Mapping[str, str] | Iterable[tuple[str, str]] = (),
    ) -> str:
        """Store a message for *destination* in the outbox; return its id once durable.

        A disabled destination accepts messages: they wait for :meth:`enable`.

        Args:
            destination: the destination's name.
            key: the ordering key: a key's messages are delivered one at a time, in
                order (unless the destination's policy says ``ordering="none"``).
            body: the request body.
            content_type: its media type.
            headers: extra request headers.
            idempotency_key: the receiver's deduplication key; the message id if ``None``.
            trace_context: the W3C trace context to carry to the dead letter.

        Raises:
            UnknownDestination: no destination has this name.
            InvalidArgument: a value is not allowed; the message names it.
        """
        self._worker(destination)
        message = OutboxMessage.new(
            destination=destination,
            key=key,
            body=body,
            now=self.clock(),
            content_type=content_type,
            headers=headers,
            trace_context=trace_context,
            idempotency_key=idempotency_key,
        )
        [stored] = await self.enqueue_many([message])
        return stored

    async def enqueue_many(
        self, messages: Sequence[OutboxMessage], *, timeout: float | None = None
    ) -> list[str]:
        """Store *messages* (built with :meth:`OutboxMessage.new`) in one commit; return their ids.

        For a caller that hands over in batches, or that must be able to hand the
        same message over again after a crash: give each message an id of your own,
        derived from what it comes from (``OutboxMessage.new(..., message_id=...)``;
        ids that sort like their sources keep a key's order), and a message whose id
        is already in the outbox is stored once. A
        destination with ``ordering="none"`` gets each message under a key of its own.

        Raises:
            UnknownDestination: a message names a destination the gateway does not
                have; nothing is stored.
            TimeoutError: not committed within *timeout*; enqueuing again is safe.
        """
        checked = check_messages(messages, "Gateway.enqueue_many")
        workers = [self._worker(m.destination) for m in checked]
        prepared = [
            attrs.evolve(m, key=m.id) if w.policy.ordering == "none" and m.key != m.id else m
            for m, w in zip(checked, workers, strict=True)
        ]
        await self.outbox.enqueue(prepared, timeout=timeout)
        for worker in {id(w): w for w in workers}.values():
            worker.wake()
        return [m.id for m in prepared]

    async def replay(self, record: DeadLetter, idempotency_key: str) -> None:
        """Send a dead letter again through its destination: the replay handler for ``outbound``.

        Register it with the replay supervisor,
        ``ReplayConfig(store=..., handlers={Source.OUTBOUND: gateway.replay})``, and
        ``otpy dlq replay`` re-issues dead letters through the live gateway: the same
        destination (``messaging.destination.name``, else the record's key), the
        same ordering key (``otpy.ordering_key``), body, content type and headers,
        with *idempotency_key* (the record's), so a receiver that saw the original
        drops the repeat. The replay's ledger makes sure it is handed over once.

        It returns once the message is durable in the outbox: from there the
        destination's policy delivers it (retries, breaker, order behind its key's
        earlier messages), and if it fails for good it becomes a new dead letter. A
        disabled destination keeps it until it is enabled. Headers that were
        redacted when the dead letter was captured are left out.

        Raises:
            UnknownDestination: the gateway has no destination of that name (the
                record stays replayable).
            InvalidArgument: the record has no payload loaded.
        """
        attributes = dict(record.attributes)
        destination = attributes.get(ATTR_MESSAGING_DESTINATION_NAME, record.key)
        self._worker(destination)
        if record.payload is None:
            raise InvalidArgument(
                "record", f"dead letter {record.id} has no payload loaded: replay it from the store"
            )
        await self.enqueue(
            destination,
            key=attributes.get(ATTR_ORDERING_KEY, record.key),
            body=record.payload,
            content_type=record.content_type,
            headers=[(h, v) for h, v in record.headers if v != REDACTED],
            idempotency_key=idempotency_key,
            trace_context=record.trace_context,
        )

    async def enable(self, destination: str) -> None:
        """Resume delivery to *destination*, durably; its failing time starts afresh.

        Raises:
            UnknownDestination: no destination has this name.
            OutboxError: the outbox could not store the change.
        """
        worker = self._worker(destination)
        worker.disabled = False
        worker.disabled_reason = None
        worker.disabled_at = None
        worker.failing_since = None
        await worker.save_state()
        worker.wake()

    async def disable(self, destination: str) -> None:
        """Stop claiming messages for *destination*, durably; they wait in the outbox.

        Attempts already running finish and are settled. A restart keeps it
        disabled until :meth:`enable`.

        Raises:
            UnknownDestination: no destination has this name.
            OutboxError: the outbox could not store the change.
        """
        worker = self._worker(destination)
        if not worker.disabled:
            await worker.set_disabled("manual")

    def _states(self) -> dict[str, tuple[BreakerState | None, bool]]:
        """Each destination's breaker state and whether it is disabled, for the gauges."""
        return {
            name: (worker.breaker.state if worker.breaker is not None else None, worker.disabled)
            for name, worker in self._workers.items()
        }

    def disabled(self) -> tuple[str, ...]:
        """The names of the disabled destinations, sorted."""
        return tuple(sorted(n for n, w in self._workers.items() if w.disabled))

    def statistics(self) -> GatewayStatistics:
        """A snapshot of each destination's delivery."""
        return GatewayStatistics(
            destinations={n: self._workers[n].statistics() for n in sorted(self._workers)}
        )

    async def _reclaim_expired(self, every: float) -> None:
        """Every *every* seconds, put back the in-flight messages whose lease expired."""
        while True:
            await anyio.sleep(every)
            try:
                reclaimed = await self.outbox.recover(now=self.clock(), only_expired=True)
            except OtpyError as exc:
                logger.warning("gateway could not reclaim expired leases: %s", exc)
                continue
            if reclaimed:
                logger.warning(
                    "gateway reclaimed %d messages whose attempt outlived its lease", reclaimed
                )
                for worker in self._workers.values():
                    worker.wake()

    async def _retry_dead(self, every: float) -> None:
        """Every *every* seconds, finish the dead-lettering that failed (the store was down)."""
        while True:
            await anyio.sleep(every)
            if not self._dead_pending:
                continue
            try:
                await self.finish_dead_rows()
            except OtpyError as exc:
                self._dead_pending = True
                logger.warning("gateway could not list the messages marked dead: %s", exc)

    async def recover_once(self) -> int:
        """Put back what a dead process left in flight, the first time only; return how many.

        :meth:`run` calls it, and so does the tree's outbox keeper at its first start:
        a keeper restarted later must not take back the claims of live destinations.
        It also restores each destination's stored state (disabled, failing since),
        and finishes the dead-lettering of messages a crash left marked dead.
        """
        if self._recovered:
            return 0
        states = await self.outbox.destination_states()
        for name, state in states.items():
            worker = self._workers.get(name)
            if worker is not None:
                worker.restore(state)
                if state.disabled:
                    logger.warning(
                        "destination %s is disabled (%s) since a previous run: its messages "
                        "wait until gateway.enable(%r)",
                        name,
                        state.disabled_reason or "no reason kept",
                        name,
                    )
        recovered = await self.outbox.recover(now=self.clock())
        finished = await self.finish_dead_rows()
        self._recovered = True
        if recovered:
            logger.info("gateway recovered %d messages left in flight", recovered)
        if finished:
            logger.info("gateway finished dead-lettering %d messages left marked dead", finished)
        return recovered

    async def housekeeping(self) -> None:
        """Until cancelled: sample the outbox gauges and reclaim expired leases."""
        if not self._workers:
            await anyio.sleep_forever()
        # The outbox gauges once per (shortest) poll interval; the leases once per
        # (shortest) lease.
        interval = min(w.policy.poll_interval for w in self._workers.values())
        lease = min(w.policy.lease for w in self._workers.values())
        async with anyio.create_task_group() as tg:
            tg.start_soon(
                sample_outbox,
                self.outbox,
                tuple(self._workers),
                interval,
                self.clock,
                self._states,
            )
            tg.start_soon(self._reclaim_expired, lease)
            tg.start_soon(self._retry_dead, interval)

    def claim_running(self, owner: ActorRef | None = None) -> None:
        """Mark the gateway running, by *owner* (the tree's keeper) or by :meth:`run`.

        A keeper that died without stopping (killed) leaves its claim behind; its
        next incarnation takes it over.

        Raises:
            RuntimeError: it already runs (:meth:`run`, or a tree from
                :meth:`supervisor_spec`).
        """
        current = self._running
        if current is not None and (not isinstance(current, ActorRef) or current.is_alive):
            raise RuntimeError(
                "the gateway is already running: Gateway.run and a tree from "
                "Gateway.supervisor_spec are two ways to run it, use one"
            )
        self._running = self if owner is None else owner

    def release_running(self) -> None:
        """Mark the gateway stopped."""
        self._running = None

    async def run(self) -> None:
        """Deliver until cancelled: recover the outbox, then one loop per destination.

        At start every message left in flight (by a process that died) goes back to
        pending, due at once, with its attempts and idempotency key. While it runs,
        every (shortest) ``lease`` it hands out again the messages whose lease
        expired (their attempt was lost without an outcome).

        To run each destination in a supervised actor instead, so that one
        destination's crash restarts it alone and a stop drains it, put
        :meth:`supervisor_spec` in a tree.

        Raises:
            RuntimeError: the gateway is already running.
        """
        self.claim_running()
        try:
            await self.recover_once()
            async with anyio.create_task_group() as tg:
                for name, worker in self._workers.items():
                    tg.start_soon(worker.run, name=f"gateway {name}")
                tg.start_soon(self.housekeeping)
        finally:
            self.release_running()

    def supervisor_spec(
        self,
        *,
        name: str = "gateway",
        shutdown: float = 35.0,
        intensity: int = 10,
        period: float = 60.0,
        backoff: Backoff | None = None,
    ) -> SupervisorSpec:
        """Return a supervisor that runs this gateway: an outbox keeper, then one actor per destination.

        The keeper (``"<name>.outbox"``) recovers the outbox at its first start, then
        reclaims expired leases and samples the outbox gauges. Each destination runs
        in an actor of its own (``"<name>.<destination>"``): a crash there (a store
        error while settling, a destination that raised) restarts that destination
        alone and hands its attempts in flight back to the outbox; the others go on.

        Stopping the tree drains it: each destination claims nothing more and waits
        up to *shutdown* seconds for its attempts in flight to be settled; those
        still running then are cancelled and go back to the outbox, to be sent again
        (same idempotency key) at the next start. Nothing is dead-lettered for it.

        Args:
            name: the supervisor's registered name, and its children's prefix.
            shutdown: seconds a destination may take to settle its attempts in flight
                when stopped (>= 0); a little longer than its time limit lets every
                attempt end by itself.
            intensity: restarts allowed within *period* before the supervisor gives
                up and its parent decides.
            period: the restart window, seconds.
            backoff: delay a crashed destination's restart (``None``: at once).

        Raises:
            InvalidChildSpec: a value is out of range; the message names it.

        .. versionadded:: 0.1.0
        """
        shutdown = number(shutdown, "shutdown", owner="Gateway.supervisor_spec", positive=False)
        return gateway_supervisor_spec(
            self,
            tuple(self._workers),
            name=name,
            shutdown=shutdown,
            intensity=intensity,
            period=period,
            backoff=backoff,
        )
