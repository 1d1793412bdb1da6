"""Capture points: poison messages and undeliverable messages become stored dead letters.

The actor core knows nothing of stores (imports flow one way). It publishes what it
could not deliver on the node's in-memory stream (``node.dead_letters``), and, for an
actor whose class sets ``dead_letter_on_crash = True``, the message a handler crashed
on, with reason ``"poison"`` and the exception. :func:`route_dead_letters` adds a
sink to that stream that turns those events into :class:`DeadLetter` records and
hands them to the writer without waiting::

    remove = route_dead_letters(node.dead_letters, DeadLetters())

Message bodies are encoded by an encoder (:func:`encode_payload` by default), never
pickled: a stored payload must not be able to run code when it is read back.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Final, TypeAlias

from ._record import Category, DeadLetter, Source
from ._writer import count_undelivered

if TYPE_CHECKING:
    from collections.abc import Iterable

    from .._core import DeadLetterEvent, DeadLetterStream
    from ._writer import DeadLetters

__all__ = [
    "DEFAULT_REASONS",
    "KIND_HEADER",
    "POISON",
    "REPR_CONTENT_TYPE",
    "Encoder",
    "dead_letter_from_event",
    "encode_payload",
    "route_dead_letters",
]

POISON: Final = "poison"
"""The stream reason of a message an actor crashed on."""

UNDELIVERABLE_REASONS: Final = frozenset(
    {"actor_stopped", "noproc", "mailbox_full", "mailbox_full_dropped_oldest", "stash_full"}
)
"""The stream reasons of messages that never reached a handler."""

DEFAULT_REASONS: Final = frozenset({POISON, *UNDELIVERABLE_REASONS})
"""Every reason :func:`route_dead_letters` knows; it routes them all by default."""

KIND_HEADER: Final = "otpy-message-kind"
"""Header holding how the message was sent (``cast``, ``info``, ``call``), for replay."""

REPR_CONTENT_TYPE: Final = "text/x-python-repr"
"""Content type of a payload stored as ``repr(message)``: readable, not replayable."""

Encoder: TypeAlias = Callable[[object], tuple[bytes, str]]
"""An encoder takes a message and returns ``(body, content_type)``; it must not raise."""


def encode_payload(message: object) -> tuple[bytes, str]:
    """Encode *message* for storage; return ``(body, content_type)``.

    - ``bytes``/``bytearray``/``memoryview``: as they are, ``application/octet-stream``;
    - ``str``: UTF-8, ``text/plain; charset=utf-8``;
    - anything ``json.dumps`` takes (dicts, lists, numbers, booleans, ``None``):
      ``application/json``;
    - anything else: its ``repr``, as ``text/x-python-repr``. Such a payload shows
      an operator what the message was but cannot be replayed as it is; pass an
      encoder of your own (``route_dead_letters(..., encoder=...)``) for messages
      you want to replay.

    Never pickles, and never raises.
    """
    if isinstance(message, (bytes, bytearray, memoryview)):
        return bytes(message), "application/octet-stream"
    if isinstance(message, str):
        return message.encode("utf-8", "surrogatepass"), "text/plain; charset=utf-8"
    try:
        text = json.dumps(message, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except (TypeError, ValueError, RecursionError):
        pass
    else:
        return text.encode("utf-8", "surrogatepass"), "application/json"
    try:
        text = repr(message)
    except Exception:
        text = f"<{type(message).__qualname__} object: repr() failed>"
    return text.encode("utf-8", "backslashreplace"), REPR_CONTENT_TYPE


def dead_letter_from_event(
    event: DeadLetterEvent,
    *,
    encoder: Encoder = encode_payload,
) -> DeadLetter:
    """Build the record for one stream event; its key is the recipient's name or label.

    A ``"poison"`` event becomes an :attr:`Source.ACTOR_CRASH` record with the
    exception's class and (redacted) message, category fatal: the handler could not
    cope with it, so fix the code or the message before replaying. Every other event
    becomes an :attr:`Source.UNDELIVERABLE` record whose ``reason_class`` is the
    stream reason (``mailbox_full``...), category retryable: its actor was down or
    busy, and a replay later will probably succeed. The ``otpy-message-kind`` header
    says how it was sent.
    """
    body, content_type = encoder(event.message)
    headers = ((KIND_HEADER, event.kind),)
    if event.reason == POISON:
        return DeadLetter.capture(
            key=event.recipient,
            source=Source.ACTOR_CRASH,
            error=event.error,
            reason_class=None if event.error is not None else POISON,
            reason=None
            if event.error is not None
            else f"actor {event.recipient} crashed handling it",
            payload=body,
            content_type=content_type,
            headers=headers,
            category=Category.FATAL,
        )
    return DeadLetter.capture(
        key=event.recipient,
        source=Source.UNDELIVERABLE,
        reason_class=event.reason,
        reason=f"{event.kind} to {event.recipient} was not delivered: {event.reason}",
        payload=body,
        content_type=content_type,
        headers=headers,
        category=Category.RETRYABLE,
    )


def route_dead_letters(
    stream: DeadLetterStream,
    client: DeadLetters,
    *,
    reasons: Iterable[str] = DEFAULT_REASONS,
    encoder: Encoder = encode_payload,
) -> Callable[[], None]:
    """Store the events of *stream* whose reason is in *reasons*, through *client*.

    Each event becomes a record (:func:`dead_letter_from_event`) handed to the writer
    with :meth:`DeadLetters.capture_nowait`: capture points have nobody to
    acknowledge, and the sink must not block the sender it runs in. The writer's own
    messages that could not be delivered are counted as dropped in the client's
    statistics, never captured again (that would loop).

    Args:
        stream: the node's stream, ``node.dead_letters``.
        client: the writer's client.
        reasons: which stream reasons to store (see :data:`DEFAULT_REASONS`).
        encoder: turns a message into ``(body, content_type)``.

    Returns:
        A function that removes the sink.

    Raises:
        ValueError: an unknown reason is given.
    """
    wanted = frozenset(reasons)
    unknown = wanted - DEFAULT_REASONS
    if unknown:
        raise ValueError(
            f"route_dead_letters: unknown reasons {sorted(unknown)}; "
            f"the stream publishes {sorted(DEFAULT_REASONS)}"
        )

    def sink(event: DeadLetterEvent) -> None:
        if count_undelivered(client, event.message, event.reason):
            return
        if event.reason in wanted:
            client.capture_nowait(dead_letter_from_event(event, encoder=encoder))

    return stream.add_sink(sink)
