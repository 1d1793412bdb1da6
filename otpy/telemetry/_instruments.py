"""otpy's tracer and meter, and metric instruments created on first use and then reused.

Each subsystem declares its instruments once, at module level::

    _drops = cached_counter(METRIC_PRESSURE_DROPS, unit="{message}", description="...")

    def record_drop(queue: str) -> None:
        _drops().add(1, {ATTR_PRESSURE_QUEUE: queue})

Nothing is created at import. The first call creates the instrument on `get_meter`'s
meter and every later call returns that same instrument, so the hot path does not look
the meter up again. This is safe before a meter provider is installed: the API then
hands out proxy instruments, which start recording once a provider is (OpenTelemetry
allows one per process, so there is no later provider to notice).
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING, TypeVar

from opentelemetry import trace

if TYPE_CHECKING:
    from collections.abc import Callable

    from opentelemetry.metrics import Counter, Histogram, Meter
    from opentelemetry.metrics import _Gauge as Gauge  # still underscored in the API
    from opentelemetry.trace import Tracer

__all__ = [
    "INSTRUMENTATION_NAME",
    "cached_counter",
    "cached_gauge",
    "cached_histogram",
    "get_meter",
    "get_tracer",
]

InstrumentT = TypeVar("InstrumentT")

INSTRUMENTATION_NAME = "otpy"
"""The instrumentation scope name on every span and metric otpy emits."""


def _otpy_version() -> str:
    import importlib.metadata  # here: it costs more to import than the rest of otpy.telemetry

    try:
        return importlib.metadata.version("otpy")
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - otpy not installed
        return "0+unknown"


@functools.cache
def get_tracer() -> Tracer:
    """Return the tracer otpy records its spans with.

    It comes from the global tracer provider. If none is installed yet, the API hands
    out a proxy that starts recording once one is, so it is safe to call this before
    `configure_from_env`.

    Returns:
        The ``"otpy"`` tracer, versioned with the installed otpy.

    .. versionadded:: 0.1.0
    """
    return trace.get_tracer(INSTRUMENTATION_NAME, _otpy_version())


@functools.cache
def get_meter() -> Meter:
    """Return the meter otpy records its metrics with.

    Like `get_tracer`, it works before a meter provider is installed: the API's proxy
    instruments start recording once one is.

    Returns:
        The ``"otpy"`` meter, versioned with the installed otpy.

    .. versionadded:: 0.1.0
    """
    from opentelemetry import metrics  # here: importing otpy need not load the metrics API

    return metrics.get_meter(INSTRUMENTATION_NAME, _otpy_version())


def _cached(create: Callable[[Meter], InstrumentT]) -> Callable[[], InstrumentT]:
    """Return a function that creates an instrument on otpy's meter once, then reuses it."""

    @functools.cache
    def instrument() -> InstrumentT:
        return create(get_meter())

    return instrument


def cached_counter(name: str, *, unit: str, description: str) -> Callable[[], Counter]:
    """Return a function that gives otpy's monotonic counter *name*, created on first call.

    Args:
        name: The metric name, one of the ``METRIC_*`` constants.
        unit: The UCUM unit, such as ``"s"`` or an annotation like ``"{record}"``.
        description: One sentence saying what is counted.

    Returns:
        A function of no arguments returning the counter; it never creates a second one.

    .. versionadded:: 0.2.0
    """

    return _cached(lambda meter: meter.create_counter(name, unit=unit, description=description))


def cached_histogram(name: str, *, unit: str, description: str) -> Callable[[], Histogram]:
    """Return a function that gives otpy's histogram *name*, created on first call.

    Args:
        name: The metric name, one of the ``METRIC_*`` constants.
        unit: The UCUM unit, such as ``"s"``.
        description: One sentence saying what is recorded.

    Returns:
        A function of no arguments returning the histogram; it never creates a second one.

    .. versionadded:: 0.2.0
    """

    return _cached(lambda meter: meter.create_histogram(name, unit=unit, description=description))


def cached_gauge(name: str, *, unit: str, description: str) -> Callable[[], Gauge]:
    """Return a function that gives otpy's synchronous gauge *name*, created on first call.

    Args:
        name: The metric name, one of the ``METRIC_*`` constants.
        unit: The UCUM unit, such as an annotation like ``"{item}"``.
        description: One sentence saying what is measured.

    Returns:
        A function of no arguments returning the gauge; it never creates a second one.

    .. versionadded:: 0.2.0
    """

    return _cached(lambda meter: meter.create_gauge(name, unit=unit, description=description))
