"""Helpers for the engine tests: run geoproc as separate driver processes, and wait for conditions.

A module of its own (not conftest) so that test files import it by a name no other folder uses.
"""

from __future__ import annotations

import os
import subprocess
import sys

from polling import wait_for  # noqa: F401  (re-exported for the tests)


def geoproc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "geoproc.cli", *args]


def spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``geoproc ARGS`` as a separate driver process in its own process group."""
    return subprocess.Popen(geoproc_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)


