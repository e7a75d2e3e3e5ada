"""The stac_catalog job end to end: real Dask worker processes, a real ledger, a real pgstac."""

from __future__ import annotations

import hashlib
import shutil
import threading

import pystac
import pytest
from kit.stac import validate_item
from shapely.geometry import Point, box, shape

import geoproc
from geoproc.errors import InvalidParams
from geoproc.stac import pgstac as pg

PASSWORD = "hunter2-never-stored"  # trust auth ignores it; it must not reach the ledger


def _rows(dsn, collection):
    with pg.connect(dsn) as db, db.connect().cursor() as cur:
        cur.execute("SELECT id, xmin::text FROM items WHERE collection = %s ORDER BY id", [collection])
        return cur.fetchall()


def _with_password(dsn: str) -> str:
    return dsn.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def test_catalog_job_loads_exactly_the_rasters_and_repairs(dask_cluster, pgstac_dsn, small_cogs, tmp_path,
                                                           collection_id):
    src = tmp_path / "src"
    small_cogs(6, directory=src)
    (src / "notes.txt").write_text("not a raster")
    (src / "broken.tif").write_bytes(b"II*\x00 truncated")
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    params = dict(input=str(src), stac_collection=collection_id, stac_catalog=str(tmp_path / "catalog"),
                  pgstac_dsn=_with_password(pgstac_dsn))
    res = geoproc.run("stac_catalog", cluster=dask_cluster, ledger=ledger, **params)
    assert res.status == "completed_with_errors", res.error
    assert res.result["files"] == 7 and res.result["items"] == 6
    assert res.result["pgstac"]["loaded"] == 6 and PASSWORD not in str(res.result)
    assert PASSWORD not in str(res.params) and "pgstac_password" not in res.params
    assert PASSWORD.encode() not in (tmp_path / "ledger.db").read_bytes()

    with pg.connect(pgstac_dsn) as db:
        found = pg.search(db, {"collections": [collection_id], "bbox": [9.5, 44.5, 10.5, 45.5],
                               "datetime": "2024-01-01T00:00:00Z/2024-12-31T23:59:59Z", "limit": 50})
    ids = sorted(f["id"] for f in found["features"])
    assert ids == sorted(p.stem for p in src.glob("tile_*.tif"))
    for f in found["features"]:
        validate_item(f)
        assert f["properties"]["geoproc:job_id"] == res.job_id
    root = pystac.Catalog.from_file(str(tmp_path / "catalog" / "catalog.json"))
    assert sorted(i.id for i in root.get_items(recursive=True)) == ids

    before = _rows(pgstac_dsn, collection_id)
    # a plain re-run lists again (the listing is volatile), builds no item twice, and verifies pgstac;
    # it is the same job when submitted under the parameter's old name
    old_names = {("source" if k == "input" else k): v for k, v in params.items()}
    with pytest.warns(DeprecationWarning, match="'source' is deprecated; use 'input'"):
        again = geoproc.run("stac_catalog", cluster=dask_cluster, ledger=ledger, **old_names)
    assert again.job_id == res.job_id and again.executed == 1
    assert again.result["pgstac"]["loaded"] == 0 and again.result["pgstac"]["unchanged"] == 6
    assert again.result["collection_upsert"] == "unchanged"
    assert _rows(pgstac_dsn, collection_id) == before  # nothing rewritten
    forced = geoproc.run("stac_catalog", cluster=dask_cluster, ledger=ledger, force=True, **params)
    assert forced.result["pgstac"]["loaded"] == 0 and forced.result["pgstac"]["unchanged"] == 6
    assert _rows(pgstac_dsn, collection_id) == before

    # an item deleted behind geoproc's back is found and reloaded by the next plain run
    with pg.connect(pgstac_dsn) as db:
        db.connect().execute("DELETE FROM items WHERE collection = %s AND id = %s", [collection_id, ids[2]])
    repaired = geoproc.run("stac_catalog", cluster=dask_cluster, ledger=ledger, **params)
    assert repaired.result["pgstac"]["loaded"] == 1 and repaired.result["pgstac"]["unchanged"] == 5
    assert [r[0] for r in _rows(pgstac_dsn, collection_id)] == ids


def test_two_jobs_into_one_collection_lose_nothing(dask_cluster, pgstac_dsn, small_cogs, tmp_path, collection_id):
    small_cogs(30, directory=tmp_path / "a")
    small_cogs(30, directory=tmp_path / "b")
    results, errors = {}, []

    def run(name):
        try:
            results[name] = geoproc.run("stac_catalog", cluster=dask_cluster, ledger=f"sqlite:///{tmp_path}/{name}.db",
                                        input=str(tmp_path / name), stac_collection=collection_id,
                                        pgstac_dsn=pgstac_dsn, stac_datetime="2023-05-01T00:00:00Z")
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in "ab"]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not errors and all(r.status == "completed" for r in results.values())
    # Both sources have the same file names, so both jobs load the same 30 ids: the second one's rows
    # must match what it meant to write (same content), and nothing may be missing.
    assert len(_rows(pgstac_dsn, collection_id)) == 30
    assert sum(r.result["pgstac"]["loaded"] + r.result["pgstac"]["updated"] for r in results.values()) >= 30


def test_terra_rasters_through_the_job(dask_cluster, pgstac_dsn, terra_rasters, tmp_path, collection_id):
    src = tmp_path / "terra"
    src.mkdir()
    for name, path in terra_rasters.items():
        shutil.copy(path, src / name)
    res = geoproc.run("stac_catalog", cluster=dask_cluster, ledger=f"sqlite:///{tmp_path}/l.db", input=str(src),
                      stac_collection=collection_id, pgstac_dsn=pgstac_dsn, stac_datetime="2021-01-01T00:00:00Z")
    assert res.status == "completed_with_errors" and res.result["items"] == 2  # logo.tif has no place on Earth
    with pg.connect(pgstac_dsn) as db:
        found = pg.search(db, {"collections": [collection_id], "bbox": [5.0, 49.0, 7.0, 52.0], "limit": 10})
    by_id = {f["id"]: f for f in found["features"]}
    assert set(by_id) == {"elev", "meuse"}
    assert by_id["elev"]["properties"]["proj:code"] == "EPSG:4326"
    assert by_id["meuse"]["properties"]["proj:wkt2"]
    assert 5.70 < by_id["meuse"]["bbox"][0] < by_id["meuse"]["bbox"][2] < 5.78
    outline, bounds = shape(by_id["elev"]["geometry"]), box(*by_id["elev"]["bbox"])
    assert outline.area < 0.8 * bounds.area  # a traced outline of Luxembourg, not a box
    assert outline.contains(Point(6.13, 49.61))


@pytest.mark.parametrize("bad", ["postgresql://u:pw@h:5432/d?sslmode=bogus-but-parsed"])
def test_password_is_moved_out_of_params(bad):
    jt = geoproc.get_job("stac_catalog")
    model = jt.validate({"input": "/tmp/x", "pgstac_dsn": bad})
    stored = jt.normalized(model)
    assert "pw" not in stored["pgstac_dsn"] and "pgstac_password" not in stored
    assert model.pgstac_password.get_secret_value() == "pw"
    assert jt.job_id(model) == jt.job_id(jt.validate({"input": "/tmp/x", "pgstac_dsn": bad.replace(":pw", ":other")}))


def test_old_parameter_names_still_work_and_keep_the_job_id():
    jt = geoproc.get_job("stac_catalog")
    new = jt.validate({"input": "/tmp/x", "limit": 5})
    with pytest.warns(DeprecationWarning, match="'source' is deprecated; use 'input'"):
        old = jt.validate({"source": "/tmp/x", "limit": 5})
    with pytest.warns(DeprecationWarning, match="'file_limit' is deprecated; use 'limit'"):
        older = jt.validate({"input": "/tmp/x", "file_limit": 5})
    assert old.input == older.input == "/tmp/x" and old.limit == older.limit == 5
    assert jt.normalized(old) == jt.normalized(older) == jt.normalized(new)
    assert "source" not in jt.normalized(new) and "file_limit" not in jt.normalized(new)
    assert jt.job_id(old) == jt.job_id(older) == jt.job_id(new)
    with pytest.raises(InvalidParams, match="'source' is the old name of 'input'; give only 'input'"):
        jt.validate({"source": "/tmp/x", "input": "/tmp/y"})


def test_cog_job_catalogs_its_outputs(dask_cluster, pgstac_dsn, raster_factory, tmp_path, collection_id):
    src = tmp_path / "in"
    for i in range(2):
        raster_factory(f"dem_{i}_20240{i + 1}15.tif", directory=src, size=(128, 128), dtype="float32",
                       bounds=(500000 + i * 1280, 5000000, 501280 + i * 1280, 5001280), nodata=-9999.0)
    res = geoproc.run("cog", cluster=dask_cluster, ledger=f"sqlite:///{tmp_path}/l.db", input=str(src),
                      output=str(tmp_path / "out"), stac_collection=collection_id, pgstac_dsn=pgstac_dsn,
                      stac_catalog=str(tmp_path / "catalog"))
    assert res.status == "completed", res.error
    assert res.result["stac"]["items"] == 2 and res.result["stac"]["pgstac"]["loaded"] == 2
    with pg.connect(pgstac_dsn) as db:
        found = pg.search(db, {"collections": [collection_id], "limit": 10})
    by_id = {f["id"]: f for f in found["features"]}
    assert set(by_id) == {"dem_0_20240115", "dem_1_20240215"}
    for f in by_id.values():
        validate_item(f)
        asset = f["assets"]["data"]
        out = tmp_path / "out" / (f["id"] + ".tif")
        assert asset["href"].endswith(f["id"] + ".tif") and asset["file:size"] == out.stat().st_size
        assert asset["file:checksum"] == "1220" + hashlib.sha256(out.read_bytes()).hexdigest()
        assert f["properties"]["proj:code"] == "EPSG:4326"  # the cog job's default target CRS
        assert "statistics" in asset["raster:bands"][0]
    root = pystac.Catalog.from_file(str(tmp_path / "catalog" / "catalog.json"))
    assert sorted(i.id for i in root.get_items(recursive=True)) == sorted(by_id)
