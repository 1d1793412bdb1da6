"""A token-bucket rate limiter that delays rather than drops (P9)."""

from __future__ import annotations

import math
from typing import final

import anyio
import anyio.lowlevel
import attrs

__all__ = ["RateLimiter", "RateLimiterStatistics"]

_EPSILON = 1e-9


@attrs.frozen(kw_only=True)
class RateLimiterStatistics:
    """A snapshot of a :class:`RateLimiter`.

    Attributes:
        rate: tokens added per second.
        burst: the bucket's size: how many may pass at once after a quiet period.
        tokens: tokens in the bucket now.
        granted: tokens handed out so far.
        waiting: acquirers waiting now.
        waited: seconds acquirers spent waiting, in all.
    """

    rate: float
    burst: int
    tokens: float
    granted: int
    waiting: int
    waited: float


def _check(rate: float, burst: int) -> None:
    if not rate > 0 or math.isinf(rate):
        raise ValueError(f"rate must be a finite number of tokens per second > 0, got {rate!r}")
    if isinstance(burst, bool) or not isinstance(burst, int) or burst < 1:
        raise ValueError(f"burst must be an integer >= 1, got {burst!r}")


@final
class RateLimiter:
    """At most *burst* at once and *rate* per second on average, across all callers.

    ``await limiter.acquire()`` returns when a token is available; callers are served
    in arrival order and nothing is ever dropped. The bucket starts full. Time is
    anyio's clock, so a test clock controls it. Change the rate at run time with
    :meth:`set_rate`; callers already waiting are rescheduled at the new rate.

    Args:
        rate: tokens per second (> 0).
        burst: the bucket's capacity (>= 1).

    Raises:
        ValueError: *rate* or *burst* is out of range.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        _check(rate, burst)
        self._rate = float(rate)
        self._burst = burst
        self._tokens = float(burst)
        self._stamp: float | None = None
        self._lock = anyio.Lock()  # FIFO: the first to wait is the first served
        self._changed = anyio.Event()
        self._granted = 0
        self._waiting = 0
        self._waited = 0.0

    def __repr__(self) -> str:
        return f"<RateLimiter {self._rate:g}/s burst={self._burst}>"

    def _refill(self, now: float) -> None:
        if self._stamp is not None:
            self._tokens = min(self._burst, self._tokens + (now - self._stamp) * self._rate)
        self._stamp = now

    def set_rate(self, rate: float, burst: int | None = None) -> None:
        """Change the rate (and the burst); tokens already earned are kept, up to the new burst.

        Raises:
            ValueError: out of range.
        """
        burst = self._burst if burst is None else burst
        _check(rate, burst)
        self._refill(anyio.current_time())
        self._rate = float(rate)
        self._burst = burst
        self._tokens = min(self._tokens, burst)
        self._changed.set()
        self._changed = anyio.Event()

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take *tokens* if they are there now (and nobody is waiting); never waits."""
        self._refill(anyio.current_time())
        if self._waiting or self._tokens < tokens - _EPSILON:
            return False
        self._tokens -= tokens
        self._granted += tokens
        return True

    async def acquire(self, tokens: int = 1) -> None:
        """Wait until *tokens* are available, in arrival order, and take them.

        Raises:
            ValueError: *tokens* is more than the burst: it could never be granted.
        """
        if tokens < 1 or tokens > self._burst:
            raise ValueError(
                f"cannot acquire {tokens} tokens from a bucket of {self._burst}; "
                "acquire between 1 and burst"
            )
        self._waiting += 1
        started = anyio.current_time()
        try:
            async with self._lock:
                while True:
                    now = anyio.current_time()
                    self._refill(now)
                    if tokens > self._burst:  # the burst shrank while we waited
                        raise ValueError(
                            f"cannot acquire {tokens} tokens: the burst is now {self._burst}"
                        )
                    # A hair short counts as there: the clock cannot measure the
                    # wait for the last 1e-9 of a token, and would never advance.
                    if self._tokens >= tokens - _EPSILON:
                        self._tokens -= tokens
                        self._granted += tokens
                        break
                    delay = (tokens - self._tokens) / self._rate
                    changed = self._changed
                    with anyio.move_on_after(delay):
                        await changed.wait()
        finally:
            self._waiting -= 1
            self._waited += anyio.current_time() - started
        if anyio.current_time() == started:
            await anyio.lowlevel.checkpoint()

    def statistics(self) -> RateLimiterStatistics:
        """Return a snapshot."""
        return RateLimiterStatistics(
            rate=self._rate,
            burst=self._burst,
            tokens=self._tokens,
            granted=self._granted,
            waiting=self._waiting,
            waited=self._waited,
        )
