"""Install OpenTelemetry SDK providers configured only from the standard ``OTEL_*`` variables.

otpy decides three things from the environment mapping it is given: whether the SDK is
disabled (``OTEL_SDK_DISABLED``), which exporters to use (``OTEL_TRACES_EXPORTER``,
``OTEL_METRICS_EXPORTER``) and which OTLP protocol (``OTEL_EXPORTER_OTLP_PROTOCOL`` and
its per-signal variants). Everything else is read by the SDK classes themselves, from
`os.environ`, when they are constructed, and otpy does not reimplement any of it: the
resource (``OTEL_SERVICE_NAME``, ``OTEL_RESOURCE_ATTRIBUTES``), the endpoint, headers,
timeout, compression and certificates of the OTLP exporters, the batch span processor's
``OTEL_BSP_*``, the sampler and the metric export interval. So the mapping passed to the
``build_*`` functions should be `os.environ`; tests patch `os.environ` and pass it.

The OTLP protocol defaults to ``http/protobuf`` (OTLP/HTTP, port 4318), the default the
OpenTelemetry specification gives. This differs from the Python SDK's own
auto-configuration, which picks gRPC when the exporter is ``otlp`` and no protocol is set;
set ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` to get gRPC. The gRPC exporter (and grpcio) is
an extra, ``pip install 'otpy[grpc]'``: without it, asking for gRPC is a
`TelemetryConfigError` that says so.

The SDK and exporters are imported inside the functions that need them, so importing
``otpy.telemetry`` costs only opentelemetry-api.
"""

from __future__ import annotations

import atexit
import os
import threading
import time
from typing import TYPE_CHECKING, Final, Literal, final

import attrs
from opentelemetry import metrics, trace
from opentelemetry.metrics import _internal as _metrics_api

from .._check import name as check_name
from .._check import number
from .._exceptions import OtpyError
from .._redact import get_logger
from ._propagation import install_propagation

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping, Sequence

    from opentelemetry.sdk.metrics import MeterProvider
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter

__all__ = [
    "Telemetry",
    "TelemetryConfigError",
    "build_meter_provider",
    "build_metric_exporters",
    "build_metric_readers",
    "build_resource",
    "build_span_exporters",
    "build_span_processors",
    "build_tracer_provider",
    "configure_from_env",
    "exporter_names",
    "force_flush",
    "meter_provider_installed",
    "otlp_protocol",
    "sdk_disabled",
    "tracer_provider_installed",
]

logger = get_logger("otpy.telemetry")

Signal = Literal["traces", "metrics"]

PROTOCOL_HTTP: Final = "http/protobuf"
PROTOCOL_GRPC: Final = "grpc"
PROTOCOLS: Final = (PROTOCOL_HTTP, PROTOCOL_GRPC)
"""Supported OTLP protocols, the default first. The Python SDK has no ``http/json``."""

EXPORTERS: Final = ("otlp", "console", "none")
"""Supported values of ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``, the default first."""


class TelemetryConfigError(OtpyError, ValueError):
    """An ``OTEL_*`` environment variable has a value otpy does not support.

    Or one it supports only with an extra that is not installed: ``grpc`` needs
    ``pip install 'otpy[grpc]'``.

    Attributes:
        variable: The environment variable's name.
        value: The value it had.
        allowed: The values it may take, the default first (when *needs* is set: the
            values it may take without installing anything).
        needs: What *value* needs that is not installed, with how to install it; None
            when *value* is not supported at all.

    .. versionadded:: 0.1.0
    """

    def __init__(
        self, variable: str, value: str, allowed: Sequence[str], *, needs: str | None = None
    ) -> None:
        quoted = [repr(choice) for choice in allowed]
        quoted[0] += " (the default)"
        choices = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        if needs is None:
            message = f"{variable}={value!r} is not supported; use {choices}"
        else:
            message = (
                f"{variable}={value!r} needs {needs}, which is not installed; "
                f"install it or use {choices}"
            )
        super().__init__(message)
        self.variable = variable
        self.value = value
        self.allowed = tuple(allowed)
        self.needs = needs


# -- reading the environment ---------------------------------------------------------------


def sdk_disabled(env: Mapping[str, str]) -> bool:
    """Return whether ``OTEL_SDK_DISABLED`` is ``true`` (case-insensitive) in *env*."""
    return env.get("OTEL_SDK_DISABLED", "").strip().lower() == "true"


def exporter_names(env: Mapping[str, str], signal: Signal) -> tuple[str, ...]:
    """Return the exporters ``OTEL_TRACES_EXPORTER`` or ``OTEL_METRICS_EXPORTER`` selects.

    The value is a comma-separated list; unset means ``otlp``; ``none`` selects nothing.

    Raises:
        TelemetryConfigError: An entry is not ``otlp``, ``console`` or ``none``.
    """
    variable = f"OTEL_{signal.upper()}_EXPORTER"
    raw = env.get(variable, "").strip() or EXPORTERS[0]
    names: list[str] = []
    for item in raw.split(","):
        name = item.strip().lower()
        if not name:
            continue
        if name not in EXPORTERS:
            raise TelemetryConfigError(variable, item.strip(), EXPORTERS)
        if name != "none" and name not in names:
            names.append(name)
    return tuple(names)


def otlp_protocol(env: Mapping[str, str], signal: Signal) -> str:
    """Return the OTLP protocol for *signal*: ``http/protobuf`` (the default) or ``grpc``.

    ``OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`` (or ``..._METRICS_...``) wins over
    ``OTEL_EXPORTER_OTLP_PROTOCOL``.

    Raises:
        TelemetryConfigError: The variable in effect has another value; the error names it.
    """
    return _protocol_setting(env, signal)[1]


def _protocol_setting(env: Mapping[str, str], signal: Signal) -> tuple[str, str]:
    """Return the variable that sets *signal*'s OTLP protocol and the protocol, lowercased.

    With neither variable set: ``("OTEL_EXPORTER_OTLP_PROTOCOL", "http/protobuf")``.
    """
    for variable in (
        f"OTEL_EXPORTER_OTLP_{signal.upper()}_PROTOCOL",
        "OTEL_EXPORTER_OTLP_PROTOCOL",
    ):
        value = env.get(variable, "").strip()
        if value:
            if value.lower() not in PROTOCOLS:
                raise TelemetryConfigError(variable, value, PROTOCOLS)
            return variable, value.lower()
    return "OTEL_EXPORTER_OTLP_PROTOCOL", PROTOCOL_HTTP


def _check(env: Mapping[str, str]) -> None:
    """Raise `TelemetryConfigError` for any bad setting, before anything starts a thread."""
    if "otlp" in exporter_names(env, "traces") and otlp_protocol(env, "traces") == PROTOCOL_GRPC:
        _grpc_span_exporter(env)
    if "otlp" in exporter_names(env, "metrics") and otlp_protocol(env, "metrics") == PROTOCOL_GRPC:
        _grpc_metric_exporter(env)


GRPC_EXTRA: Final = "the gRPC exporter (pip install 'otpy[grpc]')"
"""What ``OTEL_EXPORTER_OTLP_PROTOCOL=grpc`` needs: otpy installs OTLP/HTTP only."""


def _grpc_missing(env: Mapping[str, str], signal: Signal) -> TelemetryConfigError:
    """The error for gRPC selected (for *signal*) without the ``grpc`` extra installed."""
    variable, value = _protocol_setting(env, signal)
    return TelemetryConfigError(variable, value, (PROTOCOL_HTTP,), needs=GRPC_EXTRA)


def _grpc_span_exporter(env: Mapping[str, str]) -> type[SpanExporter]:
    """Import the OTLP/gRPC span exporter; without the ``grpc`` extra, say how to get it."""
    try:
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
    except ImportError as exc:
        raise _grpc_missing(env, "traces") from exc
    return OTLPSpanExporter


def _grpc_metric_exporter(env: Mapping[str, str]) -> type[MetricExporter]:
    """Import the OTLP/gRPC metric exporter; without the ``grpc`` extra, say how to get it."""
    try:
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter
    except ImportError as exc:
        raise _grpc_missing(env, "metrics") from exc
    return OTLPMetricExporter


# -- building, without installing ----------------------------------------------------------


def build_resource(*, default_service_name: str = "otpy") -> Resource:
    """Build the SDK resource from ``OTEL_SERVICE_NAME`` and ``OTEL_RESOURCE_ATTRIBUTES``.

    The SDK's ``Resource.create`` reads both from `os.environ`, ``OTEL_SERVICE_NAME``
    winning; *default_service_name* is used only when neither names the service.
    """
    from opentelemetry.sdk.resources import SERVICE_NAME, OTELResourceDetector, Resource

    if OTELResourceDetector().detect().attributes.get(SERVICE_NAME):
        return Resource.create()
    return Resource.create({SERVICE_NAME: default_service_name})


def build_span_exporters(env: Mapping[str, str]) -> list[SpanExporter]:
    """Build the span exporters ``OTEL_TRACES_EXPORTER`` selects (none when it is ``none``).

    Each OTLP exporter reads its endpoint, headers, timeout and TLS settings from
    `os.environ` itself.

    Raises:
        TelemetryConfigError: An exporter or protocol setting is not supported, or gRPC
            was selected without the ``grpc`` extra installed.
    """
    exporters: list[SpanExporter] = []
    for name in exporter_names(env, "traces"):
        if name == "console":
            from opentelemetry.sdk.trace.export import ConsoleSpanExporter

            exporters.append(ConsoleSpanExporter())
        elif otlp_protocol(env, "traces") == PROTOCOL_GRPC:
            exporters.append(_grpc_span_exporter(env)())
        else:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
                OTLPSpanExporter as HTTPSpanExporter,
            )

            exporters.append(HTTPSpanExporter())
    return exporters


def build_span_processors(env: Mapping[str, str]) -> list[SpanProcessor]:
    """Wrap each of `build_span_exporters` in a ``BatchSpanProcessor``.

    The processor reads ``OTEL_BSP_*`` from `os.environ` itself (schedule delay 5000 ms,
    queue 2048, batch 512, export timeout 30000 ms by default). It starts a worker
    thread, so the caller owns its shutdown.
    """
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return [BatchSpanProcessor(exporter) for exporter in build_span_exporters(env)]


def build_tracer_provider(
    env: Mapping[str, str],
    *,
    resource: Resource | None = None,
    default_service_name: str = "otpy",
) -> TracerProvider | None:
    """Build, but do not install, an SDK ``TracerProvider`` configured from *env*.

    Args:
        env: The environment, normally `os.environ`.
        resource: The resource; by default `build_resource` with *default_service_name*.
        default_service_name: The service name when the environment gives none.

    Returns:
        The provider, or None when the SDK is disabled or no span exporter is selected.
        The caller owns its shutdown: no atexit hook is registered.

    Raises:
        TelemetryConfigError: An exporter or protocol setting is not supported.
    """
    if sdk_disabled(env):
        return None
    processors = build_span_processors(env)
    if not processors:
        return None

    from opentelemetry.sdk.trace import TracerProvider

    if resource is None:
        resource = build_resource(default_service_name=default_service_name)
    provider = TracerProvider(
        resource=resource,
        shutdown_on_exit=False,
    )
    for processor in processors:
        provider.add_span_processor(processor)
    return provider


def build_metric_exporters(env: Mapping[str, str]) -> list[MetricExporter]:
    """Build the metric exporters ``OTEL_METRICS_EXPORTER`` selects (none when it is ``none``).

    The OTLP protocol comes from ``OTEL_EXPORTER_OTLP_METRICS_PROTOCOL``, else
    ``OTEL_EXPORTER_OTLP_PROTOCOL``, so one setting serves both signals.

    Raises:
        TelemetryConfigError: An exporter or protocol setting is not supported, or gRPC
            was selected without the ``grpc`` extra installed.
    """
    exporters: list[MetricExporter] = []
    for name in exporter_names(env, "metrics"):
        if name == "console":
            from opentelemetry.sdk.metrics.export import ConsoleMetricExporter

            exporters.append(ConsoleMetricExporter())
        elif otlp_protocol(env, "metrics") == PROTOCOL_GRPC:
            exporters.append(_grpc_metric_exporter(env)())
        else:
            from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
                OTLPMetricExporter as HTTPMetricExporter,
            )

            exporters.append(HTTPMetricExporter())
    return exporters


def build_metric_readers(env: Mapping[str, str]) -> list[MetricReader]:
    """Wrap each of `build_metric_exporters` in a ``PeriodicExportingMetricReader``.

    The reader reads ``OTEL_METRIC_EXPORT_INTERVAL`` / ``_TIMEOUT`` from `os.environ`
    itself. It starts a thread, so the caller owns its shutdown.
    """
    from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

    return [PeriodicExportingMetricReader(exporter) for exporter in build_metric_exporters(env)]


def build_meter_provider(
    env: Mapping[str, str],
    *,
    resource: Resource | None = None,
    default_service_name: str = "otpy",
) -> MeterProvider | None:
    """Build, but do not install, an SDK ``MeterProvider`` configured from *env*.

    Args:
        env: The environment, normally `os.environ`.
        resource: The resource; by default `build_resource` with *default_service_name*.
        default_service_name: The service name when the environment gives none.

    Returns:
        The provider, or None when the SDK is disabled or no metric exporter is selected.
        The caller owns its shutdown: no atexit hook is registered.

    Raises:
        TelemetryConfigError: An exporter or protocol setting is not supported.
    """
    if sdk_disabled(env):
        return None
    readers = build_metric_readers(env)
    if not readers:
        return None

    from opentelemetry.sdk.metrics import MeterProvider

    if resource is None:
        resource = build_resource(default_service_name=default_service_name)
    return MeterProvider(
        metric_readers=readers,
        resource=resource,
        shutdown_on_exit=False,
    )


# -- the handle ----------------------------------------------------------------------------


def _run_bounded(fn: Callable[[], bool], timeout: float, what: str) -> bool:
    """Run *fn* on a daemon thread and wait at most *timeout* seconds; never raise.

    The SDK's flush blocks on the exporter (up to ``OTEL_EXPORTER_OTLP_TIMEOUT``, 10 s by
    default) whatever timeout it is given, so the bound is enforced here. A thread still
    running after *timeout* is abandoned; being a daemon, it cannot hold up exit.
    """
    outcome: list[bool] = []

    def target() -> None:
        try:
            outcome.append(fn())
        except Exception:
            logger.warning("telemetry %s failed", what, exc_info=True)

    thread = threading.Thread(target=target, name=f"otpy-telemetry-{what}", daemon=True)
    try:
        thread.start()
    except RuntimeError:  # pragma: no cover - no new threads during interpreter shutdown
        target()
        return bool(outcome and outcome[0])
    thread.join(max(timeout, 0.0))
    if thread.is_alive():
        logger.warning(
            "telemetry %s did not finish within %gs; is the collector reachable? "
            "Spans and metrics not yet exported may be lost",
            what,
            timeout,
        )
        return False
    return bool(outcome and outcome[0])


def force_flush(timeout: float = 5.0) -> bool:
    """Export what the global tracer and meter providers hold, waiting at most *timeout* seconds.

    Whoever installed them (:func:`configure_from_env`, or the application), a
    provider with a ``force_flush`` (the SDK's) is flushed; the API's no-op
    providers have nothing to flush. Blocking: run it in a thread from async code.
    The node's telemetry child calls it when the node stops, after the ingest and
    the gateway have stopped, so their last spans leave before the process does.

    Args:
        timeout: Seconds to wait.

    Returns:
        True if everything was flushed in time (or there was nothing to flush).

    Raises:
        InvalidArgument: *timeout* is not a finite number >= 0.

    .. versionadded:: 0.2.0
    """
    timeout = number(timeout, "timeout", owner="force_flush", positive=False)
    providers = [trace.get_tracer_provider(), metrics.get_meter_provider()]
    flushable = [p for p in providers if callable(getattr(p, "force_flush", None))]
    if not flushable:
        return True
    millis = max(int(timeout * 1000), 0)

    def flush() -> bool:
        flushed = True
        for provider in flushable:
            flushed = bool(provider.force_flush(millis)) and flushed  # type: ignore[attr-defined]
        return flushed

    return _run_bounded(flush, timeout, "flush")


@final
@attrs.define(eq=False)
class Telemetry:
    """The handle `configure_from_env` returns: flush and shut down what it installed.

    Neither method raises or blocks past its timeout, even when the collector is
    unreachable: failures are logged as warnings.

    Attributes:
        enabled: Whether this handle installed a tracer or meter provider. When False,
            `shutdown` and `force_flush` do nothing.
        tracer_provider: The SDK tracer provider it installed, if any.
        meter_provider: The SDK meter provider it installed, if any.

    .. versionadded:: 0.1.0
    """

    enabled: bool
    tracer_provider: TracerProvider | None = None
    meter_provider: MeterProvider | None = None
    _closed: bool = attrs.field(default=False, init=False)
    _lock: threading.Lock = attrs.field(factory=threading.Lock, init=False, repr=False)

    def force_flush(self, timeout: float = 5.0) -> bool:
        """Export everything recorded so far, waiting at most *timeout* seconds.

        Args:
            timeout: Seconds to wait.

        Returns:
            True if both providers flushed in time (or there was nothing to flush), False
            if a flush failed, timed out, or the handle was already shut down.

        Raises:
            InvalidArgument: *timeout* is not a finite number >= 0.
        """
        timeout = number(timeout, "timeout", owner="telemetry flush", positive=False)
        if not self.enabled:
            return True
        if self._closed:
            return False
        tracer_provider, meter_provider = self.tracer_provider, self.meter_provider
        millis = max(int(timeout * 1000), 0)

        def flush() -> bool:
            flushed = True
            if tracer_provider is not None:
                flushed = tracer_provider.force_flush(millis) and flushed
            if meter_provider is not None:
                flushed = meter_provider.force_flush(millis) and flushed
            return flushed

        return _run_bounded(flush, timeout, "flush")

    def shutdown(self, timeout: float = 5.0) -> None:
        """Flush, then shut down both providers, within *timeout* seconds in all.

        Call it when the node stops, after its actors have drained. Spans recorded
        afterwards are dropped. Calling it again does nothing. Never raises.

        Args:
            timeout: Seconds to wait, however unreachable the collector is: a finite
                number >= 0.

        Raises:
            InvalidArgument: *timeout* is not a finite number >= 0 (the one thing it
                raises for: nothing was shut down).
        """
        timeout = number(timeout, "timeout", owner="telemetry shutdown", positive=False)
        with self._lock:
            if self._closed or not self.enabled:
                return
            self._closed = True
        atexit.unregister(self.shutdown)
        tracer_provider, meter_provider = self.tracer_provider, self.meter_provider
        deadline = time.monotonic() + timeout

        def remaining_millis() -> int:
            return max(int((deadline - time.monotonic()) * 1000), 0)

        steps: list[tuple[str, Callable[[], object]]] = []
        if tracer_provider is not None:
            steps.append(("span flush", lambda: tracer_provider.force_flush(remaining_millis())))
        if meter_provider is not None:
            steps.append(("metric flush", lambda: meter_provider.force_flush(remaining_millis())))
        if tracer_provider is not None:
            steps.append(("tracer provider shutdown", tracer_provider.shutdown))
        if meter_provider is not None:
            steps.append(
                (
                    "meter provider shutdown",
                    lambda: meter_provider.shutdown(timeout_millis=remaining_millis()),
                )
            )

        def close() -> bool:
            for name, step in steps:
                try:
                    step()
                except Exception:
                    logger.warning("telemetry %s failed", name, exc_info=True)
            return True

        _run_bounded(close, timeout, "shutdown")


# -- installing ----------------------------------------------------------------------------


def tracer_provider_installed() -> bool:
    """Return whether a global tracer provider has been installed (by anyone)."""
    return not isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider)


def meter_provider_installed() -> bool:
    """Return whether a global meter provider has been installed (by anyone)."""
    from opentelemetry import metrics

    # Until one is set the API hands out its private proxy provider; there is no public name.
    from opentelemetry.metrics._internal import _ProxyMeterProvider

    return not isinstance(metrics.get_meter_provider(), _ProxyMeterProvider)


def providers_set() -> bool:
    """Return whether a global tracer or meter provider has been set (by anyone), in ~30 ns.

    For hot paths that emit only when someone listens: the two functions above
    cost about 1.5 µs each, because until a provider is set the API looks for an
    ``OTEL_PYTHON_*_PROVIDER`` environment variable at every call. This reads the
    API's globals instead; a provider named by such a variable counts once the
    API has loaded it, at the first ``get_tracer_provider()`` (``get_tracer()``).
    """
    # No public name: the API keeps the providers in these globals once set.
    return trace._TRACER_PROVIDER is not None or _metrics_api._METER_PROVIDER is not None


_install_lock = threading.Lock()
_installed: Telemetry | None = None


def configure_from_env(*, default_service_name: str = "otpy") -> Telemetry:
    """Install global SDK tracer and meter providers configured from ``OTEL_*`` variables.

    The standard variables are honoured:

    - ``OTEL_SDK_DISABLED=true`` installs nothing and returns a disabled handle.
    - ``OTEL_SERVICE_NAME`` wins over ``service.name`` in ``OTEL_RESOURCE_ATTRIBUTES``;
      with neither, the service is *default_service_name*.
    - ``OTEL_TRACES_EXPORTER`` / ``OTEL_METRICS_EXPORTER``: ``otlp`` (default),
      ``console`` or ``none``, or a comma-separated list.
    - ``OTEL_EXPORTER_OTLP_PROTOCOL`` (or its ``_TRACES_`` / ``_METRICS_`` variant):
      ``http/protobuf`` (default, as the specification says; the Python SDK's own
      auto-configuration defaults to gRPC instead) or ``grpc``, which needs
      ``pip install 'otpy[grpc]'``.
    - ``OTEL_EXPORTER_OTLP_ENDPOINT`` gets ``/v1/traces`` appended for OTLP/HTTP, while
      ``OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`` is used as is; headers, timeout,
      compression, ``OTEL_BSP_*`` and the sampler are read by the SDK itself.

    Spans go through a ``BatchSpanProcessor`` and metrics through a
    ``PeriodicExportingMetricReader``, so recording never waits for the collector, and
    an unreachable collector is logged by the SDK, never raised.

    The API lets a global provider be set only once, so this is idempotent: later calls
    return the first handle. A provider someone else installed is left in place (with a
    warning) and this handle does not manage it.

    Args:
        default_service_name: The service name when the environment gives none.

    Returns:
        The handle to flush and shut down the providers with, as the node stops.

    Raises:
        TelemetryConfigError: An exporter or protocol variable has an unsupported value,
            or selects gRPC without the ``grpc`` extra installed.
        InvalidArgument: *default_service_name* is not a non-empty string UTF-8 can
            encode (it is exported as a resource attribute).

    .. versionadded:: 0.1.0
    """
    global _installed
    check_name(default_service_name, "default_service_name", owner="telemetry")
    env = os.environ
    with _install_lock:
        if _installed is not None:
            return _installed
        if sdk_disabled(env):
            return Telemetry(enabled=False)
        _check(env)
        resource = build_resource(default_service_name=default_service_name)

        tracer_provider: TracerProvider | None = None
        meter_provider: MeterProvider | None = None
        try:
            if tracer_provider_installed():
                logger.warning(
                    "a global TracerProvider is already installed; otpy leaves it in place"
                )
            else:
                tracer_provider = build_tracer_provider(env, resource=resource)
            if meter_provider_installed():
                logger.warning(
                    "a global MeterProvider is already installed; otpy leaves it in place"
                )
            else:
                meter_provider = build_meter_provider(env, resource=resource)
        except BaseException:
            if tracer_provider is not None:
                tracer_provider.shutdown()
            raise

        if tracer_provider is not None:
            trace.set_tracer_provider(tracer_provider)
            if trace.get_tracer_provider() is not tracer_provider:  # pragma: no cover - a race
                tracer_provider.shutdown()
                tracer_provider = None
        if meter_provider is not None:
            from opentelemetry import metrics

            metrics.set_meter_provider(meter_provider)
            if metrics.get_meter_provider() is not meter_provider:  # pragma: no cover - a race
                meter_provider.shutdown()
                meter_provider = None

        if tracer_provider_installed():
            install_propagation()  # traces export: carry their context across mailboxes
        handle = Telemetry(
            enabled=tracer_provider is not None or meter_provider is not None,
            tracer_provider=tracer_provider,
            meter_provider=meter_provider,
        )
        if handle.enabled:
            atexit.register(handle.shutdown)
            _installed = handle
        return handle
