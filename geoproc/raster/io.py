"""Opening rasters inside tasks: GDAL path, credentials and error mapping in one place.

A raster is opened where it lives (``/vsiaz/``, ``/vsicurl/``, local disk) so that reading a header
or a window costs range requests, not a download. Only URLs that GDAL cannot address (``memory://``
in tests, exotic fsspec backends) are first copied to a local temporary file.

Failures come out as geoproc errors: storage problems as mapped by
:func:`geoproc.storage.faults.translate` (retried or not), anything else GDAL rejects as
:class:`~geoproc.errors.CorruptRaster` (never retried).
"""

from __future__ import annotations

import tempfile
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from typing import Any

import rasterio
from rasterio.errors import RasterioError

from ..errors import CorruptRaster, GeoprocError
from ..storage import (
    gdal_env,
    gdal_path,
    gdal_readable,
    is_local,
    local_copy,
    open_fs,
    redact,
    storage_errors,
    translate,
)
from ..storage.faults import forget_remote_state


def _corrupt(url: str, exc: BaseException, doing: str) -> CorruptRaster:
    text = str(exc).replace(gdal_path(url), redact(url))
    if "not recognized as" in text or "not a supported file format" in text:
        return CorruptRaster(f"{redact(url)} is not a raster GDAL can read (wrong format or damaged header).")
    done = {"open": "opened", "write": "written"}.get(doing, doing)
    return CorruptRaster(f"{redact(url)} could not be {done}: {text[:300]}")


@contextmanager
def raster_errors(url: str, doing: str = "read") -> Iterator[None]:
    """Map exceptions raised while reading ``url`` to geoproc errors (storage first, then corruption)."""
    try:
        yield
    except GeoprocError:
        raise
    except (RasterioError, OSError, ValueError) as exc:
        mapped = translate(exc, url, doing)
        if mapped is not None:
            raise mapped from None
        if isinstance(exc, RasterioError):
            raise _corrupt(url, exc, doing) from None
        raise


def _check_reachable(url: str, storage_options: Mapping[str, Any] | None) -> None:
    """Raise the storage error when a remote raster GDAL could not open or read is in fact out of reach.

    During an outage GDAL may report a file it could not fetch as "not a supported format" or as a
    failed read; that must be retried, not quarantined as corrupt. GDAL's memory of the failed fetch
    is dropped first.
    """
    forget_remote_state()
    with storage_errors(url, "read"):
        fs, path = open_fs(url, storage_options)
        fs.invalidate_cache(path)
        fs.info(path)


@contextmanager
def gdal_session(url: str, storage_options: Mapping[str, Any] | None, **extra: str) -> Iterator[None]:
    """A ``rasterio.Env`` with the GDAL options that let this process read ``url``."""
    with rasterio.Env(**gdal_env(url, storage_options), **extra):
        yield


@contextmanager
def open_raster(url: str, storage_options: Mapping[str, Any] | None = None, *,
                size: int | None = None, **gdal_options: str) -> Iterator[rasterio.DatasetReader]:
    """Open ``url`` for reading inside a GDAL environment that carries its credentials.

    ``size`` (when known from a listing) lets a zero-byte file fail with a precise message.

    Raises:
        CorruptRaster: the object is empty or not a readable raster.
        SourceNotFound, StorageAccessDenied, StorageUnreachable, TransientError: storage failures.
    """
    if size == 0:
        raise CorruptRaster(f"{redact(url)} is empty (0 bytes).")
    with ExitStack() as stack:
        if gdal_readable(url):
            path = gdal_path(url)
            if not is_local(url):
                # GDAL keeps what it read of a remote file for the life of the process and would serve a
                # replaced blob's old bytes to the next open (a changed input, a COG being replaced)
                gdal_options = {**gdal_options, "CPL_VSIL_CURL_NON_CACHED": ":".join(
                    p for p in (gdal_options.get("CPL_VSIL_CURL_NON_CACHED"), path) if p)}
        else:
            tmp = stack.enter_context(tempfile.TemporaryDirectory(prefix="geoproc-in-"))
            path = local_copy(url, tmp, storage_options)
        stack.enter_context(gdal_session(url, storage_options, **gdal_options))
        try:
            with raster_errors(url, "open"):
                src = stack.enter_context(rasterio.open(path))
            with raster_errors(url, "read"):
                yield src
        except CorruptRaster:
            if not is_local(url):
                _check_reachable(url, storage_options)
            raise
