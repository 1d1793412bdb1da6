"""OpenTelemetry for otpy: every span, attribute and metric name it emits, events, setup.

The ``SPAN_*``, ``ATTR_*`` and ``METRIC_*`` constants name everything otpy records,
for supervision, pressure, dead letters, replay and the gateway; ``docs/telemetry.md`` lists them
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
from ._names import *  # noqa: F403  (every name; _names.__all__ groups them)
from ._names import __all__ as _names
from ._propagation import install_propagation as install_propagation
from ._setup import Telemetry as Telemetry
from ._setup import TelemetryConfigError as TelemetryConfigError
from ._setup import configure_from_env as configure_from_env
from ._setup import force_flush as force_flush
from ._setup import meter_provider_installed as meter_provider_installed
from ._setup import providers_set as providers_set
from ._setup import sdk_disabled as sdk_disabled
from ._setup import tracer_provider_installed as tracer_provider_installed

__all__ = [
    # setup
    "configure_from_env",
    "force_flush",
    "Telemetry",
    "TelemetryConfigError",
    "sdk_disabled",
    "tracer_provider_installed",
    "meter_provider_installed",
    "providers_set",
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
    # every span, attribute and metric name (otpy.telemetry._names, in docs/telemetry.md)
    *_names,
]
