"""The supervisor base actor: what static and dynamic supervisors share.

A supervisor is an :class:`~otpy.Actor` that starts, watches, restarts and stops
other actors. It traps exits and links to each child before the child's ``init``
runs, as OTP's does: a child's exit arrives as an ``Exit`` in its mailbox and is
handled in order with API requests (``start_child`` and friends), and when the
supervisor dies by any means, even a kill, its children die with it. Introspection
(``which_children``, ``count_children``, ``statistics``) reads the supervisor's
tables directly, so it answers even while the supervisor is busy waiting for a slow
child to stop.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any, final

import anyio

from .._core import (
    KILLED,
    SHUTDOWN,
    Actor,
    ActorRef,
    Exit,
    MailboxConfig,
    ShutdownWith,
    actor_of,
    adopt_child,
    deliver_system_info,
    is_normal_exit,
    post_stop,
    spawn_child,
    state_of,
    wait_on_node_exit,
)
from .._exceptions import RestartIntensityExceeded, SpawnError
from .._redact import get_logger
from ._snapshots import ChildCounts, ChildInfo, ChildStatistics, SupervisorStatistics
from ._spec import ChildSpec, ChildType, Restart, Shutdown, backoff_delay
from ._window import RestartWindow, record_restart

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence


logger = get_logger("otpy.supervisor")

_SUPERVISOR_MAILBOX = MailboxConfig(capacity=10_000)

# Child states, as the console shows them.
RUNNING = "running"
RESTARTING = "restarting"
BACKING_OFF = "backing_off"
STOPPED = "stopped"


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
    from .. import telemetry  # here: importing otpy need not load OpenTelemetry

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


@wait_on_node_exit  # a node leaving waits for the whole tree to stop
class _SupervisorBase(Actor):
    """What static and dynamic supervisors share: starting, stopping, reporting."""

    mailbox = _SUPERVISOR_MAILBOX
    trap_exit = True
    _window: RestartWindow
    _children: list[_Child]
    _by_ref: dict[ActorRef, _Child]
    _listeners: list[Callable[[str, ActorRef], None]] | None = None
    _children_have_ids = True  # False for a dynamic supervisor: its children are addressed by ref
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

    def add_listener(self, listener: Callable[[str, ActorRef], None]) -> None:
        """Call *listener* with ``(child_id, ref)`` for each child started from now on.

        What `SupervisorRef.wait_child` waits with: the start is seen as it happens, in
        the supervisor's own task, so no incarnation slips by between two looks. A
        plain pair of calls rather than a context manager: it is on the restart path.
        """
        if self._listeners is None:
            self._listeners = []
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[str, ActorRef], None]) -> None:
        """Stop calling *listener*; it must have been added."""
        assert self._listeners is not None
        self._listeners.remove(listener)

    def _adopt(self, created: ActorRef) -> None:
        """Link to a new child before its task runs, as its parent (OTP's start_link).

        An exit right after ``init`` then reaches us with its real reason, and our own
        death, a kill included, takes the child with it.
        """
        adopt_child(self.ref, created)

    def _child_label(self, child: _Child) -> str | None:
        return child.spec.name or child.spec.id

    async def _stop_child(self, child: _Child, *, release: bool) -> None:
        """Stop *child* per its shutdown setting (SUP-9); the supervisor expects the exit.

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
        """Log a structured supervisor report (SUP-15): supervisor, context, reason, offender."""
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
        """Count a restart; give up (and return False) if intensity is exceeded (SUP-5)."""
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
        from .. import telemetry

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
        import random  # here: importing otpy need not load it (only backoff jitter uses it)

        delay = backoff_delay(backoff, child.attempt, random.random())
        child.attempt += 1
        return delay

    def _note_restart(self, child: _Child, reason: object, delay: float) -> None:
        from .. import telemetry

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
        """Restart *child* later, through the mailbox, so other requests get in between (SUP-7)."""
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
        """Start *group* in order for the restart of *child*; retry a failure later (SUP-7).

        As in OTP, the child that failed to start is ``restarting`` and the ones after
        it stay stopped until the retry, which the failed child now owns.
        """
        for member in group:
            member.state = RESTARTING
            try:
                ref = await self._start(member)
            except SpawnError as exc:
                self._report("start_error", member, exc.reason)
                from .. import telemetry

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
            id=child.spec.id if self._children_have_ids else child.label,
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
        """Return every child in start order with its ref or state (SUP-11)."""
        return [
            ChildInfo(
                id=c.spec.id if self._children_have_ids else None,
                ref=c.ref,
                state=c.state,
                type=c.spec.type,
            )
            for c in self._children
        ]

    def count_children(self) -> ChildCounts:
        """Return the counts OTP's ``count_children`` gives (SUP-11): one spec per child."""
        children = self._children
        sups = sum(1 for c in children if c.spec.type is ChildType.SUPERVISOR)
        return ChildCounts(
            specs=len(children),
            active=sum(1 for c in children if c.ref is not None and c.ref.is_alive),
            supervisors=sups,
            workers=len(children) - sups,
        )


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
