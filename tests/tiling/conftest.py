"""Fixtures of the tiling tests: smooth synthetic rasters (cases, reference warp: ``kit.rasters``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kit.rasters import CASES, NODATA, smooth


@pytest.fixture
def smooth_raster(raster_factory):
    """``make(case, size=1024, bands=3)`` -> Path of a float32 GeoTIFF with nodata -9999."""

    def make(case: str, size: int = 1024, bands: int = 3, **kw) -> Path:
        crs, bounds = CASES[case]
        return raster_factory(f"{case}.tif", crs=crs, bounds=bounds, size=(size, size), nodata=NODATA,
                              data=smooth(bands, size, size), tiled=True, blockxsize=256, blockysize=256, **kw)

    return make
