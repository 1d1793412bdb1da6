"""Capture points: poison messages and undeliverable messages reach the store (DL-1)."""

from __future__ import annotations

import json
from typing import Any

import anyio
import pytest

import otpy
from otpy import ActorExited, ChildSpec, MailboxConfig, MailboxFull, Overflow
from otpy.deadletter import (
    Category,
    DeadLetter,
    DeadLetters,
    MemoryDeadLetterStore,
    Source,
    dead_letter_children,
    dead_letter_from_event,
    encode_payload,
    route_dead_letters,
)
from otpy.deadletter._capture import KIND_HEADER, REPR_CONTENT_TYPE
from otpy.testing import inject_crash


class Parser(otpy.Actor):
    """Parses casts, calls and infos; crashes on the message ``"poison"``."""

    dead_letter_on_crash = True

    async def init(self, seen: list[object]) -> None:
        self.seen = seen

    def _parse(self, message: Any) -> Any:
        if message == "poison":
            raise ValueError("cannot parse 'poison', token=s3cr3t-value")
        self.seen.append(message)
        return message

    async def handle_cast(self, message: Any) -> None:
        self._parse(message)

    async def handle_info(self, message: Any) -> None:
        self._parse(message)

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return self._parse(message)


class CarelessParser(Parser):
    """The same parser with the option off."""

    dead_letter_on_crash = False


class Sink(otpy.Actor):
    """Accepts anything."""

    async def handle_cast(self, message: Any) -> None:
        pass

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return message


async def stored(store: MemoryDeadLetterStore) -> list[DeadLetter]:
    """Every record, oldest first, once what is in flight has settled."""
    await anyio.wait_all_tasks_blocked()
    page = await store.list(limit=1000)
    return sorted(page.records, key=lambda r: r.id)


def tree(store: MemoryDeadLetterStore, parser: type[Parser], seen: list[object]) -> list[ChildSpec]:
    return [
        *dead_letter_children(store, sweep=False),
        ChildSpec(id="parser", start=parser, args=(seen,), name="parser"),
        ChildSpec(id="sibling", start=Parser, args=([],), name="sibling"),
    ]


# -- poison messages ---------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["cast", "info", "call"])
async def test_a_poison_message_is_dead_lettered_and_its_siblings_keep_going(kind: str) -> None:
    """DL-1: the message an actor crashed on is stored with the crash reason and the actor's name as key."""
    store = MemoryDeadLetterStore()
    seen: list[object] = []
    async with otpy.open_supervisor(tree(store, Parser, seen)) as sup:
        remove = route_dead_letters(otpy.current_node().dead_letters, DeadLetters())
        sibling = sup.child("sibling")
        first = sup.child("parser")
        parser = otpy.named("parser")
        if kind == "cast":
            await parser.cast("poison")
        elif kind == "info":
            await parser.send("poison")
        else:
            with pytest.raises(ActorExited):
                await parser.call("poison")
        await sup.wait_child("parser", other_than=first)
        await parser.cast("next")
        assert await parser.call("sync") == "sync"  # restarted, and working
        assert sup.child("sibling") is sibling  # one_for_one: untouched
        assert sibling is not None
        assert await sibling.call("still here") == "still here"
        [dead] = await stored(store)
        remove()
    assert seen == ["next", "sync"]
    assert dead.key == "parser"
    assert dead.source is Source.ACTOR_CRASH
    assert dead.reason_class == "ValueError"
    assert dead.reason == "cannot parse 'poison', token=[redacted]"
    assert dead.category is Category.FATAL
    assert dead.payload == b"poison"
    assert dead.content_type == "text/plain; charset=utf-8"
    assert dead.headers == ((KIND_HEADER, kind),)


async def test_with_the_option_off_a_crash_captures_nothing() -> None:
    """DL-1: the twin: an actor without dead_letter_on_crash crashes and restarts, and nothing is stored."""
    store = MemoryDeadLetterStore()
    seen: list[object] = []
    async with otpy.open_supervisor(tree(store, CarelessParser, seen)) as sup:
        node = otpy.current_node()
        route_dead_letters(node.dead_letters, DeadLetters())
        first = sup.child("parser")
        parser = otpy.named("parser")
        await parser.cast("poison")
        await sup.wait_child("parser", other_than=first)
        assert await parser.call("sync") == "sync"
        assert await stored(store) == []
        assert "poison" not in node.dead_letters.statistics().by_reason


async def test_an_injected_crash_is_not_a_poison_message() -> None:
    """DL-1: a crash that is not a message (inject_crash) publishes no poison event."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(tree(store, Parser, [])) as sup:
        node = otpy.current_node()
        route_dead_letters(node.dead_letters, DeadLetters())
        parser = sup.child("parser")
        assert parser is not None
        inject_crash(parser)
        await sup.wait_child("parser", other_than=parser)
        assert await stored(store) == []
        assert "poison" not in node.dead_letters.statistics().by_reason


async def test_a_poison_message_of_a_plain_spawned_actor_is_captured() -> None:
    """DL-1: the class option works without a supervisor, keyed by the actor's label."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        node = otpy.current_node()
        route_dead_letters(node.dead_letters, DeadLetters())
        ref = await otpy.spawn(Parser, [])
        await ref.cast({"order": 7, "poison": True})
        await ref.cast("poison")
        await ref.wait_exited()
        [dead] = await stored(store)
    assert dead.key == ref.label
    assert dead.source is Source.ACTOR_CRASH


# -- undeliverable messages -----------------------------------------------------------


async def test_a_cast_to_a_dead_actor_is_stored_as_undeliverable() -> None:
    """DL-1: a cast to an exited actor is stored with reason actor_stopped, keyed by its label."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        route_dead_letters(otpy.current_node().dead_letters, DeadLetters())
        ref = await otpy.spawn(Sink, name="inbox")
        await ref.stop()
        await ref.cast({"order": 7})
        await otpy.named("nobody").cast(b"\x00raw")
        first, second = await stored(store)
    assert (first.key, first.source, first.reason_class) == (
        "inbox",
        Source.UNDELIVERABLE,
        "actor_stopped",
    )
    assert first.category is Category.RETRYABLE
    assert first.reason == "cast to inbox was not delivered: actor_stopped"
    assert (first.payload, first.content_type) == (b'{"order":7}', "application/json")
    assert (second.key, second.reason_class) == ("nobody", "noproc")
    assert (second.payload, second.content_type) == (b"\x00raw", "application/octet-stream")


@pytest.mark.parametrize(
    ("overflow", "reason", "kept"),
    [
        (Overflow.DROP_NEWEST, "mailbox_full", [0]),
        (Overflow.DROP_OLDEST, "mailbox_full_dropped_oldest", [2]),
    ],
)
async def test_messages_a_full_mailbox_drops_are_stored(
    overflow: Overflow, reason: str, kept: list[int]
) -> None:
    """DL-1: messages dropped by a full DROP_NEWEST/DROP_OLDEST mailbox are stored with the drop reason."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        route_dead_letters(otpy.current_node().dead_letters, DeadLetters())
        mailbox = MailboxConfig(capacity=1, overflow=overflow)
        ref = await otpy.spawn(Sink, name="slow", mailbox=mailbox)
        await ref.suspend()
        for n in range(3):
            await ref.cast(n)
        assert ref.statistics().queued == 1
        records = await stored(store)
    assert [(r.key, r.reason_class) for r in records] == [("slow", reason)] * 2
    assert sorted(json.loads(r.payload or b"") for r in records) == sorted({0, 1, 2} - set(kept))


async def test_a_rejecting_mailbox_raises_to_the_sender_and_stores_nothing() -> None:
    """DL-1: the twin: REJECT tells the sender (MailboxFull), so the message is not dead-lettered."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        route_dead_letters(otpy.current_node().dead_letters, DeadLetters())
        mailbox = MailboxConfig(capacity=1, overflow=Overflow.REJECT)
        ref = await otpy.spawn(Sink, name="strict", mailbox=mailbox)
        await ref.suspend()
        await ref.cast(0)
        with pytest.raises(MailboxFull):
            await ref.cast(1)
        assert await stored(store) == []


async def test_only_the_chosen_reasons_are_routed() -> None:
    """DL-1: reasons={'poison'} stores poison messages and ignores undeliverable ones."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        route_dead_letters(otpy.current_node().dead_letters, DeadLetters(), reasons={"poison"})
        await otpy.named("nobody").cast("lost")
        ref = await otpy.spawn(Parser, [], name="p")
        await ref.cast("poison")
        [dead] = await stored(store)
    assert dead.source is Source.ACTOR_CRASH


def test_an_unknown_reason_is_refused() -> None:
    """DL-1: a misspelt reason fails when routing is set up, not silently later."""
    with pytest.raises(ValueError, match=r"^route_dead_letters: unknown reasons \['posion'\]"):
        route_dead_letters(otpy.DeadLetterStream(), DeadLetters(), reasons={"posion"})


async def test_removing_the_route_stops_capturing() -> None:
    """DL-1: the function route_dead_letters returns removes its sink."""
    store = MemoryDeadLetterStore()
    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        remove = route_dead_letters(otpy.current_node().dead_letters, DeadLetters())
        await otpy.named("nobody").cast("first")
        remove()
        await otpy.named("nobody").cast("second")
        [dead] = await stored(store)
    assert dead.payload == b"first"


async def test_undeliverable_captures_for_a_missing_writer_are_counted_not_looped() -> None:
    """DL-1: a fire-and-forget capture with no writer is dropped and counted once; it is never re-captured."""
    async with otpy.open_node() as node:
        client = DeadLetters()
        route_dead_letters(node.dead_letters, client)
        await otpy.named("nobody").cast("lost")
        assert client.statistics().dropped == 1
        # The cast, then its capture; and nothing after that.
        assert node.dead_letters.statistics().by_reason == {"noproc": 2}


async def test_a_custom_encoder_is_used() -> None:
    """DL-1: route_dead_letters(encoder=...) decides the stored body and content type."""
    store = MemoryDeadLetterStore()

    def encoder(message: object) -> tuple[bytes, str]:
        return b"<order/>", "application/xml"

    async with otpy.open_supervisor(dead_letter_children(store, sweep=False)):
        route_dead_letters(otpy.current_node().dead_letters, DeadLetters(), encoder=encoder)
        await otpy.named("nobody").cast(object())
        [dead] = await stored(store)
    assert (dead.payload, dead.content_type) == (b"<order/>", "application/xml")


# -- encoder -------------------------------------------------------------------------------


class Order:
    def __repr__(self) -> str:
        return "Order(7)"


class Unprintable:
    def __repr__(self) -> str:
        raise RuntimeError("no repr")


@pytest.mark.parametrize(
    ("message", "expected"),
    [
        (b"\x00\xff", (b"\x00\xff", "application/octet-stream")),
        (bytearray(b"ab"), (b"ab", "application/octet-stream")),
        ("héllo", ("héllo".encode(), "text/plain; charset=utf-8")),
        ({"id": 7, "tags": ["a"]}, (b'{"id":7,"tags":["a"]}', "application/json")),
        ([1, None, True], (b"[1,null,true]", "application/json")),
        (None, (b"null", "application/json")),
        (Order(), (b"Order(7)", REPR_CONTENT_TYPE)),
        ({"when": Order()}, (b"{'when': Order(7)}", REPR_CONTENT_TYPE)),
        (float("nan"), (b"nan", REPR_CONTENT_TYPE)),
        (Unprintable(), (b"<Unprintable object: repr() failed>", REPR_CONTENT_TYPE)),
    ],
    ids=[
        "bytes",
        "bytearray",
        "str",
        "json-dict",
        "json-list",
        "none",
        "object",
        "json-with-object",
        "nan",
        "broken-repr",
    ],
)
def test_the_default_encoder(message: object, expected: tuple[bytes, str]) -> None:
    """DL-1: bytes as-is, str as UTF-8, JSON as JSON, anything else as its repr (never pickled)."""
    assert encode_payload(message) == expected


def test_an_event_without_an_exception_still_makes_a_valid_poison_record() -> None:
    """DL-1: a poison event with no exception is stored with reason class 'poison'."""
    event = otpy.DeadLetterEvent("parser", "x", "cast", "poison", 0.0)
    dead = dead_letter_from_event(event)
    assert (dead.reason_class, dead.reason) == ("poison", "actor parser crashed handling it")
