"""Supervision: child specs, strategies, restart intensity, backoff and supervisors."""

from __future__ import annotations

from ._window import RestartWindow as RestartWindow
from ._window import record_restart as record_restart
