"""Rows <-> records: the codec between :class:`DeadLetter` (and ledger entries) and SQLite rows.

A ``dead_letters`` row holds its columns in the order of :data:`COLUMNS`. Decoding
checks every column's type, so a row no record could have written is reported as a
:exc:`~otpy.CorruptRecord` (by id, saying what is wrong) instead of failing a query.
"""

from __future__ import annotations

import functools
import json
from typing import TYPE_CHECKING, TypeVar

from .._exceptions import CorruptRecord, DeadLetterStoreError, InvalidDeadLetter
from ._guard import LedgerEntry, LedgerState
from ._record import (
    Category,
    DeadLetter,
    Diagnostics,
    ReplayOutcome,
    ReplayState,
    ReplayStatus,
    Source,
    Status,
)
from ._schema import COLUMNS

if TYPE_CHECKING:
    from collections.abc import Sequence

__all__ = ["decode", "decode_ledger", "encode", "state_row"]


_JSON = json.JSONEncoder(separators=(",", ":"))


@functools.lru_cache(maxsize=256)
def _pairs_to_json(pairs: tuple[tuple[str, str], ...]) -> str:
    # Cached: records from one capture point share their headers, and the trace
    # context is usually empty; encoding JSON is most of what a capture costs here.
    return _JSON.encode([[name, value] for name, value in pairs])


def encode(record: DeadLetter, inline_limit: int) -> tuple[tuple[object, ...], bytes | None]:
    """Return the ``dead_letters`` row for *record*, and its payload if stored apart."""
    external = record.payload is not None and len(record.payload) > inline_limit
    replay = record.replay
    diagnostics = record.diagnostics
    row = (
        record.id,
        record.key,
        record.source.value,
        record.status.value,
        record.reason_class,
        record.reason,
        record.category.value,
        record.correlation_id,
        record.idempotency_key,
        record.attempt,
        record.max_attempts,
        None if external else record.payload,
        record.payload_size,
        int(external),
        record.content_type,
        _pairs_to_json(record.headers),
        diagnostics.pressure_level,
        diagnostics.queue_depth,
        diagnostics.queue_capacity,
        _pairs_to_json(record.trace_context),
        _pairs_to_json(record.attributes),
        replay.status.value,
        replay.attempts,
        replay.last_attempt_at,
        None if replay.last_outcome is None else replay.last_outcome.value,
        replay.last_error,
        replay.lease_expires_at,
        record.created_at,
        record.updated_at,
    )
    return row, record.payload if external else None


def state_row(record: DeadLetter) -> tuple[object, ...]:
    """Return the parameters of ``UPDATE_STATE`` for *record*."""
    replay = record.replay
    return (
        record.status.value,
        replay.status.value,
        replay.attempts,
        replay.last_attempt_at,
        None if replay.last_outcome is None else replay.last_outcome.value,
        replay.last_error,
        replay.lease_expires_at,
        record.updated_at,
        record.id,
    )


class _Undecodable(Exception):
    """A column holds something no record could have written."""


def _text(value: object, column: str) -> str:
    if not isinstance(value, str):
        raise _Undecodable(f"{column} is {type(value).__name__}, not text")
    return value


def _optional_text(value: object, column: str) -> str | None:
    return None if value is None else _text(value, column)


def _integer(value: object, column: str) -> int:
    if not isinstance(value, int):
        raise _Undecodable(f"{column} is {type(value).__name__}, not an integer")
    return value


def _optional_integer(value: object, column: str) -> int | None:
    return None if value is None else _integer(value, column)


def _real(value: object, column: str) -> float:
    if not isinstance(value, (int, float)):
        raise _Undecodable(f"{column} is {type(value).__name__}, not a number")
    return float(value)


def _optional_real(value: object, column: str) -> float | None:
    return None if value is None else _real(value, column)


def _optional_blob(value: object, column: str) -> bytes | None:
    if value is not None and not isinstance(value, bytes):
        raise _Undecodable(f"{column} is {type(value).__name__}, not a blob")
    return value


_E = TypeVar("_E", Source, Status, Category, ReplayStatus, ReplayOutcome, LedgerState)


def _enum(kind: type[_E], value: object, column: str) -> _E:
    try:
        return kind(_text(value, column))
    except ValueError:
        allowed = ", ".join(member.value for member in kind)
        raise _Undecodable(f"{column} {value!r:.40} is not one of {allowed}") from None


def _pairs_from_json(value: object, column: str) -> tuple[tuple[str, str], ...]:
    try:
        decoded = json.loads(_text(value, column))
    except json.JSONDecodeError:
        raise _Undecodable(f"{column} is not valid JSON") from None
    if not isinstance(decoded, list) or not all(
        isinstance(pair, list)
        and len(pair) == 2
        and isinstance(pair[0], str)
        and isinstance(pair[1], str)
        for pair in decoded
    ):
        raise _Undecodable(f"{column} is not a JSON list of [name, value] string pairs")
    return tuple((name, value) for name, value in decoded)


def decode(row: Sequence[object], path: str, *, loaded: bool) -> DeadLetter:
    """Return the record in *row* (``COLUMNS``, then ``payloads.data`` when *loaded*).

    Raises:
        CorruptRecord: the row holds something no record could have written.
    """
    record_id = str(row[0])
    try:
        (
            id_,
            key,
            source,
            status,
            reason_class,
            reason,
            category,
            correlation_id,
            idempotency_key,
            attempt,
            max_attempts,
            payload,
            payload_size,
            payload_external,
            content_type,
            headers,
            pressure_level,
            queue_depth,
            queue_capacity,
            trace_context,
            attributes,
            replay_status,
            replay_attempts,
            last_attempt_at,
            last_outcome,
            last_error,
            lease_expires_at,
            created_at,
            updated_at,
        ) = row[: len(COLUMNS)]
        body = _optional_blob(payload, "payload")
        if _integer(payload_external, "payload_external"):
            if loaded:
                body = _optional_blob(row[len(COLUMNS)], "payloads.data")
                if body is None:
                    raise _Undecodable("its payload is missing from the payloads table")
            else:
                body = None
        return DeadLetter(
            id=_text(id_, "id"),
            key=_text(key, "key"),
            source=_enum(Source, source, "source"),
            reason_class=_text(reason_class, "reason_class"),
            reason=_text(reason, "reason"),
            category=_enum(Category, category, "category"),
            correlation_id=_optional_text(correlation_id, "correlation_id"),
            idempotency_key=_optional_text(idempotency_key, "idempotency_key"),
            attempt=_integer(attempt, "attempt"),
            max_attempts=_integer(max_attempts, "max_attempts"),
            payload=body,
            payload_size=_integer(payload_size, "payload_size"),
            content_type=_text(content_type, "content_type"),
            headers=_pairs_from_json(headers, "headers"),
            diagnostics=Diagnostics(
                pressure_level=_optional_text(pressure_level, "pressure_level"),
                queue_depth=_optional_integer(queue_depth, "queue_depth"),
                queue_capacity=_optional_integer(queue_capacity, "queue_capacity"),
            ),
            trace_context=_pairs_from_json(trace_context, "trace_context"),
            attributes=_pairs_from_json(attributes, "attributes"),
            status=_enum(Status, status, "status"),
            replay=ReplayState(
                status=_enum(ReplayStatus, replay_status, "replay_status"),
                attempts=_integer(replay_attempts, "replay_attempts"),
                last_attempt_at=_optional_real(last_attempt_at, "replay_last_attempt_at"),
                last_outcome=None
                if last_outcome is None
                else _enum(ReplayOutcome, last_outcome, "replay_last_outcome"),
                last_error=_optional_text(last_error, "replay_last_error"),
                lease_expires_at=_optional_real(lease_expires_at, "lease_expires_at"),
            ),
            created_at=_real(created_at, "created_at"),
            updated_at=_real(updated_at, "updated_at"),
        )
    except _Undecodable as exc:
        raise CorruptRecord(path, record_id, str(exc)) from None
    except InvalidDeadLetter as exc:  # the record's own validation
        raise CorruptRecord(path, record_id, f"{exc.field} {exc.problem}") from None
    except (ValueError, TypeError) as exc:  # pragma: no cover - the record raises the above
        raise CorruptRecord(path, record_id, f"{type(exc).__name__}: {exc}") from None


def decode_ledger(row: Sequence[object], path: str) -> LedgerEntry:
    key = row[0]
    try:
        return LedgerEntry(
            key=_text(key, "ledger.key"),
            state=_enum(LedgerState, row[1], "ledger.state"),
            record_id=_text(row[2], "ledger.record_id"),
            expires_at=_optional_real(row[3], "ledger.expires_at"),
            updated_at=_real(row[4], "ledger.updated_at"),
        )
    except _Undecodable as exc:
        raise DeadLetterStoreError(
            path, f"the ledger entry for idempotency key {key!r} is corrupt ({exc})"
        ) from None
