"""STAC collections as a reduction over their items.

:class:`CollectionStats` folds items in one at a time (so 100,000 items never need to sit in memory)
and merges with another accumulator or with an existing collection, which is how two jobs that load
into the same pgstac collection end up with the union of their extents. :func:`create_collection`
is the pure function that turns items into a collection dict.

The extent is the union of the items' bboxes (longitude/latitude, by :func:`geoproc.bbox.union`: items on
both sides of the antimeridian give one box across it, not one around the world) and the interval from the earliest to the latest item time (``datetime``, or
``start_datetime``/``end_datetime``). Summaries list the distinct ``proj:code`` values and datetime
sources.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

import pystac

from .. import bbox as bboxes
from ..units import utc_iso
from .items import parse_datetime

log = logging.getLogger(__name__)

DEFAULT_LICENSE = "other"


@dataclass
class CollectionStats:
    """The running reduction of items into a collection's extent and summaries."""

    count: int = 0
    bbox: list[float] | None = None
    start: dt.datetime | None = None
    end: dt.datetime | None = None
    codes: set[str] = field(default_factory=set)
    sources: set[str] = field(default_factory=set)

    def add(self, item: dict[str, Any]) -> None:
        """Fold one item dict in."""
        self.count += 1
        if item.get("bbox"):
            self._add_bbox(item["bbox"])
        props = item.get("properties", {})
        for key in ("datetime", "start_datetime", "end_datetime"):
            if props.get(key):
                self._add_time(parse_datetime(props[key]))
        if props.get("proj:code"):
            self.codes.add(props["proj:code"])
        if props.get("geoproc:datetime_source"):
            self.sources.add(props["geoproc:datetime_source"])

    def merge(self, other: CollectionStats) -> CollectionStats:
        """The reduction of both (``other`` is left unchanged)."""
        out = CollectionStats(self.count + other.count, self.bbox and list(self.bbox), self.start, self.end,
                              self.codes | other.codes, self.sources | other.sources)
        if other.bbox:
            out._add_bbox(other.bbox)
        for t in (other.start, other.end):
            if t:
                out._add_time(t)
        return out

    @classmethod
    def from_collection(cls, collection: dict[str, Any]) -> CollectionStats:
        """The accumulator an existing collection dict stands for (its extent and summaries)."""
        st = cls()
        extent = collection.get("extent", {})
        for b in extent.get("spatial", {}).get("bbox", [])[:1]:
            st._add_bbox(b)
        for interval in extent.get("temporal", {}).get("interval", [])[:1]:
            for t in interval:
                if t:
                    st._add_time(parse_datetime(t))
        summ = collection.get("summaries", {})
        st.codes = set(summ.get("proj:code", []))
        st.sources = set(summ.get("geoproc:datetime_source", []))
        return st

    def extent(self) -> dict[str, Any]:
        """The STAC extent object."""
        bbox = self.bbox or [-180.0, -90.0, 180.0, 90.0]
        interval = [utc_iso(self.start), utc_iso(self.end)] if self.start else [None, None]
        return {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}}

    def summaries(self) -> dict[str, Any]:
        """The STAC summaries object."""
        out: dict[str, Any] = {}
        if self.codes:
            out["proj:code"] = sorted(self.codes)
        if self.sources:
            out["geoproc:datetime_source"] = sorted(self.sources)
        return out

    def _add_bbox(self, b: list[float]) -> None:
        self.bbox = bboxes.union([self.bbox, b])

    def _add_time(self, t: dt.datetime) -> None:
        self.start = t if self.start is None or t < self.start else self.start
        self.end = t if self.end is None or t > self.end else self.end


def collection_dict(collection_id: str, stats: CollectionStats, *, description: str | None = None,
                    title: str | None = None, license: str = DEFAULT_LICENSE,
                    keywords: list[str] | None = None) -> dict[str, Any]:
    """A collection dict from an accumulator (no links: the writer adds them)."""
    start, end = stats.start, stats.end
    coll = pystac.Collection(
        id=collection_id,
        description=description or f"Rasters catalogued by geoproc into {collection_id}.",
        title=title,
        license=license,
        keywords=keywords,
        extent=pystac.Extent(pystac.SpatialExtent([stats.bbox or [-180.0, -90.0, 180.0, 90.0]]),
                             pystac.TemporalExtent([[start, end]])),
        summaries=pystac.Summaries(stats.summaries()),
    )
    return coll.to_dict(include_self_link=False, transform_hrefs=False)


def create_collection(collection_id: str, items: Iterable[dict[str, Any]], **kwargs: Any) -> dict[str, Any]:
    """A collection whose extent and summaries are the reduction over ``items`` (streamed once).

    ``kwargs`` go to :func:`collection_dict` (``description``, ``title``, ``license``, ``keywords``).
    """
    stats = CollectionStats()
    for item in items:
        stats.add(item)
    return collection_dict(collection_id, stats, **kwargs)
