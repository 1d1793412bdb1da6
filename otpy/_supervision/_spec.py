"""Child specs, supervisor flags and backoff: frozen, validated when built (SUP-12)."""

from __future__ import annotations

import enum
import math
from collections.abc import Iterable, Mapping, Set
from typing import Any

import attrs

from .._check import MAX_COUNT, number, short
from .._core import Actor, MailboxConfig
from .._exceptions import InvalidArgument, InvalidChildSpec

__all__ = [
    "AutoShutdown",
    "Backoff",
    "ChildSpec",
    "ChildType",
    "DynamicSupervisorSpec",
    "Restart",
    "Shutdown",
    "Strategy",
    "SupervisorFlags",
    "SupervisorSpec",
    "as_child_spec",
    "backoff_delay",
    "check_child",
]


class Restart(enum.Enum):
    """When a child is restarted (SUP-4)."""

    PERMANENT = "permanent"
    """Always, whatever its exit reason, including ``normal``."""
    TRANSIENT = "transient"
    """Only after an abnormal exit (not ``normal``, ``shutdown`` or ``ShutdownWith``)."""
    TEMPORARY = "temporary"
    """Never; its spec is removed when it exits."""


class Shutdown(enum.Enum):
    """Non-numeric shutdown settings (SUP-9); a number is a graceful timeout in seconds."""

    BRUTAL_KILL = "brutal_kill"
    """Cancel at once; ``terminate`` does not run."""
    INFINITY = "infinity"
    """Ask it to stop and wait as long as it takes (the default for supervisors)."""


class ChildType(enum.Enum):
    """Whether a child is a worker or a supervisor."""

    WORKER = "worker"
    SUPERVISOR = "supervisor"


class Strategy(enum.Enum):
    """What a supervisor restarts when a child exits (SUP-1..SUP-3)."""

    ONE_FOR_ONE = "one_for_one"
    ONE_FOR_ALL = "one_for_all"
    REST_FOR_ONE = "rest_for_one"


class AutoShutdown(enum.Enum):
    """Whether significant children finishing stops the supervisor (SUP-13)."""

    NEVER = "never"
    ANY_SIGNIFICANT = "any_significant"
    ALL_SIGNIFICANT = "all_significant"


def _finite_nonneg(value: object) -> bool:
    """A number of seconds: not a bool, not NaN, >= 0 (``inf`` allowed)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool) and value >= 0


def _seconds(value: object) -> bool:
    """A finite number of seconds >= 0: what a timeout written as a number must be."""
    if not _finite_nonneg(value):
        return False
    try:
        return math.isfinite(value)  # type: ignore[arg-type]
    except OverflowError:  # an int too large for a float
        return False


def _count(value: object, minimum: int) -> bool:
    """An ``int`` (not a ``bool``) in ``[minimum, 2**53]``, the counts otpy accepts."""
    return isinstance(value, int) and not isinstance(value, bool) and minimum <= value <= MAX_COUNT


def _text_problem(value: object) -> str | None:
    """Why *value* cannot be an id or a name, or ``None`` if it can: a non-empty UTF-8 ``str``.

    Ids and names end up in logs, span attributes and metric labels, which are UTF-8.
    """
    if not isinstance(value, str) or not value:
        return f"must be a non-empty string, got {short(value)}"
    try:
        value.encode()
    except UnicodeEncodeError:
        return f"must be valid text, got {short(value)}, which has a lone surrogate UTF-8 cannot encode"
    return None


def _ordered(value: object) -> bool:
    """Whether *value* is an ordered collection of items: an iterable, not text, a mapping or a set."""
    return isinstance(value, Iterable) and not isinstance(
        value, (str, bytes, bytearray, memoryview, Mapping, Set)
    )


@attrs.frozen(kw_only=True)
class Backoff:
    """Exponential restart backoff with jitter (SUP-14).

    The n-th consecutive restart (from 0) waits
    ``min(maximum, minimum * 2**n * (1 + jitter * U[0, 1)))``: jitter is applied
    before the cap, so a delay never exceeds ``maximum``. The count resets once the
    child has run ``reset_after`` seconds without crashing (default: the midpoint
    of minimum and maximum, as Akka does).

    Attributes:
        minimum: first delay, seconds (finite, > 0).
        maximum: the cap, seconds (finite, >= minimum).
        jitter: random factor in [0, 1].
        reset_after: quiet period that resets the count (finite, > 0 seconds), or
            ``None`` for the default.

    Raises:
        InvalidArgumentType: a field is not a number (a ``bool`` is not one).
        InvalidArgument: a field is out of its range, NaN or infinite.
    """

    minimum: float = attrs.field(default=0.1)
    maximum: float = attrs.field(default=10.0)
    jitter: float = attrs.field(default=0.2)
    reset_after: float | None = attrs.field(default=None)

    def __attrs_post_init__(self) -> None:
        minimum = number(self.minimum, "minimum", owner="Backoff", unit=" of seconds")
        maximum = number(self.maximum, "maximum", owner="Backoff", unit=" of seconds")
        if maximum < minimum:
            raise InvalidArgument(
                "maximum",
                f"must be >= minimum ({short(self.minimum)}), got {short(self.maximum)}",
                owner="Backoff",
            )
        if number(self.jitter, "jitter", owner="Backoff", positive=False) > 1:
            raise InvalidArgument(
                "jitter", f"must be between 0 and 1, got {short(self.jitter)}", owner="Backoff"
            )
        if self.reset_after is not None:
            number(self.reset_after, "reset_after", owner="Backoff", unit=" of seconds")

    @property
    def quiet_period(self) -> float:
        """Seconds without a crash after which the attempt count resets."""
        if self.reset_after is not None:
            return self.reset_after
        return (self.minimum + self.maximum) / 2


def backoff_delay(backoff: Backoff, attempt: int, random: float) -> float:
    """Return the delay before restart number *attempt* (from 0); *random* is in [0, 1)."""
    base = backoff.minimum * 2.0 ** min(attempt, 1023)
    return min(backoff.maximum, base * (1.0 + backoff.jitter * random))


def _to_tuple(value: Iterable[Any]) -> tuple[Any, ...]:
    """``args`` as a tuple; anything but an ordered collection is left for ChildSpec to refuse."""
    if isinstance(value, tuple) or not _ordered(value):
        return value  # type: ignore[return-value]
    return tuple(value)


def _child_id(spec: Any) -> str:
    cid = getattr(spec, "id", "?")
    return cid if isinstance(cid, str) else short(cid)


@attrs.frozen(kw_only=True)
class ChildSpec:
    """How a supervisor starts, restarts and stops one child (SUP-12).

    Attributes:
        id: unique among its siblings.
        start: the :class:`~otpy.Actor` subclass to spawn.
        args: positional arguments for its ``init``: a tuple, or a list or other ordered
            collection (kept as a tuple); a string, bytes, mapping or set is refused.
        restart: a :class:`Restart`.
        shutdown: seconds to wait after asking it to stop before killing it
            (default 5.0), :attr:`Shutdown.BRUTAL_KILL` or :attr:`Shutdown.INFINITY`
            (the default for supervisors).
        type: a :class:`ChildType`; supervisors are detected from ``start``.
        significant: with the supervisor's ``auto_shutdown``, its exit may stop the
            supervisor (SUP-13). Not allowed with ``Restart.PERMANENT``.
        name: register the child under this name; sends through ``otpy.named(name)``
            reach each new incarnation and wait in a stash during restarts.
        mailbox: overrides the actor class's mailbox config.
        start_timeout: seconds ``init`` may take; ``None`` waits forever.
        backoff: delay restarts with :class:`Backoff`; ``None`` restarts at once.
        stash_capacity: messages kept for the name while it restarts (1 to ``2**53``).

    Raises:
        InvalidChildSpec: a field has a type or value it does not allow; the message
            names the field.
    """

    id: str
    start: type[Actor]
    args: tuple[Any, ...] = attrs.field(default=(), converter=_to_tuple)
    restart: Restart = Restart.PERMANENT
    shutdown: float | Shutdown = attrs.field(
        default=attrs.Factory(
            lambda self: Shutdown.INFINITY if _is_supervisor(self.start) else 5.0, takes_self=True
        )
    )
    type: ChildType = attrs.field(
        default=attrs.Factory(
            lambda self: ChildType.SUPERVISOR if _is_supervisor(self.start) else ChildType.WORKER,
            takes_self=True,
        )
    )
    significant: bool = False
    name: str | None = None
    mailbox: MailboxConfig | None = None
    start_timeout: float | None = None
    backoff: Backoff | None = None
    stash_capacity: int = 1000

    def __attrs_post_init__(self) -> None:
        cid = self.id
        problem = _text_problem(cid)
        if problem is not None:
            raise InvalidChildSpec(cid if isinstance(cid, str) else "?", f"id {problem}")
        if not (isinstance(self.start, type) and issubclass(self.start, Actor)):
            raise InvalidChildSpec(
                cid, f"start must be an otpy.Actor subclass, got {short(self.start)}"
            )
        if not isinstance(self.args, tuple):
            raise InvalidChildSpec(
                cid,
                f"args must be a tuple or list of arguments for init, got {short(self.args)}",
            )
        if not isinstance(self.restart, Restart):
            raise InvalidChildSpec(
                cid,
                "restart must be a Restart (PERMANENT, TRANSIENT, TEMPORARY), "
                f"got {short(self.restart)}",
            )
        shutdown = self.shutdown
        if not isinstance(shutdown, Shutdown) and not _seconds(shutdown):
            hint = (
                "; write Shutdown.INFINITY to wait as long as it takes"
                if shutdown == math.inf
                else ""
            )
            raise InvalidChildSpec(
                cid,
                f"shutdown must be >= 0 seconds, Shutdown.BRUTAL_KILL or Shutdown.INFINITY, "
                f"got {short(shutdown)}{hint}",
            )
        if not isinstance(self.type, ChildType):
            raise InvalidChildSpec(cid, f"type must be a ChildType, got {short(self.type)}")
        if not isinstance(self.significant, bool):
            raise InvalidChildSpec(
                cid, f"significant must be True or False, got {short(self.significant)}"
            )
        if self.significant and self.restart is Restart.PERMANENT:
            raise InvalidChildSpec(
                cid, "a significant child cannot be permanent; make it transient or temporary"
            )
        if self.name is not None:
            problem = _text_problem(self.name)
            if problem is not None:
                raise InvalidChildSpec(cid, f"name {problem}")
        if self.mailbox is not None and not isinstance(self.mailbox, MailboxConfig):
            raise InvalidChildSpec(
                cid, f"mailbox must be an otpy.MailboxConfig or None, got {short(self.mailbox)}"
            )
        if self.start_timeout is not None and not (
            _seconds(self.start_timeout) and self.start_timeout > 0
        ):
            raise InvalidChildSpec(
                cid,
                f"start_timeout must be > 0 seconds, or None to wait forever, "
                f"got {short(self.start_timeout)}",
            )
        if not _count(self.stash_capacity, 1):
            raise InvalidChildSpec(
                cid,
                f"stash_capacity must be an integer >= 1 and <= 2**53, "
                f"got {short(self.stash_capacity)}",
            )
        if self.backoff is not None and not isinstance(self.backoff, Backoff):
            raise InvalidChildSpec(
                cid, f"backoff must be an otpy.Backoff or None, got {short(self.backoff)}"
            )


def _is_supervisor(start: object) -> bool:
    from ._dynamic import DynamicSupervisor
    from ._static import Supervisor

    return isinstance(start, type) and issubclass(start, (Supervisor, DynamicSupervisor))


@attrs.frozen(kw_only=True)
class SupervisorFlags:
    """A supervisor's strategy and restart intensity (SUP-5).

    Attributes:
        strategy: a :class:`Strategy`.
        intensity: restarts allowed within ``period`` (an integer, 0 to ``2**53``); one
            more and the supervisor gives up. otpy's default is 3 in 5 s (Elixir's),
            not OTP's 1.
        period: the sliding window, seconds (finite, > 0).
        auto_shutdown: an :class:`AutoShutdown`.
    """

    strategy: Strategy = Strategy.ONE_FOR_ONE
    intensity: int = 3
    period: float = 5.0
    auto_shutdown: AutoShutdown = AutoShutdown.NEVER

    def __attrs_post_init__(self) -> None:
        if not isinstance(self.strategy, Strategy):
            raise InvalidChildSpec(
                "<flags>", f"strategy must be a Strategy, got {short(self.strategy)}"
            )
        if not _count(self.intensity, 0):
            raise InvalidChildSpec(
                "<flags>",
                f"intensity must be an integer >= 0 and <= 2**53, got {short(self.intensity)}",
            )
        if not (_seconds(self.period) and self.period > 0):
            raise InvalidChildSpec(
                "<flags>", f"period must be > 0 seconds (finite), got {short(self.period)}"
            )
        if not isinstance(self.auto_shutdown, AutoShutdown):
            raise InvalidChildSpec(
                "<flags>",
                f"auto_shutdown must be an AutoShutdown, got {short(self.auto_shutdown)}",
            )


def as_child_spec(item: object) -> ChildSpec:
    """Return *item* as a :class:`ChildSpec`, converting a nested supervisor spec.

    Raises:
        InvalidChildSpec: *item* is no spec at all.
    """
    if isinstance(item, (SupervisorSpec, DynamicSupervisorSpec)):
        return item.as_child()
    if isinstance(item, ChildSpec):
        return item
    raise InvalidChildSpec(
        _child_id(item),
        f"expected a ChildSpec, SupervisorSpec or DynamicSupervisorSpec, got {type(item).__name__}",
    )


def check_child(spec: ChildSpec, auto_shutdown: AutoShutdown) -> None:
    """Check *spec* against the supervisor it is for, as OTP's ``check_childspec`` does.

    A :class:`ChildSpec` checks its own fields when it is built; this adds what
    depends on the supervisor. :class:`SupervisorSpec` and ``start_child`` both use it.

    Raises:
        InvalidChildSpec: a significant child under ``AutoShutdown.NEVER`` (OTP's
            ``bad_combination``).
    """
    if spec.significant and auto_shutdown is AutoShutdown.NEVER:
        raise InvalidChildSpec(
            spec.id,
            "significant children need the supervisor's auto_shutdown set to "
            "ANY_SIGNIFICANT or ALL_SIGNIFICANT",
        )


def _to_children(
    value: Iterable[ChildSpec | SupervisorSpec | DynamicSupervisorSpec],
) -> tuple[ChildSpec, ...]:
    """Nested supervisor specs as child specs; SupervisorSpec refuses the rest, naming the field."""
    if not _ordered(value):
        return value  # type: ignore[return-value]
    return tuple(
        item.as_child() if isinstance(item, (SupervisorSpec, DynamicSupervisorSpec)) else item
        for item in value
    )


@attrs.frozen(kw_only=True)
class SupervisorSpec:
    """A static supervisor: its children in start order and its flags.

    Used as a child of another supervisor it becomes a ``ChildSpec`` of type
    supervisor with ``shutdown=Shutdown.INFINITY``.

    Attributes:
        children: child specs (or nested supervisor specs), started in this order: a
            list or other ordered collection.
        flags: :class:`SupervisorFlags`.
        id: its id as a child of another supervisor.
        name: register the supervisor under this name.
        restart: its restart type as a child.
        significant: its significance as a child.
    """

    children: tuple[ChildSpec, ...] = attrs.field(converter=_to_children)
    flags: SupervisorFlags = SupervisorFlags()
    id: str = "supervisor"
    name: str | None = None
    restart: Restart = Restart.PERMANENT
    significant: bool = False

    def __attrs_post_init__(self) -> None:
        self.as_child()  # its own id, name, restart and significant, checked first
        if not isinstance(self.flags, SupervisorFlags):
            raise InvalidChildSpec(
                self.id, f"flags must be an otpy.SupervisorFlags, got {short(self.flags)}"
            )
        if not isinstance(self.children, tuple):
            raise InvalidChildSpec(
                self.id,
                f"children must be a list of ChildSpec, SupervisorSpec or DynamicSupervisorSpec, "
                f"got {short(self.children)}",
            )
        seen: set[str] = set()
        for child in self.children:
            if not isinstance(child, ChildSpec):
                raise InvalidChildSpec(
                    self.id,
                    "children must be ChildSpec, SupervisorSpec or DynamicSupervisorSpec, "
                    f"got {type(child).__name__} {short(child)}",
                )
            if child.id in seen:
                raise InvalidChildSpec(child.id, f"duplicate child id in supervisor {self.id!r}")
            seen.add(child.id)
            check_child(child, self.flags.auto_shutdown)

    def as_child(self) -> ChildSpec:
        """Return the :class:`ChildSpec` that starts this supervisor under another."""
        from ._static import Supervisor

        return ChildSpec(
            id=self.id,
            start=Supervisor,
            args=(self,),
            restart=self.restart,
            significant=self.significant,
            name=self.name,
        )


@attrs.frozen(kw_only=True)
class DynamicSupervisorSpec:
    """A dynamic supervisor: children added at run time from one template (SUP-10).

    Attributes:
        child: the template; ``start_child(*extra)`` spawns ``child.start`` with
            ``child.args + extra``. It must not have a name.
        max_children: refuse more than this many (``MaxChildren``); ``None`` is no limit.
        intensity: restarts allowed within ``period``.
        period: the sliding window, seconds.
        id: its id as a child of another supervisor.
        name: register the supervisor under this name.
        restart: its restart type as a child.
    """

    child: ChildSpec
    max_children: int | None = None
    intensity: int = 3
    period: float = 5.0
    id: str = "dynamic_supervisor"
    name: str | None = None
    restart: Restart = Restart.PERMANENT

    def __attrs_post_init__(self) -> None:
        self.as_child()  # its own id, name and restart, checked first
        if not isinstance(self.child, ChildSpec):
            raise InvalidChildSpec(self.id, f"child must be a ChildSpec, got {short(self.child)}")
        if self.child.name is not None:
            raise InvalidChildSpec(
                self.child.id, "a dynamic supervisor's child template cannot have a name"
            )
        if self.child.significant:
            raise InvalidChildSpec(
                self.child.id,
                "a dynamic supervisor's child template cannot be significant: "
                "a dynamic supervisor has no auto_shutdown",
            )
        if self.max_children is not None and (
            not isinstance(self.max_children, int)
            or isinstance(self.max_children, bool)
            or self.max_children < 0
        ):
            raise InvalidChildSpec(
                self.id,
                f"max_children must be an integer >= 0 or None, got {short(self.max_children)}",
            )
        SupervisorFlags(intensity=self.intensity, period=self.period)

    def as_child(self) -> ChildSpec:
        """Return the :class:`ChildSpec` that starts this supervisor under another."""
        from ._dynamic import DynamicSupervisor

        return ChildSpec(
            id=self.id, start=DynamicSupervisor, args=(self,), restart=self.restart, name=self.name
        )
