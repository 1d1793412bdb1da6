"""Span, attribute and metric names otpy emits.

Semantic conventions have nothing for supervision, so these live in a custom
``otpy.*`` namespace (REFERENCE-SOURCES 6.1 #8). Failures also carry the standard
``error.type`` attribute (T3). Names are part of the public API: dashboards and
runbooks query them, so they change only with a changelog entry.
"""

from __future__ import annotations

from typing import Final

__all__ = [
    # spans
    "SPAN_RESTART",
    "SPAN_ESCALATION",
    "SPAN_CHILD_START_ERROR",
    # attributes
    "ATTR_SUPERVISOR",
    "ATTR_CHILD_ID",
    "ATTR_REASON",
    "ATTR_REASON_CLASS",
    "ATTR_STRATEGY",
    "ATTR_RESTARTS_IN_WINDOW",
    "ATTR_INTENSITY",
    "ATTR_PERIOD",
    "ATTR_RESTART_DELAY",
    "ATTR_ERROR_TYPE",
    # metrics
    "METRIC_RESTARTS",
    "METRIC_ESCALATIONS",
]

# Spans. Each is a short INTERNAL span that starts and ends at the event.

SPAN_RESTART: Final = "otpy.supervisor.restart"
"""A supervisor restarted a child after it exited."""
SPAN_ESCALATION: Final = "otpy.supervisor.escalation"
"""A supervisor exceeded its restart intensity and gave up (status Error)."""
SPAN_CHILD_START_ERROR: Final = "otpy.supervisor.start_error"
"""A child failed to start or restart (status Error)."""

# Attributes.

ATTR_SUPERVISOR: Final = "otpy.supervisor"
"""The name of the supervisor reporting the event."""
ATTR_CHILD_ID: Final = "otpy.child.id"
"""The child's id in its supervisor's spec (the offender, for an escalation)."""
ATTR_REASON: Final = "otpy.reason"
"""A redacted description of the exit reason (see `describe_reason`)."""
ATTR_REASON_CLASS: Final = "otpy.reason.class"
"""The exit reason's class name, or the reason itself for ``"normal"``-style atoms."""
ATTR_STRATEGY: Final = "otpy.strategy"
"""The supervisor's restart strategy, such as ``one_for_one``."""
ATTR_RESTARTS_IN_WINDOW: Final = "otpy.restarts_in_window"
"""How many restarts the supervisor's sliding window holds, this one included."""
ATTR_INTENSITY: Final = "otpy.intensity"
"""The supervisor's restart intensity (restarts allowed per period)."""
ATTR_PERIOD: Final = "otpy.period"
"""The supervisor's intensity period, in seconds."""
ATTR_RESTART_DELAY: Final = "otpy.restart.delay"
"""The backoff delay before the restart, in seconds."""
ATTR_ERROR_TYPE: Final = "error.type"
"""The semantic-conventions error class (``opentelemetry.semconv`` ``ERROR_TYPE``).

Written out rather than imported so the hot path needs only opentelemetry-api; a
test checks it against the semconv package.
"""

# Metrics. Both are monotonic counters.

METRIC_RESTARTS: Final = "otpy.supervisor.restarts"
"""Child restarts, with attributes `ATTR_SUPERVISOR` and `ATTR_CHILD_ID`."""
METRIC_ESCALATIONS: Final = "otpy.supervisor.escalations"
"""Supervisors that gave up, with attribute `ATTR_SUPERVISOR`."""
