"""Retry schedules: exponential backoff with jitter, explicit delays, exhaustion and Retry-After (GW-5)."""

from __future__ import annotations

import email.utils
import math

import attrs
import pytest
from hypothesis import given
from hypothesis import strategies as st

from otpy._exceptions import InvalidArgument, InvalidArgumentType
from otpy.gateway._retry import RetryPolicy, parse_duration, parse_retry_after

SVIX = ("5s", "5m", "30m", "2h", "5h", "10h")
ALMOST_ONE = 0.9999999999999999  # the largest float below 1.0
NOW = 1_000_000.0


# -- exponential backoff ---------------------------------------------------------------


def test_defaults_are_three_attempts_from_one_second_doubling_to_a_minute() -> None:
    """The default policy: 3 attempts, 1 s doubling, capped at 60 s, 20 % jitter, Retry-After up to 1 h."""
    policy = RetryPolicy()
    assert (policy.max_attempts, policy.initial, policy.multiplier) == (3, 1.0, 2.0)
    assert (policy.max_backoff, policy.jitter, policy.max_retry_after) == (60.0, 0.2, 3600.0)
    assert policy.schedule is None


def test_exponential_delays_double_up_to_the_cap() -> None:
    """Without jitter's spread (random=0.5) attempt n waits initial * multiplier**(n-1), capped."""
    policy = RetryPolicy(max_attempts=10)
    delays = [policy.delay(n, random=0.5) for n in range(1, 10)]
    assert delays == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0, 60.0]


def test_a_delay_exactly_at_the_cap_is_not_cut() -> None:
    """A base delay equal to max_backoff is used as is."""
    policy = RetryPolicy(initial=2.0, multiplier=3.0, max_backoff=18.0, jitter=0.0)
    assert [policy.delay(n, random=0.0) for n in (1, 2, 3, 4)] == [2.0, 6.0, 18.0, 18.0]


def test_jitter_spreads_the_delay_by_the_fraction_either_way() -> None:
    """random=0 gives (1 - jitter) times the delay; random near 1 gives nearly (1 + jitter) times."""
    policy = RetryPolicy(initial=10.0, multiplier=2.0, max_backoff=1000.0, jitter=0.5)
    assert policy.delay(1, random=0.0) == 5.0
    assert policy.delay(2, random=0.0) == 10.0
    assert policy.delay(1, random=0.5) == 10.0
    assert policy.delay(1, random=0.75) == 12.5
    assert 14.99 < policy.delay(1, random=ALMOST_ONE) <= 15.0


def test_jitter_never_pushes_a_delay_above_the_cap() -> None:
    """At the cap the jitter can only shorten: random near 1 still gives exactly max_backoff."""
    policy = RetryPolicy(initial=1.0, max_backoff=60.0, jitter=0.2)
    assert policy.delay(7, random=ALMOST_ONE) == 60.0
    assert policy.delay(7, random=0.0) == 48.0
    near = RetryPolicy(initial=50.0, max_backoff=55.0, jitter=0.2)  # 50 s +- 10 s, cap 55 s
    assert [near.delay(1, random=r) for r in (0.0, 0.5, 0.75, ALMOST_ONE)] == [
        40.0,
        50.0,
        55.0,
        55.0,
    ]


def test_zero_jitter_ignores_random() -> None:
    """With jitter=0 every random value gives the same delay."""
    policy = RetryPolicy(jitter=0.0)
    assert {policy.delay(3, random=r) for r in (0.0, 0.3, ALMOST_ONE)} == {4.0}


def test_multiplier_one_gives_a_constant_delay() -> None:
    """multiplier=1 retries at a fixed interval."""
    policy = RetryPolicy(initial=5.0, multiplier=1.0, max_backoff=5.0, jitter=0.0)
    assert [policy.delay(n, random=0.0) for n in (1, 2, 50)] == [5.0, 5.0, 5.0]


def test_a_huge_attempt_number_gives_the_cap_without_overflow() -> None:
    """Attempt 10,000 would overflow initial * multiplier**n: it is simply the cap."""
    assert RetryPolicy(jitter=0.0).delay(10_000, random=0.0) == 60.0


@given(
    attempt=st.integers(min_value=1, max_value=5000),
    random=st.floats(min_value=0.0, max_value=1.0, exclude_max=True),
    initial=st.floats(min_value=1e-3, max_value=100.0),
    multiplier=st.floats(min_value=1.0, max_value=10.0),
    extra=st.floats(min_value=0.0, max_value=1000.0),
    jitter=st.floats(min_value=0.0, max_value=1.0),
)
def test_a_delay_is_always_between_zero_and_the_cap(
    attempt: int, random: float, initial: float, multiplier: float, extra: float, jitter: float
) -> None:
    """Whatever the settings, attempt and random value, 0 <= delay <= max_backoff."""
    policy = RetryPolicy(
        max_attempts=attempt + 1,
        initial=initial,
        multiplier=multiplier,
        max_backoff=initial + extra,
        jitter=jitter,
    )
    assert 0.0 <= policy.delay(attempt, random=random) <= policy.max_backoff


# -- explicit schedule ----------------------------------------------------------------------


def test_a_schedule_of_texts_is_parsed_into_seconds() -> None:
    """Svix's schedule: 5 s, 5 min, 30 min, 2 h, 5 h, 10 h; seven attempts by default."""
    policy = RetryPolicy(schedule=SVIX)
    assert policy.schedule == (5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0)
    assert policy.max_attempts == 7


def test_a_schedule_is_used_exactly_without_jitter() -> None:
    """Each retry waits its schedule entry, whatever random says."""
    policy = RetryPolicy(schedule=[0.5, "2s", 10])
    assert [policy.delay(n, random=0.0) for n in (1, 2, 3)] == [0.5, 2.0, 10.0]
    assert [policy.delay(n, random=ALMOST_ONE) for n in (1, 2, 3)] == [0.5, 2.0, 10.0]


def test_a_schedule_may_be_cut_short_by_max_attempts() -> None:
    """max_attempts below the schedule's length + 1 stops early: 3 attempts use 2 delays."""
    policy = RetryPolicy(schedule=SVIX, max_attempts=3)
    assert policy.next_attempt(2, now=0.0, random=0.0) == 300.0
    assert policy.next_attempt(3, now=0.0, random=0.0) is None


def test_max_attempts_above_the_schedule_is_refused() -> None:
    """A schedule of 6 delays allows at most 7 attempts; the message says how to get more."""
    with pytest.raises(
        InvalidArgument,
        match=r"^RetryPolicy: max_attempts must be at most 7 with a schedule of 6 delays "
        r"\(the first attempt, then one per delay\), got 8; add delays",
    ):
        RetryPolicy(schedule=SVIX, max_attempts=8)


def test_exponential_fields_are_refused_with_a_schedule() -> None:
    """Setting initial, multiplier, max_backoff or jitter with a schedule is a mistake, named."""
    for field, value in (
        ("initial", 2.0),
        ("multiplier", 3.0),
        ("max_backoff", 5.0),
        ("jitter", 0),
    ):
        with pytest.raises(
            InvalidArgument,
            match=rf"^RetryPolicy: {field} applies to the exponential backoff only",
        ):
            RetryPolicy(schedule=SVIX, **{field: value})  # type: ignore[arg-type]


def test_an_empty_schedule_is_refused() -> None:
    """An empty schedule is refused; max_attempts=1 is the way to say no retries."""
    with pytest.raises(InvalidArgument, match=r"^RetryPolicy: schedule must have at least one"):
        RetryPolicy(schedule=())


def test_a_bad_schedule_entry_is_named_by_its_index() -> None:
    """A bad delay names schedule[i] and the allowed forms."""
    with pytest.raises(
        InvalidArgument, match=r"^RetryPolicy: schedule\[1\] must be a finite number of seconds"
    ):
        RetryPolicy(schedule=("5s", "soon"))
    with pytest.raises(InvalidArgumentType, match=r"^RetryPolicy: schedule\[0\] must be"):
        RetryPolicy(schedule=(None,))  # type: ignore[arg-type]


def test_a_schedule_that_is_not_a_sequence_is_refused() -> None:
    """A single text or a number is not a schedule."""
    for value in ("5s", 5):
        with pytest.raises(InvalidArgumentType, match=r"^RetryPolicy: schedule must be a sequence"):
            RetryPolicy(schedule=value)  # type: ignore[arg-type]


def test_a_schedule_delay_beyond_its_length_is_refused() -> None:
    """delay() for an attempt past the schedule's end is an error naming the bound."""
    with pytest.raises(
        InvalidArgument, match=r"^RetryPolicy.delay: attempt must be an integer <= 6, got 7"
    ):
        RetryPolicy(schedule=SVIX).delay(7, random=0.0)


# -- next_attempt ---------------------------------------------------------------------------


def test_max_attempts_counts_the_first_attempt() -> None:
    """With max_attempts=3 there are exactly two retries, then None."""
    policy = RetryPolicy(max_attempts=3, jitter=0.0)
    assert policy.next_attempt(1, now=NOW, random=0.0) == NOW + 1.0
    assert policy.next_attempt(2, now=NOW, random=0.0) == NOW + 2.0
    assert policy.next_attempt(3, now=NOW, random=0.0) is None
    assert policy.next_attempt(4, now=NOW, random=0.0) is None


def test_one_attempt_means_no_retry() -> None:
    """max_attempts=1: the first failure is final."""
    assert RetryPolicy(max_attempts=1).next_attempt(1, now=NOW, random=0.0) is None


def test_a_schedule_policy_runs_out_after_its_last_delay() -> None:
    """Svix's schedule: 6 retries at the scheduled delays, then None."""
    policy = RetryPolicy(schedule=SVIX)
    times = [policy.next_attempt(n, now=0.0, random=0.0) for n in range(1, 8)]
    assert times == [5.0, 300.0, 1800.0, 7200.0, 18000.0, 36000.0, None]


def test_next_attempt_applies_the_jitter() -> None:
    """The next attempt is now plus the jittered delay."""
    policy = RetryPolicy(max_attempts=5, initial=10.0, max_backoff=100.0, jitter=0.5)
    assert policy.next_attempt(2, now=NOW, random=0.0) == NOW + 10.0


def test_retry_after_longer_than_the_schedule_wins() -> None:
    """A Retry-After of 30 s beats a scheduled 2 s."""
    policy = RetryPolicy(jitter=0.0)
    assert policy.next_attempt(2, now=NOW, random=0.0, retry_after=30.0) == NOW + 30.0


def test_retry_after_never_shortens_the_schedule() -> None:
    """A Retry-After of 0 (or shorter than the delay) keeps the scheduled delay."""
    policy = RetryPolicy(schedule=SVIX)
    assert policy.next_attempt(2, now=NOW, random=0.0, retry_after=0.0) == NOW + 300.0
    assert policy.next_attempt(2, now=NOW, random=0.0, retry_after=299) == NOW + 300.0


def test_retry_after_is_clamped_to_max_retry_after() -> None:
    """A server asking for a day waits at most max_retry_after; exactly at it is kept."""
    policy = RetryPolicy(jitter=0.0, max_retry_after=600.0)
    assert policy.next_attempt(1, now=NOW, random=0.0, retry_after=86400.0) == NOW + 600.0
    assert policy.next_attempt(1, now=NOW, random=0.0, retry_after=600.0) == NOW + 600.0
    assert policy.next_attempt(1, now=NOW, random=0.0, retry_after=math.inf) == NOW + 600.0


def test_clamping_retry_after_never_goes_below_the_schedule() -> None:
    """With max_retry_after below the scheduled delay, the scheduled delay stands."""
    policy = RetryPolicy(schedule=SVIX, max_retry_after=60.0)
    assert policy.next_attempt(3, now=0.0, random=0.0, retry_after=7200.0) == 1800.0


def test_max_retry_after_zero_ignores_retry_after() -> None:
    """max_retry_after=0 turns Retry-After off."""
    policy = RetryPolicy(jitter=0.0, max_retry_after=0)
    assert policy.next_attempt(1, now=0.0, random=0.0, retry_after=500.0) == 1.0


def test_retry_after_does_not_extend_exhausted_attempts() -> None:
    """A Retry-After on the last attempt still gives None: no attempts are left."""
    policy = RetryPolicy(max_attempts=2)
    assert policy.next_attempt(2, now=0.0, random=0.0, retry_after=5.0) is None


@pytest.mark.parametrize(
    ("kwargs", "error", "pattern"),
    [
        (
            {"attempt": 0},
            InvalidArgument,
            r"^RetryPolicy.next_attempt: attempt must be an integer >= 1",
        ),
        (
            {"attempt": 1.0},
            InvalidArgumentType,
            r"^RetryPolicy.next_attempt: attempt must be an integer",
        ),
        (
            {"now": math.nan},
            InvalidArgument,
            r"^RetryPolicy.next_attempt: now must be a finite time",
        ),
        ({"now": "0"}, InvalidArgumentType, r"^RetryPolicy.next_attempt: now must be a time"),
        (
            {"random": 1.0},
            InvalidArgument,
            r"^RetryPolicy.next_attempt: random must be a float in \[0, 1\)",
        ),
        ({"random": -0.1}, InvalidArgument, r"^RetryPolicy.next_attempt: random must be a float"),
        (
            {"random": None},
            InvalidArgumentType,
            r"^RetryPolicy.next_attempt: random must be a float",
        ),
        (
            {"retry_after": -1.0},
            InvalidArgument,
            r"^RetryPolicy.next_attempt: retry_after must be a number of seconds >= 0",
        ),
        (
            {"retry_after": math.nan},
            InvalidArgument,
            r"^RetryPolicy.next_attempt: retry_after must be",
        ),
        (
            {"retry_after": "5"},
            InvalidArgumentType,
            r"^RetryPolicy.next_attempt: retry_after must be",
        ),
    ],
)
def test_next_attempt_refuses_bad_arguments(
    kwargs: dict[str, object], error: type[Exception], pattern: str
) -> None:
    """Bad attempt, now, random or retry_after raise errors naming the argument."""
    arguments: dict[str, object] = {"attempt": 1, "now": 0.0, "random": 0.0} | kwargs
    with pytest.raises(error, match=pattern):
        RetryPolicy().next_attempt(**arguments)  # type: ignore[arg-type]


def test_random_is_checked_even_when_attempts_are_exhausted() -> None:
    """A bad random value is refused on the last attempt too, not only when it is used."""
    with pytest.raises(InvalidArgument, match=r"random must be a float"):
        RetryPolicy(max_attempts=1).next_attempt(1, now=0.0, random=2.0)


def test_delay_refuses_bad_arguments() -> None:
    """delay() names attempt and random when they are out of range."""
    with pytest.raises(
        InvalidArgument, match=r"^RetryPolicy.delay: attempt must be an integer >= 1"
    ):
        RetryPolicy().delay(0, random=0.0)
    with pytest.raises(InvalidArgument, match=r"^RetryPolicy.delay: random must be a float in"):
        RetryPolicy().delay(1, random=math.nan)


# -- policy validation ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "value", "error", "pattern"),
    [
        ("max_attempts", 0, InvalidArgument, r"max_attempts must be an integer >= 1, got 0"),
        ("max_attempts", True, InvalidArgumentType, r"max_attempts must be an integer >= 1"),
        ("max_attempts", 2.0, InvalidArgumentType, r"max_attempts must be an integer >= 1"),
        ("initial", 0.0, InvalidArgument, r"initial must be a finite number of seconds > 0"),
        ("initial", math.inf, InvalidArgument, r"initial must be a finite number"),
        ("initial", "1s", InvalidArgumentType, r"initial must be a finite number"),
        ("multiplier", 0.5, InvalidArgument, r"multiplier must be >= 1, got 0.5"),
        ("multiplier", math.nan, InvalidArgument, r"multiplier must be a finite number"),
        ("max_backoff", 0.5, InvalidArgument, r"max_backoff must be >= initial \(1.0\), got 0.5"),
        ("jitter", 1.5, InvalidArgument, r"jitter must be between 0 and 1, got 1.5"),
        ("jitter", -0.1, InvalidArgument, r"jitter must be a finite number >= 0"),
        (
            "max_retry_after",
            -1.0,
            InvalidArgument,
            r"max_retry_after must be a finite number of seconds >= 0",
        ),
        ("max_retry_after", None, InvalidArgumentType, r"max_retry_after must be"),
    ],
)
def test_a_bad_field_is_refused_by_name(
    field: str, value: object, error: type[Exception], pattern: str
) -> None:
    """Each field is validated when the policy is built, and the error names it."""
    with pytest.raises(error, match=rf"^RetryPolicy: {pattern}"):
        RetryPolicy(**{field: value})  # type: ignore[arg-type]


def test_edge_values_are_accepted() -> None:
    """jitter 0 and 1, multiplier 1, max_backoff == initial, max_retry_after 0, one attempt."""
    policy = RetryPolicy(
        max_attempts=1, initial=3.0, multiplier=1, max_backoff=3.0, jitter=1, max_retry_after=0
    )
    assert policy.delay(1, random=0.0) == 0.0
    assert attrs.evolve(policy, jitter=0).delay(1, random=0.0) == 3.0


def test_evolve_revalidates() -> None:
    """attrs.evolve builds a new policy, validated like any other."""
    with pytest.raises(InvalidArgument, match=r"^RetryPolicy: jitter"):
        attrs.evolve(RetryPolicy(), jitter=2.0)


# -- parse_duration -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        (0, 0.0),
        (5, 5.0),
        (2.5, 2.5),
        ("500ms", 0.5),
        ("0s", 0.0),
        ("5s", 5.0),
        ("1.5s", 1.5),
        ("5m", 300.0),
        ("30m", 1800.0),
        ("2h", 7200.0),
        ("10h", 36000.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d2h3m4s5ms", 93784.005),
        (" 5m ", 300.0),
    ],
)
def test_parse_duration_forms(text: str | float, seconds: float) -> None:
    """Numbers are seconds; texts take ms, s, m, h and d, alone or combined largest first."""
    assert parse_duration(text, "timeout") == seconds


@pytest.mark.parametrize(
    "text",
    [
        "",
        "5",
        "5 m",
        "5M",
        "5sec",
        "-5s",
        "1e3s",
        "5m1h",
        "1h1h",
        ".5s",
        "5.s",
        "s",
        -1,
        math.nan,
        math.inf,
    ],
)
def test_parse_duration_refuses_other_forms(text: str | float) -> None:
    """Anything else is refused, naming the argument and the allowed forms."""
    with pytest.raises(
        InvalidArgument,
        match=r"^timeout must be a finite number of seconds >= 0, or a duration like '500ms', "
        r"'5s', '5m', '2h', '1d' or '1h30m', got ",
    ):
        parse_duration(text, "timeout")


@pytest.mark.parametrize("text", [None, True, b"5s", [5]])
def test_parse_duration_refuses_other_types(text: object) -> None:
    """A bool, None, bytes or a list is a type error naming the argument."""
    with pytest.raises(InvalidArgumentType, match=r"^timeout must be a finite number of seconds"):
        parse_duration(text, "timeout")  # type: ignore[arg-type]


def test_parse_duration_refuses_a_text_too_large_for_a_float() -> None:
    """A duration whose digits overflow a float is refused, not infinite."""
    with pytest.raises(InvalidArgument, match=r"^timeout must be"):
        parse_duration("9" * 400 + "d", "timeout")


# -- parse_retry_after ----------------------------------------------------------------------


def test_retry_after_delta_seconds() -> None:
    """A non-negative integer is seconds from now, whatever now is; zero included."""
    assert parse_retry_after("120", now=NOW) == 120.0
    assert parse_retry_after(" 0 ", now=NOW) == 0.0


def test_retry_after_http_date_in_the_future() -> None:
    """An HTTP-date 90 s after now is 90 s."""
    header = email.utils.formatdate(NOW + 90, usegmt=True)
    assert parse_retry_after(header, now=NOW) == 90.0


def test_retry_after_fixed_http_date() -> None:
    """RFC 9110's example date is measured against the given UNIX time."""
    header = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert parse_retry_after(header, now=1445412480.0 - 30) == 30.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 -0000", now=1445412480.0 - 30) == 30.0


def test_retry_after_http_date_in_the_past_is_zero() -> None:
    """A date already past means no extra wait: 0.0, not a negative delay."""
    header = email.utils.formatdate(NOW - 3600, usegmt=True)
    assert parse_retry_after(header, now=NOW) == 0.0


@pytest.mark.parametrize(
    "value",
    [
        None,
        "",
        "soon",
        "-5",
        "1.5",
        "5s",
        "Wed, 99 Foo 2015 07:28:00 GMT",
        "Wed, 21 Oct 99999 07:28:00 GMT",
        5,
    ],
)
def test_retry_after_garbage_is_none(value: object) -> None:
    """Anything that is neither delta-seconds nor an HTTP-date gives None, never an error."""
    assert parse_retry_after(value, now=NOW) is None  # type: ignore[arg-type]


def test_retry_after_huge_number_is_infinite_and_clamped() -> None:
    """Delta-seconds too large for a float parse as inf, and the policy clamps them."""
    seconds = parse_retry_after("9" * 5000, now=NOW)
    assert seconds == math.inf
    assert (
        RetryPolicy(jitter=0.0).next_attempt(1, now=0.0, random=0.0, retry_after=seconds) == 3600.0
    )


def test_retry_after_date_against_a_nan_now_is_none() -> None:
    """An HTTP-date measured against a NaN now gives None rather than a NaN delay."""
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=math.nan) is None
