"""Helpers for testing code built on otpy: virtual time, crash injection, waiting.

Virtual time comes from trio's ``MockClock`` through the anyio pytest plugin::

    @pytest.fixture
    def anyio_backend():
        return otpy.testing.virtual_time()

With it, ``await anyio.sleep(3600)`` returns at once and time moves exactly.
"""

from __future__ import annotations

from ._crash import CrashAfter as CrashAfter
from ._crash import CrashInjected as CrashInjected
from ._crash import crash_after as crash_after
from ._crash import inject_crash as inject_crash
from ._telemetry import capture_metrics as capture_metrics
from ._telemetry import capture_spans as capture_spans
from ._time import virtual_time as virtual_time

__all__ = [
    "capture_metrics",
    "capture_spans",
    "CrashAfter",
    "CrashInjected",
    "crash_after",
    "inject_crash",
    "virtual_time",
]
