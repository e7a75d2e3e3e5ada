"""Small synthetic GeoTIFFs for the quickstart and notebooks: a DEM, an RGB image and a land-cover map.

They are deterministic (no randomness), a few MB in all, and each exercises a different path of the
``cog`` job: a float32 UTM DEM with nodata (bilinear warp, average overviews, float predictor), a 3-band
uint8 image (cubic resampling, fits the JPEG tier), and a uint8 categorical map with a colour table
(nearest warp, mode overviews).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_bounds

SAMPLES = ("dem_utm33.tif", "rgb_mercator.tif", "landcover_wgs84.tif")


def _dem(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w].astype("float32")
    z = 800 + 400 * np.sin(xx / 90) * np.cos(yy / 130) + 0.3 * (xx + yy)
    z[: h // 8, : w // 8] = -9999.0  # a nodata corner
    return z[None].astype("float32")


def _rgb(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    r = (xx * 255 // max(1, w - 1)).astype("uint8")
    g = (yy * 255 // max(1, h - 1)).astype("uint8")
    b = (((xx // 32) + (yy // 32)) % 2 * 200 + 30).astype("uint8")
    return np.stack([r, g, b])


def _landcover(h: int, w: int) -> np.ndarray:
    yy, xx = np.mgrid[0:h, 0:w]
    classes = ((xx // 100) + 3 * (yy // 100)) % 6 + 1
    return classes[None].astype("uint8")


def write_samples(directory: str | Path) -> list[Path]:
    """Write the three sample GeoTIFFs into ``directory`` (created if needed); returns their paths."""
    d = Path(directory)
    d.mkdir(parents=True, exist_ok=True)
    out = []
    specs = [
        (SAMPLES[0], _dem(768, 1024), "EPSG:32633", (500000, 5000000, 530720, 5023040), -9999.0,
         {"TIFFTAG_DATETIME": "2024:06:01 10:30:00"}),
        (SAMPLES[1], _rgb(600, 800), "EPSG:3857", (1113194, 6446275, 1193194, 6506275), None, {}),
        (SAMPLES[2], _landcover(700, 700), "EPSG:4326", (10.0, 45.0, 10.7, 45.7), 0, {}),
    ]
    for name, data, crs, bounds, nodata, tags in specs:
        path = d / name
        count, h, w = data.shape
        with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=count, dtype=data.dtype, crs=crs,
                           transform=from_bounds(*bounds, w, h), nodata=nodata, compress="deflate") as dst:
            dst.write(data)
            if tags:
                dst.update_tags(**tags)
            if count == 3:
                dst.colorinterp = [rasterio.enums.ColorInterp.red, rasterio.enums.ColorInterp.green,
                                   rasterio.enums.ColorInterp.blue]
            if name == SAMPLES[2]:
                dst.write_colormap(1, {1: (34, 139, 34, 255), 2: (255, 215, 0, 255), 3: (70, 130, 180, 255),
                                       4: (200, 200, 200, 255), 5: (139, 69, 19, 255), 6: (255, 0, 0, 255)})
        out.append(path)
    return out
