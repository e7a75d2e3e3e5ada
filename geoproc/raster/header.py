"""A raster's header as one typed record: what every reader of headers (collections, STAC, inventories) needs.

:meth:`RasterHeader.from_dataset` reads the facts of an open dataset without reading a pixel (GDAL
serves them from the few kilobytes of header a range request fetches); :func:`read_header` opens a
URL for it. Each user builds its own view of the record: the collection check compares bands, data
type, CRS and resolution, a STAC record adds footprint and checksums, an inventory row adds the COG
validation. The CRS is written by :func:`geoproc.raster.crs.crs_string` and the acquisition time by
:func:`source_datetime`, so a file is described the same way everywhere.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ..units import as_utc
from .crs import crs_string
from .io import open_raster

log = logging.getLogger(__name__)

# Metadata tags that may hold the file's time, most meaningful first: the acquisition time, then the
# TIFF creation time, then generic names some writers use.
DATETIME_TAGS = ("ACQUISITIONDATETIME", "ACQUISITION_DATETIME", "TIFFTAG_DATETIME", "DATETIME", "DATE_TIME")
_TIFF_DATETIME = re.compile(r"^(\d{4}):(\d{2}):(\d{2})[ T](\d{2}):(\d{2}):(\d{2})$")  # TIFF 6.0's form
COG_BLOCK = 512


def source_datetime(tags: Mapping[str, str]) -> str | None:
    """The file's own time from its metadata tags (see :data:`DATETIME_TAGS`), as ISO 8601 UTC, or None.

    Values are TIFF's ``YYYY:MM:DD HH:MM:SS`` or ISO 8601 (with or without an offset, or a date alone).
    TIFF dates have no time zone; they, and ISO values without an offset, are read as UTC. A tag whose
    value is neither is skipped.
    """
    for key in DATETIME_TAGS:
        value = (tags.get(key) or "").strip()
        if not value:
            continue
        when = _tag_time(value)
        if when is not None:
            return when.strftime("%Y-%m-%dT%H:%M:%SZ")
    return None


def _tag_time(value: str) -> dt.datetime | None:
    m = _TIFF_DATETIME.match(value)
    try:
        if m:
            return dt.datetime(*(int(g) for g in m.groups()), tzinfo=dt.UTC)
        return as_utc(value)
    except ValueError:  # not a date, or an impossible one (month 13): the next tag may hold one
        return None


@dataclass(frozen=True)
class RasterHeader:
    """The header facts of one raster (no pixel is read to get them)."""

    driver: str
    crs: str | None  # :func:`~geoproc.raster.crs.crs_string`; None without a CRS
    width: int
    height: int
    count: int
    dtype: str | None  # of the first band; None for a file without bands
    nodata: float | None
    transform: tuple[float, ...]  # affine a, b, c, d, e, f
    bounds: tuple[float, float, float, float]
    overviews: tuple[int, ...]  # decimation factors of the first band
    block_shape: tuple[int, int] | None  # (rows, cols) of the first band's blocks
    layout: str  # GDAL's IMAGE_STRUCTURE LAYOUT ("COG" for files written by its COG driver), or ""
    datetime: str | None  # :func:`source_datetime` of the file's tags
    band_names: tuple[str | None, ...]
    units: tuple[str | None, ...]

    @classmethod
    def from_dataset(cls, src: Any) -> RasterHeader:
        """Read the header of an open rasterio dataset."""
        nodata = src.nodata
        has_bands = bool(src.count)
        return cls(
            driver=src.driver, crs=crs_string(src.crs), width=src.width, height=src.height, count=src.count,
            dtype=src.dtypes[0] if has_bands else None, nodata=None if nodata is None else float(nodata),
            transform=tuple(src.transform)[:6], bounds=tuple(src.bounds),
            overviews=tuple(src.overviews(1)) if has_bands else (),
            block_shape=tuple(src.block_shapes[0]) if has_bands else None,
            layout=(src.tags(ns="IMAGE_STRUCTURE") or {}).get("LAYOUT", ""),
            datetime=source_datetime(src.tags()), band_names=tuple(src.descriptions), units=tuple(src.units))

    @property
    def resolution(self) -> tuple[float, float]:
        """Pixel size (x, y), both positive."""
        return abs(self.transform[0]), abs(self.transform[4])

    @property
    def looks_cog(self) -> bool:
        """A cloud-optimized layout as the header shows it: GeoTIFF, internally tiled in square blocks,
        with overviews when larger than one block (``rio_cogeo.cog_validate`` re-reads the file to check
        more, which is what an inventory does)."""
        if self.driver != "GTiff":
            return False
        if self.layout.upper() == "COG":
            return True
        rows, cols = self.block_shape or (0, 0)
        tiled = rows < self.height and cols < self.width and rows == cols
        small = max(self.width, self.height) <= COG_BLOCK
        return tiled and (small or bool(self.overviews))


def read_header(url: str, storage_options: Mapping[str, Any] | None = None, *,
                size: int | None = None) -> RasterHeader:
    """The header of the raster at ``url``, read with range requests where the storage allows.

    Raises:
        CorruptRaster: the object is empty or not a readable raster.
        SourceNotFound, StorageAccessDenied, StorageUnreachable, TransientError: storage failures.
    """
    with open_raster(url, storage_options, size=size) as src:
        return RasterHeader.from_dataset(src)
