"""Collection homogeneity: the files of one collection must share bands, data type, CRS and resolution.

The seed system's ``process_raster_collection`` rules: band count, data type and CRS must match
exactly; the x resolution must be within 20 % of the first file's. Only headers are read (range
requests), so the check is cheap enough to run before anything is converted. A file whose header
cannot be read is reported as unreadable and left to fail its own validation task.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import CollectionNotHomogeneous, GeoprocError, InvalidInput
from ..storage import redact
from .crs import crs_string, parse_crs
from .header import read_header

log = logging.getLogger(__name__)

RESOLUTION_TOLERANCE = 0.20


def header(url: str, storage_options: Mapping[str, Any] | None, size: int | None,
           input_crs: str | None) -> dict[str, Any]:
    """Band count, data type, CRS and resolution of one file (``input_crs`` fills a missing CRS)."""
    h = read_header(url, storage_options, size=size)
    crs = h.crs or (crs_string(parse_crs(input_crs)) if input_crs else None)
    return {"count": h.count, "dtype": h.dtype, "crs": crs, "resolution": list(h.resolution)}


def check_homogeneity(files: list[dict[str, Any]], storage_options: Mapping[str, Any] | None,
                      input_crs: str | None = None) -> dict[str, Any]:
    """The collection's common properties; raises when the files differ.

    Raises:
        CollectionNotHomogeneous: naming each differing file and property.
    """
    ref: dict[str, Any] | None = None
    ref_url = ""
    problems: list[str] = []
    unreadable: list[str] = []
    for f in files:
        try:
            h = header(f["url"], storage_options, f.get("size"), input_crs)
        except GeoprocError as exc:
            if not isinstance(exc, InvalidInput):
                raise
            unreadable.append(redact(f["url"]))
            continue
        if ref is None:
            ref, ref_url = h, redact(f["url"])
            continue
        name = redact(f["url"])
        for key in ("count", "dtype", "crs"):
            if h[key] != ref[key]:
                problems.append(f"{name}: {key} {_short(h[key])} differs from {_short(ref[key])}")
        rx, x = ref["resolution"][0], h["resolution"][0]
        if rx and abs(x - rx) / rx > RESOLUTION_TOLERANCE:
            problems.append(f"{name}: resolution {x:g} is more than 20 % off {rx:g}")
    if problems:
        shown = "; ".join(problems[:20]) + (f"; and {len(problems) - 20} more" if len(problems) > 20 else "")
        raise CollectionNotHomogeneous(f"The files do not form one collection (reference: {ref_url}): {shown}")
    out = dict(ref or {})
    out.update(homogeneous=True, files=len(files) - len(unreadable), unreadable=unreadable[:100],
               reference=ref_url or None)
    return out


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
