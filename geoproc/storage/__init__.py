"""Storage: every location is an fsspec URL (local path, ``az://container/path``, ``memory://``, ...).

``open_fs(url)`` is the one way in: it returns the filesystem and the path inside it, with Azure
credentials resolved by the credential chain. Open files inside tasks; never put an open file object
into a Dask graph (adlfs handles do not survive a second pickle round trip).
"""

from __future__ import annotations

import os

import fsspec


def open_fs(url: str, **storage_options) -> tuple[fsspec.AbstractFileSystem, str]:
    """The filesystem for ``url`` and the path within it."""
    protocol = url.split("://", 1)[0] if "://" in url else "file"
    if protocol in ("az", "abfs", "abfss") and "connection_string" not in storage_options:
        cs = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
        if cs:
            storage_options["connection_string"] = cs
    return fsspec.core.url_to_fs(url, **storage_options)


def resolve_storage_options() -> dict[str, dict]:
    """Credentials per protocol, resolved on the driver and shipped to tasks (never persisted)."""
    cs = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    return {"az": {"connection_string": cs}} if cs else {}
