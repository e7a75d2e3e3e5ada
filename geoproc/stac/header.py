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
import logging
from typing import Any

import rasterio

from ..errors import CrsMissing
from ..raster.header import RasterHeader
from ..raster.io import open_raster
from ..storage import open_fs, redact, storage_errors
from .footprint import valid_footprint

log = logging.getLogger(__name__)

CHEAP_MASK_SIDE = 4096  # the largest (overview) side read to trace a footprint


def _cheap_mask(header: RasterHeader) -> bool:
    side = max(header.width, header.height)
    if header.overviews:
        side = side / max(header.overviews)
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
        CorruptRaster: GDAL cannot read the file (or it is empty).
        CrsMissing: the file has no CRS.
        SourceNotFound, StorageAccessDenied, StorageUnreachable, TransientError: storage failures.
    """
    record: dict[str, Any] = {"input": redact(url), "output": redact(url)}
    with open_raster(url, storage_options, size=size, GDAL_PAM_ENABLED="NO") as src:
        header = RasterHeader.from_dataset(src)
        if header.crs is None:
            raise CrsMissing(f"{redact(url)} has no CRS; a STAC item needs one")
        record.update(
            crs=header.crs, bounds=list(header.bounds), shape=[header.height, header.width],
            transform=list(header.transform), count=header.count, dtype=header.dtype, nodata=header.nodata,
            datetime=header.datetime, band_names=list(header.band_names), units=list(header.units),
            is_cog=header.looks_cog, gdal_version=rasterio.__gdal_version__, rasterio_version=rasterio.__version__,
        )
        if footprint and _cheap_mask(header):
            fp = valid_footprint(src)
            if fp is not None:
                record["footprint"] = fp
        if statistics:
            record["band_stats"] = _statistics(src)
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

