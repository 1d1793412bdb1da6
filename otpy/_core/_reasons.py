"""Exit reasons and the system messages actors receive through ``handle_info``.

An exit reason is OTP's: the string ``"normal"``, ``"shutdown"``, ``"killed"`` or
``"noproc"``, a :class:`ShutdownWith` (OTP's ``{shutdown, Term}``), or the exception
that crashed the actor.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final

import attrs

if TYPE_CHECKING:
    from ._ref import ActorRef, Monitor

__all__ = [
    "KILLED",
    "NOPROC",
    "NORMAL",
    "SHUTDOWN",
    "Down",
    "Exit",
    "IdleTimeout",
    "ShutdownWith",
    "is_normal_exit",
]

NORMAL: Final = "normal"
"""The actor finished its work: links ignore it, transient children are not restarted."""
SHUTDOWN: Final = "shutdown"
"""The actor was asked to stop (by its supervisor, or because its supervisor gave up).

Like every reason but ``NORMAL``, it kills linked actors that do not trap exits.
"""
KILLED: Final = "killed"
"""The actor was killed without running ``terminate`` (brutal kill, untrappable kill)."""
NOPROC: Final = "noproc"
"""The actor did not exist when it was monitored, linked or called."""


@attrs.frozen
class ShutdownWith:
    """OTP's ``{shutdown, Term}``: a deliberate stop that carries a detail.

    It counts as a normal exit: transient children are not restarted and no crash
    report is logged. Over a link it is an exit signal like any other: it kills a
    linked actor that does not trap exits (only ``"normal"`` does not).
    """

    detail: Any


def is_normal_exit(reason: object) -> bool:
    """Return whether *reason* is ``normal``, ``shutdown`` or a :class:`ShutdownWith`.

    Such exits log no crash report and do not restart transient children. Links
    do not use this test: only ``"normal"`` spares a linked actor.
    """
    return reason in (NORMAL, SHUTDOWN) or isinstance(reason, ShutdownWith)


@attrs.frozen
class Down:
    """Delivered to ``handle_info`` when a monitored actor exits (ACT-10).

    Attributes:
        monitor: the reference ``Actor.monitor()`` returned.
        actor: the monitored actor.
        reason: its exit reason (``"noproc"`` if it was already dead).
    """

    monitor: Monitor
    actor: ActorRef
    reason: object


@attrs.frozen
class Exit:
    """Delivered to ``handle_info`` of an actor that traps exits when a linked actor exits (ACT-9).

    Attributes:
        actor: the linked actor that exited.
        reason: its exit reason.
    """

    actor: ActorRef
    reason: object


@attrs.frozen
class IdleTimeout:
    """Delivered to ``handle_info`` when no message arrived within the idle timeout (ACT-7)."""

    after: float
