"""``ActorRef``: one incarnation of an actor, its run loop, and how to talk to it.

The run loop is the hot path. It pops messages from a plain ``deque`` and awaits the
handler; it parks only when the mailbox is empty. Everything rare (system messages,
stop requests, continue steps, suspension) raises one ``_attention`` flag so the
loop checks a single attribute per message.
"""

from __future__ import annotations

import contextvars
import logging
import traceback
import weakref
from collections import deque
from typing import TYPE_CHECKING, Any, Final, final

import anyio
import attrs

from .._check import check_seconds
from .._exceptions import (
    ActorExited,
    ActorStopped,
    CallingSelf,
    CallTimeout,
    MailboxFull,
    SpawnError,
    StashOverflow,
)
from .._redact import get_logger, redact
from . import _envelope
from ._actor import IGNORE, NO_REPLY, Caller
from ._deadletters import DeadLetterEvent
from ._envelope import Traced as _Traced
from ._lowlevel import TIMED_OUT, wait_for
from ._mailbox import Mailbox, Overflow
from ._reasons import KILLED, NOPROC, NORMAL, SHUTDOWN, Down, Exit, IdleTimeout, is_normal_exit

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Callable

    from ._actor import Actor
    from ._lowlevel import OneShot
    from ._mailbox import MailboxConfig
    from ._node import Node

__all__ = ["ActorRef", "ActorStatistics", "ActorStatus", "Monitor", "Timer"]

logger = get_logger("otpy.actor")

# Mailbox item kinds. Items are tuples: (kind, message) or (_CALL, message, future).
_CAST: Final = 0
_INFO: Final = 1
_CALL: Final = 2
_INTERNAL: Final = 3  # (_INTERNAL, callback): runs inside the actor's task, in order

# System messages (handled before mailbox messages).
_SYS_STOP: Final = 10
_SYS_STATUS: Final = 11
_SYS_SUSPEND: Final = 12
_SYS_RESUME: Final = 13

_NOTHING: Final[Any] = object()

_current_actor: contextvars.ContextVar[ActorRef | None] = contextvars.ContextVar(
    "otpy_current_actor", default=None
)

_KIND_NAMES = {_CAST: "cast", _INFO: "info", _CALL: "call", _INTERNAL: "internal"}


@attrs.frozen
class ActorStatistics:
    """A snapshot of one actor, cheap enough to take several times a second.

    Attributes:
        id: the incarnation's unique number (like a pid).
        name: the registered name, if any.
        actor_class: the actor's class name.
        state: ``"starting"``, ``"running"``, ``"suspended"`` or ``"stopped"``.
        queued: messages waiting in the mailbox.
        capacity: the mailbox capacity.
        processed: messages handled so far.
        overflows: messages refused or dropped because the mailbox was full.
        restarts: how many times the supervisor restarted this child before this
            incarnation.
        started_at: ``anyio.current_time()`` when it was spawned.
        exit_reason: the exit reason once stopped.
    """

    id: int
    name: str | None
    actor_class: str
    state: str
    queued: int
    capacity: int
    processed: int
    overflows: int
    restarts: int
    started_at: float
    exit_reason: object = None


@attrs.frozen
class ActorStatus:
    """What ``ActorRef.get_status()`` returns (A15): statistics plus redacted state."""

    statistics: ActorStatistics
    state: dict[str, object]


@final
class Monitor:
    """A monitor reference, returned by ``Actor.monitor()``; pass it to ``demonitor``."""

    __slots__ = ("_active", "target", "watcher")

    def __init__(self, watcher: ActorRef, target: ActorRef) -> None:
        self.watcher = watcher
        self.target = target
        self._active = True

    def __repr__(self) -> str:
        return f"<Monitor {self.watcher.label} -> {self.target.label}>"


@final
class Timer:
    """A pending ``send_after``; :meth:`cancel` it to stop the delivery."""

    __slots__ = ("_scope", "cancelled", "fired")

    def __init__(self) -> None:
        self._scope: anyio.CancelScope | None = None
        self.cancelled = False
        self.fired = False

    def cancel(self) -> bool:
        """Cancel the timer; return False if it already fired."""
        if self.fired:
            return False
        self.cancelled = True
        if self._scope is not None:
            self._scope.cancel()
        return True


class ActorRef:
    """A reference to one incarnation of a running actor, made by ``spawn``.

    Talk to it with :meth:`call`, :meth:`cast` and :meth:`send` (info). A ref is
    bound to one incarnation: after a restart, use the name (``otpy.named``) or
    ``whereis`` to reach the new one.
    """

    __slots__ = (
        "__weakref__",
        "_actor",
        "_attention",
        "_backend",
        "_canceller",
        "_continue",
        "_current",
        "_deferred",
        "_exit_hooks",
        "_exit_reason",
        "_exit_waiters",
        "_hold_capacity",
        "_hold_name",
        "_idle",
        "_item",
        "_kill_reason",
        "_links",
        "_mailbox",
        "_monitoring",
        "_parent",
        "_processed",
        "_restarts",
        "_start_link",
        "_started",
        "_started_at",
        "_stash",
        "_stash_marker",
        "_state",
        "_stop_reason",
        "_suspended",
        "_sys",
        "_timers",
        "_top_level",
        "_watchers",
        "id",
        "label",
        "name",
        "node",
    )

    def __init__(
        self,
        node: Node,
        actor: Actor,
        ident: int,
        name: str | None,
        mailbox: MailboxConfig,
        restarts: int = 0,
        label: str | None = None,
    ) -> None:
        self.node = node
        self.id = ident
        self.name = name
        self.label = label or name or f"{type(actor).__name__}#{ident}"
        self._actor = actor
        self._backend = node._backend
        self._mailbox = Mailbox(mailbox, node._backend, self.label)
        self._state = "starting"
        self._attention = False
        self._sys: deque[tuple[Any, ...]] | None = None
        self._continue: Any = _NOTHING
        self._stop_reason: Any = None
        self._kill_reason: Any = None
        self._exit_reason: Any = None
        self._suspended = False
        self._idle: float | None = None
        self._item: Any = None
        self._current: Caller | None = None
        self._deferred: set[Caller] | None = None
        self._canceller: asyncio.Task[None] | anyio.CancelScope | None = None
        self._started: OneShot | None = None
        self._exit_waiters: list[OneShot] | None = None
        self._exit_hooks: list[Callable[[ActorRef, object], None]] | None = None
        self._watchers: dict[Monitor, None] | None = None
        self._monitoring: set[Monitor] | None = None
        self._links: set[ActorRef] | None = None
        self._parent: ActorRef | None = None  # the supervisor that started it, if any
        self._start_link: ActorRef | None = None
        # Spawned outside any actor: leaving the node stops it itself (else its owner does).
        self._top_level = _current_actor.get() is None
        self._timers: set[Timer] | None = None
        self._stash: deque[Any] | None = None
        self._stash_marker = False
        self._hold_name = False
        self._hold_capacity = 0
        self._processed = 0
        self._restarts = restarts
        self._started_at = node._backend.clock()
        actor._otpy_ref = weakref.ref(self)

    def __repr__(self) -> str:
        return f"<ActorRef {self.label} #{self.id} {self._state}>"

    # -- public API -----------------------------------------------------------------

    @property
    def is_alive(self) -> bool:
        """Whether this incarnation is still running (or starting)."""
        return self._exit_reason is None

    @property
    def exit_reason(self) -> object:
        """The exit reason once stopped, else ``None``."""
        return self._exit_reason

    async def call(self, message: Any, *, timeout: float | None = 5.0) -> Any:
        """Send *message* to ``handle_call`` and wait for the reply (A1, A2).

        Args:
            message: any object.
            timeout: seconds to wait for the reply; ``None`` waits forever.

        Raises:
            CallTimeout: no reply within *timeout*; a late reply is discarded.
            ActorStopped: the actor is not running (raised at once).
            ActorExited: the actor exited before replying; ``reason`` says why.
            MailboxFull: the mailbox is full and its policy refuses the call.
            CallingSelf: an actor called itself.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN.
        """
        if timeout != 5.0 and timeout is not None:  # the default needs no check
            check_seconds("ActorRef.call", "timeout", timeout)
        if self._exit_reason is not None:
            raise ActorStopped(self.label, self._exit_reason)
        if _current_actor.get() is self:
            raise CallingSelf(self.label)
        if _envelope.hooks is not None:
            message = _envelope.wrap(message)
        fut = self._backend.new_future()
        item = (_CALL, message, fut)
        mailbox = self._mailbox
        if len(mailbox.q) < mailbox.capacity:
            mailbox.q.append(item)
            if mailbox._getter is not None:
                mailbox.wake_consumer()
        elif mailbox.overflow is Overflow.WAIT:
            if not await mailbox.put_waiting(item, self._is_alive):
                raise ActorStopped(self.label, self._exit_reason)
        else:
            dropped = mailbox.overflow_nowait(item)
            if dropped is not None:
                self._drop(*dropped)
        deadlines = self._backend.deadlines
        if deadlines is not None:  # asyncio: no timer handle, no extra coroutine
            if timeout is not None:
                deadlines.add(timeout, fut)
            result = await fut
        else:
            result = await wait_for(self._backend, fut, timeout)
        if result is TIMED_OUT:
            raise CallTimeout(self.label, timeout or 0.0)
        return result

    async def cast(self, message: Any) -> None:
        """Send *message* to ``handle_cast`` (A4).

        Never raises for an exited actor: the message goes to the dead-letter stream.
        A full mailbox applies the actor's overflow policy (see :class:`Overflow`).

        Raises:
            MailboxFull: the mailbox is full and its policy refuses the message.
        """
        if self._exit_reason is None:
            if _envelope.hooks is not None:
                message = _envelope.wrap(message)
            mailbox = self._mailbox
            if len(mailbox.q) < mailbox.capacity:
                mailbox.q.append((_CAST, message))
                if mailbox._getter is not None:
                    mailbox.wake_consumer()
                return
            await self._put_slow((_CAST, message))
        else:
            self._drop((_CAST, message), "actor_stopped")

    def cast_nowait(self, message: Any) -> None:
        """Like :meth:`cast` but never waits: a full WAIT mailbox raises ``MailboxFull``."""
        if self._exit_reason is None:
            if _envelope.hooks is not None:
                message = _envelope.wrap(message)
            dropped = self._mailbox.put_nowait((_CAST, message))
            if dropped is not None:
                self._drop(*dropped)
        else:
            self._drop((_CAST, message), "actor_stopped")

    async def send(self, message: Any) -> None:
        """Send *message* to ``handle_info``; the same delivery rules as :meth:`cast`."""
        if self._exit_reason is None:
            if _envelope.hooks is not None:
                message = _envelope.wrap(message)
            mailbox = self._mailbox
            if len(mailbox.q) < mailbox.capacity:
                mailbox.q.append((_INFO, message))
                if mailbox._getter is not None:
                    mailbox.wake_consumer()
                return
            await self._put_slow((_INFO, message))
        else:
            self._drop((_INFO, message), "actor_stopped")

    def send_nowait(self, message: Any) -> None:
        """Like :meth:`send` but never waits: a full WAIT mailbox raises ``MailboxFull``."""
        if self._exit_reason is None:
            if _envelope.hooks is not None:
                message = _envelope.wrap(message)
            dropped = self._mailbox.put_nowait((_INFO, message))
            if dropped is not None:
                self._drop(*dropped)
        else:
            self._drop((_INFO, message), "actor_stopped")

    async def stop(self, reason: object = NORMAL, *, timeout: float | None = None) -> object:
        """Ask the actor to stop with *reason*, running ``terminate``; wait until it has.

        Args:
            reason: the exit reason, passed to ``terminate``.
            timeout: seconds to wait for it to stop; ``None`` waits as long as it takes.

        Returns:
            The exit reason it stopped with.

        Raises:
            TimeoutError: it did not stop within *timeout* (it is then still running).
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN; the actor was not asked
                to stop.
        """
        check_seconds("ActorRef.stop", "timeout", timeout)
        await anyio.lowlevel.checkpoint()
        if self._exit_reason is None:
            self._post_system((_SYS_STOP, reason))
        return await self.wait_exited(timeout=timeout)

    def kill(self, reason: object = KILLED) -> None:
        """Kill the actor now, without ``terminate`` (brutal kill; cannot be trapped)."""
        if self._exit_reason is not None or self._kill_reason is not None:
            return
        self._kill_reason = reason
        self._attention = True  # a handler that swallows the cancellation still stops
        if self._canceller is not None:
            self._canceller.cancel(f"otpy: actor {self.label} killed ({reason!r})")

    async def wait_exited(self, *, timeout: float | None = None) -> object:
        """Wait until this incarnation has exited; return its exit reason.

        Raises:
            TimeoutError: it was still running after *timeout* seconds.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN.
        """
        check_seconds("ActorRef.wait_exited", "timeout", timeout)
        if self._exit_reason is not None:
            await anyio.lowlevel.checkpoint()
            return self._exit_reason
        fut = self._backend.new_future()
        if self._exit_waiters is None:
            self._exit_waiters = []
        self._exit_waiters.append(fut)
        result = await wait_for(self._backend, fut, timeout)
        if result is TIMED_OUT:
            self._exit_waiters.remove(fut)
            raise TimeoutError(f"actor {self.label} still running after {timeout:g}s")
        return result

    async def get_status(self, *, timeout: float | None = 5.0) -> ActorStatus:
        """Ask the actor for its statistics and ``format_status()`` (A15).

        Raises:
            CallTimeout: no answer within *timeout*.
            ActorStopped: the actor is not running.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN.
        """
        return await self._system_call(  # type: ignore[no-any-return]
            _SYS_STATUS, timeout, "ActorRef.get_status"
        )

    async def suspend(self, *, timeout: float | None = 5.0) -> None:
        """Stop handling mailbox messages until :meth:`resume` (system messages still run).

        Raises:
            CallTimeout: no answer within *timeout*.
            ActorStopped: the actor is not running.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN; nothing was suspended.
        """
        await self._system_call(_SYS_SUSPEND, timeout, "ActorRef.suspend")

    async def resume(self, *, timeout: float | None = 5.0) -> None:
        """Resume handling mailbox messages after :meth:`suspend`.

        Raises:
            CallTimeout: no answer within *timeout*.
            ActorStopped: the actor is not running.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN; nothing was resumed.
        """
        await self._system_call(_SYS_RESUME, timeout, "ActorRef.resume")

    def trace(self, enabled: bool = True) -> None:
        """Log every message this actor handles, and how, to the ``otpy.trace`` logger (A15).

        Messages are logged by kind and type only. Tracing wraps the handlers of this
        incarnation, so it costs nothing while off.
        """
        actor = self._actor
        names = ("handle_call", "handle_cast", "handle_info", "handle_continue")
        if not enabled:
            for name in names:
                actor.__dict__.pop(name, None)
            return
        for name in names:
            if name not in actor.__dict__:
                setattr(actor, name, _traced(self.label, name, getattr(actor, name)))

    def statistics(self) -> ActorStatistics:
        """Return a frozen snapshot of the actor's state and counters."""
        mailbox = self._mailbox
        return ActorStatistics(
            id=self.id,
            name=self.name,
            actor_class=type(self._actor).__name__,
            state=self._state,
            queued=len(mailbox.q),
            capacity=mailbox.capacity,
            processed=self._processed,
            overflows=mailbox.overflows,
            restarts=self._restarts,
            started_at=self._started_at,
            exit_reason=self._exit_reason,
        )

    # -- delivery helpers -----------------------------------------------------------

    def _is_alive(self) -> bool:
        return self._exit_reason is None

    async def _put_slow(self, item: tuple[Any, ...]) -> None:
        mailbox = self._mailbox
        if mailbox.overflow is Overflow.WAIT:
            if not await mailbox.put_waiting(item, self._is_alive):
                self._drop(item, "actor_stopped")
        else:
            dropped = mailbox.overflow_nowait(item)
            if dropped is not None:
                self._drop(*dropped)

    def _deliver_system_info(self, message: Any) -> None:
        """Deliver an info regardless of capacity (Down, Exit, timers)."""
        if self._exit_reason is None:
            self._mailbox.append((_INFO, message))
        else:
            self._drop((_INFO, message), "actor_stopped")

    def _post_system(self, item: tuple[Any, ...]) -> None:
        if self._sys is None:
            self._sys = deque()
        self._sys.append(item)
        self._attention = True
        self._mailbox.wake_consumer()

    async def _system_call(self, kind: int, timeout: float | None, function: str) -> Any:
        check_seconds(function, "timeout", timeout)
        if self._exit_reason is not None:
            raise ActorStopped(self.label, self._exit_reason)
        fut = self._backend.new_future()
        self._post_system((kind, fut))
        result = await wait_for(self._backend, fut, timeout)
        if result is TIMED_OUT:
            raise CallTimeout(self.label, timeout or 0.0)
        return result

    def _drop(self, item: Any, reason: str) -> None:
        """An item could not be delivered: fail a call, publish anything else."""
        kind = item[0]
        if kind == _CALL:
            fut = item[2]
            if not fut.done():
                if reason == "actor_stopped":
                    fut.set_exception(ActorExited(self.label, self._exit_reason))
                elif reason.startswith("mailbox_full"):
                    fut.set_exception(MailboxFull(self.label, self._mailbox.capacity))
                else:
                    fut.set_exception(ActorStopped(self.label, reason))
            return
        if kind == _INTERNAL:
            return
        self.node.dead_letters.publish_undeliverable(
            recipient=self.label,
            message=_envelope.unwrap(item[1]),
            kind=_KIND_NAMES[kind],
            reason=reason,
        )

    def _publish_poison(self, item: tuple[Any, ...], error: Exception) -> None:
        """The handler raised on *item* and the actor has ``dead_letter_on_crash``."""
        self.node.dead_letters.publish(
            DeadLetterEvent(
                self.label,
                _envelope.unwrap(item[1]),
                _KIND_NAMES[item[0]],
                "poison",
                anyio.current_time(),
                error,
            )
        )

    # -- requests from the actor's own handlers ---------------------------------------

    def _request_stop(self, reason: object) -> None:
        self._stop_reason = reason
        self._attention = True

    def _request_continue(self, argument: Any) -> None:
        self._continue = argument
        self._attention = True

    def _send_after(self, delay: float, message: Any, target: ActorRef) -> Timer:
        check_seconds("Actor.send_after", "delay", delay, optional=False)
        timer = Timer()
        if self._timers is None:
            self._timers = set()
        self._timers.add(timer)
        self.node._task_group.start_soon(self._run_timer, timer, delay, message, target)
        return timer

    async def _run_timer(self, timer: Timer, delay: float, message: Any, target: ActorRef) -> None:
        with anyio.CancelScope() as scope:
            timer._scope = scope
            if timer.cancelled:
                scope.cancel()
            await anyio.sleep(delay)
            if not timer.cancelled:
                timer.fired = True
                target._deliver_system_info(message)
        if self._timers is not None:
            self._timers.discard(timer)

    def _monitor(self, target: ActorRef) -> Monitor:
        monitor = Monitor(self, target)
        if self._monitoring is None:
            self._monitoring = set()
        self._monitoring.add(monitor)
        if target._exit_reason is not None:
            self._deliver_system_info(Down(monitor, target, NOPROC))
        else:
            if target._watchers is None:
                target._watchers = {}
            target._watchers[monitor] = None
        return monitor

    def _demonitor(self, monitor: Monitor) -> bool:
        if self._monitoring is None or monitor not in self._monitoring:
            return False
        self._monitoring.discard(monitor)
        monitor._active = False
        watchers = monitor.target._watchers
        if watchers is not None:
            watchers.pop(monitor, None)
        return True

    def _link(self, target: ActorRef) -> None:
        if target is self:
            return
        if target._exit_reason is not None:
            self._exit_signal(target, NOPROC)
            return
        if self._links is None:
            self._links = set()
        if target._links is None:
            target._links = set()
        self._links.add(target)
        target._links.add(self)

    def _unlink(self, target: ActorRef) -> None:
        if self._links is not None:
            self._links.discard(target)
        if target._links is not None:
            target._links.discard(self)

    def _exit_signal(self, sender: ActorRef, reason: object) -> None:
        """A linked actor exited with *reason* (A9)."""
        if self._exit_reason is not None:
            return
        if self._actor.trap_exit:
            if sender is self._parent:
                # As a gen_server does: its supervisor's exit stops it, terminate included.
                self._post_system((_SYS_STOP, reason))
            else:
                self._deliver_system_info(Exit(sender, reason))
        elif reason != NORMAL:
            self.kill(reason)

    def _stash_current(self, capacity: int) -> None:
        if self._stash is None:
            self._stash = deque()
        if len(self._stash) >= capacity:
            raise StashOverflow(self.label, capacity)
        item = self._item
        if item[0] == _CALL:
            self._stash_marker = True
        self._stash.append(item)

    def _unstash_all(self) -> int:
        stash = self._stash
        if not stash:
            return 0
        count = len(stash)
        self._mailbox.q.extendleft(reversed(stash))
        stash.clear()
        return count

    # -- the process --------------------------------------------------------------------

    async def _main(self, init_args: tuple[Any, ...], start_timeout: float | None) -> None:
        """The actor's task on any backend: init, loop, terminate, then signal the exit."""
        _current_actor.set(self)
        reason: object = None
        try:
            with anyio.CancelScope() as scope:
                self._canceller = scope
                if self._kill_reason is not None:
                    scope.cancel()
                reason = await self._init(init_args, start_timeout)
                del init_args  # the task must not keep init's arguments alive
                if reason is None:
                    reason = await self._loop()
        finally:
            self._finish(self._final_reason(reason))

    async def _main_asyncio(self, init_args: tuple[Any, ...], start_timeout: float | None) -> None:
        """The same on asyncio, without an anyio task wrapper or cancel scope.

        Killing cancels the task itself; the cancellation is taken back with
        ``uncancel()`` so it does not leak into anything else.
        """
        import asyncio  # here: importing otpy (for `otpy --help`, say) need not load asyncio

        _current_actor.set(self)
        task = asyncio.current_task()
        assert task is not None
        reason: object = None
        try:
            if self._kill_reason is None:
                self._canceller = task
                reason = await self._init(init_args, start_timeout)
                del init_args  # the task must not keep init's arguments alive
                if reason is None:
                    reason = await self._loop()
        except asyncio.CancelledError:
            if self._kill_reason is None:
                raise  # cancelled from outside: the loop is closing
            task.uncancel()
        finally:
            self._finish(self._final_reason(reason))

    def _final_reason(self, reason: object) -> object:
        if self._kill_reason is not None:
            return self._kill_reason
        if reason is None:
            return SHUTDOWN  # cancelled from outside: the node is shutting down
        return reason

    async def _init(self, init_args: tuple[Any, ...], start_timeout: float | None) -> object:
        """Run ``init``; return ``None`` to go on to the loop, else the exit reason (A6)."""
        actor = self._actor
        started = self._started
        assert started is not None
        try:
            if start_timeout is None:
                result = await actor.init(*init_args)
            else:
                result = _NOTHING
                with anyio.move_on_after(start_timeout):
                    result = await actor.init(*init_args)
                if result is _NOTHING:
                    started.set_exception(
                        SpawnError(
                            self.label,
                            "timeout",
                            f"actor {self.label!r} did not finish init within "
                            f"{start_timeout:g}s and was killed",
                        )
                    )
                    return KILLED
        except Exception as exc:
            # A supervisor's own SpawnError already names the child that failed.
            own = isinstance(exc, SpawnError) and exc.actor == self.label
            started.set_exception(exc if own else SpawnError(self.label, exc))
            return exc
        if result is IGNORE:
            started.set_result(IGNORE)
            return NORMAL
        if self._stop_reason is not None:
            started.set_exception(SpawnError(self.label, self._stop_reason))
            return self._stop_reason
        self._state = "running"
        self._start_link = None  # from now on the link is an ordinary one
        started.set_result(self)
        self._started = None  # the future holds this ref: do not keep a cycle alive
        return None

    async def _loop(self) -> object:
        actor = self._actor
        mailbox = self._mailbox
        q = mailbox.q
        new_future = self._backend.new_future
        while True:
            if self._attention:
                reason = await self._attend()
                if reason is not _NOTHING:
                    return reason
                continue
            if not q:
                idle = self._idle
                if idle is None:
                    # Park inline: one frame fewer for every idle actor.
                    fut = new_future()
                    mailbox._getter = fut
                    try:
                        await fut
                    finally:
                        if mailbox._getter is fut:
                            mailbox._getter = None
                    continue
                if not await mailbox.park(idle):
                    self._idle = None
                    self._item = (_INFO, IdleTimeout(idle or 0.0))
                    try:
                        await actor.handle_info(self._item[1])
                    except Exception as exc:
                        return await self._terminate(exc)
                continue
            item = q.popleft()
            if mailbox._putters:
                mailbox.wake_putter()
            self._item = item
            self._idle = None
            kind = item[0]
            message = item[1]
            traced = type(message) is _Traced
            if traced:
                # The sender's trace context, current while the message is handled.
                token = _envelope.activate_context(message.context)
                message = message.message
            try:
                if kind == _CAST:
                    await actor.handle_cast(message)
                elif kind == _CALL:
                    fut = item[2]
                    caller = Caller(self, fut)
                    self._current = caller
                    reply = await actor.handle_call(message, caller)
                    self._current = None
                    if reply is NO_REPLY:
                        if self._stash_marker:
                            self._stash_marker = False
                        else:
                            if self._deferred is None:
                                self._deferred = set()
                            self._deferred.add(caller)
                    elif not fut.done():
                        if self._stop_reason is None:
                            fut.set_result(reply)
                        else:
                            self._item = (_CALL, item[1], fut, reply)
                elif kind == _INFO:
                    if type(message) is Down:
                        monitoring = self._monitoring
                        if monitoring is None or message.monitor not in monitoring:
                            continue  # demonitored: never handled (A10)
                        monitoring.discard(message.monitor)
                    await actor.handle_info(message)
                else:
                    message()
            except Exception as exc:
                if actor.dead_letter_on_crash and kind != _INTERNAL:
                    self._publish_poison(item, exc)  # with the message's context current
                if traced:
                    _envelope.restore_context(token)
                return await self._terminate(exc)
            if traced:
                _envelope.restore_context(token)
            self._processed += 1

    async def _attend(self) -> object:
        """Handle whatever raised the attention flag; return a stop reason or _NOTHING."""
        self._attention = False
        if self._kill_reason is not None:
            return self._kill_reason
        sys = self._sys
        while sys:
            kind, arg = sys.popleft()
            if kind == _SYS_STOP:
                return await self._terminate(arg)
            if kind == _SYS_STATUS:
                if not arg.done():
                    arg.set_result(ActorStatus(self.statistics(), dict(self._format_status())))
            elif kind == _SYS_SUSPEND:
                self._suspended = True
                self._state = "suspended"
                if not arg.done():
                    arg.set_result(None)
            elif kind == _SYS_RESUME:
                self._suspended = False
                self._state = "running"
                if not arg.done():
                    arg.set_result(None)
        if self._stop_reason is not None:
            return await self._terminate(self._stop_reason)
        argument = self._continue
        if argument is not _NOTHING:
            self._continue = _NOTHING
            try:
                await self._actor.handle_continue(argument)
            except Exception as exc:
                return await self._terminate(exc)
            stop = self._pending_stop()
            if stop is not None:
                return await self._terminate(stop)
            if self._continue is not _NOTHING:
                self._attention = True
        if self._suspended:
            # Stay on the slow path until resumed; new messages wait in the mailbox.
            self._attention = True
            if not self._sys:
                await self._mailbox.park(None)
        return _NOTHING

    def _pending_stop(self) -> object:
        return self._stop_reason

    def _format_status(self) -> dict[str, object]:
        try:
            return dict(self._actor.format_status())
        except Exception as exc:  # a broken format_status must not hide the crash
            return {"format_status_failed": type(exc).__name__}

    async def _terminate(self, reason: object) -> object:
        """Run ``terminate`` and log a crash report for abnormal reasons (A8)."""
        self._state = "stopping"
        try:
            await self._actor.terminate(reason)
        except Exception as exc:
            logger.error(
                "actor %s: terminate raised %s while stopping with %r",
                self.label,
                type(exc).__name__,
                _short(reason),
                exc_info=exc,
            )
        if not is_normal_exit(reason) and logger.isEnabledFor(logging.ERROR):
            item = self._item
            logger.error(
                "actor %s terminating: %s",
                self.label,
                _short(reason),
                exc_info=reason if isinstance(reason, BaseException) else None,
                extra={
                    "otpy_report": {
                        "actor": self.label,
                        "reason": _short(reason),
                        "last_message": _KIND_NAMES.get(item[0], "?")
                        + ":"
                        + type(_envelope.unwrap(item[1])).__name__
                        if item
                        else None,
                        "state": self._format_status(),
                        "queued": len(self._mailbox.q),
                    }
                },
            )
        # A call answered with a stop request gets its reply after terminate (OTP).
        item = self._item
        if item is not None and item[0] == _CALL and len(item) == 4 and not item[2].done():
            item[2].set_result(item[3])
        return reason

    def _finish(self, reason: object) -> None:
        """The process is over: release the name, fail waiters, then signal (A11)."""
        start_link = self._start_link
        if start_link is not None:
            # init never succeeded: the spawner gets the SpawnError and no exit
            # signal, as OTP's proc_lib:start_link unlinks and flushes the EXIT.
            self._start_link = None
            self._unlink(start_link)
        self._exit_reason = reason
        self._state = "stopped"
        self._attention = False
        started = self._started
        if started is not None and not started.done():
            started.set_exception(SpawnError(self.label, reason))
        self._started = None
        node = self.node
        if self.name is not None:
            node._registry_release(self)
        # Fail what was waiting on this incarnation; pending messages become dead letters.
        current = self._current
        if current is not None and not current._fut.done():
            current._fut.set_exception(ActorExited(self.label, reason))
        if self._deferred:
            for caller in self._deferred:
                if not caller._fut.done():
                    caller._fut.set_exception(ActorExited(self.label, reason))
            self._deferred = None
        q = self._mailbox.q
        while q:
            self._drop(q.popleft(), "actor_stopped")
        if self._stash:
            for item in self._stash:
                self._drop(item, "actor_stopped")
            self._stash = None
        if self._sys:
            for _kind, arg in self._sys:
                if hasattr(arg, "done") and not arg.done():
                    arg.set_exception(ActorStopped(self.label, reason))
            self._sys = None
        self._mailbox.wake_all_putters()
        if self._timers:
            for timer in list(self._timers):
                timer.cancel()
        if self._monitoring:
            for monitor in list(self._monitoring):
                self._demonitor(monitor)
        if self._exit_waiters:
            for fut in self._exit_waiters:
                if not fut.done():
                    fut.set_result(reason)
            self._exit_waiters = None
        # Signals go out after the name is released, so a watcher can re-register it.
        if self._exit_hooks:
            for hook in self._exit_hooks:
                hook(self, reason)
        if self._watchers:
            watchers = self._watchers
            self._watchers = None
            for monitor in watchers:
                if monitor._active:
                    monitor.watcher._deliver_system_info(Down(monitor, self, reason))
        if self._links:
            links = self._links
            self._links = None
            for linked in links:
                if linked._links is not None:
                    linked._links.discard(self)
                linked._exit_signal(self, reason)
        node._process_exited(self)
        # Break the cycles a dead incarnation sits in, so refcounting frees most of it
        # instead of the cyclic GC (whose pauses were the tail of restart latency).
        self._canceller = None
        self._item = None
        self._current = None
        self._parent = None
        if isinstance(reason, BaseException):
            traceback.clear_frames(reason.__traceback__)


_trace_logger = get_logger("otpy.trace")


def _traced(label: str, name: str, handler: Any) -> Any:
    async def traced(message: Any, *rest: Any) -> Any:
        _trace_logger.info("%s %s %s", label, name, type(message).__name__)
        try:
            result = await handler(message, *rest)
        except BaseException as exc:
            _trace_logger.info("%s %s raised %s", label, name, type(exc).__name__)
            raise
        _trace_logger.info("%s %s returned %s", label, name, type(result).__name__)
        return result

    return traced


def _short(reason: object) -> str:
    if isinstance(reason, BaseException):
        text = str(reason)
        return f"{type(reason).__name__}: {redact(text)[:200]}" if text else type(reason).__name__
    return redact(repr(reason))[:200]
