"""Geospatial headers read through GDAL range requests: driver, CRS, size, bands, dtype, nodata, COG.

Nothing is downloaded: GDAL opens ``/vsiaz/...`` (or a local path) and reads the few kilobytes of
header it needs; ``rio_cogeo.cog_validate`` then checks the IFD layout from the same header. Files
GDAL cannot read (a text file, a truncated TIFF) get ``header_error`` and count as unreadable; they
never fail the task. Network errors are retried a few times and then fail the task as transient.

The facts come from :class:`geoproc.raster.header.RasterHeader`, the one header reader; an inventory
row is its view of them (the CRS as ``EPSG:XXXX``, else WKT2, as everywhere in geoproc).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import rasterio
from rio_cogeo.cogeo import cog_validate

from ..errors import TransientError
from ..raster.header import RasterHeader
from ..storage import gdal_env, gdal_path, gdal_readable, open_fs
from ..storage.faults import TRANSIENT, classify

log = logging.getLogger(__name__)

HEADER_FIELDS = ("driver", "crs", "width", "height", "bands", "dtype", "nodata", "overviews", "is_cog",
                 "header_error")
_ATTEMPTS = 3
# Open only the file itself: no directory listing to look for sidecars, no .aux.xml lookups.
_QUIET_GDAL = {"GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR", "GDAL_PAM_ENABLED": "NO"}


def row_of(header: RasterHeader) -> dict[str, Any]:
    """The inventory's view of a header: the columns of :data:`HEADER_FIELDS` but ``is_cog`` and the error."""
    return {"driver": header.driver, "crs": header.crs, "width": header.width, "height": header.height,
            "bands": header.count, "dtype": header.dtype, "nodata": header.nodata,
            "overviews": len(header.overviews)}


def _is_transient(exc: BaseException) -> bool:
    return classify(exc)[0] == TRANSIENT


def read_header(url: str, storage_options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The header record of one raster; ``header_error`` says why a file could not be read.

    Raises:
        TransientError: the storage kept failing with network or throttling errors.
    """
    env = {**gdal_env(url, storage_options), **_QUIET_GDAL}
    attempt = 1
    while True:
        try:
            if gdal_readable(url):
                return _read(gdal_path(url), env)
            fs, path = open_fs(url, storage_options)
            with fs.open(path, "rb") as fh:  # opened here, on the worker: never shipped in a graph
                return _read(fh, env)
        except Exception as exc:  # noqa: BLE001 - every failure becomes a record or a retry
            if not _is_transient(exc):
                return {**dict.fromkeys(HEADER_FIELDS), "header_error": f"{type(exc).__name__}: {exc}"[:500]}
            if attempt == _ATTEMPTS:
                raise TransientError(f"reading the header of {url} kept failing: {exc}") from exc
            time.sleep(0.5 * 2 ** (attempt - 1))
            attempt += 1


def _read(target: Any, env: dict[str, Any]) -> dict[str, Any]:
    with rasterio.Env(**env):
        with rasterio.open(target) as src:
            rec = row_of(RasterHeader.from_dataset(src))
        is_cog = False
        if rec["driver"] == "GTiff":
            if hasattr(target, "seek"):
                target.seek(0)
            is_cog, _, _ = cog_validate(target, config=env, quiet=True)
    return {**rec, "is_cog": bool(is_cog), "header_error": None}


def read_headers(urls: Iterable[str], storage_options: dict[str, dict[str, Any]], threads: int = 8
                 ) -> list[dict[str, Any]]:
    """Headers of many rasters, read concurrently (each thread has its own GDAL environment), in order."""
    urls = list(urls)
    if threads <= 1 or len(urls) <= 1:
        return [read_header(u, storage_options) for u in urls]
    with ThreadPoolExecutor(max_workers=min(threads, len(urls)), thread_name_prefix="geoproc-header") as pool:
        return list(pool.map(lambda u: read_header(u, storage_options), urls))
