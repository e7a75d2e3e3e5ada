"""Coordinate reference systems: parsing user input and the one way geoproc writes a CRS as text.

A CRS is written as ``EPSG:XXXX`` when it has an EPSG code, else as its WKT2 (what STAC's ``proj``
extension wants): task results, STAC items, collection checks and inventories all use
:func:`crs_string`, so the same file is described by the same string everywhere.
"""

from __future__ import annotations

import logging

from rasterio.crs import CRS
from rasterio.errors import CRSError

log = logging.getLogger(__name__)


def crs_string(crs: CRS | None) -> str | None:
    """``EPSG:XXXX`` when the CRS has an EPSG code, else its WKT2; None without a CRS."""
    if crs is None:
        return None
    epsg = crs.to_epsg()
    return f"EPSG:{epsg}" if epsg else crs.to_wkt(version="WKT2_2019")


def parse_crs(text: str) -> CRS:
    """A CRS from user input (``EPSG:4326``, WKT, PROJ string), with a clear error."""
    try:
        return CRS.from_user_input(text)
    except CRSError as exc:
        raise ValueError(f"{text!r} is not a CRS rasterio understands ({exc})") from None


def is_georeferenced(crs: CRS) -> bool:
    """Whether ``crs`` ties coordinates to the Earth (not a LOCAL_CS / engineering CRS)."""
    return bool(crs.is_geographic or crs.is_projected)
