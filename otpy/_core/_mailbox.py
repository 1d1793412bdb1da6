"""Bounded mailboxes with a per-actor overflow policy (ACT-12).

A mailbox is a ``deque`` plus at most one parked consumer and a queue of parked
producers. Putting a message when there is room never yields (like
``asyncio.Queue.put``), so a burst of sends costs one wake-up of the consumer, not
one task switch per message.
"""

from __future__ import annotations

import enum
from collections import deque
from typing import TYPE_CHECKING, Any

import anyio
import attrs

from .._check import count, number, short
from .._exceptions import InvalidArgument, InvalidArgumentType, MailboxFull
from ._lowlevel import TIMED_OUT, wait_for

if TYPE_CHECKING:
    from collections.abc import Callable

    from ._lowlevel import Backend, OneShot

__all__ = ["MailboxConfig", "Overflow"]

Dropped = tuple[Any, str]
"""An item a full mailbox dropped, and the dead-letter reason."""


class Overflow(enum.Enum):
    """What a full mailbox does with one more message."""

    REJECT = "reject"
    """Raise :class:`~otpy.MailboxFull` to the sender at once."""
    DROP_NEWEST = "drop_newest"
    """Discard the incoming message; it goes to the dead-letter stream."""
    DROP_OLDEST = "drop_oldest"
    """Discard the oldest queued message to make room; it goes to the dead-letter stream."""
    WAIT = "wait"
    """The sender waits for room up to ``wait_timeout``, then gets :class:`~otpy.MailboxFull`.

    The ``*_nowait`` senders cannot wait and raise :class:`~otpy.MailboxFull` at once."""


def _check_capacity(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    count(value, "capacity", owner="MailboxConfig")


def _check_overflow(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value.__class__ is not Overflow:
        allowed = ", ".join(f"Overflow.{o.name}" for o in Overflow)
        raise InvalidArgumentType(
            "overflow", f"must be one of {allowed}, got {short(value)}", owner="MailboxConfig"
        )


_TIMEOUT = "a finite number of seconds > 0, or None to wait forever"


def _check_timeout(inst: object, attribute: attrs.Attribute[Any], value: object) -> None:
    if value is not None:
        try:
            number(value, attribute.name)
        except InvalidArgument as exc:
            # Say what None means: the way to ask for no timeout at all.
            raise type(exc)(
                attribute.name, f"must be {_TIMEOUT}, got {short(value)}", owner="MailboxConfig"
            ) from None


@attrs.frozen(kw_only=True)
class MailboxConfig:
    """How big an actor's mailbox is and what happens when it is full.

    Attributes:
        capacity: the most messages it holds: an integer in ``[1, 2**53]``. System
            messages (stop requests, monitor ``Down``, link ``Exit``, timers) are
            never refused.
        overflow: the :class:`Overflow` policy.
        wait_timeout: with :attr:`Overflow.WAIT`, the longest a sender waits for room:
            a finite number of seconds > 0, or ``None`` to wait forever.

    Raises:
        InvalidArgument: a field is out of range, or has the wrong type (an
            :class:`~otpy.InvalidArgumentType`); the message names the field.
    """

    capacity: int = attrs.field(default=1000, validator=_check_capacity)
    overflow: Overflow = attrs.field(default=Overflow.WAIT, validator=_check_overflow)
    wait_timeout: float | None = attrs.field(default=5.0, validator=_check_timeout)


DEFAULT_MAILBOX = MailboxConfig()


class Mailbox:
    """The queue of one actor. Runtime object; read it through ``ActorRef.statistics()``."""

    __slots__ = (
        "_backend",
        "_getter",
        "_putters",
        "capacity",
        "label",
        "overflow",
        "overflows",
        "q",
        "wait_timeout",
    )

    def __init__(
        self,
        config: MailboxConfig,
        backend: Backend,
        label: str,
    ) -> None:
        self.q: deque[Any] = deque()
        self.capacity = config.capacity
        self.overflow = config.overflow
        self.wait_timeout = config.wait_timeout
        self.overflows = 0
        self.label = label
        self._backend = backend
        self._getter: OneShot | None = None
        self._putters: deque[OneShot] | None = None

    # -- consumer side ------------------------------------------------------------

    def wake_consumer(self) -> None:
        """Wake the consumer if it is parked."""
        getter = self._getter
        if getter is not None:
            self._getter = None
            if not getter.done():
                getter.set_result(None)

    async def park(self, timeout: float | None) -> bool:
        """Park the consumer until a message arrives; return False if *timeout* passed first."""
        fut = self._backend.new_future()
        self._getter = fut
        try:
            result = await wait_for(self._backend, fut, timeout)
        finally:
            if self._getter is fut:
                self._getter = None
        return result is not TIMED_OUT

    def wake_putter(self) -> None:
        """Room was made: wake the longest-waiting producer."""
        putters = self._putters
        while putters:
            fut = putters.popleft()
            if not fut.done():
                fut.set_result(None)
                return

    def wake_all_putters(self) -> None:
        """Wake every parked producer (the actor has exited; they will see it)."""
        putters = self._putters
        while putters:
            fut = putters.popleft()
            if not fut.done():
                fut.set_result(None)

    # -- producer side ------------------------------------------------------------

    def append(self, item: Any) -> None:
        """Enqueue *item* regardless of capacity (system messages, stashed messages)."""
        self.q.append(item)
        if self._getter is not None:
            self.wake_consumer()

    def put_nowait(self, item: Any) -> Dropped | None:
        """Enqueue *item* or apply the overflow policy without waiting.

        Returns:
            What the policy dropped, for the owner to report, or ``None``.
        """
        q = self.q
        if len(q) < self.capacity:
            q.append(item)
            if self._getter is not None:
                self.wake_consumer()
            return None
        return self.overflow_nowait(item)

    def overflow_nowait(self, item: Any) -> Dropped | None:
        """Apply the overflow policy to *item*, the mailbox being full.

        The mailbox holds no reference back to its actor (one reference cycle fewer
        per actor); it returns the dropped item and why, and the actor reports it.
        """
        self.overflows += 1
        policy = self.overflow
        if policy is Overflow.DROP_NEWEST:
            return item, "mailbox_full"
        if policy is Overflow.DROP_OLDEST:
            oldest = self.q.popleft()
            self.q.append(item)
            return oldest, "mailbox_full_dropped_oldest"
        raise MailboxFull(self.label, self.capacity)

    async def put_waiting(self, item: Any, is_alive: Callable[[], bool]) -> bool:
        """Wait for room (policy WAIT), then enqueue; return False if the actor exited.

        Raises:
            MailboxFull: no room within ``wait_timeout``.
        """
        q = self.q
        deadline: float | None = None
        backend = self._backend
        while len(q) >= self.capacity:
            if self._putters is None:
                self._putters = deque()
            fut = backend.new_future()
            self._putters.append(fut)
            timeout = self.wait_timeout
            if timeout is not None:
                now = anyio.current_time()
                if deadline is None:
                    deadline = now + timeout
                timeout = max(deadline - now, 0.0)
            try:
                result = await wait_for(backend, fut, timeout)
            except BaseException:
                # Pass on a wake-up we were given but can no longer use.
                if fut.done() and not fut.cancelled():
                    self.wake_putter()
                else:
                    fut.cancel()
                raise
            if result is TIMED_OUT:
                self.overflows += 1
                raise MailboxFull(self.label, self.capacity, self.wait_timeout)
            if not is_alive():
                return False
        q.append(item)
        if self._getter is not None:
            self.wake_consumer()
        return True
