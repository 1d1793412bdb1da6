"""otpy.testing's helpers check their arguments when called, like every public call."""

from __future__ import annotations

import pytest

from otpy import InvalidArgument, SupervisorSpec
from otpy.testing import crash_after


@pytest.mark.parametrize("delay", [float("nan"), float("inf"), -1.0, "1", None])
def test_crash_after_refuses_a_delay_it_could_never_wait(delay: object) -> None:
    """crash_after(nan) is refused when the spec is built, not when the child starts."""
    with pytest.raises(InvalidArgument, match=r"^crash_after: delay must be a finite number"):
        crash_after(delay, id="c")  # type: ignore[arg-type]


def test_twin_a_zero_delay_builds_a_child() -> None:
    """Twin: crash_after(0) is a child that crashes as soon as it starts."""
    spec = crash_after(0, id="c")
    assert SupervisorSpec(children=[spec]).children == (spec,)
