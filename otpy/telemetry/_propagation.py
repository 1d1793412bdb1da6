"""Carry the OpenTelemetry context in message envelopes (TEL-4: injected on send, extracted on receive).

Installed when :mod:`otpy.telemetry` is imported, which every otpy program does.
A send captures the sender's context only when it holds something (a span, or
baggage): without tracing the cost is one context-variable read per send.
"""

from __future__ import annotations

from opentelemetry import context as otel_context
from opentelemetry import trace

from .._core import EnvelopeHooks, install_envelope_hooks

__all__ = ["capture_context", "install_propagation"]


def capture_context() -> otel_context.Context | None:
    """Return the current context if it carries a valid span or baggage, else ``None``."""
    current = otel_context.get_current()
    if not current:
        return None  # nothing attached at all: the usual case without tracing
    if trace.get_current_span(current).get_span_context().is_valid:
        return current
    return current if len(current) > 1 else None  # baggage or other entries


def install_propagation() -> None:
    """Carry trace context in message envelopes from now on (idempotent).

    :func:`configure_from_env` calls it when it exports traces; call it yourself
    once if you install an OpenTelemetry SDK by other means.
    """
    install_envelope_hooks(EnvelopeHooks(capture_context, otel_context.attach, otel_context.detach))
