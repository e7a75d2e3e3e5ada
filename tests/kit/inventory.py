"""The container layout the inventory tests list, and what a summary of it must say.

``LAYOUT`` is the one container every test lists: names across nested prefixes and at the root,
several extensions (upper-case, compound, none) and sizes including zero. ``expected()`` computes
what a summary of it must say with plain loops, independently of geoproc's summary code.
"""

from __future__ import annotations

import uuid
from collections import Counter

MB = 1024**2


def _layout() -> list[tuple[str, int]]:
    names = []
    for year, months in (("2024", ("01", "02")), ("2025", ("01",))):
        for month in months:
            for i in range(5):
                names.append(f"{year}/{month}/scene_{i:03d}.tif")
            names.append(f"{year}/{month}/scene_000.tif.aux.xml")
        names.append(f"{year}/index.json")
    names += ["misc/notes.txt", "misc/deep/a/b/c/blob.bin", "misc/README", "misc/UPPER.TIF",
              "root.tif", "catalog.json", "zero.tif"]
    sizes = {n: (i * 1379) % 9000 + 1 for i, n in enumerate(names)}
    sizes["zero.tif"] = 0
    return sorted(sizes.items())


LAYOUT = _layout()


def ext(name: str) -> str:
    base = name.rsplit("/", 1)[-1].lower()
    if base.endswith(".aux.xml"):
        return ".aux.xml"
    return "." + base.rsplit(".", 1)[1] if "." in base else "(none)"


def top(name: str, level_dir: str = "") -> str:
    rest = name[len(level_dir):]
    return level_dir + rest.split("/", 1)[0] + "/" if "/" in rest else "(root)"


def expected(layout, level_dir: str = "") -> dict:
    """Files, bytes, per-extension and per-prefix tables of ``layout`` (a list of (name, size))."""
    by_ext, by_ext_b, by_top, by_top_b = Counter(), Counter(), Counter(), Counter()
    for name, size in layout:
        by_ext[ext(name)] += 1
        by_ext_b[ext(name)] += size
        by_top[top(name, level_dir)] += 1
        by_top_b[top(name, level_dir)] += size
    return {
        "files": len(layout), "bytes": sum(s for _, s in layout),
        "by_extension": {k: {"files": by_ext[k], "bytes": by_ext_b[k]} for k in by_ext},
        "by_prefix": {k: {"files": by_top[k], "bytes": by_top_b[k]} for k in by_top},
    }


def payload(name: str, size: int) -> bytes:
    seed = name.encode() * (size // max(1, len(name)) + 1)
    return seed[:size]


def new_container(svc, blobs: dict[str, bytes] | None = None) -> str:
    """Create a uniquely named container holding ``blobs``; returns its name."""
    name = f"inv-{uuid.uuid4().hex[:12]}"
    cc = svc.create_container(name)
    for blob, data in (blobs or {}).items():
        cc.upload_blob(blob, data)
    return name
