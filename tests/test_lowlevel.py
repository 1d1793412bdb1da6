"""The asyncio call-timeout queue (ACT-1): deadlines expire exactly, in order, without leaking."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from otpy._core._lowlevel import TIMED_OUT, Deadlines

Maker = Callable[[], tuple["FakeLoop", Deadlines, Callable[[], "asyncio.Future[Any]"]]]


class FakeHandle:
    def __init__(self, when: float, callback: Callable[[], None]) -> None:
        self.when = when
        self.callback = callback
        self.cancelled = False

    def cancel(self) -> None:
        self.cancelled = True


class FakeLoop:
    """Just enough of an event loop: a settable clock and call_at handles."""

    def __init__(self) -> None:
        self.now = 0.0
        self.handles: list[FakeHandle] = []

    def time(self) -> float:
        return self.now

    def call_at(self, when: float, callback: Callable[[], None]) -> FakeHandle:
        handle = FakeHandle(when, callback)
        self.handles.append(handle)
        return handle

    def advance(self, to: float) -> None:
        self.now = to
        while True:
            due = [h for h in self.handles if not h.cancelled and h.when <= self.now]
            if not due:
                return
            for handle in due:
                self.handles.remove(handle)
                handle.callback()


@pytest.fixture
def make() -> Iterator[Maker]:
    """Build a Deadlines on a fake clock; futures come from a real (closed afterwards) loop."""
    loop = asyncio.new_event_loop()

    def build() -> tuple[FakeLoop, Deadlines, Callable[[], asyncio.Future[Any]]]:
        fake = FakeLoop()
        return fake, Deadlines(fake), loop.create_future  # type: ignore[arg-type]

    yield build
    loop.close()


def test_act_1_pending_calls_time_out_exactly_at_their_deadline(make: Maker) -> None:
    """ACT-1: a pending call is timed out at exactly now + timeout; an answered one is left alone."""
    fake, deadlines, future = make()
    slow, answered = future(), future()
    deadlines.add(5.0, slow)
    fake.now = 1.0
    deadlines.add(5.0, answered)
    answered.set_result("reply")
    fake.advance(4.999)
    assert not slow.done()
    fake.advance(5.0)
    assert slow.result() is TIMED_OUT
    fake.advance(6.0)
    assert answered.result() == "reply"
    assert [h for h in fake.handles if not h.cancelled] == []


def test_act_1_a_shorter_timeout_rearms_the_timer_earlier(make: Maker) -> None:
    """ACT-1: a call with a shorter timeout than those pending still expires on time."""
    fake, deadlines, future = make()
    long_call, short_call = future(), future()
    deadlines.add(10.0, long_call)
    deadlines.add(1.0, short_call)
    fake.advance(1.0)
    assert short_call.result() is TIMED_OUT
    assert not long_call.done()
    fake.advance(10.0)
    assert long_call.result() is TIMED_OUT


def test_answered_calls_do_not_accumulate(make: Maker) -> None:
    """Answered calls are dropped from the head on the next add, and swept past SWEEP_AT."""
    fake, deadlines, future = make()
    for _ in range(100):
        fut = future()
        deadlines.add(5.0, fut)
        fut.set_result(None)
    assert len(deadlines._queues[5.0]) == 1
    blocker = future()
    deadlines.add(5.0, blocker)  # a pending head keeps answered entries behind it...
    for _ in range(Deadlines.SWEEP_AT + 10):
        fut = future()
        deadlines.add(5.0, fut)
        fut.set_result(None)
    assert len(deadlines._queues[5.0]) < Deadlines.SWEEP_AT  # ...until the sweep
    fake.advance(5.0)
    assert blocker.result() is TIMED_OUT
