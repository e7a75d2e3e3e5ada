"""geoproc unpublish: a job's STAC items out of pgstac and the static catalog, its files off storage.

Real worker processes; outputs and the static catalog on Azurite; items in a real pgstac. Only files
whose sha256 still matches the ledger go; an interrupted unpublish finishes when run again.
"""

from __future__ import annotations

import json
import signal
import subprocess

import pytest
from kit.drivers import geoproc_cmd
from kit.polling import wait_for
from kit.stac import pgstac_ids
from shapely.geometry import box
from shapely.ops import unary_union

import geoproc
from geoproc.ledger import open_ledger
from geoproc.stac import pgstac as pg


def _cli(*args):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=300)


def _pgstac_collection(dsn, collection):
    with pg.connect(dsn) as db, db.connect().cursor() as cur:
        cur.execute("SELECT content FROM collections WHERE id = %s", [collection])
        return cur.fetchone()[0]


@pytest.fixture
def publish(dask_cluster, pgstac_dsn, small_cogs, tmp_path, az_container, collection_id):
    """``publish(name, first, n)``: the cog job on files first..first+n-1 of a shared series, into
    ``az://<container>/<name>`` and one collection (static catalog on Azurite, and pgstac)."""
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    every = small_cogs(160, directory=tmp_path / "all")

    def run(name, first, n):
        src = tmp_path / name
        src.mkdir()
        for p in every[first:first + n]:
            (src / p.name).write_bytes(p.read_bytes())
        res = geoproc.run("cog", cluster=dask_cluster, ledger=ledger, input=str(src),
                          output=f"az://{az_container}/{name}", stac_catalog=f"az://{az_container}/catalog",
                          stac_collection=collection_id, pgstac_dsn=pgstac_dsn, target_crs="keep",
                          stac_datetime="2024-03-01T00:00:00Z")
        assert res.status == "completed", res.error
        return res

    run.ledger = ledger
    return run


def _item_ids(ledger, job_id):
    led = open_ledger(ledger, read_only=True)
    try:
        return sorted(r["id"] for r in led.stream_results(job_id, 3))
    finally:
        led.close()


def test_unpublish_removes_exactly_the_jobs_items_and_outputs(publish, az_fs, az_container, pgstac_dsn,
                                                              collection_id):
    a, b = publish("a", 0, 3), publish("b", 10, 2)
    ids_a, ids_b = _item_ids(publish.ledger, a.job_id), _item_ids(publish.ledger, b.job_id)
    assert pgstac_ids(pgstac_dsn, collection_id) == sorted(ids_a + ids_b)
    cogs_a = sorted(az_fs.glob(f"{az_container}/a/*.tif"))
    az_fs.pipe(cogs_a[0], b"edited by hand since")  # changed behind geoproc's back

    plan = json.loads(_cli("unpublish", a.job_id[:12], "--ledger", publish.ledger, "--json").stdout)
    assert plan["dry_run"] and sorted(plan["jobs"][0]["items"]) == ids_a and len(plan["jobs"][0]["outputs"]) == 3
    assert len(az_fs.glob(f"{az_container}/a/*.tif")) == 3 and pgstac_ids(pgstac_dsn, collection_id) == sorted(ids_a + ids_b)

    p = _cli("unpublish", a.job_id[:12], "--yes", "--by", "carol", "--ledger", publish.ledger)
    assert p.returncode == 3, p.stderr  # one file refused
    assert "kept" in p.stderr and cogs_a[0].rsplit("/", 1)[1] in p.stderr
    az_fs.invalidate_cache()
    assert az_fs.glob(f"{az_container}/a/*.tif") == [cogs_a[0]]  # the changed file is kept
    assert len(az_fs.glob(f"{az_container}/b/*.tif")) == 2
    assert pgstac_ids(pgstac_dsn, collection_id) == ids_b

    # both catalogs' collections now describe b's items only
    static = json.loads(az_fs.cat(f"{az_container}/catalog/{collection_id}/collection.json"))
    assert sorted(lk["href"].split("/")[1] for lk in static["links"] if lk["rel"] == "item") == ids_b
    items_b = [json.loads(az_fs.cat(f"{az_container}/catalog/{collection_id}/{i}/{i}.json")) for i in ids_b]
    want = unary_union([box(*it["bbox"]) for it in items_b]).bounds
    assert static["extent"]["spatial"]["bbox"][0] == pytest.approx(list(want))
    assert _pgstac_collection(pgstac_dsn, collection_id)["extent"]["spatial"]["bbox"][0] == pytest.approx(list(want))

    led = open_ledger(publish.ledger, read_only=True)
    try:
        assert led.get_job(a.job_id).status == "unpublished" and led.get_job(b.job_id).status == "completed"
        kinds = [e["kind"] for e in led.events(a.job_id)]
    finally:
        led.close()
    assert kinds[-5:] == ["unpublish_started", "unpublish_pgstac", "unpublish_static", "unpublish_outputs",
                          "unpublished"]
    p = _cli("unpublish", a.job_id[:12], "--yes", "--ledger", publish.ledger)
    assert p.returncode == 2 and "already unpublished by carol" in p.stderr


def test_unpublish_one_item_then_the_collection(publish, az_fs, az_container, pgstac_dsn, collection_id):
    a, b = publish("a", 0, 2), publish("b", 20, 2)
    ids_a, ids_b = _item_ids(publish.ledger, a.job_id), _item_ids(publish.ledger, b.job_id)
    one = ids_a[0]
    p = _cli("unpublish", "--collection", collection_id, "--item", one, "--yes", "--ledger", publish.ledger)
    assert p.returncode == 0, p.stderr
    assert pgstac_ids(pgstac_dsn, collection_id) == sorted(ids_a[1:] + ids_b)
    az_fs.invalidate_cache()
    assert len(az_fs.glob(f"{az_container}/a/*.tif")) == 1 and not az_fs.exists(f"{az_container}/a/{one}.tif")
    led = open_ledger(publish.ledger, read_only=True)
    try:
        assert led.get_job(a.job_id).status == "completed"  # one item out; the job stands
    finally:
        led.close()

    res = geoproc.unpublish(collection=collection_id, yes=True, ledger=publish.ledger)
    assert sorted(j["job_id"] for j in res["jobs"]) == sorted([a.job_id, b.job_id])
    assert pgstac_ids(pgstac_dsn, collection_id) == []
    az_fs.invalidate_cache()
    assert az_fs.glob(f"{az_container}/a/*.tif") == [] and az_fs.glob(f"{az_container}/b/*.tif") == []
    static = json.loads(az_fs.cat(f"{az_container}/catalog/{collection_id}/collection.json"))
    assert not [lk for lk in static["links"] if lk["rel"] == "item"]


def test_an_unpublish_killed_midway_finishes_when_run_again(publish, az_fs, az_container, pgstac_dsn,
                                                           collection_id):
    job = publish("many", 0, 160)  # enough files that the kill lands midway on a loaded machine
    args = ["unpublish", job.job_id[:12], "--yes", "--ledger", publish.ledger]
    proc = subprocess.Popen(geoproc_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        def some_gone():
            az_fs.invalidate_cache()
            return proc.poll() is not None or len(az_fs.glob(f"{az_container}/many/*.tif")) < 156
        wait_for(some_gone, timeout=120, interval=0.01, what="the unpublish to start removing files")
        assert proc.poll() is None, "the unpublish ended before it could be interrupted"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    az_fs.invalidate_cache()
    left = len(az_fs.glob(f"{az_container}/many/*.tif"))
    assert 0 < left < 160
    led = open_ledger(publish.ledger, read_only=True)
    try:
        assert led.get_job(job.job_id).status == "completed"  # not marked done: it was interrupted
    finally:
        led.close()

    p = _cli(*args)
    assert p.returncode == 0, p.stderr
    az_fs.invalidate_cache()
    assert az_fs.glob(f"{az_container}/many/*.tif") == []
    assert pgstac_ids(pgstac_dsn, collection_id) == []
    led = open_ledger(publish.ledger, read_only=True)
    try:
        assert led.get_job(job.job_id).status == "unpublished"
        outputs = [e for e in led.events(job.job_id) if e["kind"] == "unpublish_outputs"]
    finally:
        led.close()
    assert len(outputs[-1]["data"]["removed"]) == left and len(outputs[-1]["data"]["gone"]) == 160 - left


def test_unpublish_refusals(dask_cluster, small_cogs, tmp_path):
    src = tmp_path / "src"
    small_cogs(2, directory=src)
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    res = geoproc.run("cog", cluster=dask_cluster, ledger=ledger, input=str(src), output=str(tmp_path / "out"),
                      target_crs="keep")
    assert res.status == "completed"
    for args, says in [(["0123456789ab"], "No job"), (["--collection", "nowhere"], "published the collection"),
                       ([], "needs a job id"), ([res.job_id[:12], "--item", "x"], "--item needs --collection")]:
        p = _cli("unpublish", *args, "--yes", "--ledger", ledger)
        assert p.returncode == 2 and says in p.stderr and "Traceback" not in p.stderr, (args, p.stderr)

    # a ledger that recorded no checksums (written by hand, or by an older tool) proves nothing
    import sqlalchemy as sa

    engine = sa.create_engine(ledger)
    with engine.begin() as c:
        for task_id, result in c.execute(sa.text("SELECT task_id, result FROM geoproc_tasks WHERE stage_name='cog'")).all():
            data = json.loads(result) if isinstance(result, str) else result
            data["sha256"] = None
            c.execute(sa.text("UPDATE geoproc_tasks SET result = :r WHERE task_id = :t"),
                      {"r": json.dumps(data), "t": task_id})
    engine.dispose()
    p = _cli("unpublish", res.job_id[:12], "--yes", "--ledger", ledger)
    assert p.returncode == 2 and "no checksums" in p.stderr, p.stderr
    assert len(list((tmp_path / "out").glob("*.tif"))) == 2

    held = geoproc.run("cog", cluster=dask_cluster, ledger=ledger, input=str(src), output=str(tmp_path / "held"),
                       target_crs="keep", stac_catalog=str(tmp_path / "cat"), publish="review")
    assert held.status == "awaiting_review"
    p = _cli("unpublish", held.job_id[:12], "--yes", "--ledger", ledger)
    assert p.returncode == 2 and "reject it instead" in p.stderr
