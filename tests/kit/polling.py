"""Waiting for a condition in tests that drive separate processes (drivers, services)."""

from __future__ import annotations

import time


def wait_for(predicate, timeout: float = 60, interval: float = 0.05, what: str = "condition"):
    """Poll ``predicate`` until it returns something true (and return that), or fail after ``timeout``."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"{what} not reached within {timeout} s")
