"""cog: convert one raster, or every raster under a directory / container / prefix, to Cloud-Optimized GeoTIFFs.

Stages:

1. ``list`` (one task): list the input with the filters (``suffixes``, ``min_size``, ``max_size``,
   ``limit``); in ``collection`` mode also read every header and refuse a collection whose files
   differ in band count, data type, CRS, or resolution by more than 20 %.
2. ``validate`` (one task per file, planned from the listing; the task key is the input URL): the
   rules of :mod:`geoproc.raster.validate`, the tier choice and the size route.
3. ``cog`` (lineage: task *i* consumes validation *i*, no barrier): convert to a local temp file,
   check it, then publish it. An invalid file fails its own task with a code and a remedy; the others
   go on.

Output naming: the input path relative to the listed root, mirrored under ``output``, with the
extension replaced by ``.tif`` (``az://in/2025/a/b.jp2`` listed from ``az://in/2025`` →
``{output}/a/b.tif``). A single-file input goes to ``{output}/{stem}.tif``, or exactly to ``output``
when it ends in ``.tif``. Names that would leave the prefix (``..``), that would overwrite their own
input or that collide with another file's output fail their task.

Each ``cog`` task returns a :class:`~geoproc.jobs.cog_convert.CogResult` (the contract STAC items are
built from); :mod:`geoproc.jobs.cog_report` holds the stage's summary, the job result and its rendering.
Sizes (``min_size``, ``max_size``, ``large_threshold``) are bytes, or strings such as ``"2GB"``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterator
from typing import Literal

from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from ..errors import OutputCollision, UnsafePath
from ..model import (
    JSON,
    PARTIAL_OK,
    STORAGE_RETRY,
    JobParams,
    JobType,
    RetryPolicy,
    Stage,
    StageOutput,
    TaskContext,
    TaskSpec,
    WrittenFile,
)
from ..raster.collection import check_homogeneity
from ..raster.header import source_datetime
from ..raster.io import open_raster
from ..raster.profiles import RASTER_TYPES, RESAMPLING_CHOICES, resampling_for, resolve_tier
from ..raster.validate import Finding, parse_crs, raise_for, validate_raster
from ..stac.publish import SECRET_PARAMS as STAC_SECRET_PARAMS
from ..stac.publish import StacOptions
from ..storage import is_local, join, local_path, protocol_of, redact, safe_relative
from ..storage.listing import list_files
from ..storage.urls import Location
from ..units import ByteSize
from . import stac_stage
from .cog_convert import convert
from .cog_report import MAX_NAMES, job_result, render, summarize_cogs

Resampling = Literal[RESAMPLING_CHOICES]  # type: ignore[valid-type]


class Params(StacOptions, JobParams):  # stac_catalog / pgstac_dsn: catalog the outputs (geoproc.stac)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    input: Location = Field(..., min_length=1, validation_alias=AliasChoices("input", "src"),
                       description="URL of a raster, or of a directory / container / prefix to convert")
    output: Location = Field(..., min_length=1, validation_alias=AliasChoices("output", "dst"),
                        description="URL prefix for the COGs (or the exact .tif URL for a single input)")
    tier: Literal["visualization", "analysis", "archive"] = Field("analysis", description="output tier")
    tier_fallback: bool = Field(True, description="fall back to analysis (with a warning) when the tier does not fit")
    target_crs: str = Field("EPSG:4326", min_length=1, description="output CRS, or 'keep'")
    input_crs: str | None = Field(None, description="CRS for files that have none (never overrides a file's CRS)")
    raster_type: Literal[("auto", *RASTER_TYPES[:-1])] = Field("auto", description="force the raster type")  # type: ignore[valid-type]
    overview_resampling: Resampling | None = Field(None, description="override the type's overview resampling")
    reproject_resampling: Resampling | None = Field(None, description="override the type's warp resampling")
    jpeg_quality: int = Field(85, ge=1, le=100, description="JPEG quality of the visualization tier")
    suffixes: list[str] = Field([".tif", ".tiff"], max_length=50, description="file name endings to convert")
    min_size: ByteSize = Field(ByteSize(0), ge=0, description="skip files smaller than this (bytes, or '10MB')")
    max_size: ByteSize | None = Field(None, ge=0, description="skip files larger than this (bytes, or '1GiB')")
    limit: int | None = Field(None, ge=1, le=10_000_000, description="convert at most this many files")
    collection: bool = Field(False, description="check that the files form a homogeneous collection first")
    strict: bool = Field(False, description="64-bit data and nodata inside the data range are errors")
    overwrite: bool = Field(False, description="replace existing outputs that were not written from this input")
    large_threshold: ByteSize = Field(ByteSize(2_000_000_000), ge=1,
                                      description="inputs above this size (bytes, or '2GB') route to 'tiled'")
    gdal_threads: int = Field(2, ge=1, le=64, description="GDAL compression threads per task")
    quicklook: bool = Field(False, description="also write a small PNG picture beside each COG (<name>.png)")

    @field_validator("target_crs", "input_crs")
    @classmethod
    def _crs(cls, v: str | None) -> str | None:
        if v is None or v == "keep":
            return v
        parse_crs(v)
        return v

    @field_validator("suffixes")
    @classmethod
    def _suffixes(cls, v: list[str]) -> list[str]:
        return [s.lower() if s.startswith(".") else "." + s.lower() for s in v]

    @model_validator(mode="after")
    def _sizes(self) -> Params:
        if self.max_size is not None and self.max_size < self.min_size:
            raise ValueError(f"max_size ({self.max_size}) is below min_size ({self.min_size})")
        if self.input_crs == "keep":
            raise ValueError("input_crs cannot be 'keep'; give a CRS such as EPSG:32633")
        return self


def route(size: int | None, params: Params | JSON) -> str:
    """``"tiled"`` for inputs larger than ``large_threshold`` bytes, else ``"single"``.

    The decision is recorded in every validation and COG result; the tiled path converts such inputs
    window by window.
    """
    threshold = params["large_threshold"] if isinstance(params, dict) else params.large_threshold
    return "tiled" if size is not None and size > threshold else "single"


def output_url(p: Params, rel: str, single: bool) -> str:
    """The deterministic output URL of an input at ``rel`` (relative to the listed root)."""
    if single and p.output.lower().endswith((".tif", ".tiff")):
        return p.output
    stem, _ = posixpath.splitext(safe_relative(rel))
    return join(p.output, stem + ".tif")


# --- stage 1: list -------------------------------------------------------------------------------------


def plan_list(p: Params, previous: None) -> Iterator[TaskSpec]:
    yield TaskSpec(key="list", params={"input": p.input, "output": p.output, "suffixes": p.suffixes,
                                       "min_size": int(p.min_size),
                                       "max_size": None if p.max_size is None else int(p.max_size), "limit": p.limit,
                                       "collection": p.collection, "input_crs": p.input_crs})


def list_inputs(params: JSON, ctx: TaskContext) -> JSON:
    """List the inputs; in collection mode check their headers for homogeneity."""
    exclude = [params["output"]] if protocol_of(params["output"]) == protocol_of(params["input"]) else []
    files, skipped = list_files(params["input"], ctx.storage_options, suffixes=params["suffixes"],
                                min_size=params["min_size"], max_size=params["max_size"], limit=params["limit"],
                                exclude=exclude)
    collection = None
    if params.get("collection"):
        collection = check_homogeneity([f.to_dict() for f in files], ctx.storage_options, params.get("input_crs"))
    return {"root": redact(params["input"]), "files": [f.to_dict() for f in files], "skipped": skipped,
            "collection": collection}


def summarize_listing(p: Params, results: Iterator[JSON]) -> JSON:
    listing = next(results, None) or {"files": [], "skipped": {}, "collection": None}
    files = listing["files"]
    return {"listed": len(files), "bytes": sum(f.get("size") or 0 for f in files), "skipped": listing["skipped"],
            "collection": listing.get("collection"),
            "inputs": [redact(f["url"]) for f in files] if len(files) <= MAX_NAMES else None}


# --- stage 2: validate ---------------------------------------------------------------------------------


def plan_validate(p: Params, previous: StageOutput) -> Iterator[TaskSpec]:
    listing = next(previous.results(), None)
    if not listing:
        return
    files = listing["files"]
    single = len(files) == 1 and _is_file_input(p, files[0])
    seen: dict[str, str] = {}
    for f in files:
        problem = None
        try:
            out = output_url(p, f["rel"], single)
        except ValueError as exc:
            out, problem = None, f"UNSAFE_PATH: {exc}"
        if out is not None and _same(out, f["url"]):
            problem = "UNSAFE_PATH: the output would overwrite its own input; choose another output prefix"
        elif out is not None and out in seen:
            problem = f"OUTPUT_COLLISION: {redact(seen[out])} already maps to {redact(out)}"
        elif out is not None:
            seen[out] = f["url"]
        yield TaskSpec(key=f["url"], fingerprint=f"{f['size']}:{f['etag']}", params={
            "input": f["url"], "rel": f["rel"], "output": out, "size": f["size"], "etag": f["etag"],
            "problem": problem, "input_crs": p.input_crs, "target_crs": p.target_crs, "strict": p.strict,
            "raster_type": p.raster_type, "tier": p.tier, "tier_fallback": p.tier_fallback,
            "overview_resampling": p.overview_resampling, "reproject_resampling": p.reproject_resampling,
            "large_threshold": int(p.large_threshold)})


def written_cog(p: Params, result: JSON) -> list[WrittenFile]:
    """The COG a completed conversion wrote, checked before the task is skipped on a re-run."""
    return [(result["output"], result.get("size"), result.get("sha256"))] if result.get("output") else []


def _is_file_input(p: Params, f: JSON) -> bool:
    return redact(f["url"]).rstrip("/") == redact(p.input).rstrip("/") or (
        is_local(p.input) and os.path.abspath(local_path(p.input)) == f["url"])


def _same(a: str, b: str) -> bool:
    if is_local(a) and is_local(b):
        return os.path.abspath(local_path(a)) == os.path.abspath(local_path(b))
    return redact(a) == redact(b)


def validate(params: JSON, ctx: TaskContext) -> JSON:
    """Validate one input: every rule, the tier that fits, the size route."""
    url = params["input"]
    if params.get("problem"):
        code, _, msg = params["problem"].partition(": ")
        cls = UnsafePath if code == "UNSAFE_PATH" else OutputCollision
        raise cls(f"{redact(url)}: {msg}", code=code)
    with open_raster(url, ctx.storage_options, size=params.get("size")) as src:
        facts = validate_raster(src, input_crs=params.get("input_crs"), target_crs=params["target_crs"],
                                strict=params["strict"], raster_type=params["raster_type"])
        when = source_datetime(src.tags())
    findings = [Finding(**f) for f in facts["findings"]]
    raise_for(findings, redact(url))
    choice = resolve_tier(params["tier"], facts["count"], facts["dtype"], fallback=params["tier_fallback"])
    ov, rp = resampling_for(facts["raster_type"], params.get("overview_resampling"), params.get("reproject_resampling"))
    warnings = [f"{f.code}: {f.message}" for f in findings if f.severity == "warning"]
    if choice.warning:
        warnings.append(str(choice.warning))
    return {**facts, "input": redact(url), "output": redact(params["output"]), "rel": params["rel"],
            "input_size": params.get("size"), "input_etag": params.get("etag"), "tier": choice.tier,
            "requested_tier": choice.requested, "overview_resampling": ov, "reproject_resampling": rp,
            "route": route(params.get("size"), params), "datetime": when, "warnings": warnings}


def summarize_validation(p: Params, results: Iterator[JSON]) -> JSON:
    n, types, warned, names = 0, {}, 0, []
    for r in results:
        n += 1
        types[r["raster_type"]] = types.get(r["raster_type"], 0) + 1
        warned += bool(r["warnings"])
        if len(names) < MAX_NAMES:
            names.append(r["input"])
    return {"valid": n, "raster_types": types, "with_warnings": warned, "inputs": names}


# --- stage 3: cog --------------------------------------------------------------------------------------


def plan_cog(p: Params, validate_keys: list[str]) -> Iterator[TaskSpec]:
    for key in validate_keys:
        yield TaskSpec(key=key, parent=key, params={
            "target_crs": p.target_crs, "jpeg_quality": p.jpeg_quality, "overwrite": p.overwrite,
            "gdal_threads": p.gdal_threads, "quicklook": p.quicklook})


Cog = JobType(
    name="cog",
    description="Convert rasters (one file, or every file under a directory/container/prefix) to Cloud-Optimized GeoTIFFs.",
    params=Params,
    stages=(
        Stage("list", handler="cog.list", plan=plan_list, aggregate=summarize_listing, volatile=True,
              retry=RetryPolicy(attempts=3, base_delay=0.5, max_delay=5.0),
              description="list the inputs (and check a collection's homogeneity)"),
        Stage("validate", handler="cog.validate", plan=plan_validate, aggregate=summarize_validation,
              retry=STORAGE_RETRY,
              description="validate each input (one task per file)"),
        Stage("cog", handler="cog.convert", plan=plan_cog, aggregate=summarize_cogs, lineage=True, heavy=True,
              retry=STORAGE_RETRY, outputs=written_cog,
              description="write, check and publish each COG"),
        stac_stage.STAGE,
    ),
    hash_exclude=frozenset({"gdal_threads"}),
    secret_params=STAC_SECRET_PARAMS,
    failure_policy=PARTIAL_OK,
    finalize=job_result,
    render=render,
)

HANDLERS = {"cog.list": list_inputs, "cog.validate": validate, "cog.convert": convert, **stac_stage.HANDLERS}
