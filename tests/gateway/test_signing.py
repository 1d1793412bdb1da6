"""Standard Webhooks signing and verification: exact signatures, rotation, tolerance, secrecy (GW-10)."""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import TYPE_CHECKING

import pytest
from hypothesis import given
from hypothesis import strategies as st

from otpy import InvalidArgument, InvalidArgumentType, SignatureError
from otpy.gateway._signing import (
    SigningSecret,
    sign,
    verify,
    webhook_headers,
)

if TYPE_CHECKING:
    from collections.abc import Callable

    Tamper = Callable[[dict[str, str], bytes], tuple[dict[str, str], bytes]]

# The Standard Webhooks reference libraries' own test vector.
VECTOR_SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
VECTOR_ID = "msg_p5jXN8AQM9LWM0D4loKWxJek"
VECTOR_TIMESTAMP = 1614265330
VECTOR_BODY = b'{"test": 2432232314}'
VECTOR_SIGNATURE = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="

KEY_A = bytes(range(32))
KEY_B = bytes(range(100, 132))
KEY_C = bytes(range(200, 232))
A, B, C = SigningSecret(KEY_A), SigningSecret(KEY_B), SigningSecret(KEY_C)

NOW = 1_700_000_000
BODY = b'{"type":"invoice.paid","data":{"id":42}}'


def reference(key: bytes, message_id: str, timestamp: int, body: bytes) -> str:
    """The signature computed straight from the spec, independently of the module."""
    content = message_id.encode() + b"." + str(timestamp).encode() + b"." + body
    return "v1," + base64.b64encode(hmac.new(key, content, hashlib.sha256).digest()).decode()


def signed(
    *secrets: SigningSecret, message_id: str = "msg_1", timestamp: int = NOW, body: bytes = BODY
) -> dict[str, str]:
    """Headers for a request signed with *secrets*."""
    return webhook_headers(message_id, timestamp, body, secrets)


# --- signing -------------------------------------------------------------------------


def test_sign_matches_the_published_test_vector() -> None:
    """The reference libraries' vector signs to exactly their published signature."""
    signature = sign(
        [SigningSecret(VECTOR_SECRET)],
        message_id=VECTOR_ID,
        timestamp=VECTOR_TIMESTAMP,
        body=VECTOR_BODY,
    )
    assert signature == VECTOR_SIGNATURE


def test_sign_matches_an_independent_computation() -> None:
    """A hand-built HMAC over id.timestamp.body agrees with sign, byte for byte."""
    assert sign([A], message_id="evt_7", timestamp=NOW, body=BODY) == reference(
        KEY_A, "evt_7", NOW, BODY
    )
    assert reference(KEY_A, "evt_7", NOW, BODY) == "v1,Cbyo+rvjYX9Wq7Nnbf2IBdAM3YKm9jNF4wIIDeNhB/4="


@given(
    key=st.binary(min_size=24, max_size=80),
    message_id=st.text(
        st.characters(min_codepoint=0x21, max_codepoint=0x7E, blacklist_characters="."),
        min_size=1,
        max_size=40,
    ),
    timestamp=st.integers(min_value=0, max_value=2**40),
    body=st.binary(max_size=200),
)
def test_sign_agrees_with_the_reference_and_verifies(
    key: bytes, message_id: str, timestamp: int, body: bytes
) -> None:
    """For any key, id, time and body, sign equals the reference and verify accepts it."""
    secret = SigningSecret(key)
    assert sign([secret], message_id=message_id, timestamp=timestamp, body=body) == reference(
        key, message_id, timestamp, body
    )
    headers = webhook_headers(message_id, timestamp, body, [secret])
    assert verify([secret], headers=headers, body=body, now=timestamp) == message_id


def test_sign_gives_one_entry_per_secret_in_order() -> None:
    """Two secrets give two space-separated v1 entries, in the order given."""
    header = sign([A, B], message_id="msg_1", timestamp=NOW, body=BODY)
    assert header == (
        f"{reference(KEY_A, 'msg_1', NOW, BODY)} {reference(KEY_B, 'msg_1', NOW, BODY)}"
    )
    assert sign([B, A], message_id="msg_1", timestamp=NOW, body=BODY).split() == list(
        reversed(header.split())
    )


def test_empty_body_is_signed() -> None:
    """An empty body is signed over 'id.timestamp.' alone."""
    assert sign([A], message_id="m", timestamp=0, body=b"") == reference(KEY_A, "m", 0, b"")


def test_webhook_headers_with_and_without_secrets() -> None:
    """The id and timestamp are always there; the signature only when there are secrets."""
    assert webhook_headers("msg_1", NOW, BODY) == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
    }
    assert webhook_headers("msg_1", NOW, BODY, [A]) == {
        "webhook-id": "msg_1",
        "webhook-timestamp": "1700000000",
        "webhook-signature": reference(KEY_A, "msg_1", NOW, BODY),
    }


@pytest.mark.parametrize(
    ("message_id", "match"),
    [
        ("", r"^sign: message_id must not be empty"),
        ("   ", r"^sign: message_id must be printable ASCII without spaces"),
        ("msg 1", r"^sign: message_id must be printable ASCII without spaces"),
        ("msg\n1", r"^sign: message_id must be printable ASCII without spaces"),
        ("msgé", r"^sign: message_id must be printable ASCII without spaces"),
        ("msg.1", r"^sign: message_id must not contain '\.'"),
    ],
)
def test_sign_refuses_bad_ids(message_id: str, match: str) -> None:
    """Empty, spaced, non-ASCII and dotted ids are refused, naming message_id."""
    with pytest.raises(InvalidArgument, match=match):
        sign([A], message_id=message_id, timestamp=NOW, body=BODY)


def test_sign_refuses_bad_arguments() -> None:
    """No secrets, a bare secret, a bad timestamp or a text body are refused by name."""
    with pytest.raises(InvalidArgument, match=r"^sign: secrets must hold at least one"):
        sign([], message_id="m", timestamp=NOW, body=BODY)
    with pytest.raises(InvalidArgumentType, match=r"^sign: secrets .* wrap it in a list"):
        sign(A, message_id="m", timestamp=NOW, body=BODY)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match=r"^sign: secrets must hold only SigningSecret"):
        sign([VECTOR_SECRET], message_id="m", timestamp=NOW, body=BODY)  # type: ignore[list-item]
    with pytest.raises(InvalidArgumentType, match=r"^sign: secrets must be a sequence"):
        sign(VECTOR_SECRET, message_id="m", timestamp=NOW, body=BODY)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^sign: timestamp must be Unix seconds >= 0"):
        sign([A], message_id="m", timestamp=-1, body=BODY)
    with pytest.raises(InvalidArgumentType, match=r"^sign: timestamp must be an integer"):
        sign([A], message_id="m", timestamp=1.5, body=BODY)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match=r"^sign: timestamp must be an integer"):
        sign([A], message_id="m", timestamp=True, body=BODY)
    with pytest.raises(InvalidArgumentType, match=r"^sign: message_id must be a string, got int"):
        sign([A], message_id=7, timestamp=NOW, body=BODY)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgumentType, match=r"^sign: body must be the request body as bytes"):
        sign([A], message_id="m", timestamp=NOW, body="text")  # type: ignore[arg-type]


def test_webhook_headers_checks_its_arguments_without_secrets() -> None:
    """An unsigned request's id is checked as strictly as a signed one's."""
    with pytest.raises(InvalidArgument, match=r"^webhook_headers: message_id must not contain"):
        webhook_headers("a.b", NOW, BODY)


# --- secrets -------------------------------------------------------------------------


def test_secret_from_text_and_bytes_are_equal() -> None:
    """whsec_ text decodes to the key; the same key as bytes gives an equal secret."""
    secret = SigningSecret(VECTOR_SECRET)
    key = base64.b64decode("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw")
    assert secret.key == key
    assert secret == SigningSecret(key)
    assert secret == SigningSecret(bytearray(key))
    assert secret.text == VECTOR_SECRET
    assert SigningSecret(f"  {VECTOR_SECRET}\n") == secret  # a file's trailing newline


def test_generated_secrets_are_32_random_bytes_that_round_trip() -> None:
    """generate() gives a fresh 32-byte key whose text builds the same secret."""
    one, two = SigningSecret.generate(), SigningSecret.generate()
    assert len(one.key) == 32
    assert one != two
    assert one.text.startswith("whsec_")
    assert SigningSecret(one.text) == one


@pytest.mark.parametrize(
    ("value", "match"),
    [
        ("", r"must not be empty"),
        ("   ", r"must not be empty"),
        ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", r"must be text starting with 'whsec_'"),
        ("whsec_", r"at least 24 bytes, got 0 bytes"),
        ("whsec_not base64 at all!!", r"must be valid base64 after 'whsec_'"),
        ("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaS", r"must be valid base64"),  # bad padding
        ("whsec_" + base64.b64encode(bytes(23)).decode(), r"at least 24 bytes, got 23 bytes"),
        (bytes(23), r"at least 24 bytes, got 23 bytes"),
        (b"", r"at least 24 bytes, got 0 bytes"),
    ],
)
def test_bad_secrets_are_refused_naming_the_argument(value: str | bytes, match: str) -> None:
    """Empty, unprefixed, non-base64 and short secrets fail when built, naming secret."""
    with pytest.raises(InvalidArgument, match=r"^SigningSecret: secret ") as info:
        SigningSecret(value)
    assert info.match(match)
    encoded = value.strip().removeprefix("whsec_") if isinstance(value, str) else ""
    if len(encoded) > 4:
        assert encoded not in str(info.value)


def test_a_secret_of_the_wrong_type_is_a_type_error() -> None:
    """A number is neither text nor bytes."""
    with pytest.raises(InvalidArgumentType, match=r"^SigningSecret: secret must be 'whsec_' text"):
        SigningSecret(12345)  # type: ignore[arg-type]


def test_exactly_24_bytes_is_enough() -> None:
    """The spec's minimum, 24 bytes, is accepted (the vector's key is that long)."""
    assert len(SigningSecret(bytes(24)).key) == 24
    assert len(SigningSecret(VECTOR_SECRET).key) == 24


def test_repr_and_str_never_show_the_key() -> None:
    """Neither repr nor str, nor a container's repr, shows the key or its base64."""
    secret = SigningSecret(VECTOR_SECRET)
    for text in (repr(secret), str(secret), repr([secret]), f"{secret}", f"{secret!r}"):
        assert "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw" not in text
        assert repr(secret.key) not in text
        assert secret.key.hex() not in text
    assert repr(secret) == str(secret) == "SigningSecret(whsec_…<redacted>)"


# --- verification --------------------------------------------------------------------


def test_verify_returns_the_message_id() -> None:
    """A request signed with the configured secret verifies; the id comes back."""
    assert verify([A], headers=signed(A), body=BODY, now=NOW) == "msg_1"


def test_verify_accepts_the_published_vector() -> None:
    """The reference vector's headers verify at its own time."""
    headers = {
        "webhook-id": VECTOR_ID,
        "webhook-timestamp": str(VECTOR_TIMESTAMP),
        "webhook-signature": VECTOR_SIGNATURE,
    }
    secret = SigningSecret(VECTOR_SECRET)
    assert verify([secret], headers=headers, body=VECTOR_BODY, now=VECTOR_TIMESTAMP) == VECTOR_ID


def test_rotation_either_secret_alone_verifies_an_unknown_one_does_not() -> None:
    """Signed with A and B: a receiver knowing A, or B, accepts; one knowing only C refuses."""
    headers = signed(A, B)
    assert verify([A], headers=headers, body=BODY, now=NOW) == "msg_1"
    assert verify([B], headers=headers, body=BODY, now=NOW) == "msg_1"
    assert verify([C, B], headers=headers, body=BODY, now=NOW) == "msg_1"
    with pytest.raises(SignatureError, match="no webhook-signature v1 entry matches") as info:
        verify([C], headers=headers, body=BODY, now=NOW)
    assert info.value.reason == "no_match"


def test_receiver_rotating_accepts_the_old_secret() -> None:
    """A receiver configured with new and old keys accepts a sender still on the old one."""
    assert verify([B, A], headers=signed(A), body=BODY, now=NOW) == "msg_1"


@pytest.mark.parametrize(
    "tamper",
    [
        pytest.param(lambda h, b: (h, b + b" "), id="body"),
        pytest.param(lambda h, b: ({**h, "webhook-id": "msg_2"}, b), id="id"),
        pytest.param(lambda h, b: ({**h, "webhook-timestamp": str(NOW + 1)}, b), id="timestamp"),
    ],
)
def test_tampering_with_body_id_or_timestamp_fails(tamper: Tamper) -> None:
    """Changing any signed part makes the signature fail to match."""
    headers, body = tamper(signed(A), BODY)
    with pytest.raises(SignatureError) as info:
        verify([A], headers=headers, body=body, now=NOW)
    assert info.value.reason == "no_match"


def test_a_flipped_signature_bit_fails() -> None:
    """The last base64 character changed: not a match."""
    headers = signed(A)
    value = headers["webhook-signature"]
    headers["webhook-signature"] = value[:-2] + ("A" if value[-2] != "A" else "B") + "="
    with pytest.raises(SignatureError, match="no webhook-signature v1 entry matches"):
        verify([A], headers=headers, body=BODY, now=NOW)


@pytest.mark.parametrize(
    ("now", "passes"),
    [
        (NOW + 300, True),  # the timestamp exactly 5 minutes old
        (NOW + 301, False),  # one second more
        (NOW - 300, True),  # exactly 5 minutes in the future
        (NOW - 301, False),
        (NOW + 300.5, False),  # half a second past, with a fractional now
    ],
)
def test_default_tolerance_is_five_minutes_both_ways(now: float, passes: bool) -> None:
    """Exactly 300 s either way passes; a second beyond fails as too old or too new."""
    if passes:
        assert verify([A], headers=signed(A), body=BODY, now=now) == "msg_1"
        return
    with pytest.raises(SignatureError) as info:
        verify([A], headers=signed(A), body=BODY, now=now)
    assert info.value.reason == ("too_old" if now > NOW else "too_new")


def test_timestamp_errors_say_how_far_off() -> None:
    """The message says past or future, by how much, and the tolerance."""
    with pytest.raises(SignatureError, match=r"is 301s in the past, more than the 300s allowed"):
        verify([A], headers=signed(A), body=BODY, now=NOW + 301)
    with pytest.raises(SignatureError, match=r"is 11s in the future, more than the 10s allowed"):
        verify([A], headers=signed(A), body=BODY, now=NOW - 11, tolerance=10)


def test_zero_tolerance_accepts_only_the_same_second() -> None:
    """With tolerance 0 only now == timestamp passes."""
    assert verify([A], headers=signed(A), body=BODY, now=NOW, tolerance=0) == "msg_1"
    with pytest.raises(SignatureError, match="in the past"):
        verify([A], headers=signed(A), body=BODY, now=NOW + 1, tolerance=0)


def test_the_timestamp_is_checked_even_with_a_valid_signature() -> None:
    """A correctly signed but replayed request an hour later is refused."""
    with pytest.raises(SignatureError) as info:
        verify([A], headers=signed(A), body=BODY, now=NOW + 3600)
    assert info.value.reason == "too_old"


def test_entries_of_other_versions_are_ignored() -> None:
    """v1a and v2 entries around the valid v1 do not matter; alone they are no signature."""
    valid = reference(KEY_A, "msg_1", NOW, BODY)
    other = valid.removeprefix("v1,")
    headers = {**signed(), "webhook-signature": f"v1a,{other} v2,{other}  {valid} v1,bm9wZQ=="}
    assert verify([A], headers=headers, body=BODY, now=NOW) == "msg_1"
    headers["webhook-signature"] = f"v1a,{other} v2,{other} V1,{other}"
    with pytest.raises(SignatureError, match="webhook-signature header has no v1 entry") as info:
        verify([A], headers=headers, body=BODY, now=NOW)
    assert info.value.reason == "no_signature"


def test_garbage_signature_entries_do_not_crash() -> None:
    """Non-ASCII and malformed entries are compared safely and simply do not match."""
    headers = {**signed(), "webhook-signature": "v1,é\udcff v1, v1,,, , ,v1"}
    with pytest.raises(SignatureError, match="matches"):
        verify([A], headers=headers, body=BODY, now=NOW)


def test_header_names_match_whatever_their_case() -> None:
    """Webhook-Id, WEBHOOK-TIMESTAMP and friends are found."""
    headers = signed(A)
    upper = {name.upper(): value for name, value in headers.items()}
    title = {name.title(): value for name, value in headers.items()}
    assert verify([A], headers=upper, body=BODY, now=NOW) == "msg_1"
    assert verify([A], headers=title, body=BODY, now=NOW) == "msg_1"


def test_the_same_header_twice_must_agree() -> None:
    """Two spellings of one header with the same value pass; different values are refused."""
    headers = signed(A)
    same = {**headers, "Webhook-Id": "msg_1"}
    assert verify([A], headers=same, body=BODY, now=NOW) == "msg_1"
    clash = {**headers, "Webhook-Id": "msg_2"}
    with pytest.raises(SignatureError, match="webhook-id header is given twice") as info:
        verify([A], headers=clash, body=BODY, now=NOW)
    assert info.value.reason == "bad_header"


@pytest.mark.parametrize("name", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_named(name: str) -> None:
    """Each of the three headers is required, and the error names the one missing."""
    headers = signed(A)
    del headers[name]
    with pytest.raises(
        SignatureError, match=rf"^webhook signature rejected: {name} header is missing$"
    ) as info:
        verify([A], headers=headers, body=BODY, now=NOW)
    assert info.value.reason == "missing_header"


@pytest.mark.parametrize(
    "stamp",
    [
        "hello",
        "",
        "-5",
        "+1700000000",
        " 1700000000",
        "1700000000.0",
        "1_700_000_000",
        "\u0661\u0667",  # Arabic-Indic digits: isdigit() but not ASCII
        "9" * 17,
    ],
)
def test_a_malformed_timestamp_is_refused(stamp: str) -> None:
    """Only ASCII digits are Unix seconds: no sign, space, dot, underscore or other digits."""
    headers = {**signed(A), "webhook-timestamp": stamp}
    with pytest.raises(
        SignatureError, match=r"webhook-timestamp header is not integer Unix seconds"
    ) as info:
        verify([A], headers=headers, body=BODY, now=NOW)
    assert info.value.reason == "bad_header"


@pytest.mark.parametrize(
    ("message_id", "problem"),
    [
        ("", "must not be empty"),
        ("a.b", "must not contain '.'"),
        ("a b", "must be printable ASCII"),
    ],
)
def test_a_malformed_id_is_refused(message_id: str, problem: str) -> None:
    """An empty, dotted or spaced webhook-id is refused before any signature is computed."""
    headers = {**signed(A), "webhook-id": message_id}
    with pytest.raises(SignatureError, match=rf"webhook-id header {problem}") as info:
        verify([A], headers=headers, body=BODY, now=NOW)
    assert info.value.reason == "bad_header"


def test_signature_errors_never_echo_secrets_or_signatures() -> None:
    """No failure message shows a key, its base64 or the signature given or expected."""
    secret = SigningSecret(VECTOR_SECRET)
    headers = signed(A)
    expected = reference(secret.key, "msg_1", NOW, BODY).removeprefix("v1,")
    given_signature = headers["webhook-signature"].removeprefix("v1,")
    with pytest.raises(SignatureError) as info:
        verify([secret], headers=headers, body=BODY, now=NOW)
    message = str(info.value)
    for secret_text in ("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", expected, given_signature):
        assert secret_text not in message
    assert isinstance(info.value, ValueError)


def test_verify_refuses_bad_arguments_as_caller_bugs() -> None:
    """Bad secrets, body, now or tolerance are InvalidArgument, not a SignatureError."""
    headers = signed(A)
    with pytest.raises(InvalidArgument, match=r"^verify: secrets must hold at least one"):
        verify([], headers=headers, body=BODY, now=NOW)
    with pytest.raises(InvalidArgumentType, match=r"^verify: body must be the request body"):
        verify([A], headers=headers, body="text", now=NOW)  # type: ignore[arg-type]
    with pytest.raises(InvalidArgument, match=r"^verify: now must be a finite number"):
        verify([A], headers=headers, body=BODY, now=float("nan"))
    with pytest.raises(InvalidArgument, match=r"^verify: tolerance must be a finite number"):
        verify([A], headers=headers, body=BODY, now=NOW, tolerance=-1)
    with pytest.raises(InvalidArgument, match=r"^verify: tolerance must be a finite number"):
        verify([A], headers=headers, body=BODY, now=NOW, tolerance=float("inf"))
    with pytest.raises(InvalidArgumentType, match=r"^verify: headers must map names to str"):
        verify([A], headers={**headers, "webhook-id": b"msg_1"}, body=BODY, now=NOW)  # type: ignore[dict-item]
    with pytest.raises(InvalidArgumentType, match=r"^verify: headers must be a mapping"):
        verify([A], headers=[("webhook-id", "x")], body=BODY, now=NOW)  # type: ignore[arg-type]
