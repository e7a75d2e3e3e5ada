"""Storage: every location is an fsspec URL (local path, ``az://container/path``, ``memory://``, ...).

* :func:`resolve_storage_options` runs on the driver: it resolves credentials (the Azure chain in
  :mod:`geoproc.storage.azure`) into ``{protocol: options}``, which the engine ships with each task
  as ``TaskContext.storage_options``. It is never stored.
* :func:`open_fs` gives the filesystem and path for a URL from those options.
* :func:`gdal_path` and :func:`gdal_env` let GDAL read the same URL with range requests
  (``rasterio.open(gdal_path(url))`` inside ``rasterio.Env(**gdal_env(url, options))``).
* :func:`publish` makes a finished local file visible at its destination in one step (upload or
  ``os.replace``), so no reader ever sees a partial output.
* :func:`storage_errors` maps storage failures to retried or permanent task errors.

Open files inside tasks; never put an open file object into a Dask graph (adlfs handles do not survive
a second pickle round trip).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import Mapping
from typing import Any

import fsspec

from . import azure
from .faults import storage_errors, translate
from .urls import (
    gdal_path,
    gdal_readable,
    is_local,
    join,
    local_path,
    protocol_of,
    redact,
    safe_relative,
    strip_protocol,
    with_protocol,
)

__all__ = [
    "open_fs", "options_for", "resolve_storage_options", "gdal_path", "gdal_env", "gdal_readable", "publish",
    "local_copy", "remove_tree", "sha256_file", "version_of", "storage_errors", "translate", "redact", "join", "protocol_of", "is_local",
    "local_path", "safe_relative", "strip_protocol", "with_protocol", "HTTP_GDAL_OPTIONS",
]

StorageOptions = dict[str, dict[str, Any]]

# Applied to every remote read: bounded retries and timeouts, no directory listing on open (a COG
# in a container of 100k blobs must not list the container), and a block cache for range reads.
HTTP_GDAL_OPTIONS = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
    "GDAL_HTTP_MAX_RETRY": "3",
    "GDAL_HTTP_RETRY_DELAY": "0.5",
    "GDAL_HTTP_CONNECTTIMEOUT": "10",
    "GDAL_HTTP_TIMEOUT": "120",
    "GDAL_HTTP_MULTIRANGE": "YES",
    "GDAL_HTTP_MERGE_CONSECUTIVE_RANGES": "YES",
    "VSI_CACHE": "TRUE",
    "CPL_VSIL_CURL_CACHE_SIZE": str(64 * 2**20),
}


def resolve_storage_options(env: Mapping[str, str] | None = None) -> StorageOptions:
    """Credentials per protocol from the environment, resolved on the driver (never persisted).

    Only Azure has a chain of its own; other fsspec protocols (s3, gs) use their libraries' defaults.
    """
    out: StorageOptions = {}
    az = azure.resolve_azure(env)
    if az:
        out["az"] = az
    return out


def options_for(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The flat options for ``url``'s protocol.

    ``storage_options`` is the per-protocol mapping (``{"az": {...}}``, as in ``TaskContext``). With
    None the environment is resolved here (driver side); workers always pass ``ctx.storage_options``.
    """
    if storage_options is None:
        storage_options = resolve_storage_options()
    return dict(storage_options.get(protocol_of(url)) or {})


def open_fs(url: str, storage_options: Mapping[str, Any] | None = None,
            **overrides: Any) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem for ``url`` and the path within it.

    Azure URLs (``az://``, ``abfs://``, ``abfss://``) get an adlfs filesystem built from the resolved
    options with a short SDK retry policy; everything else goes through ``fsspec.url_to_fs``.
    ``overrides`` are flat options for this protocol (``open_fs(url, connection_string=...)``).
    """
    proto = protocol_of(url)
    opts = {**options_for(url, storage_options), **overrides}
    if proto == "az":
        if not opts:
            from ..errors import StorageNotConfigured

            raise StorageNotConfigured(
                f"No Azure credentials for {redact(url)}: set AZURE_STORAGE_CONNECTION_STRING, "
                "AZURE_STORAGE_ACCOUNT with a key or SAS token, or use an Azure AD identity.")
        fs = azure.filesystem(azure.fresh(opts))
        return fs, strip_protocol(url)
    if proto == "file":
        fs = fsspec.filesystem("file")
        return fs, os.path.abspath(local_path(url))
    return fsspec.core.url_to_fs(url, **opts)


def gdal_env(url: str, storage_options: Mapping[str, Any] | None = None) -> dict[str, str]:
    """GDAL configuration options for reading ``url``, for ``rasterio.Env(**gdal_env(url, opts))``.

    Local paths get an empty dict. The values may hold secrets: pass them to ``rasterio.Env`` only,
    never log them.
    """
    proto = protocol_of(url)
    if proto == "file":
        return {}
    env = dict(HTTP_GDAL_OPTIONS)
    opts = options_for(url, storage_options)
    if proto == "az" and opts:
        env.update(azure.gdal_options(azure.fresh(opts)))
    elif proto == "s3":
        for k, v in (("key", "AWS_ACCESS_KEY_ID"), ("secret", "AWS_SECRET_ACCESS_KEY"), ("token", "AWS_SESSION_TOKEN")):
            if opts.get(k):
                env[v] = opts[k]
        if opts.get("anon"):
            env["AWS_NO_SIGN_REQUEST"] = "YES"
    return env


def version_of(url: str, storage_options: Mapping[str, Any] | None = None) -> tuple[Any, ...]:
    """What tells this version of a file from another, without reading it: size and modification time
    locally, size and etag remotely (part of the content tokens that name computations)."""
    if is_local(url):
        st = os.stat(local_path(url))
        return (st.st_size, st.st_mtime_ns)
    with storage_errors(url, "read"):
        fs, path = open_fs(url, storage_options)
        info = fs.info(path)
    return (info.get("size"), info.get("etag") or info.get("ETag") or info.get("last_modified"))


def sha256_file(path: str, chunk: int = 8 * 2**20) -> str:
    """Hex sha256 of a local file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def publish(local_file: str, url: str, storage_options: Mapping[str, Any] | None = None, *,
            move: bool = False) -> None:
    """Make the finished ``local_file`` appear at ``url`` in one step.

    Local destinations: with ``move`` (the caller gives ``local_file`` up) a rename when both are on
    one filesystem; otherwise a copy next to the target under a hidden temporary name, then
    ``os.replace``. Both are atomic on POSIX. Remote destinations: ``put_file``; a blob upload becomes
    visible only when its block list is committed, so readers see the old blob or the whole new one,
    never a part.
    """
    if is_local(url):
        dest = os.path.abspath(local_path(url))
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        if move:
            try:
                os.replace(local_file, dest)
                return
            except OSError:  # another filesystem (EXDEV): copy instead
                pass
        fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(dest)}.", suffix=".partial",
                                   dir=os.path.dirname(dest))
        os.close(fd)
        try:
            shutil.copyfile(local_file, tmp)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return
    with storage_errors(url, "write"):
        fs, path = open_fs(url, storage_options)
        parent = path.rsplit("/", 1)[0]
        if protocol_of(url) == "az":
            _ensure_container(fs, path.split("/", 1)[0])
        elif parent:
            fs.makedirs(parent, exist_ok=True)
        fs.put_file(local_file, path)


_CONTAINERS: set[str] = set()  # containers known to exist, per worker process


def _ensure_container(fs: Any, container: str) -> None:
    """Create an output container on first use, as a local output directory is created."""
    key = f"{id(fs)}:{container}"
    if key in _CONTAINERS:
        return
    if not fs.exists(container):
        try:
            fs.mkdir(container)
        except FileExistsError:  # another task created it first
            pass
    _CONTAINERS.add(key)


def remove_tree(url: str, storage_options: Mapping[str, Any] | None = None) -> None:
    """Remove the directory (or prefix) ``url`` and everything under it, if it exists (a job's parts or
    staging once its output is published)."""
    with storage_errors(url, "delete"):
        fs, path = open_fs(url, storage_options)
        if fs.exists(path):
            fs.rm(path, recursive=True)


def local_copy(url: str, directory: str, storage_options: Mapping[str, Any] | None = None) -> str:
    """Download ``url`` into ``directory`` (for inputs GDAL cannot read in place, e.g. ``memory://``)."""
    name = os.path.basename(strip_protocol(url)) or "input"
    dest = os.path.join(directory, name)
    with storage_errors(url, "read"):
        fs, path = open_fs(url, storage_options)
        fs.get_file(path, dest)
    return dest
