"""Mosaics: which inputs reach a region, and how a region is made from them in bounded memory.

The driver indexes the inputs' footprints (their extents in the output CRS) in a shapely ``STRtree``
and gives each region task only the inputs that intersect it (:class:`Footprints`). A region task then
brings each of its inputs onto the region's own grid in turn (exact where an input is on the output's
pixel lattice, resampled where it is not) and folds it into one accumulator by the ``overlap``
rule (:func:`mosaic_region`). A task holds its region, one input's window and the accumulator, however
many inputs the mosaic has. Inputs are warped by GDAL (a ``WarpedVRT`` per input and region): in their
own data type, reading only the blocks the region needs; on the output's pixel lattice with nearest
neighbour this is a copy.

Overlap rules, nodata-aware (nodata never wins; a pixel no input covers is nodata):

* ``first`` / ``last``: the first / last input (in the inputs' order) with a value there;
* ``min`` / ``max``: the smallest / largest value;
* ``mean``: the mean of the values (rounded to the nearest integer for integer outputs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio

from ..storage import gdal_env, gdal_path
from .io import raster_errors

if TYPE_CHECKING:
    import xarray as xr
    from odc.geo.geobox import GeoBox

OVERLAP = ("first", "last", "min", "max", "mean")


class Footprints:
    """The inputs' extents in one CRS, indexed to find the inputs a rectangle intersects."""

    def __init__(self, arrays: Sequence[xr.DataArray], crs: Any):
        from shapely import STRtree, box

        self.boxes = [tuple(a.odc.geobox.extent.to_crs(crs).boundingbox) for a in arrays]
        self._tree = STRtree([box(*b) for b in self.boxes])

    def within(self, bbox: Sequence[float]) -> list[int]:
        """Indices (in the inputs' order) of the inputs whose extent overlaps ``bbox`` with some area."""
        from shapely import box

        area = box(*bbox)
        hits = self._tree.query(area, predicate="intersects")
        return sorted(int(i) for i in hits if box(*self.boxes[i]).intersection(area).area > 0)


def region_bbox(grid: GeoBox, y: Sequence[int], x: Sequence[int]) -> tuple[float, float, float, float]:
    """The bounds of the pixels ``y[0]:y[1]``, ``x[0]:x[1]`` of ``grid``, in its CRS."""
    return tuple(grid[slice(*y), slice(*x)].extent.boundingbox)  # type: ignore[return-value]


def work_dtype(dtype: Any) -> np.dtype:
    """The float type that holds every value of ``dtype`` exactly (and NaN for nodata)."""
    dt = np.dtype(dtype)
    return np.dtype("float64") if dt == np.float64 or (dt.kind in "iu" and dt.itemsize >= 4) else np.dtype("float32")


def mosaic_region(urls: Sequence[str], grid: GeoBox, *, bands: int, overlap: str, dtype: Any,
                  nodata: float | None, resampling: str = "nearest",
                  storage_options: Mapping[str, Any] | None = None) -> np.ndarray:
    """The ``(band, y, x)`` pixels of ``grid`` (one region) mosaicked from ``urls`` by ``overlap``."""
    work = work_dtype(dtype)
    acc = np.full((bands, *grid.shape), np.nan, dtype=work)
    count = np.zeros(acc.shape, dtype="uint32") if overlap == "mean" else None
    for url in urls:
        x = _warped(url, grid, bands=bands, resampling=resampling, work=work, storage_options=storage_options)
        valid = ~np.isnan(x)
        if overlap == "first":
            take = valid & np.isnan(acc)
            acc[take] = x[take]
        elif overlap == "last":
            acc[valid] = x[valid]
        elif overlap == "min":
            acc = np.fmin(acc, x)
        elif overlap == "max":
            acc = np.fmax(acc, x)
        else:
            assert count is not None
            acc = np.where(valid, np.nan_to_num(acc) + x, acc)
            count += valid
        del x, valid
    if count is not None:
        with np.errstate(invalid="ignore", divide="ignore"):
            acc = np.where(count > 0, acc / np.maximum(count, 1), np.nan)
    return to_dtype(acc, dtype, nodata)


def _warped(url: str, grid: GeoBox, *, bands: int, resampling: str, work: np.dtype,
            storage_options: Mapping[str, Any] | None) -> np.ndarray:
    """``url`` on the region's grid, read through GDAL's warper (a WarpedVRT: native types, only the
    source blocks the region needs), NaN where the input has no data or does not reach."""
    from rasterio.enums import Resampling
    from rasterio.vrt import WarpedVRT

    with rasterio.Env(**gdal_env(url, storage_options)), raster_errors(url, "read"), \
            rasterio.open(gdal_path(url)) as src:
        alpha = src.nodata is None  # no nodata: an alpha band tells where the input does not reach
        with WarpedVRT(src, crs=grid.crs.to_wkt(), transform=grid.transform, width=grid.shape.x,
                       height=grid.shape.y, resampling=Resampling[resampling], add_alpha=alpha) as vrt:
            data = vrt.read(indexes=list(range(1, bands + 1)), masked=True)
    return np.ma.filled(data.astype(work), np.nan)


def to_dtype(acc: np.ndarray, dtype: Any, nodata: float | None) -> np.ndarray:
    """``acc`` (NaN where nothing was valid) as ``dtype`` with ``nodata``; integers are rounded."""
    dt = np.dtype(dtype)
    empty = np.isnan(acc)
    if dt.kind in "iu":
        acc = np.rint(acc)
    fill = np.nan if nodata is None and dt.kind == "f" else (0 if nodata is None else nodata)
    acc[empty] = fill
    return acc.astype(dt)
