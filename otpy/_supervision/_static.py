"""The static supervisor: children from a SupervisorSpec, restarted by its strategy (SUP-1..SUP-9)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

import attrs

from .._core import SHUTDOWN, ShutdownWith, is_normal_exit
from .._exceptions import ChildError, FailedToStartChild, OtpyError, SpawnError
from ._base import BACKING_OFF, RESTARTING, STOPPED, _Child, _SupervisorBase
from ._requests import _ById, _Failed, _StartChild
from ._spec import (
    AutoShutdown,
    ChildSpec,
    Restart,
    Strategy,
    SupervisorFlags,
    SupervisorSpec,
    check_child,
)
from ._window import RestartWindow

if TYPE_CHECKING:
    from .._core import ActorRef, Caller

__all__ = ["Supervisor"]


@final
class Supervisor(_SupervisorBase):
    """A static supervisor running a :class:`SupervisorSpec` (SUP-1..SUP-9, SUP-11..SUP-13, SUP-15).

    Start one with :func:`open_supervisor`, :func:`start_supervisor`, or as a child
    of another supervisor; talk to it through :class:`SupervisorRef`.
    """

    async def init(self, spec: SupervisorSpec) -> None:
        """Start the children in spec order; roll back and fail on the first failure (SUP-8).

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
                from .. import telemetry  # here: importing otpy need not load OpenTelemetry

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
        """Stop every child in reverse start order, each per its shutdown setting (SUP-9)."""
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
        """Stop the supervisor when significant children finished by themselves (SUP-13)."""
        if not child.spec.significant:
            return
        mode = self.flags.auto_shutdown
        if mode is AutoShutdown.ANY_SIGNIFICANT or (
            mode is AutoShutdown.ALL_SIGNIFICANT
            and not any(c.spec.significant and c.ref is not None for c in self._children)
        ):
            self.stop(SHUTDOWN)

    def _group(self, child: _Child) -> list[_Child]:
        """*child* and the siblings its strategy restarts with it, in start order (SUP-1..SUP-3)."""
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
        """Serve the child-management API (SUP-11); errors come back as values."""
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
