"""Rasters uploaded to a container, and the sha256 of every blob under a prefix."""

from __future__ import annotations

import hashlib
from pathlib import Path

from kit.rasters import write_numbered


def upload_rasters(fs, container: str, prefix: str, n: int, workdir: Path) -> list[str]:
    """Write ``n`` rasters to ``container/prefix/`` (two of them in a sub-folder); returns blob paths."""
    blobs = []
    for i in range(n):
        rel = f"sub/r{i:02d}.tif" if i % 5 == 4 else f"r{i:02d}.tif"
        local = write_numbered(workdir / f"src-{i:02d}.tif", i)
        blob = f"{container}/{prefix}/{rel}"
        fs.put_file(str(local), blob)
        blobs.append(blob)
    return blobs


def blob_hashes(fs, prefix: str) -> dict[str, str]:
    """Relative name -> sha256 of every blob under ``prefix`` (``container/path``)."""
    fs.invalidate_cache()
    base = prefix.rstrip("/") + "/"
    return {p[len(base):]: hashlib.sha256(fs.cat_file(p)).hexdigest() for p in fs.find(prefix)}
