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
from typing import TYPE_CHECKING, Any, final

import anyio

from .._check import check_seconds, check_type, short
from .._exceptions import (
    AlreadyStarted,
    InvalidArgument,
    InvalidArgumentType,
    NodeError,
    SpawnError,
    single_error,
)
from ._actor import IGNORE, Actor
from ._deadletters import DeadLetterStream
from ._lowlevel import current_backend
from ._mailbox import DEFAULT_MAILBOX, MailboxConfig
from ._named import Hold, NamedRef, undeliverable
from ._process import run, run_asyncio
from ._reasons import KILLED, SHUTDOWN
from ._receptionist import Receptionist
from ._ref import ActorRef

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    from anyio.abc import TaskGroup


__all__ = [
    "Node",
    "current_node",
    "current_node_or_none",
    "named",
    "node_clock",
    "open_node",
    "spawn",
    "spawn_child",
    "whereis",
]

_current_node: contextvars.ContextVar[Node | None] = contextvars.ContextVar(
    "otpy_current_node", default=None
)


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


def current_node_or_none() -> Node | None:
    """Return the node running the current task, or ``None`` where none runs.

    :func:`current_node` raises instead. ``open_supervisor`` uses this to open a
    node of its own only when there is none.
    """
    return _current_node.get()


def node_clock(node: Node) -> Callable[[], float]:
    """Return *node*'s clock: what ``anyio.current_time()`` reads, without its backend lookup.

    On asyncio it is the loop's ``time``. The dead-letter writer takes it once per
    capture for its deadline arithmetic.
    """
    return node._backend.clock


async def spawn_child(
    node: Node,
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
    """Spawn on *node* for a supervisor; return ``None`` if ``init`` returned ``IGNORE``.

    What :meth:`Node.spawn` does (it calls this), plus what supervisors need: a
    child that ignores its start is not an error, and the options below. Used by
    ``otpy._supervision`` to start children and supervisors themselves.

    Args:
        node: the node to run it on.
        actor_class: the :class:`~otpy.Actor` subclass.
        args: passed to its ``init``.
        name: register it under this name.
        mailbox: overrides the class's ``mailbox`` setting.
        start_timeout: kill it and fail if ``init`` takes longer.
        link: link it to this actor before ``init`` runs (see :meth:`Node.spawn`).
        restarts: how many restarts came before this incarnation (for statistics).
        hold_name: when it exits, keep its name for the next incarnation with a
            stash of this many messages (0: release the name).
        claim_name: take over a name held for a restart (else that is AlreadyStarted).
        label: what logs and statistics call it, if not its name.
        on_created: called with the new ref before its task runs (to link a parent).

    Raises:
        AlreadyStarted: *name* is taken.
        SpawnError: ``init`` raised, timed out or stopped.
    """
    config = mailbox or actor_class.mailbox or DEFAULT_MAILBOX
    actor = actor_class()
    ref = ActorRef(node, actor, next(node._ids), name, config, restarts, label)
    if name is not None:
        node._register(name, ref, claim_name)
    ref._hold_name = hold_name > 0
    if hold_name:
        ref._hold_capacity = hold_name
    if link is not None:
        ref._link(link)
        ref._start_link = link
    if on_created is not None:
        on_created(ref)
    started = node._backend.new_future()
    ref._started = started
    node._procs[ref] = None
    node._spawned += 1
    loop = node._backend.loop
    if loop is not None:
        loop.create_task(run_asyncio(ref, args, start_timeout))
    else:
        node._task_group.start_soon(run, ref, args, start_timeout)
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


@final
class Node:
    """The runtime that actors run in. Make one with :func:`open_node`."""

    def __init__(self, *, dead_letters: DeadLetterStream | None = None) -> None:
        self.dead_letters = dead_letters or DeadLetterStream()
        self.receptionist = Receptionist()
        """Service discovery by key (ACT-16)."""
        self._registry: dict[str, ActorRef | Hold] = {}
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
        """Start an actor and return once its ``init`` has finished (ACT-6).

        Args:
            actor_class: the :class:`~otpy.Actor` subclass.
            *args: passed to its ``init``.
            name: a unique name to register it under (ACT-11).
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
        ref = await spawn_child(
            self,
            actor_class,
            args,
            name=name,
            mailbox=mailbox,
            start_timeout=start_timeout,
            link=link,
        )
        if ref is None:
            raise SpawnError(
                actor_class.__name__,
                "ignore",
                f"actor {name or actor_class.__name__!r} ignored its start (init returned IGNORE)",
            )
        return ref

    # -- names ------------------------------------------------------------------------

    def _register(self, name: str, ref: ActorRef, claim: bool) -> None:
        existing = self._registry.get(name)
        if isinstance(existing, ActorRef) and existing._exit_reason is None:
            raise AlreadyStarted(name, existing)
        if isinstance(existing, Hold):
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
                self._registry[name] = Hold(ref._hold_capacity)
            else:
                del self._registry[name]

    def release_name(self, name: str) -> None:
        """Drop a restart hold on *name*; messages waiting in it become dead letters.

        Supervisors call this when a named child will not be restarted.
        """
        hold = self._registry.get(name)
        if isinstance(hold, Hold):
            del self._registry[name]
            for item in hold.items:
                undeliverable(self, name, item, "noproc")

    def whereis(self, name: str) -> ActorRef | None:
        """Return the live actor registered as *name*, or ``None`` (ACT-11)."""
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
