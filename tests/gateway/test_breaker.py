"""The gateway's circuit breaker: exact thresholds, windows, waits and trial calls (GW-7)."""

from __future__ import annotations

import itertools

import attrs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from otpy import InvalidArgument, InvalidArgumentType
from otpy.gateway._breaker import BreakerPolicy, BreakerState, CircuitBreaker

CLOSED, OPEN, HALF_OPEN = BreakerState.CLOSED, BreakerState.OPEN, BreakerState.HALF_OPEN

Transition = tuple[BreakerState, BreakerState, float, str]

SMALL = BreakerPolicy(
    window_size=10,
    minimum_calls=10,
    failure_rate_threshold=50.0,
    wait_in_open=30.0,
    half_open_calls=3,
    slow_call_duration=2.0,
)


def make(
    policy: BreakerPolicy = SMALL, now: float = 0.0
) -> tuple[CircuitBreaker, list[Transition]]:
    """A breaker that appends every transition it reports to the returned list."""
    seen: list[Transition] = []
    breaker = CircuitBreaker(
        policy, now=now, on_transition=lambda old, new, t, why: seen.append((old, new, t, why))
    )
    return breaker, seen


def calls(breaker: CircuitBreaker, now: float, failures: int, successes: int) -> None:
    """Run *failures* then *successes* admitted calls of 1 s, all completing at *now*."""
    for _ in range(failures):
        assert breaker.try_acquire(now)
        breaker.on_failure(now, 1.0)
    for _ in range(successes):
        assert breaker.try_acquire(now)
        breaker.on_success(now, 1.0)


def open_breaker(policy: BreakerPolicy = SMALL) -> tuple[CircuitBreaker, list[Transition]]:
    """A breaker opened at t=0 by a window of failures."""
    breaker, seen = make(policy)
    calls(breaker, 0.0, policy.window_size, 0)
    assert breaker.state is OPEN
    return breaker, seen


def test_defaults_are_resilience4j_s() -> None:
    """The default policy is Resilience4j's default configuration."""
    policy = BreakerPolicy()
    assert attrs.asdict(policy) == {
        "window_type": "count",
        "window_size": 100,
        "minimum_calls": 100,
        "failure_rate_threshold": 50.0,
        "slow_call_rate_threshold": 100.0,
        "slow_call_duration": 60.0,
        "wait_in_open": 60.0,
        "half_open_calls": 10,
        "max_wait_in_half_open": 0.0,
    }
    breaker = CircuitBreaker(now=5.0)
    assert breaker.policy == policy
    assert breaker.statistics().since == 5.0
    assert repr(breaker) == "<CircuitBreaker closed window=100 calls>"


def test_works_without_a_callback() -> None:
    """No on_transition: transitions still happen and are counted."""
    breaker = CircuitBreaker(SMALL, now=0.0)
    calls(breaker, 0.0, 10, 0)
    stats = breaker.statistics(1000.0)  # a count window ignores now
    assert (stats.state, stats.calls, stats.opened, stats.transitions) == (OPEN, 10, 1, 1)


def test_nine_failures_keep_it_closed_until_minimum_calls() -> None:
    """Nine failures of nine stay closed under minimum 10; the tenth call decides."""
    breaker, seen = make()
    calls(breaker, 0.0, 9, 0)
    stats = breaker.statistics()
    assert (stats.state, stats.calls, stats.failed, stats.failure_rate) == (CLOSED, 9, 9, None)
    assert seen == []
    assert breaker.try_acquire(1.0)
    breaker.on_failure(1.0, 0.5)
    assert breaker.state is OPEN
    assert seen == [(CLOSED, OPEN, 1.0, "failure rate 100% >= 50% over the last 10 calls")]


def test_exactly_the_threshold_opens() -> None:
    """5 failures in 10 calls is 50 %, which opens a 50 % breaker (>=)."""
    breaker, seen = make()
    calls(breaker, 0.0, 5, 5)
    assert breaker.state is OPEN
    assert breaker.statistics().failure_rate == 50.0
    assert seen == [(CLOSED, OPEN, 0.0, "failure rate 50% >= 50% over the last 10 calls")]


def test_below_the_threshold_stays_closed() -> None:
    """4 failures in 10 calls is 40 %, under 50 %: still closed, rate reported."""
    breaker, seen = make()
    calls(breaker, 0.0, 4, 6)
    stats = breaker.statistics()
    assert (stats.state, stats.failure_rate, stats.slow_call_rate) == (CLOSED, 40.0, 0.0)
    assert seen == []


def test_count_window_holds_only_the_last_n_calls() -> None:
    """The 11th call pushes the first out: old failures stop counting."""
    breaker, _ = make()
    calls(breaker, 0.0, 4, 6)  # 40 %
    calls(breaker, 0.0, 0, 4)  # the 4 failures leave the window
    stats = breaker.statistics()
    assert (stats.calls, stats.failed, stats.failure_rate) == (10, 0, 0.0)
    calls(breaker, 0.0, 4, 0)
    assert breaker.statistics().failure_rate == 40.0
    calls(breaker, 0.0, 1, 0)  # 5 failures in the last 10
    assert breaker.state is OPEN


def test_minimum_calls_is_capped_at_a_count_window_s_size() -> None:
    """A count window of 4 with minimum 100 decides after 4 calls, as Resilience4j does."""
    breaker, _ = make(BreakerPolicy(window_size=4, minimum_calls=100))
    calls(breaker, 0.0, 2, 1)
    assert breaker.state is CLOSED
    calls(breaker, 0.0, 0, 1)
    assert breaker.state is OPEN


def test_a_call_exactly_slow_call_duration_long_is_not_slow() -> None:
    """Slow means longer than slow_call_duration (strictly), as Resilience4j compares."""
    policy = attrs.evolve(SMALL, slow_call_rate_threshold=50.0)
    breaker, _ = make(policy)
    for _ in range(10):
        assert breaker.try_acquire(0.0)
        breaker.on_success(0.0, 2.0)
    stats = breaker.statistics()
    assert (stats.state, stats.slow, stats.slow_call_rate) == (CLOSED, 0, 0.0)


def test_slow_calls_open_at_the_slow_call_rate() -> None:
    """Five successes a hair over 2 s in ten calls reach a 50 % slow-call rate."""
    policy = attrs.evolve(SMALL, slow_call_rate_threshold=50.0)
    breaker, seen = make(policy)
    for _ in range(5):
        assert breaker.try_acquire(0.0)
        breaker.on_success(0.0, 2.000001)
    calls(breaker, 0.0, 0, 5)
    stats = breaker.statistics()
    assert (stats.state, stats.slow, stats.failed, stats.slow_call_rate) == (OPEN, 5, 0, 50.0)
    assert seen[0][3] == "slow call rate 50% >= 50% over the last 10 calls"


def test_slow_failures_count_for_both_rates() -> None:
    """A slow failure is a failure and a slow call: both reasons are given."""
    policy = attrs.evolve(SMALL, slow_call_rate_threshold=50.0)
    breaker, seen = make(policy)
    for _ in range(5):
        assert breaker.try_acquire(0.0)
        breaker.on_failure(0.0, 3.0)
    calls(breaker, 0.0, 0, 5)
    assert seen == [
        (
            CLOSED,
            OPEN,
            0.0,
            "failure rate 50% >= 50% and slow call rate 50% >= 50% over the last 10 calls",
        )
    ]


def test_open_rejects_until_exactly_wait_in_open() -> None:
    """Open at t=0 with a 30 s wait: refused at 29.999, admitted at exactly 30."""
    breaker, seen = open_breaker()
    assert not breaker.try_acquire(0.0)
    assert not breaker.try_acquire(29.999)
    assert breaker.state is OPEN  # the wait ends only when someone asks
    assert breaker.statistics().rejected == 2
    assert breaker.try_acquire(30.0)
    assert breaker.state is HALF_OPEN
    assert seen[1:] == [(OPEN, HALF_OPEN, 30.0, "waited 30s in open: trying 3 calls")]


def test_half_open_admits_exactly_half_open_calls() -> None:
    """Three trials pass, the fourth is refused, however late it asks."""
    breaker, _ = open_breaker()
    assert [breaker.try_acquire(30.0) for _ in range(4)] == [True, True, True, False]
    assert not breaker.try_acquire(1000.0)
    stats = breaker.statistics()
    assert (stats.state, stats.since, stats.rejected) == (HALF_OPEN, 30.0, 2)


def test_successful_trials_close_and_forget_old_failures() -> None:
    """Three successful trials close the breaker with an empty window."""
    breaker, seen = open_breaker()
    calls(breaker, 30.0, 0, 2)
    assert breaker.state is HALF_OPEN  # undecided until the third trial completes
    calls(breaker, 31.0, 0, 1)
    assert breaker.state is CLOSED
    assert seen[2:] == [
        (
            HALF_OPEN,
            CLOSED,
            31.0,
            "failure rate 0% and slow call rate 0% under the thresholds over 3 trial calls",
        )
    ]
    stats = breaker.statistics()
    assert (stats.calls, stats.failed, stats.failure_rate, stats.since) == (0, 0, None, 31.0)
    calls(breaker, 32.0, 9, 0)  # a fresh window: nine failures are again not enough
    assert breaker.state is CLOSED


def test_failing_trials_open_again_for_another_wait() -> None:
    """Two failures in three trials (67 %) reopen; the next wait starts then."""
    breaker, seen = open_breaker()
    calls(breaker, 30.0, 1, 1)
    calls(breaker, 35.0, 1, 0)
    assert breaker.state is OPEN
    assert seen[2] == (HALF_OPEN, OPEN, 35.0, "failure rate 66.6667% >= 50% over 3 trial calls")
    assert not breaker.try_acquire(64.999)
    assert breaker.try_acquire(65.0)
    stats = breaker.statistics()
    assert (stats.state, stats.opened, stats.transitions) == (HALF_OPEN, 2, 4)


def test_one_failure_in_three_trials_closes() -> None:
    """One failure in three trials (33 %) is under 50 %: closed."""
    breaker, _ = open_breaker()
    calls(breaker, 30.0, 1, 2)
    assert breaker.state is CLOSED


def test_half_open_decides_after_minimum_calls_when_fewer() -> None:
    """With minimum_calls 2 and 3 trials, the second outcome decides (Resilience4j's rule)."""
    policy = attrs.evolve(SMALL, window_size=2, minimum_calls=2)
    breaker, _ = open_breaker(policy)
    assert breaker.try_acquire(30.0)
    assert breaker.try_acquire(30.0)
    breaker.on_success(30.0, 0.1)
    assert breaker.state is HALF_OPEN
    breaker.on_success(30.0, 0.1)
    assert breaker.state is CLOSED


def test_ignored_trial_gives_its_permit_back() -> None:
    """An ignored trial records nothing and lets another trial in; never beyond the limit."""
    breaker, _ = open_breaker()
    assert [breaker.try_acquire(30.0) for _ in range(4)] == [True, True, True, False]
    breaker.on_ignored(30.0)
    assert breaker.statistics().calls == 0
    assert breaker.try_acquire(30.0)
    assert not breaker.try_acquire(30.0)
    for _ in range(5):  # more releases than trials in flight do not add permits
        breaker.on_ignored(30.0)
    assert [breaker.try_acquire(30.0) for _ in range(4)] == [True, True, True, False]


def test_ignored_calls_do_not_count_when_closed() -> None:
    """An ignored call in CLOSED changes no rate."""
    breaker, _ = make()
    calls(breaker, 0.0, 9, 0)
    assert breaker.try_acquire(0.0)
    breaker.on_ignored(0.0)
    assert breaker.statistics().calls == 9
    assert breaker.state is CLOSED


def test_max_wait_in_half_open_reopens_undecided_trials() -> None:
    """Trials that never report reopen the breaker after max_wait_in_half_open."""
    breaker, seen = open_breaker(attrs.evolve(SMALL, max_wait_in_half_open=10.0))
    assert [breaker.try_acquire(30.0) for _ in range(4)] == [True, True, True, False]
    assert not breaker.try_acquire(39.999)
    assert breaker.state is HALF_OPEN
    assert not breaker.try_acquire(40.0)
    assert breaker.state is OPEN
    assert seen[2] == (HALF_OPEN, OPEN, 40.0, "trial calls undecided after 10s in half-open")
    assert breaker.try_acquire(70.0)


def test_outcomes_in_open_are_kept_but_decide_nothing() -> None:
    """A call admitted before the breaker opened may report late; it changes no state."""
    breaker, seen = open_breaker()
    breaker.on_success(1.0, 0.1)
    assert breaker.state is OPEN
    assert len(seen) == 1
    assert breaker.statistics().calls == 10


def test_time_window_forgets_calls_exactly_window_size_old() -> None:
    """A time window of 10 s, a bucket per whole second: second 0 leaves at t=10, second 1 at 11."""
    policy = BreakerPolicy(window_type="time", window_size=10, minimum_calls=4, wait_in_open=5.0)
    breaker, _ = make(policy)
    calls(breaker, 0.0, 2, 0)
    calls(breaker, 1.25, 0, 1)
    assert breaker.statistics(9.999).calls == 3
    assert breaker.statistics(10.0).calls == 1  # the failures of second 0 have left
    calls(breaker, 10.0, 1, 1)  # 1 failure in 3: below minimum 4
    assert breaker.state is CLOSED
    calls(breaker, 10.125, 0, 1)
    stats = breaker.statistics()
    assert (stats.state, stats.calls, stats.failed, stats.failure_rate) == (CLOSED, 4, 1, 25.0)
    assert breaker.statistics(11.0).calls == 3  # second 1 (the call at 1.25) has left
    calls(breaker, 11.5, 1, 0)  # 2 failures of 4
    assert breaker.state is OPEN
    assert repr(breaker) == "<CircuitBreaker open window=10s>"


def test_a_time_window_holds_one_bucket_per_second_whatever_the_rate() -> None:
    """10,000 calls within one second take one bucket: memory is bounded by the window."""
    policy = BreakerPolicy(window_type="time", window_size=10, minimum_calls=100_000)
    breaker, _ = make(policy)
    for i in range(10_000):
        assert breaker.try_acquire(i / 10_000)
        breaker.on_success(i / 10_000, 0.001)
    assert breaker.statistics().calls == 10_000
    assert breaker._window.stamps.__len__() == 1


def test_time_window_minimum_is_not_capped() -> None:
    """A time window's minimum_calls counts calls, whatever its size in seconds."""
    policy = BreakerPolicy(window_type="time", window_size=2, minimum_calls=5)
    breaker, _ = make(policy)
    calls(breaker, 0.0, 4, 0)
    assert breaker.state is CLOSED
    calls(breaker, 1.5, 1, 0)
    assert breaker.state is OPEN


def test_forced_open_and_disabled_until_reset() -> None:
    """force_open refuses all, disable admits all; both record nothing until reset."""
    breaker, seen = make()
    calls(breaker, 0.0, 9, 0)
    breaker.force_open(1.0)
    breaker.force_open(1.5)  # no second transition
    assert not breaker.try_acquire(100.0)
    breaker.on_failure(100.0, 1.0)
    assert breaker.statistics().calls == 0
    breaker.disable(2.0)
    assert all(breaker.try_acquire(2.0) for _ in range(50))
    calls(breaker, 2.0, 20, 0)
    breaker.disable(2.5)
    assert breaker.state is BreakerState.DISABLED
    breaker.reset(3.0)
    assert [(old, new, t, why) for old, new, t, why in seen] == [
        (CLOSED, BreakerState.FORCED_OPEN, 1.0, "forced open"),
        (BreakerState.FORCED_OPEN, BreakerState.DISABLED, 2.0, "disabled"),
        (BreakerState.DISABLED, CLOSED, 3.0, "reset"),
    ]
    stats = breaker.statistics()
    assert (stats.state, stats.calls, stats.rejected, stats.transitions) == (CLOSED, 0, 1, 3)


def test_reset_when_closed_empties_the_window_without_a_transition() -> None:
    """reset on a closed breaker forgets its calls and reports nothing."""
    breaker, seen = make()
    calls(breaker, 0.0, 9, 0)
    breaker.reset(1.0)
    calls(breaker, 1.0, 9, 0)
    assert breaker.state is CLOSED
    assert seen == []


def test_every_transition_is_reported_once() -> None:
    """A full cycle reports each change once, in order, with the right old and new states."""
    breaker, seen = make()
    calls(breaker, 0.0, 10, 0)
    calls(breaker, 30.0, 3, 0)
    calls(breaker, 60.0, 0, 3)
    assert [(old, new, t) for old, new, t, _ in seen] == [
        (CLOSED, OPEN, 0.0),
        (OPEN, HALF_OPEN, 30.0),
        (HALF_OPEN, OPEN, 30.0),
        (OPEN, HALF_OPEN, 60.0),
        (HALF_OPEN, CLOSED, 60.0),
    ]
    stats = breaker.statistics()
    assert (stats.opened, stats.transitions) == (2, 5)


@settings(max_examples=300, deadline=None)
@given(
    steps=st.lists(
        st.tuples(
            st.sampled_from(["acquire", "success", "failure", "slow", "ignored"]),
            st.floats(min_value=0.0, max_value=20.0),
        ),
        max_size=200,
    ),
    half_open_calls=st.integers(1, 4),
    minimum_calls=st.integers(1, 5),
)
def test_never_admits_in_open_nor_beyond_the_trials(
    steps: list[tuple[str, float]], half_open_calls: int, minimum_calls: int
) -> None:
    """Any sequence: OPEN admits nothing before the wait; HALF_OPEN never exceeds its trials."""
    policy = BreakerPolicy(
        window_size=5,
        minimum_calls=minimum_calls,
        wait_in_open=10.0,
        half_open_calls=half_open_calls,
        slow_call_duration=1.0,
        slow_call_rate_threshold=60.0,
    )
    breaker, seen = make(policy)
    now = 0.0
    outstanding = 0  # trials admitted in this half-open period and not given back
    for action, step in steps:
        now += step
        before, since = breaker.state, breaker.statistics().since
        if action == "acquire":
            admitted = breaker.try_acquire(now)
            if before is OPEN and now - since < 10.0:
                assert not admitted
                assert breaker.state is OPEN
            if breaker.state is HALF_OPEN:
                if before is not HALF_OPEN:
                    outstanding = 0
                outstanding += admitted
                assert outstanding <= half_open_calls
        elif action == "ignored":
            breaker.on_ignored(now)
            if before is HALF_OPEN:
                outstanding = max(0, outstanding - 1)
        elif action == "success":
            breaker.on_success(now, 0.5)
        else:
            breaker.on_failure(now, 2.0 if action == "slow" else 0.5)
    for old, new, _, _ in seen:
        assert old is not new
    assert all(
        a[1] is b[0] for a, b in itertools.pairwise(seen)
    )  # each transition starts where the last ended
    assert breaker.statistics().transitions == len(seen)


@pytest.mark.parametrize(
    ("field", "value", "error", "message"),
    [
        ("window_type", "sliding", InvalidArgument, "must be 'count' or 'time', got 'sliding'"),
        ("window_size", 0, InvalidArgument, "must be an integer >= 1, got 0"),
        ("window_size", 2.5, InvalidArgumentType, "must be an integer >= 1, got 2.5"),
        ("minimum_calls", 0, InvalidArgument, "must be an integer >= 1, got 0"),
        ("half_open_calls", True, InvalidArgumentType, "must be an integer >= 1, got True"),
        ("failure_rate_threshold", 0, InvalidArgument, r"must be a percentage in \(0, 100\]"),
        (
            "failure_rate_threshold",
            100.5,
            InvalidArgument,
            r"must be a percentage in \(0, 100\], got 100.5$",
        ),
        (
            "slow_call_rate_threshold",
            float("nan"),
            InvalidArgument,
            r"must be a percentage in \(0, 100\], got nan$",
        ),
        (
            "slow_call_rate_threshold",
            "50",
            InvalidArgumentType,
            r"must be a percentage in \(0, 100\], got '50'$",
        ),
        ("slow_call_duration", 0, InvalidArgument, "must be a finite number of seconds > 0"),
        ("wait_in_open", -1, InvalidArgument, "must be a finite number of seconds > 0, got -1$"),
        (
            "wait_in_open",
            float("inf"),
            InvalidArgument,
            "must be a finite number of seconds > 0, got inf$",
        ),
        (
            "wait_in_open",
            None,
            InvalidArgumentType,
            "must be a finite number of seconds > 0, got None$",
        ),
        (
            "max_wait_in_half_open",
            -0.5,
            InvalidArgument,
            "must be a finite number of seconds >= 0, got -0.5$",
        ),
    ],
)
def test_bad_policies_are_refused_naming_the_field(
    field: str, value: object, error: type[Exception], message: str
) -> None:
    """A bad field fails when the policy is built, and the message names it."""
    with pytest.raises(error, match=rf"^breaker policy: {field} {message}"):
        BreakerPolicy(**{field: value})


def test_limits_are_accepted() -> None:
    """100 % thresholds, a window of one call and a 0 half-open wait are all allowed."""
    policy = BreakerPolicy(
        window_size=1,
        minimum_calls=1,
        failure_rate_threshold=100,
        slow_call_rate_threshold=100,
        half_open_calls=1,
        max_wait_in_half_open=0,
    )
    assert policy.failure_rate_threshold == 100.0
    assert isinstance(policy.failure_rate_threshold, float)
    breaker, _ = make(policy)
    calls(breaker, 0.0, 1, 0)
    assert breaker.state is OPEN


def test_bad_breaker_arguments_are_refused() -> None:
    """The breaker refuses a policy that is not one, a bad now and a non-callable callback."""
    with pytest.raises(InvalidArgumentType, match=r"^policy must be a BreakerPolicy or None"):
        CircuitBreaker({"window_size": 5}, now=0.0)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match=r"^now must be a finite number, got nan"):
        CircuitBreaker(now=float("nan"))
    with pytest.raises(InvalidArgumentType, match=r"^on_transition must be a function or None"):
        CircuitBreaker(now=0.0, on_transition=3)  # type: ignore[arg-type]
