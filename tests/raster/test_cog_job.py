"""The cog job end to end: geoproc.run on real Dask worker processes, local disk and Azurite.

The workers of ``dask_cluster`` start without Azure variables: Azure credentials reach them only
through the task context.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rio_cogeo.cogeo import cog_validate

import geoproc
from geoproc.errors import InvalidParams
from geoproc.ledger import open_ledger
from geoproc.storage import gdal_env, gdal_path, open_fs


def failed_codes(ledger_url, job_id):
    led = open_ledger(ledger_url)
    try:
        return {Path(t["key"]).name: (t["error_code"], t["attempts"]) for t in led.list_tasks(job_id, status="failed")}
    finally:
        led.close()


def files_under(d):
    return sorted(str(p.relative_to(d)) for p in Path(d).rglob("*") if p.is_file())


@pytest.mark.slow
def test_directory_with_bad_inputs_partial_success(raster_factory, tmp_path, dask_cluster, ledger_url):
    src = tmp_path / "in"
    raster_factory("dem.tif", directory=src, nodata=-9999, size=(768, 768))
    raster_factory("rgb.tif", directory=src / "sub", bands=3, dtype="uint8", size=(600, 600))
    (src / "zero.tif").write_bytes(b"")
    (src / "text.tif").write_text("not a raster\n" * 50)
    good = raster_factory("tmp.tif", directory=tmp_path, size=(512, 512), dtype="uint16")
    (src / "truncated.tif").write_bytes(good.read_bytes()[:4000])
    raster_factory("nocrs.tif", directory=src, crs=None, size=(64, 64))
    raster_factory("f64.tif", directory=src, dtype="float64", size=(64, 64))
    raster_factory("empty.tif", directory=src, nodata=0, data=np.zeros((1, 64, 64), "float32"), size=(64, 64))
    (src / "notes.txt").write_text("skipped by suffix")
    out = tmp_path / "out"

    res = geoproc.run("cog", input=str(src), output=str(out), strict=True, cluster=dask_cluster, ledger=ledger_url)

    assert res.status == "completed_with_errors"
    r = res.result
    assert r["listed"] == 8 and r["done"] == 2 and r["failed"] == 6 and r["skipped"]["suffix"] == 1
    assert r["bytes_out"] == sum(p.stat().st_size for p in out.rglob("*.tif"))
    assert files_under(out) == ["dem.tif", "sub/rgb.tif"]  # nothing partial for any failure
    codes = failed_codes(ledger_url, res.job_id)
    assert codes == {"zero.tif": ("CORRUPT_RASTER", 1), "text.tif": ("CORRUPT_RASTER", 1),
                     "truncated.tif": ("CORRUPT_RASTER", 1), "nocrs.tif": ("CRS_MISSING", 1),
                     "f64.tif": ("DTYPE_64BIT", 1), "empty.tif": ("RASTER_EMPTY", 1)}
    assert {f["input"].rsplit("/", 1)[1] for f in r["failed_inputs"]} == set(codes)
    for name in ("dem.tif", "sub/rgb.tif"):
        assert cog_validate(str(out / name), quiet=True)[0]


@pytest.mark.slow
def test_rerun_after_adding_a_file_converts_only_that_file(raster_factory, tmp_path, dask_cluster, ledger_url):
    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(2):
        raster_factory(f"r{i}.tif", directory=src, size=(256, 256), nodata=0)
    first = geoproc.run("cog", input=str(src), output=str(out), cluster=dask_cluster, ledger=ledger_url)
    assert first.status == "completed" and first.result["converted"] == 2
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    same = geoproc.run("cog", input=str(src), output=str(out), cluster=dask_cluster, ledger=ledger_url)
    assert same.executed == 1 and same.result == first.result  # only the listing ran again

    raster_factory("r2.tif", directory=src, size=(256, 256), nodata=0)
    # the listing runs again on every submission; only the new file gets validate + cog tasks
    again = geoproc.run("cog", input=str(src), output=str(out), cluster=dask_cluster, ledger=ledger_url)
    assert again.status == "completed" and again.job_id == first.job_id
    assert again.executed == 3 and again.result["done"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "r2.tif"} == stamps
    assert (out / "r2.tif").exists()
    # --force re-validates everything, and keeps outputs whose stamp (input etag + settings) matches
    forced = geoproc.run("cog", input=str(src), output=str(out), force=True, cluster=dask_cluster, ledger=ledger_url)
    assert forced.result["done"] == 3 and forced.result["converted"] == 0 and forced.result["reused"] == 3
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "r2.tif"} == stamps


def test_missing_input_fails_the_job_clearly(tmp_path, dask_cluster, ledger_url):
    res = geoproc.run("cog", input=str(tmp_path / "nope.tif"), output=str(tmp_path / "o"), cluster=dask_cluster,
                      ledger=ledger_url)
    assert res.status == "failed"
    assert failed_codes(ledger_url, res.job_id) == {"list": ("SOURCE_NOT_FOUND", 1)}
    assert not (tmp_path / "o").exists()


@pytest.mark.slow
def test_collection_mode_checks_homogeneity_first(raster_factory, tmp_path, dask_cluster, ledger_url):
    good, bad = tmp_path / "good", tmp_path / "bad"
    raster_factory("a.tif", directory=good, size=(256, 256), bounds=(500000, 5000000, 502560, 5002560))
    raster_factory("b.tif", directory=good, size=(256, 256), bounds=(502560, 5000000, 505120, 5002560))
    res = geoproc.run("cog", input=str(good), output=str(tmp_path / "og"), collection=True, cluster=dask_cluster,
                      ledger=ledger_url)
    assert res.status == "completed" and res.result["collection"]["homogeneous"]
    assert res.result["collection"]["crs"] == "EPSG:32633" and res.result["done"] == 2
    raster_factory("a.tif", directory=bad, size=(256, 256))
    raster_factory("b.tif", directory=bad, size=(256, 256), dtype="int16")
    raster_factory("c.tif", directory=bad, size=(64, 64))  # 4x coarser
    res = geoproc.run("cog", input=str(bad), output=str(tmp_path / "ob"), collection=True, cluster=dask_cluster,
                      ledger=ledger_url)
    assert res.status == "failed"
    assert failed_codes(ledger_url, res.job_id) == {"list": ("COLLECTION_NOT_HOMOGENEOUS", 1)}
    led = open_ledger(ledger_url)
    msg = led.list_tasks(res.job_id, status="failed")[0]["error_message"]
    led.close()
    assert "b.tif: dtype int16 differs from float32" in msg and "c.tif: resolution" in msg
    assert not (tmp_path / "ob").exists()


# --- Azurite --------------------------------------------------------------------------------------------


@pytest.mark.services
@pytest.mark.slow
def test_container_job_on_azurite(azurite, az_container, az_options, raster_factory, tmp_path, dask_cluster,
                                  ledger_url):
    fs, _ = open_fs(f"az://{az_container}", az_options)
    dem = raster_factory("dem.tif", nodata=-9999, size=(700, 700))
    rgb = raster_factory("rgb.tif", bands=3, dtype="uint8", size=(300, 300))
    fs.put_file(str(dem), f"{az_container}/bronze/2025/dem.tif")
    fs.put_file(str(rgb), f"{az_container}/bronze/2025/deep/rgb.tif")
    fs.pipe_file(f"{az_container}/bronze/2025/broken.tif", b"II*\x00garbage")

    res = geoproc.run("cog", input=f"az://{az_container}/bronze/2025", output=f"az://{az_container}/silver",
                      tier="archive", cluster=dask_cluster, ledger=ledger_url)

    assert res.status == "completed_with_errors" and res.result["done"] == 2
    assert failed_codes(ledger_url, res.job_id) == {"broken.tif": ("CORRUPT_RASTER", 1)}
    assert sorted(fs.find(f"{az_container}/silver")) == [f"{az_container}/silver/deep/rgb.tif",
                                                          f"{az_container}/silver/dem.tif"]
    led = open_ledger(ledger_url)
    results = [t["result"] for t in led.list_tasks(res.job_id, stage=2, status="completed")]
    led.close()
    for r in results:
        blob = fs.cat_file(r["output"].split("://", 1)[1])
        assert len(blob) == r["size"] and hashlib.sha256(blob).hexdigest() == r["sha256"]
        assert r["output"].startswith(f"az://{az_container}/silver/") and r["compression"] == "zstd"
        with rasterio.Env(**gdal_env(r["output"], az_options)):
            assert cog_validate(gdal_path(r["output"]), quiet=True)[0]
    key = azurite.split("AccountKey=")[1].split(";")[0]
    ledger_bytes = Path(ledger_url.split("sqlite:///", 1)[1]).read_bytes()
    assert key.encode() not in ledger_bytes and b"AccountKey" not in ledger_bytes


@pytest.mark.services
def test_missing_container_on_azurite(azurite, tmp_path, dask_cluster, ledger_url):
    res = geoproc.run("cog", input="az://no-such-container-0/x", output="az://no-such-container-0/y",
                      cluster=dask_cluster, ledger=ledger_url)
    assert res.status == "failed"
    assert failed_codes(ledger_url, res.job_id) == {"list": ("SOURCE_NOT_FOUND", 1)}


def test_unreachable_storage_account(tmp_path, dask_cluster, ledger_url, monkeypatch):
    dead = ("DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey=" + "A" * 86 + "==;"
            "BlobEndpoint=http://127.0.0.1:1/devstoreaccount1;")
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", dead)
    res = geoproc.run("cog", input="az://somewhere/in", output="az://somewhere/out", cluster=dask_cluster,
                      ledger=ledger_url)
    assert res.status == "failed"
    (code, attempts), = failed_codes(ledger_url, res.job_id).values()
    assert code == "STORAGE_UNREACHABLE" and attempts == 3
    assert os.environ["AZURE_STORAGE_CONNECTION_STRING"] == dead


def test_quicklooks_are_real_pictures_of_the_data(tmp_path, dask_cluster, ledger_url):
    """Each quicklook PNG is read back and compared with the COG it pictures."""
    import numpy as np
    import rasterio

    from geoproc.raster.samples import write_samples

    write_samples(tmp_path / "in")
    res = geoproc.run("cog", input=str(tmp_path / "in"), output=str(tmp_path / "out"), quicklook=True,
                      cluster=dask_cluster, ledger=ledger_url)
    assert res.status == "completed"
    from geoproc.ledger import open_ledger

    cogs = [t["result"] for t in open_ledger(ledger_url).list_tasks(res.job_id, limit=None)
            if t["stage_name"] == "cog"]
    assert len(cogs) == 3
    for r in cogs:
        png = r["quicklook"]
        assert png == r["output"][:-4] + ".png"
        with rasterio.open(png) as q, rasterio.open(r["output"]) as c:
            assert q.driver == "PNG" and q.count == 4 and max(q.width, q.height) == 256
            rgba = q.read()
            from rasterio.enums import Resampling

            how = Resampling.nearest if r["raster_type"] == "categorical" else Resampling.average
            full = c.read(1, out_shape=(q.height, q.width), masked=True, resampling=how)
            # transparent where the COG has no data, opaque elsewhere (edges may differ by resampling)
            assert np.mean((rgba[3] == 0) == np.ma.getmaskarray(full)) > 0.99
            assert rgba[:3][:, rgba[3] > 0].std() > 5  # a picture, not a flat fill
            if r["raster_type"] == "rgb":
                rgb = c.read([1, 2, 3], out_shape=(3, q.height, q.width))
                assert np.abs(rgba[:3].astype(int) - rgb.astype(int)).mean() < 8
            elif r["raster_type"] == "dem":  # brighter where higher
                grey = rgba[0].astype(float)[~np.ma.getmaskarray(full)]
                assert np.corrcoef(grey, full.compressed())[0, 1] > 0.9


def test_a_changed_input_is_converted_again_alone(raster_factory, tmp_path, dask_cluster, ledger_url):
    """A file rewritten after its conversion gets new validate and cog tasks; the others are skipped."""
    import numpy as np
    import rasterio

    src, out = tmp_path / "in", tmp_path / "out"
    for i in range(3):
        raster_factory(f"r{i}.tif", directory=src, size=(256, 256), nodata=0)
    first = geoproc.run("cog", input=str(src), output=str(out), target_crs="keep", cluster=dask_cluster,
                        ledger=ledger_url)
    assert first.status == "completed"
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    raster_factory("r1.tif", directory=src, size=(256, 256), nodata=0,
                   data=np.full((1, 256, 256), 7, np.float32))  # same name, new content
    again = geoproc.run("cog", input=str(src), output=str(out), target_crs="keep", cluster=dask_cluster,
                        ledger=ledger_url)
    assert again.status == "completed" and again.executed == 3  # listing + validate + cog of r1 only
    assert {n: t for n, t in stamps.items() if n != "r1.tif"} == {
        p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name != "r1.tif"}
    with rasterio.open(out / "r1.tif") as ds:
        assert float(ds.read(1).max()) == 7.0


def test_sizes_take_units_and_name_the_same_job():
    jt = geoproc.get_job("cog")
    with_units = jt.validate({"input": "/in", "output": "/out", "min_size": "1KiB", "max_size": "2MB",
                              "large_threshold": "2GB"})
    in_bytes = jt.validate({"input": "/in", "output": "/out", "min_size": 1024, "max_size": 2_000_000})
    assert (with_units.min_size, with_units.max_size, with_units.large_threshold) == (1024, 2_000_000, 2_000_000_000)
    stored = jt.normalized(with_units)
    assert (stored["min_size"], stored["max_size"], stored["large_threshold"]) == (1024, 2_000_000, 2_000_000_000)
    assert jt.job_id(with_units) == jt.job_id(in_bytes)  # 2 GB is the default threshold
    with pytest.raises(InvalidParams, match="max_size .* is below min_size"):
        jt.validate({"input": "/in", "output": "/out", "min_size": "2MB", "max_size": "1MB"})


def test_cog_result_is_typed_and_serialises_to_its_json(raster_factory, convert_one):
    from geoproc.errors import TaskWarning
    from geoproc.jobs.cog_convert import CogResult

    src = raster_factory("f64.tif", dtype="float64", size=(64, 64), nodata=-1)
    v, r = convert_one(src, tier="visualization", quicklook=True)
    typed = CogResult.model_validate(r)
    assert typed.model_dump(mode="json") == r and list(typed.model_dump(mode="json")) == list(r)
    assert all(isinstance(w, TaskWarning) for w in typed.warnings)
    assert [w.code for w in typed.warnings] == ["DTYPE_64BIT", "TIER_FALLBACK"]
    assert r["warnings"] == [str(w) for w in typed.warnings] == v["warnings"]
    assert all(w.startswith(("DTYPE_64BIT: ", "TIER_FALLBACK: ")) for w in r["warnings"])
    assert r["quicklook"].endswith("f64.png")
    _, plain = convert_one(src, output=src.parent / "plain")
    assert "quicklook" not in plain  # the one optional key is left out, not null


def test_colliding_and_self_overwriting_outputs_fail_with_their_own_remedy(tmp_path):
    from geoproc.errors import OutputCollision, UnsafePath
    from geoproc.jobs import cog
    from geoproc.model import StageOutput, TaskContext

    src = tmp_path / "in"
    files = [{"url": str(src / n), "rel": n, "size": 10, "etag": "e"} for n in ("a.tif", "a.tiff")]
    p = cog.Params(input=str(src), output=str(tmp_path / "out"))
    first, second = cog.plan_validate(p, StageOutput(None, lambda: iter([{"files": files}])))
    assert first.params["problem"] is None
    ctx = TaskContext("0" * 64, "cog", "validate", "t", second.key, 1)
    with pytest.raises(OutputCollision, match="already maps to") as e:
        cog.validate(second.params, ctx)
    assert e.value.code == "OUTPUT_COLLISION" and e.value.remediation == OutputCollision.remediation
    (own,) = cog.plan_validate(cog.Params(input=str(src), output=str(src)),
                               StageOutput(None, lambda: iter([{"files": files[:1]}])))
    with pytest.raises(UnsafePath, match="overwrite its own input") as e:
        cog.validate(own.params, ctx)
    assert e.value.code == "UNSAFE_PATH"
