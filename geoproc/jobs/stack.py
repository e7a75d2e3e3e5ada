"""stack: N single-band rasters on one grid into one N-band COG (or Zarr store, or tiles), one task per region.

    geoproc run stack --set inputs='["rp2.tif", "rp5.tif", "rp10.tif"]' --set output=flood.tif
    geoproc run stack --set input=tiles/N45E010/ --set output=N45E010.tif      # every raster, by name

The seed system's flood-model stacking (one band per return period) as a processing job: band *i* is
file *i*, exactly. The band names come from ``band_names`` or from the file names; they become the COG's
band descriptions and the STAC item's ``eo:bands``, beside ``raster:bands`` statistics counted by the
region tasks.

Every file must be on the first file's grid (shape, transform, CRS), with its data type, and have one
band; anything else is refused before anything runs, naming the file (``STACK_MISMATCH``). With
``align=true`` a file on another grid is resampled onto the first one's instead (``resampling``). A file
whose nodata differs from the first's has its nodata pixels written as the first's.

Stages, outputs and resume are the ``write`` job's (:mod:`.write`): the driver opens the files'
headers to plan; each region task opens them again on its worker and reads only its window of each.
The job id comes from the parameters, the tasks' fingerprint from the files' contents.
"""

from __future__ import annotations

import posixpath
from typing import TYPE_CHECKING, Any, Literal

from pydantic import Field, PrivateAttr, model_validator

from ..errors import NOTHING_TO_OPEN, STACK_MISMATCH, InvalidInput
from ..model import ALL_OR_NOTHING, JSON, JobParams, JobType
from ..raster.open import onto, open_one
from ..stac.publish import SECRET_PARAMS as STAC_SECRET_PARAMS
from ..storage import redact, resolve_storage_options
from ..storage.listing import is_directory, list_files
from ..storage.urls import Location, canonical
from ..units import ByteSize
from . import stac_stage, write

if TYPE_CHECKING:
    import xarray as xr

SUFFIXES = (".tif", ".tiff")


class Params(stac_stage.OutputStacOptions, JobParams):
    inputs: list[Location] | None = Field(None, description="the single-band rasters, in band order")
    input: Location | None = Field(None, description="a directory / container / prefix: its rasters sorted by name")
    suffixes: list[str] = Field(list(SUFFIXES), description="file suffixes listed under input")
    band_names: list[str] | None = Field(None, description="band names (default: the file names without suffix)")
    align: bool = Field(False, description="resample files on another grid onto the first file's")
    resampling: str = Field("nearest", description="kernel of align")
    output: Location = Field(..., description="the .tif URL (cog), a Zarr store (zarr) or a directory (tiles)")
    format: Literal["cog", "zarr", "tiles"] = Field("cog", description="cog, zarr or tiles")
    tier: Literal["analysis", "archive"] = Field("analysis", description="COG compression tier")
    chunks: tuple[int, int] | None = Field(None, description="chunk / block edge (y, x); default 512 for COGs")
    region_bytes: ByteSize = Field(ByteSize(write.rg.REGION_BYTES), ge=2**16,
                                   description="about how much output one region task computes and holds")
    overwrite: bool = Field(False, description="replace an output this job did not write")

    _planned: tuple[write.Params, JSON, Any] | None = PrivateAttr(None)  # built once per run by the driver

    @model_validator(mode="after")
    def _one_source(self) -> Params:
        if (self.input is None) == (self.inputs is None):
            raise ValueError("give either inputs (an ordered list) or input (a directory / prefix), not both or "
                             "neither")
        if self.inputs is not None and not self.inputs:
            raise ValueError("inputs is empty; give the rasters to stack in band order")
        if self.inputs is not None and self.band_names is not None and len(self.band_names) != len(self.inputs):
            raise ValueError(f"band_names has {len(self.band_names)} names for {len(self.inputs)} inputs")
        if self.band_names is not None and len(set(self.band_names)) != len(self.band_names):
            raise ValueError("band_names must be unique")
        return self


def files_of(p: Params, storage_options: dict | None) -> list[str]:
    """The files to stack, in band order: ``inputs``, or the rasters under ``input`` sorted by name."""
    if p.inputs is not None:
        return [canonical(u) for u in p.inputs]
    url = canonical(p.input or "")
    if not is_directory(url, storage_options):
        return [url]
    files, _ = list_files(url, storage_options, suffixes=p.suffixes)
    urls = sorted(f.url for f in files)
    if not urls:
        raise InvalidInput(f"no rasters ({', '.join(p.suffixes)}) under {redact(url)}", code=NOTHING_TO_OPEN)
    return urls


def band_name(url: str) -> str:
    """A file's band name: its name without the suffix."""
    return posixpath.splitext(posixpath.basename(url.rstrip("/")))[0]


def array_of(d: JSON, storage_options: dict | None = None) -> xr.DataArray:
    """The lazy ``(band, y, x)`` stack of ``d["files"]``, checked against the first file."""
    import xarray as xr

    so = resolve_storage_options() if storage_options is None else storage_options
    files, names = d["files"], d["band_names"]
    first = open_one(files[0], storage_options=so)
    grid, dtype, nodata = first.odc.geobox, first.dtype, first.rio.nodata
    bands = []
    for url in files:
        a = first if url == files[0] else open_one(url, storage_options=so)
        what = f"{redact(url)} (band {len(bands) + 1})"
        if a.sizes["band"] != 1:
            raise InvalidInput(f"{what} has {a.sizes['band']} bands; a stack takes single-band rasters",
                               code=STACK_MISMATCH)
        if a.dtype != dtype:
            raise InvalidInput(f"{what} is {a.dtype}, the first file {redact(files[0])} is {dtype}; convert it first",
                               code=STACK_MISMATCH)
        if a.odc.geobox != grid:
            if not d["align"]:
                g = a.odc.geobox
                raise InvalidInput(f"{what} is on another grid ({g.crs}, {g.shape.x} x {g.shape.y} px at "
                                   f"{g.resolution.x:g}) than the first file ({grid.crs}, {grid.shape.x} x "
                                   f"{grid.shape.y} px at {grid.resolution.x:g}); set align=true to resample it "
                                   "onto the first file's grid", code=STACK_MISMATCH)
            a = onto(a, grid, resampling=d["resampling"])
        band = a.isel(band=0, drop=True)
        other = a.rio.nodata
        if nodata is not None and other is not None and other != nodata:
            band = band.where(band != other, nodata).astype(dtype)
        bands.append(band)
    out = xr.concat(bands, dim="band", coords="minimal", compat="override", join="override",
                    combine_attrs="drop").assign_coords(band=names)
    out = out.rio.write_crs(grid.crs.to_wkt())
    return out.rio.write_nodata(nodata, encoded=False) if nodata is not None else out


def planned(p: Params) -> tuple[write.Params, JSON, xr.DataArray]:
    """The write's parameters, what each task carries (the files, in order) and the array; once per run."""
    if p._planned is None:
        so = resolve_storage_options()
        files = files_of(p, so)
        names = p.band_names or [band_name(u) for u in files]
        if len(names) != len(files):
            raise InvalidInput(f"band_names has {len(names)} names for the {len(files)} files under "
                               f"{redact(p.input or '')}", code=STACK_MISMATCH)
        if len(set(names)) != len(names):
            raise InvalidInput("two files have the same name; give band_names", code=STACK_MISMATCH)
        source = {"files": files, "band_names": names, "align": p.align, "resampling": p.resampling}
        arr = array_of(source, so)
        wp, arr = write.write_params(arr, p.output, format=p.format, chunks=p.chunks,
                                     region_bytes=int(p.region_bytes), overwrite=p.overwrite, tier=p.tier)
        p._planned = (wp, source, arr)
    return p._planned


def job_result(p: Params, values: list[JSON | None]) -> JSON:
    wp, source, _ = planned(p)
    return {**write.job_result(wp, values), "band_names": source["band_names"],
            "inputs": [redact(u) for u in source["files"]]}


HANDLERS = write.derived_handlers("stack", array_of)

Stack = JobType(
    name="stack",
    description="Single-band rasters on one grid into one multi-band COG (band i is file i), Zarr or tiles, one "
                "task per region.",
    params=Params,
    stages=(*write.derived_stages("stack", planned), stac_stage.OUTPUT_STAGE),
    secret_params=STAC_SECRET_PARAMS,
    hash_exclude=frozenset({"overwrite"}),
    failure_policy=ALL_OR_NOTHING,
    finalize=job_result,
)
