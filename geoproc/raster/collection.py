"""Collection homogeneity: the files of one collection must share bands, data type, CRS and resolution.

The seed system's ``process_raster_collection`` rules: band count, data type and CRS must match
exactly; the x resolution must be within 20 % of the first file's. Only headers are read (range
requests), so the check is cheap enough to run before anything is converted. A file whose header
cannot be read is reported as unreadable and left to fail its own validation task.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import GeoprocError, InvalidInput
from ..storage import redact
from .io import open_raster
from .validate import crs_string, parse_crs

RESOLUTION_TOLERANCE = 0.20


def header(url: str, storage_options: Mapping[str, Any] | None, size: int | None,
           input_crs: str | None) -> dict[str, Any]:
    """Band count, data type, CRS and resolution of one file (``input_crs`` fills a missing CRS)."""
    with open_raster(url, storage_options, size=size) as src:
        crs = src.crs or (parse_crs(input_crs) if input_crs else None)
        return {"count": src.count, "dtype": src.dtypes[0], "crs": crs_string(crs),
                "resolution": [abs(src.transform.a), abs(src.transform.e)]}


def check_homogeneity(files: list[dict[str, Any]], storage_options: Mapping[str, Any] | None,
                      input_crs: str | None = None) -> dict[str, Any]:
    """The collection's common properties; raises when the files differ.

    Raises:
        InvalidInput: code ``COLLECTION_NOT_HOMOGENEOUS``, naming each differing file and property.
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
        raise InvalidInput(f"The files do not form one collection (reference: {ref_url}): {shown}",
                           code="COLLECTION_NOT_HOMOGENEOUS",
                           remediation="Convert the files as separate jobs, or set collection=false.")
    out = dict(ref or {})
    out.update(homogeneous=True, files=len(files) - len(unreadable), unreadable=unreadable[:100],
               reference=ref_url or None)
    return out


def _short(value: Any) -> str:
    text = str(value)
    return text if len(text) <= 40 else text[:37] + "..."
