"""The ``cog`` stage's task: convert one validated input to a COG, check it, publish it.

A conversion writes a local temp file, checks it (:func:`geoproc.raster.checks.check_cog`), then
publishes it atomically; nobody sees a partial output. An existing output stamped with the same
:func:`provenance` is kept instead of converted again (``reused``). The result is a
:class:`CogResult`: the contract STAC items are built from.
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from typing import Any

import rasterio

from .. import ids
from ..errors import NO_VALIDATION, InvalidInput, OutputExists
from ..model import JSON, REMAKE, NodataJSON, ResultWarning, TaskContext, TaskResult
from ..raster import cog as cogmod
from ..raster.assemble import tiled_cog
from ..raster.checks import check_cog
from ..raster.io import open_raster
from ..raster.profiles import cog_options, creation_profile
from ..raster.quicklook import write_quicklook
from ..raster.validate import parse_crs
from ..storage import open_fs, publish, redact, sha256_file, storage_errors

VERSION = "2"  # bump when outputs of equal inputs and settings change, so stale outputs are not reused


class CogResult(TaskResult):
    """One ``cog`` task's result; every field is always present except ``quicklook``.

    =================  ===========================================================================
    field              value
    =================  ===========================================================================
    input              input URL (secrets removed)
    output             output URL (secrets removed)
    size               output size in bytes
    sha256             hex sha256 of the output file
    input_size         input size in bytes (from the listing)
    crs                ``EPSG:XXXX``, or WKT2 when the CRS has no EPSG code
    bounds             [left, bottom, right, top] in the output CRS
    bbox_wgs84         [west, south, east, north] in EPSG:4326, or null for a local CRS
    shape              [height, width]
    transform          the 6 affine coefficients [a, b, c, d, e, f]
    count, dtype       band count and data type
    nodata             number, ``"nan"``/``"inf"``/``"-inf"``, or null
    compression        deflate, jpeg or zstd
    blocksize          [rows, cols] of the internal tiles
    colorinterp        colour interpretation of each band
    has_mask           whether the file has a per-dataset mask
    overviews          decimation factors, e.g. [2, 4, 8] ([] for rasters of one block)
    band_stats         per band: minimum, maximum, mean, stddev, valid_percent
    raster_type        rgb, rgba, dem, continuous, categorical or multispectral
    tier               tier used; ``requested_tier`` holds the one asked for
    datetime           ISO 8601 UTC from the file's date tags (TIFFTAG_DATETIME, ...), or null
    warnings           :class:`~geoproc.errors.TaskWarning` list (validation warnings, tier fallback,
                       COG check), ``"CODE: message"`` strings in the JSON
    reprojected        whether the raster was warped; ``resampling`` {overview, reproject}
    source_crs         the input's CRS; ``source_nodata`` its nodata
    reused             true when an identical earlier output was kept instead of converting again
    route              "single" or "tiled": the route the conversion took (:func:`geoproc.jobs.cog.route`)
    revision           1 for a new output, one more each time a job replaces it in place (kept in the
                       COG's ``GEOPROC_REVISION`` tag; the item's STAC ``version``)
    quicklook          URL of the PNG beside the COG (only with ``quicklook=true``)
    metrics            {bytes_read, bytes_written} of this attempt (for ``geoproc`` stage metrics)
    =================  ===========================================================================
    """

    input: str
    output: str
    size: int
    sha256: str
    input_size: int | None
    crs: str | None
    bounds: list[float]
    bbox_wgs84: list[float] | None
    shape: list[int]
    transform: list[float]
    count: int
    dtype: str
    nodata: NodataJSON
    compression: str
    blocksize: list[int]
    colorinterp: list[str]
    has_mask: bool
    overviews: list[int]
    band_stats: list[JSON] | None
    raster_type: str
    tier: str
    requested_tier: str
    datetime: str | None
    warnings: list[ResultWarning]
    reprojected: bool
    resampling: dict[str, str]
    source_crs: str
    source_nodata: NodataJSON
    reused: bool
    route: str
    revision: int = 1
    quicklook: str | None = None
    metrics: dict[str, int]


def provenance(v: JSON, params: JSON) -> str:
    """``<digest of the input's identity and every setting that shapes the output>:<input digest>``.

    The second part names the input URL alone: an output stamped with it was written from this very
    input (an older version of it, or other settings), so it may be replaced without ``overwrite``.
    """
    digest = ids.sha256_hex(ids.canonical_json({
        "v": VERSION, "input": v["input"], "size": v.get("input_size"), "etag": v.get("input_etag"),
        "crs": v["crs"], "target_crs": params["target_crs"], "tier": v["tier"], "type": v["raster_type"],
        "resampling": [v["overview_resampling"], v["reproject_resampling"]],
        "jpeg_quality": params["jpeg_quality"] if v["tier"] == "visualization" else None}))[:32]
    return f"{digest}:{ids.sha256_hex(v['input'])[:16]}"


def convert(params: JSON, ctx: TaskContext) -> JSON:
    """Convert one validated input to a COG: local temp file → checks → publish; returns a :class:`CogResult`."""
    v = ctx.predecessor or {}
    if "output" not in v:
        raise InvalidInput(f"{redact(ctx.key)}: no validation result to convert from", code=NO_VALIDATION)
    url, out, so = ctx.key, v["output"], ctx.storage_options
    digest = provenance(v, params)
    with tempfile.TemporaryDirectory(prefix="geoproc-cog-") as tmp:
        local = os.path.join(tmp, posixpath.basename(out.split("?")[0]) or "out.tif")
        # REMAKE: the ledger says this task wrote the file, and it has changed since: replace it
        remake = params.get(REMAKE)
        reused, previous = _reuse(out, digest, params["overwrite"] or bool(remake), so, local)
        revision = previous if reused else previous + 1  # a replaced COG is the next revision of its URL
        if isinstance(remake, dict) and remake.get("revision"):
            revision = remake["revision"]  # a damaged output made again: the revision it was
        taken = v["route"]
        done: dict[str, Any] = {"band_stats": None}
        if not reused:
            profile = creation_profile(v["tier"], v["dtype"], raster_type=v["raster_type"],
                                       jpeg_quality=params["jpeg_quality"], threads=params["gdal_threads"])
            config = {"CPL_TMPDIR": tmp, "GDAL_NUM_THREADS": str(params["gdal_threads"])}
            with open_raster(url, so, size=v.get("input_size")) as src:
                taken = _route_taken(v, src, params["target_crs"])
                if taken == "tiled":  # window by window in bounded memory (see geoproc.raster.assemble.tiled_cog)
                    opts = cog_options(v["tier"], v["dtype"], raster_type=v["raster_type"],
                                       threads=params["gdal_threads"], jpeg_quality=params["jpeg_quality"])
                    with rasterio.Env(CPL_TMPDIR=tmp):
                        done = tiled_cog(src, local, target_crs=params["target_crs"], options=opts,
                                         overview_resampling=v["overview_resampling"],
                                         reproject_resampling=v["reproject_resampling"],
                                         tags={cogmod.PROVENANCE_TAG: digest, cogmod.REVISION_TAG: str(revision),
                                               "OVERVIEW_RESAMPLING": v["overview_resampling"].upper()})
                else:
                    done = cogmod.translate(src, local, profile, crs=parse_crs(v["crs"]),
                                            crs_given=v["crs_source"] == "input_crs", target_crs=params["target_crs"],
                                            overview_resampling=v["overview_resampling"],
                                            reproject_resampling=v["reproject_resampling"], provenance=digest,
                                            revision=revision,
                                            gdal_config=config)
        facts = (check_cog(local, stats=done["band_stats"]) if taken == "tiled"
                 else check_cog(local, stats=done["band_stats"], cache_bytes=cogmod.CACHE_BYTES, window_bytes=None,
                                threads=2))
        sha, size = sha256_file(local), os.path.getsize(local)
        quicklook = None
        if params.get("quicklook"):  # a small PNG beside the COG, for reports and notebooks
            png, quicklook = os.path.join(tmp, "quicklook.png"), quicklook_url(out)
            write_quicklook(local, png, v["raster_type"])
        if not reused:
            publish(local, out, so, move=True)
        if quicklook:
            publish(png, quicklook, so, move=True)
    result = CogResult(
        input=v["input"], output=redact(out), size=size, sha256=sha, input_size=v.get("input_size"),
        **CogResult.fields_of({k: f for k, f in facts.items() if k != "warnings"}),
        raster_type=v["raster_type"], tier=v["tier"], requested_tier=v["requested_tier"], datetime=v.get("datetime"),
        warnings=[*v.get("warnings", []), *facts["warnings"]],
        reprojected=cogmod.needs_warp(parse_crs(v["crs"]), params["target_crs"]),
        resampling={"overview": v["overview_resampling"], "reproject": v["reproject_resampling"]},
        source_crs=v["crs"], source_nodata=v["nodata"], reused=reused, route=taken, revision=revision,
        **({"quicklook": redact(quicklook)} if quicklook else {}),
        metrics={"bytes_read": 0 if reused else v.get("input_size") or 0, "bytes_written": 0 if reused else size})
    return result.model_dump(mode="json")


def _route_taken(v: JSON, src: Any, target_crs: str) -> str:
    """The route a conversion really takes.

    ``tiled`` (from :func:`geoproc.jobs.cog.route`) applies to inputs that are reprojected and carry a
    nodata value; the others are copied by the single path, whose GDAL copy streams already (no warp)
    or which adds the mask a warp of a raster without nodata needs.
    """
    if v["route"] != "tiled" or v["crs_source"] == "input_crs" or src.nodata is None:
        return "single"
    return "tiled" if cogmod.needs_warp(parse_crs(v["crs"]), target_crs) else "single"


def quicklook_url(out: str) -> str:
    """``<output without .tif>.png``: the quicklook's place beside its COG."""
    base = out.split("?", 1)[0]
    stem, _ = posixpath.splitext(base)
    return stem + ".png"


def _reuse(out: str, digest: str, overwrite: bool, so: dict, local: str) -> tuple[bool, int]:
    """(whether an existing output can be kept, the revision stamped in it: 0 for none or another
    tool's file); copies the output to ``local`` when it can be kept.

    Raises:
        OutputExists: the output exists, was not written from this input with these settings, and
            ``overwrite`` is false.
    """
    with storage_errors(out, "check"):
        fs, path = open_fs(out, so)
        exists = fs.exists(path)
    if not exists:
        return False, 0
    try:
        with open_raster(out, so) as ds:
            stamp, revision = cogmod.read_provenance(ds), cogmod.read_revision(ds)
    except InvalidInput:
        stamp, revision = None, 0
    if overwrite:
        return False, revision
    if stamp != digest:
        same_input = stamp is not None and stamp.rsplit(":", 1)[-1] == digest.rsplit(":", 1)[-1]
        if same_input:
            return False, revision  # written from this input before it changed (or with other settings): replace
        raise OutputExists(f"{redact(out)} exists and was not written from this input with these settings.")
    with storage_errors(out, "read"):
        fs.get_file(path, local)
    return True, revision
