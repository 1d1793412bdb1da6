"""OpenTelemetry for otpy: every span, attribute and metric name it emits, events, setup.

The ``SPAN_*``, ``ATTR_*`` and ``METRIC_*`` constants name everything otpy records,
for supervision, pressure, dead letters and replay; ``docs/telemetry.md`` lists them
in one table with what each is for. Their values are what dashboards query.

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
from ._events import record_escalation as record_escalation
from ._events import record_restart as record_restart
from ._events import record_start_error as record_start_error
from ._instruments import cached_counter as cached_counter
from ._instruments import cached_gauge as cached_gauge
from ._instruments import cached_histogram as cached_histogram
from ._instruments import get_meter as get_meter
from ._instruments import get_tracer as get_tracer
from ._names import ATTR_CHILD_ID as ATTR_CHILD_ID
from ._names import ATTR_DEADLETTER_COUNT as ATTR_DEADLETTER_COUNT
from ._names import ATTR_DEADLETTER_DROP_REASON as ATTR_DEADLETTER_DROP_REASON
from ._names import ATTR_DEADLETTER_ID as ATTR_DEADLETTER_ID
from ._names import ATTR_DEADLETTER_KEY as ATTR_DEADLETTER_KEY
from ._names import ATTR_DEADLETTER_RULE as ATTR_DEADLETTER_RULE
from ._names import ATTR_DEADLETTER_SOURCE as ATTR_DEADLETTER_SOURCE
from ._names import ATTR_DEADLETTER_STATUS as ATTR_DEADLETTER_STATUS
from ._names import ATTR_DEADLETTER_STORE as ATTR_DEADLETTER_STORE
from ._names import ATTR_ERROR_TYPE as ATTR_ERROR_TYPE
from ._names import ATTR_INTENSITY as ATTR_INTENSITY
from ._names import ATTR_PERIOD as ATTR_PERIOD
from ._names import ATTR_PRESSURE_CAPACITY as ATTR_PRESSURE_CAPACITY
from ._names import ATTR_PRESSURE_COMPONENT as ATTR_PRESSURE_COMPONENT
from ._names import ATTR_PRESSURE_DEPTH as ATTR_PRESSURE_DEPTH
from ._names import ATTR_PRESSURE_NEW_LEVEL as ATTR_PRESSURE_NEW_LEVEL
from ._names import ATTR_PRESSURE_OLD_LEVEL as ATTR_PRESSURE_OLD_LEVEL
from ._names import ATTR_PRESSURE_PARTITION as ATTR_PRESSURE_PARTITION
from ._names import ATTR_PRESSURE_PRIORITY as ATTR_PRESSURE_PRIORITY
from ._names import ATTR_PRESSURE_QUEUE as ATTR_PRESSURE_QUEUE
from ._names import ATTR_PRESSURE_RATIO as ATTR_PRESSURE_RATIO
from ._names import ATTR_PRESSURE_REASON as ATTR_PRESSURE_REASON
from ._names import ATTR_REASON as ATTR_REASON
from ._names import ATTR_REASON_CLASS as ATTR_REASON_CLASS
from ._names import ATTR_REPLAY_ATTEMPT as ATTR_REPLAY_ATTEMPT
from ._names import ATTR_REPLAY_FORCE as ATTR_REPLAY_FORCE
from ._names import ATTR_REPLAY_OUTCOME as ATTR_REPLAY_OUTCOME
from ._names import ATTR_REPLAY_PARTITION as ATTR_REPLAY_PARTITION
from ._names import ATTR_REPLAY_RESUBMIT as ATTR_REPLAY_RESUBMIT
from ._names import ATTR_RESTART_DELAY as ATTR_RESTART_DELAY
from ._names import ATTR_RESTARTS_IN_WINDOW as ATTR_RESTARTS_IN_WINDOW
from ._names import ATTR_STRATEGY as ATTR_STRATEGY
from ._names import ATTR_SUPERVISOR as ATTR_SUPERVISOR
from ._names import METRIC_DEADLETTER_CAPTURE_DROPPED as METRIC_DEADLETTER_CAPTURE_DROPPED
from ._names import METRIC_DEADLETTER_CAPTURED as METRIC_DEADLETTER_CAPTURED
from ._names import METRIC_DEADLETTER_EVICTIONS as METRIC_DEADLETTER_EVICTIONS
from ._names import METRIC_ESCALATIONS as METRIC_ESCALATIONS
from ._names import METRIC_PRESSURE_CAPACITY as METRIC_PRESSURE_CAPACITY
from ._names import METRIC_PRESSURE_DEPTH as METRIC_PRESSURE_DEPTH
from ._names import METRIC_PRESSURE_DROPS as METRIC_PRESSURE_DROPS
from ._names import METRIC_PRESSURE_THROTTLE as METRIC_PRESSURE_THROTTLE
from ._names import METRIC_PRESSURE_TRANSITIONS as METRIC_PRESSURE_TRANSITIONS
from ._names import METRIC_REPLAY_OUTCOMES as METRIC_REPLAY_OUTCOMES
from ._names import METRIC_RESTARTS as METRIC_RESTARTS
from ._names import SPAN_CHILD_START_ERROR as SPAN_CHILD_START_ERROR
from ._names import SPAN_DEADLETTER_RECLAIM as SPAN_DEADLETTER_RECLAIM
from ._names import SPAN_DEADLETTER_REPLAY as SPAN_DEADLETTER_REPLAY
from ._names import SPAN_DEADLETTER_WRITE as SPAN_DEADLETTER_WRITE
from ._names import SPAN_ESCALATION as SPAN_ESCALATION
from ._names import SPAN_PRESSURE_TRANSITION as SPAN_PRESSURE_TRANSITION
from ._names import SPAN_RESTART as SPAN_RESTART
from ._propagation import install_propagation as install_propagation
from ._setup import Telemetry as Telemetry
from ._setup import TelemetryConfigError as TelemetryConfigError
from ._setup import configure_from_env as configure_from_env
from ._setup import meter_provider_installed as meter_provider_installed
from ._setup import sdk_disabled as sdk_disabled
from ._setup import tracer_provider_installed as tracer_provider_installed

__all__ = [
    # setup
    "configure_from_env",
    "Telemetry",
    "TelemetryConfigError",
    "sdk_disabled",
    "tracer_provider_installed",
    "meter_provider_installed",
    "get_tracer",
    "get_meter",
    "install_propagation",
    # instruments, for otpy's own subsystems
    "cached_counter",
    "cached_histogram",
    "cached_gauge",
    # supervision events
    "record_restart",
    "record_escalation",
    "record_start_error",
    "describe_reason",
    # supervision: spans
    "SPAN_RESTART",
    "SPAN_ESCALATION",
    "SPAN_CHILD_START_ERROR",
    # supervision: attributes
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
    # supervision: metrics
    "METRIC_RESTARTS",
    "METRIC_ESCALATIONS",
    # pressure: spans
    "SPAN_PRESSURE_TRANSITION",
    # pressure: attributes
    "ATTR_PRESSURE_COMPONENT",
    "ATTR_PRESSURE_QUEUE",
    "ATTR_PRESSURE_PARTITION",
    "ATTR_PRESSURE_OLD_LEVEL",
    "ATTR_PRESSURE_NEW_LEVEL",
    "ATTR_PRESSURE_DEPTH",
    "ATTR_PRESSURE_CAPACITY",
    "ATTR_PRESSURE_RATIO",
    "ATTR_PRESSURE_REASON",
    "ATTR_PRESSURE_PRIORITY",
    # pressure: metrics
    "METRIC_PRESSURE_DEPTH",
    "METRIC_PRESSURE_CAPACITY",
    "METRIC_PRESSURE_TRANSITIONS",
    "METRIC_PRESSURE_DROPS",
    "METRIC_PRESSURE_THROTTLE",
    # dead letters: spans
    "SPAN_DEADLETTER_WRITE",
    # dead letters: attributes
    "ATTR_DEADLETTER_COUNT",
    "ATTR_DEADLETTER_STORE",
    "ATTR_DEADLETTER_ID",
    "ATTR_DEADLETTER_KEY",
    "ATTR_DEADLETTER_SOURCE",
    "ATTR_DEADLETTER_STATUS",
    "ATTR_DEADLETTER_RULE",
    "ATTR_DEADLETTER_DROP_REASON",
    # dead letters: metrics
    "METRIC_DEADLETTER_CAPTURED",
    "METRIC_DEADLETTER_EVICTIONS",
    "METRIC_DEADLETTER_CAPTURE_DROPPED",
    # replay: spans
    "SPAN_DEADLETTER_REPLAY",
    "SPAN_DEADLETTER_RECLAIM",
    # replay: attributes
    "ATTR_REPLAY_OUTCOME",
    "ATTR_REPLAY_PARTITION",
    "ATTR_REPLAY_ATTEMPT",
    "ATTR_REPLAY_FORCE",
    "ATTR_REPLAY_RESUBMIT",
    # replay: metrics
    "METRIC_REPLAY_OUTCOMES",
]
