"""Checking outputs a finished task wrote: are they still there, the same size (and, verified, the same bytes)?

Resume trusts the ledger for *what* was done and the storage for *whether it is still there*: a COG
deleted or truncated after its task completed must be made again, not reported as done. Sizes come
from one listing per directory (a thousand COGs under one prefix cost one listing call, not a thousand
HEAD requests); ``verify`` also reads each file and compares its sha256 with the recorded one.
"""

from __future__ import annotations

import hashlib
import os
import posixpath
from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ..model import WrittenFile
from . import open_fs
from .faults import storage_errors
from .urls import is_local, local_path


def missing_or_changed(files: Iterable[WrittenFile], storage_options: Mapping[str, Any] | None = None, *,
                       verify: bool = False, threads: int = 8) -> dict[Any, str]:
    """url -> reason (``missing``, ``size <recorded> -> <found>``, ``sha256 differs``) for each of
    ``files`` that is gone or differs from its record.

    A url given as a tuple names alternatives, any one of which holds the work: a COG's part until the
    assembly, then the COG (which removes the parts). It is missing only when all of them are.
    """
    files = list(files)
    either = [f for f in files if isinstance(f[0], tuple)]
    if either:
        gone = missing_or_changed([(u, None, None) for f in either for u in f[0]], storage_options)
        bad = {f[0]: "missing" for f in either if all(u in gone for u in f[0])}
        return {**bad, **missing_or_changed([f for f in files if not isinstance(f[0], tuple)], storage_options,
                                            verify=verify, threads=threads)}
    by_dir: dict[str, list[WrittenFile]] = {}
    for f in files:
        by_dir.setdefault(posixpath.dirname(f[0].rstrip("/")), []).append(f)
    bad: dict[str, str] = {}
    present: list[WrittenFile] = []
    for directory, group in by_dir.items():
        sizes = _sizes(directory, [url for url, _, _ in group], storage_options)
        for url, size, sha in group:
            found = sizes.get(_name(url))
            if found is None:
                bad[url] = "missing"
            elif size is not None and found != size:
                bad[url] = f"size {size} -> {found}"
            else:
                present.append((url, size, sha))
    if verify:
        checked = [(url, sha) for url, _, sha in present if sha]
        with ThreadPoolExecutor(max(1, threads)) as pool:
            digests = list(pool.map(lambda f: _sha256(f[0], storage_options), checked))
        bad.update({url: "sha256 differs" for (url, sha), d in zip(checked, digests, strict=True) if d != sha})
    return bad


def _name(url: str) -> str:
    return posixpath.basename(url.rstrip("/"))


def _sizes(directory: str, urls: list[str], storage_options: Mapping[str, Any] | None) -> dict[str, int]:
    """name -> size of the files of ``urls`` found in ``directory`` (one listing, or a stat each locally)."""
    if is_local(directory):
        out = {}
        for url in urls:
            try:
                out[_name(url)] = os.stat(local_path(url)).st_size
            except FileNotFoundError:
                pass
        return out
    with storage_errors(directory, "list"):
        fs, root = open_fs(directory, storage_options)
        fs.invalidate_cache(root)  # listings are cached; a check must see the storage as it is now
        try:
            entries = fs.ls(root, detail=True)
        except FileNotFoundError:
            return {}
    return {posixpath.basename(e["name"].rstrip("/")): int(e.get("size") or 0)
            for e in entries if e.get("type") != "directory"}


def _sha256(url: str, storage_options: Mapping[str, Any] | None, chunk: int = 8 * 2**20) -> str:
    h = hashlib.sha256()
    with storage_errors(url, "read"):
        fs, path = open_fs(url, storage_options)
        with fs.open(path, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def remove_unchanged(files: Iterable[WrittenFile], storage_options: Mapping[str, Any] | None = None
                     ) -> dict[str, Any]:
    """Delete each of ``files`` whose bytes still hash to the recorded sha256; keep every other one.

    Returns ``{"removed": [...], "gone": [...], "refused": {url: reason}}``. A file changed since it
    was written (someone else's work now), or one with no recorded checksum, is refused and kept:
    geoproc deletes only what it can prove it wrote. A file already gone counts as done, so a removal
    that was interrupted can simply run again.
    """
    out: dict[str, Any] = {"removed": [], "gone": [], "refused": {}}
    for url, _size, sha in files:
        if not sha:
            out["refused"][url] = "no checksum recorded"
            continue
        fs, path = open_fs(url, storage_options)
        with storage_errors(url, "read"):
            if not fs.exists(path):
                out["gone"].append(url)
                continue
            found = _sha256(url, storage_options)
        if found != sha:
            out["refused"][url] = "changed since geoproc wrote it (sha256 differs)"
            continue
        with storage_errors(url, "delete"):
            fs.rm(path)
        out["removed"].append(url)
    return out
