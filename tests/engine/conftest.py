"""Fixtures of the engine tests: the shared cluster with the test job types, and a ledger per backend."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit import testjobs


@pytest.fixture(scope="session")
def engine_client(dask_cluster):
    """A client of the shared cluster whose workers also know the test job types (``kit.testjobs``).

    The job types are registered in this process by the import above; the workers import the uploaded
    file, and so will a worker that restarts.
    """
    from distributed import Client

    with Client(dask_cluster) as client:
        client.upload_file(str(Path(testjobs.__file__)))
        yield client


@pytest.fixture(params=["sqlite", "postgres"])
def ledger_url(request, tmp_path):
    """The same tests run against SQLite and a real PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/ledger.db"
    return request.getfixturevalue("postgres_url")
