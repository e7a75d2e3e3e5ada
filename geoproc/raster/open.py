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

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import rasterio
from dask.base import tokenize

from ..errors import BANDS_DIFFER, NO_OVERLAP, NOTHING_TO_OPEN, SUBDATASETS, InvalidInput, InvalidSetting
from ..storage import gdal_env, gdal_path, redact, version_of
from ..storage.urls import canonical
from .header import source_datetime
from .io import raster_errors

if TYPE_CHECKING:
    import xarray as xr

#: the chunk edge used when the file's blocks are strips or tiny: large enough to amortise a task
DEFAULT_CHUNK = 1024


def open_one(url: str, *, chunks: int | Sequence[int] | None = None, bands: Sequence[int | str] | None = None,
             masked: bool = False, storage_options: Mapping[str, Any] | None = None) -> xr.DataArray:
    """Open one raster lazily as ``(band, y, x)``.

    Reading: inside geoproc's tasks (``geoproc.write``, the ``process`` job) the storage credentials
    travel with each task; an array computed directly in this process (``.values``, ``.plot()``) is
    read with GDAL's own credential lookup (the ``AZURE_STORAGE_*`` environment variables).

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
    with raster_errors(url, "open"), rasterio.Env(**gdal_env(url, so)):
        path = gdal_path(url)
        with rasterio.open(path) as src:
            if src.subdatasets:  # rioxarray would give a Dataset of them, even for a file that is one raster
                path = _one_subdataset(url, src.subdatasets)
        with rasterio.open(path) as src:
            blocks = src.block_shapes[0]
            names = [d or f"b{i}" for i, d in enumerate(src.descriptions, start=1)]
        # rioxarray's process-wide lock: one GDAL read at a time per process. Two threads of one worker
        # reading the same file without it hung in GDAL (seen in the tests, with py-spy: both threads in
        # RasterioArrayWrapper._getitem -> riods.read); workers read in parallel across processes.
        da = rioxarray.open_rasterio(path, lock=None, masked=masked)
    da = da.assign_coords(band=names)
    if bands is not None:
        da = da.sel(band=[_band_name(b, names) for b in bands])
    size = _chunk_shape(chunks, blocks)
    token = tokenize(redact(canonical(url)), version_of(url, so), size, list(da.band.values), masked)
    da = da.chunk({"band": 1, "y": size[0], "x": size[1]}, name_prefix="open_rasterio-", token=token)
    da.attrs.pop("long_name", None)  # one name per band lives in the band coordinate, not in attrs
    da.name = None
    return da


def _one_subdataset(url: str, subdatasets: Sequence[str]) -> str:
    """The GDAL name of a file's only subdataset (an NTv2 grid, a NetCDF variable); refuse a choice."""
    if len(subdatasets) == 1:
        return subdatasets[0]
    listed = ", ".join(redact(s) for s in subdatasets[:5]) + (", ..." if len(subdatasets) > 5 else "")
    raise InvalidInput(f"{redact(url)} holds {len(subdatasets)} rasters ({listed}); open one of them by its GDAL "
                       "name", code=SUBDATASETS)


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


def reproject(da: xr.DataArray, *, crs: Any = None, resolution: float | None = None,
              bounds: Sequence[float] | None = None, resampling: str = "nearest") -> xr.DataArray:
    """``da`` reprojected lazily onto the grid given by ``crs`` / ``resolution`` / ``bounds`` (each
    defaulting to ``da``'s own), with a content-addressed name (see :func:`onto`)."""
    grid = target_grid([da], crs=crs, resolution=resolution, bounds=bounds)
    check_overlap([da], grid)
    return onto(da, grid, resampling=resampling)


def check_overlap(arrays: Sequence[xr.DataArray], grid: Any) -> None:
    """Refuse a grid that none of the rasters overlaps (every output pixel would be nodata)."""
    if not any(a.odc.geobox.extent.to_crs(grid.crs).intersects(grid.extent) for a in arrays):
        b = grid.boundingbox
        raise InvalidInput(f"no input overlaps the output grid ({b.left:g}, {b.bottom:g}, {b.right:g}, {b.top:g} in "
                           f"{grid.crs}); check bounds= (given in the output CRS) and the inputs.", code=NO_OVERLAP)


def target_grid(arrays: Sequence[xr.DataArray], *, crs: Any = None, resolution: float | None = None,
                bounds: Sequence[float] | None = None) -> Any:
    """The one ``GeoBox`` several rasters are loaded onto.

    ``crs`` defaults to the first raster's; ``resolution`` to the first raster's (its native one in
    that CRS, as GDAL would choose); ``bounds`` (in ``crs``) to the union of the rasters' extents.
    In the first raster's CRS and resolution the grid keeps its pixel lattice (bounds are widened to
    whole pixels of it), so rasters cut from one grid land on it without resampling.
    """
    from odc.geo.geobox import GeoBox

    first = arrays[0].odc.geobox
    crs = first.crs if crs is None else crs
    if resolution is None:
        native = first if first.crs == crs else arrays[0].odc.output_geobox(crs)
        resolution = abs(native.resolution.x)
    if bounds is None:
        boxes = [a.odc.geobox.extent.to_crs(crs).boundingbox for a in arrays]
        bounds = (min(b.left for b in boxes), min(b.bottom for b in boxes), max(b.right for b in boxes),
                  max(b.top for b in boxes))
    t = first.transform
    if first.crs == crs and t.b == t.d == 0 and abs(t.a) == -t.e == resolution:
        return GeoBox.from_bbox(_on_lattice(bounds, t.c, t.f, resolution), crs, resolution=resolution, tight=True)
    return GeoBox.from_bbox(tuple(bounds), crs, resolution=resolution)


def _on_lattice(bounds: Sequence[float], x0: float, y0: float, res: float) -> tuple[float, float, float, float]:
    """``bounds`` widened to whole pixels of the lattice through ``(x0, y0)`` with pixel size ``res``."""
    import math

    eps = 1e-6
    left, bottom, right, top = bounds
    return (x0 + math.floor((left - x0) / res + eps) * res, y0 - math.ceil((y0 - bottom) / res - eps) * res,
            x0 + math.ceil((right - x0) / res - eps) * res, y0 - math.floor((y0 - top) / res + eps) * res)


def onto(da: xr.DataArray, grid: Any, *, resampling: str = "nearest") -> xr.DataArray:
    """``da`` on ``grid`` (an odc-geo ``GeoBox``), lazily, with a deterministic Dask name.

    odc-geo names its reprojection keys with ``uuid4``: a computation built on them would get a new
    identity in every session, and its write would never resume. The result is therefore wrapped in
    one blockwise identity layer named from a token of the source's name, the grid and the kernel;
    identities are taken from that outermost name.
    """
    import dask.array as dsa
    from odc.geo.xr import xr_reproject

    if da.odc.geobox == grid:
        return da
    nodata = da.rio.nodata
    out = xr_reproject(da, grid, resampling=resampling, dst_nodata=nodata if nodata is not None else "auto")
    name = "reproject-" + tokenize(da.data.name, grid, resampling, nodata)
    data = dsa.map_blocks(_same, out.data, name=name, dtype=out.dtype, meta=out.data._meta)
    out = out.copy(data=data)
    out.name = da.name  # odc-geo names the DataArray after its uuid keys too
    out.attrs = dict(da.attrs)
    return out.rio.write_nodata(nodata, encoded=False) if nodata is not None else out


def _same(block: Any) -> Any:
    return block


def open_many(urls: Sequence[str], *, crs: Any = None, resolution: float | None = None,
              bounds: Sequence[float] | None = None, chunks: int | Sequence[int] | None = None,
              bands: Sequence[int | str] | None = None, resampling: str = "nearest", masked: bool = False,
              storage_options: Mapping[str, Any] | None = None) -> xr.DataArray:
    """Several rasters on one grid, reprojected on load, as ``(time, band, y, x)``.

    The grid is :func:`target_grid`'s. The ``time`` coordinate holds each file's own datetime (its
    TIFF tags) when every file has one, else its position; ``source`` names the files. Their bands
    must match (by name, after ``bands``).
    """
    import numpy as np
    import xarray as xr

    if not urls:
        raise InvalidInput("no rasters to open: the list, directory or search matched nothing.",
                           code=NOTHING_TO_OPEN)
    arrays = [open_one(u, chunks=chunks, bands=bands, masked=masked, storage_options=storage_options) for u in urls]
    names = [list(a.band.values) for a in arrays]
    if any(n != names[0] for n in names):
        raise InvalidInput(f"the rasters have different bands ({names[0]} and others); choose common ones with "
                           "bands=[...].", code=BANDS_DIFFER)
    grid = target_grid(arrays, crs=crs, resolution=resolution, bounds=bounds)
    check_overlap(arrays, grid)
    on_grid = [onto(a, grid, resampling=resampling) for a in arrays]
    times = [_datetime_of(u, storage_options or {}) for u in urls]
    time = (np.array(times, dtype="datetime64[s]") if all(times) else np.arange(len(urls)))
    out = xr.concat(on_grid, dim="time", coords="minimal", compat="override", join="override",
                    combine_attrs="override")
    out = out.assign_coords(time=("time", time), source=("time", [redact(u) for u in urls]))
    return out.transpose("time", "band", "y", "x")


def _datetime_of(url: str, storage_options: Mapping[str, Any]) -> str | None:
    with raster_errors(url, "read"), rasterio.Env(**gdal_env(url, storage_options)), \
            rasterio.open(gdal_path(url)) as src:
        when = source_datetime(src.tags())
    return when.rstrip("Z") if when else None


def open_items(items: Sequence[Mapping[str, Any]], *, crs: Any = None, resolution: float | None = None,
               bounds: Sequence[float] | None = None, chunks: int | Sequence[int] | None = None,
               bands: Sequence[str] | None = None, resampling: str = "nearest") -> xr.DataArray:
    """STAC items loaded onto one grid by odc-stac, as ``(time, band, y, x)``.

    The grid is ``crs`` / ``resolution`` / ``bounds`` (bounds in the output CRS); without them odc-stac
    takes the items' native grid from their ``proj:`` fields. Bands are odc-stac's names: the asset key
    for a one-band asset, ``<asset>.<n>`` for the bands of a multi-band one. Like every array geoproc
    opens, the result has a content-addressed name: a token of the items (ids, hrefs, checksums and
    all), the grid, the bands, the chunks and the kernel.
    """
    import dask.array as dsa
    import odc.stac
    import pystac
    import rioxarray  # noqa: F401 - the .rio accessor on what we return
    from odc.geo.geobox import GeoBox

    if not items:
        raise InvalidInput("no STAC items to open: the catalog is empty or the search matched nothing; check "
                           "its collections, bbox and datetime.", code=NOTHING_TO_OPEN)
    ordered = sorted(items, key=lambda i: (i.get("properties", {}).get("datetime") or "", i["id"]))
    stac_items = [pystac.Item.from_dict(dict(i)) for i in ordered]
    size = _chunk_shape(chunks, (512, 512))
    kw: dict[str, Any] = {"chunks": {"y": size[0], "x": size[1]}, "resampling": resampling, "groupby": "id"}
    if bands is not None:
        kw["bands"] = list(bands)
    if bounds is not None:
        if crs is None or resolution is None:
            raise InvalidSetting("bounds= needs crs= and resolution= with STAC items (bounds are in the output CRS)")
        kw["geobox"] = GeoBox.from_bbox(tuple(bounds), crs, resolution=resolution)
    elif crs is not None or resolution is not None:
        kw.update({k: v for k, v in (("crs", crs), ("resolution", resolution)) if v is not None})
    try:
        ds = odc.stac.load(stac_items, **kw)
    except ValueError as exc:
        raise InvalidInput(f"the STAC items cannot be loaded onto one grid: {exc}; give crs= and resolution=",
                           code=NOTHING_TO_OPEN) from None
    names = list(ds.data_vars)
    nodata = ds[names[0]].attrs.get("nodata")
    out = ds.to_dataarray("band").transpose("time", "band", "y", "x")
    token = tokenize([dict(i) for i in ordered], str(kw.get("geobox") or ""), crs, resolution, bands, size, resampling)
    data = dsa.map_blocks(_same, out.data, name="stac-load-" + token, dtype=out.dtype, meta=out.data._meta)
    out = out.copy(data=data)
    out.name = None
    out.attrs = {}
    out = out.assign_coords(band=names)
    return out.rio.write_nodata(nodata, encoded=False) if nodata is not None else out
