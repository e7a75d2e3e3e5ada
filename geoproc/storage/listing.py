"""Listing the files under a URL, with the filters jobs share (suffixes, sizes, limit, exclusions).

A URL that names a file lists as that one file; a directory, container or prefix lists every file
below it, in path order (so ``limit`` picks the same files on every run). Each entry carries what a
task needs to find the file again and to notice that it changed: URL, path relative to the listed
root, size and an etag (Azure's etag, else size and modification time).
"""

from __future__ import annotations

import datetime as dt
import logging
import posixpath
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from ..errors import SourceNotFound
from . import open_fs
from .faults import storage_errors
from .urls import is_local, protocol_of, redact, strip_protocol, with_protocol
from .walk import Blob, lister_for

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class FileEntry:
    """One listed file."""

    url: str
    rel: str
    size: int | None
    etag: str | None
    last_modified: dt.datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        """The JSON form task results carry: ``url``, ``rel``, ``size``, ``etag``."""
        return {"url": self.url, "rel": self.rel, "size": self.size, "etag": self.etag}


def _etag(info: Mapping[str, Any]) -> str | None:
    """The change token of a file: its etag, else its size and modification time."""
    if info.get("etag"):
        return str(info["etag"]).strip('"')
    stamp = info.get("mtime") or info.get("last_modified") or info.get("LastModified")
    if stamp is None:
        return None
    return f"{info.get('size')}-{stamp.isoformat() if hasattr(stamp, 'isoformat') else stamp}"


def _blob_info(blob: Blob) -> dict[str, Any]:
    """The fsspec-style info of a walked blob, for :func:`_etag`."""
    return {"size": blob.size, "etag": blob.etag, "mtime": blob.mtime}


def _url(root_url: str, path: str) -> str:
    if is_local(root_url):
        return path
    return with_protocol(root_url, path)


def _modified(info: Mapping[str, Any]) -> dt.datetime | None:
    stamp = info.get("mtime") or info.get("last_modified") or info.get("LastModified")
    if isinstance(stamp, int | float):
        return dt.datetime.fromtimestamp(stamp, dt.UTC)
    return stamp if isinstance(stamp, dt.datetime) else None


def _walk(url: str, fs: Any, root: str) -> Iterator[tuple[str, int | None, str | None, dt.datetime | None]]:
    """(path, size, etag, last modified) of every file below the directory ``root``, in path order."""
    for blob in lister_for(url, fs, root).iter_unit(("tree", "")):
        yield posixpath.join(root, blob.name), blob.size, _etag(_blob_info(blob)), blob.last_modified


def list_files(url: str, storage_options: Mapping[str, Any] | None = None, *, suffixes: Iterable[str] = (),
               min_size: int = 0, max_size: int | None = None, limit: int | None = None,
               exclude: Iterable[str] = ()) -> tuple[list[FileEntry], dict[str, int]]:
    """(files, counts of skipped files by reason) under ``url``.

    Directories, containers and prefixes are walked page by page (:mod:`geoproc.storage.walk`), so
    only the entries kept are held. ``exclude`` holds URL prefixes whose files are left out (e.g. an
    output prefix inside the input).

    Raises:
        SourceNotFound: the file, directory, container or prefix does not exist.
        StorageAccessDenied, StorageUnreachable, TransientError: storage failures.
    """
    suffixes = tuple(s.lower() for s in suffixes)
    skipped = {"suffix": 0, "size": 0, "limit": 0, "excluded": 0}
    excluded = tuple(strip_protocol(e).rstrip("/") + "/" for e in exclude)
    out: list[FileEntry] = []
    with storage_errors(url, "list"):
        fs, root = open_fs(url, storage_options)
        proto = protocol_of(url)
        if proto in ("http", "https"):
            info = fs.info(root)
            return [FileEntry(url, posixpath.basename(root.split("?")[0]), info.get("size"), _etag(info),
                              _modified(info))], skipped
        root = root.rstrip("/") or root
        if proto == "az":
            container = root.split("/", 1)[0]
            if not fs.exists(container):
                raise SourceNotFound(f"Container {container!r} does not exist ({redact(url)}).")
        try:
            info = fs.info(root)
        except FileNotFoundError:
            raise SourceNotFound(f"{redact(url)} does not exist.") from None
        if info.get("type") == "file":
            found: Iterable[tuple[str, int | None, str | None, dt.datetime | None]] = [
                (info["name"], info.get("size"), _etag(info), _modified(info))]
            base = posixpath.dirname(root)
        else:
            found = _walk(url, fs, root)
            base = root
        for path, size, etag, modified in found:
            norm = strip_protocol(path) if "://" in path else path
            if excluded and any(norm.startswith(e) for e in excluded):
                skipped["excluded"] += 1
                continue
            if suffixes and not norm.lower().endswith(suffixes):
                skipped["suffix"] += 1
                continue
            if size is not None and (size < min_size or (max_size is not None and size > max_size)):
                skipped["size"] += 1
                continue
            if limit is not None and len(out) >= limit:
                skipped["limit"] += 1
                continue
            rel = norm[len(base):].lstrip("/") if norm.startswith(base) else posixpath.basename(norm)
            out.append(FileEntry(_url(url, norm), rel, size, etag, modified))
    return out, skipped


def is_directory(url: str, storage_options: Mapping[str, Any] | None = None) -> bool:
    """Whether ``url`` names a directory, container or prefix (something to list) rather than a file."""
    proto = protocol_of(url)
    if proto in ("http", "https"):
        return False
    with storage_errors(url, "list"):
        fs, root = open_fs(url, storage_options)
        return bool(fs.isdir(root.rstrip("/") or root))
