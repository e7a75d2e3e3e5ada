"""Fixtures of the STAC tests: small COGs and unique collection ids (validators: ``kit.stac``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from kit.rasters import write_small_cogs


@pytest.fixture
def collection_id(request) -> str:
    """A collection id no other test uses (the pgstac database is shared by the session)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{slug}-{time.time_ns() % 10**10}"


@pytest.fixture
def small_cogs(tmp_path):
    """``make(n, directory=None)`` -> list of Paths of n small COGs (64x64 uint8, distinct places and dates)."""

    def make(n: int, directory: Path | None = None, size: int = 64) -> list[Path]:
        return write_small_cogs(Path(directory or tmp_path / "cogs"), n, size)

    return make
