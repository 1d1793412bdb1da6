"""Redaction: linear on any input, cut to a documented limit, and applied to every text that leaves."""

from __future__ import annotations

import re

import pytest

from otpy._redact import _scrub as redact_whole
from otpy.deadletter import redact

LIMIT = 65_536  # documented in docs/dead-letters.md
MB = 1 << 20


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # a run of scheme characters never followed by "://": every start position
        # used to re-scan the rest of the run (27 s for 40,000 characters)
        ("a" * LIMIT, "a" * LIMIT),
        ("1a" * (LIMIT // 2), "1a" * (LIMIT // 2)),
        # a keyword followed by a long run that the lookahead or the separator rejects
        ("token " + "x" * (LIMIT - 6), "token " + "x" * (LIMIT - 6)),
        ("password" + " " * (LIMIT - 8), "password" + " " * (LIMIT - 8)),
        # URLs whose user-info never ends in "@"
        ("x://" + "a:" * ((LIMIT - 4) // 2), "x://" + "a:" * ((LIMIT - 4) // 2)),
    ],
)
def test_redact_is_linear_on_pathological_text_within_the_limit(text: str, expected: str) -> None:
    """Texts that made the old patterns backtrack quadratically come back unchanged, at once."""
    assert redact(text) == expected


@pytest.mark.parametrize(
    "filler",
    ["a", "1a", " ", "a:", "x://a:", "password= ", "Bearer ", "token "],
)
def test_a_megabyte_is_cut_to_the_limit_with_a_marker(filler: str) -> None:
    """A 1 MB text keeps its first 65,536 characters (redacted) and says how much was cut."""
    text = filler * (MB // len(filler))
    result = redact(text)
    match = re.fullmatch(r"(?s)(.*)… \[([\d,]+) more characters cut\]", result)
    assert match is not None
    kept, cut = match[1], int(match[2].replace(",", ""))
    assert cut > len(text) - LIMIT - 4096
    assert kept == redact_whole(text[: len(text) - cut])


def test_secrets_before_the_cut_are_redacted_in_a_megabyte_of_text() -> None:
    """A secret at the start of a 1 MB reason is redacted; the rest is cut, never scanned."""
    text = "login failed: password=hunter2 " + "x" * MB + " token=late"
    result = redact(text)
    assert result.startswith("login failed: password=[redacted] xxx")
    assert "hunter2" not in result
    assert "late" not in result
    assert result.endswith(f"… [{len(text) - LIMIT:,} more characters cut]")


@pytest.mark.parametrize(
    "secret",
    [
        "Bearer abcdefghijklmnop",
        "password=hunter2hunter2",
        "https://bob:pw0123456789@host",
        "Token 9944b09199c62bcf9418ad846dd0e4bb",
    ],
)
def test_the_cut_never_splits_a_credential(secret: str) -> None:
    """A credential straddling the limit is kept whole and redacted, not cut into a readable half."""
    for offset in range(1, len(secret)):
        text = "x" * (LIMIT - offset - 1) + " " + secret + " tail" * MB
        assert text.index(secret) + offset == LIMIT
        result = redact(text)
        assert "[redacted]" in result[-200:], offset
        for piece in ("hunter2", "ghijklmnop", "pw0123", "9944b0919"):
            assert piece not in result, (offset, piece)
