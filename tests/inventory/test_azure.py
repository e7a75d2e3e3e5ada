"""Inventories of Azurite containers through real Dask worker processes (which have no Azure env vars)."""

from __future__ import annotations

import datetime as dt
import io
import json
import time

import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from kit.inventory import LAYOUT, expected, new_container, payload

import geoproc
from geoproc.errors import SourceNotFound
from geoproc.inventory.listing import open_lister, plan_units
from geoproc.ledger import open_ledger

pytestmark = pytest.mark.services


def _opts(cs):
    return {"az": {"connection_string": cs}}


def _by_bytes(table):
    return dict(sorted(table.items(), key=lambda kv: (-kv[1]["bytes"], kv[0])))


@pytest.mark.parametrize("target", [1, 3, 7, 64])
def test_azure_units_cover_every_blob_exactly_once(azurite, az_container, target):
    lister = open_lister(f"az://{az_container}", _opts(azurite))
    units = plan_units(lister, "", target)
    names = [b.name for u in units for b in lister.iter_unit(u)]
    assert sorted(names) == [n for n, _ in LAYOUT]
    assert [b.name for b in lister.iter_unit(("tree", ""))] == [n for n, _ in LAYOUT]  # server order
    blob = next(lister.iter_unit(("level", "")))
    assert blob.etag and blob.last_modified.tzinfo is not None and blob.content_type


def test_azure_listing_pages_past_5000(azurite, blob_service):
    """A level with more entries than one page: continuation tokens, and the probe's truncation."""
    import concurrent.futures as cf

    name = new_container(blob_service)
    cc = blob_service.get_container_client(name)
    with cf.ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda i: cc.upload_blob(f"flat/{i:05d}.txt", b"x"), range(5003)))
    lister = open_lister(f"az://{name}", _opts(azurite))
    assert sum(1 for _ in lister.iter_unit(("level", "flat/"))) == 5003
    assert plan_units(lister, "flat/", 8, max_probe=5000) == [("tree", "flat/")]
    level = lister.walk_level("flat/", 10_000)
    assert level.files == 5003 and not level.truncated


def test_summarize_container(azurite, az_container, dask_cluster, ledger_url):
    res = geoproc.run("summarize_container", input=f"az://{az_container}", shards=4,
                      cluster=dask_cluster, ledger=ledger_url)
    assert res.status == "completed", res.error
    s, want = res.result["summary"], expected(LAYOUT)
    assert (s["files"], s["bytes"], s["scanned"]) == (want["files"], want["bytes"], len(LAYOUT))
    assert s["by_extension"] == _by_bytes(want["by_extension"])
    assert s["by_prefix"] == _by_bytes(want["by_prefix"])
    assert s["size_buckets"]["0-10 MB"] == {"files": len(LAYOUT), "bytes": want["bytes"]}
    assert all(v == {"files": 0, "bytes": 0} for k, v in s["size_buckets"].items() if k != "0-10 MB")
    biggest = max(LAYOUT, key=lambda t: (t[1], [-ord(c) for c in t[0]]))
    assert (s["largest"]["name"], s["largest"]["size"]) == biggest
    assert (s["smallest"]["name"], s["smallest"]["size"]) == ("zero.tif", 0)
    assert 1 <= res.result["shards"] <= 4
    assert [(st.name, st.counts.get("completed", 0)) for st in res.stages][:2] == \
        [("shard", 1), ("scan", res.result["shards"])]
    # the same job (shards is not part of its identity) again: listed again, in more shards, the same summary
    again = geoproc.run("summarize_container", input=f"az://{az_container}", shards=9,
                        cluster=dask_cluster, ledger=ledger_url)
    assert again.job_id == res.job_id and not again.cached and again.result["summary"] == res.result["summary"]


def test_list_container_writes_parquet_csv_and_summary(azurite, az_container, blob_service, dask_cluster,
                                                       ledger_url):
    out_container = new_container(blob_service)
    out = f"az://{out_container}/inv/run1"
    res = geoproc.run("list_container", input=f"az://{az_container}", output=out, shards=5,
                      cluster=dask_cluster, ledger=ledger_url)
    assert res.status == "completed", res.error
    assert res.result["outputs"] == {"parquet": f"{out}/inventory.parquet", "csv": f"{out}/inventory.csv",
                                     "summary": f"{out}/summary.json"}
    cc = blob_service.get_container_client(out_container)
    names = sorted(b.name for b in cc.list_blobs(name_starts_with="inv/run1/"))
    assert "inv/run1/inventory.csv" in names and "inv/run1/summary.json" in names
    assert not [n for n in names if "/_parts/" in n]  # text parts merged and removed
    parts = [n for n in names if n.startswith("inv/run1/inventory.parquet/")]
    assert 1 <= len(parts) <= 5
    tables = [pq.read_table(io.BytesIO(cc.download_blob(p).readall())) for p in parts]
    rows = sorted((r for t in tables for r in t.to_pylist()), key=lambda r: r["name"])
    assert [(r["name"], r["size"]) for r in rows] == LAYOUT
    r0 = next(r for r in rows if r["name"] == "catalog.json")
    assert r0["url"] == f"az://{az_container}/catalog.json" and r0["etag"] and r0["last_modified"].tzinfo
    assert r0["extension"] == ".json" and r0["content_type"] == "application/octet-stream"
    csv = pacsv.read_csv(io.BytesIO(cc.download_blob("inv/run1/inventory.csv").readall()))
    assert csv.num_rows == len(LAYOUT) and sorted(csv.column("name").to_pylist()) == [n for n, _ in LAYOUT]
    summary = json.loads(cc.download_blob("inv/run1/summary.json").readall())
    assert summary["summary"] == res.result["summary"] and summary["source"] == f"az://{az_container}"


def test_filters_prefix_suffix_size_and_limit(azurite, az_container, dask_cluster, ledger_url):
    def run(**kw):
        res = geoproc.run("summarize_container", input=f"az://{az_container}", cluster=dask_cluster,
                          ledger=ledger_url, **kw)
        assert res.status == "completed", res.error
        return res.result["summary"]

    tifs = [(n, s) for n, s in LAYOUT if n.lower().endswith(".tif")]
    s = run(suffixes=["TIF"])
    assert (s["files"], s["bytes"]) == (len(tifs), sum(x for _, x in tifs))
    s = run(prefix="2024/", suffixes=[".tif"], min_size=1000, max_size="5KB")
    want = [(n, x) for n, x in tifs if n.startswith("2024/") and 1000 <= x <= 5000]
    assert want and (s["files"], s["bytes"]) == (len(want), sum(x for _, x in want))
    assert set(s["by_prefix"]) == {"2024/01/", "2024/02/"}  # groups are relative to the prefix
    s = run(prefix="misc/", limit=2)
    assert s["files"] == 2 and s["hit_limit"]
    assert s["largest"]["name"] in ("misc/README", "misc/UPPER.TIF")  # the first two in name order
    s = run(prefix="misc/", limit=4)
    assert s["files"] == 4 and not s["hit_limit"]
    s = run(prefix="2024/0")
    assert s["files"] == sum(1 for n, _ in LAYOUT if n.startswith("2024/0"))


def test_modified_range(azurite, blob_service, dask_cluster, ledger_url):
    name = new_container(blob_service, {"old/a.tif": b"1", "old/b.tif": b"22"})
    time.sleep(1.2)
    boundary = dt.datetime.now(dt.UTC)
    time.sleep(1.2)
    cc = blob_service.get_container_client(name)
    cc.upload_blob("new/c.tif", b"333")
    res = geoproc.run("summarize_container", input=f"az://{name}", modified_after=boundary.isoformat(),
                      cluster=dask_cluster, ledger=ledger_url)
    assert (res.result["summary"]["files"], res.result["summary"]["bytes"]) == (1, 3)
    res = geoproc.run("summarize_container", input=f"az://{name}", modified_before=boundary.isoformat(),
                      cluster=dask_cluster, ledger=ledger_url)
    assert (res.result["summary"]["files"], res.result["summary"]["bytes"]) == (2, 3)
    assert res.result["summary"]["newest"]["name"] in ("old/a.tif", "old/b.tif")


def test_empty_container_completes_with_zero_counts(azurite, blob_service, dask_cluster, ledger_url, tmp_path):
    name = new_container(blob_service)
    out = tmp_path / "empty-out"
    res = geoproc.run("list_container", input=f"az://{name}", output=str(out), cluster=dask_cluster,
                      ledger=ledger_url)
    assert res.status == "completed", res.error
    s = res.result["summary"]
    assert (s["files"], s["bytes"], s["by_extension"], s["largest"]) == (0, 0, {}, None)
    assert res.result["shards"] == 0
    table = pq.read_table(out / "inventory.parquet")
    assert table.num_rows == 0 and "size" in table.column_names
    assert (out / "inventory.csv").read_text().splitlines()[0].startswith('"url","name"')
    assert json.loads((out / "summary.json").read_text())["summary"]["files"] == 0


def test_missing_container_is_a_clear_error(azurite, dask_cluster, ledger_url):
    with pytest.raises(SourceNotFound, match="Container 'no-such-container' does not exist") as info:
        geoproc.run("summarize_container", input="az://no-such-container/x", cluster=dask_cluster,
                    ledger=ledger_url)
    assert "az storage container list" in str(info.value)
    led = open_ledger(ledger_url)
    (job,) = led.list_jobs()
    assert job.status == "failed" and "SourceNotFound" in job.error


def test_headers_mode_reads_through_gdal_and_reports_unreadable(azurite, blob_service, dask_cluster, ledger_url,
                                                                raster_factory, tmp_path):
    from rio_cogeo.cogeo import cog_translate
    from rio_cogeo.profiles import cog_profiles

    plain = raster_factory("plain.tif", size=(600, 600), dtype="uint16", nodata=0)
    four326 = raster_factory("wgs.tif", crs="EPSG:4326", bounds=(10, 40, 11, 41), size=(64, 64), dtype="float32")
    cog = tmp_path / "cog.tif"
    cog_translate(str(plain), str(cog), cog_profiles.get("deflate"), overview_level=2, quiet=True)
    blobs = {"r/plain.tif": plain.read_bytes(), "r/cog.tif": cog.read_bytes(), "r/wgs.tif": four326.read_bytes(),
             "r/notes.tif": b"this is text, not a raster", "r/truncated.tif": plain.read_bytes()[:16],
             "r/readme.md": payload("readme", 50)}
    name = new_container(blob_service, blobs)
    out = tmp_path / "hdr-out"
    res = geoproc.run("list_container", input=f"az://{name}", headers=True, output=str(out), format="jsonl",
                      cluster=dask_cluster, ledger=ledger_url)
    assert res.status == "completed", res.error
    h = res.result["summary"]["headers"]
    # a 64 x 64 single-strip GeoTIFF is a valid COG (no tiling or overviews needed below 512 px)
    assert (h["read"], h["cog"], h["not_cog"], h["unreadable"]) == (3, 2, 1, 3)
    assert h["crs"] == {"EPSG:32633": 2, "EPSG:4326": 1}
    assert h["dtype"] == {"float32": 1, "uint16": 2} and h["driver"] == {"GTiff": 3}
    assert h["unreadable_sample"] == ["r/notes.tif", "r/readme.md", "r/truncated.tif"]
    recs = {r["name"]: r for r in map(json.loads, (out / "inventory.jsonl").read_text().splitlines())}
    assert recs["r/cog.tif"]["is_cog"] is True and recs["r/cog.tif"]["overviews"] == 2
    assert recs["r/wgs.tif"]["crs"] == "EPSG:4326" and recs["r/wgs.tif"]["nodata"] is None
    assert recs["r/plain.tif"]["is_cog"] is False and recs["r/plain.tif"]["nodata"] == 0.0
    assert (recs["r/plain.tif"]["width"], recs["r/plain.tif"]["bands"]) == (600, 1)
    assert recs["r/notes.tif"]["header_error"] and recs["r/notes.tif"]["driver"] is None
    table = pq.read_table(out / "inventory.parquet")
    assert table.num_rows == 6 and {"crs", "is_cog", "header_error"} <= set(table.column_names)
