"""The requests a SupervisorRef sends through its supervisor's mailbox, and the failure reply."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, final

import attrs

if TYPE_CHECKING:
    from .._exceptions import OtpyError
    from ._spec import ChildSpec


@final
class _StartChild:
    """A start_child request. The handler takes the spec out: a supervisor's last
    handled message must not keep a temporary child's arguments alive."""

    __slots__ = ("spec",)

    def __init__(self, spec: ChildSpec) -> None:
        self.spec: ChildSpec | None = spec

    def take(self) -> ChildSpec:
        spec = self.spec
        assert spec is not None
        self.spec = None
        return spec


@final
class _StartDynamic:
    """A start_dynamic_child request; the handler takes the arguments out."""

    __slots__ = ("args",)

    def __init__(self, args: tuple[Any, ...]) -> None:
        self.args = args

    def take(self) -> tuple[Any, ...]:
        args = self.args
        self.args = ()
        return args


@attrs.frozen
class _ById:
    op: str
    child: Any


@attrs.frozen
class _Failed:
    error: OtpyError
