"""Opening rasters as lazy xarray: what ``geoproc.open`` returns.

One raster becomes a Dask-backed ``xarray.DataArray`` with dims ``(band, y, x)`` through rioxarray:
chunks are whole multiples of the file's blocks (a chunk never reads a block twice), the band
coordinate holds the band names (the GDAL band descriptions, else ``b1``, ``b2``, ...), and ``.rio``
and ``.odc`` work on it.

**Names are content-addressed.** The Dask name of the array is a token of what was opened: the URL,
the file's identity (size and modification time, or the blob's etag), the chunks, the bands and
``masked``. Opening the same file the same way gives the same token, so a computation built on it has
the same identity in every session, and a write of it resumes instead of starting over. rioxarray's own
name leaves ``masked`` out (a masked and an unmasked open of one file would collide in one graph);
the array is therefore opened without chunks, which stays lazy, and chunked with this token.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import rasterio
from dask.base import tokenize

from ..storage import gdal_env, gdal_path, is_local, local_path, open_fs, redact, storage_errors
from ..storage.urls import canonical
from .io import raster_errors

if TYPE_CHECKING:
    import xarray as xr

#: the chunk edge used when the file's blocks are strips or tiny: large enough to amortise a task
DEFAULT_CHUNK = 1024


def open_one(url: str, *, chunks: int | Sequence[int] | None = None, bands: Sequence[int | str] | None = None,
             masked: bool = False, storage_options: Mapping[str, Any] | None = None) -> xr.DataArray:
    """Open one raster lazily as ``(band, y, x)``.

    Args:
        url: a local path or any URL GDAL reads (``az://`` through the storage credential chain).
        chunks: the chunk edge in pixels (or ``(y, x)``); default: the file's block size, grown to
            about :data:`DEFAULT_CHUNK`, so that chunks hold whole blocks.
        bands: the bands to keep, by 1-based index or by name (a band description).
        masked: nodata read as NaN (floating point), as rioxarray's ``masked=True``.
        storage_options: credentials per protocol (default: none; ``geoproc.open`` resolves them).
    """
    import odc.geo.xr  # noqa: F401 - registers the .odc accessor on what we return (heavy: loaded on use)
    import rioxarray

    so = storage_options or {}
    with raster_errors(url, "opened"), rasterio.Env(**gdal_env(url, so)):
        da = rioxarray.open_rasterio(gdal_path(url), lock=False, masked=masked)
        with rasterio.open(gdal_path(url)) as src:
            blocks = src.block_shapes[0]
            names = [d or f"b{i}" for i, d in enumerate(src.descriptions, start=1)]
    da = da.assign_coords(band=names)
    if bands is not None:
        da = da.sel(band=[_band_name(b, names) for b in bands])
    size = _chunk_shape(chunks, blocks)
    token = tokenize(redact(canonical(url)), _identity(url, so), size, list(da.band.values), masked)
    da = da.chunk({"band": 1, "y": size[0], "x": size[1]}, name_prefix="open_rasterio-", token=token)
    da.attrs.pop("long_name", None)  # one name per band lives in the band coordinate, not in attrs
    da.name = None
    return da


def _band_name(band: int | str, names: list[str]) -> str:
    if isinstance(band, int) and not isinstance(band, bool):
        if not 1 <= band <= len(names):
            raise ValueError(f"band {band} does not exist; the raster has bands 1 to {len(names)}")
        return names[band - 1]
    if band not in names:
        raise ValueError(f"no band named {band!r}; the bands are {', '.join(names)}")
    return str(band)


def _chunk_shape(chunks: int | Sequence[int] | None, blocks: tuple[int, int]) -> tuple[int, int]:
    if chunks is None:
        by, bx = blocks
        grow = lambda b: b * max(1, DEFAULT_CHUNK // b) if b < DEFAULT_CHUNK else b  # noqa: E731
        return (grow(by) if by > 1 else DEFAULT_CHUNK, grow(bx))
    if isinstance(chunks, int):
        return (chunks, chunks)
    cy, cx = chunks
    return (int(cy), int(cx))


def _identity(url: str, storage_options: Mapping[str, Any]) -> tuple[Any, ...]:
    """What tells this version of the file from another: size and mtime locally, size and etag remotely."""
    if is_local(url):
        st = os.stat(local_path(url))
        return (st.st_size, st.st_mtime_ns)
    with storage_errors(url, "read"):
        fs, path = open_fs(url, storage_options)
        info = fs.info(path)
    return (info.get("size"), info.get("etag") or info.get("ETag") or info.get("last_modified"))
