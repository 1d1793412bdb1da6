"""otpy.telemetry: names, supervision events, env-only configuration (TEL-1, TEL-3, TEL-5).

The OpenTelemetry API lets a process set its global providers once, and the in-process
tests share the in-memory ones `capture_spans` / `capture_metrics` install. So setup is
tested through the ``build_*`` functions, which build providers without installing
them, and the few tests that must install real providers run in a subprocess.
"""

from __future__ import annotations

import importlib.metadata
import json
import logging
import os
import subprocess
import sys
import textwrap
import threading
import time
from typing import TYPE_CHECKING, Any, cast

import pytest
from opentelemetry import metrics, trace
from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import (
    OTLPMetricExporter as GRPCMetricExporter,
)
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import (
    OTLPSpanExporter as GRPCSpanExporter,
)
from opentelemetry.exporter.otlp.proto.http.metric_exporter import (
    OTLPMetricExporter as HTTPMetricExporter,
)
from opentelemetry.exporter.otlp.proto.http.trace_exporter import (
    OTLPSpanExporter as HTTPSpanExporter,
)
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import ConsoleMetricExporter, MetricExporter
from opentelemetry.sdk.resources import SERVICE_NAME
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)
from opentelemetry.semconv.attributes.error_attributes import ERROR_TYPE
from opentelemetry.trace import SpanKind, StatusCode

import otpy.telemetry
from otpy import InvalidArgument
from otpy.telemetry import (
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
    Telemetry,
    TelemetryConfigError,
    configure_from_env,
    describe_reason,
    get_tracer,
    record_escalation,
    record_restart,
    record_start_error,
)
from otpy.telemetry._setup import (
    build_meter_provider,
    build_metric_exporters,
    build_resource,
    build_span_exporters,
    build_span_processors,
    build_tracer_provider,
)
from otpy.testing._telemetry import capture_metrics, capture_spans

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from opentelemetry.sdk.metrics.export import InMemoryMetricReader
    from opentelemetry.sdk.trace import ReadableSpan


@pytest.fixture(autouse=True)
def clean_otel_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Start every test from an environment with no OTEL_* variables."""
    for name in list(os.environ):
        if name.startswith("OTEL_"):
            monkeypatch.delenv(name)


def _env_without_otel(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("OTEL_")}
    env.update(extra)
    return env


def _run_python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        env=_env_without_otel(**env),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def _only_span(exporter: Any) -> ReadableSpan:
    spans: Sequence[ReadableSpan] = exporter.get_finished_spans()
    assert len(spans) == 1, [span.name for span in spans]
    return spans[0]


def _shutdown_exporters(exporters: Sequence[SpanExporter | MetricExporter]) -> None:
    for exporter in exporters:
        exporter.shutdown()


# -- names -----------------------------------------------------------------------------


def test_error_type_attribute_is_the_semconv_one() -> None:
    """TEL-3: ATTR_ERROR_TYPE is semantic conventions' error.type."""
    assert ATTR_ERROR_TYPE == ERROR_TYPE == "error.type"


def test_span_and_metric_names_are_pinned() -> None:
    """TEL-1: restart/escalation span and metric names are the documented otpy.* names."""
    assert (SPAN_RESTART, SPAN_ESCALATION, SPAN_CHILD_START_ERROR) == (
        "otpy.supervisor.restart",
        "otpy.supervisor.escalation",
        "otpy.supervisor.start_error",
    )
    assert (METRIC_RESTARTS, METRIC_ESCALATIONS) == (
        "otpy.supervisor.restarts",
        "otpy.supervisor.escalations",
    )


def test_package_exports_exactly_all() -> None:
    """TEL-1: every name in otpy.telemetry.__all__ exists and is documented or a constant."""
    for name in otpy.telemetry.__all__:
        value = getattr(otpy.telemetry, name)
        assert isinstance(value, str) or value.__doc__, name
    assert len(set(otpy.telemetry.__all__)) == len(otpy.telemetry.__all__)


# -- describe_reason -------------------------------------------------------------------


def test_describe_reason_of_an_exception_keeps_class_and_message() -> None:
    """TEL-3: an exception reason is described as 'Class: message'."""
    assert describe_reason(ValueError("bad row 7")) == ("ValueError", "ValueError: bad row 7")


def test_describe_reason_cuts_long_messages() -> None:
    """TEL-3: an exception message is cut to 200 characters."""
    cls, description = describe_reason(RuntimeError("x" * 1000))
    assert cls == "RuntimeError"
    assert description == "RuntimeError: " + "x" * 200


def test_describe_reason_of_an_empty_message_is_the_class() -> None:
    """TEL-3: an exception with no message is described by its class name alone."""
    assert describe_reason(KeyError()) == ("KeyError", "KeyError")


def test_describe_reason_of_an_atom_is_the_atom() -> None:
    """TEL-3: atom reasons such as 'normal' are their own class and description."""
    assert describe_reason("normal") == ("normal", "normal")
    assert describe_reason("shutdown") == ("shutdown", "shutdown")


def test_describe_reason_redacts_payloads() -> None:
    """TEL-3: a non-exception reason is described by its type name only, never its content."""
    secret = {"password": "hunter2"}
    assert describe_reason(secret) == ("dict", "dict")
    assert describe_reason(("shutdown", secret)) == ("tuple", "tuple")
    assert describe_reason(None) == ("NoneType", "NoneType")


def test_describe_reason_survives_unprintable_exceptions() -> None:
    """TEL-3: an exception whose __str__ raises still gets a description."""

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert describe_reason(Unprintable()) == ("Unprintable", "Unprintable: <unprintable message>")


def test_describe_reason_of_an_exception_class() -> None:
    """TEL-3: an exception class given as a reason is described by its name."""
    assert describe_reason(TimeoutError) == ("TimeoutError", "TimeoutError")


# -- events as spans -------------------------------------------------------------------


def test_record_restart_emits_an_internal_span() -> None:
    """TEL-1: a restart is a short INTERNAL otpy.supervisor.restart span with otpy.* attributes."""
    with capture_spans() as exporter:
        record_restart(
            supervisor="root",
            child_id="db",
            reason=ConnectionError("refused"),
            strategy="one_for_one",
            restarts_in_window=2,
            intensity=3,
            period=5.0,
            delay=0.25,
        )
    span = _only_span(exporter)
    assert span.name == SPAN_RESTART
    assert span.kind is SpanKind.INTERNAL
    assert dict(span.attributes or {}) == {
        ATTR_SUPERVISOR: "root",
        ATTR_CHILD_ID: "db",
        ATTR_REASON_CLASS: "ConnectionError",
        ATTR_REASON: "ConnectionError: refused",
        ATTR_STRATEGY: "one_for_one",
        ATTR_RESTARTS_IN_WINDOW: 2,
        ATTR_INTENSITY: 3,
        ATTR_PERIOD: 5.0,
        ATTR_RESTART_DELAY: 0.25,
    }
    assert span.status.status_code is StatusCode.UNSET
    assert span.end_time is not None


def test_record_restart_spans_carry_the_otpy_scope() -> None:
    """TEL-1: spans come from the 'otpy' instrumentation scope, versioned with otpy."""
    with capture_spans() as exporter:
        record_restart(
            supervisor="root",
            child_id="db",
            reason="normal",
            strategy="one_for_all",
            restarts_in_window=1,
            intensity=3,
            period=5.0,
        )
    scope = _only_span(exporter).instrumentation_scope
    assert scope is not None
    assert (scope.name, scope.version) == ("otpy", importlib.metadata.version("otpy"))


def test_record_restart_does_not_export_payloads() -> None:
    """TEL-3: a restart after a non-exception exit records the reason's type, not its content."""
    with capture_spans() as exporter:
        record_restart(
            supervisor="root",
            child_id="ingest",
            reason={"card": "4111 1111 1111 1111"},
            strategy="one_for_one",
            restarts_in_window=1,
            intensity=3,
            period=5.0,
        )
    attributes = dict(_only_span(exporter).attributes or {})
    assert attributes[ATTR_REASON_CLASS] == attributes[ATTR_REASON] == "dict"
    assert "4111" not in repr(attributes)


def test_record_escalation_emits_an_error_span() -> None:
    """TEL-3: an escalation span has status Error, error.type and a description of the limit."""
    with capture_spans() as exporter:
        record_escalation(
            supervisor="root",
            offender="db",
            reason=OSError("disk full"),
            restarts=4,
            intensity=3,
            period=5.0,
        )
    span = _only_span(exporter)
    assert span.name == SPAN_ESCALATION
    assert span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == (
        "supervisor 'root' shut down: 4 restarts in 5s exceeded its intensity of 3"
    )
    assert dict(span.attributes or {}) == {
        ATTR_SUPERVISOR: "root",
        ATTR_CHILD_ID: "db",
        ATTR_REASON_CLASS: "OSError",
        ATTR_REASON: "OSError: disk full",
        ATTR_RESTARTS_IN_WINDOW: 4,
        ATTR_INTENSITY: 3,
        ATTR_PERIOD: 5.0,
        ATTR_ERROR_TYPE: "RestartIntensityExceeded",
    }


def test_record_start_error_emits_an_error_span() -> None:
    """TEL-3: a start error span has status Error, error.type = reason class, message as description."""
    with capture_spans() as exporter:
        record_start_error(supervisor="root", child_id="cache", reason=TimeoutError("init took 5s"))
    span = _only_span(exporter)
    assert span.name == SPAN_CHILD_START_ERROR
    assert span.kind is SpanKind.INTERNAL
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "TimeoutError: init took 5s"
    assert dict(span.attributes or {}) == {
        ATTR_SUPERVISOR: "root",
        ATTR_CHILD_ID: "cache",
        ATTR_REASON_CLASS: "TimeoutError",
        ATTR_REASON: "TimeoutError: init took 5s",
        ATTR_ERROR_TYPE: "TimeoutError",
    }


class _Unprintable:
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")

    def __repr__(self) -> str:
        raise RuntimeError("__repr__ exploded")


class _UnprintableError(Exception):
    def __str__(self) -> str:
        raise RuntimeError("__str__ exploded")


_WEIRD_REASONS = [
    None,
    _Unprintable(),
    _UnprintableError(),
    "x" * 10_000,
    ValueError,
    BaseExceptionGroup("group", [ValueError("a"), KeyError("b")]),
    object(),
    b"\xff\xfe",
]


@pytest.mark.parametrize("reason", _WEIRD_REASONS, ids=lambda r: type(r).__name__)
def test_emitters_never_raise_on_weird_reasons(reason: object) -> None:
    """TEL-1: every emitter records a span for any reason and never raises."""
    with capture_spans() as exporter:
        record_restart(
            supervisor="root",
            child_id="w",
            reason=reason,
            strategy="one_for_one",
            restarts_in_window=1,
            intensity=3,
            period=5.0,
        )
        record_escalation(
            supervisor="root", offender="w", reason=reason, restarts=4, intensity=3, period=5.0
        )
        record_start_error(supervisor="root", child_id="w", reason=reason)
    names = [span.name for span in exporter.get_finished_spans()]
    assert names == [SPAN_RESTART, SPAN_ESCALATION, SPAN_CHILD_START_ERROR]
    for span in exporter.get_finished_spans():
        assert len(str((span.attributes or {})[ATTR_REASON])) <= 220


def test_emitters_never_raise_on_bad_arguments(caplog: pytest.LogCaptureFixture) -> None:
    """TEL-1: arguments that break the emitters are logged at debug level, not raised."""
    bad = cast("Any", _Unprintable())
    caplog.set_level(logging.DEBUG, logger="otpy.telemetry")
    with capture_spans() as exporter:
        record_restart(
            supervisor=bad,
            child_id=bad,
            reason=bad,
            strategy=bad,
            restarts_in_window=bad,
            intensity=bad,
            period=bad,
            delay=bad,
        )
        record_escalation(
            supervisor="root", offender="w", reason=None, restarts=1, intensity=1, period=bad
        )
        record_start_error(supervisor=bad, child_id=bad, reason=bad)
    ours = [r for r in caplog.records if r.name == "otpy.telemetry"]
    assert [r.getMessage() for r in ours] == [
        "could not record a supervisor restart",
        "could not record a supervisor escalation",
        "could not record a child start error",
    ]
    assert all(r.levelno == logging.DEBUG and "Traceback" in (r.exc_text or "") for r in ours)
    # spans started before the failure are still ended, not leaked
    assert [span.name for span in exporter.get_finished_spans()] == [
        SPAN_ESCALATION,
        SPAN_CHILD_START_ERROR,
    ]


def test_emitters_are_no_ops_without_an_sdk() -> None:
    """TEL-5: with no provider installed the emitters record nothing, raise nothing, load no SDK."""
    result = _run_python(
        """
        import sys
        from otpy.telemetry import record_escalation, record_restart, record_start_error
        record_restart(supervisor="s", child_id="c", reason=ValueError("x"),
                       strategy="one_for_one", restarts_in_window=1, intensity=3, period=5.0)
        record_escalation(supervisor="s", offender="c", reason="normal", restarts=4,
                          intensity=3, period=5.0)
        record_start_error(supervisor="s", child_id="c", reason=KeyError("k"))
        print(sorted(m for m in sys.modules if m.startswith("opentelemetry.sdk")))
        """
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


# -- capture helpers -------------------------------------------------------------------


def test_capture_spans_holds_only_spans_finished_inside_the_block() -> None:
    """TEL-1: capture_spans sees spans finished inside it, not before or after."""
    with capture_spans():  # install the provider, so the span started below records
        pass
    tracer = get_tracer()
    tracer.start_span("before").end()
    outer_span = tracer.start_span("started-before-finished-inside")
    with capture_spans() as outer:
        outer_span.end()
        with capture_spans() as inner:
            tracer.start_span("nested").end()
    tracer.start_span("after").end()
    assert [s.name for s in outer.get_finished_spans()] == [
        "started-before-finished-inside",
        "nested",
    ]
    assert [s.name for s in inner.get_finished_spans()] == ["nested"]


def _sum_points(reader: InMemoryMetricReader, name: str) -> dict[tuple[tuple[str, Any], ...], Any]:
    data = reader.get_metrics_data()
    points: dict[tuple[tuple[str, Any], ...], Any] = {}
    if data is None:
        return points
    for resource_metrics in data.resource_metrics:
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.name == name:
                    for point in metric.data.data_points:
                        key = tuple(sorted((point.attributes or {}).items()))
                        points[key] = cast("Any", point).value
    return points


def test_restarts_and_escalations_are_counted() -> None:
    """TEL-1: restarts count per supervisor and child; escalations per supervisor."""
    record_restart(  # before the block: not counted
        supervisor="root",
        child_id="db",
        reason="normal",
        strategy="one_for_one",
        restarts_in_window=1,
        intensity=3,
        period=5.0,
    )
    with capture_metrics() as reader:
        for child in ("db", "db", "cache"):
            record_restart(
                supervisor="root",
                child_id=child,
                reason="normal",
                strategy="one_for_one",
                restarts_in_window=1,
                intensity=3,
                period=5.0,
            )
        record_escalation(
            supervisor="root", offender="db", reason="normal", restarts=4, intensity=3, period=5.0
        )
        restarts = _sum_points(reader, METRIC_RESTARTS)
    assert restarts == {
        ((ATTR_CHILD_ID, "cache"), (ATTR_SUPERVISOR, "root")): 1,
        ((ATTR_CHILD_ID, "db"), (ATTR_SUPERVISOR, "root")): 2,
    }
    with capture_metrics() as reader:
        record_escalation(
            supervisor="root", offender="db", reason="normal", restarts=4, intensity=3, period=5.0
        )
        assert _sum_points(reader, METRIC_ESCALATIONS) == {((ATTR_SUPERVISOR, "root"),): 1}


def test_capture_metrics_blocks_cannot_nest() -> None:
    """TEL-1: nesting capture_metrics is refused with a clear error."""
    with (
        capture_metrics(),
        pytest.raises(RuntimeError, match=r"^capture_metrics\(\) blocks cannot nest"),
        capture_metrics(),
    ):
        pass  # pragma: no cover - not reached


def test_capture_helpers_refuse_a_foreign_provider() -> None:
    """TEL-5: capture_spans/capture_metrics raise a clear RuntimeError if a provider is installed."""
    result = _run_python(
        """
        from opentelemetry import metrics, trace
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.trace import TracerProvider
        from otpy.testing._telemetry import capture_metrics, capture_spans
        trace.set_tracer_provider(TracerProvider())
        metrics.set_meter_provider(MeterProvider())
        for capture in (capture_spans, capture_metrics):
            try:
                with capture():
                    pass
            except RuntimeError as exc:
                print(exc)
        """
    )
    assert result.returncode == 0, result.stderr
    spans, metrics_ = result.stdout.splitlines()
    assert spans.startswith(
        "capture_spans() cannot install its in-memory TracerProvider: another global "
        "TracerProvider is installed"
    )
    assert metrics_.startswith(
        "capture_metrics() cannot install its in-memory MeterProvider: another global "
        "MeterProvider is installed"
    )


def test_capture_helpers_refuse_a_disabled_sdk() -> None:
    """TEL-5: capture_spans refuses to install a provider the SDK would disable for good."""
    result = _run_python(
        """
        from otpy.testing._telemetry import capture_spans
        try:
            with capture_spans():
                pass
        except RuntimeError as exc:
            print(exc)
        """,
        OTEL_SDK_DISABLED="true",
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(
        "capture_spans() cannot install its provider while OTEL_SDK_DISABLED=true"
    )


# -- configuration from the environment ------------------------------------------------


def test_sdk_disabled_installs_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: OTEL_SDK_DISABLED=true installs no provider and returns a no-op handle."""
    monkeypatch.setenv("OTEL_SDK_DISABLED", "TRUE")
    before = trace.get_tracer_provider(), metrics.get_meter_provider()
    telemetry = configure_from_env()
    assert telemetry.enabled is False
    assert (telemetry.tracer_provider, telemetry.meter_provider) == (None, None)
    assert (trace.get_tracer_provider(), metrics.get_meter_provider()) == before
    assert telemetry.force_flush() is True
    telemetry.shutdown()
    assert build_tracer_provider(os.environ) is None
    assert build_meter_provider(os.environ) is None


def test_service_name_env_wins_over_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: OTEL_SERVICE_NAME beats service.name in OTEL_RESOURCE_ATTRIBUTES; others are kept."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ignored,deployment.env=prod")
    attributes = build_resource(default_service_name="fallback").attributes
    assert attributes[SERVICE_NAME] == "billing"
    assert attributes["deployment.env"] == "prod"


def test_service_name_from_resource_attributes(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: service.name in OTEL_RESOURCE_ATTRIBUTES is used when OTEL_SERVICE_NAME is unset."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=ingest")
    assert build_resource(default_service_name="fallback").attributes[SERVICE_NAME] == "ingest"


def test_service_name_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: with no service name in the environment the default service name is used."""
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.env=dev")
    assert build_resource().attributes[SERVICE_NAME] == "otpy"
    assert build_resource(default_service_name="node-7").attributes[SERVICE_NAME] == "node-7"


def test_protocol_defaults_to_otlp_http() -> None:
    """TEL-5: with no protocol set, traces and metrics use OTLP/HTTP (the spec default, not gRPC)."""
    span_exporters = build_span_exporters(os.environ)
    metric_exporters = build_metric_exporters(os.environ)
    try:
        assert [type(e) for e in span_exporters] == [HTTPSpanExporter]
        assert [type(e) for e in metric_exporters] == [HTTPMetricExporter]
    finally:
        _shutdown_exporters([*span_exporters, *metric_exporters])


def test_protocol_grpc_selects_grpc_exporters(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: OTEL_EXPORTER_OTLP_PROTOCOL=grpc selects the gRPC exporters."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc")
    span_exporters = build_span_exporters(os.environ)
    metric_exporters = build_metric_exporters(os.environ)
    try:
        assert [type(e) for e in span_exporters] == [GRPCSpanExporter]
        assert [type(e) for e in metric_exporters] == [GRPCMetricExporter]
    finally:
        _shutdown_exporters([*span_exporters, *metric_exporters])


def test_per_signal_protocol_wins() -> None:
    """TEL-5: OTEL_EXPORTER_OTLP_TRACES_PROTOCOL overrides OTEL_EXPORTER_OTLP_PROTOCOL for traces."""
    env = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc",
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/protobuf",
    }
    span_exporters = build_span_exporters(env)
    metric_exporters = build_metric_exporters(env)
    try:
        assert [type(e) for e in span_exporters] == [HTTPSpanExporter]
        assert [type(e) for e in metric_exporters] == [GRPCMetricExporter]
    finally:
        _shutdown_exporters([*span_exporters, *metric_exporters])


def test_bad_protocol_is_a_typed_error() -> None:
    """TEL-5: an unsupported protocol raises TelemetryConfigError naming the variable and choices."""
    with pytest.raises(TelemetryConfigError) as info:
        build_span_exporters({"OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "http/json"})
    assert str(info.value) == (
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='http/json' is not supported; "
        "use 'http/protobuf' (the default) or 'grpc'"
    )
    assert isinstance(info.value, ValueError)
    assert (info.value.variable, info.value.value) == (
        "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL",
        "http/json",
    )
    with pytest.raises(TelemetryConfigError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL='udp' "):
        build_metric_exporters({"OTEL_EXPORTER_OTLP_PROTOCOL": "udp"})


def test_configure_from_env_rejects_a_bad_protocol(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: configure_from_env raises TelemetryConfigError before installing anything."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "http/json")
    before = trace.get_tracer_provider(), metrics.get_meter_provider()
    with pytest.raises(TelemetryConfigError, match=r"^OTEL_EXPORTER_OTLP_PROTOCOL='http/json' "):
        configure_from_env()
    assert (trace.get_tracer_provider(), metrics.get_meter_provider()) == before


GRPC_MODULES = (
    "opentelemetry.exporter.otlp.proto.grpc",
    "opentelemetry.exporter.otlp.proto.grpc.trace_exporter",
    "opentelemetry.exporter.otlp.proto.grpc.metric_exporter",
)


@pytest.fixture
def without_grpc(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the gRPC exporter unimportable, as it is without ``otpy[grpc]``."""
    for name in GRPC_MODULES:
        monkeypatch.setitem(sys.modules, name, None)


@pytest.mark.usefixtures("without_grpc")
def test_grpc_without_the_extra_is_a_config_error_saying_what_to_install() -> None:
    """TEL-5: gRPC selected without the grpc extra is a TelemetryConfigError naming the extra."""
    with pytest.raises(TelemetryConfigError) as info:
        build_span_exporters({"OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"})
    assert str(info.value) == (
        "OTEL_EXPORTER_OTLP_PROTOCOL='grpc' needs the gRPC exporter "
        "(pip install 'otpy[grpc]'), which is not installed; "
        "install it or use 'http/protobuf' (the default)"
    )
    assert (info.value.variable, info.value.value, info.value.allowed) == (
        "OTEL_EXPORTER_OTLP_PROTOCOL",
        "grpc",
        ("http/protobuf",),
    )
    assert info.value.needs == "the gRPC exporter (pip install 'otpy[grpc]')"
    assert isinstance(info.value.__cause__, ImportError)
    with pytest.raises(
        TelemetryConfigError, match=r"^OTEL_EXPORTER_OTLP_METRICS_PROTOCOL='grpc' needs "
    ):
        build_metric_exporters({"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc"})


@pytest.mark.usefixtures("without_grpc")
def test_http_needs_no_grpc() -> None:
    """TEL-5: without the grpc extra, the default OTLP/HTTP exporters are built as before."""
    env = {"OTEL_EXPORTER_OTLP_METRICS_PROTOCOL": "grpc", "OTEL_METRICS_EXPORTER": "none"}
    span_exporters = build_span_exporters(env)
    try:
        assert [type(e) for e in span_exporters] == [HTTPSpanExporter]
        assert build_metric_exporters(env) == []
    finally:
        _shutdown_exporters(span_exporters)


@pytest.mark.usefixtures("without_grpc")
def test_configure_from_env_rejects_grpc_without_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: configure_from_env names the missing extra before installing anything."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "grpc")
    before = trace.get_tracer_provider(), metrics.get_meter_provider()
    threads = threading.active_count()
    with pytest.raises(
        TelemetryConfigError,
        match=r"^OTEL_EXPORTER_OTLP_TRACES_PROTOCOL='grpc' needs the gRPC exporter "
        r"\(pip install 'otpy\[grpc\]'\)",
    ):
        configure_from_env()
    assert (trace.get_tracer_provider(), metrics.get_meter_provider()) == before
    assert threading.active_count() == threads


def test_exporter_selection() -> None:
    """TEL-5: OTEL_TRACES_EXPORTER / OTEL_METRICS_EXPORTER select console, none or a list."""
    console = build_span_exporters({"OTEL_TRACES_EXPORTER": "console"})
    assert [type(e) for e in console] == [ConsoleSpanExporter]
    both = build_span_exporters({"OTEL_TRACES_EXPORTER": "otlp, console"})
    try:
        assert [type(e) for e in both] == [HTTPSpanExporter, ConsoleSpanExporter]
    finally:
        _shutdown_exporters(both)
    assert [type(e) for e in build_metric_exporters({"OTEL_METRICS_EXPORTER": "console"})] == [
        ConsoleMetricExporter
    ]
    twice = build_span_exporters({"OTEL_TRACES_EXPORTER": "console,CONSOLE,none"})
    assert [type(e) for e in twice] == [ConsoleSpanExporter]
    assert build_span_exporters({"OTEL_TRACES_EXPORTER": "none"}) == []
    assert build_tracer_provider({"OTEL_TRACES_EXPORTER": "none"}) is None
    assert build_meter_provider({"OTEL_METRICS_EXPORTER": "none"}) is None


def test_bad_exporter_is_a_typed_error() -> None:
    """TEL-5: an unsupported exporter raises TelemetryConfigError naming the variable and choices."""
    with pytest.raises(TelemetryConfigError) as info:
        build_span_exporters({"OTEL_TRACES_EXPORTER": "otlp,zipkin"})
    assert str(info.value) == (
        "OTEL_TRACES_EXPORTER='zipkin' is not supported; use 'otlp' (the default), 'console' or 'none'"
    )


def _http_span_endpoint() -> str:
    [exporter] = build_span_exporters(os.environ)
    try:
        assert isinstance(exporter, HTTPSpanExporter)
        return exporter._endpoint
    finally:
        exporter.shutdown()


def _http_metric_endpoint() -> str:
    [exporter] = build_metric_exporters(os.environ)
    try:
        assert isinstance(exporter, HTTPMetricExporter)
        return exporter._endpoint
    finally:
        exporter.shutdown()


def test_http_endpoint_defaults_to_localhost_4318() -> None:
    """TEL-5: with no endpoint set, OTLP/HTTP goes to localhost:4318 with the signal path."""
    assert _http_span_endpoint() == "http://localhost:4318/v1/traces"
    assert _http_metric_endpoint() == "http://localhost:4318/v1/metrics"


@pytest.mark.parametrize("base", ["http://collector:4318", "http://collector:4318/"])
def test_generic_endpoint_gets_the_signal_path(monkeypatch: pytest.MonkeyPatch, base: str) -> None:
    """TEL-5: OTEL_EXPORTER_OTLP_ENDPOINT gets /v1/traces (or /v1/metrics) appended."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", base)
    assert _http_span_endpoint() == "http://collector:4318/v1/traces"
    assert _http_metric_endpoint() == "http://collector:4318/v1/metrics"


def test_traces_endpoint_is_used_as_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: OTEL_EXPORTER_OTLP_TRACES_ENDPOINT is used as is and beats the generic endpoint."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "https://traces.example:443/ingest")
    assert _http_span_endpoint() == "https://traces.example:443/ingest"
    assert _http_metric_endpoint() == "http://collector:4318/v1/metrics"


def test_exporter_reads_headers_and_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: OTEL_EXPORTER_OTLP_HEADERS and _TIMEOUT reach the exporter unchanged."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=s3cret,x-tenant=acme")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "2.5")
    [exporter] = build_span_exporters(os.environ)
    try:
        assert isinstance(exporter, HTTPSpanExporter)
        client = exporter._client
        assert client._headers["x-api-key"] == "s3cret"
        assert client._headers["x-tenant"] == "acme"
        assert client._timeout == 2.5
    finally:
        _shutdown_exporters([exporter])


def _batch_settings(processor: SpanProcessor) -> tuple[float, int, int, float]:
    assert isinstance(processor, BatchSpanProcessor)
    batch = processor._batch_processor
    return (
        batch._schedule_delay_millis,
        batch._max_queue_size,
        batch._max_export_batch_size,
        batch._export_timeout_millis,
    )


def test_batch_span_processor_defaults() -> None:
    """TEL-5: spans go through a BatchSpanProcessor with the spec defaults 5000/2048/512/30000."""
    [processor] = build_span_processors({"OTEL_TRACES_EXPORTER": "console"})
    try:
        assert _batch_settings(processor) == (5000, 2048, 512, 30000)
    finally:
        processor.shutdown()


def test_batch_span_processor_reads_otel_bsp(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: OTEL_BSP_* reach the BatchSpanProcessor unchanged."""
    monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "100")
    monkeypatch.setenv("OTEL_BSP_MAX_QUEUE_SIZE", "64")
    monkeypatch.setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "8")
    monkeypatch.setenv("OTEL_BSP_EXPORT_TIMEOUT", "1000")
    [processor] = build_span_processors({"OTEL_TRACES_EXPORTER": "console"})
    try:
        assert _batch_settings(processor) == (100, 64, 8, 1000)
    finally:
        processor.shutdown()


def test_built_providers_carry_the_resource(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: built providers carry the env-derived resource and are not installed globally."""
    monkeypatch.setenv("OTEL_SERVICE_NAME", "billing")
    env = {"OTEL_TRACES_EXPORTER": "console", "OTEL_METRICS_EXPORTER": "console"}
    tracer_provider = build_tracer_provider(env)
    meter_provider = build_meter_provider(env)
    assert isinstance(tracer_provider, TracerProvider)
    assert isinstance(meter_provider, MeterProvider)
    telemetry = Telemetry(
        enabled=True, tracer_provider=tracer_provider, meter_provider=meter_provider
    )
    try:
        assert tracer_provider.resource.attributes[SERVICE_NAME] == "billing"
        assert meter_provider._sdk_config.resource.attributes[SERVICE_NAME] == "billing"
        assert trace.get_tracer_provider() is not tracer_provider
        assert metrics.get_meter_provider() is not meter_provider
        assert telemetry.force_flush(timeout=2.0) is True
    finally:
        telemetry.shutdown(timeout=2.0)


def test_configure_from_env_leaves_a_foreign_provider(caplog: pytest.LogCaptureFixture) -> None:
    """TEL-5: a provider someone else installed stays; the handle manages nothing."""
    with capture_spans(), capture_metrics():  # make sure both globals are installed
        pass
    before = trace.get_tracer_provider(), metrics.get_meter_provider()
    telemetry = configure_from_env()
    assert telemetry.enabled is False
    assert (trace.get_tracer_provider(), metrics.get_meter_provider()) == before
    assert "a global TracerProvider is already installed" in caplog.text
    assert "a global MeterProvider is already installed" in caplog.text


# -- shutdown never blocks -------------------------------------------------------------


def test_shutdown_with_an_unreachable_collector_returns(monkeypatch: pytest.MonkeyPatch) -> None:
    """TEL-5: with the collector down, shutdown flushes, gives up within its timeout, never raises."""
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:9/")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "0.5")
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "60000")
    tracer_provider = build_tracer_provider(os.environ)
    meter_provider = build_meter_provider(os.environ)
    assert tracer_provider is not None
    assert meter_provider is not None
    tracer = tracer_provider.get_tracer("test")
    for i in range(10):
        tracer.start_span(f"work {i}").end()
    meter_provider.get_meter("test").create_counter("work").add(10)
    telemetry = Telemetry(
        enabled=True, tracer_provider=tracer_provider, meter_provider=meter_provider
    )

    start = time.monotonic()
    telemetry.shutdown(timeout=3.0)
    assert time.monotonic() - start < 3.5
    telemetry.shutdown(timeout=3.0)  # a second call does nothing
    assert telemetry.force_flush(timeout=0.1) is False


class _StuckExporter(SpanExporter):
    """An exporter whose export blocks until released, like a collector that never answers."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        self.release.wait(10)
        return SpanExportResult.FAILURE


@pytest.fixture
def stuck_exporter() -> Iterator[_StuckExporter]:
    """An exporter that blocks until the test ends."""
    exporter = _StuckExporter()
    yield exporter
    exporter.release.set()


def test_shutdown_is_bounded_by_its_timeout(
    stuck_exporter: _StuckExporter, caplog: pytest.LogCaptureFixture
) -> None:
    """TEL-5: an export that hangs cannot hold shutdown or force_flush past their timeout."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(BatchSpanProcessor(stuck_exporter))
    provider.get_tracer("test").start_span("stuck").end()
    telemetry = Telemetry(enabled=True, tracer_provider=provider)

    start = time.monotonic()
    assert telemetry.force_flush(timeout=0.2) is False
    telemetry.shutdown(timeout=0.2)
    assert time.monotonic() - start < 1.5
    assert "telemetry flush did not finish within 0.2s" in caplog.text
    assert "telemetry shutdown did not finish within 0.2s" in caplog.text


class _FailingProcessor(SpanProcessor):
    """A span processor whose flush and shutdown raise."""

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        raise RuntimeError("flush failed")

    def shutdown(self) -> None:
        raise RuntimeError("shutdown failed")


def test_shutdown_logs_failures_instead_of_raising(caplog: pytest.LogCaptureFixture) -> None:
    """TEL-5: a provider that raises on flush or shutdown is logged as a warning, not raised."""
    provider = TracerProvider(shutdown_on_exit=False)
    provider.add_span_processor(_FailingProcessor())
    telemetry = Telemetry(enabled=True, tracer_provider=provider)
    assert telemetry.force_flush(timeout=1.0) is False
    telemetry.shutdown(timeout=1.0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == [
        "telemetry flush failed",
        "telemetry span flush failed",
        "telemetry tracer provider shutdown failed",
    ]


# -- the real thing, in a fresh process ------------------------------------------------


def test_configure_from_env_installs_and_exports() -> None:
    """TEL-5: configure_from_env installs once; a tracer taken before it records; shutdown flushes."""
    result = _run_python(
        """
        from otpy.telemetry import configure_from_env, get_tracer, record_restart

        early = get_tracer()  # before any provider: the API's proxy
        telemetry = configure_from_env(default_service_name="unused")
        assert telemetry.enabled
        assert configure_from_env() is telemetry
        early.start_span("early").end()
        record_restart(supervisor="root", child_id="db", reason="normal",
                       strategy="one_for_one", restarts_in_window=1, intensity=3, period=5.0)
        telemetry.shutdown(timeout=5.0)
        """,
        OTEL_SERVICE_NAME="svc-from-env",
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
    )
    assert result.returncode == 0, result.stderr
    decoder = json.JSONDecoder()
    spans = []
    text = result.stdout.strip()
    while text:
        span, end = decoder.raw_decode(text)
        spans.append(span)
        text = text[end:].strip()
    assert [span["name"] for span in spans] == ["early", SPAN_RESTART]
    assert {span["resource"]["attributes"][SERVICE_NAME] for span in spans} == {"svc-from-env"}


def test_tel_5_envelope_propagation_is_installed_only_when_traces_are_configured() -> None:
    """TEL-4/TEL-5: without an SDK a send carries nothing; configure_from_env turns it on.

    A program that never configures tracing must not pay for a context lookup on every
    send; once traces are configured, sends carry the sender's context.
    """
    result = _run_python(
        """
        import otpy
        from otpy._core import _envelope
        from otpy.telemetry import configure_from_env

        assert _envelope.hooks is None, "installed by merely importing otpy"
        telemetry = configure_from_env()
        assert _envelope.hooks is not None
        telemetry.shutdown(timeout=5.0)
        """,
        OTEL_TRACES_EXPORTER="console",
        OTEL_METRICS_EXPORTER="none",
    )
    assert result.returncode == 0, result.stderr
    disabled = _run_python(
        """
        from otpy._core import _envelope
        from otpy.telemetry import configure_from_env

        configure_from_env()
        assert _envelope.hooks is None
        """,
        OTEL_SDK_DISABLED="true",
    )
    assert disabled.returncode == 0, disabled.stderr


@pytest.mark.parametrize("timeout", [float("inf"), float("nan"), -1.0, "5", True])
def test_flush_and_shutdown_refuse_a_timeout_they_cannot_wait_for(timeout: object) -> None:
    """force_flush(inf) and shutdown(nan) raise InvalidArgument naming timeout, not OverflowError."""
    handle = Telemetry(enabled=False)
    with pytest.raises(InvalidArgument, match=r"^telemetry flush: timeout must be a finite number"):
        handle.force_flush(timeout)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^telemetry shutdown: timeout must be a finite"):
        handle.shutdown(timeout)  # type: ignore[arg-type]


def test_twin_a_zero_timeout_is_allowed() -> None:
    """Twin: a timeout of 0 flushes and shuts down without waiting."""
    handle = Telemetry(enabled=False)
    assert handle.force_flush(0) is True
    handle.shutdown(0)


@pytest.mark.parametrize("service", ["", "svc\udc80", None, 5])
def test_configure_refuses_a_service_name_it_could_not_export(service: object) -> None:
    """configure_from_env(default_service_name='\\udc80') is refused before anything is installed."""
    with pytest.raises(InvalidArgument, match=r"^telemetry: default_service_name must"):
        configure_from_env(default_service_name=service)  # type: ignore[arg-type]
