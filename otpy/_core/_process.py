"""The running actor: its task from ``init`` through the receive loop to its exit.

:func:`run` (any backend) and :func:`run_asyncio` (asyncio, without an anyio task
wrapper) are what the node starts for each :class:`~otpy.ActorRef`. They work on the
ref's own state; the ref is the handle, this module is the process behind it.

The receive loop is the hot path. It pops messages from a plain ``deque`` and awaits
the handler; it parks only when the mailbox is empty. Everything rare (system
messages, stop requests, continue steps, suspension) raises one ``_attention`` flag
so the loop checks a single attribute per message.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING, Any

import anyio

from .._exceptions import ActorExited, ActorStopped, SpawnError
from .._redact import get_logger, redact
from . import _envelope
from ._actor import IGNORE, NO_REPLY, Caller
from ._deadletters import DeadLetterEvent
from ._envelope import Traced as _Traced
from ._reasons import KILLED, NORMAL, SHUTDOWN, Down, IdleTimeout, is_normal_exit
from ._ref import (
    CALL,
    CAST,
    INFO,
    INTERNAL,
    KIND_NAMES,
    NOTHING,
    SYS_RESUME,
    SYS_STATUS,
    SYS_STOP,
    SYS_SUSPEND,
    ActorStatus,
    current_actor,
    deliver_system_info,
)

if TYPE_CHECKING:
    from ._ref import ActorRef

__all__ = ["run", "run_asyncio"]

logger = get_logger("otpy.actor")


async def run(ref: ActorRef, init_args: tuple[Any, ...], start_timeout: float | None) -> None:
    """The actor's task on any backend: init, loop, terminate, then signal the exit."""
    current_actor.set(ref)
    reason: object = None
    try:
        with anyio.CancelScope() as scope:
            ref._canceller = scope
            if ref._kill_reason is not None:
                scope.cancel()
            reason = await _run_init(ref, init_args, start_timeout)
            del init_args  # the task must not keep init's arguments alive
            if reason is None:
                reason = await _receive(ref)
    finally:
        _finish(ref, _final_reason(ref, reason))


async def run_asyncio(
    ref: ActorRef, init_args: tuple[Any, ...], start_timeout: float | None
) -> None:
    """The same on asyncio, without an anyio task wrapper or cancel scope.

    Killing cancels the task itself; the cancellation is taken back with
    ``uncancel()`` so it does not leak into anything else.
    """
    import asyncio  # here: importing otpy (for `otpy --help`, say) need not load asyncio

    current_actor.set(ref)
    task = asyncio.current_task()
    assert task is not None
    reason: object = None
    try:
        if ref._kill_reason is None:
            ref._canceller = task
            reason = await _run_init(ref, init_args, start_timeout)
            del init_args  # the task must not keep init's arguments alive
            if reason is None:
                reason = await _receive(ref)
    except asyncio.CancelledError:
        if ref._kill_reason is None:
            raise  # cancelled from outside: the loop is closing
        task.uncancel()
    finally:
        _finish(ref, _final_reason(ref, reason))


def _final_reason(ref: ActorRef, reason: object) -> object:
    if ref._kill_reason is not None:
        return ref._kill_reason
    if reason is None:
        return SHUTDOWN  # cancelled from outside: the node is shutting down
    return reason


async def _run_init(
    ref: ActorRef, init_args: tuple[Any, ...], start_timeout: float | None
) -> object:
    """Run ``init``; return ``None`` to go on to the loop, else the exit reason (ACT-6)."""
    actor = ref._actor
    started = ref._started
    assert started is not None
    try:
        if start_timeout is None:
            result = await actor.init(*init_args)
        else:
            result = NOTHING
            with anyio.move_on_after(start_timeout):
                result = await actor.init(*init_args)
            if result is NOTHING:
                started.set_exception(
                    SpawnError(
                        ref.label,
                        "timeout",
                        f"actor {ref.label!r} did not finish init within "
                        f"{start_timeout:g}s and was killed",
                    )
                )
                return KILLED
    except Exception as exc:
        # A supervisor's own SpawnError already names the child that failed.
        own = isinstance(exc, SpawnError) and exc.actor == ref.label
        started.set_exception(exc if own else SpawnError(ref.label, exc))
        return exc
    if result is IGNORE:
        started.set_result(IGNORE)
        return NORMAL
    if ref._stop_reason is not None:
        started.set_exception(SpawnError(ref.label, ref._stop_reason))
        return ref._stop_reason
    ref._state = "running"
    ref._start_link = None  # from now on the link is an ordinary one
    started.set_result(ref)
    ref._started = None  # the future holds this ref: do not keep a cycle alive
    return None


async def _receive(ref: ActorRef) -> object:
    """Handle mailbox messages one at a time until the actor stops; return its reason."""
    actor = ref._actor
    mailbox = ref._mailbox
    q = mailbox.q
    new_future = ref._backend.new_future
    while True:
        if ref._attention:
            reason = await _attend(ref)
            if reason is not NOTHING:
                return reason
            continue
        if not q:
            idle = ref._idle
            if idle is None:
                # Park inline: one frame fewer for every idle actor.
                fut = new_future()
                mailbox._getter = fut
                try:
                    await fut
                finally:
                    if mailbox._getter is fut:
                        mailbox._getter = None
                continue
            if not await mailbox.park(idle):
                ref._idle = None
                ref._item = (INFO, IdleTimeout(idle or 0.0))
                try:
                    await actor.handle_info(ref._item[1])
                except Exception as exc:
                    return await _terminate(ref, exc)
            continue
        item = q.popleft()
        if mailbox._putters:
            mailbox.wake_putter()
        ref._item = item
        ref._idle = None
        kind = item[0]
        message = item[1]
        traced = type(message) is _Traced
        if traced:
            # The sender's trace context, current while the message is handled.
            token = _envelope.activate_context(message.context)
            message = message.message
        try:
            if kind == CAST:
                await actor.handle_cast(message)
            elif kind == CALL:
                fut = item[2]
                caller = Caller(ref, fut)
                ref._current = caller
                reply = await actor.handle_call(message, caller)
                ref._current = None
                if reply is NO_REPLY:
                    if ref._stash_marker:
                        ref._stash_marker = False
                    else:
                        if ref._deferred is None:
                            ref._deferred = set()
                        ref._deferred.add(caller)
                elif not fut.done():
                    if ref._stop_reason is None:
                        fut.set_result(reply)
                    else:
                        ref._item = (CALL, item[1], fut, reply)
            elif kind == INFO:
                if type(message) is Down:
                    monitoring = ref._monitoring
                    if monitoring is None or message.monitor not in monitoring:
                        continue  # demonitored: never handled (ACT-10)
                    monitoring.discard(message.monitor)
                await actor.handle_info(message)
            else:
                message()
        except Exception as exc:
            if actor.dead_letter_on_crash and kind != INTERNAL:
                _publish_poison(ref, item, exc)  # with the message's context current
            if traced:
                _envelope.restore_context(token)
            return await _terminate(ref, exc)
        if traced:
            _envelope.restore_context(token)
        ref._processed += 1


async def _attend(ref: ActorRef) -> object:
    """Handle whatever raised the attention flag; return a stop reason or NOTHING."""
    ref._attention = False
    if ref._kill_reason is not None:
        return ref._kill_reason
    sys = ref._sys
    while sys:
        kind, arg = sys.popleft()
        if kind == SYS_STOP:
            return await _terminate(ref, arg)
        if kind == SYS_STATUS:
            if not arg.done():
                arg.set_result(ActorStatus(ref.statistics(), dict(_format_status(ref))))
        elif kind == SYS_SUSPEND:
            ref._suspended = True
            ref._state = "suspended"
            if not arg.done():
                arg.set_result(None)
        elif kind == SYS_RESUME:
            ref._suspended = False
            ref._state = "running"
            if not arg.done():
                arg.set_result(None)
    if ref._stop_reason is not None:
        return await _terminate(ref, ref._stop_reason)
    argument = ref._continue
    if argument is not NOTHING:
        ref._continue = NOTHING
        try:
            await ref._actor.handle_continue(argument)
        except Exception as exc:
            return await _terminate(ref, exc)
        stop = _pending_stop(ref)
        if stop is not None:
            return await _terminate(ref, stop)
        if ref._continue is not NOTHING:
            ref._attention = True
    if ref._suspended:
        # Stay on the slow path until resumed; new messages wait in the mailbox.
        ref._attention = True
        if not ref._sys:
            await ref._mailbox.park(None)
    return NOTHING


def _pending_stop(ref: ActorRef) -> object:
    """Read the stop request again after an await (a plain read would stay narrowed)."""
    return ref._stop_reason


def _format_status(ref: ActorRef) -> dict[str, object]:
    try:
        return dict(ref._actor.format_status())
    except Exception as exc:  # a broken format_status must not hide the crash
        return {"format_status_failed": type(exc).__name__}


async def _terminate(ref: ActorRef, reason: object) -> object:
    """Run ``terminate`` and log a crash report for abnormal reasons (ACT-8)."""
    ref._state = "stopping"
    try:
        await ref._actor.terminate(reason)
    except Exception as exc:
        logger.error(
            "actor %s: terminate raised %s while stopping with %r",
            ref.label,
            type(exc).__name__,
            _short(reason),
            exc_info=exc,
        )
    if not is_normal_exit(reason) and logger.isEnabledFor(logging.ERROR):
        item = ref._item
        logger.error(
            "actor %s terminating: %s",
            ref.label,
            _short(reason),
            exc_info=reason if isinstance(reason, BaseException) else None,
            extra={
                "otpy_report": {
                    "actor": ref.label,
                    "reason": _short(reason),
                    "last_message": KIND_NAMES.get(item[0], "?")
                    + ":"
                    + type(_envelope.unwrap(item[1])).__name__
                    if item
                    else None,
                    "state": _format_status(ref),
                    "queued": len(ref._mailbox.q),
                }
            },
        )
    # A call answered with a stop request gets its reply after terminate (OTP).
    item = ref._item
    if item is not None and item[0] == CALL and len(item) == 4 and not item[2].done():
        item[2].set_result(item[3])
    return reason


def _finish(ref: ActorRef, reason: object) -> None:
    """The process is over: release the name, fail waiters, then signal (ACT-11)."""
    start_link = ref._start_link
    if start_link is not None:
        # init never succeeded: the spawner gets the SpawnError and no exit
        # signal, as OTP's proc_lib:start_link unlinks and flushes the EXIT.
        ref._start_link = None
        ref._unlink(start_link)
    ref._exit_reason = reason
    ref._state = "stopped"
    ref._attention = False
    started = ref._started
    if started is not None and not started.done():
        started.set_exception(SpawnError(ref.label, reason))
    ref._started = None
    node = ref.node
    if ref.name is not None:
        node._registry_release(ref)
    # Fail what was waiting on this incarnation; pending messages become dead letters.
    current = ref._current
    if current is not None and not current._fut.done():
        current._fut.set_exception(ActorExited(ref.label, reason))
    if ref._deferred:
        for caller in ref._deferred:
            if not caller._fut.done():
                caller._fut.set_exception(ActorExited(ref.label, reason))
        ref._deferred = None
    q = ref._mailbox.q
    while q:
        ref._drop(q.popleft(), "actor_stopped")
    if ref._stash:
        for item in ref._stash:
            ref._drop(item, "actor_stopped")
        ref._stash = None
    if ref._sys:
        for _kind, arg in ref._sys:
            if hasattr(arg, "done") and not arg.done():
                arg.set_exception(ActorStopped(ref.label, reason))
        ref._sys = None
    ref._mailbox.wake_all_putters()
    if ref._timers:
        for timer in list(ref._timers):
            timer.cancel()
    if ref._tasks:
        for scope in list(ref._tasks):
            scope.cancel()
    if ref._monitoring:
        for monitor in list(ref._monitoring):
            ref._demonitor(monitor)
    if ref._exit_waiters:
        for fut in ref._exit_waiters:
            if not fut.done():
                fut.set_result(reason)
        ref._exit_waiters = None
    # Signals go out after the name is released, so a watcher can re-register it.
    if ref._exit_hooks:
        for hook in ref._exit_hooks:
            hook(ref, reason)
    if ref._watchers:
        watchers = ref._watchers
        ref._watchers = None
        for monitor in watchers:
            if monitor._active:
                deliver_system_info(monitor.watcher, Down(monitor, ref, reason))
    if ref._links:
        links = ref._links
        ref._links = None
        for linked in links:
            if linked._links is not None:
                linked._links.discard(ref)
            linked._exit_signal(ref, reason)
    node._process_exited(ref)
    # Break the cycles a dead incarnation sits in, so refcounting frees most of it
    # instead of the cyclic GC (whose pauses were the tail of restart latency).
    ref._canceller = None
    ref._item = None
    ref._current = None
    ref._parent = None
    if isinstance(reason, BaseException):
        traceback.clear_frames(reason.__traceback__)


def _publish_poison(ref: ActorRef, item: tuple[Any, ...], error: Exception) -> None:
    """The handler raised on *item* and the actor has ``dead_letter_on_crash``."""
    ref.node.dead_letters.publish(
        DeadLetterEvent(
            ref.label,
            _envelope.unwrap(item[1]),
            KIND_NAMES[item[0]],
            "poison",
            anyio.current_time(),
            error,
        )
    )


def _short(reason: object) -> str:
    if isinstance(reason, BaseException):
        text = str(reason)
        return f"{type(reason).__name__}: {redact(text)[:200]}" if text else type(reason).__name__
    return redact(repr(reason))[:200]
