"""``geoproc`` command-line processes started by the tests, and the process trees they leave.

Drivers are real ``python -m geoproc.cli`` processes in their own session. ``spawn`` pipes their output
(for short runs read with ``communicate``); ``Driver`` writes it to files, because a long-running driver
would block on a full pipe. ``assert_reaped`` checks that a killed driver's cluster went away with it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil


def geoproc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "geoproc.cli", *args]


def spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``geoproc ARGS`` as a separate driver process in its own process group."""
    return subprocess.Popen(geoproc_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)


class Driver:
    """A ``geoproc`` CLI process in its own session, with its stdout/stderr in files."""

    def __init__(self, args: list[str], directory: Path, env: dict | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        n = len(list(directory.glob("*.out")))
        self.out_path, self.err_path = directory / f"{n}.out", directory / f"{n}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen(geoproc_cmd(*args), stdout=out, stderr=err,
                                         env={**os.environ, **(env or {})}, start_new_session=True)
        self.pid = self.proc.pid

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def sigkill(self) -> list[psutil.Process]:
        """SIGKILL the driver alone; returns the processes it had started (its cluster), still to be reaped."""
        kids = self.descendants()
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        return kids


def assert_reaped(procs: list[psutil.Process], timeout: float = 30) -> None:
    """The processes a killed driver had started (nannies, workers) all exit on their own."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphan processes left by a killed driver: {[(p.pid, p.cmdline()[:4]) for p in alive]}"
