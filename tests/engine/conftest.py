from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))


@pytest.fixture(scope="session")
def engine_client(dask_cluster):
    """A client of the shared cluster whose workers also know the test job types."""
    import testjobs
    from distributed import Client

    with Client(dask_cluster) as client:
        client.upload_file(str(HERE / "testjobs.py"))
        client.run(testjobs.register_on_worker)
        yield client


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request, tmp_path):
    """The same tests run against SQLite and a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue("postgres_url")


def geoproc_cmd(*args: str) -> list[str]:
    return [sys.executable, "-m", "geoproc.cli", *args]


def spawn(*args: str, env: dict | None = None) -> subprocess.Popen:
    """Start ``geoproc ARGS`` as a separate driver process in its own process group."""
    return subprocess.Popen(geoproc_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})}, start_new_session=True)


def wait_for(predicate, timeout: float = 60, interval: float = 0.1):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError("condition not reached in time")
