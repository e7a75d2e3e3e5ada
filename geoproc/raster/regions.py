"""Writing a lazy xarray computation region by region: the plan, the Zarr template, one region.

A *region* is a rectangle of whole output chunks: the unit of work and of resume of a write. The
output grid is the computation's own odc-geo ``GeoBox``; :func:`plan_regions` cuts it with
``GeoboxTiles`` into regions of about :data:`REGION_BYTES`, each a whole number of chunks, so that
two regions never share a Zarr chunk and can be written by different workers at once.

A region is computed where it is written: its slice of the user's graph (``obj.isel(...)``) runs on
the worker with Dask's synchronous scheduler, inside the GDAL session that carries the storage
credentials, and is written with one region write. Its per-band statistics are counted from the same
array, so the job's statistics cost no second read.

The Zarr store is made in two steps, as xarray intends for parallel writers: :func:`write_template`
writes the metadata and the coordinates (``compute=False``), then :func:`write_zarr_region` fills
regions. The CRS is encoded the CF way (a ``spatial_ref`` grid-mapping variable), so that
``xarray.open_zarr(...)`` gives back ``.rio.crs`` and ``.odc.geobox``. Whether a region was written
is a question for the ledger: a Zarr store reads a missing chunk as the fill value.
"""

from __future__ import annotations

import contextlib
import math
import uuid
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import rasterio

from ..errors import BAD_DIMS, CRS_MISSING, NOT_A_DATAARRAY, ZARR_INCOMPATIBLE, InvalidInput, OutputExists
from ..storage import gdal_env, is_local, join, local_path, open_fs, options_for, redact, storage_errors
from .cog import PROVENANCE_TAG
from .io import open_raster
from .stats import BandStats

if TYPE_CHECKING:
    import xarray as xr
    from odc.geo.geobox import GeoBox

# xarray, odc-geo and dask.array are imported by the functions that use them: importing geoproc (and
# starting its command line) must not pay for them

#: target size of one region's output in memory (the worker holds its region, and its inputs' windows)
REGION_BYTES = 64 * 2**20
#: the attribute a store geoproc wrote carries: the id of the job that owns it
JOB_ATTR = "geoproc_job_id"
SPATIAL = ("y", "x")


@dataclass(frozen=True)
class Region:
    """One region: its key in the ledger and its pixel slices in the output grid."""

    row: int
    col: int
    y: tuple[int, int]
    x: tuple[int, int]

    @property
    def key(self) -> str:
        return f"r{self.row}c{self.col}"


def check_writable(obj: Any) -> xr.DataArray:
    """The array to write: a ``(y, x)`` or ``(band, y, x)`` DataArray on a grid with a CRS."""
    import odc.geo.xr  # noqa: F401 - the .odc accessor the plan reads the grid from
    import rioxarray  # noqa: F401 - the .rio accessor
    import xarray as xr

    if isinstance(obj, xr.Dataset):
        raise InvalidInput("geoproc.write takes one DataArray; write the variables of a Dataset one by one "
                           "(ds['name']) or stack them into a band dimension (ds.to_dataarray('band')).",
                           code=NOT_A_DATAARRAY)
    if not isinstance(obj, xr.DataArray):
        raise InvalidInput(f"geoproc.write takes an xarray.DataArray, not {type(obj).__name__}; "
                           "open rasters with geoproc.open().", code=NOT_A_DATAARRAY)
    extra = [d for d in obj.dims if d not in ("band", *SPATIAL)]
    if set(SPATIAL) - set(obj.dims) or extra:
        raise InvalidInput(f"the array has dims {obj.dims}; geoproc.write needs (y, x) or (band, y, x)"
                           + (f" (select or reduce {', '.join(map(str, extra))} first)" if extra else ""),
                           code=BAD_DIMS)
    if obj.rio.crs is None:
        raise InvalidInput("the array has no CRS; set one with obj.rio.write_crs('EPSG:...').", code=CRS_MISSING)
    return obj.transpose(*(("band",) if "band" in obj.dims else ()), *SPATIAL)


def blank(geobox: GeoBox, *, bands: list[str] | None, dtype: Any, nodata: float | None, name: str,
          chunks: tuple[int, int]) -> xr.DataArray:
    """An uncomputed array on ``geobox``: the output of a job whose regions are computed by other means
    (a user's function, a mosaic), which tells the write its grid, bands, dtype and nodata.

    Its Dask ``name`` is its identity (the write's token); ``bands`` None gives a ``(y, x)`` array.
    """
    import dask.array as dsa
    import rioxarray  # noqa: F401 - the .rio accessor
    import xarray as xr
    from odc.geo.xr import xr_coords

    coords = xr_coords(geobox, crs_coord_name="spatial_ref", dims=("y", "x"))  # also for lon/lat grids
    cy, cx = min(chunks[0], geobox.shape.y), min(chunks[1], geobox.shape.x)
    if bands is None:
        data = dsa.empty(tuple(geobox.shape), dtype=dtype, chunks=(cy, cx), name=name)
        out = xr.DataArray(data, dims=("y", "x"), coords=coords)
    else:
        data = dsa.empty((len(bands), *geobox.shape), dtype=dtype, chunks=(1, cy, cx), name=name)
        out = xr.DataArray(data, dims=("band", "y", "x"), coords={"band": bands, **coords})
    out = out.rio.write_crs(geobox.crs.to_wkt())
    return out.rio.write_nodata(nodata, encoded=False) if nodata is not None else out


def zarr_chunks(obj: xr.DataArray, chunks: tuple[int, int] | None) -> tuple[int, int]:
    """The Zarr chunk edge (y, x): as given, else the array's first Dask chunk (whole blocks of its source)."""
    if chunks is not None:
        return (int(chunks[0]), int(chunks[1]))
    if obj.chunks is None:
        return (min(512, obj.sizes["y"]), min(512, obj.sizes["x"]))
    by_dim = dict(zip(obj.dims, obj.chunks, strict=True))
    return (int(by_dim["y"][0]), int(by_dim["x"][0]))


def plan_regions(geobox: GeoBox, chunks: tuple[int, int], *, bands: int, itemsize: int,
                 region_bytes: int = REGION_BYTES, pow2: bool = False) -> list[Region]:
    """Regions of whole chunks covering ``geobox``, about ``region_bytes`` each, in row-major order.

    With ``pow2`` a region's side is a power of two of chunks, so that a COG's region also holds whole
    blocks of its first overview levels (:func:`~geoproc.raster.stitch.region_levels`)."""
    from odc.geo.geobox import GeoboxTiles

    chunk_bytes = chunks[0] * chunks[1] * bands * itemsize
    k = max(1, math.isqrt(max(1, region_bytes // max(1, chunk_bytes))))
    if pow2:
        k = 2 ** (k.bit_length() - 1)
    tiles = GeoboxTiles(geobox, (chunks[0] * k, chunks[1] * k))
    out = []
    for row, col in np.ndindex(*tiles.shape):
        ys, xs = tiles.roi[row, col]
        out.append(Region(int(row), int(col), (int(ys.start), int(ys.stop)), (int(xs.start), int(xs.stop))))
    return out


def _dataset(obj: xr.DataArray, name: str) -> xr.Dataset:
    """``obj`` as a one-variable Dataset whose attrs hold no encoding: rioxarray's ``_FillValue``,
    ``scale_factor`` and ``add_offset`` attrs would make xarray's zarr encoder refuse the region writes
    (the nodata value goes into the encoding's fill value instead)."""
    da = obj.copy()
    packing = {"scale_factor": 1, "add_offset": 0}
    da.attrs = {k: v for k, v in da.attrs.items()
                if k not in ("_FillValue", "grid_mapping", "missing_value") and packing.get(k, object()) != v}
    da.encoding = {}
    # a label left by .sel(band="red") means nothing after the math; band names are stored as
    # variable-length strings, which Zarr v3 specifies (fixed-width ones it does not)
    da = da.drop_vars([c for c in da.coords if c not in da.dims and c != "spatial_ref" and da[c].ndim == 0])
    da = da.assign_coords({c: da[c].astype(object) for c in da.coords if da[c].dtype.kind == "U"})
    return da.to_dataset(name=name)


def write_template(obj: xr.DataArray, store: str, *, name: str, chunks: tuple[int, int], job_id: str,
                   overwrite: bool, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    """Write the store's metadata and coordinates; refuse a store that another job or tool wrote."""
    import dask.array as dsa

    refuse_foreign_store(store, job_id, name, overwrite, storage_options)
    shape = tuple(obj.shape)
    data_chunks = ((1,) if obj.ndim == 3 else ()) + chunks
    empty = dsa.empty(shape, dtype=obj.dtype, chunks=data_chunks)
    template = _dataset(obj.copy(data=empty), name)
    template.attrs[JOB_ATTR] = job_id
    nodata = obj.rio.nodata
    encoding: dict[str, Any] = {name: {"chunks": data_chunks}}
    if nodata is not None:
        encoding[name]["fill_value"] = nodata
    with storage_errors(store, "write"):
        template.to_zarr(zarr_target(store), mode="w", compute=False, zarr_format=3, consolidated=False,
                         encoding=encoding, storage_options=zarr_options(store, storage_options))
    return {"store": redact(store), "shape": list(shape), "chunks": list(data_chunks), "dtype": obj.dtype.name,
            "nodata": None if nodata is None else _json_number(nodata)}


def compute_region(obj: xr.DataArray, region: Region, storage_options: Mapping[str, Any] | None) -> np.ndarray:
    """The region's slice of ``obj``, computed here.

    The slice is computed with the synchronous scheduler in this thread, inside a GDAL session holding
    the credentials of every protocol the job was given, so the rasters it reads open on ``/vsiaz/``
    like any task's do.
    """
    part = obj.isel(y=slice(*region.y), x=slice(*region.x))
    with computing(storage_options):
        return np.asarray(part.data)


@contextlib.contextmanager
def computing(storage_options: Mapping[str, Any] | None) -> Iterator[None]:
    """Compute Dask arrays here: the synchronous scheduler, in a GDAL session holding the credentials
    of every protocol the job was given. NumPy's division warnings are off: band math turns division
    by zero and its NaNs into nodata on purpose."""
    import dask

    so = storage_options or {}
    env: dict[str, str] = {}
    for proto in so:
        env.update(gdal_env(f"{proto}://credentials/probe", so))
    with rasterio.Env(**env), dask.config.set(scheduler="sync"), np.errstate(divide="ignore", invalid="ignore"):
        yield


def count_stats(data: np.ndarray, nodata: float | None) -> dict[str, Any]:
    """The running counts of a region's per-band statistics (merged by :func:`merge_stats`)."""
    block = data if data.ndim == 3 else data[np.newaxis]
    acc = BandStats(block.shape[0], str(block.dtype), nodata)
    acc.add(block)
    return {"stats": acc.to_json(), "pixels": int(block.shape[1] * block.shape[2])}


def write_zarr_region(obj: xr.DataArray, store: str, region: Region, *, name: str,
                      storage_options: Mapping[str, Any] | None, data: np.ndarray | None = None) -> dict[str, Any]:
    """Compute one region on this worker (unless its ``data`` is given) and write it; returns its
    statistics' running counts."""
    ys, xs = slice(*region.y), slice(*region.x)
    part = obj.isel(y=ys, x=xs)
    if data is None:
        data = compute_region(obj, region, storage_options)
    ds = _dataset(part.copy(data=data), name)
    ds = ds.drop_vars([v for v in ds.variables if not set(ds[v].dims) & set(SPATIAL)])
    with storage_errors(store, "write"):
        ds.to_zarr(zarr_target(store), region={"y": ys, "x": xs}, zarr_format=3, consolidated=False,
                   storage_options=zarr_options(store, storage_options))
    return count_stats(data, obj.rio.nodata)


def refuse_foreign_raster(url: str, stamp: str, overwrite: bool, storage_options: Mapping[str, Any] | None) -> None:
    """Refuse an existing file at ``url`` that does not carry ``stamp`` (this job's), unless ``overwrite``."""
    with storage_errors(url, "check"):
        fs, path = open_fs(url, storage_options)
        exists = fs.exists(path)
    if not exists or overwrite:
        return
    try:
        with open_raster(url, storage_options) as ds:
            found = ds.tags().get(PROVENANCE_TAG)
    except InvalidInput:
        found = None
    if found != stamp:
        raise OutputExists(f"{redact(url)} exists and was not written by this job; set overwrite=true to replace "
                           "it, or choose another output.")


def finish_store(store: str, storage_options: Mapping[str, Any] | None) -> int:
    """Consolidate the store's metadata (one read opens it); zarr says v3 does not specify it yet.

    Returns the size of the consolidated root metadata: a template made again is smaller, which is
    how a finished store that was deleted and re-templated is told from the one that was finished.
    """
    import zarr

    options = zarr_options(store, storage_options)
    with warnings.catch_warnings(), storage_errors(store, "write"):
        warnings.filterwarnings("ignore", message="Consolidated metadata is currently not part")
        target = (zarr.storage.FsspecStore.from_url(store, storage_options=options, read_only=False)
                  if options else zarr_target(store))
        zarr.consolidate_metadata(target, zarr_format=3)
        fs, path = open_fs(store_metadata(store), storage_options)
        return int(fs.size(path))


def store_metadata(store: str) -> str:
    """The store's root metadata: a store is gone when it is."""
    return join(store, "zarr.json")


#: the key of a Zarr template task's result that names this making of the template
TEMPLATE_ID = "created"


def new_template(made: dict[str, Any]) -> dict[str, Any]:
    """A template task's result: a new template is an empty store, so its id fingerprints the regions
    (:func:`template_id`), which are then written again instead of skipped."""
    return {**made, TEMPLATE_ID: uuid.uuid4().hex}


def template_id(previous: Any) -> str | None:
    """The id of the template the regions go into, from the template stage's output (None without one)."""
    return (previous.value or {}).get(TEMPLATE_ID) if previous is not None else None


def merge_stats(results: Iterator[dict[str, Any]]) -> dict[str, Any] | None:
    """The running counts of every region merged, and the pixels they cover."""
    acc: BandStats | None = None
    pixels = 0
    for r in results:
        part = BandStats.from_json(r["stats"])
        pixels += r["pixels"]
        if acc is None:
            acc = part
        else:
            acc.merge(part)
    return None if acc is None else {"counts": acc.to_json(), "pixels": pixels}


def refuse_foreign_store(store: str, job_id: str, name: str, overwrite: bool,
                    storage_options: Mapping[str, Any] | None) -> None:
    import xarray as xr

    with storage_errors(store, "check"):
        fs, path = open_fs(store, storage_options)
        exists = fs.exists(path)
    if not exists or overwrite:
        return
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            existing = xr.open_zarr(zarr_target(store), consolidated=False,
                                    storage_options=zarr_options(store, storage_options))
    except Exception:  # noqa: BLE001 - anything unreadable as Zarr is someone else's data
        raise OutputExists(f"{redact(store)} exists and is not a Zarr store geoproc wrote; set overwrite=true "
                           "to replace it, or choose another output.") from None
    owner = existing.attrs.get(JOB_ATTR)
    if owner == job_id:
        return
    if name in existing and owner is not None:
        raise InvalidInput(f"{redact(store)} holds a {existing[name].dtype} array {name!r} of shape "
                           f"{tuple(existing[name].shape)} written by another job; write to another store "
                           "or set overwrite=true to replace it.", code=ZARR_INCOMPATIBLE)
    raise OutputExists(f"{redact(store)} exists and was not written by this job; set overwrite=true to replace "
                       "it, or choose another output.")


def zarr_target(store: str) -> str:
    return local_path(store) if is_local(store) else store


def zarr_options(store: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any] | None:
    if is_local(store):
        return None
    return options_for(store, storage_options or {}) or None


def _json_number(v: float) -> float | int | str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return int(v) if float(v).is_integer() else float(v)
