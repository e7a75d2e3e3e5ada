"""publish=review: outputs and a preview, nothing public, until a reviewer approves or rejects.

Real worker processes, outputs and catalogs on Azurite, items in a real pgstac; decisions through the
Python API and the CLI, recorded in the ledger.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from kit.drivers import geoproc_cmd
from kit.stac import pgstac_ids

import geoproc
from geoproc.ledger import open_ledger
from geoproc.lifecycle import ReviewRefused


def _cli(*args):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=300)


def _ledger_item_ids(ledger, job_id):
    led = open_ledger(ledger, read_only=True)
    try:
        return sorted(r["id"] for r in led.stream_results(job_id, 3))
    finally:
        led.close()


@pytest.fixture
def review_run(dask_cluster, pgstac_dsn, small_cogs, tmp_path, az_container, collection_id):
    """``run()`` the cog job with publish=review: local inputs, COGs and catalog on Azurite, pgstac."""
    src = tmp_path / "src"
    small_cogs(4, directory=src)
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    params = dict(input=str(src), output=f"az://{az_container}/cogs", stac_catalog=f"az://{az_container}/catalog",
                  stac_collection=collection_id, pgstac_dsn=pgstac_dsn, stac_datetime="2024-03-01T00:00:00Z",
                  target_crs="keep", publish="review")

    def run(**extra):
        return geoproc.run("cog", cluster=dask_cluster, ledger=ledger, **{**params, **extra})

    run.ledger, run.params = ledger, params
    return run


def test_review_then_approve_publishes_exactly_once(review_run, az_fs, az_container, pgstac_dsn, collection_id):
    res = review_run()
    assert res.status == "awaiting_review", res.error
    job = res.job_id[:12]
    # outputs written, a preview catalog beside the public one, nothing public
    assert len(az_fs.glob(f"{az_container}/cogs/*.tif")) == 4
    preview = f"{az_container}/catalog.review/{job}"
    assert len(az_fs.glob(f"{preview}/{collection_id}/*/*.json")) == 4
    assert json.loads(az_fs.cat(f"{preview}/{collection_id}/collection.json"))["id"] == collection_id
    assert not az_fs.exists(f"{az_container}/catalog/catalog.json")
    assert pgstac_ids(pgstac_dsn, collection_id) == []

    again = review_run()  # re-submitted: nothing new is converted, and it still waits
    assert again.status == "awaiting_review" and again.job_id == res.job_id
    assert pgstac_ids(pgstac_dsn, collection_id) == []

    shown = json.loads(_cli("status", job, "--ledger", review_run.ledger, "--json").stdout)
    assert shown["status"] == "awaiting_review" and shown["review"]["state"] == "awaiting"
    assert shown["review"]["previews"] == [f"az://{preview}/catalog.json"]

    approved = geoproc.approve(job, by="alice", note="colours checked", ledger=review_run.ledger)
    assert approved.status == "completed"
    ids = _ledger_item_ids(review_run.ledger, res.job_id)
    assert pgstac_ids(pgstac_dsn, collection_id) == ids and len(ids) == 4
    public = json.loads(az_fs.cat(f"{az_container}/catalog/{collection_id}/collection.json"))
    assert sorted(lk["href"].split("/")[1] for lk in public["links"] if lk["rel"] == "item") == ids

    with pytest.raises(ReviewRefused, match="already approved by alice"):
        geoproc.approve(job, ledger=review_run.ledger)
    p = _cli("approve", job, "--ledger", review_run.ledger)
    assert p.returncode == 2 and "already approved by alice" in p.stderr and "Traceback" not in p.stderr

    rerun = review_run()  # the approved job re-submitted: nothing new, so it stays published
    assert rerun.status == "completed" and rerun.executed <= 1  # only the listing looks again
    assert pgstac_ids(pgstac_dsn, collection_id) == ids

    shown = json.loads(_cli("status", job, "--ledger", review_run.ledger, "--json").stdout)
    assert shown["review"]["state"] == "approved" and shown["review"]["by"] == "alice"
    assert shown["review"]["note"] == "colours checked"
    events = json.loads(_cli("events", job, "--ledger", review_run.ledger, "--json").stdout)
    assert [e["message"] for e in events if e["kind"] == "review_approved"] == ["approved by alice: colours checked"]


def test_reject_with_delete_outputs_loads_nothing_and_keeps_a_changed_file(review_run, az_fs, az_container,
                                                                           pgstac_dsn, collection_id):
    res = review_run()
    assert res.status == "awaiting_review", res.error
    job = res.job_id[:12]
    cogs = sorted(az_fs.glob(f"{az_container}/cogs/*.tif"))
    az_fs.pipe(cogs[0], b"someone else's file now")  # changed behind geoproc's back

    p = _cli("reject", job, "--reason", "wrong CRS", "--delete-outputs", "--by", "bob", "--ledger", review_run.ledger)
    assert p.returncode == 0, p.stderr
    az_fs.invalidate_cache()
    assert az_fs.glob(f"{az_container}/cogs/*.tif") == [cogs[0]]  # only the changed file is kept
    assert not az_fs.exists(f"{az_container}/catalog.review/{job}")
    assert not az_fs.exists(f"{az_container}/catalog/catalog.json")
    assert pgstac_ids(pgstac_dsn, collection_id) == []

    led = open_ledger(review_run.ledger, read_only=True)
    try:
        assert led.get_job(res.job_id).status == "rejected"
        decision = led.last_event(res.job_id, ("review_rejected",))
    finally:
        led.close()
    assert decision["data"]["by"] == "bob" and decision["data"]["reason"] == "wrong CRS"
    assert len(decision["data"]["removed"]) == 3
    assert list(decision["data"]["refused"]) == [f"az://{cogs[0]}"]

    again = review_run()  # a rejected job is a decision: re-submitting computes nothing
    assert again.status == "rejected" and again.cached and again.executed == 0
    for cmd in (["approve", job], ["reject", job, "--reason", "twice"]):
        p = _cli(*cmd, "--ledger", review_run.ledger)
        assert p.returncode == 2 and "already rejected by bob" in p.stderr, p.stderr


def test_decisions_on_jobs_not_awaiting_review_are_refused(dask_cluster, small_cogs, tmp_path):
    src = tmp_path / "src"
    small_cogs(1, directory=src)
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    res = geoproc.run("cog", cluster=dask_cluster, ledger=ledger, input=str(src), output=str(tmp_path / "out"),
                      target_crs="keep")
    assert res.status == "completed"
    p = _cli("approve", res.job_id[:12], "--ledger", ledger)
    assert p.returncode == 2 and "not run with publish=review" in p.stderr
    p = _cli("reject", res.job_id[:12], "--reason", "", "--ledger", ledger)
    assert p.returncode == 2 and "needs a reason" in p.stderr
    p = _cli("approve", "0123456789ab", "--ledger", ledger)
    assert p.returncode == 2 and "No job" in p.stderr
    led = open_ledger(ledger, read_only=True)
    try:
        assert led.get_job(res.job_id).status == "completed"
        assert led.last_event(res.job_id, ("review_approved", "review_rejected")) is None
    finally:
        led.close()


def test_processing_outputs_are_catalogued_and_held_for_review(dask_cluster, pgstac_dsn, tmp_path, az_fs, az_container,
                                                               collection_id):
    from kit.rasters import write_geotiff, write_scene

    scene = tmp_path / "scene.tif"
    write_scene(scene, size=(300, 200), nodata_corner=(20, 30))
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    common = dict(stac_catalog=f"az://{az_container}/catalog", stac_collection=collection_id, pgstac_dsn=pgstac_dsn,
                  cluster=dask_cluster, ledger=ledger)
    cog = geoproc.run("process", input=str(scene), expr="(b4 - b3) / (b4 + b3)", output=f"az://{az_container}/ndvi.tif",
                      publish="review", **common)
    assert cog.status == "awaiting_review", cog.error
    assert pgstac_ids(pgstac_dsn, collection_id) == []
    preview = json.loads(az_fs.cat(f"{az_container}/catalog.review/{cog.job_id[:12]}/{collection_id}/ndvi/ndvi.json"))
    assert preview["assets"]["data"]["href"] == f"az://{az_container}/ndvi.tif"
    geoproc.approve(cog.job_id, by="dana", ledger=ledger)
    bands = [str(write_geotiff(tmp_path / f"b{i}.tif", size=(64, 48), bands=1)) for i in (1, 2)]
    cube = geoproc.run("stack", inputs=bands, output=f"az://{az_container}/pair.zarr", format="zarr", **common)
    assert cube.status == "completed", cube.error  # publish=auto: catalogued at once
    assert pgstac_ids(pgstac_dsn, collection_id) == ["ndvi", "pair"]
    pair = json.loads(az_fs.cat(f"{az_container}/catalog/{collection_id}/pair/pair.json"))
    assert "cube:dimensions" in pair["properties"] and pair["collection"] == collection_id

    with pytest.raises(geoproc.GeoprocError, match="tiles output is not catalogued"):
        geoproc.run("process", input=str(scene), expr="b1", output=str(tmp_path / "tiles"), format="tiles", **common)
