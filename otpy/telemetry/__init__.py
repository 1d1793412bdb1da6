"""OpenTelemetry for otpy: span, attribute and metric names, supervision events, setup.

otpy records through opentelemetry-api only, so a program that installs no SDK pays
almost nothing. To export, call `configure_from_env` once at start-up and shut the
handle down when the node stops::

    telemetry = configure_from_env()
    try:
        anyio.run(main)
    finally:
        telemetry.shutdown()

Everything is configured by the standard ``OTEL_*`` environment variables; OTLP goes
over HTTP (protobuf) unless ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc``.

.. versionadded:: 0.1.0
"""

from __future__ import annotations

from ._events import describe_reason as describe_reason
from ._events import get_meter as get_meter
from ._events import get_tracer as get_tracer
from ._events import record_escalation as record_escalation
from ._events import record_restart as record_restart
from ._events import record_start_error as record_start_error
from ._names import ATTR_CHILD_ID as ATTR_CHILD_ID
from ._names import ATTR_ERROR_TYPE as ATTR_ERROR_TYPE
from ._names import ATTR_INTENSITY as ATTR_INTENSITY
from ._names import ATTR_PERIOD as ATTR_PERIOD
from ._names import ATTR_REASON as ATTR_REASON
from ._names import ATTR_REASON_CLASS as ATTR_REASON_CLASS
from ._names import ATTR_RESTART_DELAY as ATTR_RESTART_DELAY
from ._names import ATTR_RESTARTS_IN_WINDOW as ATTR_RESTARTS_IN_WINDOW
from ._names import ATTR_STRATEGY as ATTR_STRATEGY
from ._names import ATTR_SUPERVISOR as ATTR_SUPERVISOR
from ._names import METRIC_ESCALATIONS as METRIC_ESCALATIONS
from ._names import METRIC_RESTARTS as METRIC_RESTARTS
from ._names import SPAN_CHILD_START_ERROR as SPAN_CHILD_START_ERROR
from ._names import SPAN_ESCALATION as SPAN_ESCALATION
from ._names import SPAN_RESTART as SPAN_RESTART
from ._propagation import install_propagation as install_propagation
from ._setup import Telemetry as Telemetry
from ._setup import TelemetryConfigError as TelemetryConfigError
from ._setup import configure_from_env as configure_from_env

__all__ = [
    # setup
    "configure_from_env",
    "Telemetry",
    "TelemetryConfigError",
    "get_tracer",
    "get_meter",
    "install_propagation",
    # events
    "record_restart",
    "record_escalation",
    "record_start_error",
    "describe_reason",
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
