"""Classifying a delivery attempt: HTTP statuses, exceptions, and a user's override (GW-4)."""

from __future__ import annotations

import ssl

import pytest

from otpy._exceptions import InvalidArgument, InvalidArgumentType
from otpy.gateway._classify import Classifier, Outcome, classify, classify_error, classify_status


@pytest.mark.parametrize(
    ("status", "outcome"),
    [
        (100, Outcome.TERMINAL),
        (199, Outcome.TERMINAL),
        (200, Outcome.SUCCESS),
        (201, Outcome.SUCCESS),
        (204, Outcome.SUCCESS),
        (299, Outcome.SUCCESS),
        (300, Outcome.TERMINAL),
        (301, Outcome.TERMINAL),
        (399, Outcome.TERMINAL),
        (400, Outcome.TERMINAL),
        (401, Outcome.TERMINAL),
        (404, Outcome.TERMINAL),
        (407, Outcome.TERMINAL),
        (408, Outcome.RETRYABLE),
        (409, Outcome.TERMINAL),
        (410, Outcome.GONE),
        (411, Outcome.TERMINAL),
        (428, Outcome.TERMINAL),
        (429, Outcome.RETRYABLE),
        (430, Outcome.TERMINAL),
        (499, Outcome.TERMINAL),
        (500, Outcome.RETRYABLE),
        (502, Outcome.RETRYABLE),
        (503, Outcome.RETRYABLE),
        (599, Outcome.RETRYABLE),
        (600, Outcome.TERMINAL),
        (0, Outcome.TERMINAL),
        (-1, Outcome.TERMINAL),
    ],
)
def test_status_classes(status: int, outcome: Outcome) -> None:
    """2xx succeed; 408, 429 and 5xx retry; 410 is gone; 1xx, 3xx, other 4xx and nonsense are terminal."""
    assert classify_status(status) is outcome
    assert classify(status) is outcome


@pytest.mark.parametrize("status", [None, "200", 200.0, True])
def test_status_must_be_an_int(status: object) -> None:
    """A status that is not an int (a bool is not one) is a type error naming status."""
    with pytest.raises(
        InvalidArgumentType, match=r"^status must be an HTTP status code \(an int\)"
    ):
        classify_status(status)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "error",
    [
        ConnectionError("reset"),
        ConnectionRefusedError(111, "refused"),
        ConnectionResetError(),
        TimeoutError(),
        OSError(101, "network unreachable"),
        ssl.SSLError("handshake"),
    ],
)
def test_connection_errors_and_timeouts_are_retryable(error: BaseException) -> None:
    """OSError and its subclasses (connection errors, timeouts) are worth another attempt."""
    assert classify_error(error) is Outcome.RETRYABLE
    assert classify(error=error) is Outcome.RETRYABLE


@pytest.mark.parametrize(
    "error", [ValueError("bad payload"), RuntimeError(), KeyError("x"), KeyboardInterrupt()]
)
def test_other_errors_are_terminal(error: BaseException) -> None:
    """Anything that is not a connection error or timeout is terminal."""
    assert classify_error(error) is Outcome.TERMINAL


def test_an_exception_group_is_retryable_only_if_all_of_it_is() -> None:
    """A group of timeouts retries; one bug in the group makes it terminal."""
    assert classify_error(ExceptionGroup("g", [TimeoutError(), ConnectionError()])) is (
        Outcome.RETRYABLE
    )
    nested = ExceptionGroup("g", [TimeoutError(), ExceptionGroup("h", [ValueError()])])
    assert classify_error(nested) is Outcome.TERMINAL


def test_classify_error_refuses_a_non_exception() -> None:
    """Passing something that is not an exception is a type error naming error."""
    with pytest.raises(InvalidArgumentType, match=r"^error must be an exception, got 'boom'"):
        classify_error("boom")  # type: ignore[arg-type]


def test_classify_needs_exactly_one_of_status_and_error() -> None:
    """Both or neither of status and error is refused."""
    pattern = r"^classify: status or error must be given, not both or neither"
    with pytest.raises(InvalidArgument, match=pattern):
        classify()
    with pytest.raises(InvalidArgument, match=pattern):
        classify(500, TimeoutError())


def test_override_decides_first() -> None:
    """An override's answer wins over the default: here a 409 means already delivered."""

    def conflict_is_success(status: int | None, error: BaseException | None) -> Outcome | None:
        """409 Conflict: the destination already has it."""
        return Outcome.SUCCESS if status == 409 else None

    assert classify(409, override=conflict_is_success) is Outcome.SUCCESS


def test_override_returning_none_falls_back_to_the_default() -> None:
    """None from the override means the default classification, for statuses and errors."""
    calls: list[tuple[int | None, BaseException | None]] = []

    def undecided(status: int | None, error: BaseException | None) -> Outcome | None:
        """Record the call and decide nothing."""
        calls.append((status, error))
        return None

    timeout = TimeoutError()
    assert classify(503, override=undecided) is Outcome.RETRYABLE
    assert classify(410, override=undecided) is Outcome.GONE
    assert classify(error=timeout, override=undecided) is Outcome.RETRYABLE
    assert calls == [(503, None), (410, None), (None, timeout)]


def test_override_can_make_an_error_terminal() -> None:
    """An override sees the error and may refuse to retry it."""
    never_retry: Classifier = lambda status, error: (  # noqa: E731
        Outcome.TERMINAL if error is not None else None
    )
    assert classify(error=ConnectionError(), override=never_retry) is Outcome.TERMINAL
    assert classify(500, override=never_retry) is Outcome.RETRYABLE


def test_override_must_return_an_outcome_or_none() -> None:
    """An override returning anything else is a type error naming override."""
    with pytest.raises(
        InvalidArgumentType,
        match=r"^classify: override must return an Outcome or None, returned 'retry'",
    ):
        classify(500, override=lambda status, error: "retry")  # type: ignore[arg-type,return-value]


def test_override_must_be_callable() -> None:
    """A non-callable override is a type error naming override."""
    with pytest.raises(InvalidArgumentType, match=r"^classify: override must be a function"):
        classify(500, override="retry")  # type: ignore[arg-type]


def test_override_errors_propagate() -> None:
    """An exception raised by the override is not swallowed."""

    def broken(status: int | None, error: BaseException | None) -> Outcome | None:
        """A buggy override."""
        raise ZeroDivisionError

    with pytest.raises(ZeroDivisionError):
        classify(200, override=broken)
