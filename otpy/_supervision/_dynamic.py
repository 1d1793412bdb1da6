"""The dynamic supervisor: children started at run time from one template (SUP-10)."""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, Any, final

import anyio

from .._core import ActorRef, is_normal_exit
from .._exceptions import ChildError, MaxChildren, OtpyError, SpawnError
from ._base import RESTARTING, _Child, _SupervisorBase
from ._requests import _ById, _Failed, _StartDynamic
from ._snapshots import ChildCounts
from ._spec import ChildType, DynamicSupervisorSpec, Restart
from ._window import RestartWindow

if TYPE_CHECKING:
    from .._core import Caller

__all__ = ["DynamicSupervisor"]


@final
class DynamicSupervisor(_SupervisorBase):
    """Children added at run time from one template (SUP-10).

    Children are addressed by ref; at shutdown they are stopped concurrently.
    """

    _children_have_ids = False

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
        """Return OTP's ``simple_one_for_one`` counts: one spec, the template (SUP-11)."""
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
