from __future__ import annotations

import sys
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
