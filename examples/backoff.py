"""Restart backoff: a child that keeps crashing is restarted after growing delays.

With ``backoff=otpy.Backoff(...)`` on its spec, the n-th consecutive restart of a
child waits ``minimum * 2**n``, stretched by up to ``jitter`` and then capped at
``maximum``: jitter is applied before the cap, so no delay exceeds the maximum.
The delays here are tiny so the example ends at once; in production they would be
seconds. The child crashes on each of its first six starts, then stays up.

The delay the supervisor chose is read from its ``otpy.supervisor.restart`` span,
so the example installs an OpenTelemetry SDK tracer provider with a span processor
that prints each one.

Run it with ``python examples/backoff.py``.
"""

from __future__ import annotations

import logging
import sys
from typing import TYPE_CHECKING, Any

import anyio
from opentelemetry import trace
from opentelemetry.sdk.trace import SpanProcessor, TracerProvider

import otpy
from otpy import telemetry

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import ReadableSpan

CRASHES = 6
backoff = otpy.Backoff(minimum=0.01, maximum=0.08, jitter=0.5)


class PrintRestartDelays(SpanProcessor):
    """Print the backoff delay recorded on every restart span."""

    def __init__(self) -> None:
        self.attempt = 0

    def on_end(self, span: ReadableSpan) -> None:
        if span.name != telemetry.SPAN_RESTART or span.attributes is None:
            return
        delay = span.attributes[telemetry.ATTR_RESTART_DELAY]
        assert isinstance(delay, float)
        low = otpy.backoff_delay(backoff, self.attempt, 0.0)
        high = otpy.backoff_delay(backoff, self.attempt, 1.0)
        self.attempt += 1
        bounds = "the cap" if low == backoff.maximum else f"{low * 1000:g} to {high * 1000:g} ms"
        print(f"restart {self.attempt}: waiting {delay * 1000:4.1f} ms ({bounds})")


class Flaky(otpy.Actor):
    """Crashes right after starting, until it has crashed ``CRASHES`` times."""

    async def init(self, crashes: list[int], stable: anyio.Event) -> None:
        self.crashes = crashes
        if len(crashes) < CRASHES:
            self.continue_with("crash")  # runs right after init, before any message
        else:
            stable.set()

    async def handle_continue(self, argument: Any) -> None:
        self.crashes.append(1)
        raise RuntimeError(f"crash {len(self.crashes)}")


async def main() -> None:
    crashes: list[int] = []
    stable = anyio.Event()
    spec = otpy.ChildSpec(id="flaky", start=Flaky, args=(crashes, stable), backoff=backoff)
    # Ten restarts in five seconds: enough room for the six crashes here.
    flags = otpy.SupervisorFlags(intensity=10, period=5.0)
    start = anyio.current_time()
    async with otpy.open_supervisor([spec], flags=flags, name="root") as sup:
        await stable.wait()
        elapsed = anyio.current_time() - start
        restarts = sup.statistics().total_restarts
        print(f"flaky is stable after {restarts} restarts, {elapsed * 1000:.0f} ms in all")


if __name__ == "__main__":
    # The supervisor's reports and the crash tracebacks would drown the delays here.
    logging.basicConfig(stream=sys.stdout, level=logging.CRITICAL)
    provider = TracerProvider()
    provider.add_span_processor(PrintRestartDelays())
    trace.set_tracer_provider(provider)
    anyio.run(main)
