"""Redaction: credentials out of every text that leaves the process.

One function, :func:`redact`, is applied to every exit reason, exception message and
traceback before it is logged, exported on a span, shown in the console or stored in
a dead letter. It costs time linear in the text's length and looks at most
:data:`REDACT_LIMIT` characters of it, so even a megabyte-long reason is redacted in
milliseconds, on the event loop.

otpy's own loggers (:func:`get_logger`) carry :class:`RedactingFilter`, which
redacts each record before any handler sees it, the user's handlers included: the
message, the ``otpy_report`` fields, and the traceback, which the record then holds
as redacted text (``record.exc_text``) instead of the exception (``exc_info`` is
``None``), so no formatter can render the original message again.

This module sits below the core (next to ``_exceptions``), so every layer may use it.
"""

from __future__ import annotations

import logging
import re
import traceback
from typing import Final

__all__ = [
    "REDACTED",
    "REDACT_LIMIT",
    "RedactingFilter",
    "format_exception",
    "get_logger",
    "redact",
]

REDACTED: Final = "[redacted]"
"""What a credential is replaced with."""

REDACT_LIMIT: Final = 65_536
"""The most characters of one text that :func:`redact` keeps; the rest is cut."""

_MARGIN = 4_096  # how far past the limit a credential cut in two is looked for

# Three passes, in this order, each linear: every pattern starts on a keyword (or, for
# URLs, at the start of a run of scheme characters, by the lookbehind) and every
# repetition is possessive over a class the next token cannot match, so a failed
# attempt never backtracks and no start position re-scans the text.
_TOKENS = re.compile(
    r"(?i)\b(bearer|basic)\s++[A-Za-z0-9._~+/=-]{6,}+"
    # "Token <secret>" (DRF-style): only secret-looking words, not "token bucket"
    r"|\b(token)\s++(?=[A-Za-z0-9._~+/=-]*?\d)[A-Za-z0-9._~+/=-]{16,}+"
)
_KEY_VALUES = re.compile(
    r"(?i)\b(password|passwd|pwd|secret|token|api[_-]?key|access[_-]?key|auth|signature)"
    r"([\"']?+\s*+[=:]\s*+[\"']?+)[^\s\"'&,;()\[\]{}]++"
)
# A URL's whole user-info, with or without a password: "https://<token>@host" is how
# many services take a token. It ends at the authority's last "@", before any "/?#".
_URL_USERINFO = re.compile(
    r"(?i)(?<![a-z0-9+.-])([0-9+.-]*+[a-z][a-z0-9+.-]*+://)(?:[^/?#\s@]*+@)++"
)
# A URL's query or fragment parameter: "?access_token=...", "&X-Amz-Credential=...",
# "#id_token=...". The name is one run between separators, so starts never overlap;
# _SECRET_PARAMETER then decides whether the value goes.
_URL_PARAMETERS = re.compile(r"([?&#])([^=&?#\s]++)=([^&#\s\"'<>]++)")
_SECRET_PARAMETER = re.compile(
    r"(?i)token|secret|pass|pwd|key|sig|auth|credential|session|cookie|jwt|bearer"
)
_PATTERNS = (_TOKENS, _KEY_VALUES, _URL_USERINFO, _URL_PARAMETERS)


def _parameter(match: re.Match[str]) -> str:
    if _SECRET_PARAMETER.search(match[2]) is None:
        return match[0]
    return f"{match[1]}{match[2]}={REDACTED}"


def _scrub(text: str) -> str:
    text = _TOKENS.sub(lambda m: f"{m.group(1) or m.group(2)} {REDACTED}", text)
    text = _KEY_VALUES.sub(lambda m: f"{m.group(1)}{m.group(2)}{REDACTED}", text)
    text = _URL_USERINFO.sub(lambda m: f"{m.group(1)}{REDACTED}@", text)
    return _URL_PARAMETERS.sub(_parameter, text)


def _cut_point(text: str) -> int:
    """Where to cut *text* near the limit without cutting a credential in two."""
    window = text[: REDACT_LIMIT + _MARGIN]
    spans = sorted(m.span() for pattern in _PATTERNS for m in pattern.finditer(window))
    cut = REDACT_LIMIT
    for start, end in spans:
        if start < cut < end:
            cut = end
    return cut


def redact(text: str) -> str:
    """Return *text* with credentials replaced by ``[redacted]``.

    Covers ``Bearer``/``Basic``/``Token`` credentials, ``key=value`` pairs whose key
    names a secret (password, token, api_key, secret, signature...), a URL's
    user-info (``https://user:pass@host``, ``https://<token>@host``: all of it, up to
    the ``@``) and the values of a URL's query or fragment parameters whose name
    holds ``token``, ``secret``, ``pass``, ``key``, ``sig``, ``auth``, ``credential``,
    ``session``... (``?access_token=``, ``&X-Amz-Signature=``, ``#id_token=``).
    otpy applies it to every reason and exception text before it is stored, logged,
    exported or shown.

    Text longer than :data:`REDACT_LIMIT` (65,536) characters is cut there first
    (a little later if a credential straddles that point) and ends with a marker
    saying how many characters were cut: a reason is for people to read, and the
    cut keeps the time spent linear and small, whatever the input.

    Args:
        text: The text to redact.

    Returns:
        The redacted text, at most about :data:`REDACT_LIMIT` characters long.

    .. versionchanged:: 0.1.0
       Linear in the text's length, and texts longer than :data:`REDACT_LIMIT`
       characters are cut. A URL's user-info is redacted without a password too,
       and so are its secret-named query and fragment parameters.
    """
    if len(text) <= REDACT_LIMIT:
        return _scrub(text)
    cut = _cut_point(text)
    return f"{_scrub(text[:cut])}… [{len(text) - cut:,} more characters cut]"


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:
        return "<unprintable message>"


def format_exception(exc: BaseException) -> str:
    """Return *exc*'s traceback, as logging formats one, with every message redacted.

    The messages of chained exceptions (``__cause__``, ``__context__``), of the members
    of exception groups, and notes are redacted one part at a time, so a long message
    does not push the rest of the traceback out.

    Args:
        exc: The exception, with its ``__traceback__``.

    Returns:
        The redacted traceback, without a trailing newline.
    """
    parts = traceback.TracebackException(type(exc), exc, exc.__traceback__).format()
    text = "".join(redact(part) for part in parts)
    return text.removesuffix("\n")


def _redact_value(value: object) -> object:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redact_value(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_redact_value(item) for item in value]
    return value


class RedactingFilter(logging.Filter):
    """Redacts a log record in place before any handler formats it.

    The message (after ``%`` formatting) and the string fields of an ``otpy_report``
    are redacted. An exception in ``exc_info`` becomes its redacted traceback in
    ``exc_text``, which every :class:`logging.Formatter` prints, and ``exc_info`` is
    cleared so no handler can format the original message; its class and redacted
    message stay available as ``record.otpy_exception`` (``type``, ``message``).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        """Redact *record*; always let it through."""
        try:
            message = record.getMessage()
        except Exception:  # a bad format string: the handler reports it as usual
            message = None
        if message is not None:
            redacted = redact(message)
            if redacted != message:
                record.msg, record.args = redacted, ()
        exc_info = record.exc_info
        if exc_info:
            exc = exc_info[1]
            if exc is not None:
                record.exc_text = format_exception(exc)
                record.otpy_exception = {
                    "type": f"{type(exc).__module__}.{type(exc).__qualname__}",
                    "message": redact(_message(exc)),
                }
            record.exc_info = None
        report = getattr(record, "otpy_report", None)
        if report is not None:
            record.otpy_report = _redact_value(report)
        return True


_FILTER: Final = RedactingFilter()


def get_logger(name: str) -> logging.Logger:
    """Return the logger *name*, with otpy's :class:`RedactingFilter` on it.

    Every logger otpy logs to comes from here: a filter on a logger applies only to
    records logged to that logger itself, not to those of its children.
    """
    logger = logging.getLogger(name)
    if not any(isinstance(f, RedactingFilter) for f in logger.filters):
        logger.addFilter(_FILTER)
    return logger
