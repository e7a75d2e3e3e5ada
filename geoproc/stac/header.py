"""Raster records read from a file's header, in the same shape as a ``cog`` task result.

:func:`raster_record` opens the file through GDAL (``/vsiaz/`` range reads for Azure, so a large file
is never downloaded) and reads only its header; three optional extras read a little more:

* ``footprint``: the valid-data outline from a decimated mask, only when that is cheap (the file has
  no nodata/mask, or it is small, or its overviews serve the decimated read);
* ``statistics``: per-band statistics and a histogram from a read of at most 1024 pixels a side
  (rio-stac's ``get_raster_info``, which GDAL serves from overviews);
* ``checksum``: the sha256 of the whole file (a full read, off by default).
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from ..errors import CorruptRaster, CrsMissing
from ..storage import gdal_env, gdal_path, open_fs, redact, storage_errors, translate

CHEAP_MASK_SIDE = 4096  # the largest (overview) side read to trace a footprint
_TIFF_DATETIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")


def crs_string(crs: Any) -> str | None:
    """``EPSG:<code>`` when the CRS has one, else its WKT2; None without a CRS."""
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt(version="WKT2_2019")


def tiff_datetime(tags: dict[str, str]) -> str | None:
    """The file's own acquisition or creation time from its metadata, as ISO 8601 UTC."""
    for key in ("ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "TIFFTAG_DATETIME"):
        value = (tags.get(key) or "").strip()
        m = _TIFF_DATETIME.match(value)
        if m:
            return f"{m[1]}-{m[2]}-{m[3]}T{m[4]}:{m[5]}:{m[6]}Z"
        if re.match(r"^\d{4}-\d{2}-\d{2}", value):
            return value
    return None


def _cheap_mask(src: Any) -> bool:
    side = max(src.width, src.height)
    overviews = src.overviews(1) if src.count else []
    if overviews:
        side = side / max(overviews)
    return side <= CHEAP_MASK_SIDE


def _statistics(src: Any) -> list[dict[str, Any]]:
    from rio_stac.stac import get_raster_info

    out = []
    for band in get_raster_info(src, max_size=1024):
        stats = dict(band.get("statistics") or {})
        if band.get("histogram"):
            stats["histogram"] = band["histogram"]
        out.append(stats)
    return out


def sha256_url(url: str, storage_options: dict[str, Any] | None) -> str:
    """The sha256 hex digest of the file at ``url`` (streamed, 8 MiB at a time)."""
    h = hashlib.sha256()
    fs, path = open_fs(url, storage_options)
    with fs.open(path, "rb") as f:
        for chunk in iter(lambda: f.read(8 * 2**20), b""):
            h.update(chunk)
    return h.hexdigest()


def raster_record(url: str, storage_options: dict[str, Any] | None = None, *, size: int | None = None,
                  last_modified: str | None = None, footprint: bool = True, statistics: bool = False,
                  checksum: bool = False) -> dict[str, Any]:
    """The record :func:`geoproc.stac.items.create_item` needs for the raster at ``url``.

    Args:
        url: the raster (local path, ``az://``, ``https://``, ...).
        storage_options: per-protocol credentials (``TaskContext.storage_options``).
        size: the file size from a listing; read from the storage when None.
        last_modified: the file's last-modified time (ISO 8601), the datetime of last resort.
        footprint: trace the valid-data outline when cheap.
        statistics: add per-band statistics and histograms (reads a decimated copy).
        checksum: add the file's sha256 (reads the whole file).

    Raises:
        CorruptRaster: GDAL cannot read the file.
        CrsMissing: the file has no CRS.
    """
    import rasterio
    from rasterio.errors import RasterioIOError

    from .footprint import valid_footprint

    record: dict[str, Any] = {"input": redact(url), "output": redact(url)}
    try:
        with rasterio.Env(**gdal_env(url, storage_options), GDAL_PAM_ENABLED="NO"):
            with rasterio.open(gdal_path(url)) as src:
                if src.crs is None:
                    raise CrsMissing(f"{redact(url)} has no CRS; a STAC item needs one")
                record.update(
                    crs=crs_string(src.crs), bounds=list(src.bounds), shape=[src.height, src.width],
                    transform=list(src.transform)[:6], count=src.count, dtype=src.dtypes[0],
                    nodata=src.nodata, datetime=tiff_datetime(src.tags()),
                    band_names=list(src.descriptions), units=list(src.units),
                    is_cog=_looks_cog(src), gdal_version=rasterio.__gdal_version__,
                    rasterio_version=rasterio.__version__,
                )
                if footprint and _cheap_mask(src):
                    fp = valid_footprint(src)
                    if fp is not None:
                        record["footprint"] = fp
                if statistics:
                    record["band_stats"] = _statistics(src)
    except RasterioIOError as exc:
        mapped = translate(exc, url, "read")
        if mapped is not None:
            raise mapped from None
        raise CorruptRaster(f"{redact(url)}: not a readable raster ({exc})") from None
    if size is None:
        with storage_errors(url, "read"):
            fs, path = open_fs(url, storage_options)
            size = int(fs.info(path)["size"])
    record["size"] = size
    if last_modified:
        record["last_modified"] = last_modified
    if checksum:
        with storage_errors(url, "read"):
            record["sha256"] = sha256_url(url, storage_options)
    return record


def _looks_cog(src: Any) -> bool:
    """A cloud-optimized layout as the header shows it: GeoTIFF, internally tiled, with overviews
    when larger than one tile (``rio_cogeo.cog_validate`` would re-open the file to check more)."""
    if src.driver != "GTiff":
        return False
    layout = (src.tags(ns="IMAGE_STRUCTURE") or {}).get("LAYOUT", "")
    if layout.upper() == "COG":
        return True
    blocks = src.block_shapes[0] if src.count else (0, 0)
    tiled = blocks[0] < src.height and blocks[1] < src.width and blocks[0] == blocks[1]
    small = max(src.width, src.height) <= 512
    return tiled and (small or bool(src.overviews(1)))
