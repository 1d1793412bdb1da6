"""``ActorRef``: the handle on one incarnation of an actor, and how to talk to it.

Sending (call, cast, send), stopping and killing, monitors, links, timers and the
stash live here, on the ref; the task that runs the actor (init, the receive loop,
system messages, the exit) is in :mod:`._process`. Every request the handle makes of
the running actor goes through its mailbox or its ``_sys`` queue, and raises one
``_attention`` flag when the loop has to look.
"""

from __future__ import annotations

import contextvars
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
    StashOverflow,
)
from .._redact import get_logger
from . import _envelope
from ._lowlevel import TIMED_OUT, wait_for
from ._mailbox import Mailbox, Overflow
from ._reasons import KILLED, NOPROC, NORMAL, Down, Exit

if TYPE_CHECKING:
    import asyncio
    from collections.abc import Awaitable, Callable

    from ._actor import Actor, Caller
    from ._lowlevel import OneShot
    from ._mailbox import MailboxConfig
    from ._node import Node

__all__ = [
    "ActorRef",
    "ActorStatistics",
    "ActorStatus",
    "Monitor",
    "Timer",
    "actor_of",
    "add_exit_hook",
    "adopt_child",
    "deliver_system_info",
    "mailbox_has_room",
    "needs_attention",
    "post_callback",
    "post_stop",
    "state_of",
]

# Mailbox item kinds. Items are tuples: (kind, message) or (CALL, message, future).
CAST: Final = 0
INFO: Final = 1
CALL: Final = 2
INTERNAL: Final = 3  # (INTERNAL, callback): runs inside the actor's task, in order

# System messages (handled before mailbox messages).
SYS_STOP: Final = 10
SYS_STATUS: Final = 11
SYS_SUSPEND: Final = 12
SYS_RESUME: Final = 13

NOTHING: Final[Any] = object()
"""No value yet: not ``None``, which a handler may return or pass."""

current_actor: contextvars.ContextVar[ActorRef | None] = contextvars.ContextVar(
    "otpy_current_actor", default=None
)
"""The actor whose task is running, set by the process; ``None`` outside actors."""

KIND_NAMES = {CAST: "cast", INFO: "info", CALL: "call", INTERNAL: "internal"}


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
    """What ``ActorRef.get_status()`` returns (ACT-15): statistics plus redacted state."""

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
        "_tasks",
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
        self._continue: Any = NOTHING
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
        self._top_level = current_actor.get() is None
        self._timers: set[Timer] | None = None
        self._tasks: set[anyio.CancelScope] | None = None
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
        """Send *message* to ``handle_call`` and wait for the reply (ACT-1, ACT-2).

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
        if current_actor.get() is self:
            raise CallingSelf(self.label)
        if _envelope.hooks is not None:
            message = _envelope.wrap(message)
        fut = self._backend.new_future()
        item = (CALL, message, fut)
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
        """Send *message* to ``handle_cast`` (ACT-4).

        Never raises for an exited actor: the message goes to the dead-letter stream.
        A full mailbox applies the actor's overflow policy (see :class:`Overflow`).
        With room in the mailbox it returns without a checkpoint, so an already
        cancelled scope does not stop it (docs/concepts.md, "Cancellation").

        Raises:
            MailboxFull: the mailbox is full and its policy refuses the message.
        """
        # Not a checkpoint when there is room: the one exception to "every async def
        # is a checkpoint". anyio.lowlevel.checkpoint_if_cancelled() here cost about
        # 1 us per cast and cut cast throughput about 4x on asyncio (2.3M -> 0.6M/s)
        # and 2.8x on trio; the figures are in docs/concepts.md, "Cancellation".
        if self._exit_reason is None:
            if _envelope.hooks is not None:
                message = _envelope.wrap(message)
            mailbox = self._mailbox
            if len(mailbox.q) < mailbox.capacity:
                mailbox.q.append((CAST, message))
                if mailbox._getter is not None:
                    mailbox.wake_consumer()
                return
            await self._put_slow((CAST, message))
        else:
            self._drop((CAST, message), "actor_stopped")

    def cast_nowait(self, message: Any) -> None:
        """Like :meth:`cast` but never waits: a full WAIT mailbox raises ``MailboxFull``."""
        if self._exit_reason is None:
            if _envelope.hooks is not None:
                message = _envelope.wrap(message)
            dropped = self._mailbox.put_nowait((CAST, message))
            if dropped is not None:
                self._drop(*dropped)
        else:
            self._drop((CAST, message), "actor_stopped")

    async def send(self, message: Any) -> None:
        """Send *message* to ``handle_info``; the same delivery rules as :meth:`cast`."""
        # Not a checkpoint when there is room, as cast (see the comment there).
        if self._exit_reason is None:
            if _envelope.hooks is not None:
                message = _envelope.wrap(message)
            mailbox = self._mailbox
            if len(mailbox.q) < mailbox.capacity:
                mailbox.q.append((INFO, message))
                if mailbox._getter is not None:
                    mailbox.wake_consumer()
                return
            await self._put_slow((INFO, message))
        else:
            self._drop((INFO, message), "actor_stopped")

    def send_nowait(self, message: Any) -> None:
        """Like :meth:`send` but never waits: a full WAIT mailbox raises ``MailboxFull``."""
        if self._exit_reason is None:
            if _envelope.hooks is not None:
                message = _envelope.wrap(message)
            dropped = self._mailbox.put_nowait((INFO, message))
            if dropped is not None:
                self._drop(*dropped)
        else:
            self._drop((INFO, message), "actor_stopped")

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
            self._post_system((SYS_STOP, reason))
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
        """Ask the actor for its statistics and ``format_status()`` (ACT-15).

        Raises:
            CallTimeout: no answer within *timeout*.
            ActorStopped: the actor is not running.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN.
        """
        return await self._system_call(  # type: ignore[no-any-return]
            SYS_STATUS, timeout, "ActorRef.get_status"
        )

    async def suspend(self, *, timeout: float | None = 5.0) -> None:
        """Stop handling mailbox messages until :meth:`resume` (system messages still run).

        Raises:
            CallTimeout: no answer within *timeout*.
            ActorStopped: the actor is not running.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN; nothing was suspended.
        """
        await self._system_call(SYS_SUSPEND, timeout, "ActorRef.suspend")

    async def resume(self, *, timeout: float | None = 5.0) -> None:
        """Resume handling mailbox messages after :meth:`suspend`.

        Raises:
            CallTimeout: no answer within *timeout*.
            ActorStopped: the actor is not running.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN; nothing was resumed.
        """
        await self._system_call(SYS_RESUME, timeout, "ActorRef.resume")

    def trace(self, enabled: bool = True) -> None:
        """Log every message this actor handles, and how, to the ``otpy.trace`` logger (ACT-15).

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
        if kind == CALL:
            fut = item[2]
            if not fut.done():
                if reason == "actor_stopped":
                    fut.set_exception(ActorExited(self.label, self._exit_reason))
                elif reason.startswith("mailbox_full"):
                    fut.set_exception(MailboxFull(self.label, self._mailbox.capacity))
                else:
                    fut.set_exception(ActorStopped(self.label, reason))
            return
        if kind == INTERNAL:
            return
        self.node.dead_letters.publish_undeliverable(
            recipient=self.label,
            message=_envelope.unwrap(item[1]),
            kind=KIND_NAMES[kind],
            reason=reason,
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
                deliver_system_info(target, message)
        if self._timers is not None:
            self._timers.discard(timer)

    def _start_task(
        self, fn: Callable[..., Awaitable[object]], args: tuple[Any, ...], name: str | None
    ) -> None:
        if self._exit_reason is not None:
            raise ActorStopped(self.label, self._exit_reason)
        scope = anyio.CancelScope()
        if self._tasks is None:
            self._tasks = set()
        self._tasks.add(scope)
        label = name or f"{self.label} task {getattr(fn, '__qualname__', type(fn).__name__)}"
        self.node._task_group.start_soon(self._run_task, scope, fn, args, label, name=label)

    async def _run_task(
        self,
        scope: anyio.CancelScope,
        fn: Callable[..., Awaitable[object]],
        args: tuple[Any, ...],
        label: str,
    ) -> None:
        try:
            with scope:
                await fn(*args)
        except Exception as exc:
            if self._exit_reason is None and self._kill_reason is None:
                _task_logger.error(
                    "actor %s: its task %s crashed with %s; the actor exits with it",
                    self.label,
                    label,
                    type(exc).__name__,
                    exc_info=exc,
                )
                self.kill(exc)
        finally:
            if self._tasks is not None:
                self._tasks.discard(scope)

    def _monitor(self, target: ActorRef) -> Monitor:
        monitor = Monitor(self, target)
        if self._monitoring is None:
            self._monitoring = set()
        self._monitoring.add(monitor)
        if target._exit_reason is not None:
            deliver_system_info(self, Down(monitor, target, NOPROC))
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
        """A linked actor exited with *reason* (ACT-9)."""
        if self._exit_reason is not None:
            return
        if self._actor.trap_exit:
            if sender is self._parent:
                # As a gen_server does: its supervisor's exit stops it, terminate included.
                self._post_system((SYS_STOP, reason))
            else:
                deliver_system_info(self, Exit(sender, reason))
        elif reason != NORMAL:
            self.kill(reason)

    def _stash_current(self, capacity: int) -> None:
        if self._stash is None:
            self._stash = deque()
        if len(self._stash) >= capacity:
            raise StashOverflow(self.label, capacity)
        item = self._item
        if item[0] == CALL:
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


# -- the core's internal API (re-exported by otpy._core) ------------------------------
# Other layers (supervision, pressure, dead letters, testing) need a few things a
# user never does. They get them here, by name, instead of reaching into the ref.


def deliver_system_info(ref: ActorRef, message: Any) -> None:
    """Deliver *message* to ``handle_info`` regardless of mailbox capacity.

    What monitors (``Down``), links (``Exit``) and timers deliver; also a supervisor's
    restart retry to itself and a partitioned queue's nudge to its worker, which must
    never be refused for a full mailbox. To an exited actor it is a dead letter.
    It is on the partitioned queue's per-batch path: keep it one plain call.
    """
    if ref._exit_reason is None:
        ref._mailbox.append((INFO, message))
    else:
        ref._drop((INFO, message), "actor_stopped")


def post_stop(ref: ActorRef, reason: object) -> None:
    """Ask *ref* to stop with *reason*, as a system message, without waiting.

    Handled before any mailbox message; ``terminate`` runs. A supervisor stopping a
    child gracefully posts this, then waits with its own shutdown timeout.
    """
    ref._post_system((SYS_STOP, reason))


def post_callback(ref: ActorRef, callback: Callable[[], object]) -> None:
    """Run *callback* inside *ref*'s task, in mailbox order, regardless of capacity.

    If it raises, the actor crashes exactly as if a handler had raised (no dead
    letter). ``otpy.testing.inject_crash`` uses it.
    """
    ref._mailbox.append((INTERNAL, callback))


def adopt_child(parent: ActorRef, child: ActorRef) -> None:
    """Make *parent* the supervisor of *child*, just spawned, before its task runs.

    Links the two, and marks *parent* as the one whose exit stops a trapping *child*
    gracefully (``terminate`` runs), as a gen_server treats its parent's exit.
    Supervisors call it from ``spawn_child(..., on_created=...)``.
    """
    child._parent = parent
    parent._link(child)


def add_exit_hook(ref: ActorRef, hook: Callable[[ActorRef, object], None]) -> None:
    """Call ``hook(ref, reason)`` when *ref* exits, after its name is released.

    Hooks run in the exiting actor's task, before monitors and links are signalled;
    a hook must not block or raise. ``open_supervisor`` uses one to cancel its block
    when the root supervisor gives up; the receptionist uses one to forget an actor.
    """
    ref._exit_hooks = [*(ref._exit_hooks or []), hook]


def actor_of(ref: ActorRef) -> Actor:
    """Return the :class:`~otpy.Actor` instance behind *ref*.

    Supervisors use it to tell a nested supervisor child from a worker and to read
    its statistics directly; nothing else should need the instance.
    """
    return ref._actor


def state_of(ref: ActorRef) -> str:
    """Return *ref*'s state: ``starting``, ``running``, ``suspended``, ``stopping``, ``stopped``.

    The same as ``ref.statistics().state`` without building the snapshot;
    supervisors read it for their own statistics.
    """
    return ref._state


def needs_attention(ref: ActorRef) -> bool:
    """Whether *ref*'s loop has something to handle before its next message.

    A stop or kill request, a system message (``get_status``, ``suspend``) or a
    continue step. A handler that works through a batch (a partitioned queue's
    worker) checks it between items and returns to the loop when it is set.
    """
    return ref._attention


def mailbox_has_room(ref: ActorRef) -> bool:
    """Whether a cast or call to *ref* now would be queued without waiting or overflow.

    The dead-letter writer checks it before each capture to take the fast path;
    keep it a plain read.
    """
    mailbox = ref._mailbox
    return len(mailbox.q) < mailbox.capacity


_trace_logger = get_logger("otpy.trace")
_task_logger = get_logger("otpy.actor")


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
