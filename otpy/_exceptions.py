"""The whole otpy error tree.

::

    OtpyError
    ├── NodeError                    no node running / node misuse; also a RuntimeError
    ├── SpawnError                   init failed, timed out, or a name was taken
    │   └── AlreadyStarted           a name (or child id) is already in use
    ├── ActorError
    │   ├── ActorStopped             call/send to an actor that has exited (noproc)
    │   │   └── ActorExited          the actor died while a call was outstanding
    │   ├── MailboxFull              the mailbox is full and its overflow policy rejects
    │   ├── CallTimeout              also a TimeoutError
    │   ├── CallingSelf              an actor called itself: it would deadlock
    │   ├── UnhandledMessage         a call/cast reached an actor with no handler for it
    │   └── StashOverflow            an actor stashed beyond its stash capacity
    └── SupervisionError
        ├── InvalidChildSpec         also a ValueError
        ├── ChildError               start/restart/terminate/delete_child refused (OTP error cases)
        ├── MaxChildren              a dynamic supervisor is at max_children
        └── RestartIntensityExceeded the supervisor gave up

    TelemetryConfigError (otpy.telemetry) is an OtpyError and a ValueError: a bad
    OTEL_* setting, raised before anything starts.

Exceptions hold data and write their own message, naming the object and the value
involved and, where the fix is obvious, what to do.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "ActorError",
    "ActorExited",
    "ActorStopped",
    "AlreadyStarted",
    "CallTimeout",
    "CallingSelf",
    "ChildError",
    "InvalidChildSpec",
    "MailboxFull",
    "MaxChildren",
    "NodeError",
    "OtpyError",
    "RestartIntensityExceeded",
    "SpawnError",
    "StashOverflow",
    "SupervisionError",
    "UnhandledMessage",
]


class OtpyError(Exception):
    """Base class of every error otpy raises on purpose."""


class NodeError(OtpyError, RuntimeError):
    """The node is missing or was used wrongly."""


class SpawnError(OtpyError):
    """An actor could not be started.

    Attributes:
        actor: the actor's name, or its class name when it has none.
        reason: the exit reason: the exception ``init`` raised, ``"timeout"``, or the
            reason given to ``self.stop()`` during ``init``.
    """

    def __init__(self, actor: str, reason: object, detail: str | None = None) -> None:
        text = detail or f"actor {actor!r} failed to start: {_describe(reason)}"
        super().__init__(text)
        self.actor = actor
        self.reason = reason


class AlreadyStarted(SpawnError):
    """A name is already registered to a live actor.

    Attributes:
        name: the name asked for.
        existing: the ``ActorRef`` holding it.
    """

    def __init__(self, name: str, existing: object) -> None:
        super().__init__(
            name,
            "already_started",
            f"name {name!r} is already registered to {existing!r}; "
            "pick another name or stop that actor first",
        )
        self.name = name
        self.existing = existing


class ActorError(OtpyError):
    """Something went wrong talking to an actor."""


class ActorStopped(ActorError):
    """The actor has exited (or never existed): OTP's ``noproc``.

    Attributes:
        actor: the actor's display name.
        reason: its exit reason, or ``"noproc"`` when it is unknown.
    """

    def __init__(self, actor: str, reason: object = "noproc") -> None:
        super().__init__(f"actor {actor!r} is not running ({_describe(reason)})")
        self.actor = actor
        self.reason = reason


class ActorExited(ActorStopped):
    """The actor exited while a call to it was outstanding; ``reason`` is its exit reason."""

    def __init__(self, actor: str, reason: object) -> None:
        ActorError.__init__(self, f"actor {actor!r} exited before replying: {_describe(reason)}")
        self.actor = actor
        self.reason = reason


class MailboxFull(ActorError):
    """The mailbox is at capacity and its overflow policy rejects the message.

    Attributes:
        actor: the actor's display name.
        capacity: the mailbox capacity.
    """

    def __init__(self, actor: str, capacity: int, waited: float | None = None) -> None:
        how = f" after waiting {waited:g}s" if waited else ""
        super().__init__(
            f"mailbox of {actor!r} is full ({capacity} messages){how}; "
            "slow the sender, raise mailbox capacity, or choose another overflow policy"
        )
        self.actor = actor
        self.capacity = capacity


class CallTimeout(ActorError, TimeoutError):
    """No reply arrived within the call's timeout; a late reply is discarded."""

    def __init__(self, actor: str, timeout: float) -> None:
        super().__init__(
            f"call to {actor!r} got no reply within {timeout:g}s; "
            "the actor keeps running and a late reply will be discarded"
        )
        self.actor = actor
        self.timeout = timeout


class CallingSelf(ActorError):
    """An actor called itself, which can never be answered."""

    def __init__(self, actor: str) -> None:
        super().__init__(
            f"actor {actor!r} called itself, which would deadlock; use cast, or a continue step"
        )
        self.actor = actor


class UnhandledMessage(ActorError):
    """A call or cast reached an actor that does not implement the handler for it."""

    def __init__(self, actor: str, kind: str, message: object) -> None:
        super().__init__(
            f"actor {actor!r} received a {kind} of type {type(message).__name__} "
            f"but defines no handle_{kind}; implement handle_{kind} or stop sending it"
        )
        self.actor = actor
        self.kind = kind
        self.message = message


class StashOverflow(ActorError):
    """``Actor.stash()`` was called with the stash already at capacity."""

    def __init__(self, actor: str, capacity: int) -> None:
        super().__init__(
            f"actor {actor!r} stash is full ({capacity} messages); "
            "unstash before stashing more, or raise stash_capacity"
        )
        self.actor = actor
        self.capacity = capacity


class SupervisionError(OtpyError):
    """A supervisor refused a request or gave up."""


class InvalidChildSpec(SupervisionError, ValueError):
    """A child spec or supervisor flag is invalid; raised when the spec is built."""

    def __init__(self, child: str, problem: str) -> None:
        super().__init__(f"child {child!r}: {problem}")
        self.child = child
        self.problem = problem


class ChildError(SupervisionError):
    """A child-management request was refused, with OTP's reason.

    Attributes:
        child: the child id.
        reason: one of ``"not_found"``, ``"running"``, ``"restarting"``,
            ``"already_present"``, ``"already_started"``, ``"simple_one_for_one"``.
    """

    _HINTS: ClassVar[dict[str, str]] = {
        "not_found": "no child has that id",
        "running": "the child is running; terminate_child it first",
        "restarting": "the child is being restarted; try again once it is up",
        "already_present": "a stopped child with that id exists; restart_child or delete_child it",
        "already_started": "a running child with that id exists",
        "simple_one_for_one": "dynamic supervisors address children by ref, not by id",
    }

    def __init__(self, child: object, reason: str) -> None:
        super().__init__(f"child {child!r}: {reason}: {self._HINTS.get(reason, reason)}")
        self.child = child
        self.reason = reason


class MaxChildren(SupervisionError):
    """A dynamic supervisor already runs ``max_children`` children."""

    def __init__(self, supervisor: str, max_children: int) -> None:
        super().__init__(
            f"supervisor {supervisor!r} already runs max_children={max_children}; "
            "stop a child or raise max_children"
        )
        self.supervisor = supervisor
        self.max_children = max_children


class RestartIntensityExceeded(SupervisionError):
    """The supervisor gave up: more restarts in its period than its intensity allows."""

    def __init__(
        self, supervisor: str, restarts: int, period: float, offender: object, intensity: int
    ) -> None:
        super().__init__(
            f"supervisor {supervisor!r} shut down: {restarts} restarts in {period:g}s "
            f"exceed its intensity of {intensity} (last offender {offender!r}); "
            "fix the crashing child or raise intensity"
        )
        self.supervisor = supervisor
        self.restarts = restarts
        self.period = period
        self.offender = offender
        self.intensity = intensity


def _describe(reason: object) -> str:
    if isinstance(reason, BaseException):
        text = str(reason)
        return f"{type(reason).__name__}: {text}" if text else type(reason).__name__
    if isinstance(reason, str):
        return reason
    return repr(reason)
