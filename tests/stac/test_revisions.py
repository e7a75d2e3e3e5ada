"""Revisions: re-running into the same output and collection replaces the file atomically, updates
the item in place with a new version, and keeps every earlier revision's checksum in the ledger.

Real worker processes, the COG and the static catalog on Azurite, items in a real pgstac; a reader
thread reads the COG over and over while it is replaced.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import threading

import numpy as np
from kit.drivers import geoproc_cmd
from kit.rasters import write_geotiff

import geoproc
from geoproc.stac import pgstac as pg
from geoproc.storage import open_fs


def _pgstac_item(dsn, collection, item):
    with pg.connect(dsn) as db:
        found = pg.search(db, {"collections": [collection], "ids": [item], "limit": 5})
    assert len(found["features"]) == 1
    return found["features"][0]


def test_a_revision_replaces_the_output_atomically_and_versions_the_item(dask_cluster, pgstac_dsn, tmp_path,
                                                                         az_fs, az_options, az_container,
                                                                         collection_id):
    rng = np.random.default_rng(7)
    src = write_geotiff(tmp_path / "src" / "dem.tif", size=(2048, 2048),
                        data=rng.normal(300, 50, (1, 2048, 2048)).astype("float32"))  # noise: megabytes of COG
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    out = f"az://{az_container}/cogs/dem.tif"
    params = dict(input=str(src), output=out, target_crs="keep", stac_catalog=f"az://{az_container}/catalog",
                  stac_collection=collection_id, pgstac_dsn=pgstac_dsn, stac_datetime="2024-03-01T00:00:00Z")

    first = geoproc.run("cog", cluster=dask_cluster, ledger=ledger, **params)
    assert first.status == "completed", first.error
    old = az_fs.cat(f"{az_container}/cogs/dem.tif")
    assert _pgstac_item(pgstac_dsn, collection_id, "dem")["properties"]["version"] == "1"

    reads: list[str] = []
    stop = threading.Event()

    def reader():  # what a user's tile server sees while the revision lands
        fs, _ = open_fs(f"az://{az_container}/cogs", az_options)
        while not stop.is_set():
            try:
                reads.append(hashlib.sha256(fs.cat(f"{az_container}/cogs/dem.tif")).hexdigest())
            except FileNotFoundError:
                reads.append("missing")

    t = threading.Thread(target=reader)
    t.start()
    try:
        second = geoproc.run("cog", cluster=dask_cluster, ledger=ledger, **{**params, "tier": "archive"})
    finally:
        stop.set()
        t.join(60)
    assert second.status == "completed", second.error and second.job_id != first.job_id
    new = az_fs.cat(f"{az_container}/cogs/dem.tif")
    assert new != old
    seen = set(reads)
    assert len(reads) >= 3 and seen <= {hashlib.sha256(old).hexdigest(), hashlib.sha256(new).hexdigest()}, seen

    item = _pgstac_item(pgstac_dsn, collection_id, "dem")  # the same id, updated in place
    assert item["properties"]["version"] == "2"
    assert second.job_id in item["properties"]["processing:lineage"]
    static = json.loads(az_fs.cat(f"{az_container}/catalog/{collection_id}/dem/dem.json"))
    assert static["properties"]["version"] == "2"
    assert static["assets"]["data"]["file:checksum"] == "1220" + hashlib.sha256(new).hexdigest()

    # the input changes: the same job runs its task again, a third revision; the second's checksum stays
    src.write_bytes(write_geotiff(tmp_path / "v3.tif", size=(2048, 2048),
                                  data=rng.normal(100, 5, (1, 2048, 2048)).astype("float32")).read_bytes())
    third = geoproc.run("cog", cluster=dask_cluster, ledger=ledger, **{**params, "tier": "archive"})
    assert third.status == "completed" and third.job_id == second.job_id
    latest = az_fs.cat(f"{az_container}/cogs/dem.tif")
    assert _pgstac_item(pgstac_dsn, collection_id, "dem")["properties"]["version"] == "3"

    revisions = geoproc.history(out, ledger=ledger)
    assert [(r["revision"], r["job_id"], r["sha256"]) for r in revisions] == [
        (1, first.job_id, hashlib.sha256(old).hexdigest()),
        (2, second.job_id, hashlib.sha256(new).hexdigest()),
        (3, second.job_id, hashlib.sha256(latest).hexdigest())]
    assert [r["current"] for r in revisions] == [False, False, True]

    p = subprocess.run(geoproc_cmd("history", out, "--ledger", ledger), capture_output=True, text=True, timeout=120,
                       env={**os.environ, "COLUMNS": "200"})
    assert p.returncode == 0 and "3 (current)" in p.stdout and first.job_id[:12] in p.stdout, p.stdout
    p = subprocess.run(geoproc_cmd("history", f"az://{az_container}/nothing.tif", "--ledger", ledger),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 2 and "No job" in p.stderr
