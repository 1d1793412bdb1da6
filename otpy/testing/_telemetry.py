"""Capture the spans and metrics otpy emits, for tests.

OpenTelemetry lets a process set its global tracer and meter providers only once, so
these helpers install in-memory SDK providers the first time they are used and keep
them for the rest of the process. A process that uses them must not also call
`otpy.telemetry.configure_from_env` or install providers of its own.
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import TYPE_CHECKING

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.resources import SERVICE_NAME, Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.sdk.trace.sampling import ALWAYS_ON

from ..telemetry import (
    install_propagation,
    meter_provider_installed,
    sdk_disabled,
    tracer_provider_installed,
)

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from opentelemetry.sdk.trace import ReadableSpan

__all__ = ["capture_metrics", "capture_spans"]

_RESOURCE = Resource({SERVICE_NAME: "otpy-tests"})
_lock = threading.Lock()


class _Fanout(SpanExporter):
    """Hands each finished span to the exporter of every `capture_spans` block now open."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._targets: list[InMemorySpanExporter] = []

    def add(self, target: InMemorySpanExporter) -> None:
        with self._lock:
            self._targets.append(target)

    def remove(self, target: InMemorySpanExporter) -> None:
        with self._lock:
            self._targets.remove(target)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        with self._lock:
            targets = list(self._targets)
        for target in targets:
            target.export(spans)
        return SpanExportResult.SUCCESS


_fanout: _Fanout | None = None
_metric_reader: InMemoryMetricReader | None = None
_metrics_open = False


def _refuse_if_disabled(helper: str) -> None:
    if sdk_disabled(os.environ):
        raise RuntimeError(
            f"{helper} cannot install its provider while OTEL_SDK_DISABLED=true: "
            "the SDK would hand out no-op tracers for the rest of the process"
        )


def _span_fanout() -> _Fanout:
    global _fanout
    with _lock:
        if _fanout is not None:
            return _fanout
        if tracer_provider_installed():
            raise RuntimeError(
                "capture_spans() cannot install its in-memory TracerProvider: another global "
                "TracerProvider is installed, and OpenTelemetry allows one per process; "
                "don't call configure_from_env() or set a provider in test processes"
            )
        _refuse_if_disabled("capture_spans()")
        fanout = _Fanout()
        provider = TracerProvider(sampler=ALWAYS_ON, resource=_RESOURCE, shutdown_on_exit=False)
        provider.add_span_processor(SimpleSpanProcessor(fanout))
        trace.set_tracer_provider(provider)
        if trace.get_tracer_provider() is not provider:  # pragma: no cover - a race
            raise RuntimeError("capture_spans() lost the race to install a TracerProvider")
        _fanout = fanout
        install_propagation()  # as configure_from_env does once traces are on
        return fanout


def _installed_metric_reader() -> InMemoryMetricReader:
    global _metric_reader
    with _lock:
        if _metric_reader is not None:
            return _metric_reader
        if meter_provider_installed():
            raise RuntimeError(
                "capture_metrics() cannot install its in-memory MeterProvider: another global "
                "MeterProvider is installed, and OpenTelemetry allows one per process; "
                "don't call configure_from_env() or set a provider in test processes"
            )
        _refuse_if_disabled("capture_metrics()")
        # Delta temporality: each read returns only what was recorded since the last one.
        delta = AggregationTemporality.DELTA
        reader = InMemoryMetricReader(
            preferred_temporality={
                Counter: delta,
                UpDownCounter: delta,
                Histogram: delta,
                ObservableCounter: delta,
                ObservableUpDownCounter: delta,
            }
        )
        provider = MeterProvider(
            metric_readers=[reader], resource=_RESOURCE, shutdown_on_exit=False
        )
        metrics.set_meter_provider(provider)
        if metrics.get_meter_provider() is not provider:  # pragma: no cover - a race
            raise RuntimeError("capture_metrics() lost the race to install a MeterProvider")
        _metric_reader = reader
        return reader


@contextlib.contextmanager
def capture_spans() -> Iterator[InMemorySpanExporter]:
    """Collect the spans that finish inside the block.

    The first use installs a global SDK ``TracerProvider`` (sampling everything) whose
    ``SimpleSpanProcessor`` hands each finished span to the open blocks. Each block gets
    its own exporter, so it holds exactly the spans that finished while it was open,
    and can be read after the block ends::

        with capture_spans() as exporter:
            record_restart(...)
        [span] = exporter.get_finished_spans()

    Yields:
        An ``InMemorySpanExporter`` holding the spans finished inside the block.

    Raises:
        RuntimeError: Another global tracer provider is installed, or
            ``OTEL_SDK_DISABLED=true`` on first use.

    .. versionadded:: 0.1.0
    """
    fanout = _span_fanout()
    exporter = InMemorySpanExporter()
    fanout.add(exporter)
    try:
        yield exporter
    finally:
        fanout.remove(exporter)


@contextlib.contextmanager
def capture_metrics() -> Iterator[InMemoryMetricReader]:
    """Collect the metrics recorded inside the block.

    The first use installs a global SDK ``MeterProvider`` with one
    ``InMemoryMetricReader`` using delta temporality; entering a block discards what was
    recorded before. Read with ``reader.get_metrics_data()`` inside the block: each read
    returns what was recorded since the previous one. Blocks cannot nest.

    Yields:
        The process's ``InMemoryMetricReader``.

    Raises:
        RuntimeError: Another global meter provider is installed, ``OTEL_SDK_DISABLED=true``
            on first use, or a `capture_metrics` block is already open.

    .. versionadded:: 0.1.0
    """
    global _metrics_open
    reader = _installed_metric_reader()
    with _lock:
        if _metrics_open:
            raise RuntimeError("capture_metrics() blocks cannot nest: they share one reader")
        _metrics_open = True
    try:
        reader.get_metrics_data()  # discard what was recorded before the block
        yield reader
    finally:
        with _lock:
            _metrics_open = False
