"""COG output tiers and type-aware resampling: which creation options and which kernels.

The same tier gives rio-cogeo's GTiff profile (:func:`creation_profile`) and the options of GDAL's COG
driver (:func:`cog_options`, for the assembled outputs), with the same codec, level and predictor.

=============  ==================================  =========================================  ===========
tier           compression                         predictor                                  fits
=============  ==================================  =========================================  ===========
visualization  JPEG, quality 85 (YCbCr)            none (lossy)                               3-band uint8
analysis       DEFLATE, level 6 (default)          2 for integers, 3 for floats               every raster
archive        ZSTD, level 19 (lossless, smallest  2 for integers, 3 for floats               every raster
               of the lossless codecs we measured)
=============  ==================================  =========================================  ===========

Unlike the seed system, the declared predictor and level are really applied, and a tier that does not
fit the raster is never a silent fallback: :func:`resolve_tier` either raises
:class:`~geoproc.errors.TierMismatch` or falls back to ``analysis`` and says so in a warning.
ZSTD needs libtiff >= 4.0.10 (GDAL >= 2.3) to read, which every current GDAL build has.

Resampling follows the raster type: categorical data is never interpolated (``mode`` overviews,
``nearest`` reprojection), continuous data is averaged and interpolated bilinearly, imagery uses
cubic kernels. Every output uses 512 x 512 blocks.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from ..errors import TIER_FALLBACK, TaskWarning, TierMismatch

log = logging.getLogger(__name__)

BLOCKSIZE = 512
TIERS = ("visualization", "analysis", "archive")
RASTER_TYPES = ("rgb", "rgba", "dem", "continuous", "categorical", "multispectral", "unknown")
RESAMPLING_CHOICES = ("nearest", "bilinear", "cubic", "cubic_spline", "lanczos", "average", "mode", "min",
                      "max", "med", "q1", "q3", "rms")

# raster type -> (overview resampling, reprojection resampling)
RESAMPLING: dict[str, tuple[str, str]] = {
    "rgb": ("cubic", "cubic"),
    "rgba": ("cubic", "cubic"),
    "dem": ("average", "bilinear"),
    "continuous": ("average", "bilinear"),
    "multispectral": ("average", "bilinear"),
    "categorical": ("mode", "nearest"),
    "unknown": ("nearest", "nearest"),
}


@dataclass(frozen=True)
class TierChoice:
    """The tier a raster gets: what was asked, what is used, and why they differ (if they do)."""

    requested: str
    tier: str
    warning: TaskWarning | None = None


def tier_fits(tier: str, count: int, dtype: str) -> str | None:
    """None when ``tier`` can hold a raster of ``count`` bands of ``dtype``, else the reason it cannot."""
    if tier == "visualization" and not (count == 3 and dtype == "uint8"):
        return f"the visualization tier (JPEG) needs exactly 3 uint8 bands; this raster has {count} {dtype} band(s)"
    return None


def resolve_tier(requested: str, count: int, dtype: str, *, fallback: bool) -> TierChoice:
    """The tier to use for this raster.

    Raises:
        TierMismatch: when the requested tier does not fit and ``fallback`` is false.
    """
    if requested not in TIERS:
        raise ValueError(f"unknown tier {requested!r}; choose one of {', '.join(TIERS)}")
    reason = tier_fits(requested, count, dtype)
    if reason is None:
        return TierChoice(requested, requested)
    if not fallback:
        raise TierMismatch(f"Tier {requested!r} does not fit: {reason}.")
    return TierChoice(requested, "analysis",
                      TaskWarning(TIER_FALLBACK, f"{reason}; used the analysis tier (lossless DEFLATE)"))


def predictor_for(dtype: str) -> int:
    """TIFF predictor that fits ``dtype``: 3 (floating point) for floats, 2 (horizontal) otherwise."""
    return 3 if dtype.startswith("float") else 2


def creation_profile(tier: str, dtype: str, *, raster_type: str = "unknown", jpeg_quality: int = 85,
                     threads: int = 1) -> dict:
    """GTiff creation options for ``cog_translate``'s ``dst_kwargs`` (tiled, 512 blocks)."""
    from rio_cogeo.profiles import cog_profiles

    if tier == "visualization":
        prof = dict(cog_profiles.get("jpeg"))
        prof.update(quality=jpeg_quality)
    elif tier == "analysis":
        prof = dict(cog_profiles.get("deflate"))
        prof.update(zlevel=6, predictor=predictor_for(dtype))
    elif tier == "archive":
        prof = dict(cog_profiles.get("raw"))
        prof.update(compress="ZSTD", zstd_level=19, predictor=predictor_for(dtype))
    else:
        raise ValueError(f"unknown tier {tier!r}; choose one of {', '.join(TIERS)}")
    prof.update(blockxsize=BLOCKSIZE, blockysize=BLOCKSIZE, num_threads=str(threads), bigtiff="IF_SAFER")
    if tier != "visualization" and raster_type == "rgb" and dtype == "uint8":
        prof["photometric"] = "RGB"
    return prof


def part_options(tier: str, dtype: str, *, raster_type: str = "unknown", threads: int = 1) -> dict:
    """GTiff creation options of a part of a stitched COG (:mod:`geoproc.raster.stitch`): the tier's
    codec, level and predictor, 512 blocks, pixel-interleaved as GDAL's COG driver writes, classic TIFF."""
    prof = creation_profile(tier, dtype, raster_type=raster_type, threads=threads)
    prof.pop("driver", None)
    return {**prof, "interleave": "pixel", "bigtiff": "NO"}


def cog_options(tier: str, dtype: str, *, overview_resampling: str = "nearest", raster_type: str = "unknown",
                threads: int | str = 1, jpeg_quality: int = 85) -> dict[str, str]:
    """Creation options for GDAL's COG driver, from the tier's profile (same codec, level, predictor)."""
    prof = creation_profile(tier, dtype, raster_type=raster_type, jpeg_quality=jpeg_quality)
    opts = {"BLOCKSIZE": str(BLOCKSIZE), "COMPRESS": str(prof.get("compress", "NONE")).upper(),
            "OVERVIEW_RESAMPLING": overview_resampling.upper(), "NUM_THREADS": str(threads),
            "BIGTIFF": "IF_SAFER"}
    if "predictor" in prof:
        opts["PREDICTOR"] = str(prof["predictor"])
    for key in ("zlevel", "zstd_level"):
        if key in prof:
            opts["LEVEL"] = str(prof[key])
    if "quality" in prof:
        opts["QUALITY"] = str(prof["quality"])
    return opts


def compression_of(profile: dict) -> str:
    """The compression name as recorded in task results (``deflate``, ``jpeg``, ``zstd``)."""
    return str(profile.get("compress", "none")).lower()


def resampling_for(raster_type: str, overview: str | None = None, reproject: str | None = None) -> tuple[str, str]:
    """(overview, reprojection) resampling for the type, with explicit choices taking precedence."""
    ov, rp = RESAMPLING.get(raster_type, RESAMPLING["unknown"])
    return overview or ov, reproject or rp
