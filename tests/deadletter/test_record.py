"""The dead-letter record: validation, redaction, ids, and round trips through both stores (DL-1)."""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import attrs
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import otpy
from otpy import InvalidDeadLetter
from otpy.deadletter import (
    MAX_ATTRIBUTES,
    MAX_ATTRIBUTES_SIZE,
    Category,
    DeadLetter,
    DeadLetterFilter,
    DeadLetterStore,
    Diagnostics,
    MemoryDeadLetterStore,
    ReplayOutcome,
    ReplayState,
    ReplayStatus,
    Source,
    SQLiteDeadLetterStore,
    Status,
    new_id,
    redact,
    redact_attributes,
    redact_headers,
)
from otpy.deadletter._record import MAX_COUNT, MAX_TIME

if TYPE_CHECKING:
    import enum
    from collections.abc import AsyncIterator
    from pathlib import Path

T0 = 1_700_000_000.0
INLINE_LIMIT = 64  # small, so payloads on both sides of it are cheap to generate
_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def id_millis(record_id: str) -> int:
    """The millisecond timestamp encoded in the first 48 bits of an id."""
    value = 0
    for char in record_id:
        value = value * 32 + _CROCKFORD.index(char)
    return value >> 80


def record(**changes: Any) -> DeadLetter:
    """A valid record at T0 with *changes* applied."""
    fields: dict[str, Any] = {
        "id": new_id(T0),
        "key": "dest",
        "source": Source.OUTBOUND,
        "reason_class": "TimeoutError",
        "payload": b"body",
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return DeadLetter(**fields)


# -- round trips ----------------------------------------------------------------------

# The widest values the constructor accepts: any text that encodes as UTF-8, any
# count SQLite's INTEGER holds, any time from 0 to MAX_TIME (ints too), enums or
# their values, pairs as tuples, lists or mappings.
texts = st.text(max_size=40)
optional_texts = st.none() | texts
pair_lists = st.lists(st.tuples(texts, texts), max_size=6)
pairs = (
    pair_lists.map(tuple)
    | pair_lists.map(lambda p: [list(x) for x in p])
    | st.dictionaries(texts, texts, max_size=6)
)
# Attribute names as ATTRIBUTE_NAME allows them (hypothesis reads no possessive regex).
attribute_names = st.from_regex(
    r"[a-z][a-z0-9_]{0,8}(\.[a-z0-9_][a-z0-9_-]{0,8}){0,3}", fullmatch=True
)
attribute_maps = st.dictionaries(attribute_names, texts, max_size=6)
attribute_sets = (
    attribute_maps
    | attribute_maps.map(lambda a: tuple(a.items()))
    | attribute_maps.map(lambda a: [[name, value] for name, value in a.items()])
)
counts = st.integers(min_value=0, max_value=MAX_COUNT)
times = st.floats(min_value=0, max_value=MAX_TIME, exclude_max=True) | st.integers(
    min_value=0, max_value=int(MAX_TIME) - 1
)
optional_times = st.none() | times


def members(kind: type[enum.StrEnum]) -> st.SearchStrategy[object]:
    """An enum's members, or their string values."""
    return st.sampled_from(kind) | st.sampled_from([member.value for member in kind])


# What a careless caller passes instead: NaN and infinities, lone surrogates, huge
# and negative numbers, bools, values of the wrong type.
wild_texts = st.text(alphabet=st.characters(codec=None, exclude_categories=()), max_size=10)
wild = st.one_of(
    st.floats(),
    st.sampled_from([math.nan, math.inf, -math.inf, -0.0, MAX_TIME, 1e20, -1.0]),
    st.integers(),
    st.sampled_from([2**63, -(2**63), 2**64]),
    st.booleans(),
    st.none(),
    wild_texts,
    st.binary(max_size=8),
    st.lists(st.tuples(wild_texts, wild_texts), max_size=3),
    st.just(object()),
)


@st.composite
def record_fields(draw: st.DrawFn) -> dict[str, Any]:
    """Fields of an arbitrary record: every enum value, optional fields set or not, any bytes.

    One field in four examples (nested ones included) is replaced by a wild value,
    which the constructor must either refuse or store faithfully.
    """
    created, updated = sorted([draw(times), draw(times)])
    diagnostics: dict[str, Any] = {
        "pressure_level": draw(optional_texts),
        "queue_depth": draw(st.none() | counts),
        "queue_capacity": draw(st.none() | counts),
    }
    replay: dict[str, Any] = {
        "status": draw(members(ReplayStatus)),
        "attempts": draw(counts),
        "last_attempt_at": draw(optional_times),
        "last_outcome": draw(st.none() | members(ReplayOutcome)),
        "last_error": draw(optional_texts),
        "lease_expires_at": draw(optional_times),
    }
    fields: dict[str, Any] = {
        "id": new_id(),  # not drawn: one store serves every example, and ids must not repeat
        "key": draw(st.text(min_size=1, max_size=40)),
        "source": draw(members(Source)),
        "reason_class": draw(st.text(min_size=1, max_size=40)),
        "reason": draw(texts),
        "category": draw(members(Category)),
        "correlation_id": draw(optional_texts),
        "idempotency_key": draw(optional_texts),
        "attempt": draw(counts),
        "max_attempts": draw(counts),
        "payload": draw(
            st.none()
            | st.binary(max_size=INLINE_LIMIT)
            | st.binary(min_size=INLINE_LIMIT + 1, max_size=4 * INLINE_LIMIT)
        ),
        "content_type": draw(texts),
        "headers": draw(pairs),
        "trace_context": draw(pairs),
        "attributes": draw(attribute_sets),
        "status": draw(members(Status)),
        "created_at": created,
        "updated_at": updated,
    }
    if draw(st.integers(0, 3)) == 0:
        target = draw(st.sampled_from([fields, diagnostics, replay]))
        target[draw(st.sampled_from(sorted(target)))] = draw(wild)
    return {**fields, "diagnostics": diagnostics, "replay": replay}


def build(fields: dict[str, Any]) -> DeadLetter:
    """The record *fields* describe."""
    return DeadLetter(
        **{
            **fields,
            "diagnostics": Diagnostics(**fields["diagnostics"]),
            "replay": ReplayState(**fields["replay"]),
        }
    )


def as_listed(original: DeadLetter) -> DeadLetter:
    """What a listing shows of *original*: large payloads are left out."""
    if original.payload is not None and len(original.payload) > INLINE_LIMIT:
        return attrs.evolve(original, payload=None)
    return original


@pytest.fixture
def anyio_backend() -> str:
    """Round trips run on asyncio: aiosqlite needs it."""
    return "asyncio"


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[DeadLetterStore]:
    """One store of each kind, shared by all of a test's examples."""
    if request.param == "memory":
        memory = MemoryDeadLetterStore(inline_limit=INLINE_LIMIT)
        yield memory
        await memory.aclose()
    else:
        sqlite = await SQLiteDeadLetterStore.open(
            tmp_path / "dead.db", synchronous="OFF", inline_limit=INLINE_LIMIT
        )
        yield sqlite
        await sqlite.aclose()


def fields_with(**changes: Any) -> dict[str, Any]:
    """The fields of a plain record, with *changes*; ``replay``/``diagnostics`` changes are dicts."""
    fields: dict[str, Any] = {
        "id": new_id(),
        "key": "dest",
        "source": Source.OUTBOUND,
        "reason_class": "TimeoutError",
        "payload": b"body",
        "created_at": T0,
        "updated_at": T0,
        "diagnostics": {},
        "replay": {},
    }
    for name in ("diagnostics", "replay"):
        fields[name] = {**fields[name], **changes.pop(name, {})}
    return {**fields, **changes}


# Values that once were accepted and then lost, or crashed the writer: they get the
# property below every time, whatever hypothesis draws.
KNOWN_BAD = [
    fields_with(created_at=math.nan, updated_at=math.nan),
    fields_with(replay={"lease_expires_at": math.nan}),
    fields_with(key="dest\ud800"),
    fields_with(headers=[("X-A", "\udc00")]),
    fields_with(attempt=2**63),
    fields_with(max_attempts=True),
    fields_with(payload=5),
]


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(fields=record_fields())
async def test_dl_1_any_record_round_trips_through_the_store(
    store: DeadLetterStore, fields: dict[str, Any]
) -> None:
    """DL-1: whatever the constructor accepts comes back from get exactly; listings drop only large payloads."""
    await check_round_trip(store, fields)


@pytest.mark.parametrize("fields", KNOWN_BAD)
async def test_dl_1_values_once_lost_are_refused_or_round_trip(
    store: DeadLetterStore, fields: dict[str, Any]
) -> None:
    """DL-1: NaN times, surrogates, counts beyond SQLite's and bools get the same property, every run."""
    await check_round_trip(store, fields)


async def check_round_trip(store: DeadLetterStore, fields: dict[str, Any]) -> None:
    """Build the record; if the constructor accepts it, both stores must give it back unchanged."""
    try:
        original = build(fields)
    except InvalidDeadLetter:
        return  # refused where it was given: nothing to store
    assert await store.add_many([original]) == 1
    assert await store.get(original.id) == original
    build_filter: Any = DeadLetterFilter  # see only_ids in test_store_contract.py
    page = await store.list(build_filter(ids=(original.id,)))
    assert page.records == (as_listed(original),)


async def test_dl_1_huge_headers_and_payload_round_trip(store: DeadLetterStore) -> None:
    """DL-1: a thousand headers, one of a megabyte, and a 2 MB payload come back intact."""
    headers = (*((f"X-H-{i}", "v" * i) for i in range(1000)), ("X-Big", "é" * 2**20))
    original = record(headers=headers, payload=bytes(range(256)) * 8192, key="ключ/🔑")
    assert await store.add_many([original]) == 1
    assert await store.get(original.id) == original


async def test_dl_1_empty_and_absent_payloads_stay_distinct(store: DeadLetterStore) -> None:
    """DL-1: an empty payload comes back as b'', an absent one (size 0) as None."""
    empty, absent = record(payload=b""), record(payload=None)
    await store.add_many([empty, absent])
    assert (await store.get(empty.id)).payload == b""
    assert (await store.get(absent.id)).payload is None


# -- validation -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad_id",
    ["", "short", "01HZZZZZZZZZZZZZZZZZZZZZZZ0", "01hzxyzxyzxyzxyzxyzxyzxyzx", "U" * 26],
)
def test_dl_1_malformed_id_is_refused(bad_id: str) -> None:
    """DL-1: an id that is not 26 Crockford characters (no I, L, O, U, no lowercase) is refused."""
    with pytest.raises(ValueError, match="is not a 26-character otpy id"):
        record(id=bad_id)


def test_dl_1_new_id_is_accepted() -> None:
    """DL-1 twin: ids from new_id are valid record ids."""
    assert record(id=new_id()).id


@pytest.mark.parametrize("field", ["key", "reason_class"])
def test_dl_1_empty_key_or_reason_class_is_refused(field: str) -> None:
    """DL-1: a record must say where it was going and what failed."""
    with pytest.raises(ValueError, match=f"^dead letter: {field} must not be empty$"):
        record(**{field: ""})


def test_dl_1_payload_size_must_match_the_payload() -> None:
    """DL-1: a payload_size that disagrees with the payload is refused."""
    with pytest.raises(ValueError, match=r"payload_size is 5 but the payload has 4 bytes"):
        record(payload=b"body", payload_size=5)


def test_dl_1_payload_size_defaults_to_the_payload_length() -> None:
    """DL-1 twin: payload_size is taken from the payload, and may be stated without one."""
    assert record(payload=b"body").payload_size == 4
    assert record(payload=None, payload_size=10).payload_size == 10
    assert not record(payload=None, payload_size=10).payload_loaded
    assert record(payload=None).payload_loaded


def test_dl_1_updated_before_created_is_refused() -> None:
    """DL-1: a record cannot change before it exists."""
    with pytest.raises(ValueError, match="updated_at is before created_at"):
        record(updated_at=T0 - 1)


@pytest.mark.parametrize("field", ["attempt", "max_attempts"])
def test_dl_1_negative_attempts_are_refused(field: str) -> None:
    """DL-1: attempt counts are never negative."""
    with pytest.raises(
        InvalidDeadLetter, match=rf"^dead letter: {field} must be >= 0 and < 2\*\*63, got -1$"
    ):
        record(**{field: -1})


def test_dl_1_negative_queue_depth_is_refused() -> None:
    """DL-1: diagnostics counts are never negative."""
    with pytest.raises(
        InvalidDeadLetter,
        match=r"^dead letter: diagnostics.queue_depth must be >= 0 and < 2\*\*63, got -1$",
    ):
        Diagnostics(queue_depth=-1)


def test_dl_1_unknown_source_is_refused() -> None:
    """DL-1: the source must be one otpy knows, so replay handlers can be found by it."""
    with pytest.raises(
        InvalidDeadLetter,
        match=r"^dead letter: source must be one of ingest, outbound, .*, got 'carrier_pigeon'$",
    ):
        record(source="carrier_pigeon")


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        (
            {"created_at": math.nan, "updated_at": math.nan},
            r"created_at must be a finite time >= 0 and < 253402300800 seconds since the "
            r"epoch \(the years 1970 to 9999\), got nan",
        ),
        ({"updated_at": math.inf}, r"updated_at must be a finite time .*, got inf"),
        ({"created_at": -1.0}, r"created_at must be a finite time .*, got -1.0"),
        ({"updated_at": 1e20}, r"updated_at must be a finite time .*, got 1e\+20"),
        ({"created_at": "now"}, r"created_at must be a number of seconds since the epoch, got str"),
        ({"attempt": True}, r"attempt must be an integer, got bool"),
        (
            {"max_attempts": 2**63},
            r"max_attempts must be >= 0 and < 2\*\*63, got 9223372036854775808",
        ),
        ({"attempt": 2**400}, r"attempt must be >= 0 and < 2\*\*63, got an integer of 401 bits"),
        ({"payload": None, "payload_size": 1.5}, r"payload_size must be an integer, got float"),
        (
            {"key": "dest\ud800"},
            r"key must be text that encodes as UTF-8, but it holds the lone surrogate '\\ud800' at index 4",
        ),
        ({"reason": b"bytes"}, r"reason must be a string, got bytes"),
        ({"reason_class": 5}, r"reason_class must be a string, got int"),
        ({"correlation_id": 5}, r"correlation_id must be a string, got int"),
        (
            {"headers": [("X-A", "\udc00")]},
            r"headers\[0\] value must be text that encodes as UTF-8",
        ),
        ({"headers": [("X-A", 5)]}, r"headers\[0\] value must be a string, got int"),
        ({"headers": ["ab"]}, r"headers\[0\] must be a \(name, value\) pair, got 'ab'"),
        (
            {"headers": "X-A: 1"},
            r"headers must be a mapping or an iterable of \(name, value\) string pairs, got str",
        ),
        ({"trace_context": {5: "x"}}, r"trace_context\[0\] name must be a string, got int"),
        ({"attributes": "url.full=x"}, r"attributes must be a mapping or an iterable of \("),
        ({"attributes": {"url.full": 5}}, r"attributes\[0\] value must be a string, got int"),
        (
            {"attributes": {"url.full": "x", "": "y"}},
            r"attributes\[1\] name must not be empty; it must be a dotted lowercase name",
        ),
        (
            {"attributes": [("URL", "x")]},
            r"attributes\[0\] name 'URL' must be a dotted lowercase name \(letters, digits "
            r"and '_'; '-' after the first dot\), such as 'otpy.ordering_key', "
            r"'http.request.method' or 'url.full'$",
        ),
        (
            {"attributes": [("url.full", "a"), ("http.request.method", "GET"), ("url.full", "b")]},
            r"attributes\[2\] name 'url.full' is given twice \(also at attributes\[0\]\); "
            r"give each name once$",
        ),
        ({"category": None}, r"category must be one of retryable, terminal, fatal, got None"),
        (
            {"status": Source.OUTBOUND},
            r"status must be one of active, archived, got <Source.OUTBOUND: 'outbound'>",
        ),
        ({"payload": bytearray(b"body")}, r"payload must be bytes or None, got bytearray"),
        ({"diagnostics": {"queue_depth": 1}}, r"diagnostics must be a Diagnostics, got dict"),
        ({"replay": None}, r"replay must be a ReplayState, got NoneType"),
        ({"id": new_id(T0) + "\n"}, r"id '.*\\n' is not a 26-character otpy id"),
        ({"id": 5}, r"id 5 is not a 26-character otpy id"),
    ],
)
def test_dl_1_invalid_fields_are_refused_by_name(changes: dict[str, Any], message: str) -> None:
    """DL-1: NaN, infinities, out-of-range counts, bools, surrogates and wrong types are refused, naming the field."""
    with pytest.raises(InvalidDeadLetter, match=f"^dead letter: {message}") as caught:
        record(**changes)
    assert isinstance(caught.value, otpy.DeadLetterError)
    assert isinstance(caught.value, ValueError)
    assert isinstance(caught.value, TypeError)
    assert caught.value.field.startswith(next(iter(changes)))


def test_dl_1_a_value_whose_repr_fails_is_still_refused_by_name() -> None:
    """DL-1: the error message survives a value that cannot describe itself."""

    class Unprintable:
        def __repr__(self) -> str:
            raise RuntimeError("no repr")

    with pytest.raises(
        InvalidDeadLetter,
        match=r"^dead letter: category must be one of .*, got <Unprintable instance at 0x",
    ):
        record(category=Unprintable())


@pytest.mark.parametrize(
    ("state", "message"),
    [
        ({"status": "bogus"}, r"replay.status must be one of never, running, "),
        ({"attempts": -1}, r"replay.attempts must be >= 0 and < 2\*\*63, got -1"),
        ({"last_attempt_at": math.nan}, r"replay.last_attempt_at must be a finite time"),
        ({"lease_expires_at": math.inf}, r"replay.lease_expires_at must be a finite time"),
        ({"last_outcome": "done"}, r"replay.last_outcome must be one of replayed, "),
        ({"last_error": "\ud800"}, r"replay.last_error must be text that encodes as UTF-8"),
    ],
)
def test_dl_1_invalid_replay_state_is_refused_by_name(state: dict[str, Any], message: str) -> None:
    """DL-1: the replay bookkeeping is checked like the record, its fields named replay.*."""
    with pytest.raises(InvalidDeadLetter, match=f"^dead letter: {message}"):
        ReplayState(**state)


@pytest.mark.parametrize(
    ("diagnostics", "message"),
    [
        ({"queue_capacity": False}, r"diagnostics.queue_capacity must be an integer, got bool"),
        ({"pressure_level": 3}, r"diagnostics.pressure_level must be a string, got int"),
    ],
)
def test_dl_1_invalid_diagnostics_are_refused_by_name(
    diagnostics: dict[str, Any], message: str
) -> None:
    """DL-1: diagnostics are checked like the record, their fields named diagnostics.*."""
    with pytest.raises(InvalidDeadLetter, match=f"^dead letter: {message}"):
        Diagnostics(**diagnostics)


def test_dl_1_the_widest_valid_values_are_accepted() -> None:
    """DL-1 twin: the edges of every range, integer times and enum values as strings are accepted."""
    edge = record(
        source="ingest",
        category="fatal",
        status="archived",
        attempt=0,
        max_attempts=MAX_COUNT,
        created_at=0,
        updated_at=math.nextafter(MAX_TIME, 0),
        headers={"X-Ключ": "é🔑", "": ""},
        trace_context=[["traceparent", "00-x"]],
        replay=ReplayState(status="in_doubt", last_outcome="in_doubt", attempts=MAX_COUNT),
        diagnostics=Diagnostics(queue_depth=MAX_COUNT, queue_capacity=0),
    )
    assert (edge.source, edge.category, edge.status) == (
        Source.INGEST,
        Category.FATAL,
        Status.ARCHIVED,
    )
    assert edge.headers == (("X-Ключ", "é🔑"), ("", ""))
    assert edge.trace_context == (("traceparent", "00-x"),)
    assert edge.replay.status is ReplayStatus.IN_DOUBT


@pytest.mark.parametrize("now", [1e20, math.nan, math.inf, -1.0, MAX_TIME, True, "soon"])
def test_dl_1_capture_refuses_a_bad_now_without_moving_the_id_generator(now: Any) -> None:
    """DL-1: a now out of range is refused by name, and the next id carries the time the last one did."""
    before = new_id()
    with pytest.raises(
        InvalidDeadLetter, match=r"^dead letter: now must be a (finite time|number)"
    ):
        DeadLetter.capture(key="api", source="outbound", reason_class="E", now=now)
    with pytest.raises(InvalidDeadLetter, match=r"^dead letter: now must be a "):
        new_id(now)
    assert 0 <= id_millis(new_id()) - id_millis(before) < 60_000


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        ({"payload": 5}, r"payload must be bytes or str, got int"),
        ({"payload": "caf\udce9"}, r"payload must be text that encodes as UTF-8"),
        ({"reason": 42}, r"reason must be a string, got int"),
        ({"headers": {"X-A": None}}, r"headers\[0\] value must be a string, got NoneType"),
        ({"source": "carrier_pigeon"}, r"source must be one of ingest, "),
        ({"attempt": -1}, r"attempt must be >= 0"),
    ],
)
def test_dl_1_capture_refuses_bad_arguments_by_name(
    arguments: dict[str, Any], message: str
) -> None:
    """DL-1: capture checks what it is given (an int payload is not turned into zero bytes)."""
    fields: dict[str, Any] = {"key": "api", "source": "outbound", "reason_class": "E", **arguments}
    with pytest.raises(InvalidDeadLetter, match=f"^dead letter: {message}"):
        DeadLetter.capture(**fields)


def test_dl_1_capture_redacts_and_stamps() -> None:
    """DL-1: capture takes class and message from the error, redacts both reason and headers."""
    error = ConnectionError("login failed: password=hunter2")
    captured = DeadLetter.capture(
        key="api",
        source="outbound",
        error=error,
        payload="héllo",
        headers={"Authorization": "Bearer abcdefgh", "X-Request-Id": "r-1"},
        trace_context={},
        now=T0,
    )
    assert captured.reason_class == "ConnectionError"
    assert captured.reason == "login failed: password=[redacted]"
    assert captured.headers == (("Authorization", "[redacted]"), ("X-Request-Id", "r-1"))
    assert (captured.payload, captured.content_type) == (
        "héllo".encode(),
        "text/plain; charset=utf-8",
    )
    assert captured.replay_key == f"dead_letter:{captured.id}"
    assert id_millis(captured.id) >= int(T0 * 1000)


def test_dl_8_replay_key_is_the_idempotency_key_when_there_is_one() -> None:
    """DL-8: a replay shares the original operation's idempotency key."""
    assert record(idempotency_key="order-1").replay_key == "order-1"


# -- redaction ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Authorization: Bearer abc.def-123", "Authorization: Bearer [redacted]"),
        ("basic dXNlcjpwYXNz rejected", "basic [redacted] rejected"),
        ("password=hunter2&user=bob", "password=[redacted]&user=bob"),
        ('{"api_key": "sk_live_123"}', '{"api_key": "[redacted]"}'),
        ("ACCESS-KEY: AKIA1234 denied", "ACCESS-KEY: [redacted] denied"),
        ("connect postgres://bob:s3cret@db:5432/x", "connect postgres://[redacted]@db:5432/x"),
        ("signature=abc; secret: xyz", "signature=[redacted]; secret: [redacted]"),
        ("(token=abc123) rejected", "(token=[redacted]) rejected"),
        (
            "Authorization: Token 9944b09199c62bcf9418ad846dd0e4bb",
            "Authorization: Token [redacted]",
        ),
    ],
)
def test_redact_hides_credentials(text: str, expected: str) -> None:
    """Tokens, secret-named key=value pairs and URL passwords are replaced by [redacted]."""
    assert redact(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("https://user:pass@host/?token=abc", "https://[redacted]@host/?token=[redacted]"),
        ("https://ghp_abc123@github.com/o/r.git", "https://[redacted]@github.com/o/r.git"),
        ("https://:pw@h.example/", "https://[redacted]@h.example/"),
        ("https://bob:p@ss@h.example/x", "https://[redacted]@h.example/x"),
        (
            "https://h.example/cb?access_token=abc&x=1",
            "https://h.example/cb?access_token=[redacted]&x=1",
        ),
        (
            "https://h.example/?client_secret=s3&id=7",
            "https://h.example/?client_secret=[redacted]&id=7",
        ),
        ("https://maps.example/?key=AIzaSy123", "https://maps.example/?key=[redacted]"),
        (
            "https://b.s3.example/o?X-Amz-Credential=AKIA%2F1&X-Amz-Signature=9f&X-Amz-Expires=60",
            "https://b.s3.example/o?X-Amz-Credential=[redacted]&X-Amz-Signature=[redacted]"
            "&X-Amz-Expires=60",
        ),
        (
            "https://blob.example/c?sv=2020&sig=abc%3D",
            "https://blob.example/c?sv=2020&sig=[redacted]",
        ),
        (
            "https://app.example/#id_token=eyJ&state=9",
            "https://app.example/#id_token=[redacted]&state=9",
        ),
        (
            'POST "https://h.example/?session_id=abc" failed',
            'POST "https://h.example/?session_id=[redacted]" failed',
        ),
    ],
)
def test_redact_hides_credentials_in_urls(text: str, expected: str) -> None:
    """A URL's user-info, with or without a password, and its secret-named parameters go."""
    assert redact(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "connection refused by 10.0.0.1:443",
        "HTTP 503 Service Unavailable after 3 attempts",
        "the secret garden: chapter 2",
        "auth failed for user bob",
        "passwords must match",
        "https://example.com/path?page=2",
        "Bearer abc",  # too short to be a token
        "token bucket exhausted for tenant acme",  # "token" followed by an ordinary word
        "https://example.com/search?q=queues&sort=asc&page=2#results",
        "https://example.com/?token=",  # nothing to hide
        "mail bob@example.com about https://example.com, then alice@example.com",
        "",
    ],
)
def test_redact_leaves_ordinary_text_alone(text: str) -> None:
    """Twin: messages without credentials come back unchanged, so reasons stay readable."""
    assert redact(text) == text


def test_redact_headers_hides_credential_headers_whatever_their_case() -> None:
    """Authorization, cookies, API keys and signatures are redacted, matched case-insensitively."""
    headers = [
        ("AUTHORIZATION", "Bearer x"),
        ("Cookie", "session=1"),
        ("set-cookie", "a=b"),
        ("X-Api-Key", "k"),
        ("Stripe-Signature", "t=1,v1=abc"),
    ]
    assert redact_headers(headers) == tuple((name, "[redacted]") for name, _ in headers)


def test_redact_headers_keeps_ordinary_headers() -> None:
    """Twin: other headers, order and duplicates are kept as they are."""
    headers = [
        ("Content-Type", "application/json"),
        ("X-Trace", "a"),
        ("X-Trace", "b"),
        ("Idempotency-Key", "order-7"),
        ("webhook-id", "msg_1"),
    ]
    assert redact_headers(headers) == tuple(headers)


@pytest.mark.parametrize(
    "name",
    [
        "webhook-signature",
        "X-Amz-Security-Token",
        "X-Goog-Api-Key",
        "X-Client-Secret",
        "X-Password",
    ],
)
def test_redact_headers_hides_headers_named_after_a_credential(name: str) -> None:
    """A header whose name holds token, secret, signature, api-key, password... is redacted."""
    assert redact_headers([(name, "s3cr3t")]) == ((name, "[redacted]"),)


# -- attributes -----------------------------------------------------------------------

REQUEST = {
    "otpy.ordering_key": "customer-42",
    "http.request.method": "POST",
    "url.full": "https://hooks.example/in",
    "http.request.header.content-type": "application/json",
    "http.response.status_code": "503",
}


def test_dl_1_attributes_are_kept_in_order_from_a_mapping_or_pairs() -> None:
    """DL-1: attributes given as a mapping, tuples or lists become the same string pairs."""
    expected = tuple(REQUEST.items())
    assert record(attributes=REQUEST).attributes == expected
    assert record(attributes=list(REQUEST.items())).attributes == expected
    assert record(attributes=[[n, v] for n, v in REQUEST.items()]).attributes == expected
    assert record().attributes == ()


def test_dl_1_attributes_at_their_limits_are_accepted() -> None:
    """DL-1 twin: MAX_ATTRIBUTES attributes of MAX_ATTRIBUTES_SIZE bytes in all are kept."""
    names = [f"otpy.a{i:02d}" for i in range(MAX_ATTRIBUTES)]  # 8 bytes each
    per_value, extra = divmod(MAX_ATTRIBUTES_SIZE - 8 * MAX_ATTRIBUTES, MAX_ATTRIBUTES)
    values = ["v" * (per_value + (i < extra)) for i in range(MAX_ATTRIBUTES)]
    attributes = record(attributes=dict(zip(names, values, strict=True))).attributes
    assert (MAX_ATTRIBUTES, MAX_ATTRIBUTES_SIZE) == (100, 16_384)
    assert len(attributes) == MAX_ATTRIBUTES
    assert sum(len(n) + len(v) for n, v in attributes) == MAX_ATTRIBUTES_SIZE


def test_dl_1_one_attribute_too_many_is_refused() -> None:
    """DL-1: a record holds at most MAX_ATTRIBUTES attributes."""
    with pytest.raises(
        InvalidDeadLetter,
        match=r"^dead letter: attributes has 101 entries, more than MAX_ATTRIBUTES \(100\) allows$",
    ):
        record(attributes={f"otpy.a{i}": "" for i in range(101)})


def test_dl_1_one_attribute_byte_too_many_is_refused() -> None:
    """DL-1: names and values hold at most MAX_ATTRIBUTES_SIZE bytes, counted in UTF-8."""
    value = "é" * ((MAX_ATTRIBUTES_SIZE - len("url.full")) // 2) + "x"  # one byte over
    with pytest.raises(
        InvalidDeadLetter,
        match=r"^dead letter: attributes hold 16,385 bytes of names and values \(UTF-8\), "
        r"more than MAX_ATTRIBUTES_SIZE \(16,384\) allows; keep context, not payloads$",
    ):
        record(attributes={"url.full": value})


@pytest.mark.parametrize(
    "name",
    [
        "otpy.ordering_key",
        "url.full",
        "http.request.header.x-request-id",
        "http.response.status_code",
        "otpy.route",
        "a",
        "messaging.destination.partition.id",
    ],
)
def test_dl_1_opentelemetry_style_names_are_accepted(name: str) -> None:
    """DL-1 twin: dotted lowercase names, with '-' after the first dot, are attribute names."""
    assert record(attributes={name: "x"}).attributes == ((name, "x"),)


@pytest.mark.parametrize(
    "name",
    ["Url.Full", "url..full", ".url", "url.", "http-request.method", "1st.name", "url full", "ü.x"],
)
def test_dl_1_other_names_are_refused(name: str) -> None:
    """DL-1: capitals, empty segments, '-' in the first segment, spaces are not attribute names."""
    with pytest.raises(
        InvalidDeadLetter, match=r"^dead letter: attributes\[0\] name .* must be a dotted"
    ):
        record(attributes={name: "x"})


def test_dl_1_capture_redacts_credentials_out_of_attribute_values() -> None:
    """DL-1: a captured URL loses its user-info and secret parameters, credential headers their values."""
    captured = DeadLetter.capture(
        key="hooks",
        source="outbound",
        reason_class="HTTPStatusError",
        trace_context={},
        attributes={
            "otpy.ordering_key": "customer-42",
            "url.full": "https://bob:pw@hooks.example/in?access_token=abc123&v=2",
            "http.request.header.authorization": "Bearer abcdefgh",
            "http.request.header.webhook-signature": "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4=",
            "http.request.header.x-api-key": "k",
            "http.response.header.set-cookie": "session=1",
            "http.request.header.webhook-id": "msg_1",
            "otpy.note": "retry with password=hunter2",
        },
        now=T0,
    )
    assert captured.attributes == (
        ("otpy.ordering_key", "customer-42"),
        ("url.full", "https://[redacted]@hooks.example/in?access_token=[redacted]&v=2"),
        ("http.request.header.authorization", "[redacted]"),
        ("http.request.header.webhook-signature", "[redacted]"),
        ("http.request.header.x-api-key", "[redacted]"),
        ("http.response.header.set-cookie", "[redacted]"),
        ("http.request.header.webhook-id", "msg_1"),
        ("otpy.note", "retry with password=[redacted]"),
    )


def test_dl_1_a_constructed_record_keeps_attributes_as_given() -> None:
    """DL-1 twin: only capture redacts; a record built (or read back) keeps its values."""
    url = ("url.full", "https://hooks.example/in?v=2")
    assert record(attributes=[url]).attributes == (url,)
    assert redact_attributes([url, ("http.request.method", "POST")]) == (
        url,
        ("http.request.method", "POST"),
    )


def test_dl_1_capture_refuses_bad_attributes_by_name() -> None:
    """DL-1: capture checks attributes as the constructor does, naming the entry."""
    bad: Any = {"url.full": None}
    with pytest.raises(
        InvalidDeadLetter, match=r"^dead letter: attributes\[0\] value must be a string"
    ):
        DeadLetter.capture(key="k", source="outbound", attributes=bad, now=T0)


async def test_dl_1_attributes_round_trip(store: DeadLetterStore) -> None:
    """DL-1: both stores give attributes back unchanged, in a listing and from get."""
    original = record(attributes={**REQUEST, "otpy.note": "ключ 🔑"})
    assert await store.add_many([original]) == 1
    assert (await store.get(original.id)).attributes == original.attributes
    page = await store.list()
    assert page.records == (original,)


async def test_dl_1_the_same_capture_with_other_attributes_is_another_record(
    store: DeadLetterStore,
) -> None:
    """DL-1: add_many skips a capture stored again, but refuses the id with other attributes."""
    original = record(attributes={"url.full": "https://a.example/"})
    await store.add_many([original])
    assert await store.add_many([original]) == 0
    with pytest.raises(otpy.DeadLetterStoreError, match="already stored with different content"):
        await store.add_many(
            [attrs.evolve(original, attributes={"url.full": "https://b.example/"})]
        )


# -- ids ------------------------------------------------------------------------------


def test_new_ids_are_strictly_increasing_within_a_millisecond() -> None:
    """Ids made in the same millisecond still sort in creation order."""
    now = id_millis(new_id()) / 1000 + 1.0
    ids = [new_id(now) for _ in range(1000)]
    assert ids == sorted(ids)
    assert len(set(ids)) == 1000
    assert {id_millis(i) for i in ids} == {int(now * 1000)}


def test_new_ids_sort_by_creation_time() -> None:
    """An id made later carries the later time, and sorts after."""
    start = id_millis(new_id()) / 1000 + 1.0
    earlier, later = new_id(start), new_id(start + 2.5)
    assert earlier < later
    assert id_millis(later) - id_millis(earlier) == 2500


def test_new_ids_keep_increasing_when_the_clock_steps_back() -> None:
    """Twin: a wall clock stepping back (NTP) never produces an id that sorts earlier."""
    start = id_millis(new_id()) / 1000 + 1.0
    before = new_id(start)
    after = [new_id(start - 60.0), new_id(start - 3600.0), new_id(start - 0.001)]
    assert [before, *after] == sorted([before, *after])
    assert {id_millis(i) for i in after} == {id_millis(before)}


def test_new_ids_from_many_threads_are_distinct_and_valid() -> None:
    """Ids made concurrently in several threads never collide, and all are valid record ids."""
    results: list[list[str]] = [[] for _ in range(4)]
    threads = [
        threading.Thread(target=lambda out=out: out.extend(new_id() for _ in range(500)))
        for out in results
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    every = [record_id for out in results for record_id in out]
    assert len(set(every)) == 2000
    for out in results:
        assert out == sorted(out)
    for record_id in every[::40]:
        assert record(id=record_id).id == record_id


def test_a_stable_id_is_the_same_for_the_same_seed_and_time() -> None:
    """A failure captured again after a crash gets the id it had, so the store keeps it once."""
    now = 1_700_000_000.123
    first = otpy.deadletter.stable_id("01HXMSG", now)
    assert otpy.deadletter.stable_id("01HXMSG", now) == first
    assert otpy.deadletter.stable_id("01HXOTHER", now) != first
    assert id_millis(first) == 1_700_000_000_123
    record = DeadLetter.capture(key="k", source="outbound", id=first, now=now)
    assert record.id == first


@pytest.mark.parametrize(
    ("seed", "now", "field"), [("", 1.0, "seed"), (7, 1.0, "seed"), ("m", -1.0, "now")]
)
def test_a_stable_id_names_a_bad_argument(seed: object, now: float, field: str) -> None:
    """A bad seed or time is refused, naming it."""
    with pytest.raises(InvalidDeadLetter, match=field):
        otpy.deadletter.stable_id(seed, now)  # type: ignore[arg-type]
