"""A dead letter as a JSON document: what ``otpy dlq get --json`` prints and the admin API answers."""

from __future__ import annotations

import base64
import datetime
from typing import TYPE_CHECKING, Any

from ._record import redact, redact_attributes, redact_headers

if TYPE_CHECKING:
    from ._record import DeadLetter

__all__ = ["iso_time", "record_document"]


def iso_time(epoch: float) -> str:
    """Return *epoch* as ISO 8601 UTC with milliseconds: ``2024-05-01T12:00:03.250Z``.

    .. versionadded:: 0.2.0
    """
    moment = datetime.datetime.fromtimestamp(epoch, datetime.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _time_fields(name: str, epoch: float | None) -> dict[str, Any]:
    return {name: None if epoch is None else iso_time(epoch), f"{name}_epoch": epoch}


def _text(value: str | None) -> str | None:
    return None if value is None else redact(value)


def record_document(record: DeadLetter, *, payload: bool) -> dict[str, Any]:
    """Return *record* as a JSON-ready dict, every text redacted once more on the way out.

    Times appear twice: ``created_at`` in ISO 8601 UTC and ``created_at_epoch`` in
    seconds since the epoch. The reason, the replay error, the headers and the
    attributes were redacted when the record was captured; they are redacted again
    here, so nothing that leaves the process depends on how the record was made.
    With *payload*, ``payload`` holds the body in base64 (``None`` when a listing
    left a large one out: a ``get`` loads it) and ``payload_text`` the body decoded,
    when it is valid UTF-8. Without it, neither key is present: payloads are shown
    only when asked for.

    .. versionadded:: 0.2.0
    """
    replay = record.replay
    doc: dict[str, Any] = {
        "id": record.id,
        "key": record.key,
        "status": record.status.value,
        "source": record.source.value,
        "category": record.category.value,
        "reason_class": record.reason_class,
        "reason": redact(record.reason),
        "correlation_id": record.correlation_id,
        "idempotency_key": record.idempotency_key,
        "replay_key": record.replay_key,
        "attempt": record.attempt,
        "max_attempts": record.max_attempts,
        "content_type": record.content_type,
        "payload_size": record.payload_size,
        "headers": [[name, value] for name, value in redact_headers(record.headers)],
        "diagnostics": {
            "pressure_level": record.diagnostics.pressure_level,
            "queue_depth": record.diagnostics.queue_depth,
            "queue_capacity": record.diagnostics.queue_capacity,
        },
        "trace_context": dict(record.trace_context),
        "attributes": dict(redact_attributes(record.attributes)),
        "replay": {
            "status": replay.status.value,
            "attempts": replay.attempts,
            **_time_fields("last_attempt_at", replay.last_attempt_at),
            "last_outcome": None if replay.last_outcome is None else replay.last_outcome.value,
            "last_error": _text(replay.last_error),
            **_time_fields("lease_expires_at", replay.lease_expires_at),
        },
        **_time_fields("created_at", record.created_at),
        **_time_fields("updated_at", record.updated_at),
    }
    if payload:
        body = (record.payload or b"") if record.payload_loaded else None
        doc["payload"] = None if body is None else base64.b64encode(body).decode("ascii")
        if body is not None:
            try:
                doc["payload_text"] = body.decode("utf-8")
            except UnicodeDecodeError:
                pass
    return doc
