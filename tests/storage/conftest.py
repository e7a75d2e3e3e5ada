"""Fixtures for the raster and cog job tests: a ledger per test, Azurite containers, a run helper."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def ledger_url(tmp_path):
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def az_container(azurite):
    """A fresh, empty Azurite container; yields its name."""
    from geoproc.storage import open_fs

    name = f"cog-{uuid.uuid4().hex[:12]}"
    fs, _ = open_fs(f"az://{name}", {"az": {"connection_string": azurite}})
    fs.mkdir(name)
    return name


@pytest.fixture
def az_options(azurite):
    return {"az": {"connection_string": azurite}}
