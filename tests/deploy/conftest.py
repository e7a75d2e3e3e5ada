"""Fixtures for deployment tests: a Dask cluster made of real ``dask scheduler`` / ``dask worker`` processes.

``dask_processes`` starts, on loopback, one ``dask scheduler`` and two ``dask worker`` processes, the way a
cluster is started by hand or by Kubernetes pods. The workers get an environment with every ``AZURE_*``
variable removed: storage credentials must reach them with the tasks, never through their environment.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

DASK = Path(sys.executable).with_name("dask")
REQUIRE = os.environ.get("GEOPROC_REQUIRE_SERVICES") == "1"


def missing(what: str) -> None:
    """Skip, or fail when services are required (as the root conftest does)."""
    if REQUIRE:
        pytest.fail(f"required service unavailable: {what}")
    pytest.skip(f"service unavailable: {what}")


@dataclass
class DaskProcesses:
    """A running scheduler and its workers; ``address`` is ``tcp://127.0.0.1:PORT``."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: Path | None = None


def _stop(procs: list[subprocess.Popen]) -> None:
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _wait_for_workers(address: str, n: int, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout="20s") as client:
        client.wait_for_workers(n, timeout=timeout)


@pytest.fixture(scope="module")
def dask_processes(tmp_path_factory) -> DaskProcesses:
    """A ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, workers without AZURE_* vars."""
    if not DASK.exists():
        missing(f"the dask command line ({DASK})")
    d = tmp_path_factory.mktemp("dask-processes")
    sched_file = d / "scheduler.json"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    sched = subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(sched_file)],
        env=base_env, stdout=open(d / "scheduler.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )
    procs = [sched]
    deadline = time.time() + 60
    while not sched_file.exists() and time.time() < deadline and sched.poll() is None:
        time.sleep(0.2)
    if not sched_file.exists():
        _stop(procs)
        missing(f"dask scheduler did not start: {(d / 'scheduler.log').read_text()[-2000:]}")
    address = json.loads(sched_file.read_text())["address"]
    workers = []
    for i in range(2):
        w = subprocess.Popen(
            [str(DASK), "worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "2",
             "--memory-limit", "2GiB", "--no-dashboard", "--name", f"deploy-worker-{i}",
             "--local-directory", str(d / f"w{i}")],
            env=base_env, stdout=open(d / f"worker{i}.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        workers.append(w)
    procs += workers
    try:
        _wait_for_workers(address, 2)
    except Exception as exc:  # noqa: BLE001
        _stop(procs)
        logs = "\n".join((d / f"worker{i}.log").read_text()[-1500:] for i in range(2))
        missing(f"dask workers did not join the scheduler: {exc}\n{logs}")
    yield DaskProcesses(address=address, scheduler=sched, workers=workers, logs=d)
    _stop(workers + [sched])


# --- headless Chromium ---------------------------------------------------------------------------------

CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--force-device-scale-factor=1"]


@pytest.fixture
def chromium(tmp_path):
    """``chromium(*args)`` runs Debian's headless Chromium with a fresh profile; returns the finished process."""
    import shutil

    exe = shutil.which("chromium")
    if exe is None:
        missing("chromium (apt-get install chromium; setup.sh installs it)")
    counter = iter(range(1000))

    def run(*args: str, timeout: float = 90) -> subprocess.CompletedProcess:
        profile = tmp_path / f"chromium-profile-{next(counter)}"
        profile.mkdir()
        return subprocess.run([exe, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
                              capture_output=True, text=True, timeout=timeout, cwd=tmp_path)

    return run


@pytest.fixture
def threaded_client():
    """A Dask client of an in-process cluster (threads): job types registered by a test are known to it."""
    from distributed import Client, LocalCluster

    with LocalCluster(n_workers=1, threads_per_worker=2, processes=False, dashboard_address=None) as cluster:
        with Client(cluster) as client:
            yield client
