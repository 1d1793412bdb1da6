"""A bulkhead admits at most max_concurrent at once, and refuses the rest after max_wait, exactly (GW-6)."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

from otpy import BulkheadFull, InvalidArgument, InvalidArgumentType, OtpyError
from otpy.gateway._bulkhead import Bulkhead, BulkheadStatistics
from otpy.testing import virtual_time

VIRTUAL_TIME = pytest.mark.parametrize("anyio_backend", [virtual_time()])


async def hold(bulkhead: Bulkhead, seconds: float, log: list[tuple[str, float]], who: str) -> None:
    async with bulkhead.slot():
        log.append((who, anyio.current_time()))
        await anyio.sleep(seconds)


@VIRTUAL_TIME
async def test_a_caller_beyond_max_concurrent_is_refused_at_once() -> None:
    bulkhead = Bulkhead(2, name="orders")
    log: list[tuple[str, float]] = []
    async with anyio.create_task_group() as group:
        group.start_soon(hold, bulkhead, 10, log, "a")
        group.start_soon(hold, bulkhead, 10, log, "b")
        await anyio.sleep(1)
        start = anyio.current_time()
        with pytest.raises(BulkheadFull) as caught:
            async with bulkhead.slot():
                pytest.fail("admitted a third")
        assert anyio.current_time() == start
        assert bulkhead.statistics() == BulkheadStatistics(
            max_concurrent=2, max_wait=0.0, in_use=2, waiting=0, admitted=2, rejected=1
        )
    assert str(caught.value) == (
        "bulkhead 'orders' is full: 2 already in flight, no slot came free at once (max_wait=0)"
    )
    assert (caught.value.name, caught.value.max_concurrent, caught.value.max_wait) == (
        "orders",
        2,
        0.0,
    )
    assert isinstance(caught.value, OtpyError)
    assert bulkhead.statistics().in_use == 0


@VIRTUAL_TIME
async def test_a_waiting_caller_gets_in_when_a_slot_frees() -> None:
    bulkhead = Bulkhead(2, max_wait=5)
    log: list[tuple[str, float]] = []
    async with anyio.create_task_group() as group:
        t0 = anyio.current_time()
        group.start_soon(hold, bulkhead, 3, log, "a")
        group.start_soon(hold, bulkhead, 10, log, "b")
        await anyio.sleep(0.5)
        group.start_soon(hold, bulkhead, 1, log, "c")
        await anyio.sleep(1)
        assert bulkhead.statistics().waiting == 1
    assert sorted((who, t - t0) for who, t in log) == [("a", 0), ("b", 0), ("c", 3)]
    assert bulkhead.statistics().rejected == 0


@VIRTUAL_TIME
async def test_a_waiting_caller_is_refused_after_exactly_max_wait() -> None:
    bulkhead = Bulkhead(1, max_wait=5, name="orders")
    log: list[tuple[str, float]] = []
    async with anyio.create_task_group() as group:
        group.start_soon(hold, bulkhead, 60, log, "a")
        await anyio.sleep(0.5)  # let the holders start
        start = anyio.current_time()
        with pytest.raises(BulkheadFull, match="no slot came free within 5s"):
            async with bulkhead.slot():
                pytest.fail("admitted past the limit")
        assert anyio.current_time() - start == 5
        assert bulkhead.statistics().waiting == 0
        assert bulkhead.statistics().rejected == 1
        group.cancel_scope.cancel()


@VIRTUAL_TIME
async def test_waiters_are_admitted_in_arrival_order() -> None:
    bulkhead = Bulkhead(1, max_wait=100)
    log: list[tuple[str, float]] = []
    async with anyio.create_task_group() as group:
        for who in "abcd":
            group.start_soon(hold, bulkhead, 2, log, who)
            await anyio.sleep(0.1)
    assert [who for who, _ in log] == ["a", "b", "c", "d"]
    assert bulkhead.statistics().admitted == 4


@VIRTUAL_TIME
async def test_an_error_or_a_cancelled_wait_gives_the_slot_back() -> None:
    bulkhead = Bulkhead(1, max_wait=100)
    with pytest.raises(KeyError):
        async with bulkhead.slot():
            raise KeyError("boom")
    assert bulkhead.statistics().in_use == 0
    log: list[tuple[str, float]] = []
    async with anyio.create_task_group() as group:
        group.start_soon(hold, bulkhead, 10, log, "a")
        await anyio.sleep(0.5)  # let the holders start
        with anyio.move_on_after(1):
            async with bulkhead.slot():
                pytest.fail("admitted while full")
        assert bulkhead.statistics().waiting == 0
        assert bulkhead.statistics().rejected == 0  # cancelled, not refused
    async with bulkhead.slot():
        assert bulkhead.statistics().in_use == 1


def test_repr_and_properties() -> None:
    bulkhead = Bulkhead(3, 1.5, name="orders")
    assert repr(bulkhead) == "<Bulkhead 'orders' max_concurrent=3 max_wait=1.5>"
    assert (bulkhead.max_concurrent, bulkhead.max_wait) == (3, 1.5)


@pytest.mark.parametrize(
    ("arguments", "field", "error"),
    [
        ({"max_concurrent": 0}, "max_concurrent", InvalidArgument),
        ({"max_concurrent": 1.5}, "max_concurrent", InvalidArgumentType),
        ({"max_concurrent": True}, "max_concurrent", InvalidArgumentType),
        ({"max_concurrent": 1, "max_wait": -1}, "max_wait", InvalidArgument),
        ({"max_concurrent": 1, "max_wait": float("nan")}, "max_wait", InvalidArgument),
        ({"max_concurrent": 1, "max_wait": "5s"}, "max_wait", InvalidArgumentType),
        ({"max_concurrent": 1, "name": ""}, "name", InvalidArgument),
    ],
)
def test_bad_arguments_name_the_field(
    arguments: dict[str, Any], field: str, error: type[Exception]
) -> None:
    with pytest.raises(error, match=field):
        Bulkhead(**arguments)
