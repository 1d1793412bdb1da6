"""Benchmarks 15-16: what the circuit breaker and the rate limiter add to each call.

Both guard every HTTP attempt the gateway makes, so their cost is per call. Each
figure is nanoseconds per call, guarded against unguarded, in the same run:

15. breaker: a closed ``CircuitBreaker`` asked before each call (``try_acquire``) and
    told its outcome after (``on_success``, or ``on_failure`` for 1 call in 100, so it
    stays closed), with the default count window (the last 100 calls) and with a
    60-second time window, around a plain function call that does nothing, against
    the same loop without the breaker (the same outcome branch, no bookkeeping).
    The synchronous loops pass a simulated clock (1,000 calls a second, so the time
    window moves to a new second every 1,000 calls and forgets the oldest), which
    isolates the breaker's own work. The async loops guard an awaited call as a
    caller writes it, reading ``anyio.current_time()`` before and after, on this
    runtime: once around a coroutine that returns without suspending, and once around
    one that yields to the event loop once (the least any real I/O does).
16. rate limit: ``await limiter.acquire()`` before each call, as ``HttpDestination``
    does, with tokens always available (a rate of 10**9 a second: it never waits),
    around the same two awaited calls, against the calls alone; and the non-waiting
    ``try_acquire()`` around the plain function call, against the bare loop.

An HTTP attempt costs hundreds of microseconds even to a server on loopback (a
request written and parsed, a response read and parsed, two trips through the event
loop and the kernel), so read these nanoseconds in proportion.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio
import anyio.lowlevel

from otpy.gateway import BreakerPolicy, BreakerState, CircuitBreaker
from otpy.pressure import RateLimiter

from ._harness import BenchmarkResult, Figure, Sample, Stopwatch, column, median, run_rounds

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping, Sequence

    from ._harness import Runtime, Size

__all__ = ["run_breaker", "run_ratelimit"]

FAILURE_EVERY = 100
"""One call in 100 fails: a 1 % failure rate keeps a 50 % breaker closed."""
STEP = 0.001
"""The simulated clock's step per call: 1,000 calls a second on one destination."""
DURATION = 0.0003
"""What each guarded call reports it took: 300 us, well under the slow-call duration."""
COUNT_WINDOW = BreakerPolicy()
"""Resilience4j's defaults: the last 100 calls, rates computed once 100 are in."""
TIME_WINDOW = BreakerPolicy(window_type="time", window_size=60)
"""The calls of the last 60 seconds, rates computed once 100 are in."""
RATE = 1e9
"""Tokens a second for the rate limiter: more than any loop here asks for."""
BURST = 1000

HTTP_NOTE = (
    "for scale: one HTTP attempt costs hundreds of us even to a loopback server "
    "(request and response written and parsed, two trips through the loop and the kernel)"
)


def _call(now: float) -> None:
    """The guarded synchronous call: it is handed the time, and does nothing."""


async def _returns() -> None:
    """An awaited call that returns without suspending."""


async def _yields() -> None:
    """An awaited call that yields to the event loop once, as any I/O does at least."""
    await anyio.lowlevel.checkpoint()


def _per_call(watch: Stopwatch, n: int) -> Sample:
    return {"ns_per_call": watch.elapsed_ns / n, **watch.gc_sample()}


def _check_outcomes(ok: int, failed: int, n: int) -> None:
    if ok + failed != n or failed != -(-n // FAILURE_EVERY):
        raise RuntimeError(f"{ok} successes and {failed} failures for {n} calls")


def _check_breaker(breaker: CircuitBreaker, now: float) -> None:
    stats = breaker.statistics(now)
    if stats.state is not BreakerState.CLOSED or stats.rejected or not stats.failed:
        raise RuntimeError(f"the breaker did not stay closed and admit every call: {stats}")


# -- synchronous: the breaker's own work, on a simulated clock -----------------------------


async def _bare_loop(n: int) -> Sample:
    """The loop without a breaker: the time, the call and the outcome branch, nothing else."""
    call = _call
    ok = failed = 0
    with Stopwatch() as watch:
        for i in range(n):
            call(i * STEP)
            if i % FAILURE_EVERY:
                ok += 1
            else:
                failed += 1
    _check_outcomes(ok, failed, n)
    return _per_call(watch, n)


async def _guarded_loop(n: int, policy: BreakerPolicy) -> Sample:
    call = _call
    breaker = CircuitBreaker(policy, now=0.0)
    now = 0.0
    with Stopwatch() as watch:
        for i in range(n):
            now = i * STEP
            if breaker.try_acquire(now):
                call(now)
                if i % FAILURE_EVERY:
                    breaker.on_success(now, DURATION)
                else:
                    breaker.on_failure(now, DURATION)
    _check_breaker(breaker, now)
    return _per_call(watch, n)


async def _count_window(n: int) -> Sample:
    """The loop with a closed breaker counting the last 100 calls."""
    return await _guarded_loop(n, COUNT_WINDOW)


async def _time_window(n: int) -> Sample:
    """The loop with a closed breaker counting the calls of the last 60 seconds."""
    return await _guarded_loop(n, TIME_WINDOW)


# -- async: an awaited call, guarded as a caller writes it ---------------------------------


async def _awaited(n: int, fn: Callable[[], Awaitable[None]]) -> Sample:
    ok = failed = 0
    with Stopwatch() as watch:
        for i in range(n):
            await fn()
            if i % FAILURE_EVERY:
                ok += 1
            else:
                failed += 1
    _check_outcomes(ok, failed, n)
    return _per_call(watch, n)


async def _breaker_awaited(n: int, fn: Callable[[], Awaitable[None]]) -> Sample:
    clock = anyio.current_time
    breaker = CircuitBreaker(COUNT_WINDOW, now=clock())
    now = clock()
    with Stopwatch() as watch:
        for i in range(n):
            started = clock()
            if breaker.try_acquire(started):
                await fn()
                now = clock()
                if i % FAILURE_EVERY:
                    breaker.on_success(now, now - started)
                else:
                    breaker.on_failure(now, now - started)
    _check_breaker(breaker, now)
    return _per_call(watch, n)


async def _returns_alone(n: int) -> Sample:
    """Await a coroutine that returns at once, *n* times."""
    return await _awaited(n, _returns)


async def _returns_guarded(n: int) -> Sample:
    """The same, each await guarded by a closed breaker."""
    return await _breaker_awaited(n, _returns)


async def _yields_alone(n: int) -> Sample:
    """Await a coroutine that yields to the loop once, *n* times."""
    return await _awaited(n, _yields)


async def _yields_guarded(n: int) -> Sample:
    """The same, each await guarded by a closed breaker."""
    return await _breaker_awaited(n, _yields)


# -- the rate limiter, tokens always there ------------------------------------------------


def _check_limiter(limiter: RateLimiter, n: int) -> None:
    stats = limiter.statistics()
    if stats.granted != n or stats.waiting:
        raise RuntimeError(f"the rate limiter granted {stats.granted} of {n} tokens")


async def _limited(n: int, fn: Callable[[], Awaitable[None]]) -> Sample:
    limiter = RateLimiter(RATE, BURST)
    ok = failed = 0
    with Stopwatch() as watch:
        for i in range(n):
            await limiter.acquire()
            await fn()
            if i % FAILURE_EVERY:
                ok += 1
            else:
                failed += 1
    _check_outcomes(ok, failed, n)
    _check_limiter(limiter, n)
    return _per_call(watch, n)


async def _returns_limited(n: int) -> Sample:
    """Await a coroutine that returns at once, *n* times, each after ``acquire()``."""
    return await _limited(n, _returns)


async def _yields_limited(n: int) -> Sample:
    """Await a coroutine that yields once, *n* times, each after ``acquire()``."""
    return await _limited(n, _yields)


async def _try_acquire_loop(n: int) -> Sample:
    """The bare loop, each call after a ``try_acquire()`` that finds a token."""
    call = _call
    limiter = RateLimiter(RATE, BURST)
    ok = failed = 0
    with Stopwatch() as watch:
        for i in range(n):
            if limiter.try_acquire():
                call(i * STEP)
                if i % FAILURE_EVERY:
                    ok += 1
                else:
                    failed += 1
    _check_outcomes(ok, failed, n)
    _check_limiter(limiter, n)
    return _per_call(watch, n)


# -- figures -----------------------------------------------------------------------------


def _figure(
    samples: Mapping[str, Sequence[Sample]], metric: str, label: str, mine: str, theirs: str
) -> Figure:
    return Figure(
        metric=metric,
        label=label,
        unit="ns",
        higher_is_better=False,
        baseline_name=theirs,
        otpy_samples=column(samples[mine], "ns_per_call"),
        baseline_samples=column(samples[theirs], "ns_per_call"),
    )


def _overheads(runtime: Runtime, figures: Sequence[Figure]) -> tuple[str, dict[str, float]]:
    """The added ns per call of each figure: the median of the per-repetition differences."""
    added = {
        figure.metric: median(
            [o - b for o, b in zip(figure.otpy_samples, figure.baseline_samples, strict=True)]
        )
        for figure in figures
    }
    text = ", ".join(f"{figure.label} +{added[figure.metric]:,.0f} ns" for figure in figures)
    return (
        f"{runtime.name}: added per call (median of the differences): {text}",
        {f"added_ns.{metric}": value for metric, value in added.items()},
    )


def _sizes(size: Size) -> tuple[int, int]:
    """Calls per repetition: synchronous loops, async loops."""
    return (
        size.pick(full=500_000, quick=50_000, smoke=1_000),
        size.pick(full=100_000, quick=10_000, smoke=200),
    )


def run_breaker(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """ns per call with a closed circuit breaker (count and time windows) against none."""
    n_sync, n_async = _sizes(size)
    plain = run_rounds(
        runtime,
        {
            "the bare loop": _bare_loop,
            "count window": _count_window,
            "time window": _time_window,
        },
        size=n_sync,
        repeat=repeat,
        warmup=n_sync // 20,
    )
    awaited = run_rounds(
        runtime,
        {
            "the await alone": _returns_alone,
            "guarded await": _returns_guarded,
            "one yield alone": _yields_alone,
            "guarded yield": _yields_guarded,
        },
        size=n_async,
        repeat=repeat,
        warmup=n_async // 20,
    )
    figures = (
        _figure(plain, "count_ns", "count window (100 calls)", "count window", "the bare loop"),
        _figure(plain, "time_ns", "time window (60 s)", "time window", "the bare loop"),
        _figure(
            awaited,
            "await_ns",
            "await that returns at once",
            "guarded await",
            "the await alone",
        ),
        _figure(
            awaited,
            "yield_ns",
            "await that yields once",
            "guarded yield",
            "one yield alone",
        ),
    )
    added, diagnostics = _overheads(runtime, figures)
    return BenchmarkResult(
        name="breaker",
        title="15. breaker overhead",
        size=(
            f"{n_sync:,} synchronous and {n_async:,} awaited calls per repetition, "
            "1 in 100 failing, through a closed CircuitBreaker"
        ),
        figures=figures,
        notes=(
            "synchronous loops: a simulated clock at 1,000 calls/s (the breaker's own "
            "work); awaited loops: two anyio.current_time() reads per call included",
            HTTP_NOTE,
            added,
        ),
        diagnostics=diagnostics,
    )


def run_ratelimit(runtime: Runtime, size: Size, repeat: int) -> BenchmarkResult:
    """ns per call with a rate limiter that always has tokens against none."""
    n_sync, n_async = _sizes(size)
    plain = run_rounds(
        runtime,
        {"the bare loop": _bare_loop, "try_acquire": _try_acquire_loop},
        size=n_sync,
        repeat=repeat,
        warmup=n_sync // 20,
    )
    awaited = run_rounds(
        runtime,
        {
            "the await alone": _returns_alone,
            "acquire, await": _returns_limited,
            "one yield alone": _yields_alone,
            "acquire, yield": _yields_limited,
        },
        size=n_async,
        repeat=repeat,
        warmup=n_async // 20,
    )
    figures = (
        _figure(
            awaited, "acquire_await_ns", "acquire(), await", "acquire, await", "the await alone"
        ),
        _figure(
            awaited, "acquire_yield_ns", "acquire(), yield", "acquire, yield", "one yield alone"
        ),
        _figure(plain, "try_acquire_ns", "try_acquire(), call", "try_acquire", "the bare loop"),
    )
    added, diagnostics = _overheads(runtime, figures)
    return BenchmarkResult(
        name="ratelimit",
        title="16. rate-limit overhead",
        size=(
            f"{n_async:,} awaited and {n_sync:,} synchronous calls per repetition through "
            f"a RateLimiter({RATE:g}/s, burst {BURST:,}) that never waits"
        ),
        figures=figures,
        notes=(
            "acquire() is what HttpDestination awaits before each attempt; with tokens "
            "there and nobody waiting it takes them at once and makes one checkpoint "
            "(the lock is only for waiters)",
            HTTP_NOTE,
            added,
        ),
        diagnostics=diagnostics,
    )
