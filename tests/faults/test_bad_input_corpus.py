"""A corpus of bad inputs and bad requests: each gets a clear message and the right exit code.

Files that cannot be converted fail their own task (one attempt, a code, a remediation) while the
others complete; requests that cannot run are refused before anything is recorded; broken storage
fails the job readably. In every case the ledger is left consistent: the job is terminal, no task is
left pending, no lease is held, and no partial output exists.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
import pytest
import rasterio
from rasterio.transform import Affine, from_origin

from geoproc.jobs.cog import output_url
from geoproc.ledger import open_ledger

USER_ERROR, FAILED, PARTIAL, ENVIRONMENT = 2, 1, 3, 5


def geoproc(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "geoproc.cli", *args], capture_output=True, text=True,
                          timeout=300, env={**os.environ, "COLUMNS": "250", **(env or {})})


def no_traceback(p: subprocess.CompletedProcess) -> None:
    assert "Traceback" not in p.stdout + p.stderr, p.stderr


def consistent(url: str, job_id: str) -> None:
    led = open_ledger(url)
    job = led.get_job(job_id)
    assert job.terminal and job.lease_owner is None
    counts = led.counts(job_id)
    assert not any(c.get("pending") for c in counts.values()), counts


@pytest.fixture
def corpus(tmp_path, raster_factory):
    """One good raster and every kind of bad file, in one directory."""
    d = tmp_path / "in"
    d.mkdir()
    good = raster_factory("good.tif", directory=d, size=(256, 256), nodata=-1)
    (d / "zero_bytes.tif").write_bytes(b"")
    (d / "text.tif").write_text("this is not a raster\n")
    (d / "random.tif").write_bytes(np.random.default_rng(1).bytes(50_000))
    data = good.read_bytes()
    (d / "truncated.tif").write_bytes(data[: len(data) // 3])
    from PIL import Image

    Image.fromarray(np.full((64, 64, 3), 90, np.uint8)).save(d / "png_named.tif", format="PNG")  # wrong format
    raster_factory("no_crs.tif", directory=d, size=(128, 128), crs=None)
    raster_factory("all_nodata.tif", directory=d, size=(128, 128), nodata=0,
                   data=np.zeros((1, 128, 128), np.float32))
    with rasterio.open(d / "huge.tif", "w", driver="GTiff", width=150_000, height=150_000, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=from_origin(500000, 5000000, 1, 1), tiled=True,
                       SPARSE_OK=True) as dst:  # a small file that declares 22.5 Gpx
        dst.write(np.ones((1, 16, 16), np.uint8), window=((0, 16), (0, 16)))
    return d


EXPECTED = {  # file -> error code of its failed task
    "zero_bytes.tif": "CORRUPT_RASTER",
    "text.tif": "CORRUPT_RASTER",
    "random.tif": "CORRUPT_RASTER",
    "truncated.tif": "CORRUPT_RASTER",
    "png_named.tif": "CRS_MISSING",
    "no_crs.tif": "CRS_MISSING",
    "all_nodata.tif": "RASTER_EMPTY",
    "huge.tif": "RASTER_TOO_LARGE",
}


def test_bad_files_fail_their_own_task(corpus, tmp_path, dask_cluster):
    url = f"sqlite:///{tmp_path}/ledger.db"
    out = tmp_path / "out"
    p = geoproc("cog", str(corpus), str(out), "--cluster", dask_cluster, "--ledger", url, "--json")
    no_traceback(p)
    assert p.returncode == PARTIAL, p.stderr
    res = json.loads(p.stdout)
    failed = {os.path.basename(f["key"]): f for f in res["result"]["failed_tasks"]}
    assert {k: v["code"] for k, v in failed.items()} == EXPECTED
    assert all(f["remediation"] and f["message"] for f in failed.values())
    led = open_ledger(url)
    for t in led.list_tasks(res["job_id"], status="failed", limit=None):
        assert t["attempts"] == 1 and t["error_kind"] == "invalid"  # quarantined, never retried
    assert sorted(p.name for p in out.rglob("*") if p.is_file()) == ["good.tif"]  # no partial outputs
    consistent(url, res["job_id"])


def test_rules_that_need_a_setting(tmp_path, raster_factory, dask_cluster):
    url = f"sqlite:///{tmp_path}/ledger.db"
    rotated = raster_factory("rotated.tif", size=(128, 128))
    with rasterio.open(rotated, "r+") as ds:
        ds.transform = Affine.rotation(20) * Affine.translation(500000, 5000000) * Affine.scale(10, -10)
    f64 = raster_factory("f64.tif", size=(128, 128), dtype="float64")
    cases = [
        ([str(rotated), str(tmp_path / "o1.tif"), "--target-crs", "keep"], "TRANSFORM_ROTATED"),
        ([str(f64), str(tmp_path / "o2.tif"), "--set", "strict=true"], "DTYPE_64BIT"),
        ([str(tmp_path / "missing.tif"), str(tmp_path / "o3.tif")], "SOURCE_NOT_FOUND"),
    ]
    for args, code in cases:
        p = geoproc("cog", *args, "--cluster", dask_cluster, "--ledger", url, "--json")
        no_traceback(p)
        assert p.returncode == FAILED, (args, p.stderr)
        res = json.loads(p.stdout)
        assert code in {f["code"] for f in res["result"]["failed_tasks"]}, res["result"]["failed_tasks"]
        consistent(url, res["job_id"])
    assert not list(tmp_path.glob("o*.tif"))


def test_bad_requests_are_refused_before_anything_runs(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    bad_spec = tmp_path / "bad.toml"
    bad_spec.write_text("job = cog\n[params\n")
    open_ledger(url).close()  # an empty ledger: `status` needs one to look in
    cases = [
        (["run", "cgo"], "Unknown job 'cgo'; available: cog"),
        (["cog", "in", "out", "--set", "jpeg_quality=500"], "jpeg_quality=500"),
        (["cog", "in", "out", "--target-crs", "EPSG:99999"], "target_crs"),
        (["run", "cog", "--set", "output=x"], "input"),
        (["cog", "in", "out", "--set", "colour=red"], "colour: unknown parameter"),
        (["cog", "in", "out", "--set", "stac_collection=../../etc"], "stac_collection"),
        (["cog", "in", "out", "--set", "tier=lossy"], "tier='lossy'"),
        (["run", str(bad_spec)], "is not valid TOML"),
        (["status", "feedbeef00"], "No job 'feedbeef00'"),
    ]
    for args, expected in cases:
        p = geoproc(*args, "--ledger", url) if args[0] != "status" else geoproc(*args, "--ledger", url)
        no_traceback(p)
        assert p.returncode == USER_ERROR, (args, p.returncode, p.stderr)
        assert expected in p.stderr, (args, p.stderr)
    assert open_ledger(url).list_jobs() == []  # nothing was recorded


def test_broken_storage_and_ledger(tmp_path, azurite, dask_cluster):
    url = f"sqlite:///{tmp_path}/ledger.db"
    wrong_key = azurite.replace("AccountKey=Eby8", "AccountKey=AAAA")
    unreachable = "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" \
                  "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==;" \
                  "BlobEndpoint=http://127.0.0.1:9/devstoreaccount1;"
    cases = [
        (wrong_key, "az://corpus-denied/in/", "STORAGE_ACCESS_DENIED"),
        (unreachable, "az://corpus-unreachable/in/", "STORAGE_UNREACHABLE"),
        (azurite, "az://no-such-container-here/in/", "SOURCE_NOT_FOUND"),
    ]
    for cs, src, code in cases:
        p = geoproc("cog", src, "az://corpus-out/x/", "--cluster", dask_cluster, "--ledger", url, "--json",
                    env={"AZURE_STORAGE_CONNECTION_STRING": cs})
        no_traceback(p)
        assert p.returncode == FAILED, (code, p.stderr)
        res = json.loads(p.stdout)
        assert [f["code"] for f in res["result"]["failed_tasks"]] == [code]
        assert "AAAA" not in p.stdout + p.stderr and "Eby8" not in p.stdout + p.stderr
        consistent(url, res["job_id"])
    p = geoproc("cog", "in", "out", "--ledger", "postgresql://nobody@127.0.0.1:9/none")
    no_traceback(p)
    assert p.returncode == ENVIRONMENT and "Cannot open the ledger" in p.stderr


def test_output_names_cannot_leave_their_prefix():
    """Names come from listings; one that climbs out of the output prefix is refused (UNSAFE_PATH)."""
    from geoproc.jobs.cog import Params

    p = Params(input="az://c/in", output="az://c/out")
    assert output_url(p, "a/b.tif", single=False) == "az://c/out/a/b.tif"
    for rel in ("../escape.tif", "a/../../escape.tif", "/etc/passwd.tif"):
        with pytest.raises(ValueError):
            output_url(p, rel, single=False)
