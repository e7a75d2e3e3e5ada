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

Each ``cog`` task result (the contract STAC items are built from; all keys always present):

=================  ===========================================================================
key                value
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
raster_type        rgb, rgba, dem, continuous, categorical or multispectral
tier               tier used; ``requested_tier`` holds the one asked for
compression        deflate, jpeg or zstd
overviews          decimation factors, e.g. [2, 4, 8] ([] for rasters of one block)
band_stats         per band: minimum, maximum, mean, stddev, valid_percent
datetime           ISO 8601 UTC from the file's date tags (TIFFTAG_DATETIME, ...), or null
warnings           list of "CODE: message" strings (validation warnings, tier fallback, ...)
reprojected        whether the raster was warped; ``resampling`` {overview, reproject}
reused             true when an identical earlier output was kept instead of converting again
route              "single" or "tiled": the route the conversion took (see :func:`route`)
metrics            {bytes_read, bytes_written} of this attempt (for ``geoproc`` stage metrics)
=================  ===========================================================================
"""

from __future__ import annotations

import os
import posixpath
import tempfile
from collections.abc import Iterator
from typing import Any, Literal

import rasterio
from pydantic import AliasChoices, ConfigDict, Field, field_validator, model_validator

from .. import ids
from ..errors import InvalidInput, OutputExists, UnsafePath
from ..model import JSON, PARTIAL_OK, JobType, RetryPolicy, Stage, StageOutput, TaskContext, TaskSpec
from ..raster import cog as cogmod
from ..raster.io import open_raster
from ..raster.mosaic import check_cog, cog_options, tiled_cog
from ..raster.profiles import RASTER_TYPES, RESAMPLING_CHOICES, creation_profile, resampling_for, resolve_tier
from ..raster.quicklook import write_quicklook
from ..raster.validate import Finding, parse_crs, raise_for, validate_raster
from ..stac import cogstage
from ..stac.publish import SECRET_PARAMS as STAC_SECRET_PARAMS
from ..stac.publish import StacOptions
from ..storage import (
    is_local,
    join,
    local_path,
    open_fs,
    protocol_of,
    publish,
    redact,
    safe_relative,
    sha256_file,
    storage_errors,
)
from ..storage.listing import list_files

Resampling = Literal[RESAMPLING_CHOICES]  # type: ignore[valid-type]
VERSION = "2"  # bump when outputs of equal inputs and settings change, so stale outputs are not reused
MAX_NAMES = 10_000  # inputs listed by name in stage values (beyond that, counts only)


class Params(StacOptions):  # stac_catalog / pgstac_dsn: catalog the outputs (geoproc.stac)
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    input: str = Field(..., min_length=1, validation_alias=AliasChoices("input", "src"),
                       description="URL of a raster, or of a directory / container / prefix to convert")
    output: str = Field(..., min_length=1, validation_alias=AliasChoices("output", "dst"),
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
    min_size: int = Field(0, ge=0, description="skip files smaller than this (bytes)")
    max_size: int | None = Field(None, ge=0, description="skip files larger than this (bytes)")
    limit: int | None = Field(None, ge=1, le=10_000_000, description="convert at most this many files")
    collection: bool = Field(False, description="check that the files form a homogeneous collection first")
    strict: bool = Field(False, description="64-bit data and nodata inside the data range are errors")
    overwrite: bool = Field(False, description="replace existing outputs that were not written from this input")
    large_threshold: int = Field(2_000_000_000, ge=1, description="inputs above this size (bytes) route to 'tiled'")
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
                                       "min_size": p.min_size, "max_size": p.max_size, "limit": p.limit,
                                       "collection": p.collection, "input_crs": p.input_crs})


def list_inputs(params: JSON, ctx: TaskContext) -> JSON:
    """List the inputs; in collection mode check their headers for homogeneity."""
    exclude = [params["output"]] if protocol_of(params["output"]) == protocol_of(params["input"]) else []
    files, skipped = list_files(params["input"], ctx.storage_options, suffixes=params["suffixes"],
                                min_size=params["min_size"], max_size=params["max_size"], limit=params["limit"],
                                exclude=exclude)
    collection = None
    if params.get("collection"):
        from ..raster.collection import check_homogeneity

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
            "large_threshold": p.large_threshold})


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
        cls = UnsafePath if code == "UNSAFE_PATH" else OutputExists
        raise cls(f"{redact(url)}: {msg}", code=code)
    with open_raster(url, ctx.storage_options, size=params.get("size")) as src:
        report = validate_raster(src, input_crs=params.get("input_crs"), target_crs=params["target_crs"],
                                 strict=params["strict"], raster_type=params["raster_type"])
        when = cogmod.source_datetime(src.tags())
    findings = [Finding(**f) for f in report["findings"]]
    raise_for(findings, redact(url))
    choice = resolve_tier(params["tier"], report["count"], report["dtype"], fallback=params["tier_fallback"])
    ov, rp = resampling_for(report["raster_type"], params.get("overview_resampling"), params.get("reproject_resampling"))
    warnings = [f"{f.code}: {f.message}" for f in findings if f.severity == "warning"]
    if choice.warning:
        warnings.append(choice.warning)
    return {**report, "input": redact(url), "output": redact(params["output"]), "rel": params["rel"],
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
    """Convert one validated input to a COG: local temp file → checks → publish."""
    v = ctx.predecessor or {}
    if "output" not in v:
        raise InvalidInput(f"{redact(ctx.key)}: no validation result to convert from", code="NO_VALIDATION")
    url, out, so = ctx.key, v["output"], ctx.storage_options
    digest = provenance(v, params)
    with tempfile.TemporaryDirectory(prefix="geoproc-cog-") as tmp:
        local = os.path.join(tmp, posixpath.basename(out.split("?")[0]) or "out.tif")
        reused = _reuse(out, digest, params["overwrite"], so, local)
        taken = v["route"]
        done: dict[str, Any] = {"band_stats": None}
        if not reused:
            profile = creation_profile(v["tier"], v["dtype"], raster_type=v["raster_type"],
                                       jpeg_quality=params["jpeg_quality"], threads=params["gdal_threads"])
            config = {"CPL_TMPDIR": tmp, "GDAL_NUM_THREADS": str(params["gdal_threads"])}
            with open_raster(url, so, size=v.get("input_size")) as src:
                taken = _route_taken(v, src, params["target_crs"])
                if taken == "tiled":  # window by window in bounded memory (see geoproc.raster.mosaic.tiled_cog)
                    opts = cog_options(v["tier"], v["dtype"], raster_type=v["raster_type"],
                                       threads=params["gdal_threads"], jpeg_quality=params["jpeg_quality"])
                    with rasterio.Env(CPL_TMPDIR=tmp):
                        done = tiled_cog(src, local, target_crs=params["target_crs"], options=opts,
                                         overview_resampling=v["overview_resampling"],
                                         reproject_resampling=v["reproject_resampling"],
                                         tags={cogmod.PROVENANCE_TAG: digest,
                                               "OVERVIEW_RESAMPLING": v["overview_resampling"].upper()})
                else:
                    done = cogmod.translate(src, local, profile, crs=parse_crs(v["crs"]),
                                            crs_given=v["crs_source"] == "input_crs", target_crs=params["target_crs"],
                                            overview_resampling=v["overview_resampling"],
                                            reproject_resampling=v["reproject_resampling"], provenance=digest,
                                            gdal_config=config)
        facts = (check_cog(local, stats=done["band_stats"]) if taken == "tiled"
                 else cogmod.describe(local, stats=done["band_stats"]))
        sha, size = sha256_file(local), os.path.getsize(local)
        quicklook = None
        if params.get("quicklook"):  # a small PNG beside the COG, for reports and notebooks
            png, quicklook = os.path.join(tmp, "quicklook.png"), quicklook_url(out)
            write_quicklook(local, png, v["raster_type"])
        if not reused:
            publish(local, out, so, move=True)
        if quicklook:
            publish(png, quicklook, so, move=True)
    warnings = list(v.get("warnings", [])) + facts.pop("warnings")
    facts.pop("tags")
    facts.pop("provenance")
    return {"input": v["input"], "output": redact(out), "size": size, "sha256": sha, "input_size": v.get("input_size"),
            **facts, "raster_type": v["raster_type"], "tier": v["tier"], "requested_tier": v["requested_tier"],
            "datetime": v.get("datetime"), "warnings": warnings,
            "reprojected": cogmod.needs_warp(parse_crs(v["crs"]), params["target_crs"]),
            "resampling": {"overview": v["overview_resampling"], "reproject": v["reproject_resampling"]},
            "source_crs": v["crs"], "source_nodata": v["nodata"], "reused": reused, "route": taken,
            **({"quicklook": redact(quicklook)} if quicklook else {}),
            "metrics": {"bytes_read": 0 if reused else v.get("input_size") or 0,
                        "bytes_written": 0 if reused else size}}


def _route_taken(v: JSON, src: Any, target_crs: str) -> str:
    """The route a conversion really takes: ``tiled`` (from :func:`route`) applies to inputs that are
    reprojected and carry a nodata value; the others are copied by the single path, whose GDAL copy
    streams already (no warp) or which adds the mask a warp of a raster without nodata needs."""
    if v["route"] != "tiled" or v["crs_source"] == "input_crs" or src.nodata is None:
        return "single"
    return "tiled" if cogmod.needs_warp(parse_crs(v["crs"]), target_crs) else "single"


def quicklook_url(out: str) -> str:
    """``<output without .tif>.png``: the quicklook's place beside its COG."""
    base = out.split("?", 1)[0]
    stem, _ = posixpath.splitext(base)
    return stem + ".png"


def _reuse(out: str, digest: str, overwrite: bool, so: dict, local: str) -> bool:
    """Whether an existing output can be kept; copies it to ``local`` when it can.

    Raises:
        OutputExists: the output exists, was not written from this input with these settings, and
            ``overwrite`` is false.
    """
    with storage_errors(out, "check"):
        fs, path = open_fs(out, so)
        exists = fs.exists(path)
    if not exists or overwrite:
        return False
    try:
        with open_raster(out, so) as ds:
            stamp = cogmod.read_provenance(ds)
    except InvalidInput:
        stamp = None
    if stamp != digest:
        same_input = stamp is not None and stamp.rsplit(":", 1)[-1] == digest.rsplit(":", 1)[-1]
        if same_input:
            return False  # written from this input before it changed (or with other settings): replace
        raise OutputExists(f"{redact(out)} exists and was not written from this input with these settings.")
    with storage_errors(out, "read"):
        fs.get_file(path, local)
    return True


def report(p: Params, results: Iterator[JSON]) -> JSON:
    """The conversion report: files done, bytes in and out, compression ratio, tiers, warnings."""
    done = reused = 0
    b_in = b_out = 0
    tiers: dict[str, int] = {}
    warned: list[JSON] = []
    names: list[str] = []
    for r in results:
        done += 1
        reused += bool(r.get("reused"))
        b_in += r.get("input_size") or 0
        b_out += r["size"]
        tiers[r["tier"]] = tiers.get(r["tier"], 0) + 1
        if r["warnings"] and len(warned) < 100:
            warned.append({"input": r["input"], "warnings": r["warnings"]})
        if len(names) < MAX_NAMES:
            names.append(r["input"])
    return {"done": done, "reused": reused, "converted": done - reused, "bytes_in": b_in, "bytes_out": b_out,
            "compression_ratio": round(b_in / b_out, 3) if b_out else None, "tiers": tiers, "warnings": warned,
            "inputs": names}


def finalize(p: Params, values: list[JSON | None]) -> JSON:
    listing, validation, cogs = (values + [None, None, None])[:3]
    listing, validation, cogs = listing or {}, validation or {}, cogs or {}
    listed = listing.get("inputs") or []
    valid = set(validation.get("inputs") or [])
    done = set(cogs.get("inputs") or [])
    failed = [{"input": i, "stage": "validate"} for i in listed if i not in valid]
    failed += [{"input": i, "stage": "cog"} for i in listed if i in valid and i not in done]
    return {
        "input": redact(p.input), "output": redact(p.output), "tier": p.tier, "target_crs": p.target_crs,
        "listed": listing.get("listed", 0), "skipped": listing.get("skipped", {}),
        "done": cogs.get("done", 0), "converted": cogs.get("converted", 0), "reused": cogs.get("reused", 0),
        "failed": listing.get("listed", 0) - cogs.get("done", 0), "failed_inputs": failed[:1000],
        "bytes_in": cogs.get("bytes_in", 0), "bytes_out": cogs.get("bytes_out", 0),
        "compression_ratio": cogs.get("compression_ratio"), "tiers": cogs.get("tiers", {}),
        "raster_types": validation.get("raster_types", {}), "warnings": cogs.get("warnings", []),
        "collection": listing.get("collection"),
        "stac": values[3] if len(values) > 3 else None,
    }


def render(result: JSON) -> Any:
    """The conversion report as a table, with one row per failed input and its reason."""
    from rich.table import Table

    from ..report import human_bytes

    t = Table(title=f"COG: {result['input']} → {result['output']} ({result['tier']}, {result['target_crs']})",
              show_header=False, title_justify="left")
    t.add_row("files listed / done / failed", f"{result['listed']} / {result['done']} / {result['failed']}")
    t.add_row("converted / reused", f"{result['converted']} / {result['reused']}")
    ratio = result.get("compression_ratio")
    t.add_row("bytes in → out", f"{human_bytes(result['bytes_in'])} → {human_bytes(result['bytes_out'])}"
              + (f"  (ratio {ratio})" if ratio else ""))
    t.add_row("raster types", ", ".join(f"{k}: {v}" for k, v in result.get("raster_types", {}).items()) or "-")
    for w in result.get("warnings", [])[:10]:
        t.add_row(f"[yellow]warning[/] {w['input']}", "; ".join(w["warnings"]))
    for f in result.get("failed_tasks", [])[:20]:
        t.add_row(f"[red]failed[/] {f['stage']} {f['key']}", f"{f['code']}: {f['message']}\n→ {f['remediation']}")
    stac = result.get("stac") or {}
    if stac.get("static"):
        t.add_row("STAC catalog", f"{stac['static'].get('url')} ({stac['static'].get('items')} items)")
    if stac.get("pgstac"):
        pg = stac["pgstac"]
        t.add_row("pgstac", ", ".join(f"{k} {v}" for k, v in pg.items() if isinstance(v, (int, str))))
    return t


Cog = JobType(
    name="cog",
    description="Convert rasters (one file, or every file under a directory/container/prefix) to Cloud-Optimized GeoTIFFs.",
    params=Params,
    stages=(
        Stage("list", handler="cog.list", plan=plan_list, aggregate=summarize_listing, volatile=True,
              retry=RetryPolicy(attempts=3, base_delay=0.5, max_delay=5.0),
              description="list the inputs (and check a collection's homogeneity)"),
        Stage("validate", handler="cog.validate", plan=plan_validate, aggregate=summarize_validation,
              retry=RetryPolicy(attempts=6, base_delay=1.0, max_delay=10.0),
              description="validate each input (one task per file)"),
        Stage("cog", handler="cog.convert", plan=plan_cog, aggregate=report, lineage=True, heavy=True,
              retry=RetryPolicy(attempts=6, base_delay=1.0, max_delay=10.0),
              description="write, check and publish each COG"),
        cogstage.STAGE,
    ),
    hash_exclude=frozenset({"gdal_threads"}),
    secret_params=STAC_SECRET_PARAMS,
    failure_policy=PARTIAL_OK,
    finalize=finalize,
    render=render,
)

HANDLERS = {"cog.list": list_inputs, "cog.validate": validate, "cog.convert": convert, **cogstage.HANDLERS}
