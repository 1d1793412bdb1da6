"""The token-bucket rate limiter under virtual time (P9): it delays, never drops."""

from __future__ import annotations

import anyio
import pytest

from otpy import RateLimiter
from otpy.testing import virtual_time

pytestmark = pytest.mark.parametrize("anyio_backend", [virtual_time()])


async def test_p9_rate_is_exact_after_the_burst() -> None:
    """P9: 10/s with burst 5: five pass at once, then one every 0.1 s, nothing dropped."""
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


async def test_p9_many_producers_share_the_rate_in_arrival_order() -> None:
    """P9: the limit holds across all producers, served first come first served."""
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


async def test_p9_rate_changes_at_run_time_and_reschedules_waiters() -> None:
    """P9: raising the rate while a producer waits lets it through at the new rate."""
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
    """Out-of-range rates, bursts and requests raise ValueError saying what is allowed."""
    with pytest.raises(ValueError, match=r"rate must be a finite number of tokens per second > 0"):
        RateLimiter(0.0)
    with pytest.raises(ValueError, match=r"burst must be an integer >= 1"):
        RateLimiter(1.0, burst=0)
    limiter = RateLimiter(1.0, burst=2)
    with pytest.raises(ValueError, match=r"cannot acquire 3 tokens from a bucket of 2"):
        await limiter.acquire(3)
    with pytest.raises(ValueError, match="rate must be"):
        limiter.set_rate(float("inf"))
    assert repr(limiter) == "<RateLimiter 1/s burst=2>"
