"""The gen_server behaviour: subclass :class:`Actor` and implement its callbacks."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, ClassVar, Final, TypeVar, final

from .._check import check_seconds, check_type
from .._exceptions import UnhandledMessage
from .._redact import get_logger
from ._reasons import NORMAL

if TYPE_CHECKING:
    import weakref
    from collections.abc import Awaitable, Callable, Mapping

    from ._mailbox import MailboxConfig
    from ._node import Node
    from ._ref import ActorRef, Monitor, Timer

__all__ = ["IGNORE", "NO_REPLY", "Actor", "Caller", "wait_on_node_exit"]

logger = get_logger("otpy.actor")

ActorT = TypeVar("ActorT", bound="Actor")

_AN_ACTOR_REF: Final = "an ActorRef (for a name, use otpy.whereis(name))"


def _ref() -> Any:
    """The ``_ref`` module, which imports this one (so it cannot be imported at the top)."""
    from . import _ref

    return _ref


class _Sentinel:
    __slots__ = ("_name",)

    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return f"otpy.{self._name}"


NO_REPLY: Final[Any] = _Sentinel("NO_REPLY")
"""Return it from ``handle_call`` to answer later with ``caller.reply(value)`` (ACT-3)."""

IGNORE: Final[Any] = _Sentinel("IGNORE")
"""Return it from ``init`` to not start: a supervisor keeps the spec and moves on (ACT-6)."""


@final
class Caller:
    """The ``From`` of a call: reply through it, now or later, from any task (ACT-3).

    A reply to a caller that already timed out or went away is discarded.
    """

    __slots__ = ("_fut", "_owner")

    def __init__(self, owner: ActorRef, fut: Any) -> None:
        self._owner = owner
        self._fut = fut

    def reply(self, value: Any) -> None:
        """Send *value* as the reply; a second reply, or one after a timeout, is ignored."""
        fut = self._fut
        if not fut.done():
            fut.set_result(value)
        deferred = self._owner._deferred
        if deferred:
            deferred.discard(self)

    @property
    def answered(self) -> bool:
        """Whether a reply was sent, or the caller stopped waiting."""
        return bool(self._fut.done())


class Actor:
    """Base class of a gen_server-style actor.

    Each start (and restart) makes a fresh instance, so state lives in plain
    attributes set in :meth:`init`. Handlers run one message at a time, in mailbox
    order. Override what you need:

    - :meth:`init` prepares state; raising makes the start fail (``terminate`` is
      not called); returning :data:`IGNORE` declines to start.
    - :meth:`handle_call` returns the reply, or :data:`NO_REPLY` to answer later.
    - :meth:`handle_cast` and :meth:`handle_info` return nothing.
    - :meth:`terminate` runs when the actor stops on its own, crashes, or is asked to
      stop gracefully; not on a brutal kill.

    Class attributes configure every instance:

    Attributes:
        mailbox: a :class:`~otpy.MailboxConfig`, or ``None`` for the default
            (1000 messages, senders wait up to 5 s for room).
        stash_capacity: how many messages :meth:`stash` holds.
        trap_exit: receive linked actors' exits as :class:`~otpy.Exit` infos instead
            of dying with them.
        dead_letter_on_crash: when a handler raises, publish the message it was
            handling on ``node.dead_letters`` with reason ``"poison"`` (and the
            exception), before the actor terminates; a router from
            ``otpy.deadletter.route_dead_letters`` stores it. Set it on a subclass to
            enable it for plain spawns and supervised children alike.
    """

    mailbox: ClassVar[MailboxConfig | None] = None
    stash_capacity: ClassVar[int] = 100
    trap_exit: bool = False
    dead_letter_on_crash: ClassVar[bool] = False
    _otpy_shutdown: ClassVar[float | None] = 5.0
    """How long a node leaving waits for ``terminate`` before killing; ``None`` waits."""

    _otpy_ref: weakref.ref[ActorRef]

    @property
    def ref(self) -> ActorRef:
        """This incarnation's reference; set before :meth:`init` runs.

        The actor holds it weakly, so a dead incarnation is freed by reference
        counting rather than left for the cyclic garbage collector.

        Raises:
            RuntimeError: the actor exited and nothing holds its reference any more.
        """
        ref = self._otpy_ref()
        if ref is None:
            raise RuntimeError(f"{type(self).__name__} has exited and its ActorRef is gone")
        return ref

    # -- callbacks ----------------------------------------------------------------

    async def init(self, *args: Any) -> Any:
        """Prepare the actor's state from the spawn arguments.

        Returns:
            ``None`` to start, or :data:`IGNORE` to not start.
        """

    async def handle_call(self, message: Any, caller: Caller) -> Any:
        """Answer a call; the return value is the reply, :data:`NO_REPLY` to defer it.

        The default crashes the actor with :class:`~otpy.UnhandledMessage`; the caller
        receives that exit reason (ACT-5).
        """
        raise UnhandledMessage(self.ref.label, "call", message)

    async def handle_cast(self, message: Any) -> None:
        """Handle a cast. The default crashes with :class:`~otpy.UnhandledMessage` (ACT-5)."""
        raise UnhandledMessage(self.ref.label, "cast", message)

    async def handle_info(self, message: Any) -> None:
        """Handle anything else: ``Down``, ``Exit``, timers, plain sends.

        The default logs the message's type (never its content) and ignores it (ACT-5).
        """
        logger.warning(
            "actor %s ignored an unexpected info of type %s",
            self.ref.label,
            type(message).__name__,
        )

    async def handle_continue(self, argument: Any) -> None:
        """Run a step requested with :meth:`continue_with`, before the next message (ACT-7)."""

    async def terminate(self, reason: object) -> None:
        """Clean up; *reason* is the exit reason. Not called on a brutal kill (ACT-8)."""

    def format_status(self) -> Mapping[str, object]:
        """Return what crash reports and ``get_status`` may show of the state.

        The default shows attribute names and value types only, so secrets and
        payloads are never logged; override it to show more.
        """
        return {
            key: type(value).__name__
            for key, value in vars(self).items()
            if not key.startswith("_")
        }

    # -- what handlers can ask for ------------------------------------------------

    @property
    def node(self) -> Node:
        """The node this actor runs on."""
        return self.ref.node

    @final
    def stop(self, reason: object = NORMAL) -> None:
        """Stop after the current handler returns; ``terminate(reason)`` runs first.

        From ``init``, the start fails with *reason*. A pending call reply is sent
        after ``terminate``, as OTP does.
        """
        self.ref._request_stop(reason)

    @final
    def continue_with(self, argument: Any) -> None:
        """Run ``handle_continue(argument)`` before any further message (ACT-7)."""
        self.ref._request_continue(argument)

    @final
    def set_idle_timeout(self, seconds: float | None) -> None:
        """Deliver :class:`~otpy.IdleTimeout` if no message arrives within *seconds*.

        Like OTP's callback timeout it applies to the next wait only: any message
        cancels it. ``None`` clears it.

        Raises:
            InvalidArgumentType: *seconds* is not a number (or is a ``bool``).
            InvalidArgument: *seconds* is negative or NaN.
        """
        check_seconds("Actor.set_idle_timeout", "seconds", seconds)
        self.ref._idle = seconds

    @final
    def send_after(self, delay: float, message: Any) -> Timer:
        """Deliver *message* to :meth:`handle_info` after *delay* seconds; cancellable.

        Raises:
            InvalidArgumentType: *delay* is not a number (or is a ``bool``).
            InvalidArgument: *delay* is negative or NaN; no timer was started.
        """
        return self.ref._send_after(delay, message, self.ref)

    @final
    def start_task(
        self, fn: Callable[..., Awaitable[object]], *args: object, name: str | None = None
    ) -> None:
        """Run ``await fn(*args)`` beside this actor's handlers, for as long as it lives.

        The task is the actor's: it ends with this incarnation. A stop runs
        :meth:`terminate` first (which can tell the task to finish and wait for
        it), then cancels whatever is still running; a kill or a crash cancels it
        at once. A restarted actor starts its tasks again in ``init``.

        A task that raises crashes the actor with that exception as its exit reason,
        as a linked process would: :meth:`terminate` is not called, the crash is
        logged, and the supervisor decides. A task that returns just ends.

        Use it for work that is not a message: a server's accept loop, a loop
        that claims work from a store and runs it concurrently.

        Args:
            fn: an async callable.
            *args: its arguments.
            name: the task's name, for debuggers and task dumps.

        Raises:
            ActorStopped: this incarnation has exited.

        .. versionadded:: 0.1.0
        """
        self.ref._start_task(fn, args, name)

    @final
    def monitor(self, target: ActorRef) -> Monitor:
        """Watch *target*; a :class:`~otpy.Down` arrives when it exits (ACT-10).

        Monitoring an actor that has already exited gives an immediate ``Down`` with
        reason ``"noproc"``. Each call makes an independent monitor.

        Raises:
            InvalidArgumentType: *target* is not an :class:`~otpy.ActorRef`;
                nothing was registered.
        """
        check_type("Actor.monitor", "target", target, _ref().ActorRef, _AN_ACTOR_REF)
        return self.ref._monitor(target)

    @final
    def demonitor(self, monitor: Monitor) -> bool:
        """Remove *monitor*; no ``Down`` for it is handled afterwards, even if queued.

        Returns:
            ``False`` if it was not an active monitor of this actor.

        Raises:
            InvalidArgumentType: *monitor* is not a :class:`~otpy.Monitor`.
        """
        check_type(
            "Actor.demonitor", "monitor", monitor, _ref().Monitor, "a Monitor from Actor.monitor()"
        )
        return self.ref._demonitor(monitor)

    @final
    def link(self, target: ActorRef) -> None:
        """Link to *target*: an exit of either kills the other unless it is ``"normal"`` (ACT-9).

        As in OTP, ``"shutdown"`` and :class:`~otpy.ShutdownWith` kill a linked actor
        too; only ``"normal"`` does not. An actor with ``trap_exit`` gets an
        :class:`~otpy.Exit` instead. Linking to an actor that has already exited sends this actor an exit with
        reason ``"noproc"``.

        Raises:
            InvalidArgumentType: *target* is not an :class:`~otpy.ActorRef`;
                nothing was linked.
        """
        check_type("Actor.link", "target", target, _ref().ActorRef, _AN_ACTOR_REF)
        self.ref._link(target)

    @final
    def unlink(self, target: ActorRef) -> None:
        """Remove the link to *target*, if any.

        Raises:
            InvalidArgumentType: *target* is not an :class:`~otpy.ActorRef`.
        """
        check_type("Actor.unlink", "target", target, _ref().ActorRef, _AN_ACTOR_REF)
        self.ref._unlink(target)

    @final
    async def spawn_link(
        self,
        actor_class: type[Actor],
        *args: Any,
        name: str | None = None,
        mailbox: MailboxConfig | None = None,
        start_timeout: float | None = None,
    ) -> ActorRef:
        """Spawn an actor linked to this one from before its ``init`` runs.

        If the start fails (``init`` raises, stops, times out or returns
        :data:`IGNORE`), the link is removed before the new actor exits: this actor
        gets the :class:`~otpy.SpawnError` and nothing else, neither an exit signal
        nor an :class:`~otpy.Exit` message, as ``gen_server:start_link`` in OTP 26.

        Raises:
            SpawnError: the start failed; see :meth:`Node.spawn`.
        """
        return await self.ref.node.spawn(
            actor_class,
            *args,
            name=name,
            mailbox=mailbox,
            start_timeout=start_timeout,
            link=self.ref,
        )

    @final
    def stash(self) -> Any:
        """Set the message being handled aside until :meth:`unstash_all` (ACT-14).

        In ``handle_call``, ``return self.stash()``: it returns :data:`NO_REPLY`, and
        the call is answered when the message is handled again.

        Raises:
            StashOverflow: the stash already holds ``stash_capacity`` messages.
        """
        self.ref._stash_current(self.stash_capacity)
        return NO_REPLY

    @final
    def unstash_all(self) -> int:
        """Put every stashed message back in front of the mailbox, in stash order."""
        return self.ref._unstash_all()


def wait_on_node_exit(cls: type[ActorT]) -> type[ActorT]:
    """Make a node that is leaving wait for *cls*'s actors as long as they take to stop.

    Other actors get five seconds for ``terminate`` before they are killed. A
    supervisor's stop is its whole tree stopping, each child within its own
    ``shutdown``, so ``otpy._supervision`` marks its supervisors with this rather
    than setting the core's private attribute itself.
    """
    cls._otpy_shutdown = None
    return cls
