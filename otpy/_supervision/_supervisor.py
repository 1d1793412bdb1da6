"""Supervisors: actors that start, watch, restart and stop other actors.

A supervisor is an :class:`~otpy.Actor`. It monitors each child; a child's exit
arrives as a ``Down`` in its mailbox and is handled in order with API requests
(``start_child`` and friends). Introspection (``which_children``,
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
from .._core._actor import Actor, Caller
from .._core._mailbox import MailboxConfig
from .._core._reasons import KILLED, SHUTDOWN, Down, ShutdownWith, is_normal_exit
from .._core._ref import _SYS_STOP, ActorRef, ActorStatistics, Monitor
from .._exceptions import (
    ChildError,
    MaxChildren,
    OtpyError,
    RestartIntensityExceeded,
    SpawnError,
    SupervisionError,
)
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
    backoff_delay,
)
from ._window import RestartWindow, record_restart

if TYPE_CHECKING:
    from collections.abc import Iterable, Sequence

    from .._core._node import Node

__all__ = [
    "ChildCounts",
    "ChildInfo",
    "ChildStatistics",
    "DynamicSupervisor",
    "Supervisor",
    "SupervisorRef",
    "SupervisorStatistics",
]

logger = logging.getLogger("otpy.supervisor")

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


@attrs.frozen
class _StartChild:
    spec: ChildSpec


@attrs.frozen
class _StartDynamic:
    args: tuple[Any, ...]


@attrs.frozen
class _ById:
    op: str
    child: Any


@attrs.frozen
class _Retry:
    ids: tuple[int, ...]
    counts: bool


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
        "monitor",
        "ref",
        "restarts",
        "spec",
        "started_at",
        "state",
    )

    def __init__(self, spec: ChildSpec, key: int, args: tuple[Any, ...] | None = None) -> None:
        self.spec = spec
        self.key = key
        self.args = spec.args if args is None else args
        self.ref: ActorRef | None = None
        self.monitor: Monitor | None = None
        self.state = STOPPED
        self.restarts = 0
        self.attempt = 0
        self.started_at = 0.0
        self.last_reason: object = None

    @property
    def label(self) -> str:
        return self.spec.id if self.ref is None else self.ref.label


def _short(reason: object) -> str:
    return telemetry.describe_reason(reason)[1]


def _offender(child: _Child) -> dict[str, object]:
    """OTP's offender: what the report says about the child involved."""
    spec = child.spec
    return {
        "id": spec.id,
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
    _otpy_shutdown = None  # a node leaving waits for the whole tree to stop
    _window: RestartWindow
    _children: list[_Child]
    _monitors: dict[Monitor, _Child]
    _listeners: list[Any] | None = None
    _strategy_name: str
    _keys: int

    # -- starting and stopping one child -------------------------------------------

    async def _start(self, child: _Child) -> ActorRef | None:
        spec = child.spec
        hold = spec.stash_capacity if spec.name and spec.restart is not Restart.TEMPORARY else 0
        monitors: list[Monitor] = []
        try:
            # Monitor before the child's task runs: an exit right after init must
            # reach us with its real reason, not as noproc.
            ref = await self.node._spawn(
                spec.start,
                child.args,
                label=self._child_label(child),
                name=spec.name,
                mailbox=spec.mailbox,
                start_timeout=spec.start_timeout,
                restarts=child.restarts,
                hold_name=hold,
                claim_name=True,
                on_created=lambda created: monitors.append(self.monitor(created)),
            )
        except BaseException:
            for monitor in monitors:
                self.demonitor(monitor)
            raise
        if ref is None:
            for monitor in monitors:
                self.demonitor(monitor)
            child.state = STOPPED
            if spec.name:
                self.node.release_name(spec.name)
            return None
        child.ref = ref
        child.state = RUNNING
        child.started_at = anyio.current_time()
        child.monitor = monitors[0]
        self._monitors[child.monitor] = child
        logger.debug("supervisor %s started child %s as %r", self.ref.label, spec.id, ref)
        if self._listeners:
            for listener in list(self._listeners):
                listener(child.spec.id, ref)
        return ref

    def _child_label(self, child: _Child) -> str | None:
        return child.spec.name or child.spec.id

    async def _stop_child(self, child: _Child, *, release: bool) -> None:
        """Stop *child* per its shutdown setting (S9); the supervisor expects the exit."""
        ref = child.ref
        if child.monitor is not None:
            self.demonitor(child.monitor)
            self._monitors.pop(child.monitor, None)
            child.monitor = None
        if ref is not None and ref.is_alive:
            shutdown = child.spec.shutdown
            expected: tuple[object, ...]
            if shutdown is Shutdown.BRUTAL_KILL:
                expected = (KILLED,)
                ref.kill(KILLED)
                reason = await ref.wait_exited()
            else:
                expected = (SHUTDOWN,)
                ref._post_system((_SYS_STOP, SHUTDOWN))
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
            message or f"{context} of {child.spec.id if child else '-'}: {report['reason']}",
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
        if now - child.started_at >= backoff.quiet_period:
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

    async def _start_group(self, group: Sequence[_Child]) -> None:
        """(Re)start *group* in order; on a failure, retry later through the mailbox (S7)."""
        for index, child in enumerate(group):
            if child.state not in (RESTARTING, BACKING_OFF) or child not in self._children:
                continue
            child.state = RESTARTING
            try:
                await self._start(child)
            except SpawnError as exc:
                self._report("start_error", child, exc.reason)
                telemetry.record_start_error(
                    supervisor=self.ref.label, child_id=child.spec.id, reason=exc.reason
                )
                rest = tuple(c.key for c in group[index:] if c.state == RESTARTING)
                delay = self._restart_delay(child)
                if delay > 0:
                    for c in group[index:]:
                        if c.state == RESTARTING:
                            c.state = BACKING_OFF
                    self.send_after(delay, _Retry(rest, counts=True))
                else:
                    # Through the mailbox, not a loop: a stop request can get in between.
                    self.ref._deliver_system_info(_Retry(rest, counts=True))
                return

    async def _retry(self, message: _Retry) -> None:
        group = [
            c
            for c in self._children
            if c.key in message.ids and c.state in (RESTARTING, BACKING_OFF)
        ]
        if not group:
            return
        if message.counts and not self._allow_restart(group[0], group[0].last_reason):
            return
        await self._start_group(group)

    # -- common callbacks -----------------------------------------------------------

    async def handle_info(self, message: Any) -> None:
        """Handle child exits and restart retries."""
        if type(message) is Down:
            child = self._monitors.pop(message.monitor, None)
            if child is not None and child.ref is message.actor:
                child.monitor = None
                child.ref = None
                child.last_reason = message.reason
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
        if ref is not None and isinstance(ref._actor, _SupervisorBase) and ref._state != "starting":
            nested = ref._actor.statistics()
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
            state=self.ref._state,
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
        """Return the counts OTP's ``count_children`` gives (S11)."""
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
        """Start the children in spec order; roll back and fail on the first failure (S8)."""
        self.spec = spec
        self.flags: SupervisorFlags = spec.flags
        self._strategy_name = spec.flags.strategy.value
        self._window = RestartWindow(spec.flags.intensity, spec.flags.period)
        self._keys = 0
        self._children = []
        self._monitors = {}
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
                raise SpawnError(
                    self.ref.label,
                    exc.reason,
                    f"supervisor {self.ref.label!r} failed to start child {child_spec.id!r}: {exc}",
                ) from exc
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

    async def _restart(self, child: _Child, reason: object) -> None:
        strategy = self.flags.strategy
        children = self._children
        if strategy is Strategy.ONE_FOR_ONE:
            group = [child]
        else:
            start = 0 if strategy is Strategy.ONE_FOR_ALL else children.index(child)
            affected = children[start:]
            for other in reversed(affected):
                if other is not child and other.ref is not None:
                    await self._stop_child(other, release=other.spec.restart is Restart.TEMPORARY)
            # Temporary children stopped by a sibling's restart are not restarted (OTP).
            group = [c for c in affected if c is child or c.spec.restart is not Restart.TEMPORARY]
            for c in affected:
                if c not in group:
                    children.remove(c)
        delay = self._restart_delay(child)
        self._note_restart(child, reason, delay)
        for c in group:
            c.restarts += 1
            c.state = BACKING_OFF if delay > 0 else RESTARTING
        if delay > 0:
            self.send_after(delay, _Retry(tuple(c.key for c in group), counts=False))
            return
        await self._start_group(group)

    async def handle_call(self, message: Any, caller: Caller) -> Any:
        """Serve the child-management API (S11); errors come back as values."""
        try:
            if type(message) is _StartChild:
                return await self._api_start_child(message.spec)
            if type(message) is _ById:
                return await self._api_by_id(message.op, message.child)
        except OtpyError as exc:
            return _Failed(exc)
        return await super().handle_call(message, caller)

    async def _api_start_child(self, spec: ChildSpec) -> ActorRef | None:
        for child in self._children:
            if child.spec.id == spec.id:
                raise ChildError(
                    spec.id, "already_started" if child.ref is not None else "already_present"
                )
        child = self._new_child(spec)
        self._children.append(child)
        try:
            ref = await self._start(child)
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
            await self._stop_child(child, release=True)
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
        self._monitors = {}
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
                return await self._api_start(message.args)
            if type(message) is _ById:
                if message.op != "terminate":
                    raise ChildError(message.child, "simple_one_for_one")
                child = next((c for c in self._children if c.ref is message.child), None)
                if child is None:
                    raise ChildError(message.child, "not_found")
                await self._stop_child(child, release=False)
                self._children.remove(child)
                return None
        except OtpyError as exc:
            return _Failed(exc)
        return await super().handle_call(message, caller)

    async def _api_start(self, extra: tuple[Any, ...]) -> ActorRef | None:
        limit = self.spec.max_children
        if limit is not None and len(self._children) >= limit:
            raise MaxChildren(self.ref.label, limit)
        self._keys += 1
        child = _Child(self.spec.child, self._keys, self.spec.child.args + extra)
        self._children.append(child)
        try:
            ref = await self._start(child)
        except SpawnError:
            self._children.remove(child)
            raise
        if ref is None:
            self._children.remove(child)
        return ref

    def _child_label(self, child: _Child) -> str | None:
        return f"{child.spec.id}#{child.key}"

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
        child.state = BACKING_OFF if delay > 0 else RESTARTING
        if delay > 0:
            self.send_after(delay, _Retry((child.key,), counts=False))
        else:
            await self._start_group([child])


# -- the handle users hold ---------------------------------------------------------


@final
class SupervisorRef:
    """A handle on a running supervisor: the child API and introspection (S11)."""

    __slots__ = ("ref",)

    def __init__(self, ref: ActorRef) -> None:
        if not isinstance(ref._actor, _SupervisorBase):
            raise TypeError(f"{ref!r} is not a supervisor")
        self.ref = ref

    def __repr__(self) -> str:
        return f"<SupervisorRef {self.ref.label}>"

    @property
    def _sup(self) -> _SupervisorBase:
        return self.ref._actor  # type: ignore[return-value]

    async def _request(self, message: object) -> Any:
        result = await self.ref.call(message, timeout=None)
        if isinstance(result, _Failed):
            raise result.error
        return result

    async def start_child(
        self, spec: ChildSpec | SupervisorSpec | DynamicSupervisorSpec
    ) -> ActorRef | None:
        """Add and start a child; return its ref, or ``None`` if its init ignored the start.

        Raises:
            ChildError: ``already_started`` / ``already_present`` for a duplicate id.
            SpawnError: the child failed to start (its spec is discarded).
        """
        if not isinstance(self._sup, Supervisor):
            raise TypeError("start_child(spec) is for static supervisors; use start_dynamic_child")
        if not isinstance(spec, ChildSpec):
            spec = spec.as_child()
        return await self._request(_StartChild(spec))  # type: ignore[no-any-return]

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
    from .._core._node import current_node

    node = node or current_node()
    cls = Supervisor if isinstance(spec, SupervisorSpec) else DynamicSupervisor
    ref = await node._spawn(cls, (spec,), name=spec.name, label=spec.name or spec.id)
    if ref is None:  # pragma: no cover - supervisors never ignore their start
        raise SpawnError(spec.id, "ignore")
    return SupervisorRef(ref)


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
        from .._core._node import _current_node, open_node

        node = _current_node.get()
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

        sup.ref._exit_hooks = [*(sup.ref._exit_hooks or []), on_exit]
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
