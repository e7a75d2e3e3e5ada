"""The statistics of one batch of zones, weighted by exactextract's coverage fractions.

``coverage="exact"`` is exactextract's own answer: every cell weighted by the fraction of it the zone
covers (its ``feature-sequential`` strategy reads only each zone's window of the raster, so memory is
bounded by the largest zone, not the raster). ``centre`` and ``all_touched`` are GDAL's rasterization
rules (a cell counts if its centre is inside; if the zone touches it at all), with NumPy statistics over
the counted cells of each zone's window.

Nodata is excluded. A zone that covers no data (outside the raster, or over nodata only) gets a count of
0 and null for every other statistic, as SQL's aggregates do, never zeros. Columns are the statistics'
names for a one-band raster, and ``{band}_{stat}`` per band otherwise (the band's description, or
``b1..bN``).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio

from ..storage import gdal_env, gdal_path

if TYPE_CHECKING:
    import geopandas as gpd
    import pandas as pd

#: the statistics, by their names here -> exactextract's
STATS = {"count": "count", "sum": "sum", "mean": "mean", "min": "min", "max": "max", "std": "stdev",
         "median": "median", "majority": "majority"}
COVERAGE = ("exact", "centre", "all_touched")
#: exactextract runs one call at a time in a process. One test run hung while two threads of a worker
#: were in it (the cause was not found); the parallelism comes from the worker processes anyway.
_EXACT = threading.Lock()


def band_names(src: rasterio.io.DatasetReader) -> list[str]:
    return [d if d and d.isidentifier() else f"b{i}" for i, d in enumerate(src.descriptions, start=1)]


def columns(stats: Sequence[str], bands: Sequence[str]) -> list[str]:
    """The table's statistic columns, in order."""
    if len(bands) == 1:
        return list(stats)
    return [f"{b}_{s}" for b in bands for s in stats]


def batch_stats(raster: str, zones: gpd.GeoDataFrame, *, id_col: str, stats: Sequence[str], coverage: str,
                storage_options: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """One row per zone of ``zones`` (in the raster's CRS): its id, its order and its statistics."""
    import pandas as pd

    with rasterio.Env(**gdal_env(raster, storage_options)), rasterio.open(gdal_path(raster)) as src:
        bands = band_names(src)
        cols = columns(stats, bands)
        present = zones[zones.geometry.notna() & ~zones.geometry.is_empty]
        if coverage == "exact" and len(present):
            table = _exact(src, present, id_col, stats, bands)
        else:
            table = _rasterized(src, present, id_col, stats, bands, all_touched=coverage == "all_touched")
    # results are aligned by position (exactextract gives ids back as strings whatever their type)
    keep = zones[[id_col, "__order"]].join(table.drop(columns=[id_col], errors="ignore"), how="left")
    for c in cols:
        if c not in keep:
            keep[c] = np.nan
    for band in bands:
        prefix = "" if len(bands) == 1 else f"{band}_"
        count = keep.get(f"{prefix}count")
        none = (count.fillna(0) == 0) if count is not None else None
        for s in stats:
            col = f"{prefix}{s}"
            if s == "count":
                keep[col] = keep[col].fillna(0.0)
            elif none is not None:
                keep.loc[none, col] = np.nan
    return pd.DataFrame(keep[[id_col, "__order", *cols]])


def _exact(src: Any, zones: gpd.GeoDataFrame, id_col: str, stats: Sequence[str], bands: Sequence[str]) -> pd.DataFrame:
    from exactextract import exact_extract

    ops = [STATS[s] for s in stats]
    if "count" not in stats:
        ops.append("count")  # to tell zones without data (null statistics) from zones with zeros
    with _EXACT:
        df = exact_extract(src, zones[["geometry"]], ops, output="pandas", strategy="feature-sequential")
    df.index = zones.index
    names = {}
    for i, band in enumerate(bands, start=1):
        for s in [*stats, "count"]:
            theirs = STATS[s] if len(bands) == 1 else f"band_{i}_{STATS[s]}"
            names[theirs] = s if len(bands) == 1 else f"{band}_{s}"
    return df.rename(columns=names)


def _rasterized(src: Any, zones: gpd.GeoDataFrame, id_col: str, stats: Sequence[str], bands: Sequence[str], *,
                all_touched: bool) -> pd.DataFrame:
    """Statistics over the cells GDAL's rasterization counts (centre, or all touched), zone by zone."""
    import pandas as pd
    from rasterio.features import geometry_mask
    from rasterio.windows import Window

    rows = []
    inv = ~src.transform
    for zid, geom in zip(zones[id_col], zones.geometry, strict=True):
        row: dict[str, Any] = {id_col: zid}
        minx, miny, maxx, maxy = geom.bounds
        (ca, ra), (cb, rb) = inv * (minx, maxy), inv * (maxx, miny)
        # the zone's window, one cell wider on every side (all_touched counts cells its edge grazes)
        col0, col1 = max(0, math.floor(min(ca, cb)) - 1), min(src.width, math.ceil(max(ca, cb)) + 1)
        row0, row1 = max(0, math.floor(min(ra, rb)) - 1), min(src.height, math.ceil(max(ra, rb)) + 1)
        values = None
        if col1 > col0 and row1 > row0:
            win = Window(col0, row0, col1 - col0, row1 - row0)
            data = src.read(window=win, masked=True)
            inside = ~geometry_mask([geom], out_shape=data.shape[1:], transform=src.window_transform(win),
                                    all_touched=all_touched)
            values = [band[inside & ~np.ma.getmaskarray(band)].data for band in data]
        for i, band in enumerate(bands):
            v = values[i] if values is not None else np.array([])
            prefix = "" if len(bands) == 1 else f"{band}_"
            for s in {*stats, "count"}:
                row[f"{prefix}{s}"] = _stat(s, v)
        rows.append(row)
    return pd.DataFrame(rows, index=zones.index) if rows else pd.DataFrame(columns=[id_col])


def _stat(name: str, v: np.ndarray) -> float:
    if name == "count":
        return float(v.size)
    if v.size == 0:
        return float("nan")
    if name == "majority":
        vals, counts = np.unique(v, return_counts=True)
        return float(vals[np.argmax(counts)])
    fn = {"sum": np.sum, "mean": np.mean, "min": np.min, "max": np.max, "std": np.std, "median": np.median}[name]
    return float(fn(v.astype("float64")))
