"""Bad arguments to the actor API fail at once with a typed error, and change nothing."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

import otpy

BAD_SECONDS: list[tuple[object, type[Exception]]] = [
    (-1, otpy.InvalidArgument),
    (math.nan, otpy.InvalidArgument),
    ("1", otpy.InvalidArgumentType),
    (True, otpy.InvalidArgumentType),
]
BAD_IDS = ["negative", "nan", "str", "bool"]


class Echo(otpy.Actor):
    """Answers calls with the message; records terminate."""

    async def init(self, log: list[object] | None = None) -> None:
        self.log = log if log is not None else []

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        return message

    async def terminate(self, reason: object) -> None:
        self.log.append(reason)


class Asks(otpy.Actor):
    """Runs one of its own API methods with a given argument and returns what it raised."""

    async def handle_call(self, message: Any, caller: otpy.Caller) -> Any:
        method, argument = message
        try:
            if method == "send_after":
                self.send_after(argument, "tick")
            elif method == "set_idle_timeout":
                self.set_idle_timeout(argument)
            elif method == "monitor":
                self.monitor(argument)
            elif method == "demonitor":
                self.demonitor(argument)
            elif method == "link":
                self.link(argument)
            elif method == "unlink":
                self.unlink(argument)
        except Exception as exc:
            return exc
        return None

    async def handle_info(self, message: Any) -> None:
        raise AssertionError(f"nothing should arrive, got {message!r}")


def test_errors_subclass_value_error_and_type_error() -> None:
    """A bad value is a ValueError, a bad type a TypeError, and both are OtpyErrors."""
    assert issubclass(otpy.InvalidArgument, ValueError)
    assert issubclass(otpy.InvalidArgumentType, TypeError)
    assert issubclass(otpy.InvalidArgumentType, otpy.InvalidArgument)
    error = otpy.InvalidArgument("timeout", "must be a number, got -1", owner="ActorRef.stop")
    assert (error.owner, error.argument, error.problem) == (
        "ActorRef.stop",
        "timeout",
        "must be a number, got -1",
    )
    assert str(error) == "ActorRef.stop: timeout must be a number, got -1"


@pytest.mark.parametrize(("timeout", "error"), BAD_SECONDS, ids=BAD_IDS)
async def test_stop_with_a_bad_timeout_raises_and_leaves_the_actor_running(
    timeout: object, error: type[Exception]
) -> None:
    """ref.stop(timeout=<bad>) raises before asking the actor to stop: it keeps running."""
    async with otpy.open_node() as node:
        log: list[object] = []
        ref = await node.spawn(Echo, log)
        with pytest.raises(error, match=r"^ActorRef\.stop: timeout must be a number of seconds"):
            await ref.stop(timeout=timeout)  # type: ignore[arg-type]
        await anyio.wait_all_tasks_blocked()
        assert ref.is_alive
        assert await ref.call("still here") == "still here"
        assert log == []


async def test_bad_timeout_message_names_the_argument_and_what_is_allowed() -> None:
    """The message says which argument, what it may be, and the value given."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Echo)
        with pytest.raises(
            otpy.InvalidArgument,
            match=r"^ActorRef\.stop: timeout must be a number of seconds >= 0, "
            r"or None to wait forever, got -1$",
        ):
            await ref.stop(timeout=-1)
        with pytest.raises(
            otpy.InvalidArgumentType,
            match=r"^ActorRef\.call: timeout must be a number of seconds >= 0, "
            r"or None to wait forever, got bool True$",
        ):
            await ref.call("x", timeout=True)


@pytest.mark.parametrize(("timeout", "error"), BAD_SECONDS, ids=BAD_IDS)
async def test_call_with_a_bad_timeout_raises_before_sending(
    timeout: object, error: type[Exception]
) -> None:
    """ref.call and NamedRef.call with a bad timeout raise and queue nothing."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Echo, name="echo")
        await ref.suspend()
        with pytest.raises(error, match=r"^ActorRef\.call: timeout"):
            await ref.call("x", timeout=timeout)  # type: ignore[arg-type]
        with pytest.raises(error, match=r"^NamedRef\.call: timeout"):
            await node.named("echo").call("x", timeout=timeout)  # type: ignore[arg-type]
        assert ref.statistics().queued == 0
        await ref.resume()


@pytest.mark.parametrize("method", ["wait_exited", "get_status", "suspend", "resume"])
@pytest.mark.parametrize(("timeout", "error"), BAD_SECONDS, ids=BAD_IDS)
async def test_other_waits_refuse_a_bad_timeout(
    method: str, timeout: object, error: type[Exception]
) -> None:
    """wait_exited, get_status, suspend and resume refuse a bad timeout and change nothing."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Echo)
        with pytest.raises(error, match=rf"^ActorRef\.{method}: timeout must be"):
            await getattr(ref, method)(timeout=timeout)
        assert ref.statistics().state == "running"
        assert await ref.call("ok") == "ok"


async def test_infinite_and_zero_timeouts_are_allowed() -> None:
    """math.inf waits forever like None; 0 is a valid (immediate) timeout."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Echo)
        assert await ref.call("x", timeout=math.inf) == "x"
        with pytest.raises(TimeoutError):
            await ref.wait_exited(timeout=0)
        assert await ref.stop(timeout=math.inf) == otpy.NORMAL


@pytest.mark.parametrize(("delay", "error"), BAD_SECONDS, ids=BAD_IDS)
async def test_send_after_and_idle_timeout_refuse_bad_seconds(
    delay: object, error: type[Exception]
) -> None:
    """send_after(<bad delay>) starts no timer; set_idle_timeout(<bad>) sets nothing."""
    async with otpy.open_node() as node:
        ref = await node.spawn(Asks)
        raised = await ref.call(("send_after", delay))
        assert isinstance(raised, error)
        assert str(raised).startswith("Actor.send_after: delay must be a number of seconds >= 0")
        assert isinstance(await ref.call(("send_after", None)), otpy.InvalidArgumentType)
        raised = await ref.call(("set_idle_timeout", delay))
        assert isinstance(raised, error)
        assert str(raised).startswith("Actor.set_idle_timeout: seconds must be")
        await anyio.wait_all_tasks_blocked()
        assert await ref.stop() == otpy.NORMAL  # no timer or idle timeout delivered


@pytest.mark.parametrize(
    ("options", "error", "message"),
    [
        (
            {"start_timeout": 0},
            otpy.InvalidArgument,
            "start_timeout must be a number of seconds > 0",
        ),
        ({"start_timeout": -1.0}, otpy.InvalidArgument, "start_timeout must be"),
        ({"start_timeout": math.nan}, otpy.InvalidArgument, "start_timeout must be"),
        ({"start_timeout": "5"}, otpy.InvalidArgumentType, "start_timeout must be"),
        ({"start_timeout": True}, otpy.InvalidArgumentType, "start_timeout must be"),
        ({"name": ""}, otpy.InvalidArgument, "name must be a non-empty str, or None"),
        ({"name": 3}, otpy.InvalidArgumentType, "name must be a non-empty str, or None"),
        ({"mailbox": 10}, otpy.InvalidArgumentType, "mailbox must be an otpy.MailboxConfig"),
        ({"link": "echo"}, otpy.InvalidArgumentType, "link must be an ActorRef, or None"),
    ],
)
async def test_spawn_refuses_bad_options_before_starting_anything(
    options: dict[str, Any], error: type[Exception], message: str
) -> None:
    """spawn with a bad option raises a typed error: nothing is registered or started."""
    async with otpy.open_node() as node:
        log: list[object] = []
        with pytest.raises(error, match=rf"^spawn: {message}"):
            await node.spawn(Echo, log, **{"name": "echo", **options})
        assert node.live_actors == 0
        assert node.registered() == {}
        assert log == []
        await node.spawn(Echo, name="echo")  # the name is still free


async def test_spawn_refuses_something_that_is_not_an_actor_class() -> None:
    """spawn(<not an Actor subclass>) is a TypeError naming actor_class."""
    async with otpy.open_node() as node:
        with pytest.raises(otpy.InvalidArgumentType, match=r"^spawn: actor_class must be"):
            await node.spawn(object)  # type: ignore[arg-type]
        assert node.live_actors == 0


@pytest.mark.parametrize("method", ["monitor", "link", "unlink", "demonitor"])
@pytest.mark.parametrize("target", ["echo", None, 42], ids=["str", "none", "int"])
async def test_monitor_and_link_refuse_what_is_not_an_actor(method: str, target: object) -> None:
    """monitor/link/unlink/demonitor of a non-actor raise TypeError; the actor and node still stop."""
    with anyio.fail_after(5):
        async with otpy.open_node() as node:
            ref = await node.spawn(Asks)
            raised = await ref.call((method, target))
            assert isinstance(raised, otpy.InvalidArgumentType)
            assert isinstance(raised, TypeError)
            assert str(raised).startswith(f"Actor.{method}: ")
            assert ref.is_alive
            assert await ref.stop() == otpy.NORMAL
        assert node.live_actors == 0
