"""Restart intensity: a sliding window of restart times per supervisor (SUP-5).

Pure arithmetic over ``now`` so it is tested without a clock. A restart exactly
``period`` seconds old still counts, as in OTP.
"""

from __future__ import annotations

from collections import deque

from .._check import count, number

__all__ = ["RestartWindow", "record_restart"]


class RestartWindow:
    """The times of the restarts still inside the period, oldest first.

    Raises:
        InvalidArgumentType: *intensity* is not an integer, or *period* not a number.
        InvalidArgument: *intensity* is negative or above ``2**53``, or *period* is
            not finite and > 0.
    """

    __slots__ = ("intensity", "period", "times", "total")

    def __init__(self, intensity: int, period: float) -> None:
        self.intensity = count(intensity, "intensity", owner="RestartWindow", minimum=0)
        self.period = number(period, "period", owner="RestartWindow", unit=" of seconds")
        self.times: deque[float] = deque()
        self.total = 0

    def count(self, now: float) -> int:
        """Return how many restarts are inside the window at *now*."""
        self._expire(now)
        return len(self.times)

    def _expire(self, now: float) -> None:
        times = self.times
        while times and now > times[0] + self.period:  # the sum a timer waits for
            times.popleft()


def record_restart(window: RestartWindow, now: float) -> bool:
    """Add a restart at *now*; return whether it is allowed (count <= intensity).

    When it is not allowed the supervisor gives up; the restart stays recorded so
    statistics show ``intensity + 1`` restarts in the window.
    """
    window._expire(now)
    window.times.append(now)
    window.total += 1
    return len(window.times) <= window.intensity
