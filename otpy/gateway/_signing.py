"""Standard Webhooks request signing, and the verification a receiver does.

A signed request carries three headers: ``webhook-id`` (the message's id, the same on
every attempt), ``webhook-timestamp`` (integer Unix seconds of this attempt) and
``webhook-signature``: a space-separated list of ``v1,<base64 HMAC-SHA256>`` entries,
one per secret, each over ``f"{id}.{timestamp}.".encode() + body``. While a secret is
being rotated the sender signs with the old and the new one, and a receiver that knows
either accepts the request.

Everything here is pure: the time is a parameter, nothing is read or sent.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from secrets import token_bytes
from typing import TYPE_CHECKING, Final

import attrs

from .._check import number, short
from .._exceptions import InvalidArgument, InvalidArgumentType, SignatureError

if TYPE_CHECKING:
    from collections.abc import Mapping, Sequence

__all__ = [
    "DEFAULT_TOLERANCE",
    "ID_HEADER",
    "MIN_SECRET_BYTES",
    "SECRET_PREFIX",
    "SIGNATURE_HEADER",
    "TIMESTAMP_HEADER",
    "SigningSecret",
    "sign",
    "verify",
    "webhook_headers",
]

SECRET_PREFIX: Final = "whsec_"
"""How a secret's text starts: ``whsec_`` and then the key in base64."""

MIN_SECRET_BYTES: Final = 24
"""The shortest key accepted, in bytes: 192 bits, the least the Standard Webhooks spec allows."""

DEFAULT_TOLERANCE: Final = 300.0
"""How far, in seconds, a ``webhook-timestamp`` may be from now, either way: 5 minutes."""

_GENERATED_BYTES: Final = 32
_MAX_TIMESTAMP_DIGITS: Final = 16  # past the year 300 million: nothing real is longer

ID_HEADER: Final = "webhook-id"
"""The header that carries the message id."""
TIMESTAMP_HEADER: Final = "webhook-timestamp"
"""The header that carries the attempt's time, in integer Unix seconds."""
SIGNATURE_HEADER: Final = "webhook-signature"
"""The header that carries the space-separated signatures."""


def _key(value: str | bytes | bytearray) -> bytes:
    """Convert a secret's ``whsec_`` text, or its raw key bytes, into the key."""
    if isinstance(value, (bytes, bytearray)):
        key = bytes(value)
    elif isinstance(value, str):
        text = value.strip()
        if not text:
            raise InvalidArgument("secret", "must not be empty", owner="SigningSecret")
        if not text.startswith(SECRET_PREFIX):
            # Never the text itself: it may be the key, pasted without its prefix.
            raise InvalidArgument(
                "secret",
                f"must be text starting with {SECRET_PREFIX!r} followed by the key in "
                f"base64 (got {len(text)} characters that do not start so), or the raw "
                "key as bytes",
                owner="SigningSecret",
            )
        try:
            key = base64.b64decode(text[len(SECRET_PREFIX) :], validate=True)
        except (binascii.Error, ValueError):
            raise InvalidArgument(
                "secret",
                f"must be valid base64 after {SECRET_PREFIX!r} (standard alphabet, with "
                "its '=' padding); it is not",
                owner="SigningSecret",
            ) from None
    else:
        raise InvalidArgumentType(
            "secret",
            f"must be {SECRET_PREFIX!r} text or the key as bytes, got {type(value).__name__}",
            owner="SigningSecret",
        )
    if len(key) < MIN_SECRET_BYTES:
        raise InvalidArgument(
            "secret",
            f"must be a key of at least {MIN_SECRET_BYTES} bytes, got {len(key)} bytes; "
            "make one with SigningSecret.generate()",
            owner="SigningSecret",
        )
    return key


@attrs.frozen(repr=False)
class SigningSecret:
    """One HMAC-SHA256 key that signs (or verifies) webhook requests.

    Built from the conventional text, ``SigningSecret("whsec_<base64 key>")``, or from
    the raw key, ``SigningSecret(key_bytes)``. Surrounding whitespace in the text (a
    trailing newline from a file, say) is ignored. Text without the ``whsec_`` prefix
    is refused rather than guessed at: pass the decoded bytes instead.

    Its ``repr`` and ``str`` never show the key: ``SigningSecret(whsec_…<redacted>)``.
    Use :attr:`text` when the key must be shown, once, to the operator who configures
    the receiver. Two secrets are equal when their keys are.

    Args:
        key: ``whsec_`` text or the raw key as ``bytes``.

    Attributes:
        key: the raw key bytes, at least :data:`MIN_SECRET_BYTES` (24) long.

    Raises:
        InvalidArgument: the text is empty, lacks the ``whsec_`` prefix or is not valid
            base64, or the key is shorter than 24 bytes (an
            :class:`~otpy.InvalidArgumentType` if it is neither text nor bytes). The
            message never contains the secret.
    """

    key: bytes = attrs.field(converter=_key)

    @classmethod
    def generate(cls) -> SigningSecret:
        """Return a new secret with a random 32-byte key from the OS's secure generator."""
        return cls(token_bytes(_GENERATED_BYTES))

    @property
    def text(self) -> str:
        """The secret as ``whsec_<base64 key>``: the form to give a receiver's operator."""
        return SECRET_PREFIX + base64.b64encode(self.key).decode("ascii")

    def __repr__(self) -> str:
        return f"SigningSecret({SECRET_PREFIX}…<redacted>)"

    __str__ = __repr__


def _secrets(value: object, function: str, *, minimum: int = 1) -> tuple[SigningSecret, ...]:
    if isinstance(value, SigningSecret):
        raise InvalidArgumentType(
            "secrets",
            "must be a sequence of SigningSecret, got one SigningSecret: wrap it in a list",
            owner=function,
        )
    if isinstance(value, (str, bytes, bytearray)) or not hasattr(value, "__iter__"):
        raise InvalidArgumentType(
            "secrets",
            f"must be a sequence of SigningSecret, got {type(value).__name__}",
            owner=function,
        )
    found = tuple(value)
    for item in found:
        if not isinstance(item, SigningSecret):
            raise InvalidArgumentType(
                "secrets",
                f"must hold only SigningSecret, got a {type(item).__name__}",
                owner=function,
            )
    if len(found) < minimum:
        raise InvalidArgument("secrets", "must hold at least one SigningSecret", owner=function)
    return found


def _id_problem(value: str) -> str | None:
    """Why *value* cannot be a message id, or ``None`` if it can."""
    if not value:
        return "must not be empty"
    if not (value.isascii() and value.isprintable()) or " " in value:
        return "must be printable ASCII without spaces"
    if "." in value:
        # The signed content joins id, timestamp and body with '.': a '.' in the id
        # would let the same bytes be read as another id, timestamp and body.
        return "must not contain '.'"
    return None


def _message_id(value: object, function: str) -> str:
    if not isinstance(value, str):
        raise InvalidArgumentType(
            "message_id", f"must be a string, got {type(value).__name__}", owner=function
        )
    problem = _id_problem(value)
    if problem is not None:
        raise InvalidArgument("message_id", f"{problem}, got {short(value)}", owner=function)
    return value


def _timestamp(value: object, function: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidArgumentType(
            "timestamp",
            f"must be an integer number of Unix seconds, got {type(value).__name__} {short(value)}",
            owner=function,
        )
    if value < 0 or len(str(value)) > _MAX_TIMESTAMP_DIGITS:
        raise InvalidArgument(
            "timestamp", f"must be Unix seconds >= 0, got {short(value)}", owner=function
        )
    return value


def _body(value: object, function: str) -> bytes:
    if not isinstance(value, (bytes, bytearray)):
        raise InvalidArgumentType(
            "body",
            f"must be the request body as bytes, got {type(value).__name__}",
            owner=function,
        )
    return bytes(value)


def _signature(key: bytes, message_id: str, timestamp: str, body: bytes) -> str:
    mac = hmac.new(key, f"{message_id}.{timestamp}.".encode("ascii"), hashlib.sha256)
    mac.update(body)
    return base64.b64encode(mac.digest()).decode("ascii")


def sign(secrets: Sequence[SigningSecret], *, message_id: str, timestamp: int, body: bytes) -> str:
    """Return the ``webhook-signature`` header's value: one ``v1,<base64>`` per secret.

    Entries are in the order of *secrets*, separated by one space. During a rotation,
    pass the new secret and the old one: a receiver that knows either accepts.

    Args:
        secrets: the keys to sign with: at least one.
        message_id: the message's id, the same on every attempt: printable ASCII, no
            spaces, no ``'.'`` (the spec forbids it: the signed content is joined with
            dots).
        timestamp: this attempt's time in integer Unix seconds (>= 0).
        body: the exact bytes sent as the request body.

    Returns:
        The header value, like ``"v1,K5oZfz...pI4= v1,Ceo5qE...6mc="``.

    Raises:
        InvalidArgument: *secrets* is empty, or *message_id* or *timestamp* is not
            allowed (an :class:`~otpy.InvalidArgumentType` for a wrong type).
    """
    keys = _secrets(secrets, "sign")
    message_id = _message_id(message_id, "sign")
    stamp = str(_timestamp(timestamp, "sign"))
    body = _body(body, "sign")
    return " ".join(f"v1,{_signature(s.key, message_id, stamp, body)}" for s in keys)


def webhook_headers(
    message_id: str, timestamp: int, body: bytes, secrets: Sequence[SigningSecret] = ()
) -> dict[str, str]:
    """Return the Standard Webhooks headers for one attempt to send *body*.

    Args:
        message_id: the message's id, as for :func:`sign`.
        timestamp: this attempt's time in integer Unix seconds.
        body: the exact bytes sent as the request body.
        secrets: the keys to sign with; with none, ``webhook-signature`` is left out
            (a destination that takes unsigned requests still gets the id and time).

    Returns:
        ``{"webhook-id": ..., "webhook-timestamp": ..., "webhook-signature": ...}``, the
        last only when *secrets* is not empty.

    Raises:
        InvalidArgument: as for :func:`sign`.
    """
    keys = _secrets(secrets, "webhook_headers", minimum=0)
    message_id = _message_id(message_id, "webhook_headers")
    timestamp = _timestamp(timestamp, "webhook_headers")
    body = _body(body, "webhook_headers")
    headers = {ID_HEADER: message_id, TIMESTAMP_HEADER: str(timestamp)}
    if keys:
        headers[SIGNATURE_HEADER] = sign(
            keys, message_id=message_id, timestamp=timestamp, body=body
        )
    return headers


def _header(headers: Mapping[str, str], wanted: str) -> str:
    """The value of header *wanted* (lowercase), whatever its case in *headers*."""
    found: str | None = None
    for name, value in headers.items():
        if isinstance(name, str) and name.lower() == wanted:
            if not isinstance(value, str):
                raise InvalidArgumentType(
                    "headers",
                    f"must map names to str values, got {type(value).__name__} for {wanted}",
                    owner="verify",
                )
            if found is not None and value != found:
                raise SignatureError(
                    "bad_header", f"{wanted} header is given twice with different values"
                )
            found = value
    if found is None:
        raise SignatureError("missing_header", f"{wanted} header is missing")
    return found


def verify(
    secrets: Sequence[SigningSecret],
    *,
    headers: Mapping[str, str],
    body: bytes,
    now: float,
    tolerance: float = DEFAULT_TOLERANCE,
) -> str:
    """Check a received request's Standard Webhooks headers; return its message id.

    Header names are matched whatever their case. The checks, in order: the three
    headers are there; the id is well formed (printable ASCII, no spaces, no ``'.'``);
    the timestamp is an integer of ASCII digits no further than *tolerance* seconds
    from *now*, either way (exactly *tolerance* away passes); and at least one ``v1``
    entry of ``webhook-signature`` equals the signature computed with one of *secrets*
    (compared in constant time). Entries of other versions (``v1a``...) are ignored.

    Args:
        secrets: the keys the sender may use: at least one (during a rotation, both).
        headers: the request's headers.
        body: the exact bytes received as the body, before any parsing.
        now: the current time in Unix seconds.
        tolerance: how far from *now* the timestamp may be, in seconds (>= 0); 5
            minutes by default.

    Returns:
        The ``webhook-id``, to use as an idempotency key.

    Raises:
        SignatureError: a check failed; its ``reason`` says which.
        InvalidArgument: *secrets*, *body*, *now* or *tolerance* is not allowed, or
            *headers* is not a mapping of ``str`` to ``str`` (a bug in the caller, not a
            bad request).
    """
    keys = _secrets(secrets, "verify")
    body = _body(body, "verify")
    now = number(now, "now", owner="verify", positive=False, unit=" of Unix seconds")
    tolerance = number(tolerance, "tolerance", owner="verify", positive=False, unit=" of seconds")
    if not hasattr(headers, "items"):
        raise InvalidArgumentType(
            "headers", f"must be a mapping, got {type(headers).__name__}", owner="verify"
        )

    message_id = _header(headers, ID_HEADER)
    stamp = _header(headers, TIMESTAMP_HEADER)
    signatures = _header(headers, SIGNATURE_HEADER)

    problem = _id_problem(message_id)
    if problem is not None:
        raise SignatureError("bad_header", f"{ID_HEADER} header {problem}")
    if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= _MAX_TIMESTAMP_DIGITS):
        raise SignatureError("bad_header", f"{TIMESTAMP_HEADER} header is not integer Unix seconds")
    skew = int(stamp) - now
    if skew < -tolerance:
        raise SignatureError(
            "too_old",
            f"{TIMESTAMP_HEADER} is {-skew:g}s in the past, more than the {tolerance:g}s allowed",
        )
    if skew > tolerance:
        raise SignatureError(
            "too_new",
            f"{TIMESTAMP_HEADER} is {skew:g}s in the future, more than the {tolerance:g}s allowed",
        )

    given = [
        entry[3:].encode("utf-8", "surrogatepass")
        for entry in signatures.split()
        if entry.startswith("v1,")
    ]
    if not given:
        raise SignatureError("no_signature", f"{SIGNATURE_HEADER} header has no v1 entry")
    matched = False
    for secret in keys:
        expected = _signature(secret.key, message_id, stamp, body).encode("ascii")
        for candidate in given:
            # Every comparison runs, so the time taken does not say which one matched.
            matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise SignatureError(
            "no_match", f"no {SIGNATURE_HEADER} v1 entry matches a configured secret"
        )
    return message_id
