"""Static catalogs read back with pystac, and checked pgstac loading against a real database."""

from __future__ import annotations

import json
import threading

import pystac
import pytest
from kit.stac import validate_collection, validate_item

from geoproc.stac import CollectionStats, StaticCatalog, create_item, raster_record
from geoproc.stac import pgstac as pg
from geoproc.stac.collections import collection_dict


def items_for(paths, collection):
    return [create_item(raster_record(str(p)), collection=collection) for p in paths]


def test_static_catalog_is_self_contained_and_reads_back(small_cogs, tmp_path, collection_id):
    items = items_for(small_cogs(5), collection_id)
    cat = StaticCatalog(str(tmp_path / "catalog"))
    stats = CollectionStats()
    for it in items:
        cat.write_item(it)
        stats.add(it)
    summary = cat.write_collection(collection_id, stats, description="five tiles")
    assert summary["items"] == 5
    root = pystac.Catalog.from_file(str(tmp_path / "catalog" / "catalog.json"))
    back = sorted(root.get_items(recursive=True), key=lambda i: i.id)
    assert [i.id for i in back] == sorted(i["id"] for i in items)
    coll = json.loads((tmp_path / "catalog" / collection_id / "collection.json").read_text())
    validate_collection(coll)
    assert coll["extent"]["spatial"]["bbox"][0] == stats.extent()["spatial"]["bbox"][0]
    for f in (tmp_path / "catalog").rglob("*.json"):
        doc = json.loads(f.read_text())
        assert all(not link["href"].startswith(("/", "file:", "http")) for link in doc["links"])
        assert not any(link["rel"] == "self" for link in doc["links"])
        if doc["type"] == "Feature":
            validate_item(doc)
    # A second writer adds to the collection: links are the union, the extent is merged.
    more = items_for(small_cogs(8, directory=tmp_path / "more")[5:], collection_id)
    stats2 = CollectionStats()
    for it in more:
        cat.write_item(it)
        stats2.add(it)
    assert cat.write_collection(collection_id, stats2)["items"] == 8
    root = pystac.Catalog.from_file(str(tmp_path / "catalog" / "catalog.json"))
    assert len(list(root.get_items(recursive=True))) == 8
    assert len([lk for lk in root.links if lk.rel == "child"]) == 1


def test_setup_is_idempotent_and_dsn_passwords_are_split(pgstac_dsn):
    first = pg.setup(pgstac_dsn)
    second = pg.setup(pgstac_dsn)
    assert first["version"] == second["version"] and not second["changed"]
    assert first["version"].startswith("0.")
    dsn, password = pg.split_dsn("postgresql://alice:s3cret@db.example:5432/stac")
    assert password == "s3cret" and "s3cret" not in dsn and "alice" in dsn
    assert "s3cret" not in pg.redact_dsn("host=db user=alice password=s3cret dbname=stac")
    assert pg.resolve_dsn("env", env={pg.DSN_ENV: "postgresql://u@h/d"}) == "postgresql://u@h/d"
    with pytest.raises(pg.PgstacNotConfigured):
        pg.resolve_dsn(None, env={})


def _rows(db, collection):
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT id, xmin::text, content FROM items WHERE collection = %s ORDER BY id", [collection])
        return cur.fetchall()


def test_load_search_rerun_and_repair(pgstac_dsn, small_cogs, collection_id):
    items = items_for(small_cogs(12), collection_id)
    with pg.connect(pgstac_dsn) as db:
        assert pg.upsert_collection(db, collection_dict(collection_id, _stats(items))) == "created"
        rep = pg.load_items(db, items, batch_size=5)
        assert (rep.loaded, rep.unchanged, rep.batches) == (12, 0, 3)
        found = pg.search(db, {"collections": [collection_id], "bbox": [9.0, 44.0, 11.0, 46.0],
                               "datetime": "2024-01-01T00:00:00Z/2024-12-31T23:59:59Z", "limit": 100})
        assert sorted(f["id"] for f in found["features"]) == sorted(i["id"] for i in items)
        for f in found["features"]:
            validate_item(f)
        # Only the tiles in a smaller box and the first half of the year.
        few = pg.search(db, {"collections": [collection_id], "bbox": [10.0, 45.0, 10.025, 45.005],
                             "datetime": "2024-01-01T00:00:00Z/2024-06-30T23:59:59Z", "limit": 100})
        want = {i["id"] for i in items if i["bbox"][0] < 10.025 and i["properties"]["datetime"] < "2024-07"}
        assert {f["id"] for f in few["features"]} == want and 0 < len(want) < 12

        before = _rows(db, collection_id)
        again = pg.load_items(db, items, batch_size=5)
        assert (again.loaded, again.updated, again.unchanged, again.reloaded) == (0, 0, 12, 0)
        assert _rows(db, collection_id) == before  # same rows, same row versions
        assert pg.upsert_collection(db, collection_dict(collection_id, _stats(items))) == "unchanged"

        db.connect().execute("DELETE FROM items WHERE collection = %s AND id = %s", [collection_id, items[3]["id"]])
        changed = json.loads(json.dumps(items[7]))
        changed["properties"]["title"] = "retitled"
        fixed = pg.load_items(db, [*items[:7], changed, *items[8:]], batch_size=5)
        assert (fixed.loaded, fixed.updated, fixed.unchanged) == (1, 1, 10)
        assert pg.stored_ids(db, collection_id, [i["id"] for i in items]) == {i["id"] for i in items}


def _stats(items):
    st = CollectionStats()
    for it in items:
        st.add(it)
    return st


def test_concurrent_loaders_into_one_collection_lose_nothing(pgstac_dsn, small_cogs, collection_id, tmp_path):
    a = items_for(small_cogs(40, directory=tmp_path / "a"), collection_id)
    b = [dict(json.loads(json.dumps(i)), id=i["id"] + "-b") for i in a]
    for it in b:
        it["bbox"] = [v + 1.0 for v in it["bbox"]]
        it["geometry"]["coordinates"] = [[[x + 1.0, y + 1.0] for x, y in it["geometry"]["coordinates"][0]]]
    errors = []

    def load(items):
        try:
            with pg.connect(pgstac_dsn) as db:
                for k in range(0, len(items), 4):
                    part = items[k:k + 4]
                    pg.upsert_collection(db, collection_dict(collection_id, _stats(part)))
                    pg.load_items(db, part, batch_size=4)
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=load, args=(x,)) for x in (a, b)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    with pg.connect(pgstac_dsn) as db:
        ids = [i["id"] for i in a + b]
        assert pg.stored_ids(db, collection_id, ids) == set(ids)
        stored = db.query_one("SELECT content FROM collections WHERE id = %s", [collection_id])
    bbox = stored["extent"]["spatial"]["bbox"][0]
    assert bbox == (_stats(a).merge(_stats(b))).extent()["spatial"]["bbox"][0]
