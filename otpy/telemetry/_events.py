"""Supervision events as spans and metrics, through opentelemetry-api only.

The supervisor calls these on its hot path, so each emitter is cheap when no SDK is
installed (the API's no-op tracer and meter), and none of them ever raises: telemetry
failing must not change what the supervisor does. A failure is logged at debug level.
"""

from __future__ import annotations

from opentelemetry.trace import SpanKind, Status, StatusCode

from .._core import ShutdownWith
from .._exceptions import RestartIntensityExceeded
from .._redact import get_logger, redact
from ._instruments import cached_counter, get_tracer
from ._names import (
    ATTR_CHILD_ID,
    ATTR_ERROR_TYPE,
    ATTR_INTENSITY,
    ATTR_PERIOD,
    ATTR_REASON,
    ATTR_REASON_CLASS,
    ATTR_RESTART_DELAY,
    ATTR_RESTARTS_IN_WINDOW,
    ATTR_STRATEGY,
    ATTR_SUPERVISOR,
    METRIC_ESCALATIONS,
    METRIC_RESTARTS,
    SPAN_CHILD_START_ERROR,
    SPAN_ESCALATION,
    SPAN_RESTART,
)

__all__ = [
    "describe_reason",
    "record_escalation",
    "record_restart",
    "record_start_error",
]

logger = get_logger("otpy.telemetry")

_MAX_MESSAGE = 200  # characters of an exception message kept in ATTR_REASON

_restarts_counter = cached_counter(
    METRIC_RESTARTS, unit="{restart}", description="Children restarted by a supervisor."
)
_escalations_counter = cached_counter(
    METRIC_ESCALATIONS,
    unit="{escalation}",
    description="Supervisors that exceeded their restart intensity and gave up.",
)


def describe_reason(reason: object) -> tuple[str, str]:
    """Return the class and a redacted description of an exit reason.

    Reasons can carry message payloads, so only what is safe to export is kept:

    - an exception gives its class name and ``"ClassName: message"``, the message
      redacted (`otpy.deadletter.redact`) and cut to 200 characters (just the class
      name when the message is empty);
    - a string is an atom such as ``"normal"`` or ``"shutdown"`` and is both its class
      and its description (redacted and cut to 200 characters);
    - anything else, a `ShutdownWith` detail say, gives its type name only.

    Args:
        reason: An exit reason: an exception, an atom string or any other object.

    Returns:
        ``(reason_class, description)``, for `ATTR_REASON_CLASS` and `ATTR_REASON`.

    .. versionadded:: 0.1.0
    """
    if isinstance(reason, BaseException):
        name = type(reason).__name__
        try:
            message = redact(str(reason))[:_MAX_MESSAGE]
        except Exception:
            message = "<unprintable message>"
        return name, f"{name}: {message}" if message else name
    if isinstance(reason, str):
        atom = redact(reason)[:_MAX_MESSAGE]
        return atom, atom
    if isinstance(reason, ShutdownWith):
        return "ShutdownWith", f"shutdown: {describe_reason(reason.detail)[1]}"
    if isinstance(reason, type) and issubclass(reason, BaseException):
        return reason.__name__, reason.__name__
    name = type(reason).__name__
    return name, name


def record_restart(
    *,
    supervisor: str,
    child_id: str,
    reason: BaseException | str | object,
    strategy: str,
    restarts_in_window: int,
    intensity: int,
    period: float,
    delay: float = 0.0,
) -> None:
    """Record that *supervisor* restarted *child_id*.

    Emits a short INTERNAL `SPAN_RESTART` span and adds one to `METRIC_RESTARTS`. The
    restart itself succeeded, so the span's status stays unset. Never raises.

    Args:
        supervisor: The supervisor's name.
        child_id: The restarted child's id.
        reason: Why the child exited; recorded through `describe_reason`.
        strategy: The supervisor's strategy, such as ``"one_for_one"``.
        restarts_in_window: Restarts in the sliding window, this one included.
        intensity: The supervisor's restart intensity.
        period: The intensity period, in seconds.
        delay: The backoff delay before this restart, in seconds.

    .. versionadded:: 0.1.0
    """
    try:
        _restarts_counter().add(1, {ATTR_SUPERVISOR: str(supervisor), ATTR_CHILD_ID: str(child_id)})
        span = get_tracer().start_span(SPAN_RESTART, kind=SpanKind.INTERNAL)
        try:
            if span.is_recording():
                reason_class, description = describe_reason(reason)
                span.set_attributes(
                    {
                        ATTR_SUPERVISOR: str(supervisor),
                        ATTR_CHILD_ID: str(child_id),
                        ATTR_REASON_CLASS: reason_class,
                        ATTR_REASON: description,
                        ATTR_STRATEGY: str(strategy),
                        ATTR_RESTARTS_IN_WINDOW: restarts_in_window,
                        ATTR_INTENSITY: intensity,
                        ATTR_PERIOD: period,
                        ATTR_RESTART_DELAY: delay,
                    }
                )
        finally:
            span.end()
    except Exception:
        logger.debug("could not record a supervisor restart", exc_info=True)


def record_escalation(
    *,
    supervisor: str,
    offender: str,
    reason: object,
    restarts: int,
    intensity: int,
    period: float,
) -> None:
    """Record that *supervisor* exceeded its restart intensity and gave up.

    Emits a `SPAN_ESCALATION` span with status Error, ``error.type`` set to
    ``"RestartIntensityExceeded"`` and a description saying the intensity was exceeded,
    and adds one to `METRIC_ESCALATIONS`. Never raises.

    Args:
        supervisor: The supervisor's name.
        offender: The id of the child whose exit was one restart too many.
        reason: That child's exit reason; recorded through `describe_reason`.
        restarts: Restarts counted in the window when the supervisor gave up.
        intensity: The supervisor's restart intensity.
        period: The intensity period, in seconds.

    .. versionadded:: 0.1.0
    """
    try:
        _escalations_counter().add(1, {ATTR_SUPERVISOR: str(supervisor)})
        span = get_tracer().start_span(SPAN_ESCALATION, kind=SpanKind.INTERNAL)
        try:
            if span.is_recording():
                reason_class, description = describe_reason(reason)
                span.set_attributes(
                    {
                        ATTR_SUPERVISOR: str(supervisor),
                        ATTR_CHILD_ID: str(offender),
                        ATTR_REASON_CLASS: reason_class,
                        ATTR_REASON: description,
                        ATTR_RESTARTS_IN_WINDOW: restarts,
                        ATTR_INTENSITY: intensity,
                        ATTR_PERIOD: period,
                        ATTR_ERROR_TYPE: RestartIntensityExceeded.__name__,
                    }
                )
                span.set_status(
                    Status(
                        StatusCode.ERROR,
                        f"supervisor {str(supervisor)!r} shut down: {restarts} restarts in "
                        f"{period:g}s exceeded its intensity of {intensity}",
                    )
                )
        finally:
            span.end()
    except Exception:
        logger.debug("could not record a supervisor escalation", exc_info=True)


def record_start_error(*, supervisor: str, child_id: str, reason: object) -> None:
    """Record that *child_id* failed to start or restart under *supervisor*.

    Emits a `SPAN_CHILD_START_ERROR` span with status Error, ``error.type`` set to the
    reason's class and the redacted reason as its description. Never raises.

    Args:
        supervisor: The supervisor's name.
        child_id: The child that failed to start.
        reason: Why it failed; recorded through `describe_reason`.

    .. versionadded:: 0.1.0
    """
    try:
        span = get_tracer().start_span(SPAN_CHILD_START_ERROR, kind=SpanKind.INTERNAL)
        try:
            if span.is_recording():
                reason_class, description = describe_reason(reason)
                span.set_attributes(
                    {
                        ATTR_SUPERVISOR: str(supervisor),
                        ATTR_CHILD_ID: str(child_id),
                        ATTR_REASON_CLASS: reason_class,
                        ATTR_REASON: description,
                        ATTR_ERROR_TYPE: reason_class,
                    }
                )
                span.set_status(Status(StatusCode.ERROR, description))
        finally:
            span.end()
    except Exception:
        logger.debug("could not record a child start error", exc_info=True)
