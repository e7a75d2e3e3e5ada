"""Reading STAC back: the items of a static catalog or an ItemCollection file, and of a pgstac search.

What ``geoproc.open`` loads from STAC. Documents are read through geoproc's storage layer (local files,
``az://`` with the credential chain), links are followed from the root (``child`` and ``item``), and
relative hrefs are made absolute against the document that holds them, so the items can be loaded from
anywhere.
"""

from __future__ import annotations

import json
import posixpath
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from ..storage import open_fs, storage_errors
from ..storage.urls import canonical
from . import pgstac

#: most items one pgstac search returns to geoproc.open
SEARCH_LIMIT = 10_000


def read_items(url: str, storage_options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every item below a catalog or collection, in an ItemCollection, or the one item of ``url``."""
    return list(_walk(canonical(url), storage_options, set()))


def _walk(url: str, storage_options: Mapping[str, Any] | None, seen: set[str]) -> Iterator[dict[str, Any]]:
    if url in seen:
        return
    seen.add(url)
    doc = _read_json(url, storage_options)
    kind = doc.get("type")
    if kind == "FeatureCollection":
        for feature in doc.get("features", []):
            yield _absolute(feature, url)
        return
    if kind == "Feature":
        yield _absolute(doc, url)
        return
    for link in doc.get("links", []):
        if link.get("rel") in ("child", "item") and link.get("href"):
            yield from _walk(_resolve(link["href"], url), storage_options, seen)


def search_items(dsn: str, *, collections: Sequence[str] | None = None, bbox: Sequence[float] | None = None,
                 datetime: str | None = None, limit: int = SEARCH_LIMIT) -> list[dict[str, Any]]:
    """The items a pgstac search returns (``collections``, ``bbox`` in lon/lat, ``datetime`` or a range)."""
    query: dict[str, Any] = {"limit": limit}
    if collections:
        query["collections"] = list(collections)
    if bbox is not None:
        query["bbox"] = list(bbox)
    if datetime:
        query["datetime"] = datetime
    with pgstac.connect(dsn) as db:
        found = pgstac.search(db, query)
    return list((found or {}).get("features") or [])


def _read_json(url: str, storage_options: Mapping[str, Any] | None) -> dict[str, Any]:
    with storage_errors(url, "read"):
        fs, path = open_fs(url, storage_options)
        with fs.open(path, "rb") as f:
            return json.loads(f.read())


def _resolve(href: str, base: str) -> str:
    if "://" in href or href.startswith("/"):
        return href
    head, _, _ = base.rpartition("/")
    return posixpath.normpath(posixpath.join(head, href)) if "://" not in head else _join_url(head, href)


def _join_url(head: str, href: str) -> str:
    scheme, _, rest = head.partition("://")
    return f"{scheme}://{posixpath.normpath(posixpath.join(rest, href))}"


def _absolute(item: dict[str, Any], base: str) -> dict[str, Any]:
    item = dict(item)
    item["assets"] = {k: {**a, "href": _resolve(a["href"], base)} for k, a in (item.get("assets") or {}).items()}
    return item
