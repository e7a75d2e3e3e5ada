"""geoproc.open on STAC: the static catalog and the pgstac items that geoproc's own cog job wrote."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
import rasterio
from dask.base import tokenize
from kit.rasters import write_geotiff

import geoproc
from geoproc.errors import InvalidInput


@pytest.fixture
def scenes(tmp_path):
    """Three 2-band uint16 scenes in UTM 33N side by side, with dates in their names."""
    paths = []
    for i in range(3):
        h, w = 256, 256
        yy, xx = np.mgrid[0:h, 0:w]
        data = np.stack([(xx + yy + 50 * i + 7 * b) % 3000 + 1 for b in range(2)]).astype("uint16")
        x0 = 500000 + i * 2560
        paths.append(write_geotiff(tmp_path / "src" / f"scene_{i}_2024050{i + 1}.tif", size=(w, h), dtype="uint16",
                                   nodata=0, data=data, bounds=(x0, 5000000, x0 + 2560, 5002560)))
    return paths


def _cogs_with_stac(tmp_path, dask_cluster, **stac):
    res = geoproc.run("cog", input=str(tmp_path / "src"), output=str(tmp_path / "cogs"), target_crs="keep",
                      stac_catalog=str(tmp_path / "catalog"), cluster=dask_cluster,
                      ledger=f"sqlite:///{tmp_path}/ledger.db", **stac)
    assert res.status == "completed", res.error
    return res


def test_a_static_catalog_opens_as_a_time_stack(scenes, tmp_path, dask_cluster):
    _cogs_with_stac(tmp_path, dask_cluster)
    cube = geoproc.open(str(tmp_path / "catalog" / "catalog.json"), crs="EPSG:32633", resolution=10,
                        bounds=(500000, 5000000, 507680, 5002560))
    assert cube.dims == ("time", "band", "y", "x") and cube.shape == (3, 2, 256, 768)
    assert [str(t)[:10] for t in cube.time.values] == ["2024-05-01", "2024-05-02", "2024-05-03"]
    with rasterio.open(scenes[1]) as src:
        want = src.read()
    np.testing.assert_array_equal(cube.isel(time=1).values[:, :, 256:512], want)
    again = geoproc.open(str(tmp_path / "catalog" / "catalog.json"), crs="EPSG:32633", resolution=10,
                         bounds=(500000, 5000000, 507680, 5002560))
    assert tokenize(again) == tokenize(cube)


def test_a_pgstac_search_opens_the_matching_items(scenes, tmp_path, dask_cluster, pgstac_dsn):
    collection = f"open-{uuid.uuid4().hex[:8]}"
    _cogs_with_stac(tmp_path, dask_cluster, stac_collection=collection, pgstac_dsn=pgstac_dsn)
    cube = geoproc.open(pgstac_dsn, collections=[collection], datetime="2024-05-02T00:00:00Z/2024-05-03T23:59:59Z",
                        crs="EPSG:32633", resolution=10, bounds=(500000, 5000000, 507680, 5002560))
    assert cube.sizes["time"] == 2 and cube.sizes["band"] == 2
    with rasterio.open(scenes[2]) as src:
        want = src.read()
    np.testing.assert_array_equal(cube.isel(time=1).values[:, :, 512:768], want)
    with pytest.raises(InvalidInput) as e:
        geoproc.open(pgstac_dsn, collections=[collection], datetime="1999-01-01T00:00:00Z/1999-12-31T00:00:00Z",
                     crs="EPSG:32633", resolution=10)
    assert e.value.code == "NOTHING_TO_OPEN"


def test_a_mosaic_of_a_static_catalog_and_of_a_pgstac_search(scenes, tmp_path, dask_cluster, pgstac_dsn,
                                                            monkeypatch):
    collection = f"mosaic-{uuid.uuid4().hex[:8]}"
    _cogs_with_stac(tmp_path, dask_cluster, stac_collection=collection, pgstac_dsn=pgstac_dsn)
    want = []
    for path in scenes:
        with rasterio.open(path) as src:
            want.append(src.read())
    want = np.concatenate(want, axis=2)  # three scenes side by side
    out = tmp_path / "from_catalog.tif"
    res = geoproc.run("mosaic", input=str(tmp_path / "catalog" / "catalog.json"), output=str(out),
                      cluster=dask_cluster, ledger=f"sqlite:///{tmp_path}/m.db")
    assert res.status == "completed", res.error
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), want)
    monkeypatch.setenv("GEOPROC_PGSTAC_DSN", pgstac_dsn)
    out = tmp_path / "from_search.tif"
    res = geoproc.run("mosaic", stac_search={"collections": [collection], "datetime": "2024-05-02T00:00:00Z/.."},
                      output=str(out), cluster=dask_cluster, ledger=f"sqlite:///{tmp_path}/m.db")
    assert res.status == "completed", res.error
    assert res.result["inputs"] == 2 and pgstac_dsn not in str(res.params)
    with rasterio.open(out) as ds:
        np.testing.assert_array_equal(ds.read(), want[:, :, 256:])
