"""Fixtures of the fault-injection tests: driver processes that are always stopped (helpers: ``kit``)."""

from __future__ import annotations

import psutil
import pytest
from kit.drivers import Driver


@pytest.fixture
def drivers(tmp_path):
    """Start drivers with ``start(*args)``; every driver and the processes it started are stopped at the end."""
    started: list[Driver] = []
    orphans: list[psutil.Process] = []

    def start(*args: str, env: dict | None = None) -> Driver:
        d = Driver(list(args), tmp_path / "drivers", env)
        started.append(d)
        return d

    start.orphans = orphans  # type: ignore[attr-defined]
    yield start
    for d in started:
        orphans.extend(d.descendants())
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
    for p in orphans:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass
