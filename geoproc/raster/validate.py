"""Raster validation: the seed system's rules, each finding with a code, a severity and a remedy.

Rules, in the order they are checked:

==========================  ========  =========================================================================
code                        severity  when
==========================  ========  =========================================================================
CRS_MISMATCH                error     the file has a CRS and ``input_crs`` names a different one
CRS_MISSING                 error     no CRS in the file and no ``input_crs``
CRS_NOT_GEOREFERENCED       error     the CRS is a local/engineering one and a reprojection was asked for
GEOTRANSFORM_MISSING        error     no geotransform (pixel grid only), or georeferenced by GCPs only
TRANSFORM_ROTATED           error     rotated or south-up transform and ``target_crs=keep``; a warning when
                                      the output is warped anyway (the warp makes it north-up)
BOUNDS_INVALID              error     geographic bounds beyond +-90 degrees latitude
BOUNDS_SUSPICIOUS           warning   geographic bounds beyond +-360 degrees longitude
MIXED_DTYPES                error     bands of different data types
DTYPE_UNSUPPORTED           error     complex data types
DTYPE_64BIT                 warning   64-bit data (error with ``strict``): usually wasted bytes
NODATA_OUT_OF_RANGE         warning   the nodata value cannot be represented in the data type
RASTER_EMPTY                error     every pixel is nodata (confirmed by a block scan)
RASTER_TOO_LARGE            error     more than ``MAX_PIXELS`` pixels declared (use the large_raster job)
RASTER_MOSTLY_EMPTY         warning   90 % or more of the sampled pixels are nodata
RASTER_NODATA_CONFLICT      warning   the nodata value lies inside the range of valid data (error with
                                      ``strict``)
RASTER_EXTREME_VALUES       warning   valid values with magnitude >= 1e30: likely an undeclared nodata value
NAN_WITHOUT_NODATA          warning   NaN values in a float raster that declares no nodata
RASTER_TYPE_OVERRIDDEN      info      the ``raster_type`` parameter overrides the detected type
==========================  ========  =========================================================================

The codes are the constants of :mod:`geoproc.errors` (listed in :data:`FINDING_CODES`), whose code
catalogue gives each its meaning and remedy.

Pixel rules look at a sample (at most 1024 pixels on the long side, read with range requests: decimated
through overviews, or a grid of small windows when a large file has none), so validating a 20 GB file
does not read 20 GB. An all-nodata sample is confirmed block by block (at most ``SCAN_BLOCKS`` blocks)
before the file is failed, since a sample can miss a small valid area.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.windows import Window

from ..errors import (
    BOUNDS_INVALID,
    BOUNDS_SUSPICIOUS,
    CRS_MISMATCH,
    CRS_MISSING,
    CRS_NOT_GEOREFERENCED,
    DTYPE_64BIT,
    DTYPE_UNSUPPORTED,
    GEOTRANSFORM_MISSING,
    MIXED_DTYPES,
    NAN_WITHOUT_NODATA,
    NODATA_OUT_OF_RANGE,
    RASTER_EMPTY,
    RASTER_EXTREME_VALUES,
    RASTER_MOSTLY_EMPTY,
    RASTER_NODATA_CONFLICT,
    RASTER_TOO_LARGE,
    RASTER_TYPE_OVERRIDDEN,
    TRANSFORM_ROTATED,
    CrsMismatch,
    CrsMissing,
    EmptyRaster,
    InvalidInput,
    UnsupportedRaster,
)
from .crs import crs_string, is_georeferenced, parse_crs
from .detect import detect_type, nodata_json

log = logging.getLogger(__name__)

SAMPLE_SIDE = 1024
GRID_SAMPLE_ABOVE = 64 * 2**20  # pixels: larger rasters without overviews are sampled by windows
GRID_WINDOW = 128  # side of each sample window
SCAN_BLOCKS = 4096  # blocks read at most to confirm that a raster holds no valid pixel
MAX_PIXELS = 2**33  # about 92,000 x 92,000: beyond this a header is refused as implausible for one COG
EXTREME = 1e30


# Every code a finding can carry, in the order the rules are checked (their meanings and remedies are
# in geoproc's code catalogue, :func:`geoproc.errors.catalogue`).
FINDING_CODES = (CRS_MISMATCH, CRS_MISSING, CRS_NOT_GEOREFERENCED, GEOTRANSFORM_MISSING,
                 TRANSFORM_ROTATED, BOUNDS_INVALID, BOUNDS_SUSPICIOUS, MIXED_DTYPES,
                 DTYPE_UNSUPPORTED, DTYPE_64BIT, NODATA_OUT_OF_RANGE, RASTER_EMPTY,
                 RASTER_TOO_LARGE, RASTER_MOSTLY_EMPTY, RASTER_NODATA_CONFLICT, RASTER_EXTREME_VALUES,
                 NAN_WITHOUT_NODATA, RASTER_TYPE_OVERRIDDEN)


@dataclass(frozen=True)
class Finding:
    """One validation result: a stable code, a severity (info, warning, error), what and what to do."""

    code: str  # one of :data:`FINDING_CODES`
    severity: str
    message: str
    remediation: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


_ERRORS: dict[str, type[InvalidInput]] = {
    CRS_MISSING: CrsMissing,
    CRS_MISMATCH: CrsMismatch,
    RASTER_EMPTY: EmptyRaster,
}


def raise_for(findings: Iterable[Finding], url: str) -> None:
    """Raise the error of the first error-severity finding (its message lists every error)."""
    errors = [f for f in findings if f.severity == "error"]
    if not errors:
        return
    first = errors[0]
    cls = _ERRORS.get(first.code, UnsupportedRaster)
    text = "; ".join(f"{f.code}: {f.message}" for f in errors)
    raise cls(f"{url}: {text}", code=first.code, remediation=first.remediation or None)


def check_crs(src_crs: CRS | None, input_crs: str | None, target_crs: str) -> tuple[CRS | None, str, list[Finding]]:
    """(effective source CRS, where it came from, findings) by the seed's rules."""
    out: list[Finding] = []
    given = parse_crs(input_crs) if input_crs else None
    crs, source = src_crs, "file"
    if src_crs is not None and given is not None and src_crs != given:
        out.append(Finding(CRS_MISMATCH, "error",
                           f"the file's CRS is {crs_string(src_crs)} but input_crs={input_crs!r}",
                           "input_crs only applies to files without a CRS; drop it or fix the file."))
    elif src_crs is None and given is None:
        out.append(Finding(CRS_MISSING, "error", "the raster has no CRS and no input_crs was given",
                           CrsMissing.remediation))
    elif src_crs is None:
        crs, source = given, "input_crs"
    if crs is not None and target_crs != "keep" and not is_georeferenced(crs):
        out.append(Finding(CRS_NOT_GEOREFERENCED, "error",
                           f"the CRS is a local (engineering) one and cannot be reprojected to {target_crs}",
                           "Use target_crs=keep for this file, or georeference it first."))
    return crs, source, out


def check_geometry(src: rasterio.DatasetReader, crs: CRS | None, target_crs: str) -> list[Finding]:
    """Geotransform and bounds rules."""
    out: list[Finding] = []
    t = src.transform
    if src.gcps[0] and t.is_identity:
        return [Finding(GEOTRANSFORM_MISSING, "error", "the raster is georeferenced by ground control points only",
                        "Warp it to a regular grid first (gdalwarp -t_srs ...), then convert it.")]
    if t.is_identity and crs is not None:  # GDAL's identity transform means "none": the file's CRS or input_crs
        return [Finding(GEOTRANSFORM_MISSING, "error", "the raster has no geotransform",
                        "Add a geotransform (e.g. gdal_translate -a_ullr), then convert it.")]
    if t.b != 0 or t.d != 0 or t.e > 0:
        what = "rotated" if (t.b or t.d) else "south-up"
        if target_crs == "keep":
            out.append(Finding(TRANSFORM_ROTATED, "error", f"the geotransform is {what}; COGs need north-up grids",
                               "Set a target_crs so the raster is warped to a north-up grid, or warp it first."))
        else:
            out.append(Finding(TRANSFORM_ROTATED, "warning", f"the geotransform is {what}; the warp makes it north-up"))
    if crs is not None and crs.is_geographic:
        left, bottom, right, top = src.bounds
        slack = abs(t.e)
        if min(bottom, top) < -90 - slack or max(bottom, top) > 90 + slack:
            out.append(Finding(BOUNDS_INVALID, "error",
                               f"latitudes {bottom:.4f}..{top:.4f} lie beyond +-90 degrees",
                               "The CRS is probably wrong (a projected raster labelled as geographic); fix it."))
        elif min(left, right) < -360 or max(left, right) > 360:
            out.append(Finding(BOUNDS_SUSPICIOUS, "warning", f"longitudes {left:.4f}..{right:.4f} exceed +-360"))
    return out


def check_dtypes(src: rasterio.DatasetReader, strict: bool) -> list[Finding]:
    """Data type rules (the seed's 64-bit policy)."""
    dtypes = set(src.dtypes)
    if len(dtypes) > 1:
        return [Finding(MIXED_DTYPES, "error", f"bands have different data types: {sorted(dtypes)}",
                        "Split the bands or cast them to one type first.")]
    dtype = src.dtypes[0]
    if dtype.startswith("complex"):
        return [Finding(DTYPE_UNSUPPORTED, "error", f"complex data ({dtype}) is not supported",
                        "Convert to amplitude/phase or real/imaginary bands first.")]
    if dtype in ("float64", "int64", "uint64"):
        return [Finding(DTYPE_64BIT, "error" if strict else "warning",
                        f"{dtype} data is rarely needed and doubles the size",
                        "Cast to a 32-bit type (gdal_translate -ot Float32) unless the precision is needed.")]
    return []


def check_nodata_range(nodata: float | None, dtype: str) -> list[Finding]:
    if nodata is None or math.isnan(nodata) or dtype.startswith("float"):
        return []
    info = np.iinfo(dtype)
    if not (info.min <= nodata <= info.max) or nodata != int(nodata):
        return [Finding(NODATA_OUT_OF_RANGE, "warning", f"nodata {nodata} cannot be stored as {dtype}",
                        "Set a nodata value the data type can hold.")]
    return []


def sample(src: rasterio.DatasetReader, side: int = SAMPLE_SIDE) -> np.ma.MaskedArray:
    """A masked sample of all bands, at most ``side`` pixels on the long side.

    With overviews (or a small raster) it is a decimated read. Without overviews a decimated read
    makes GDAL touch every block, so large rasters are sampled as a grid of small windows instead.
    """
    scale = max(src.width, src.height) / side
    if scale <= 1:
        return src.read(masked=True)
    if src.overviews(1) or src.width * src.height <= GRID_SAMPLE_ABOVE:
        shape = (src.count, max(1, round(src.height / scale)), max(1, round(src.width / scale)))
        return src.read(masked=True, out_shape=shape, resampling=Resampling.nearest)
    n, w = side // GRID_WINDOW, GRID_WINDOW
    rows = [round(i * (src.height - w) / (n - 1)) for i in range(n)]
    cols = [round(j * (src.width - w) / (n - 1)) for j in range(n)]
    tiles = [[src.read(masked=True, window=Window(c, r, w, w)) for c in cols] for r in rows]
    return np.ma.concatenate([np.ma.concatenate(row, axis=2) for row in tiles], axis=1)


def has_valid_pixel(src: rasterio.DatasetReader, max_blocks: int = SCAN_BLOCKS) -> bool | None:
    """Block-by-block search for one valid pixel; None when ``max_blocks`` were read without an answer."""
    for n, (_, window) in enumerate(src.block_windows(1)):
        if n >= max_blocks:
            return None
        if src.read_masks(window=window).any():
            return True
    return False


def check_pixels(src: rasterio.DatasetReader, data: np.ma.MaskedArray, strict: bool) -> tuple[list[Finding], dict]:
    """Nodata and value rules on the sample; returns findings and sample statistics."""
    out: list[Finding] = []
    mask = np.ma.getmaskarray(data)
    valid = data.compressed()
    nodata = src.nodata
    if valid.size and valid.dtype.kind == "f":
        finite = valid[np.isfinite(valid)]
        if finite.size < valid.size and nodata is None:
            out.append(Finding(NAN_WITHOUT_NODATA, "warning", "NaN values present but no nodata value is set",
                               "Declare nodata=nan so NaNs are treated as missing."))
        valid = finite
    valid_fraction = float(valid.size) / mask.size if mask.size else 0.0
    stats: dict[str, Any] = {"valid_fraction": round(valid_fraction, 6)}
    if valid.size == 0:
        found = has_valid_pixel(src)
        if found is False:
            out.append(Finding(RASTER_EMPTY, "error", "every pixel is nodata", EmptyRaster.remediation))
        elif found is None:
            out.append(Finding(RASTER_MOSTLY_EMPTY, "warning",
                               f"the sample holds no valid pixel and the first {SCAN_BLOCKS} blocks neither"))
        else:
            out.append(Finding(RASTER_MOSTLY_EMPTY, "warning", "the sample holds no valid pixel (a block scan found some)"))
        return out, stats
    vmin, vmax = float(valid.min()), float(valid.max())
    stats.update(min=vmin, max=vmax)
    if valid_fraction <= 0.10:
        out.append(Finding(RASTER_MOSTLY_EMPTY, "warning", f"{100 * (1 - valid_fraction):.1f} % of the sampled pixels are nodata",
                           "Check the extent and the nodata value; most of the file holds nothing."))
    if nodata is not None and not math.isnan(nodata) and vmin < nodata < vmax:
        out.append(Finding(RASTER_NODATA_CONFLICT, "error" if strict else "warning",
                           f"nodata {nodata} lies inside the valid data range {vmin}..{vmax}",
                           "Choose a nodata value outside the data range."))
    if max(abs(vmin), abs(vmax)) >= EXTREME:
        out.append(Finding(RASTER_EXTREME_VALUES, "warning", f"values reach {vmin:.3g}..{vmax:.3g}",
                           "These are probably an undeclared nodata value; set nodata to it."))
    return out, stats


def validate_raster(src: rasterio.DatasetReader, *, input_crs: str | None = None, target_crs: str = "EPSG:4326",
                    strict: bool = False, raster_type: str = "auto") -> dict[str, Any]:
    """Every rule on an open dataset; returns a JSON-able report (it never raises for bad data).

    The report holds ``findings`` (list of dicts), ``ok`` (no error finding), the effective ``crs`` and
    its ``crs_source``, the header facts, the detected ``raster_type`` with ``type_confidence`` and
    ``type_reason``, and sample statistics.
    """
    crs, crs_source, findings = check_crs(src.crs, input_crs, target_crs)
    if src.width * src.height > MAX_PIXELS:
        findings.append(Finding(
            RASTER_TOO_LARGE, "error",
            f"{src.width} x {src.height} pixels declared (more than {MAX_PIXELS:,}); a damaged or hostile header?",
            "If the raster really is this large, convert it with the large_raster job (tiled, bounded memory)."))
    findings += check_geometry(src, crs, target_crs)
    findings += check_dtypes(src, strict)
    findings += check_nodata_range(src.nodata, src.dtypes[0])
    stats: dict[str, Any] = {}
    detected = ("unknown", "low", "not sampled")
    if not any(f.severity == "error" for f in findings):
        data = sample(src)
        pix, stats = check_pixels(src, data, strict)
        findings += pix
        detected = detect_type(src, data)
    rtype, confidence, reason = detected
    if raster_type != "auto" and raster_type != rtype:
        findings.append(Finding(RASTER_TYPE_OVERRIDDEN, "info",
                                f"detected {rtype} ({confidence} confidence), treated as {raster_type} as asked"))
        rtype, confidence, reason = raster_type, "user", "given by the raster_type parameter"
    return {
        "ok": not any(f.severity == "error" for f in findings),
        "findings": [f.to_dict() for f in findings],
        "driver": src.driver,
        "width": src.width,
        "height": src.height,
        "count": src.count,
        "dtype": src.dtypes[0],
        "nodata": nodata_json(src.nodata),
        "crs": crs_string(crs),
        "crs_source": crs_source,
        "transform": list(src.transform)[:6],
        "bounds": list(src.bounds),
        "colorinterp": [c.name for c in src.colorinterp],
        "raster_type": rtype,
        "type_confidence": confidence,
        "type_reason": reason,
        "sample": stats,
    }
