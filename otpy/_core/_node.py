"""The node: the runtime root that owns every actor task, the name registry and the
dead-letter stream.

Actors are flat, as Erlang processes are: every actor task runs in the node's one
task group, inside its own cancel scope. The tree is made by supervisors and links,
not by task nesting, so a supervisor can restart a child without restarting itself.
Only this module reads wall-clock time (:meth:`Node.wall_time`).
"""

from __future__ import annotations

import contextvars
import itertools
import time
from collections import deque
from typing import TYPE_CHECKING, Any, final

import anyio

from .._check import check_seconds, check_type, short
from .._exceptions import (
    ActorStopped,
    AlreadyStarted,
    CallTimeout,
    InvalidArgument,
    InvalidArgumentType,
    NodeError,
    SpawnError,
    single_error,
)
from . import _envelope
from ._actor import IGNORE, Actor
from ._deadletters import DeadLetterStream
from ._lowlevel import TIMED_OUT, current_backend, wait_for
from ._mailbox import DEFAULT_MAILBOX, MailboxConfig
from ._process import run, run_asyncio
from ._reasons import KILLED, SHUTDOWN
from ._receptionist import Receptionist
from ._ref import _CALL, _CAST, _INFO, ActorRef

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from anyio.abc import TaskGroup


__all__ = ["NamedRef", "Node", "current_node", "named", "open_node", "spawn", "whereis"]

_current_node: contextvars.ContextVar[Node | None] = contextvars.ContextVar(
    "otpy_current_node", default=None
)


class _Hold:
    """A name whose supervised actor is restarting: sends by name wait here (S14)."""

    __slots__ = ("capacity", "dropped", "items")

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self.items: deque[tuple[Any, ...]] = deque()
        self.dropped = 0


def current_node() -> Node:
    """Return the node running the current task.

    Raises:
        NodeError: no node is running here; use ``async with otpy.open_node():``.
    """
    node = _current_node.get()
    if node is None:
        raise NodeError(
            "no otpy node is running in this task; wrap your code in "
            "'async with otpy.open_node():' or start it with 'otpy run'"
        )
    return node


@final
class Node:
    """The runtime that actors run in. Make one with :func:`open_node`."""

    def __init__(self, *, dead_letters: DeadLetterStream | None = None) -> None:
        self.dead_letters = dead_letters or DeadLetterStream()
        self.receptionist = Receptionist()
        """Service discovery by key (A16)."""
        self._registry: dict[str, ActorRef | _Hold] = {}
        self._ids = itertools.count(1)
        # Strong refs (asyncio keeps only weak ones to tasks), in start order.
        self._procs: dict[ActorRef, None] = {}
        self._all_exited: anyio.Event | None = None
        self._spawned = 0
        self._roots: list[ActorRef] = []
        self._task_group: TaskGroup
        self._backend = current_backend()

    # -- spawning -------------------------------------------------------------------

    async def spawn(
        self,
        actor_class: type[Actor],
        *args: Any,
        name: str | None = None,
        mailbox: MailboxConfig | None = None,
        start_timeout: float | None = None,
        link: ActorRef | None = None,
    ) -> ActorRef:
        """Start an actor and return once its ``init`` has finished (A6).

        Args:
            actor_class: the :class:`~otpy.Actor` subclass.
            *args: passed to its ``init``.
            name: a unique name to register it under (A11).
            mailbox: overrides the class's ``mailbox`` setting.
            start_timeout: kill it and fail if ``init`` takes longer.
            link: an actor to link it to before ``init`` runs. If the start fails
                the link is removed first, so *link* gets the ``SpawnError`` and
                no exit signal (as ``proc_lib:start_link`` does in OTP 26).

        Raises:
            AlreadyStarted: *name* is taken.
            SpawnError: ``init`` raised, timed out, stopped, or returned ``IGNORE``.
            InvalidArgumentType: an option has the wrong type (nothing was started).
            InvalidArgument: *name* is empty, or *start_timeout* is not > 0.
        """
        _check_spawn(actor_class, name, mailbox, start_timeout, link)
        ref = await self._spawn(
            actor_class, args, name=name, mailbox=mailbox, start_timeout=start_timeout, link=link
        )
        if ref is None:
            raise SpawnError(
                actor_class.__name__,
                "ignore",
                f"actor {name or actor_class.__name__!r} ignored its start (init returned IGNORE)",
            )
        return ref

    async def _spawn(
        self,
        actor_class: type[Actor],
        args: tuple[Any, ...],
        *,
        name: str | None = None,
        mailbox: MailboxConfig | None = None,
        start_timeout: float | None = None,
        link: ActorRef | None = None,
        restarts: int = 0,
        hold_name: int = 0,
        claim_name: bool = False,
        label: str | None = None,
        on_created: Callable[[ActorRef], object] | None = None,
    ) -> ActorRef | None:
        """Spawn; return ``None`` if ``init`` returned ``IGNORE`` (supervisors need it)."""
        config = mailbox or actor_class.mailbox or DEFAULT_MAILBOX
        actor = actor_class()
        ref = ActorRef(self, actor, next(self._ids), name, config, restarts, label)
        if name is not None:
            self._register(name, ref, claim_name)
        ref._hold_name = hold_name > 0
        if hold_name:
            ref._hold_capacity = hold_name
        if link is not None:
            ref._link(link)
            ref._start_link = link
        if on_created is not None:
            on_created(ref)
        started = self._backend.new_future()
        ref._started = started
        self._procs[ref] = None
        self._spawned += 1
        loop = self._backend.loop
        if loop is not None:
            loop.create_task(run_asyncio(ref, args, start_timeout))
        else:
            self._task_group.start_soon(run, ref, args, start_timeout)
        try:
            result = await started
        except BaseException:
            # We were cancelled while it started: do not orphan it. On asyncio the
            # cancellation also cancels the future we awaited, hence cancelled().
            if not started.done() or started.cancelled():
                ref.kill()
            raise
        if result is IGNORE:
            return None
        return ref

    # -- names ------------------------------------------------------------------------

    def _register(self, name: str, ref: ActorRef, claim: bool) -> None:
        existing = self._registry.get(name)
        if isinstance(existing, ActorRef) and existing._exit_reason is None:
            raise AlreadyStarted(name, existing)
        if isinstance(existing, _Hold):
            if not claim:
                raise AlreadyStarted(name, "a supervised actor that is restarting")
            for item in existing.items:
                ref._mailbox.append(item)
        self._registry[name] = ref

    def _registry_release(self, ref: ActorRef) -> None:
        name = ref.name
        assert name is not None
        if self._registry.get(name) is ref:
            if ref._hold_name:
                self._registry[name] = _Hold(ref._hold_capacity)
            else:
                del self._registry[name]

    def release_name(self, name: str) -> None:
        """Drop a restart hold on *name*; messages waiting in it become dead letters.

        Supervisors call this when a named child will not be restarted.
        """
        hold = self._registry.get(name)
        if isinstance(hold, _Hold):
            del self._registry[name]
            for item in hold.items:
                _undeliverable(self, name, item, "noproc")

    def whereis(self, name: str) -> ActorRef | None:
        """Return the live actor registered as *name*, or ``None`` (A11)."""
        ref = self._registry.get(name)
        if isinstance(ref, ActorRef) and ref._exit_reason is None:
            return ref
        return None

    def named(self, name: str) -> NamedRef:
        """Return a :class:`NamedRef`: sends by *name* reach whichever incarnation is current."""
        return NamedRef(self, name)

    def registered(self) -> dict[str, ActorRef | None]:
        """Return every registered name with its live actor (``None`` while restarting)."""
        return {
            name: ref if isinstance(ref, ActorRef) else None for name, ref in self._registry.items()
        }

    # -- bookkeeping ----------------------------------------------------------------

    def _process_exited(self, ref: ActorRef) -> None:
        self._procs.pop(ref, None)
        if not self._procs and self._all_exited is not None:
            self._all_exited.set()

    async def _stop_all(self) -> None:
        """Stop every actor started outside an actor, the last started first.

        Each is asked to stop with ``shutdown`` and given its shutdown time (5 s
        for a worker, as long as it takes for a supervisor) before it is killed.
        Actors spawned by actors belong to them: a supervisor stops its children,
        a linked actor goes with its partner, and whatever is left is cancelled
        afterwards by :meth:`_kill_all`.
        """
        while True:
            top = [ref for ref in reversed(self._procs) if ref._top_level]
            if not top:
                return
            for ref in top:
                if ref._exit_reason is None:
                    await _stop_or_kill(ref)

    async def _kill_all(self) -> None:
        """Kill every actor still running and wait until all have exited."""
        if not self._procs:
            return
        self._all_exited = anyio.Event()
        for ref in list(self._procs):
            ref.kill(SHUTDOWN)
        await self._all_exited.wait()

    @property
    def live_actors(self) -> int:
        """How many actors are running now."""
        return len(self._procs)

    @property
    def roots(self) -> tuple[ActorRef, ...]:
        """The top-level supervisors started with ``open_supervisor`` or ``otpy run``."""
        return tuple(r for r in self._roots if r._exit_reason is None)

    def add_root(self, ref: ActorRef) -> None:
        """Make *ref* (a supervisor) visible to the console as a top-level tree."""
        self._roots.append(ref)

    @staticmethod
    def wall_time() -> float:
        """Seconds since the epoch, for stamping records; decisions use ``anyio.current_time()``."""
        return time.time()


async def _stop_or_kill(ref: ActorRef) -> None:
    """Ask *ref* to stop with ``shutdown``; kill it if its shutdown time runs out.

    One still in ``init`` has no ``terminate`` to run (OTP calls none when init did
    not finish), so it is killed with ``shutdown`` at once.
    """
    if ref._state == "starting":
        ref.kill(SHUTDOWN)
        await ref.wait_exited()
        return
    try:
        await ref.stop(SHUTDOWN, timeout=type(ref._actor)._otpy_shutdown)
    except TimeoutError:
        ref.kill(KILLED)
        await ref.wait_exited()


def _check_spawn(
    actor_class: object, name: object, mailbox: object, start_timeout: object, link: object
) -> None:
    """Refuse bad ``spawn`` options before anything is registered or started."""
    if not (isinstance(actor_class, type) and issubclass(actor_class, Actor)):
        raise InvalidArgumentType(
            "actor_class",
            f"must be an otpy.Actor subclass, got {type(actor_class).__name__} {short(actor_class)}",
            owner="spawn",
        )
    if name is not None:
        check_type("spawn", "name", name, str, "a non-empty str, or None")
        if not name:
            raise InvalidArgument(
                "name", f"must be a non-empty str, or None, got {short(name)}", owner="spawn"
            )
    if mailbox is not None:
        check_type("spawn", "mailbox", mailbox, MailboxConfig, "an otpy.MailboxConfig, or None")
    check_seconds("spawn", "start_timeout", start_timeout, positive=True)
    if link is not None:
        check_type("spawn", "link", link, ActorRef, "an ActorRef, or None")


def _undeliverable(node: Node, name: str, item: tuple[Any, ...], reason: str) -> None:
    kind = item[0]
    if kind == _CALL:
        fut = item[2]
        if not fut.done():
            fut.set_exception(ActorStopped(name, reason))
        return
    node.dead_letters.publish_undeliverable(
        recipient=name,
        message=_envelope.unwrap(item[1]),
        kind="cast" if kind == _CAST else "info",
        reason=reason,
    )


@final
class NamedRef:
    """Talks to whatever actor currently holds a name (A11, S14).

    While a supervised actor with that name is restarting or backing off, messages
    wait in a bounded stash and reach the new incarnation first; beyond the stash
    capacity they are dropped and counted. With nobody behind the name, casts and
    sends become dead letters and calls raise :class:`~otpy.ActorStopped` at once.
    """

    __slots__ = ("_node", "name")

    def __init__(self, node: Node, name: str) -> None:
        self._node = node
        self.name = name

    def __repr__(self) -> str:
        return f"<NamedRef {self.name!r}>"

    def resolve(self) -> ActorRef | None:
        """Return the live actor behind the name now, or ``None``."""
        return self._node.whereis(self.name)

    def _target(self) -> ActorRef | _Hold | None:
        target = self._node._registry.get(self.name)
        if isinstance(target, ActorRef) and target._exit_reason is not None:
            return None
        return target

    def _hold(self, hold: _Hold, item: tuple[Any, ...]) -> bool:
        if len(hold.items) >= hold.capacity:
            hold.dropped += 1
            _undeliverable(self._node, self.name, item, "stash_full")
            return False
        hold.items.append(item)
        return True

    async def call(self, message: Any, *, timeout: float | None = 5.0) -> Any:
        """Call the current incarnation; while it restarts, the call waits in the stash.

        Raises:
            CallTimeout: no reply within *timeout*.
            ActorStopped: nobody holds the name.
            InvalidArgumentType: *timeout* is not a number (or is a ``bool``).
            InvalidArgument: *timeout* is negative or NaN.
        """
        if timeout != 5.0 and timeout is not None:
            check_seconds("NamedRef.call", "timeout", timeout)
        target = self._target()
        if isinstance(target, ActorRef):
            return await target.call(message, timeout=timeout)
        if target is None:
            await anyio.lowlevel.checkpoint()
            raise ActorStopped(self.name)
        backend = self._node._backend
        fut = backend.new_future()
        self._hold(target, (_CALL, _envelope.wrap(message), fut))
        result = await wait_for(backend, fut, timeout)
        if result is TIMED_OUT:
            raise CallTimeout(self.name, timeout or 0.0)
        return result

    async def cast(self, message: Any) -> None:
        """Cast to the current incarnation; never raises for a missing actor."""
        target = self._target()
        if isinstance(target, ActorRef):
            await target.cast(message)
        else:
            self._offer(target, (_CAST, _envelope.wrap(message)))

    def cast_nowait(self, message: Any) -> None:
        """Cast without waiting for mailbox room."""
        target = self._target()
        if isinstance(target, ActorRef):
            target.cast_nowait(message)
        else:
            self._offer(target, (_CAST, _envelope.wrap(message)))

    async def send(self, message: Any) -> None:
        """Send an info to the current incarnation."""
        target = self._target()
        if isinstance(target, ActorRef):
            await target.send(message)
        else:
            self._offer(target, (_INFO, _envelope.wrap(message)))

    def send_nowait(self, message: Any) -> None:
        """Send an info without waiting for mailbox room."""
        target = self._target()
        if isinstance(target, ActorRef):
            target.send_nowait(message)
        else:
            self._offer(target, (_INFO, _envelope.wrap(message)))

    def _offer(self, target: _Hold | None, item: tuple[Any, ...]) -> None:
        if target is None:
            _undeliverable(self._node, self.name, item, "noproc")
        else:
            self._hold(target, item)

    def stash_statistics(self) -> tuple[int, int]:
        """Return ``(waiting, dropped)`` for the restart stash, ``(0, 0)`` if none."""
        target = self._node._registry.get(self.name)
        if isinstance(target, _Hold):
            return len(target.items), target.dropped
        return 0, 0


class open_node:
    """``async with open_node() as node:`` runs a node for the block.

    Leaving the block stops everything running on the node, the last started
    first: each actor started outside an actor (with ``spawn`` or
    ``start_supervisor``) is asked to stop with ``shutdown`` and its ``terminate``
    runs, within its shutdown time (5 s for a worker, as long as it takes for a
    supervisor, which stops its own children first). Actors spawned by actors are
    left to them. Then whatever still runs is cancelled. So resources that a
    ``terminate`` releases (a store's thread, a socket) never outlive the block.
    An otpy error raised in the block leaves it as it is, not wrapped in an exception
    group.
    """

    def __init__(self, *, dead_letters: DeadLetterStream | None = None) -> None:
        self._dead_letters = dead_letters
        self._node: Node | None = None
        self._token: contextvars.Token[Node | None] | None = None

    async def __aenter__(self) -> Node:
        node = Node(dead_letters=self._dead_letters)
        self._node = node
        self._token = _current_node.set(node)
        node._task_group = anyio.create_task_group()
        await node._task_group.__aenter__()
        return node

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        node = self._node
        assert node is not None
        assert self._token is not None
        try:
            with anyio.CancelScope(shield=exc_type is not None):
                await node._stop_all()
        finally:
            with anyio.CancelScope(shield=True):
                await node._kill_all()
            # Whatever is still running (plain spawned actors, timers) is cancelled.
            node._task_group.cancel_scope.cancel("otpy: node stopping")
            try:
                suppressed = await node._task_group.__aexit__(exc_type, exc, tb)
            except BaseExceptionGroup as group:
                if exc is None or single_error(group) is not exc:
                    raise
                # The block's own otpy error, alone: it propagates as it was raised,
                # so `except otpy.DeadLetterError` (say) around the block catches it.
                suppressed = False
            finally:
                node.dead_letters.close()
                node.receptionist.close()
                _current_node.reset(self._token)
        return suppressed


async def spawn(
    actor_class: type[Actor],
    *args: Any,
    name: str | None = None,
    mailbox: MailboxConfig | None = None,
    start_timeout: float | None = None,
    link: ActorRef | None = None,
) -> ActorRef:
    """Spawn on the current node; see :meth:`Node.spawn`."""
    return await current_node().spawn(
        actor_class, *args, name=name, mailbox=mailbox, start_timeout=start_timeout, link=link
    )


def whereis(name: str) -> ActorRef | None:
    """Return the live actor registered as *name* on the current node, or ``None``."""
    return current_node().whereis(name)


def named(name: str) -> NamedRef:
    """Return a :class:`NamedRef` for *name* on the current node."""
    return current_node().named(name)
