"""The supervisor handle: SupervisorRef, and the ways to start a supervision tree."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

import anyio

from .._core import SHUTDOWN, ShutdownWith, actor_of, add_exit_hook, is_normal_exit, spawn_child
from .._exceptions import (
    FailedToStartChild,
    OtpyError,
    RestartIntensityExceeded,
    SpawnError,
    SupervisionError,
)
from ._base import _SupervisorBase
from ._dynamic import DynamicSupervisor
from ._requests import _ById, _Failed, _StartChild, _StartDynamic
from ._spec import (
    ChildSpec,
    DynamicSupervisorSpec,
    SupervisorFlags,
    SupervisorSpec,
    as_child_spec,
)
from ._static import Supervisor

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._core import ActorRef, Node
    from ._snapshots import ChildCounts, ChildInfo, SupervisorStatistics

__all__ = ["SupervisorRef", "open_supervisor", "start_supervisor", "supervisor_ref"]


@final
class SupervisorRef:
    """A handle on a running supervisor: the child API and introspection (SUP-11)."""

    __slots__ = ("_sup", "ref")

    def __init__(self, ref: ActorRef) -> None:
        sup = actor_of(ref)
        if not isinstance(sup, _SupervisorBase):
            raise TypeError(f"{ref!r} is not a supervisor")
        self.ref = ref
        self._sup = sup  # a ref's actor never changes: look it up once, not per call

    def __repr__(self) -> str:
        return f"<SupervisorRef {self.ref.label}>"

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
        """Start a child of a dynamic supervisor with the template's args plus *args* (SUP-10).

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
        """Stop a child per its shutdown setting; static supervisors keep its spec (SUP-11).

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
        """Start a stopped child again (SUP-11).

        Raises:
            ChildError: ``running``, ``restarting`` or ``not_found``.
        """
        return await self._request(_ById("restart", child_id))  # type: ignore[no-any-return]

    async def delete_child(self, child_id: str) -> None:
        """Remove a stopped child's spec (SUP-11).

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
        sup.add_listener(listener)
        try:
            with anyio.fail_after(timeout):
                await event.wait()
        finally:
            sup.remove_listener(listener)
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
    """Start a supervisor on the current node; return once all its children are up (SUP-8).

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

    Opens a node too if none is running. If the supervisor gives up (SUP-5) the block
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
