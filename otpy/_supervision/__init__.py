"""Supervision: child specs, strategies, restart intensity, backoff and supervisors.

The named internal API the layers above use; nothing outside this package reaches
into its modules. Lowest first:

- ``_spec``: :class:`ChildSpec`, :class:`SupervisorSpec`, :class:`DynamicSupervisorSpec`,
  :class:`SupervisorFlags`, the enums and :class:`Backoff` with :func:`backoff_delay`.
- ``_window``: :class:`RestartWindow` and :func:`record_restart`, the intensity arithmetic.
- ``_snapshots``: :class:`ChildInfo`, :class:`ChildCounts`, :class:`ChildStatistics` and
  :class:`SupervisorStatistics`, what introspection returns.
- ``_requests``: the messages a :class:`SupervisorRef` sends to its supervisor.
- ``_base``: what both supervisor actors share: starting, stopping, restarting, reporting.
- ``_static`` and ``_dynamic``: :class:`Supervisor` and :class:`DynamicSupervisor`.
- ``_handle``: :class:`SupervisorRef`, :func:`start_supervisor`, :func:`open_supervisor`
  and :func:`supervisor_ref`.
"""

from __future__ import annotations

from ._dynamic import DynamicSupervisor as DynamicSupervisor
from ._handle import SupervisorRef as SupervisorRef
from ._handle import open_supervisor as open_supervisor
from ._handle import start_supervisor as start_supervisor
from ._handle import supervisor_ref as supervisor_ref
from ._snapshots import ChildCounts as ChildCounts
from ._snapshots import ChildInfo as ChildInfo
from ._snapshots import ChildStatistics as ChildStatistics
from ._snapshots import SupervisorStatistics as SupervisorStatistics
from ._spec import AutoShutdown as AutoShutdown
from ._spec import Backoff as Backoff
from ._spec import ChildSpec as ChildSpec
from ._spec import ChildType as ChildType
from ._spec import DynamicSupervisorSpec as DynamicSupervisorSpec
from ._spec import Restart as Restart
from ._spec import Shutdown as Shutdown
from ._spec import Strategy as Strategy
from ._spec import SupervisorFlags as SupervisorFlags
from ._spec import SupervisorSpec as SupervisorSpec
from ._spec import backoff_delay as backoff_delay
from ._static import Supervisor as Supervisor
from ._window import RestartWindow as RestartWindow
from ._window import record_restart as record_restart

__all__ = [
    # specs
    "AutoShutdown",
    "Backoff",
    "ChildSpec",
    "ChildType",
    "DynamicSupervisorSpec",
    "Restart",
    "Shutdown",
    "Strategy",
    "SupervisorFlags",
    "SupervisorSpec",
    # restart arithmetic
    "RestartWindow",
    "backoff_delay",
    "record_restart",
    # supervisors and their handle
    "DynamicSupervisor",
    "Supervisor",
    "SupervisorRef",
    "open_supervisor",
    "start_supervisor",
    "supervisor_ref",
    # snapshots
    "ChildCounts",
    "ChildInfo",
    "ChildStatistics",
    "SupervisorStatistics",
]
