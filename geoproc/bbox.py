"""Bounding boxes in WGS84 (STAC order ``[west, south, east, north]``): the one union rule.

A box that crosses the antimeridian has ``west > east``. The union keeps such boxes, and a set of
boxes on both sides of 180°, as one short box across the antimeridian rather than a box around the
whole world: the rule STAC (and the tiled job's footprints) need.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

BBox = list[float]


def as_2d(box: Sequence[float]) -> BBox:
    """The 2D part of a 2D or 3D STAC bbox."""
    b = [float(v) for v in box]
    if len(b) == 6:
        return [b[0], b[1], b[3], b[4]]
    if len(b) != 4:
        raise ValueError(f"a bbox has 4 or 6 numbers, not {len(b)}: {list(box)!r}")
    return b


def union(boxes: Iterable[Sequence[float] | None]) -> BBox | None:
    """Union of bboxes (None entries ignored); None when there are none."""
    bs = [as_2d(b) for b in boxes if b is not None]
    if not bs:
        return None
    ws = [b[0] for b in bs]
    es = [b[2] if b[2] >= b[0] else b[2] + 360.0 for b in bs]  # continuous longitudes
    west, east = min(ws), max(es)
    # the same boxes with the western hemisphere moved one turn east: shorter when they gather at 180°
    moved = [(w + 360.0, e + 360.0) if w < 0 else (w, e) for w, e in zip(ws, es, strict=True)]
    m_west, m_east = min(w for w, _ in moved), max(e for _, e in moved)
    if m_east - m_west < east - west:
        west, east = m_west, m_east
    if east - west >= 360.0:
        west, east = -180.0, 180.0
    if west >= 180.0:
        west -= 360.0
    if east > 180.0:
        east -= 360.0
    return [west, min(b[1] for b in bs), east, max(b[3] for b in bs)]
