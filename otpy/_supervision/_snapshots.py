"""Supervisor snapshots: the frozen rows and statistics introspection returns (SUP-11)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import attrs

if TYPE_CHECKING:
    from .._core import ActorRef, ActorStatistics
    from ._spec import ChildType, Restart

__all__ = ["ChildCounts", "ChildInfo", "ChildStatistics", "SupervisorStatistics"]


@attrs.frozen
class ChildInfo:
    """One row of ``which_children()`` (SUP-11).

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
    """What ``count_children()`` returns (SUP-11).

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
