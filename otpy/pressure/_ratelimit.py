"""A token-bucket rate limiter that delays rather than drops (PRS-9)."""

from __future__ import annotations

from typing import final

import anyio
import anyio.lowlevel
import attrs

from .._check import count, number
from .._exceptions import InvalidArgument

__all__ = ["RateLimiter", "RateLimiterStatistics"]

_EPSILON = 1e-9


def _short(tokens: int, have: float) -> bool:
    """Whether *have* tokens fall short of *tokens*, beyond float rounding.

    A hair short counts as there: 1e-9 of a token, or the last few units of a
    bucket so big that floats count it in steps (a bucket of 2**53 counts in 1s).
    """
    return have < tokens - max(_EPSILON, tokens * 2.0**-50)


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


def _check(rate: object, burst: object) -> tuple[float, int]:
    rate = number(rate, "rate", owner="rate limiter", unit=" of tokens per second")
    return rate, count(burst, "burst", owner="rate limiter")


@final
class RateLimiter:
    """At most *burst* at once and *rate* per second on average, across all callers.

    ``await limiter.acquire()`` returns when a token is available; callers are served
    in arrival order and nothing is ever dropped. The bucket starts full. Time is
    anyio's clock, so a test clock controls it. Change the rate at run time with
    :meth:`set_rate`; callers already waiting are rescheduled at the new rate.

    Tokens are whole: every call takes an integer number of them, between 1 and the
    burst (a request for more could never be granted, so it is refused at once).

    Args:
        rate: tokens per second: a finite number > 0 (not a bool).
        burst: the bucket's capacity: an integer in ``[1, 2**53]``.

    Raises:
        InvalidArgument: *rate* or *burst* is out of range (an
            :class:`~otpy.InvalidArgumentType` if it is not a number); also a
            ``ValueError``.
    """

    def __init__(self, rate: float, burst: int = 1) -> None:
        self._rate, self._burst = _check(rate, burst)
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
            InvalidArgument: *rate* or *burst* is out of range, as for the constructor;
                nothing changed.
        """
        rate, burst = _check(rate, self._burst if burst is None else burst)
        self._refill(anyio.current_time())
        self._rate = rate
        self._burst = burst
        self._tokens = min(self._tokens, burst)
        self._changed.set()
        self._changed = anyio.Event()

    def _tokens_wanted(self, tokens: object) -> int:
        if tokens.__class__ is int and 1 <= tokens <= self._burst:
            return tokens
        wanted = count(tokens, "tokens", owner="rate limiter")
        if wanted > self._burst:
            raise InvalidArgument(
                "tokens",
                f"must be between 1 and burst={self._burst}, got {wanted}: a bucket of "
                f"{self._burst} can never hold {wanted} tokens",
                owner="rate limiter",
            )
        return wanted

    def try_acquire(self, tokens: int = 1) -> bool:
        """Take *tokens* if they are there now (and nobody is waiting); never waits.

        Raises:
            InvalidArgument: *tokens* is not an integer between 1 and the burst.
        """
        tokens = self._tokens_wanted(tokens)
        self._refill(anyio.current_time())
        if self._waiting or _short(tokens, self._tokens):
            return False
        self._tokens -= tokens
        self._granted += tokens
        return True

    async def acquire(self, tokens: int = 1) -> None:
        """Wait until *tokens* are available, in arrival order, and take them.

        Raises:
            InvalidArgument: *tokens* is not an integer between 1 and the burst: more
                than the burst could never be granted, so it is refused at once. If
                :meth:`set_rate` shrinks the burst below *tokens* while this waits,
                it is raised then.
        """
        if self.try_acquire(tokens):
            # Nobody waits and the tokens are there: no lock to take (it would yield
            # inside a shielded scope), only the checkpoint every async call makes.
            await anyio.lowlevel.checkpoint()
            return
        tokens = self._tokens_wanted(tokens)
        self._waiting += 1
        started = anyio.current_time()
        try:
            async with self._lock:
                while True:
                    now = anyio.current_time()
                    self._refill(now)
                    if tokens > self._burst:  # the burst shrank while we waited
                        raise InvalidArgument(
                            "tokens",
                            f"must be between 1 and burst={self._burst}, got {tokens}: "
                            "the burst shrank while this waited",
                            owner="rate limiter",
                        )
                    delay = (tokens - self._tokens) / self._rate
                    # Also there: a wait too short for the clock to measure, which
                    # would never advance it (at a huge rate, say).
                    if not _short(tokens, self._tokens) or now + delay <= now:
                        self._tokens = max(self._tokens - tokens, 0.0)
                        self._granted += tokens
                        break
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
