"""Streaming walks of a container, a prefix or a directory tree: one page of entries in memory at a time.

A *source* is a URL that names a container or a directory: ``az://container[/dir]``, a local
directory, ``memory://bucket``. Entry names are relative to it. A walk lists a *unit*:

* ``("tree", p)``  every blob whose name starts with ``p``;
* ``("level", p)`` blobs whose name starts with ``p`` and has no ``/`` after it (Azure's delimiter
  listing, or one directory of a filesystem).

Listing a unit streams one page (at most 5,000 blobs) at a time, so memory never grows with the number
of blobs, in name order (full names sorted as object stores sort them). Azure is listed with the
storage SDK directly (adlfs' ``find`` collects the whole listing in memory); other filesystems through
fsspec, local directories with ``os.scandir``. :func:`geoproc.storage.listing.list_files` and the
sharded inventories (:mod:`geoproc.inventory.listing`) both walk through here.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import mimetypes
import os
import posixpath
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from ..errors import SourceNotFound
from . import open_fs
from .urls import protocol_of, with_protocol

log = logging.getLogger(__name__)

PAGE = 5000  # the most blobs Azure returns per List Blobs call

Unit = tuple[str, str]  # (mode, prefix)


@dataclass(frozen=True, slots=True)
class Blob:
    """One listed blob or file; ``name`` is relative to the source."""

    name: str
    size: int
    last_modified: dt.datetime | None
    etag: str | None
    content_type: str | None
    mtime: float | None = None  # the file system's own modification stamp, where it keeps one (local files)


@dataclass(frozen=True)
class Level:
    """What one delimiter listing found below a prefix."""

    prefixes: list[str]
    files: int
    truncated: bool


class Lister(Protocol):
    """The listing operations a storage backend provides."""

    source: str

    def exists(self) -> bool: ...

    def walk_level(self, prefix: str, max_items: int) -> Level: ...

    def iter_unit(self, unit: Unit) -> Iterator[Blob]: ...

    def url(self, name: str) -> str: ...


def open_lister(source: str, storage_options: dict[str, dict[str, Any]] | None = None) -> Lister:
    """A lister for ``source``.

    ``storage_options`` is the per-protocol mapping of a task context; None resolves credentials
    from this process's environment (the driver).
    """
    fs, root = open_fs(source, storage_options)
    return lister_for(source, fs, root)


def lister_for(source: str, fs: Any, root: str) -> Lister:
    """A lister over an already open filesystem ``fs`` at path ``root`` (what ``open_fs(source)`` gave)."""
    proto = protocol_of(source)
    if proto == "az":
        return AzureLister(source, fs, root)
    return FsLister(source, fs, root, proto)


def source_not_found(url: str) -> SourceNotFound:
    """The error for a source that does not exist, with what to check."""
    proto = protocol_of(url)
    if proto == "az":
        container = url.split("://", 1)[1].split("/", 1)[0]
        return _not_found(f"Container {container!r} does not exist in the storage account ({url}).",
                          "Check the container name and the account in the connection string; "
                          "list containers with `az storage container list`.")
    if proto == "memory":
        return _not_found(f"{url} does not exist in this process.",
                          "memory:// filesystems live inside one process: worker processes cannot see the "
                          "driver's. Use an in-process cluster (distributed.Client(processes=False)) or a "
                          "local or az:// URL.")
    return _not_found(f"Directory {url} does not exist.", "Check the path.")


def _not_found(message: str, remediation: str) -> SourceNotFound:
    return SourceNotFound(f"{message} {remediation}", remediation=remediation)


def dirpart(prefix: str) -> str:
    """The part of a name prefix up to and including its last ``/``."""
    return prefix[: prefix.rfind("/") + 1]


# --- Azure Blob Storage ------------------------------------------------------------------------------


class AzureLister:
    """Lists an Azure container page by page with the storage SDK's async client that adlfs holds."""

    def __init__(self, source: str, fs: Any, root: str):
        self.source, self.fs = source, fs
        container, _, base = root.partition("/")
        self.container = container
        self.base = base.strip("/") + "/" if base.strip("/") else ""

    def url(self, name: str) -> str:
        return with_protocol(self.source, f"{self.container}/{self.base}{name}")

    def _run(self, func: Any, *args: Any) -> Any:
        from fsspec.asyn import sync

        return sync(self.fs.loop, func, *args)

    def exists(self) -> bool:
        cc = self.fs.service_client.get_container_client(self.container)
        return bool(self._run(cc.exists))

    def _pages(self, prefix: str, delimited: bool) -> Iterator[list[Any]]:
        token: str | None = None
        while True:
            items, token = self._run(self._page, self.base + prefix, token, delimited)
            yield items
            if not token:
                return

    async def _page(self, prefix: str, token: str | None, delimited: bool) -> tuple[list[Any], str | None]:
        from azure.core.exceptions import ResourceNotFoundError
        from azure.storage.blob.aio import BlobPrefix

        cc = self.fs.service_client.get_container_client(self.container)
        kw: dict[str, Any] = {"name_starts_with": prefix or None, "include": ["metadata"],
                              "results_per_page": PAGE}
        pager = cc.walk_blobs(delimiter="/", **kw) if delimited else cc.list_blobs(**kw)
        pages = pager.by_page(continuation_token=token)
        out: list[Any] = []
        cut = len(self.base)
        try:
            page = await pages.__anext__()
            async for item in page:
                if isinstance(item, BlobPrefix):
                    out.append(item.name[cut:])
                elif not _is_directory_marker(item):
                    etag = item.etag.strip('"') if item.etag else None
                    ctype = item.content_settings.content_type if item.content_settings else None
                    out.append(Blob(item.name[cut:], int(item.size or 0), item.last_modified, etag, ctype))
        except StopAsyncIteration:
            return [], None
        except ResourceNotFoundError:
            raise source_not_found(self.source) from None
        return out, pages.continuation_token

    def walk_level(self, prefix: str, max_items: int) -> Level:
        prefixes: list[str] = []
        files = 0
        for items in self._pages(prefix, delimited=True):
            for item in items:
                if isinstance(item, str):
                    prefixes.append(item)
                else:
                    files += 1
            if len(prefixes) + files > max_items:
                return Level(prefixes, files, True)
        return Level(prefixes, files, False)

    def iter_unit(self, unit: Unit) -> Iterator[Blob]:
        mode, prefix = unit
        for items in self._pages(prefix, delimited=mode == "level"):
            for item in items:
                if isinstance(item, Blob):
                    yield item


def _is_directory_marker(blob: Any) -> bool:
    if blob.name.endswith("/"):
        return True
    meta = {k.lower(): v for k, v in (blob.metadata or {}).items()}
    return meta.get("hdi_isfolder") == "true" or meta.get("is_directory") == "true"


# --- any fsspec filesystem (local, memory, ...) ----------------------------------------------------------


class FsLister:
    """Lists a directory tree through fsspec, one directory in memory at a time, in name order."""

    def __init__(self, source: str, fs: Any, root: str, protocol: str):
        self.source, self.fs, self.protocol = source, fs, protocol
        self.root = root.rstrip("/") or root

    def url(self, name: str) -> str:
        path = f"{self.root.rstrip('/')}/{name}"
        return path if self.protocol == "file" else f"{self.protocol}://{path.lstrip('/')}"

    def exists(self) -> bool:
        return bool(self.fs.isdir(self.root))

    def _entries(self, rel_dir: str) -> list[tuple[str, dict]]:
        """(relative name, info) of one directory, sorted as object stores sort full names."""
        path = f"{self.root.rstrip('/')}/{rel_dir}".rstrip("/") if rel_dir else self.root
        if self.protocol == "file":
            return _scandir(path, rel_dir)
        try:
            infos = self.fs.ls(path, detail=True)
        except FileNotFoundError:
            return []
        base = self.root.rstrip("/") + "/"
        out = []
        for info in infos:
            name = info["name"]
            if not name.startswith(base):
                continue
            rel = name[len(base):]
            out.append((rel + "/" if info.get("type") == "directory" else rel, info))
        out.sort(key=lambda e: e[0])
        return out

    def _blob(self, rel: str, info: dict) -> Blob:
        ts = info.get("mtime", info.get("LastModified", info.get("created")))
        mtime = info.get("mtime") if isinstance(info.get("mtime"), int | float) else None
        if isinstance(ts, (int, float)):
            ts = dt.datetime.fromtimestamp(ts, tz=dt.UTC)
        return Blob(rel, int(info.get("size") or 0), ts, info.get("ETag"), _content_type(posixpath.splitext(rel)[1]),
                    mtime)

    def walk_level(self, prefix: str, max_items: int) -> Level:
        prefixes, files = [], 0
        for rel, _info in self._entries(dirpart(prefix)):
            if not rel.startswith(prefix):
                continue
            if rel.endswith("/"):
                prefixes.append(rel)
            else:
                files += 1
        return Level(prefixes, files, len(prefixes) + files > max_items)

    def iter_unit(self, unit: Unit) -> Iterator[Blob]:
        mode, prefix = unit
        for rel, info in self._entries(dirpart(prefix)):
            if not rel.startswith(prefix):
                continue
            if not rel.endswith("/"):
                yield self._blob(rel, info)
            elif mode == "tree":
                yield from self.iter_unit(("tree", rel))


@functools.lru_cache(maxsize=1024)
def _content_type(ext: str) -> str | None:
    """Content type guessed from the extension (filesystems store none)."""
    return mimetypes.guess_type("x" + ext.lower())[0]


def _scandir(path: str, rel_dir: str) -> list[tuple[str, dict]]:
    """A local directory with ``os.scandir``: one stat per entry, no per-entry path parsing."""
    out = []
    try:
        with os.scandir(path) as it:
            for e in it:
                try:
                    if e.is_dir():
                        out.append((f"{rel_dir}{e.name}/", {"type": "directory"}))
                    elif e.is_file():
                        st = e.stat()
                        out.append((rel_dir + e.name, {"type": "file", "size": st.st_size, "mtime": st.st_mtime}))
                except FileNotFoundError:  # removed while listing
                    continue
    except (FileNotFoundError, NotADirectoryError):
        return []
    out.sort(key=lambda en: en[0])
    return out
