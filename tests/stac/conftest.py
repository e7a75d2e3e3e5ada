"""Fixtures of the STAC tests: small COGs and unique collection ids (validators: ``stac_checks.py``)."""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest


@pytest.fixture
def collection_id(request) -> str:
    """A collection id no other test uses (the pgstac database is shared by the session)."""
    slug = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40]
    return f"{slug}-{time.time_ns() % 10**10}"


@pytest.fixture
def small_cogs(tmp_path):
    """``make(n, directory=None)`` -> list of Paths of n small COGs (64x64 uint8, distinct places and dates)."""
    import numpy as np
    import rasterio
    from rasterio.transform import from_bounds

    def make(n: int, directory: Path | None = None, size: int = 64) -> list[Path]:
        d = Path(directory or tmp_path / "cogs")
        d.mkdir(parents=True, exist_ok=True)
        out = []
        for i in range(n):
            x0, y0 = 10.0 + (i % 20) * 0.01, 45.0 + (i // 20) * 0.01
            p = d / f"tile_{i:04d}_2024{1 + i % 12:02d}{1 + i % 28:02d}.tif"
            data = np.full((1, size, size), (i % 250) + 1, dtype="uint8")
            data[0, : size // 4, : size // 4] = 0
            with rasterio.open(p, "w", driver="COG", width=size, height=size, count=1, dtype="uint8",
                               crs="EPSG:4326", nodata=0,
                               transform=from_bounds(x0, y0, x0 + 0.01, y0 + 0.01, size, size)) as dst:
                dst.write(data)
            out.append(p)
        return out

    return make
