"""Trace context in message envelopes: captured on send, current while the message is handled.

``_core`` knows nothing of OpenTelemetry. :mod:`otpy.telemetry` installs three hooks
when it is imported: *capture* returns the sender's context (or ``None`` when there
is nothing worth carrying, the usual case), *activate* makes a captured context
current and returns a token, *restore* undoes that. A message sent with a context
travels as a :class:`Traced` envelope and is unwrapped before any handler sees it,
so handlers' spans (and the dead letters captured while they run) belong to the
sender's trace, across every hop of a pipeline, without ambient contextvars leaking
between actors.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Final, final

from ._deadletters import DeadLetterSuppression

if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "EnvelopeHooks",
    "Traced",
    "activate_context",
    "capture_sender_context",
    "hooks",
    "install_envelope_hooks",
    "restore_context",
    "unwrap",
    "wrap",
]


@final
class EnvelopeHooks:
    """The three functions that move a context across a mailbox."""

    __slots__ = ("activate", "capture", "restore")

    def __init__(
        self,
        capture: Callable[[], object | None],
        activate: Callable[[Any], object],
        restore: Callable[[Any], object],
    ) -> None:
        self.capture = capture
        self.activate = activate
        self.restore = restore


@final
class Traced:
    """A message and the sender's context: what the mailbox holds for a traced send."""

    __slots__ = ("context", "message")

    def __init__(self, message: Any, context: object) -> None:
        self.message = message
        self.context = context

    def __repr__(self) -> str:
        return f"<Traced {type(self.message).__name__}>"


hooks: EnvelopeHooks | None = None
"""The installed hooks, or ``None``: then messages travel bare."""

_TRACED: Final = Traced


def install_envelope_hooks(new: EnvelopeHooks | None) -> EnvelopeHooks | None:
    """Install *new* hooks (``None`` removes them); return the previous ones."""
    global hooks
    previous, hooks = hooks, new
    return previous


def wrap(message: Any) -> Any:
    """Return *message*, in a :class:`Traced` envelope if the sender has a context to carry.

    Housekeeping (a :class:`~otpy.DeadLetterSuppression` message: a nudge, a hint)
    belongs to no request, so it travels bare.
    """
    installed = hooks
    if installed is None or isinstance(message, DeadLetterSuppression):
        return message
    context = installed.capture()
    return message if context is None else Traced(message, context)


def capture_sender_context() -> object | None:
    """Return the sender's context to carry with a message, or ``None`` (the usual case).

    For queues outside the core that carry a context with each item, as a mailbox
    does with a :class:`Traced` envelope: the partitioned queue calls it per put.
    """
    installed = hooks
    return None if installed is None else installed.capture()


def unwrap(message: Any) -> Any:
    """Return the message inside an envelope (or *message* itself)."""
    return message.message if type(message) is _TRACED else message


def activate_context(context: object) -> object:
    """Make a captured *context* current; return the token :func:`restore_context` takes."""
    installed = hooks
    return None if installed is None else installed.activate(context)


def restore_context(token: object) -> None:
    """Undo :func:`activate_context`."""
    installed = hooks
    if installed is not None and token is not None:
        installed.restore(token)
