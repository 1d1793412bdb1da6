"""The token-bucket rate limiter under virtual time (PRS-9): it delays, never drops."""

from __future__ import annotations

import anyio
import pytest

from otpy import InvalidArgument
from otpy.pressure import RateLimiter
from otpy.testing import virtual_time

pytestmark = pytest.mark.parametrize("anyio_backend", [virtual_time()])


async def test_prs_9_rate_is_exact_after_the_burst() -> None:
    """PRS-9: 10/s with burst 5: five pass at once, then one every 0.1 s, nothing dropped."""
    limiter = RateLimiter(10.0, burst=5)
    start = anyio.current_time()
    times = []
    for _ in range(25):
        await limiter.acquire()
        times.append(round(anyio.current_time() - start, 9))
    assert times[:5] == [0.0] * 5
    assert times[5:] == [round(0.1 * k, 9) for k in range(1, 21)]
    stats = limiter.statistics()
    assert (stats.granted, stats.waiting) == (25, 0)


async def test_prs_9_many_producers_share_the_rate_in_arrival_order() -> None:
    """PRS-9: the limit holds across all producers, served first come first served."""
    limiter = RateLimiter(4.0, burst=1)
    order: list[tuple[int, float]] = []
    start = anyio.current_time()

    async def producer(n: int) -> None:
        await limiter.acquire()
        order.append((n, anyio.current_time() - start))

    async with anyio.create_task_group() as tg:
        for n in range(8):
            tg.start_soon(producer, n)
            await anyio.wait_all_tasks_blocked()
    assert [n for n, _ in order] == list(range(8))
    assert [round(t, 9) for _, t in order] == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]


async def test_prs_9_rate_changes_at_run_time_and_reschedules_waiters() -> None:
    """PRS-9: raising the rate while a producer waits lets it through at the new rate."""
    limiter = RateLimiter(1.0, burst=1)
    await limiter.acquire()  # empties the bucket
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.acquire)
        await anyio.sleep(0.25)  # a quarter of a token earned at 1/s
        limiter.set_rate(10.0)  # the remaining 0.75 tokens take 0.075 s now
    assert round(anyio.current_time() - start, 9) == 0.325
    assert limiter.statistics().rate == 10.0


async def test_twin_slowing_down_makes_waiters_wait_longer() -> None:
    """Twin: lowering the rate while a producer waits delays it accordingly."""
    limiter = RateLimiter(10.0, burst=1)
    await limiter.acquire()
    start = anyio.current_time()
    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.acquire)
        await anyio.sleep(0.05)  # half a token at 10/s
        limiter.set_rate(1.0)  # the other half takes 0.5 s now
    assert round(anyio.current_time() - start, 9) == 0.55


async def test_try_acquire_never_waits_and_respects_waiters() -> None:
    """try_acquire takes what is there; it does not jump the queue of waiting producers."""
    limiter = RateLimiter(1.0, burst=2)
    assert limiter.try_acquire(2)
    assert not limiter.try_acquire()
    async with anyio.create_task_group() as tg:
        tg.start_soon(limiter.acquire)
        await anyio.wait_all_tasks_blocked()
        await anyio.sleep(1.0)  # a token is earned, but the waiter gets it
        assert not limiter.try_acquire()
    await anyio.sleep(1.0)
    assert limiter.try_acquire()


async def test_bad_arguments_are_typed_errors() -> None:
    """Out-of-range rates, bursts and requests raise InvalidArgument saying what is allowed."""
    with pytest.raises(
        InvalidArgument,
        match=r"^rate limiter: rate must be a finite number of tokens per second > 0",
    ):
        RateLimiter(0.0)
    with pytest.raises(InvalidArgument, match=r"^rate limiter: burst must be an integer >= 1"):
        RateLimiter(1.0, burst=0)
    limiter = RateLimiter(1.0, burst=2)
    with pytest.raises(
        InvalidArgument, match=r"^rate limiter: tokens must be between 1 and burst=2, got 3"
    ):
        await limiter.acquire(3)
    with pytest.raises(InvalidArgument, match="rate must be"):
        limiter.set_rate(float("inf"))
    assert repr(limiter) == "<RateLimiter 1/s burst=2>"


@pytest.mark.parametrize("rate", [True, False, float("nan"), float("-inf"), -1, "10", None])
async def test_rate_must_be_a_finite_positive_number_not_a_bool(rate: object) -> None:
    """RateLimiter(rate=True) is refused: a bool is not a rate, nor is NaN, inf or a string."""
    with pytest.raises(
        InvalidArgument, match=r"^rate limiter: rate must be a finite number"
    ) as info:
        RateLimiter(rate)  # type: ignore[arg-type]
    assert info.value.argument == "rate"


@pytest.mark.parametrize("burst", [10**30, 2**53 + 1, 1.5, True, "2"])
async def test_burst_is_bounded_and_an_integer(burst: object) -> None:
    """burst=10**30 is refused at once with its bound, rather than overflowing a later call."""
    with pytest.raises(InvalidArgument, match=r"^rate limiter: burst must be an integer"):
        RateLimiter(1.0, burst=burst)  # type: ignore[arg-type]


async def test_the_largest_burst_works_in_every_call() -> None:
    """At burst=2**53, the bound, acquire, try_acquire, set_rate and statistics all work."""
    limiter = RateLimiter(1e300, burst=2**53)
    assert limiter.try_acquire(2**53)
    await limiter.acquire(2**52)
    limiter.set_rate(1.0, burst=2**53)
    assert limiter.statistics().burst == 2**53


@pytest.mark.parametrize("tokens", [2.5, 0, -1, True, "1", None, 3, 10**400])
async def test_acquire_refuses_what_can_never_be_granted_at_once(tokens: object) -> None:
    """acquire(2.5), acquire(0) or more than the burst raise at once: nothing waits, nothing is taken."""
    limiter = RateLimiter(1.0, burst=2)
    start = anyio.current_time()
    with pytest.raises(InvalidArgument, match=r"^rate limiter: tokens must be"):
        await limiter.acquire(tokens)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^rate limiter: tokens must be"):
        limiter.try_acquire(tokens)  # type: ignore[arg-type]
    assert anyio.current_time() == start
    stats = limiter.statistics()
    assert (stats.tokens, stats.granted, stats.waiting) == (2.0, 0, 0)


async def test_twin_whole_tokens_up_to_the_burst_are_granted() -> None:
    """Twin: acquire(2) and try_acquire(1) on a bucket of 2 are granted as before."""
    limiter = RateLimiter(1.0, burst=2)
    await limiter.acquire(2)
    await anyio.sleep(1.0)
    assert limiter.try_acquire(1)
    assert limiter.statistics().granted == 3


async def test_a_waiter_is_refused_when_the_burst_shrinks_below_its_request() -> None:
    """A waiter for 2 tokens gets InvalidArgument when set_rate shrinks the burst to 1."""
    limiter = RateLimiter(1.0, burst=2)
    await limiter.acquire(2)
    errors: list[InvalidArgument] = []

    async def waiter() -> None:
        try:
            await limiter.acquire(2)
        except InvalidArgument as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        tg.start_soon(waiter)
        await anyio.wait_all_tasks_blocked()
        limiter.set_rate(1.0, burst=1)
    assert [str(e) for e in errors] == [
        "rate limiter: tokens must be between 1 and burst=1, got 2: the burst shrank while this waited"
    ]
    assert limiter.statistics().waiting == 0
