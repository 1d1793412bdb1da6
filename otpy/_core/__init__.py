"""The actor core: processes, mailboxes, names, monitors, links and the node.

This module is the core's named surface, as ``trio._core`` is trio's: every other
layer (``otpy._supervision``, ``otpy.telemetry``, ``otpy.pressure``,
``otpy.deadletter``, ``otpy.testing``, ``otpy.cli``, ``otpy.console`` and the
top-level ``otpy``) imports from here, never from a submodule, and never touches an
underscored attribute of a core object.

It holds two kinds of names:

- the public classes and functions, which ``otpy`` re-exports (:class:`Actor`,
  :class:`ActorRef`, :class:`Node`, the exit reasons, ...);
- the internal operations the other layers need and users do not: spawning a
  supervised child, posting a stop, delivering a system message past a full
  mailbox, a process's state, the envelope hooks for trace context. Each has a
  docstring saying who uses it and why.

Submodules, one concept each: ``_actor`` (the behaviour), ``_ref`` (the handle),
``_process`` (the running actor), ``_mailbox``, ``_node``, ``_named`` (sending by
name), ``_receptionist``, ``_reasons``, ``_deadletters`` (the in-memory stream),
``_envelope`` (trace context in messages) and ``_lowlevel`` (futures and timeouts).

From ``_lowlevel``, :func:`current_backend`, :func:`wait_for` and :data:`TIMED_OUT`
serve ``otpy._durable``: its callers wait for a commit on the cheapest future of the
running backend, and on asyncio share the core's deadline queue for timeouts (a
cancel scope per capture cost about 30 µs there).
"""

from __future__ import annotations

from ._actor import IGNORE, NO_REPLY, Actor, Caller, wait_on_node_exit
from ._deadletters import (
    DeadLetterEvent,
    DeadLetterStream,
    DeadLetterStreamStatistics,
    DeadLetterSuppression,
)
from ._envelope import (
    EnvelopeHooks,
    activate_context,
    capture_sender_context,
    install_envelope_hooks,
    restore_context,
)
from ._lowlevel import TIMED_OUT, Backend, OneShot, current_backend, wait_for
from ._mailbox import MailboxConfig, Overflow
from ._named import NamedRef
from ._node import (
    Node,
    current_node,
    current_node_or_none,
    named,
    node_clock,
    open_node,
    spawn,
    spawn_child,
    whereis,
)
from ._reasons import (
    KILLED,
    NOPROC,
    NORMAL,
    SHUTDOWN,
    Down,
    Exit,
    IdleTimeout,
    ShutdownWith,
    is_normal_exit,
)
from ._receptionist import Receptionist
from ._ref import (
    ActorRef,
    ActorStatistics,
    ActorStatus,
    Monitor,
    Timer,
    actor_of,
    add_exit_hook,
    adopt_child,
    deliver_system_info,
    mailbox_has_room,
    needs_attention,
    post_callback,
    post_stop,
    state_of,
)

__all__ = [
    "TIMED_OUT",
    "Backend",
    "OneShot",
    "current_backend",
    "wait_for",
    # The public API (re-exported by otpy).
    "IGNORE",
    "KILLED",
    "NOPROC",
    "NORMAL",
    "NO_REPLY",
    "SHUTDOWN",
    "Actor",
    "ActorRef",
    "ActorStatistics",
    "ActorStatus",
    "Caller",
    "DeadLetterEvent",
    "DeadLetterStream",
    "DeadLetterStreamStatistics",
    "DeadLetterSuppression",
    "Down",
    "Exit",
    "IdleTimeout",
    "MailboxConfig",
    "Monitor",
    "NamedRef",
    "Node",
    "Overflow",
    "Receptionist",
    "ShutdownWith",
    "Timer",
    "current_node",
    "is_normal_exit",
    "named",
    "open_node",
    "spawn",
    "whereis",
    # The internal API, for otpy's other layers only.
    "EnvelopeHooks",
    "activate_context",
    "actor_of",
    "add_exit_hook",
    "adopt_child",
    "capture_sender_context",
    "current_node_or_none",
    "deliver_system_info",
    "install_envelope_hooks",
    "mailbox_has_room",
    "needs_attention",
    "node_clock",
    "post_callback",
    "post_stop",
    "restore_context",
    "spawn_child",
    "state_of",
    "wait_on_node_exit",
]
