"""NetCDF (classic, netCDF-4 / HDF5) and Zarr sources, opened lazily and decoded the CF way.

Time is decoded with cftime (``CFDatetimeCoder(use_cftime=True)``), so the non-standard calendars of
climate files (360_day, noleap, ...) come back as what they are. A time axis counted from year 0 without
a calendar (ferret's climatologies: "hour since 0000-01-01") cannot be decoded in the default calendar,
which has no year 0; it is decoded in the proleptic Gregorian one, which has.

The spatial dimensions are found from CF attributes (``axis``, ``standard_name``, units in degrees)
or common names (``lat`` / ``lon``, ``y`` / ``x``, ``latitude`` / ``longitude``); a file without them is
refused. The source's own chunking (``encoding["chunks"]``) is dropped, so it does not leak into the
store's.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..errors import CUBE_GRIDS_DIFFER, CUBE_NO_SPACE, CUBE_UNREADABLE, CUBE_VARIABLES, InvalidInput
from ..storage import is_local, local_path, redact

if TYPE_CHECKING:
    import xarray as xr

Y_NAMES = ("lat", "latitude", "y", "rlat", "nav_lat")
X_NAMES = ("lon", "longitude", "x", "rlon", "nav_lon")


#: netCDF-4's cache of decompressed chunks, per variable of an open file (the library's default is 64 MiB).
#: A region reads each of its chunks once, and a worker keeps its files open: with the default, a worker
#: of the 1.9 GB bench kept 64 MiB of chunks it never read again.
NC_CHUNK_CACHE = 8 * 2**20


_chunk_cache_set = False


def _bound_chunk_cache() -> None:
    """Set netCDF-4's chunk cache for the files this process opens from now on, once, under the lock
    xarray holds around every netCDF-C / HDF5 call (a worker's other threads may be reading)."""
    global _chunk_cache_set
    if _chunk_cache_set:
        return
    import netCDF4
    from xarray.backends.netCDF4_ import NETCDF4_PYTHON_LOCK

    with NETCDF4_PYTHON_LOCK:
        if not _chunk_cache_set:
            netCDF4.set_chunk_cache(size=NC_CHUNK_CACHE)
            _chunk_cache_set = True


def open_source(url: str, *, storage_options: Mapping[str, Any] | None = None) -> xr.Dataset:
    """The dataset at ``url`` (NetCDF or Zarr), lazy (Dask, one chunk per variable), CF-decoded."""
    import xarray as xr

    coder = xr.coders.CFDatetimeCoder(use_cftime=True)
    is_zarr = url.rstrip("/").lower().endswith(".zarr")
    path = local_path(url) if is_local(url) else url
    kw: dict[str, Any] = {"chunks": {}}
    if is_zarr:
        kw.update(engine="zarr", consolidated=None, storage_options=None if is_local(url) else dict(storage_options
                                                                                                  or {}))
    else:
        kw["engine"] = "netcdf4" if is_local(url) else "h5netcdf"
        if kw["engine"] == "netcdf4":
            _bound_chunk_cache()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                ds = xr.open_dataset(path, decode_times=coder, **kw)
            except ValueError as exc:  # a year-0 time origin without a calendar that has one
                if "year" not in str(exc).lower() and "time" not in str(exc).lower():
                    raise
                raw = xr.open_dataset(path, decode_times=False, **kw)
                for v in raw.variables.values():
                    if "since 0000" in str(v.attrs.get("units", "")) and "calendar" not in v.attrs:
                        v.attrs["calendar"] = "proleptic_gregorian"
                ds = xr.decode_cf(raw, decode_times=coder)
    except InvalidInput:
        raise
    except FileNotFoundError:
        raise InvalidInput(f"{redact(url)} does not exist", code=CUBE_UNREADABLE) from None
    except Exception as exc:  # noqa: BLE001 - netCDF4, h5py and zarr each raise their own
        raise InvalidInput(f"{redact(url)} cannot be opened as NetCDF or Zarr: {type(exc).__name__}: "
                           f"{str(exc)[:300]}", code=CUBE_UNREADABLE) from None
    for v in ds.variables.values():
        v.encoding.pop("chunks", None)
        v.encoding.pop("preferred_chunks", None)
    return ds


def spatial_dims(ds: xr.Dataset, where: str) -> tuple[str, str]:
    """The (y, x) dimension names of ``ds``, from CF attributes or common names."""
    def find(names: Sequence[str], axis: str, std: str, units: str) -> str | None:
        for d in ds.dims:
            var = ds[d] if d in ds.variables else None
            attrs = var.attrs if var is not None else {}
            if (attrs.get("axis") == axis or attrs.get("standard_name") == std
                    or str(attrs.get("units", "")).lower().startswith(units)):
                return str(d)
        return next((str(d) for d in ds.dims if str(d).lower() in names), None)

    y = find(Y_NAMES, "Y", "latitude", "degrees_n")
    x = find(X_NAMES, "X", "longitude", "degrees_e")
    if y is None or x is None or y == x:
        raise InvalidInput(f"{where} has no spatial dimensions (dims {', '.join(map(str, ds.dims))}): none is "
                           "named lat/lon or y/x or has CF axis or units attributes", code=CUBE_NO_SPACE)
    return y, x


def select(ds: xr.Dataset, variables: Sequence[str] | None, y: str, x: str, where: str) -> xr.Dataset:
    """The data variables to ingest: ``variables``, or all of them (bounds, palettes and other variables
    off the spatial dimensions too); at least one must lie on the spatial dimensions."""
    if variables:
        missing = [v for v in variables if v not in ds.data_vars]
        if missing:
            raise InvalidInput(f"{where} has no variable {', '.join(map(repr, missing))} (it has "
                               f"{', '.join(map(str, ds.data_vars))})", code=CUBE_VARIABLES)
        keep = list(variables)
    else:
        keep = [str(v) for v in ds.data_vars]
    if not any({y, x} <= set(ds[v].dims) for v in keep):
        raise InvalidInput(f"{where}: none of {', '.join(keep) or 'its variables'} lies on its spatial dimensions "
                           f"({y}, {x})", code=CUBE_VARIABLES)
    # the CF grid mappings the kept variables name come along (their CRS)
    mappings = {str(ds[v].attrs.get("grid_mapping", "")).split(":")[0] for v in keep}
    keep += [m for m in sorted(mappings) if m and m in ds.variables and m not in keep]
    return ds[keep]


def with_crs(ds: xr.Dataset, y: str, x: str, crs: str | None, where: str) -> xr.Dataset:
    """``ds`` with a CF grid mapping: its own (``grid_mapping``), else ``crs`` (for lon/lat files that
    have none), written as rioxarray does (a ``spatial_ref`` variable the data variables name)."""
    import rioxarray  # noqa: F401 - the .rio accessor

    has_own = any("grid_mapping" in ds[v].attrs or "grid_mapping" in ds[v].encoding for v in ds.data_vars)
    if crs is None or has_own:
        return ds
    try:
        out = ds.rio.set_spatial_dims(x_dim=x, y_dim=y).rio.write_crs(crs)
    except Exception as exc:  # noqa: BLE001 - pyproj's CRS errors
        raise InvalidInput(f"crs={crs!r} for {where}: {exc}", code=CUBE_VARIABLES) from None
    for v in out.data_vars:
        if {y, x} <= set(out[v].dims):
            out[v].attrs["grid_mapping"] = "spatial_ref"
    return out


def unpacked(ds: xr.Dataset) -> xr.Dataset:
    """``ds`` with its packed variables (scale_factor / add_offset) to be stored decoded, as floats."""
    for v in ds.data_vars.values():
        if "scale_factor" in v.encoding or "add_offset" in v.encoding:
            for k in ("scale_factor", "add_offset", "dtype", "_FillValue", "missing_value"):
                v.encoding.pop(k, None)
    return ds


def lon_to_180(ds: xr.Dataset, x: str) -> xr.Dataset:
    """Longitudes in 0..360 (or beyond, as 21..379) turned into -180..180, sorted."""
    lon = ds[x]
    return ds.assign_coords({x: ((lon + 180) % 360) - 180}).sortby(x)


def time_dim(ds: xr.Dataset) -> str | None:
    """The dimension along which files follow each other: a CF time axis, else one named ``time``."""
    for d in ds.dims:
        if d in ds.variables:
            v = ds[d]
            if v.attrs.get("axis") == "T" or v.attrs.get("standard_name") == "time" or v.dtype.kind in "MO":
                return str(d)
    return next((str(d) for d in ds.dims if str(d).lower() == "time"), None)


def along_time(datasets: Sequence[xr.Dataset], urls: Sequence[str], y: str, x: str) -> xr.Dataset:
    """Several files of one grid, one after the other along their time axis (the first file's variables
    off the time axis are kept as they are). Files on another grid are refused, by name."""
    import numpy as np
    import xarray as xr

    first = datasets[0]
    t = time_dim(first)
    if t is None:
        raise InvalidInput(f"{redact(urls[0])} has no time axis to put {len(urls)} files along (dims "
                           f"{', '.join(map(str, first.dims))})", code=CUBE_NO_SPACE)
    for url, ds in zip(urls[1:], datasets[1:], strict=True):
        for d in (y, x):
            if d not in ds.dims or ds.sizes[d] != first.sizes[d] or not np.array_equal(ds[d].values, first[d].values):
                raise InvalidInput(f"{redact(url)} is not on the grid of {redact(urls[0])} (its {d} coordinates "
                                   "differ)", code=CUBE_GRIDS_DIFFER)
    return xr.concat(datasets, dim=t, data_vars="minimal", coords="minimal", compat="override",
                     join="override", combine_attrs="override")