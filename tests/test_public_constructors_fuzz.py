"""Every public constructor, and the main calls, given odd values: a typed error naming the argument, or an object that works.

The public classes are enumerated from ``__all__`` of ``otpy``, ``otpy.deadletter``,
``otpy.telemetry`` and ``otpy.testing``. Each is either in :data:`REGISTRY`, with a
valid value per argument and a cheap later stage, or in :data:`NOT_BUILT_BY_HAND`
with the reason; a new public class in neither fails :func:`test_every_public_class_is_registered`.

For each case hypothesis replaces some arguments with values from :data:`ODD`
(None, bools, NaN, infinities, huge and negative ints, empty, huge and surrogate
strings, wrong types, plain objects). Then either the call raises an
:class:`otpy.OtpyError` that is also a ``TypeError`` or ``ValueError`` and names one
of the replaced arguments, or it succeeds and the object passes its later stage (a
queue takes a put and a get, a limiter a try_acquire, a mailbox config spawns an
actor): a value accepted must not break later. Never an ``OverflowError``,
``AttributeError``, ``UnicodeEncodeError`` or ``KeyError``.
"""

from __future__ import annotations

import enum
import inspect
import math
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import anyio
import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from trio.testing import MockClock

import otpy
import otpy._supervision
import otpy.deadletter
import otpy.pressure
import otpy.telemetry
import otpy.testing
from otpy import MailboxConfig, Overflow, PressureError
from otpy.deadletter import MemoryDeadLetterStore, ReplayConfig, Source
from otpy.pressure import (
    BoundedQueue,
    Level,
    LevelState,
    PartitionedQueue,
    PressurePolicy,
    Priority,
    RateLimiter,
    SamplePressure,
    Threshold,
    Watched,
)

MODULES = (otpy, otpy.deadletter, otpy.telemetry, otpy.testing)

EXAMPLES_PER_CASE = 15
"""Examples per case: small, so the whole module runs in a few seconds."""

# -- odd values ------------------------------------------------------------------------


class _Opaque:
    """An object with no useful attribute at all."""

    def __repr__(self) -> str:
        return "<opaque>"


HUGE_INTS = [2**53 + 1, 2**63, 2**64 + 1, 10**30, 10**400, -(10**400), -(2**63), 10**5000]
"""10**5000 has more digits than repr() prints (sys.get_int_max_str_digits): messages must cope."""
ODD_STRINGS = ["", " ", "x" * 100_000, "\ud800", "a\udc80b", "0", "1.5", "nan", "normal", "é"]

ODD: st.SearchStrategy[object] = st.one_of(
    st.none(),
    st.booleans(),
    st.sampled_from([math.nan, math.inf, -math.inf, 0.0, -0.0, 1e-320, 1e308, -1.5, 0.5, 2.5]),
    st.sampled_from([0, -1, 1, 2, 3, 4, 99, -99, *HUGE_INTS]),
    st.integers(),
    st.floats(),
    st.sampled_from(ODD_STRINGS),
    st.text(max_size=3),
    st.binary(max_size=3),
    st.lists(st.integers(-2, 5), max_size=2),
    st.dictionaries(st.text(max_size=2), st.integers(), max_size=1),
    st.just(_Opaque()),
    st.just(object),
    st.sampled_from([Priority.HIGH, Level.SHED, Overflow.REJECT, Source.OUTBOUND]),
)

# -- later stages ----------------------------------------------------------------------


class _Echo(otpy.Actor):
    """Replies to a call with the message."""

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return message


async def _queue_works(queue: BoundedQueue[int]) -> None:
    await queue.put(1)
    assert await queue.get() == 1
    queue.put_nowait(2, priority=Priority.CRITICAL)
    assert queue.get_nowait() == 2
    assert queue.statistics().accepted == 2


async def _policy_works(policy: PressurePolicy) -> None:
    queue: BoundedQueue[int] = BoundedQueue(10, policy=policy)
    for i in range(12):  # through every level, to capacity and past it
        for priority in Priority:
            try:
                queue.put_nowait(i, priority=priority)
            except (PressureError, anyio.WouldBlock):
                pass
    assert len(queue) == 10
    while len(queue):
        queue.get_nowait()
    await queue.put(1, priority=Priority.CRITICAL)
    otpy.pressure.level_for(policy, Level.SHED, 0.5)


async def _partitioned_works(queue: PartitionedQueue[int]) -> None:
    queue.put_nowait("k", 1)
    assert queue.clear() == [("k", 1)]
    await queue.put("\udc80", 2, priority=Priority.HIGH)
    assert queue.clear() == [("\udc80", 2)]
    queue.worker_specs(_handler)
    queue.statistics()


async def _put_past_capacity(**options: Any) -> None:
    """Put until refused: a priority accepted at first must also work when it is refused."""
    queue: BoundedQueue[int] = BoundedQueue(2, policy=PressurePolicy(throttle=0.0))
    for i in range(3):
        try:
            await queue.put(i, **options)
        except PressureError:
            assert i == 2
    assert queue.statistics().rejected_total == 1


async def _put_nowait_past_capacity(**options: Any) -> None:
    """put_nowait until refused, as :func:`_put_past_capacity`."""
    queue: BoundedQueue[int] = BoundedQueue(2, policy=PressurePolicy(throttle=0.0))
    for i in range(3):
        try:
            queue.put_nowait(i, **options)
        except PressureError:
            assert i == 2
    assert queue.statistics().rejected_total == 1


async def _handler(key: str, item: object) -> None:
    """A valid partition worker handler."""


async def _limiter_works(limiter: RateLimiter) -> None:
    assert limiter.try_acquire()
    await limiter.acquire()  # waits at most 1/rate on the mock clock
    limiter.set_rate(limiter.statistics().rate)
    repr(limiter)


async def _mailbox_works(config: MailboxConfig) -> None:
    async with otpy.open_node() as node:
        ref = await node.spawn(_Echo, mailbox=config)
        assert await ref.call("ping") == "ping"
        assert ref.statistics().capacity == config.capacity


async def _monitor_works(watched: Watched) -> None:
    async with otpy.open_node() as node:
        ref = await node.spawn(otpy.pressure.PressureMonitor, [watched], None, 1.0)
        await ref.call(SamplePressure())
        await ref.call(otpy.pressure.GET_PRESSURE)


async def _sample_works(sample: SamplePressure) -> None:
    async with otpy.open_node() as node:
        ref = await node.spawn(otpy.pressure.PressureMonitor, {"q": BoundedQueue(4)}, None, 1.0)
        await ref.call(sample)
        ref.cast_nowait(sample)
        await ref.call(otpy.pressure.GET_PRESSURE)


async def _in_a_supervisor_spec(spec: object) -> None:
    otpy.SupervisorSpec(children=[spec])  # type: ignore[list-item]


async def _flags_work(flags: otpy.SupervisorFlags) -> None:
    otpy.SupervisorSpec(children=[], flags=flags)


async def _window_works(window: otpy._supervision.RestartWindow) -> None:
    otpy._supervision.record_restart(window, 0.0)


async def _backoff_works(backoff: otpy.Backoff) -> None:
    for attempt in (0, 1, 10, 1000):
        otpy.backoff_delay(backoff, attempt, 0.5)


async def _nothing(value: object) -> None:
    """The constructor is the whole stage."""


async def _resend(record: otpy.deadletter.DeadLetter, key: str) -> None:
    """A valid replay handler."""


def _memory_store() -> MemoryDeadLetterStore:
    return MemoryDeadLetterStore()


# -- the registry ----------------------------------------------------------------------

Build = Callable[..., Any]
Later = Callable[[Any], Awaitable[None]]


@attrs.frozen
class Case:
    """How to call one public constructor (or call), and what must work afterwards."""

    build: Build
    arguments: Mapping[str, st.SearchStrategy[object]]
    """A valid value for every argument the case fuzzes."""
    later: Later = _nothing


def _const(value: object) -> st.SearchStrategy[object]:
    return st.just(value)


NAMES = st.sampled_from(["q", "jobs", "é", "a b"])

REGISTRY: dict[str, Case] = {
    # pressure
    "BoundedQueue": Case(
        BoundedQueue,
        {
            "capacity": st.integers(1, 64),
            "name": NAMES,
            "policy": _const(PressurePolicy()),
            "on_reject": _const(None),
        },
        _queue_works,
    ),
    "PartitionedQueue": Case(
        PartitionedQueue,
        {
            "partitions": st.integers(1, 8),
            "capacity_per_partition": st.integers(2, 64),
            "name": NAMES,
            "policy": _const(PressurePolicy()),
            "on_reject": _const(None),
        },
        _partitioned_works,
    ),
    "PressurePolicy": Case(
        PressurePolicy,
        {
            "warn": _const(Threshold(0.5, 0.4)),
            "degraded": _const(Threshold(0.7, 0.6)),
            "shed": _const(Threshold(0.9, 0.8)),
            "min_dwell": st.floats(0, 10),
            "throttle": st.floats(0, 1),
            "defer": _const(frozenset()),
            "shed_priorities": st.sampled_from([Priority.LOW, {Priority.LOW, Priority.NORMAL}]),
        },
        _policy_works,
    ),
    "Threshold": Case(
        lambda **kw: PressurePolicy(warn=Threshold(**kw)),
        {"enter": st.floats(0.1, 0.6), "exit": st.floats(0, 0.1)},
    ),
    "LevelState": Case(
        LevelState,
        {"level": st.sampled_from(Level), "since": st.floats(-1e6, 1e6)},
        lambda state: _nothing(otpy.pressure.advance(PressurePolicy(), state, 0.99, 0.0)),
    ),
    "RateLimiter": Case(
        RateLimiter, {"rate": st.floats(0.5, 1e6), "burst": st.integers(1, 10**6)}, _limiter_works
    ),
    "Watched": Case(
        Watched,
        {
            "name": NAMES,
            "target": st.sampled_from(["some-actor", BoundedQueue(4)]),
            "partition": st.sampled_from([None, 0, "p"]),
        },
        _monitor_works,
    ),
    "SamplePressure": Case(SamplePressure, {"source": st.sampled_from([None, "q"])}, _sample_works),
    # actors and mailboxes
    "MailboxConfig": Case(
        MailboxConfig,
        {
            "capacity": st.integers(1, 10**6),
            "overflow": st.sampled_from(Overflow),
            "wait_timeout": st.sampled_from([None, 0.5, 5.0]),
        },
        _mailbox_works,
    ),
    "DeadLetterStream": Case(
        otpy.DeadLetterStream, {"log_first": st.integers(0, 10), "suppress_for": st.floats(1, 10)}
    ),
    "IdleTimeout": Case(otpy.IdleTimeout, {"after": st.floats(0.1, 10)}),
    "ShutdownWith": Case(otpy.ShutdownWith, {"detail": st.text(max_size=3)}),
    "Node": Case(otpy.Node, {"dead_letters": _const(None)}),
    "open_node": Case(otpy.open_node, {"dead_letters": _const(None)}),
    # supervision
    "ChildSpec": Case(
        otpy.ChildSpec,
        {
            "id": NAMES,
            "start": _const(_Echo),
            "args": _const(()),
            "restart": st.sampled_from(otpy.Restart),
            "shutdown": st.sampled_from([0.0, 5.0, otpy.Shutdown.BRUTAL_KILL]),
            "name": st.sampled_from([None, "echo"]),
            "mailbox": _const(None),
            "start_timeout": st.sampled_from([None, 1.0]),
            "backoff": _const(None),
            "stash_capacity": st.integers(1, 100),
        },
        _in_a_supervisor_spec,
    ),
    "SupervisorSpec": Case(
        otpy.SupervisorSpec,
        {
            "children": _const([]),
            "flags": _const(otpy.SupervisorFlags()),
            "id": NAMES,
            "name": st.sampled_from([None, "sup"]),
            "restart": st.sampled_from(otpy.Restart),
        },
        _in_a_supervisor_spec,
    ),
    "DynamicSupervisorSpec": Case(
        otpy.DynamicSupervisorSpec,
        {
            "child": _const(otpy.ChildSpec(id="w", start=_Echo)),
            "max_children": st.sampled_from([None, 1, 10]),
            "intensity": st.integers(0, 10),
            "period": st.floats(0.1, 60),
            "id": NAMES,
        },
        _in_a_supervisor_spec,
    ),
    "SupervisorFlags": Case(
        otpy.SupervisorFlags,
        {
            "strategy": st.sampled_from(otpy.Strategy),
            "intensity": st.integers(0, 10),
            "period": st.floats(0.1, 60),
        },
        _flags_work,
    ),
    "Backoff": Case(
        otpy.Backoff,
        {
            "minimum": st.floats(0.01, 1),
            "maximum": st.floats(1, 10),
            "jitter": st.floats(0, 1),
            "reset_after": st.sampled_from([None, 10.0]),
        },
        _backoff_works,
    ),
    "RestartWindow": Case(
        otpy._supervision.RestartWindow,
        {"intensity": st.integers(0, 10), "period": st.floats(0.1, 60)},
        _window_works,
    ),
    # dead letters
    "DeadLetter": Case(
        otpy.deadletter.DeadLetter.capture,
        {
            "key": NAMES,
            "source": st.sampled_from(Source),
            "reason_class": _const("ValueError"),
            "reason": st.text(max_size=3),
            "payload": st.sampled_from([b"", b"x", "text"]),
        },
    ),
    "DeadLetterFilter": Case(
        otpy.deadletter.DeadLetterFilter,
        {"key": st.sampled_from([None, "k"]), "since": _const(None), "until": _const(None)},
    ),
    "Diagnostics": Case(
        otpy.deadletter.Diagnostics,
        {"pressure_level": _const(None), "queue_depth": _const(1), "queue_capacity": _const(2)},
    ),
    "RetentionRule": Case(
        otpy.deadletter.RetentionRule,
        {"max_count": st.sampled_from([None, 10]), "max_age": st.sampled_from([None, 60.0])},
    ),
    "RetentionPolicy": Case(
        otpy.deadletter.RetentionPolicy,
        {"interval": st.floats(1, 600), "ledger_max_age": st.sampled_from([None, 60.0])},
    ),
    "ReplayState": Case(otpy.deadletter.ReplayState, {"attempts": st.integers(0, 5)}),
    "MemoryDeadLetterStore": Case(MemoryDeadLetterStore, {"inline_limit": st.integers(0, 10**6)}),
    "DeadLetters": Case(
        otpy.deadletter.DeadLetters,
        {"name": NAMES, "min_backoff": _const(0.01), "max_backoff": _const(0.5)},
    ),
    "RejectionDeadLetters": Case(
        otpy.deadletter.RejectionDeadLetters,
        {"client": _const(otpy.deadletter.DeadLetters()), "key": NAMES},
    ),
    "PartitionedRejectionDeadLetters": Case(
        otpy.deadletter.PartitionedRejectionDeadLetters,
        {"client": _const(otpy.deadletter.DeadLetters())},
    ),
    "ReplayConfig": Case(
        lambda **kw: ReplayConfig(store=_memory_store(), handlers={Source.OUTBOUND: _resend}, **kw),
        {
            "name": NAMES,
            "partitions": st.integers(1, 4),
            "capacity": st.integers(1, 100),
            "handler_timeout": st.floats(0.1, 60),
            "lease_margin": st.floats(0.1, 60),
            "reclaim_interval": st.floats(0.1, 60),
        },
        lambda config: _nothing(config.partition_of("k")),
    ),
}

CALLS: dict[str, Case] = {
    "BoundedQueue.put": Case(_put_past_capacity, {"priority": st.sampled_from(Priority)}),
    "BoundedQueue.put_nowait": Case(
        _put_nowait_past_capacity, {"priority": st.sampled_from(Priority)}
    ),
    "PartitionedQueue.put": Case(
        lambda **kw: PartitionedQueue[int](2, 4).put(item=1, **kw),
        {"key": NAMES, "priority": st.sampled_from(Priority)},
    ),
    "PartitionedQueue.worker_specs": Case(
        lambda **kw: PartitionedQueue(2, 4).worker_specs(_handler, **kw),
        {"max_demand": st.integers(2, 10), "min_demand": st.sampled_from([None, 0, 1])},
    ),
    "PartitionedQueue.drain_spec": Case(
        lambda **kw: PartitionedQueue(2, 4).drain_spec(**kw), {"timeout": st.floats(0.1, 60)}
    ),
    "PartitionedQueue.aclose": Case(
        lambda **kw: PartitionedQueue(2, 4).aclose(**kw), {"timeout": st.floats(0.1, 60)}
    ),
    "RateLimiter.try_acquire": Case(
        lambda **kw: RateLimiter(1.0, burst=4).try_acquire(**kw), {"tokens": st.integers(1, 4)}
    ),
    "RateLimiter.acquire": Case(
        lambda **kw: RateLimiter(1.0, burst=4).acquire(**kw), {"tokens": st.integers(1, 4)}
    ),
    "RateLimiter.set_rate": Case(
        lambda **kw: RateLimiter(1.0, burst=4).set_rate(**kw),
        {"rate": st.floats(0.5, 100), "burst": st.sampled_from([None, 1, 8])},
    ),
    "crash_after": Case(
        lambda **kw: otpy.testing.crash_after(id="c", **kw), {"delay": st.floats(0, 10)}
    ),
    "partition_of": Case(
        otpy.pressure.partition_of, {"key": NAMES, "partitions": st.integers(1, 64)}
    ),
    "stable_hash": Case(otpy.pressure.stable_hash, {"key": NAMES}),
    "Telemetry.force_flush": Case(
        lambda **kw: otpy.telemetry.Telemetry(enabled=False).force_flush(**kw),
        {"timeout": st.floats(0, 5)},
    ),
    "Telemetry.shutdown": Case(
        lambda **kw: otpy.telemetry.Telemetry(enabled=False).shutdown(**kw),
        {"timeout": st.floats(0, 5)},
    ),
}

OWNED_ELSEWHERE: dict[str, str] = {}
"""Cases today's code fails, left out of the parametrisation until the branch that fixes them merges.

Empty this as those branches land: every name here must then pass like the rest.
"""

NOT_BUILT_BY_HAND: dict[str, str] = {
    # snapshots and records otpy builds and hands out
    **dict.fromkeys(
        [
            "ActorStatistics",
            "ActorStatus",
            "DeadLetterEvent",
            "DeadLetterStreamStatistics",
            "ChildCounts",
            "ChildInfo",
            "ChildStatistics",
            "SupervisorStatistics",
            "Admission",
            "QueueStatistics",
            "PartitionedQueueStatistics",
            "PartitionStatistics",
            "RateLimiterStatistics",
            "PressureStatistics",
            "SourcePressure",
            "Down",
            "Exit",
            "StoreStatistics",
            "SweepResult",
            "Page",
            "Reclaimed",
            "Decision",
            "LedgerEntry",
            "DeadLettersStatistics",
            "WriterStatistics",
            "ReplayResult",
        ],
        "a snapshot or record otpy builds",
    ),
    # handles that come from a function, never a constructor call
    "ActorRef": "comes from spawn()",
    "NamedRef": "comes from named()",
    "Caller": "handed to handle_call",
    "Monitor": "comes from ActorRef.monitor()",
    "Timer": "comes from send_after()",
    "Receptionist": "the node's own registry",
    "SupervisorRef": "comes from supervisor_ref()",
    "open_supervisor": "an async context manager over specs, which are fuzzed",
    "StoreHandle": "comes from sqlite_store()",
    "SQLiteDeadLetterStore": "comes from open_store()",
    "Replayer": "built from a ReplayConfig, which is fuzzed",
    "Telemetry": "comes from configure_from_env(); its calls are fuzzed",
    "DeadLetterStore": "a protocol",
    "ReplayStarter": "a protocol",
    "DeadLetterSuppression": "a marker base class for messages",
}


def _classes() -> dict[str, type]:
    found: dict[str, type] = {}
    for module in MODULES:
        for name in module.__all__:
            value = getattr(module, name)
            if not inspect.isclass(value):
                continue
            if issubclass(value, (BaseException, enum.Enum, otpy.Actor)):
                continue  # errors, enums and actors (started by spawn) are not built here
            found[name] = value
    return found


def test_every_public_class_is_registered() -> None:
    """A public class that is neither fuzzed nor explained fails here, so nobody forgets one."""
    unregistered = set(_classes()) - set(REGISTRY) - set(NOT_BUILT_BY_HAND)
    assert unregistered == set(), f"register these in REGISTRY or NOT_BUILT_BY_HAND: {unregistered}"
    assert set(OWNED_ELSEWHERE) <= set(REGISTRY) | set(CALLS)
    assert not set(REGISTRY) & set(NOT_BUILT_BY_HAND)
    assert not set(REGISTRY) & set(CALLS)
    assert set(REGISTRY) | set(CALLS) >= NO_LOOP


REFUSALS = (otpy.OtpyError, TypeError, ValueError, ArithmeticError, LookupError, AttributeError)
"""What a refusal might be; :func:`_refusal_is_typed` then insists on the typed ones."""


def _refusal_is_typed(error: BaseException, replaced: set[str]) -> None:
    assert isinstance(error, otpy.OtpyError), f"untyped {type(error).__name__}: {error}"
    assert isinstance(error, (TypeError, ValueError)), f"{type(error).__name__} is no builtin"
    text = str(error)
    text.encode()  # the message itself prints anywhere
    assert any(name in text for name in replaced), f"{text!r} names none of {sorted(replaced)}"


async def _run(case: Case, arguments: dict[str, object], replaced: set[str]) -> None:
    try:
        made = case.build(**arguments)
        if inspect.isawaitable(made):
            made = await made
    except REFUSALS as exc:
        _refusal_is_typed(exc, replaced)
        return
    await case.later(made)


NO_LOOP = frozenset(
    {
        "Threshold",
        "LevelState",
        "DeadLetterStream",
        "IdleTimeout",
        "ShutdownWith",
        "SupervisorFlags",
        "DeadLetterFilter",
        "RetentionRule",
        "RetentionPolicy",
        "DeadLetters",
        "RejectionDeadLetters",
        "PartitionedRejectionDeadLetters",
        "crash_after",
        "partition_of",
        "stable_hash",
        "Telemetry.force_flush",
        "Telemetry.shutdown",
    }
)
"""Cases that are plain synchronous code: built without an event loop, which is faster.

The rest make anyio primitives, or are async calls, and run on trio's mock clock.
"""


def _fuzz(name: str, data: st.DataObject) -> None:
    case = REGISTRY.get(name) or CALLS[name]
    names = sorted(case.arguments)
    replaced = data.draw(
        st.sets(st.sampled_from(names), min_size=1, max_size=min(2, len(names))), "replaced"
    )
    arguments = {
        arg: data.draw(ODD if arg in replaced else case.arguments[arg], arg) for arg in names
    }
    clock = {"clock": MockClock(autojump_threshold=0)}
    if name not in NO_LOOP:
        anyio.run(_run, case, arguments, replaced, backend="trio", backend_options=clock)
        return
    try:
        made = case.build(**arguments)
    except REFUSALS as exc:
        _refusal_is_typed(exc, replaced)
        return
    if case.later is not _nothing:
        anyio.run(case.later, made, backend="trio", backend_options=clock)


FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES_PER_CASE,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.mark.parametrize("name", sorted(set(REGISTRY) - set(OWNED_ELSEWHERE)))
@FUZZ_SETTINGS
@given(data=st.data())
def test_constructor_takes_odd_values(name: str, data: st.DataObject) -> None:
    """Each public constructor refuses an odd value with a typed error naming it, or builds something that works."""
    _fuzz(name, data)


@pytest.mark.parametrize("name", sorted(set(CALLS) - set(OWNED_ELSEWHERE)))
@FUZZ_SETTINGS
@given(data=st.data())
def test_call_takes_odd_values(name: str, data: st.DataObject) -> None:
    """Each main call refuses an odd argument with a typed error naming it, or works."""
    _fuzz(name, data)


def test_the_refusal_check_tells_typed_errors_from_untyped_ones() -> None:
    """The check itself: an OverflowError, or a typed error naming another argument, fails it."""
    with pytest.raises(AssertionError, match="untyped OverflowError"):
        _refusal_is_typed(OverflowError("int too large"), {"burst"})
    with pytest.raises(AssertionError, match="names none of"):
        _refusal_is_typed(otpy.InvalidArgument("rate", "must be > 0"), {"burst"})
    _refusal_is_typed(otpy.InvalidArgument("burst", "must be >= 1"), {"burst"})
