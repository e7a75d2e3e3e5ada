"""Quicklooks: a small PNG picture of a raster, for reports and notebooks.

The picture is read from the smallest overview that still gives ``max_side`` pixels (a COG has them,
so a quicklook costs a few range requests). RGB(A) imagery is shown as it is; a band with a colour
table is painted with it; anything else is a grey ramp stretched between the 2nd and 98th
percentiles. Nodata is transparent.
"""

from __future__ import annotations

import numpy as np
import rasterio
from rasterio.enums import Resampling


def _stretch(band: np.ma.MaskedArray) -> np.ndarray:
    valid = band.compressed()
    valid = valid[np.isfinite(valid)] if valid.dtype.kind == "f" else valid
    if valid.size == 0:
        return np.zeros(band.shape, np.uint8)
    lo, hi = np.percentile(valid, [2, 98])
    if hi <= lo:
        hi = lo + 1
    scaled = (np.ma.filled(band.astype("float64"), lo) - lo) / (hi - lo)
    return (np.clip(np.nan_to_num(scaled, nan=0.0), 0, 1) * 255).astype(np.uint8)


def render(src: rasterio.DatasetReader, raster_type: str, max_side: int = 256) -> np.ndarray:
    """An RGBA uint8 array ``(4, h, w)`` picturing ``src``."""
    scale = max(1.0, max(src.width, src.height) / max_side)
    h, w = max(1, round(src.height / scale)), max(1, round(src.width / scale))
    resampling = Resampling.nearest if raster_type == "categorical" else Resampling.average
    if raster_type in ("rgb", "rgba") and src.count >= 3 and src.dtypes[0] == "uint8":
        data = src.read([1, 2, 3], out_shape=(3, h, w), masked=True, resampling=resampling)
        rgb = np.ma.filled(data, 0).astype(np.uint8)
        alpha = src.read(4, out_shape=(h, w), resampling=resampling) if src.count >= 4 else None
    else:
        band = src.read(1, out_shape=(h, w), masked=True, resampling=resampling)
        try:
            cmap = src.colormap(1)
        except ValueError:
            cmap = None
        if cmap:
            lut = np.zeros((256, 3), np.uint8)
            for value, color in cmap.items():
                if 0 <= value < 256:
                    lut[value] = color[:3]
            rgb = lut[np.ma.filled(band, 0).astype(np.uint8)].transpose(2, 0, 1)
        else:
            grey = _stretch(band)
            rgb = np.stack([grey, grey, grey])
        alpha = None
        data = band[np.newaxis]
    if alpha is None:
        alpha = np.where(np.ma.getmaskarray(data).all(axis=0), 0, 255).astype(np.uint8)
    return np.concatenate([rgb, alpha[np.newaxis].astype(np.uint8)])


def write_quicklook(raster_path: str, png_path: str, raster_type: str, max_side: int = 256) -> tuple[int, int]:
    """Write the quicklook of a local raster as a PNG; returns its (height, width)."""
    with rasterio.open(raster_path) as src:
        rgba = render(src, raster_type, max_side)
    _, h, w = rgba.shape
    with rasterio.open(png_path, "w", driver="PNG", width=w, height=h, count=4, dtype="uint8") as dst:
        dst.write(rgba)
    return h, w
