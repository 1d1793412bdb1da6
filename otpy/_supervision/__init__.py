"""Supervision: child specs, strategies, restart intensity, backoff and supervisors."""
