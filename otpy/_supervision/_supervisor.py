"""Supervisors: actors that start, watch, restart and stop other actors.

A supervisor is an :class:`~otpy.Actor` that traps exits and links to each child
before the child's ``init`` runs, as OTP's does: a child's exit arrives as an
``Exit`` in its mailbox and is handled in order with API requests (``start_child``
and friends), and when the supervisor dies by any means, even a kill, its children
die with it. Introspection (``which_children``,
``count_children``, ``statistics``) reads the supervisor's tables directly, so it
answers even while the supervisor is busy waiting for a slow child to stop.
"""

from __future__ import annotations

import functools
import logging
import random
from typing import TYPE_CHECKING, Any, final

import anyio
import attrs

from .. import telemetry
from .._core import (
    KILLED,
    SHUTDOWN,
    Actor,
    ActorRef,
    ActorStatistics,
    Caller,
    Exit,
    MailboxConfig,
    ShutdownWith,
    actor_of,
    add_exit_hook,
    adopt_child,
    deliver_system_info,
    is_normal_exit,
    post_stop,
    spawn_child,
    state_of,
)
from .._exceptions import (
    ChildError,
    FailedToStartChild,
    MaxChildren,
    OtpyError,
    RestartIntensityExceeded,
    SpawnError,
    SupervisionError,
)
from .._redact import get_logger
from ._spec import (
    AutoShutdown,
    ChildSpec,
    ChildType,
    DynamicSupervisorSpec,
    Restart,
    Shutdown,
    Strategy,
    SupervisorFlags,
    SupervisorSpec,
    as_child_spec,
    backoff_delay,
    check_child,
)
from ._window import RestartWindow, record_restart

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .._core import Node

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildStatistics",
    "DynamicSupervisor",
    "Supervisor",
    "SupervisorRef",
    "SupervisorStatistics",
]

logger = get_logger("otpy.supervisor")

_SUPERVISOR_MAILBOX = MailboxConfig(capacity=10_000)

# Child states, as the console shows them.
RUNNING = "running"
RESTARTING = "restarting"
BACKING_OFF = "backing_off"
STOPPED = "stopped"


# -- snapshots ---------------------------------------------------------------------


@attrs.frozen
class ChildInfo:
    """One row of ``which_children()`` (S11).

    Attributes:
        id: the child id (``None`` for dynamic children).
        ref: the running incarnation, or ``None`` if it is not running.
        state: ``"running"``, ``"restarting"``, ``"backing_off"`` or ``"stopped"``.
        type: worker or supervisor.
    """

    id: str | None
    ref: ActorRef | None
    state: str
    type: ChildType


@attrs.frozen
class ChildCounts:
    """What ``count_children()`` returns (S11).

    Attributes:
        specs: children known to the supervisor, running or not.
        active: children running now.
        supervisors: children of type supervisor, running or not.
        workers: children of type worker, running or not.
    """

    specs: int
    active: int
    supervisors: int
    workers: int


@attrs.frozen
class ChildStatistics:
    """A child as the console sees it.

    Attributes:
        id: the child id, or the actor label for dynamic children.
        state: see :class:`ChildInfo`.
        type: worker or supervisor.
        restart: its restart type.
        restarts: how often this child was restarted.
        last_exit_reason: a short description of its last exit, if any.
        actor: the running incarnation's statistics, if running.
        supervisor: for a running child supervisor, its own statistics.
    """

    id: str
    state: str
    type: ChildType
    restart: Restart
    restarts: int
    last_exit_reason: str | None
    actor: ActorStatistics | None
    supervisor: SupervisorStatistics | None = None


@attrs.frozen
class SupervisorStatistics:
    """A supervisor and its children, a frozen snapshot for the console.

    Attributes:
        label: the supervisor's name or label.
        strategy: its strategy name (``"dynamic"`` for dynamic supervisors).
        intensity: restarts allowed per period.
        period: the window, seconds.
        restarts_in_window: restarts inside the window now.
        total_restarts: restarts since it started.
        state: the supervisor actor's state.
        actor: the supervisor actor's own statistics.
        children: its children in start order.
    """

    label: str
    strategy: str
    intensity: int
    period: float
    restarts_in_window: int
    total_restarts: int
    state: str
    actor: ActorStatistics
    children: tuple[ChildStatistics, ...]


# -- requests through the supervisor's mailbox -------------------------------------


@final
class _StartChild:
    """A start_child request. The handler takes the spec out: a supervisor's last
    handled message must not keep a temporary child's arguments alive."""

    __slots__ = ("spec",)

    def __init__(self, spec: ChildSpec) -> None:
        self.spec: ChildSpec | None = spec

    def take(self) -> ChildSpec:
        spec = self.spec
        assert spec is not None
        self.spec = None
        return spec


@final
class _StartDynamic:
    """A start_dynamic_child request; the handler takes the arguments out."""

    __slots__ = ("args",)

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.args = args

    def take(self) -> tuple[Any, ...]:
        args = self.args
        self.args = ()
        return args


@attrs.frozen
class _ById:
    op: str
    child: Any


@final
class _Retry:
    """A pending restart of *child*: what a failed or delayed restart posts to itself.

    It is stale, and ignored, unless it is still ``child.retry``: stopping the child,
    or starting it some other way, cancels it.
    """

    __slots__ = ("child", "counts")

    def __init__(self, child: _Child, counts: bool) -> None:
        self.child = child
        self.counts = counts


@attrs.frozen
class _Failed:
    error: OtpyError


class _Child:
    """The supervisor's record of one child."""

    __slots__ = (
        "args",
        "attempt",
        "key",
        "last_reason",
        "last_ref",
        "name",
        "ref",
        "restarts",
        "retry",
        "spec",
        "started_at",
        "state",
    )

    def __init__(
        self, spec: ChildSpec, key: int, args: tuple[Any, ...] | None = None, name: str = ""
    ) -> None:
        self.spec = spec
        self.key = key
        self.args = spec.args if args is None else args
        self.name = name or spec.id
        """How reports name it: the spec id, or ``id#n`` for a dynamic child."""
        self.ref: ActorRef | None = None
        self.last_ref: ActorRef | None = None  # a dynamic child's exited incarnation
        self.retry: _Retry | None = None
        self.state = STOPPED
        self.restarts = 0
        self.attempt = 0
        self.started_at = 0.0
        self.last_reason: object = None

    @property
    def label(self) -> str:
        return self.name if self.ref is None else self.ref.label


def _short(reason: object) -> str:
    return telemetry.describe_reason(reason)[1]


def _offender(child: _Child) -> dict[str, object]:
    """OTP's offender: what the report says about the child involved."""
    spec = child.spec
    return {
        "id": child.name,
        "ref": repr(child.ref) if child.ref is not None else None,
        "start": spec.start.__name__,
        "restart": spec.restart.value,
        "significant": spec.significant,
        "shutdown": spec.shutdown.value if isinstance(spec.shutdown, Shutdown) else spec.shutdown,
        "type": spec.type.value,
    }


class _SupervisorBase(Actor):
    """What static and dynamic supervisors share: starting, stopping, reporting."""

    mailbox = _SUPERVISOR_MAILBOX
    trap_exit = True
    _otpy_shutdown = None  # a node leaving waits for the whole tree to stop
    _window: RestartWindow
    _children: list[_Child]
    _by_ref: dict[ActorRef, _Child]
    _listeners: list[Any] | None = None
    _strategy_name: str
    _keys: int

    # -- starting and stopping one child -------------------------------------------

    async def _start(self, child: _Child, args: tuple[Any, ...] | None = None) -> ActorRef | None:
        """Start *child* with *args*, or the arguments its record keeps.

        A temporary child is never restarted, so its record keeps no arguments (as
        OTP's does not): its caller passes them here once.
        """
        spec = child.spec
        hold = spec.stash_capacity if spec.name and spec.restart is not Restart.TEMPORARY else 0
        ref = await spawn_child(
            self.node,
            spec.start,
            child.args if args is None else args,
            label=self._child_label(child),
            name=spec.name,
            mailbox=spec.mailbox,
            start_timeout=spec.start_timeout,
            restarts=child.restarts,
            hold_name=hold,
            claim_name=True,
            on_created=self._adopt,
        )
        child.retry = None
        if ref is None:
            child.state = STOPPED
            if spec.name:
                self.node.release_name(spec.name)
            return None
        child.ref = ref
        child.last_ref = None
        child.state = RUNNING
        child.started_at = anyio.current_time()
        self._by_ref[ref] = child
        logger.debug("supervisor %s started child %s as %r", self.ref.label, spec.id, ref)
        if self._listeners:
            for listener in list(self._listeners):
                listener(child.spec.id, ref)
        return ref

    def _adopt(self, created: ActorRef) -> None:
        """Link to a new child before its task runs, as its parent (OTP's start_link).

        An exit right after ``init`` then reaches us with its real reason, and our own
        death, a kill included, takes the child with it.
        """
        adopt_child(self.ref, created)

    def _child_label(self, child: _Child) -> str | None:
        return child.spec.name or child.spec.id

    async def _stop_child(self, child: _Child, *, release: bool) -> None:
        """Stop *child* per its shutdown setting (S9); the supervisor expects the exit.

        A restart pending for it is cancelled. Its ``Exit`` still arrives, and is
        ignored: the child is no longer in ``_by_ref``.
        """
        ref = child.ref
        child.retry = None
        if ref is not None:
            self._by_ref.pop(ref, None)
        if ref is not None and ref.is_alive:
            shutdown = child.spec.shutdown
            expected: tuple[object, ...]
            if shutdown is Shutdown.BRUTAL_KILL:
                expected = (KILLED,)
                ref.kill(KILLED)
                reason = await ref.wait_exited()
            else:
                expected = (SHUTDOWN,)
                post_stop(ref, SHUTDOWN)
                try:
                    reason = await ref.wait_exited(
                        timeout=None if shutdown is Shutdown.INFINITY else float(shutdown)
                    )
                except TimeoutError:
                    ref.kill(KILLED)
                    reason = await ref.wait_exited()
            acceptable = reason in expected or (
                child.spec.restart is not Restart.PERMANENT and is_normal_exit(reason)
            )
            if not acceptable:
                self._report("shutdown_error", child, reason)
            child.last_reason = reason
        child.ref = None
        child.state = STOPPED
        if release and child.spec.name:
            self.node.release_name(child.spec.name)

    # -- restarts -------------------------------------------------------------------

    def _report(
        self,
        context: str,
        child: _Child | None,
        reason: object,
        *,
        message: str | None = None,
        **extra: object,
    ) -> None:
        """Log a structured supervisor report (S15): supervisor, context, reason, offender."""
        if not logger.isEnabledFor(logging.ERROR):
            return
        report: dict[str, object] = {
            "supervisor": self.ref.label,
            "context": context,
            "reason": reason if isinstance(reason, str) else _short(reason),
            "offender": _offender(child) if child is not None else None,
            **extra,
        }
        logger.error(
            "supervisor %s: %s",
            self.ref.label,
            message or f"{context} of {child.name if child else '-'}: {report['reason']}",
            extra={"otpy_report": report},
        )

    def _allow_restart(self, child: _Child, reason: object) -> bool:
        """Count a restart; give up (and return False) if intensity is exceeded (S5)."""
        now = anyio.current_time()
        if record_restart(self._window, now):
            return True
        window = self._window
        error = RestartIntensityExceeded(
            self.ref.label, len(window.times), window.period, child.spec.id, window.intensity
        )
        self._report(
            "shutdown",
            child,
            "reached_max_restart_intensity",
            message=f"gave up: {error}",
            last_exit=_short(reason),
        )
        telemetry.record_escalation(
            supervisor=self.ref.label,
            offender=child.spec.id,
            reason=reason,
            restarts=len(window.times),
            intensity=window.intensity,
            period=window.period,
        )
        self.stop(ShutdownWith(error))
        return False

    def _restart_delay(self, child: _Child) -> float:
        backoff = child.spec.backoff
        if backoff is None:
            return 0.0
        now = anyio.current_time()
        if now >= child.started_at + backoff.quiet_period:
            child.attempt = 0
        delay = backoff_delay(backoff, child.attempt, random.random())
        child.attempt += 1
        return delay

    def _note_restart(self, child: _Child, reason: object, delay: float) -> None:
        telemetry.record_restart(
            supervisor=self.ref.label,
            child_id=child.spec.id,
            reason=reason,
            strategy=self._strategy_name,
            restarts_in_window=len(self._window.times),
            intensity=self._window.intensity,
            period=self._window.period,
            delay=delay,
        )
        if logger.isEnabledFor(logging.INFO):
            window = self._window
            logger.info(
                "supervisor %s: restarting %s (%d/%d restarts in %gs%s)",
                self.ref.label,
                child.spec.id,
                len(window.times),
                window.intensity,
                window.period,
                f", after {delay:.3g}s backoff" if delay else "",
                extra={
                    "otpy_report": {
                        "supervisor": self.ref.label,
                        "context": "restart",
                        "reason": _short(reason),
                        "offender": _offender(child),
                        "restarts_in_window": len(window.times),
                        "delay": delay,
                    }
                },
            )

    def _schedule_retry(self, child: _Child, delay: float, *, counts: bool) -> None:
        """Restart *child* later, through the mailbox, so other requests get in between (S7)."""
        retry = _Retry(child, counts)
        child.retry = retry
        if delay > 0:
            child.state = BACKING_OFF
            self.send_after(delay, retry)
        else:
            child.state = RESTARTING
            deliver_system_info(self.ref, retry)

    async def _stop_group(self, child: _Child) -> list[_Child]:
        """Stop what restarts with *child*; return it, in start order (just *child* here)."""
        await anyio.lowlevel.checkpoint()
        return [child]

    def _ignored(self, child: _Child) -> None:
        """*child*'s restart returned IGNORE: a static supervisor keeps its spec."""

    async def _start_group(self, child: _Child, group: Sequence[_Child]) -> None:
        """Start *group* in order for the restart of *child*; retry a failure later (S7).

        As in OTP, the child that failed to start is ``restarting`` and the ones after
        it stay stopped until the retry, which the failed child now owns.
        """
        for member in group:
            member.state = RESTARTING
            try:
                ref = await self._start(member)
            except SpawnError as exc:
                self._report("start_error", member, exc.reason)
                telemetry.record_start_error(
                    supervisor=self.ref.label, child_id=member.spec.id, reason=exc.reason
                )
                for later in group[group.index(member) + 1 :]:
                    later.state = STOPPED
                self._schedule_retry(member, self._restart_delay(member), counts=True)
                return
            if ref is None:
                self._ignored(member)

    async def _retry(self, message: _Retry) -> None:
        child = message.child
        if child.retry is not message or child not in self._children:
            return  # cancelled: stopped, deleted, or started some other way meanwhile
        child.retry = None
        if message.counts and not self._allow_restart(child, child.last_reason):
            return
        group = await self._stop_group(child)
        await self._start_group(child, group)

    # -- common callbacks -----------------------------------------------------------

    async def handle_info(self, message: Any) -> None:
        """Handle child exits and restart retries.

        The exit of a linked actor that is not a current child (one already stopped,
        or one that failed to start) is ignored, as OTP's supervisor does.
        """
        if type(message) is Exit:
            child = self._by_ref.pop(message.actor, None)
            if child is not None:
                child.ref = None
                child.last_ref = message.actor
                child.last_reason = message.reason
                if isinstance(actor_of(message.actor), _SupervisorBase):
                    await _wait_tree_exited(message.actor)
                await self._child_exited(child, message.reason)
        elif type(message) is _Retry:
            await self._retry(message)
        else:
            await super().handle_info(message)

    async def _child_exited(self, child: _Child, reason: object) -> None:
        raise NotImplementedError

    def _child_stats(self, child: _Child) -> ChildStatistics:
        ref = child.ref
        nested = None
        if (
            ref is not None
            and isinstance(sup := actor_of(ref), _SupervisorBase)
            and state_of(ref) != "starting"
        ):
            nested = sup.statistics()
        return ChildStatistics(
            id=child.spec.id if not isinstance(self, DynamicSupervisor) else child.label,
            state=child.state,
            type=child.spec.type,
            restart=child.spec.restart,
            restarts=child.restarts,
            last_exit_reason=_short(child.last_reason) if child.last_reason is not None else None,
            actor=ref.statistics() if ref is not None else None,
            supervisor=nested,
        )

    def statistics(self) -> SupervisorStatistics:
        """Return a snapshot of this supervisor and its children (read directly)."""
        window = self._window
        return SupervisorStatistics(
            label=self.ref.label,
            strategy=self._strategy_name,
            intensity=window.intensity,
            period=window.period,
            restarts_in_window=window.count(anyio.current_time()),
            total_restarts=window.total,
            state=state_of(self.ref),
            actor=self.ref.statistics(),
            children=tuple(self._child_stats(c) for c in self._children),
        )

    def which_children(self) -> list[ChildInfo]:
        """Return every child in start order with its ref or state (S11)."""
        return [
            ChildInfo(
                id=None if isinstance(self, DynamicSupervisor) else c.spec.id,
                ref=c.ref,
                state=c.state,
                type=c.spec.type,
            )
            for c in self._children
        ]

    def count_children(self) -> ChildCounts:
        """Return the counts OTP's ``count_children`` gives (S11): one spec per child."""
        children = self._children
        sups = sum(1 for c in children if c.spec.type is ChildType.SUPERVISOR)
        return ChildCounts(
            specs=len(children),
            active=sum(1 for c in children if c.ref is not None and c.ref.is_alive),
            supervisors=sups,
            workers=len(children) - sups,
        )


@final
class Supervisor(_SupervisorBase):
    """A static supervisor running a :class:`SupervisorSpec` (S1-S9, S11-S13, S15).

    Start one with :func:`open_supervisor`, :func:`start_supervisor`, or as a child
    of another supervisor; talk to it through :class:`SupervisorRef`.
    """

    async def init(self, spec: SupervisorSpec) -> None:
        """Start the children in spec order; roll back and fail on the first failure (S8).

        As OTP's does, a supervisor whose child fails to start stops the ones it
        started, in reverse, and exits with ``ShutdownWith(FailedToStartChild(...))``.
        """
        self.spec = spec
        self.flags: SupervisorFlags = spec.flags
        self._strategy_name = spec.flags.strategy.value
        self._window = RestartWindow(spec.flags.intensity, spec.flags.period)
        self._keys = 0
        self._children = []
        self._by_ref = {}
        for child_spec in spec.children:
            child = self._new_child(child_spec)
            self._children.append(child)
            try:
                ref = await self._start(child)
            except SpawnError as exc:
                self._children.remove(child)
                self._report("start_error", child, exc.reason)
                telemetry.record_start_error(
                    supervisor=self.ref.label, child_id=child_spec.id, reason=exc.reason
                )
                for started in reversed(self._children):
                    await self._stop_child(started, release=True)
                error = FailedToStartChild(self.ref.label, child_spec.id, exc.reason)
                error.__cause__ = exc
                self.stop(ShutdownWith(error))
                return
            if ref is None and child_spec.restart is Restart.TEMPORARY:
                self._children.remove(child)

    def _new_child(self, spec: ChildSpec) -> _Child:
        self._keys += 1
        return _Child(spec, self._keys)

    async def terminate(self, reason: object) -> None:
        """Stop every child in reverse start order, each per its shutdown setting (S9)."""
        for child in reversed(self._children):
            await self._stop_child(child, release=True)

    async def _child_exited(self, child: _Child, reason: object) -> None:
        child.last_ref = None  # only dynamic children are addressed by a past incarnation
        spec = child.spec
        normal = is_normal_exit(reason)
        if spec.restart is Restart.TEMPORARY:
            child.state = STOPPED
            if not normal:
                self._report("child_terminated", child, reason)
            self._children.remove(child)
            self._check_auto_shutdown(child)
            return
        if spec.restart is Restart.TRANSIENT and normal:
            child.state = STOPPED
            if spec.name:
                self.node.release_name(spec.name)
            self._check_auto_shutdown(child)
            return
        child.state = RESTARTING
        self._report("child_terminated", child, reason)
        if not self._allow_restart(child, reason):
            return
        await self._restart(child, reason)

    def _check_auto_shutdown(self, child: _Child) -> None:
        """Stop the supervisor when significant children finished by themselves (S13)."""
        if not child.spec.significant:
            return
        mode = self.flags.auto_shutdown
        if mode is AutoShutdown.ANY_SIGNIFICANT or (
            mode is AutoShutdown.ALL_SIGNIFICANT
            and not any(c.spec.significant and c.ref is not None for c in self._children)
        ):
            self.stop(SHUTDOWN)

    def _group(self, child: _Child) -> list[_Child]:
        """*child* and the siblings its strategy restarts with it, in start order (S1-S3)."""
        strategy = self.flags.strategy
        if strategy is Strategy.ONE_FOR_ONE:
            return [child]
        children = self._children
        return children[0 if strategy is Strategy.ONE_FOR_ALL else children.index(child) :]

    async def _stop_group(self, child: _Child) -> list[_Child]:
        """Stop the running siblings that restart with *child*, in reverse start order.

        Temporary siblings stopped this way are not restarted, and are forgotten (OTP).
        Return the group to start again, in start order.
        """
        group = self._group(child)
        for other in reversed(group):
            if other is not child and other.ref is not None:
                await self._stop_child(other, release=other.spec.restart is Restart.TEMPORARY)
        keep = [c for c in group if c is child or c.spec.restart is not Restart.TEMPORARY]
        for c in group:
            if c not in keep:
                self._children.remove(c)
        return keep

    async def _restart(self, child: _Child, reason: object) -> None:
        group = await self._stop_group(child)
        delay = self._restart_delay(child)
        self._note_restart(child, reason, delay)
        for c in group:
            c.restarts += 1
        if delay > 0:
            self._schedule_retry(child, delay, counts=False)
            return
        await self._start_group(child, group)

    async def handle_call(self, message: Any, caller: Caller) -> Any:
        """Serve the child-management API (S11); errors come back as values."""
        try:
            if type(message) is _StartChild:
                return await self._api_start_child(message.take())
            if type(message) is _ById:
                return await self._api_by_id(message.op, message.child)
        except OtpyError as exc:
            return _Failed(exc)
        return await super().handle_call(message, caller)

    async def _api_start_child(self, spec: ChildSpec) -> ActorRef | None:
        check_child(spec, self.flags.auto_shutdown)  # the checks a SupervisorSpec makes
        for child in self._children:
            if child.spec.id == spec.id:
                raise ChildError(
                    spec.id, "already_started" if child.ref is not None else "already_present"
                )
        args = None
        if spec.restart is Restart.TEMPORARY and spec.args:
            args = spec.args
            spec = attrs.evolve(spec, args=())  # never restarted: keep none of its arguments
        child = self._new_child(spec)
        self._children.append(child)
        try:
            ref = await self._start(child, args)
        except SpawnError:
            self._children.remove(child)
            raise
        if ref is None and spec.restart is Restart.TEMPORARY:
            self._children.remove(child)
        return ref

    async def _api_by_id(self, op: str, child_id: str) -> ActorRef | None:
        child = next((c for c in self._children if c.spec.id == child_id), None)
        if child is None:
            raise ChildError(child_id, "not_found")
        if op == "terminate":
            pending = child.state in (RESTARTING, BACKING_OFF)
            await self._stop_child(child, release=True)
            if pending:
                # The restart is cancelled: nothing that was to start with it starts.
                for other in self._group(child):
                    if other.state == STOPPED and other.spec.name:
                        self.node.release_name(other.spec.name)
            if child.spec.restart is Restart.TEMPORARY:
                self._children.remove(child)
            return None
        if child.state in (RESTARTING, BACKING_OFF):
            raise ChildError(child_id, "restarting")
        if child.ref is not None:
            raise ChildError(child_id, "running")
        if op == "restart":
            return await self._start(child)
        self._children.remove(child)  # delete
        if child.spec.name:
            self.node.release_name(child.spec.name)  # a sibling's restart may have held it
        return None


@final
class DynamicSupervisor(_SupervisorBase):
    """Children added at run time from one template (S10).

    Children are addressed by ref; at shutdown they are stopped concurrently.
    """

    async def init(self, spec: DynamicSupervisorSpec) -> None:
        """Start empty."""
        self.spec = spec
        self._strategy_name = "dynamic"
        self._window = RestartWindow(spec.intensity, spec.period)
        self._children = []
        self._by_ref = {}
        self._keys = 0

    async def terminate(self, reason: object) -> None:
        """Stop every child concurrently, each per its shutdown setting."""
        async with anyio.create_task_group() as tg:
            for child in self._children:
                tg.start_soon(functools.partial(self._stop_child, child, release=False))

    async def handle_call(self, message: Any, caller: Caller) -> Any:
        """Serve ``start_child`` and ``terminate_child``; errors come back as values."""
        try:
            if type(message) is _StartDynamic:
                return await self._api_start(message.take())
            if type(message) is _ById:
                if message.op != "terminate" or not isinstance(message.child, ActorRef):
                    raise ChildError(message.child, "simple_one_for_one")
                await self._api_terminate(message.child)
                return None
        except OtpyError as exc:
            return _Failed(exc)
        return await super().handle_call(message, caller)

    async def _api_terminate(self, target: ActorRef) -> None:
        """Stop the child *target* is (or, while it restarts, was) an incarnation of.

        As OTP's ``simple_one_for_one`` does, a ref that has already exited and is no
        child any more is fine: the call is safe when the child just died.
        """
        child = self._by_ref.get(target)
        if child is None:
            child = next(
                (c for c in self._children if c.ref is None and c.last_ref is target), None
            )
        if child is None:
            if target.is_alive:
                raise ChildError(target, "not_found")
            await anyio.lowlevel.checkpoint()
            return
        await self._stop_child(child, release=False)
        self._children.remove(child)

    async def _api_start(self, extra: tuple[Any, ...]) -> ActorRef | None:
        limit = self.spec.max_children
        if limit is not None and len(self._children) >= limit:
            raise MaxChildren(self.ref.label, limit)
        self._keys += 1
        template = self.spec.child
        args = template.args + extra
        temporary = template.restart is Restart.TEMPORARY
        # A temporary child is never restarted: its record keeps none of its arguments.
        child = _Child(
            template, self._keys, () if temporary else args, name=f"{template.id}#{self._keys}"
        )
        self._children.append(child)
        try:
            ref = await self._start(child, args)
        except SpawnError:
            self._children.remove(child)
            raise
        if ref is None:
            self._children.remove(child)
        return ref

    def _child_label(self, child: _Child) -> str | None:
        return child.name

    def _ignored(self, child: _Child) -> None:
        """A dynamic child whose restart returned IGNORE is forgotten (OTP)."""
        self._children.remove(child)

    def count_children(self) -> ChildCounts:
        """Return OTP's ``simple_one_for_one`` counts: one spec, the template (S11)."""
        children = self._children
        total = len(children)
        sup = self.spec.child.type is ChildType.SUPERVISOR
        return ChildCounts(
            specs=1,
            active=sum(1 for c in children if c.ref is not None and c.ref.is_alive),
            supervisors=total if sup else 0,
            workers=0 if sup else total,
        )

    async def _child_exited(self, child: _Child, reason: object) -> None:
        restart = child.spec.restart
        normal = is_normal_exit(reason)
        if restart is Restart.TEMPORARY or (restart is Restart.TRANSIENT and normal):
            if not normal:
                self._report("child_terminated", child, reason)
            self._children.remove(child)
            return
        self._report("child_terminated", child, reason)
        if not self._allow_restart(child, reason):
            return
        delay = self._restart_delay(child)
        self._note_restart(child, reason, delay)
        child.restarts += 1
        if delay > 0:
            self._schedule_retry(child, delay, counts=False)
        else:
            child.state = RESTARTING
            await self._start_group(child, [child])


# -- the handle users hold ---------------------------------------------------------


@final
class SupervisorRef:
    """A handle on a running supervisor: the child API and introspection (S11)."""

    __slots__ = ("ref",)

    def __init__(self, ref: ActorRef) -> None:
        if not isinstance(actor_of(ref), _SupervisorBase):
            raise TypeError(f"{ref!r} is not a supervisor")
        self.ref = ref

    def __repr__(self) -> str:
        return f"<SupervisorRef {self.ref.label}>"

    @property
    def _sup(self) -> _SupervisorBase:
        return actor_of(self.ref)  # type: ignore[return-value]

    async def _request(self, message: object) -> Any:
        result = await self.ref.call(message, timeout=None)
        if isinstance(result, _Failed):
            raise _start_failure(result.error)
        return result

    async def start_child(
        self, spec: ChildSpec | SupervisorSpec | DynamicSupervisorSpec
    ) -> ActorRef | None:
        """Add and start a child; return its ref, or ``None`` if its init ignored the start.

        The spec gets the checks a :class:`SupervisorSpec` makes of its children.

        Args:
            spec: the child, or a nested supervisor's spec.

        Raises:
            InvalidChildSpec: *spec* is no spec, or is significant while the
                supervisor's ``auto_shutdown`` is ``NEVER``.
            ChildError: ``already_started`` / ``already_present`` for a duplicate id.
            SpawnError: the child failed to start (its spec is discarded).
        """
        if not isinstance(self._sup, Supervisor):
            raise TypeError("start_child(spec) is for static supervisors; use start_dynamic_child")
        return await self._request(_StartChild(as_child_spec(spec)))  # type: ignore[no-any-return]

    async def start_dynamic_child(self, *args: Any) -> ActorRef:
        """Start a child of a dynamic supervisor with the template's args plus *args* (S10).

        Raises:
            MaxChildren: the supervisor already runs ``max_children``.
            SpawnError: the child failed to start (or ignored its start).
        """
        if not isinstance(self._sup, DynamicSupervisor):
            raise TypeError("start_dynamic_child is for dynamic supervisors; use start_child")
        ref = await self._request(_StartDynamic(args))
        if ref is None:
            raise SpawnError(self._sup.spec.child.id, "ignore")
        return ref  # type: ignore[no-any-return]

    async def terminate_child(self, child: str | ActorRef) -> None:
        """Stop a child per its shutdown setting; static supervisors keep its spec (S11).

        A restart pending for the child is cancelled, with whatever was to start
        after it. A dynamic supervisor takes the child's ref; a ref that has already
        exited is fine, as in OTP, so the call is safe when the child just died.

        Args:
            child: the child id (static supervisors) or the child's ref (dynamic).

        Raises:
            ChildError: ``not_found``; ``simple_one_for_one`` when given an id for a
                dynamic supervisor.
        """
        await self._request(_ById("terminate", child))

    async def restart_child(self, child_id: str) -> ActorRef | None:
        """Start a stopped child again (S11).

        Raises:
            ChildError: ``running``, ``restarting`` or ``not_found``.
        """
        return await self._request(_ById("restart", child_id))  # type: ignore[no-any-return]

    async def delete_child(self, child_id: str) -> None:
        """Remove a stopped child's spec (S11).

        Raises:
            ChildError: ``running``, ``restarting`` or ``not_found``.
        """
        await self._request(_ById("delete", child_id))

    def which_children(self) -> list[ChildInfo]:
        """Return the children in start order (answers even while the supervisor is busy)."""
        return self._sup.which_children()

    def count_children(self) -> ChildCounts:
        """Return ``specs``, ``active``, ``supervisors`` and ``workers`` counts."""
        return self._sup.count_children()

    def statistics(self) -> SupervisorStatistics:
        """Return a frozen snapshot of the supervisor and its children."""
        return self._sup.statistics()

    async def wait_child(
        self, child_id: str, *, other_than: ActorRef | None = None, timeout: float | None = None
    ) -> ActorRef:
        """Wait until child *child_id* runs as an incarnation other than *other_than*.

        Use it to wait for a restart without sleeping: pass the ref that crashed.

        Raises:
            TimeoutError: no such incarnation within *timeout*.
        """
        if not isinstance(self._sup, Supervisor):
            raise TypeError(
                "wait_child() needs a child id; dynamic supervisors' children have none "
                "(monitor the child, or use which_children())"
            )
        current = self.child(child_id)
        if current is not None and current is not other_than:
            await anyio.lowlevel.checkpoint()
            return current
        event = anyio.Event()
        found: list[ActorRef] = []

        def listener(started_id: str, ref: ActorRef) -> None:
            if started_id == child_id and ref is not other_than:
                found.append(ref)
                event.set()

        sup = self._sup
        if sup._listeners is None:
            sup._listeners = []
        sup._listeners.append(listener)
        try:
            with anyio.fail_after(timeout):
                await event.wait()
        finally:
            sup._listeners.remove(listener)
        return found[0]

    def child(self, child_id: str) -> ActorRef | None:
        """Return the running incarnation of child *child_id*, or ``None``.

        Raises:
            TypeError: on a dynamic supervisor, whose children have no ids.
        """
        if not isinstance(self._sup, Supervisor):
            raise TypeError("child() needs a child id; dynamic supervisors' children have none")
        for info in self._sup.which_children():
            if info.id == child_id:
                return info.ref
        return None

    async def stop(self, reason: object = SHUTDOWN, *, timeout: float | None = None) -> object:
        """Stop the supervisor and, first, its children in reverse order."""
        return await self.ref.stop(reason, timeout=timeout)

    async def wait_exited(self) -> object:
        """Wait for the supervisor to exit; return its reason."""
        return await self.ref.wait_exited()


async def start_supervisor(
    spec: SupervisorSpec | DynamicSupervisorSpec, *, node: Node | None = None
) -> SupervisorRef:
    """Start a supervisor on the current node; return once all its children are up (S8).

    Raises:
        SpawnError: a child failed to start; the others were stopped again.
    """
    from .._core import current_node

    node = node or current_node()
    cls = Supervisor if isinstance(spec, SupervisorSpec) else DynamicSupervisor
    try:
        ref = await spawn_child(node, cls, (spec,), name=spec.name, label=spec.name or spec.id)
    except SpawnError as exc:
        failure = _start_failure(exc)
        if failure is exc:
            raise
        raise failure from failure.__cause__  # the child's error, not our wrapper
    if ref is None:  # pragma: no cover - supervisors never ignore their start
        raise SpawnError(spec.id, "ignore")
    return SupervisorRef(ref)


def _start_failure(error: OtpyError) -> OtpyError:
    """The error to raise for a failed start: a supervisor's own FailedToStartChild."""
    if isinstance(error, SpawnError):
        reason = error.reason
        if isinstance(reason, ShutdownWith) and isinstance(reason.detail, FailedToStartChild):
            return reason.detail
    return error


async def _wait_tree_exited(ref: ActorRef) -> None:
    """Wait until every descendant of the exited supervisor *ref* has exited too.

    A supervisor that was killed did not stop its children: they die of the link, each
    at its next checkpoint. Restarting it before they are gone would find their names
    still taken (``already_started``). After a graceful exit there is nothing to wait for.
    """
    sup = actor_of(ref)
    assert isinstance(sup, _SupervisorBase)
    for child in list(getattr(sup, "_children", ())):
        descendant = child.ref
        if descendant is not None:
            await descendant.wait_exited()
            if isinstance(actor_of(descendant), _SupervisorBase):
                await _wait_tree_exited(descendant)


def _gave_up(reason: object) -> BaseException | None:
    if isinstance(reason, ShutdownWith) and isinstance(reason.detail, RestartIntensityExceeded):
        return reason.detail
    if isinstance(reason, BaseException):
        return reason
    if not is_normal_exit(reason):
        return SupervisionError(f"root supervisor exited: {reason!r}")
    return None


class open_supervisor:
    """``async with open_supervisor(children, flags=...) as sup:`` runs a supervision tree.

    Opens a node too if none is running. If the supervisor gives up (S5) the block
    is cancelled and :class:`~otpy.RestartIntensityExceeded` is raised from it.
    Leaving the block stops the tree gracefully.
    """

    def __init__(
        self,
        children: SupervisorSpec
        | DynamicSupervisorSpec
        | Iterable[ChildSpec | SupervisorSpec | DynamicSupervisorSpec],
        *,
        flags: SupervisorFlags | None = None,
        name: str | None = None,
    ) -> None:
        if isinstance(children, (SupervisorSpec, DynamicSupervisorSpec)):
            if flags is not None:
                raise TypeError("pass flags inside the SupervisorSpec, not beside it")
            self._spec: SupervisorSpec | DynamicSupervisorSpec = children
        else:
            self._spec = SupervisorSpec(
                children=list(children),
                flags=flags or SupervisorFlags(),
                id=name or "root",
                name=name,
            )
        self._own_node: Any = None
        self._scope: anyio.CancelScope | None = None
        self._sup: SupervisorRef | None = None
        self._failure: BaseException | None = None

    async def __aenter__(self) -> SupervisorRef:
        from .._core import current_node_or_none, open_node

        node = current_node_or_none()
        if node is None:
            self._own_node = open_node()
            node = await self._own_node.__aenter__()
        try:
            sup = await start_supervisor(self._spec, node=node)
        except BaseException as exc:
            if self._own_node is not None:
                if isinstance(exc, Exception):
                    # The start failed and rolled back: close the node as if the block
                    # ended, so the caller gets the SpawnError itself, not a group.
                    await self._own_node.__aexit__(None, None, None)
                else:
                    await self._own_node.__aexit__(type(exc), exc, exc.__traceback__)
            raise
        node.add_root(sup.ref)
        self._sup = sup
        scope = anyio.CancelScope()
        self._scope = scope

        def on_exit(ref: ActorRef, reason: object) -> None:
            failure = _gave_up(reason)
            if failure is not None:
                self._failure = failure
                scope.cancel("otpy: root supervisor gave up")

        add_exit_hook(sup.ref, on_exit)
        if not sup.ref.is_alive:  # pragma: no cover - exited between start and here
            on_exit(sup.ref, sup.ref.exit_reason)
        scope.__enter__()
        return sup

    async def __aexit__(self, exc_type: Any, exc: Any, tb: Any) -> bool | None:
        assert self._scope is not None
        assert self._sup is not None
        suppressed = self._scope.__exit__(exc_type, exc, tb)
        try:
            if self._sup.ref.is_alive:
                with anyio.CancelScope(shield=True):
                    await self._sup.stop()
        finally:
            if self._own_node is not None:
                await self._own_node.__aexit__(None, None, None)
        if self._failure is not None:
            raise self._failure
        return suppressed


def supervisor_ref(ref: ActorRef) -> SupervisorRef:
    """Wrap a child supervisor's ``ActorRef`` (from ``which_children``) in a :class:`SupervisorRef`."""
    return SupervisorRef(ref)
