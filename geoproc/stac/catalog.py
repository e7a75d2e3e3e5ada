"""Static, self-contained STAC catalogs written through fsspec (local paths, ``az://``, ...).

Layout (pystac's "best practices" layout; every link is relative, there are no ``self`` links, so
the catalog can be copied or moved as a whole)::

    <root>/catalog.json
    <root>/<collection id>/collection.json
    <root>/<collection id>/<item id>/<item id>.json

Items are written one file at a time, in parallel by the tasks that make them
(:meth:`StaticCatalog.write_item`). The collection is written last
(:meth:`StaticCatalog.write_collection`): its ``item`` links come from listing the item files that
exist under the collection, and are streamed into ``collection.json``, so neither the items nor their
JSON ever sit in memory together. When a collection already exists its extent and summaries are
merged with the new ones, so several jobs can add to one collection. Each JSON file is written to a
temporary name and then moved into place, so readers never see a partial file.
"""

from __future__ import annotations

import json
import os
import posixpath
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

from ..storage import open_fs, redact
from .collections import CollectionStats, collection_dict

CATALOG_FILE = "catalog.json"
COLLECTION_FILE = "collection.json"
JSON_MEDIA_TYPE = "application/json"
GEOJSON_MEDIA_TYPE = "application/geo+json"


class StaticCatalog:
    """A static catalog rooted at ``root`` (a directory URL)."""

    def __init__(self, root: str, storage_options: Mapping[str, Any] | None = None):
        self.root = root.rstrip("/")
        self.fs, self.path = open_fs(self.root, storage_options)
        self.path = self.path.rstrip("/")

    # --- layout --------------------------------------------------------------------------------------

    def collection_path(self, collection_id: str) -> str:
        return posixpath.join(self.path, collection_id, COLLECTION_FILE)

    def item_path(self, collection_id: str, item_id: str) -> str:
        return posixpath.join(self.path, collection_id, item_id, f"{item_id}.json")

    def item_url(self, collection_id: str, item_id: str) -> str:
        """Where the item's JSON is, as a URL of the catalog's protocol."""
        return f"{self.root}/{collection_id}/{item_id}/{item_id}.json"

    # --- writing -------------------------------------------------------------------------------------

    def write_item(self, item: dict[str, Any]) -> str:
        """Write one item with its relative links; returns the item file's URL."""
        cid = item.get("collection")
        if not cid:
            raise ValueError(f"item {item.get('id')!r} has no collection; static items live in a collection")
        out = dict(item)
        out["links"] = [link for link in item.get("links", [])
                        if link.get("rel") not in ("root", "parent", "collection", "self")]
        out["links"] += [
            {"rel": "root", "href": f"../../{CATALOG_FILE}", "type": JSON_MEDIA_TYPE},
            {"rel": "parent", "href": f"../{COLLECTION_FILE}", "type": JSON_MEDIA_TYPE},
            {"rel": "collection", "href": f"../{COLLECTION_FILE}", "type": JSON_MEDIA_TYPE},
        ]
        self._write_text(self.item_path(cid, item["id"]), json.dumps(out, separators=(",", ":")))
        return self.item_url(cid, item["id"])

    def item_files(self, collection_id: str) -> Iterator[str]:
        """Relative hrefs (``<id>/<id>.json``) of the items stored under a collection, sorted."""
        base = posixpath.join(self.path, collection_id)
        if not self.fs.exists(base):
            return iter(())
        found = self.fs.glob(posixpath.join(base, "*", "*.json"))
        rels = []
        for p in found:
            rel = posixpath.relpath(_strip(p), _strip(base))
            d, name = rel.split("/", 1)
            if name == f"{d}.json":
                rels.append(rel)
        return iter(sorted(rels))

    def read_json(self, path: str) -> dict[str, Any] | None:
        if not self.fs.exists(path):
            return None
        with self.fs.open(path, "rb") as f:
            return json.load(f)

    def write_collection(self, collection_id: str, stats: CollectionStats, *, catalog_id: str = "geoproc",
                         catalog_description: str = "Rasters catalogued by geoproc.",
                         **collection_kwargs: Any) -> dict[str, Any]:
        """Write (or merge into) a collection and link it from the root catalog.

        Returns a summary: the collection URL, how many item links it has, and its extent.
        """
        existing = self.read_json(self.collection_path(collection_id))
        if existing:
            stats = CollectionStats.from_collection(existing).merge(stats)
            for key in ("description", "title", "license", "keywords"):
                if existing.get(key) and not collection_kwargs.get(key):
                    collection_kwargs[key] = existing[key]
        coll = collection_dict(collection_id, stats, **collection_kwargs)
        coll["links"] = [
            {"rel": "root", "href": f"../{CATALOG_FILE}", "type": JSON_MEDIA_TYPE},
            {"rel": "parent", "href": f"../{CATALOG_FILE}", "type": JSON_MEDIA_TYPE},
        ]
        n = self._stream_collection(collection_id, coll)
        self._link_child(collection_id, coll.get("title"), catalog_id, catalog_description)
        return {"url": f"{self.root}/{collection_id}/{COLLECTION_FILE}", "items": n, "extent": coll["extent"]}

    def remove_item(self, collection_id: str, item_id: str) -> bool:
        """Delete one item's directory; returns whether it was there (a removal may be run again)."""
        directory = posixpath.dirname(self.item_path(collection_id, item_id))
        if not self.fs.exists(directory):
            return False
        self.fs.rm(directory, recursive=True)
        return True

    def recompute_collection(self, collection_id: str) -> dict[str, Any] | None:
        """Rewrite a collection from the items it still holds: links, extent and summaries computed
        afresh (after items were removed, a merge would keep the old extent). None when there is no
        such collection."""
        existing = self.read_json(self.collection_path(collection_id))
        if existing is None:
            return None
        stats = CollectionStats()
        for rel in self.item_files(collection_id):
            item = self.read_json(posixpath.join(self.path, collection_id, rel))
            if item:
                stats.add(item)
        kwargs = {k: existing[k] for k in ("description", "title", "license", "keywords") if existing.get(k)}
        coll = collection_dict(collection_id, stats, **kwargs)
        if not stats.count:  # nothing left to reduce over: keep the last extent rather than the whole Earth
            coll["extent"] = existing.get("extent", coll["extent"])
        coll["links"] = [
            {"rel": "root", "href": f"../{CATALOG_FILE}", "type": JSON_MEDIA_TYPE},
            {"rel": "parent", "href": f"../{CATALOG_FILE}", "type": JSON_MEDIA_TYPE},
        ]
        n = self._stream_collection(collection_id, coll)
        return {"url": f"{self.root}/{collection_id}/{COLLECTION_FILE}", "items": n, "extent": coll["extent"]}

    def _stream_collection(self, collection_id: str, coll: dict[str, Any]) -> int:
        """Write ``coll`` with one ``item`` link per stored item, streaming the links."""
        marker = "\u0000geoproc-item-links\u0000"
        head = json.dumps({**coll, "links": [*coll["links"], marker]}, separators=(",", ":"))
        prefix, suffix = head.split("," + json.dumps(marker), 1)
        n = 0
        target = self.collection_path(collection_id)
        tmp = f"{target}.tmp-{uuid.uuid4().hex[:8]}"
        self.fs.makedirs(posixpath.dirname(target), exist_ok=True)
        with self.fs.open(tmp, "w") as f:
            f.write(prefix)
            for rel in self.item_files(collection_id):
                link = {"rel": "item", "href": f"./{rel}", "type": GEOJSON_MEDIA_TYPE}
                f.write("," + json.dumps(link, separators=(",", ":")))
                n += 1
            f.write(suffix)
        self._replace(tmp, target)
        return n

    def _link_child(self, collection_id: str, title: str | None, catalog_id: str, description: str) -> None:
        path = posixpath.join(self.path, CATALOG_FILE)
        cat = self.read_json(path) or {
            "type": "Catalog", "stac_version": "1.1.0", "id": catalog_id, "description": description,
            "links": [{"rel": "root", "href": f"./{CATALOG_FILE}", "type": JSON_MEDIA_TYPE}],
        }
        href = f"./{collection_id}/{COLLECTION_FILE}"
        if not any(link.get("rel") == "child" and link.get("href") == href for link in cat.get("links", [])):
            child = {"rel": "child", "href": href, "type": JSON_MEDIA_TYPE}
            if title:
                child["title"] = title
            cat.setdefault("links", []).append(child)
            self._write_text(path, json.dumps(cat, indent=2))
        elif not self.fs.exists(path):
            self._write_text(path, json.dumps(cat, indent=2))

    def _write_text(self, path: str, text: str) -> None:
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        self.fs.makedirs(posixpath.dirname(path), exist_ok=True)
        with self.fs.open(tmp, "w") as f:
            f.write(text)
        self._replace(tmp, path)

    def _replace(self, tmp: str, path: str) -> None:
        if _is_local(self.fs):
            os.replace(tmp, path)
        else:
            self.fs.mv(tmp, path)

    def __repr__(self) -> str:
        return f"StaticCatalog({redact(self.root)!r})"


def _is_local(fs: Any) -> bool:
    proto = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in proto or "local" in proto


def _strip(p: str) -> str:
    return p.rstrip("/")
