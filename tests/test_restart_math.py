"""The pure arithmetic behind restart intensity and backoff (SUP-5, SUP-14), property-tested."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

import otpy
from otpy import Backoff, backoff_delay
from otpy._supervision import RestartWindow, record_restart


def test_sup_5_restart_exactly_period_old_still_counts() -> None:
    """SUP-5: a restart exactly `period` seconds old is still inside the window."""
    window = RestartWindow(intensity=1, period=5.0)
    assert record_restart(window, 0.0)
    assert not record_restart(window, 5.0)


def test_sup_5_restart_just_older_than_period_expires() -> None:
    """SUP-5 twin: a restart a hair older than `period` has left the window."""
    window = RestartWindow(intensity=1, period=5.0)
    assert record_restart(window, 0.0)
    assert record_restart(window, 5.000001)


def test_sup_5_intensity_zero_refuses_the_first_restart() -> None:
    """SUP-5: intensity 0 allows no restart at all."""
    assert not record_restart(RestartWindow(intensity=0, period=5.0), 0.0)


@given(
    intensity=st.integers(min_value=0, max_value=20),
    period=st.floats(min_value=0.1, max_value=100, allow_nan=False),
    gaps=st.lists(st.floats(min_value=0, max_value=50, allow_nan=False), min_size=1, max_size=60),
)
def test_sup_5_window_matches_a_brute_force_count(
    intensity: int, period: float, gaps: list[float]
) -> None:
    """SUP-5: allowed iff the restarts within `period` (inclusive) of now number at most intensity."""
    window = RestartWindow(intensity=intensity, period=period)
    times: list[float] = []
    now = 0.0
    for gap in gaps:
        now += gap
        times.append(now)
        # Inside the window until now passes t + period: the sum a timer waits for.
        expected = sum(1 for t in times if now <= t + period) <= intensity
        assert record_restart(window, now) == expected
        if not expected:
            break
    assert window.total == len(times)


@given(
    minimum=st.floats(min_value=0.001, max_value=10, allow_nan=False),
    factor=st.floats(min_value=1, max_value=1000, allow_nan=False),
    jitter=st.floats(min_value=0, max_value=1, allow_nan=False),
    attempt=st.integers(min_value=0, max_value=5000),
    random=st.floats(min_value=0, max_value=1, exclude_max=True, allow_nan=False),
)
def test_sup_14_backoff_delay_bounded_by_min_and_max(
    minimum: float, factor: float, jitter: float, attempt: int, random: float
) -> None:
    """SUP-14: every delay lies in [minimum, maximum]: jitter is applied before the cap."""
    backoff = Backoff(minimum=minimum, maximum=minimum * factor, jitter=jitter)
    delay = backoff_delay(backoff, attempt, random)
    assert minimum <= delay <= backoff.maximum


@given(
    attempt=st.integers(min_value=0, max_value=30),
    random=st.floats(min_value=0, max_value=1, exclude_max=True, allow_nan=False),
)
def test_sup_14_backoff_grows_monotonically_for_the_same_draw(attempt: int, random: float) -> None:
    """SUP-14: with the same random draw, the next attempt never waits less."""
    backoff = Backoff(minimum=0.1, maximum=30.0, jitter=0.5)
    assert backoff_delay(backoff, attempt + 1, random) >= backoff_delay(backoff, attempt, random)


def test_sup_14_backoff_doubles_without_jitter_and_caps() -> None:
    """SUP-14: jitter 0 gives minimum * 2**n, capped at maximum (Akka's 3 s/30 s example)."""
    backoff = Backoff(minimum=3.0, maximum=30.0, jitter=0.0)
    assert [backoff_delay(backoff, n, 0.99) for n in range(6)] == [3, 6, 12, 24, 30, 30]


def test_sup_14_backoff_default_reset_after_is_midpoint() -> None:
    """SUP-14: reset_after defaults to (minimum + maximum) / 2, like Akka."""
    assert Backoff(minimum=1.0, maximum=9.0).quiet_period == 5.0
    assert Backoff(minimum=1.0, maximum=9.0, reset_after=2.0).quiet_period == 2.0


def test_sup_5_a_restart_exactly_period_old_counts_at_any_time() -> None:
    """SUP-5: at t + period a restart at t is still in the window, even where (t + 5.0) - t > 5.0."""
    t = 5.709129450392925
    window = RestartWindow(intensity=1, period=5.0)
    assert record_restart(window, t)
    assert not record_restart(window, t + 5.0)  # both are inside the window: 2 > 1
    later = RestartWindow(intensity=1, period=5.0)
    assert record_restart(later, t)
    assert record_restart(later, math.nextafter(t + 5.0, math.inf))


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"intensity": None, "period": 5.0},
            otpy.InvalidArgumentType,
            "RestartWindow: intensity must be an integer >= 0, got None",
        ),
        (
            {"intensity": True, "period": 5.0},
            otpy.InvalidArgumentType,
            "RestartWindow: intensity must be an integer >= 0, got True",
        ),
        (
            {"intensity": 2**60, "period": 5.0},
            otpy.InvalidArgument,
            "RestartWindow: intensity must be an integer <= 2**53, got 1152921504606846976",
        ),
        (
            {"intensity": 1, "period": "5"},
            otpy.InvalidArgumentType,
            "RestartWindow: period must be a finite number of seconds > 0, got '5'",
        ),
        (
            {"intensity": 1, "period": math.nan},
            otpy.InvalidArgument,
            "RestartWindow: period must be a finite number of seconds > 0, got nan",
        ),
    ],
)
def test_sup_5_restart_window_refuses_what_it_cannot_count_with(
    arguments: dict[str, object], error: type[otpy.InvalidArgument], message: str
) -> None:
    """SUP-5: a bad intensity or period fails when the window is built, not at the first restart."""
    with pytest.raises(error) as info:
        RestartWindow(**arguments)  # type: ignore[arg-type]
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("arguments", "error", "message"),
    [
        (
            {"minimum": None},
            otpy.InvalidArgumentType,
            "Backoff: minimum must be a finite number of seconds > 0, got None",
        ),
        (
            {"maximum": math.inf},
            otpy.InvalidArgument,
            "Backoff: maximum must be a finite number of seconds > 0, got inf",
        ),
        (
            {"maximum": 10**5000},
            otpy.InvalidArgument,
            "Backoff: maximum must be a finite number of seconds > 0, got an integer of 16610 bits",
        ),
        (
            {"minimum": 2.0, "maximum": 1.0},
            otpy.InvalidArgument,
            "Backoff: maximum must be >= minimum (2.0), got 1.0",
        ),
        (
            {"jitter": True},
            otpy.InvalidArgumentType,
            "Backoff: jitter must be a finite number >= 0, got True",
        ),
        ({"jitter": 2.0}, otpy.InvalidArgument, "Backoff: jitter must be between 0 and 1, got 2.0"),
        (
            {"reset_after": "1s"},
            otpy.InvalidArgumentType,
            "Backoff: reset_after must be a finite number of seconds > 0, got '1s'",
        ),
    ],
)
def test_sup_14_backoff_refuses_what_its_delay_cannot_use(
    arguments: dict[str, object], error: type[otpy.InvalidArgument], message: str
) -> None:
    """SUP-14: a bad field fails when the backoff is built, with a typed error naming it."""
    with pytest.raises(error) as info:
        Backoff(**arguments)  # type: ignore[arg-type]
    assert str(info.value) == message
