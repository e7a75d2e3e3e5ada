"""Fixtures for deployment tests: a Dask cluster made of real ``dask scheduler`` / ``dask worker`` processes.

``dask_processes`` starts, on loopback, one ``dask scheduler`` and two ``dask worker`` processes, the way a
cluster is started by hand or by Kubernetes pods. The workers get an environment with every ``AZURE_*``
variable removed: storage credentials must reach them with the tasks, never through their environment.
"""

from __future__ import annotations

import subprocess

import pytest
from kit.services import DaskProcesses, missing, start_dask_processes


@pytest.fixture(scope="module")
def dask_processes(tmp_path_factory) -> DaskProcesses:
    """A ``dask scheduler`` and two ``dask worker`` processes on 127.0.0.1, workers without AZURE_* vars."""
    procs = start_dask_processes(tmp_path_factory.mktemp("dask-processes"))
    yield procs
    procs.stop()


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
