"""Pressure levels, hysteresis and admission by priority (PRS-4..PRS-8), as pure arithmetic."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otpy import InvalidPressurePolicy
from otpy.pressure import (
    Level,
    LevelState,
    PressurePolicy,
    Priority,
    Threshold,
    Verdict,
    admit,
    advance,
    level_for,
)

POLICY = PressurePolicy()


def transitions(policy: PressurePolicy, ratios: list[float], step: float = 1.0) -> list[Level]:
    """Feed *ratios* one per *step* seconds; return the level after each transition."""
    state = LevelState()
    seen = []
    for i, ratio in enumerate(ratios):
        new = advance(policy, state, ratio, now=i * step)
        if new is not state:
            seen.append(new.level)
        state = new
    return seen


def test_prs_4_default_thresholds_enter_at_70_85_95_and_exit_ten_points_lower() -> None:
    """PRS-4: the defaults are enter 0.70/0.85/0.95 and exit 0.60/0.75/0.85."""
    assert (POLICY.warn, POLICY.degraded, POLICY.shed) == (
        Threshold(0.70, 0.60),
        Threshold(0.85, 0.75),
        Threshold(0.95, 0.85),
    )
    assert [level_for(POLICY, Level.NORMAL, r) for r in (0.69, 0.70, 0.85, 0.95, 1.0)] == [
        Level.NORMAL,
        Level.WARN,
        Level.DEGRADED,
        Level.SHED,
        Level.SHED,
    ]


def test_prs_5_oscillating_above_the_exit_ratio_gives_one_transition() -> None:
    """PRS-5: occupancy crossing 0.70 back and forth but staying >= 0.60 enters warn once."""
    ratios = [0.5, 0.71, 0.65, 0.72, 0.61, 0.70, 0.69, 0.75, 0.62]
    assert transitions(POLICY, ratios) == [Level.WARN]


def test_prs_5_twin_without_hysteresis_gives_one_transition_per_crossing() -> None:
    """PRS-5 twin: with exit == enter the same oscillation transitions at every crossing."""
    policy = PressurePolicy.without_hysteresis()
    ratios = [0.5, 0.71, 0.65, 0.72, 0.61, 0.70, 0.69, 0.75, 0.62]
    assert transitions(policy, ratios) == [Level.WARN, Level.NORMAL] * 4


def test_prs_5_falling_below_the_exit_ratio_steps_down() -> None:
    """Below warn's exit (0.60) the level returns to normal; from shed it falls level by level."""
    assert transitions(POLICY, [0.71, 0.59]) == [Level.WARN, Level.NORMAL]
    assert transitions(POLICY, [0.96, 0.90, 0.80, 0.70, 0.50]) == [
        Level.SHED,
        Level.DEGRADED,
        Level.WARN,
        Level.NORMAL,
    ]
    # a jump straight down skips the levels in between: one transition
    assert transitions(POLICY, [0.99, 0.10]) == [Level.SHED, Level.NORMAL]


def test_min_dwell_delays_stepping_down_but_never_stepping_up() -> None:
    """With min_dwell=5 s, leaving warn waits until it lasted 5 s; entering is immediate."""
    policy = PressurePolicy(min_dwell=5.0)
    entered = advance(policy, LevelState(), 0.80, now=10.0)
    assert entered == LevelState(Level.WARN, 10.0)
    assert advance(policy, entered, 0.10, now=14.9) is entered
    assert advance(policy, entered, 0.10, now=15.0) == LevelState(Level.NORMAL, 15.0)
    assert advance(policy, entered, 0.96, now=10.1) == LevelState(Level.SHED, 10.1)


@given(
    st.lists(st.floats(min_value=0.0, max_value=1.0), max_size=60),
)
def test_level_is_never_below_what_occupancy_enters_nor_above_what_it_keeps(
    ratios: list[float],
) -> None:
    """Hypothesis: after any sequence the level is between the no-hysteresis levels of enter and exit."""
    state = LevelState()
    for i, ratio in enumerate(ratios):
        state = advance(POLICY, state, ratio, now=float(i))
        entered = level_for(PressurePolicy.without_hysteresis(), Level.NORMAL, ratio)
        kept = level_for(PressurePolicy.without_hysteresis(0.60, 0.75, 0.85), Level.NORMAL, ratio)
        assert entered <= state.level <= kept


@given(st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=1, max_size=60))
def test_every_transition_is_a_real_change(ratios: list[float]) -> None:
    """Hypothesis: advance returns a new state only when the level changes (one event per change)."""
    state = LevelState()
    for i, ratio in enumerate(ratios):
        new = advance(POLICY, state, ratio, now=float(i))
        assert (new is not state) == (new.level != state.level)
        state = new


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (
            {"warn": Threshold(0.0, 0.0)},
            r"^pressure policy: warn.enter must be in \(0, 1\], got 0.0$",
        ),
        ({"shed": Threshold(1.2, 0.9)}, r"^pressure policy: shed.enter must be in \(0, 1\]"),
        (
            {"degraded": Threshold(0.85, 0.90)},
            r"^pressure policy: degraded.exit must be in \[0, degraded.enter=0.85\], got 0.9",
        ),
        (
            {"degraded": Threshold(0.70, 0.60)},
            r"^pressure policy: degraded.enter 0.7 must be above the level below it \(0.7\)",
        ),
        ({"throttle": -1.0}, r"^pressure policy: throttle must be a finite number >= 0"),
        ({"min_dwell": float("inf")}, r"^pressure policy: min_dwell must be a finite number"),
        (
            {"shed_priorities": {Priority.LOW, Priority.CRITICAL}},
            r"^pressure policy: shed_priorities critical work is never shed$",
        ),
        (
            {"defer": [Priority.CRITICAL]},
            r"^pressure policy: defer critical work is never deferred$",
        ),
    ],
)
def test_prs_4_invalid_policies_are_rejected_naming_the_field(
    options: dict[str, object], message: str
) -> None:
    """PRS-4: a bad policy fails when built with InvalidPressurePolicy (a ValueError) naming the field."""
    with pytest.raises(InvalidPressurePolicy, match=message) as info:
        PressurePolicy(**options)  # type: ignore[arg-type]
    assert isinstance(info.value, ValueError)


def test_prs_4_twin_valid_edges_are_accepted() -> None:
    """Twin: shed at 1.0, exit equal to enter, and exit 0 are all valid."""
    policy = PressurePolicy(
        warn=Threshold(0.5, 0.0), degraded=Threshold(0.9, 0.9), shed=Threshold(1.0, 0.95)
    )
    assert level_for(policy, Level.NORMAL, 1.0) is Level.SHED
    assert PressurePolicy(shed_priorities=Priority.LOW).shed_priorities == {Priority.LOW}


@pytest.mark.parametrize(
    ("level", "priority", "verdict"),
    [
        (Level.NORMAL, Priority.LOW, Verdict.ACCEPT),
        (Level.WARN, Priority.LOW, Verdict.ACCEPT),
        (Level.DEGRADED, Priority.LOW, Verdict.THROTTLE),
        (Level.DEGRADED, Priority.CRITICAL, Verdict.ACCEPT),
        (Level.SHED, Priority.LOW, Verdict.SHED),
        (Level.SHED, Priority.NORMAL, Verdict.THROTTLE),
        (Level.SHED, Priority.CRITICAL, Verdict.ACCEPT),
    ],
)
def test_prs_6_prs_7_admission_by_level_and_priority(
    level: Level, priority: Priority, verdict: Verdict
) -> None:
    """PRS-6/PRS-7: degraded throttles the producer, shed rejects low, critical always gets in."""
    assert admit(POLICY, level, priority, depth=10, capacity=100).verdict is verdict


def test_prs_8_at_capacity_everything_is_queue_full_even_critical() -> None:
    """PRS-8: a full queue rejects every priority, so it never grows past capacity."""
    for priority in Priority:
        assert admit(POLICY, Level.SHED, priority, depth=100, capacity=100).verdict is (
            Verdict.QUEUE_FULL
        )
    assert admit(POLICY, Level.SHED, Priority.CRITICAL, depth=99, capacity=100).verdict is (
        Verdict.ACCEPT
    )


def test_prs_6_defer_and_no_throttle_options() -> None:
    """Deferred priorities wait at degraded; throttle=0 accepts the others at once."""
    policy = PressurePolicy(defer={Priority.LOW, Priority.NORMAL}, throttle=0.0)
    assert admit(policy, Level.DEGRADED, Priority.NORMAL, depth=0, capacity=1).verdict is (
        Verdict.DEFER
    )
    assert admit(policy, Level.DEGRADED, Priority.HIGH, depth=0, capacity=1).verdict is (
        Verdict.ACCEPT
    )
    assert admit(policy, Level.SHED, Priority.LOW, depth=0, capacity=1).verdict is Verdict.SHED


def test_levels_have_labels_for_telemetry() -> None:
    """Each level's label is its lower-case name, and levels are ordered."""
    assert [level.label for level in Level] == ["normal", "warn", "degraded", "shed"]
    assert Level.SHED > Level.DEGRADED > Level.WARN > Level.NORMAL
    with pytest.raises(ValueError, match="normal has no threshold"):
        POLICY.threshold(Level.NORMAL)


@pytest.mark.parametrize("since", [0.0, 255.29404008730594])
def test_prs_5_a_level_exactly_min_dwell_old_steps_down_at_any_time(since: float) -> None:
    """PRS-5: at since + min_dwell the level may step down, even where (since + 1.0) - since < 1.0.

    A clock that waits for ``since + min_dwell`` lands on that sum; comparing the
    difference with ``min_dwell`` instead held the level at some start times.
    """
    policy = PressurePolicy(min_dwell=1.0)
    state = LevelState(Level.WARN, since)
    assert advance(policy, state, 0.0, since + 1.0).level is Level.NORMAL
    assert advance(policy, state, 0.0, math.nextafter(since + 1.0, 0.0)) is state
