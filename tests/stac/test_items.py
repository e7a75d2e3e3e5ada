"""Items and collections: pure functions over raster records, validated and read back."""

from __future__ import annotations

import hashlib

import pytest
from kit.stac import validate_collection, validate_item
from shapely.geometry import box, shape

from geoproc.errors import CrsMissing, InvalidInput
from geoproc.raster.header import source_datetime
from geoproc.stac import CollectionStats, create_collection, create_item, item_id, raster_record
from geoproc.stac.items import choose_datetime, multihash_sha256

SHA = hashlib.sha256(b"cog bytes").hexdigest()


def cog_result(**over):
    """A result dict with exactly the keys a ``cog`` task returns."""
    r = {
        "input": "az://bronze/2025/dem_a.tif", "output": "az://silver/2025/dem_a.tif", "size": 123456,
        "sha256": SHA, "crs": "EPSG:32633", "bounds": [500000.0, 5000000.0, 510240.0, 5010240.0],
        "bbox_wgs84": [15.0, 45.14, 15.13, 45.23], "shape": [1024, 1024],
        "transform": [10.0, 0.0, 500000.0, 0.0, -10.0, 5010240.0], "count": 1, "dtype": "float32",
        "nodata": -9999.0, "raster_type": "dem", "tier": "analysis", "compression": "DEFLATE",
        "overviews": [2, 4, 8], "band_stats": [{"minimum": 1.0, "maximum": 250.0, "mean": 125.5,
                                               "stddev": 40.1, "valid_percent": 99.5}],
        "datetime": "2024-03-01T10:00:00Z", "warnings": [],
    }
    r.update(over)
    return r


def test_item_from_cog_result_has_every_extension_field():
    item = create_item(cog_result(), collection="dems", job_id="f" * 64, job_type="cog")
    validate_item(item)
    p, a = item["properties"], item["assets"]["data"]
    assert item["id"] == "dem_a" and item["collection"] == "dems"
    assert p["datetime"] == "2024-03-01T10:00:00Z" and p["geoproc:datetime_source"] == "metadata"
    assert p["proj:code"] == "EPSG:32633" and p["proj:shape"] == [1024, 1024]
    assert p["proj:transform"] == [10.0, 0.0, 500000.0, 0.0, -10.0, 5010240.0]
    assert p["proj:bbox"] == [500000.0, 5000000.0, 510240.0, 5010240.0]
    assert p["processing:software"]["geoproc"] and "f" * 64 in p["processing:lineage"]
    assert "az://bronze/2025/dem_a.tif" in p["processing:lineage"]
    assert a["href"] == "az://silver/2025/dem_a.tif" and "cloud-optimized" in a["type"]
    assert a["file:size"] == 123456 and a["file:checksum"] == "1220" + SHA
    band = a["raster:bands"][0]
    assert band["nodata"] == -9999.0 and band["data_type"] == "float32"
    assert band["statistics"] == {"minimum": 1.0, "maximum": 250.0, "mean": 125.5, "stddev": 40.1,
                                  "valid_percent": 99.5}
    assert not {"min", "max"} & set(band["statistics"])
    uris = " ".join(item["stac_extensions"])
    for ext in ("projection/v2.0.0", "raster/v1.1.0", "file/v2.1.0", "processing/v1.2.0"):
        assert ext in uris
    # The geometry follows the UTM tile's outline in lon/lat: inside the wgs84 bbox, close to it.
    geom = shape(item["geometry"])
    assert geom.is_valid and len(item["geometry"]["coordinates"][0]) > 5
    assert abs(item["bbox"][0] - 15.0) < 1e-3 and item["bbox"][3] > 45.2


def test_item_is_deterministic_and_rgb_gets_eo_bands():
    rgb = cog_result(count=3, dtype="uint8", raster_type="rgb", nodata=None, band_stats=[{}, {}, {}])
    a, b = create_item(rgb, collection="c"), create_item(rgb, collection="c")
    assert a == b
    validate_item(a)
    assert [bd["common_name"] for bd in a["assets"]["data"]["eo:bands"]] == ["red", "green", "blue"]
    assert "nodata" not in a["assets"]["data"]["raster:bands"][0]


def test_wkt_crs_without_code_gives_wkt2():
    wkt = ('PROJCS["unknown",GEOGCS["WGS 84",DATUM["WGS_1984",SPHEROID["WGS 84",6378137,298.257223563]],'
           'PRIMEM["Greenwich",0],UNIT["degree",0.0174532925199433]],PROJECTION["Oblique_Stereographic"],'
           'PARAMETER["latitude_of_origin",52.1561605555556],PARAMETER["central_meridian",5.38763888888889],'
           'PARAMETER["scale_factor",0.9999079],PARAMETER["false_easting",155000],'
           'PARAMETER["false_northing",463000],UNIT["metre",1]]')
    item = create_item(cog_result(crs=wkt, bounds=[178400.0, 329400.0, 181600.0, 334000.0]), collection="c")
    validate_item(item)
    assert item["properties"]["proj:code"] is None
    assert item["properties"]["proj:wkt2"].startswith(("PROJCRS", "PROJCS"))
    minx, miny, maxx, maxy = item["bbox"]
    assert 5.6 < minx < maxx < 5.9 and 50.9 < miny < maxy < 51.1


def test_datetime_rule_order_and_no_sentinel():
    base = cog_result(datetime=None, input="az://b/x.tif", output="az://s/x.tif")
    assert choose_datetime(base, "2020-01-02T03:04:05Z")[3] == "user"
    assert choose_datetime({**base, "datetime": "2021-06-01T00:00:00Z"})[3] == "metadata"
    named = {**base, "output": "az://s/scene_20190704.tif"}
    when, _, _, src = choose_datetime(named)
    assert src == "filename" and when.isoformat().startswith("2019-07-04")
    modified = {**base, "last_modified": "2023-02-03T04:05:06Z"}
    assert choose_datetime(modified)[3] == "last_modified"
    with pytest.raises(InvalidInput) as err:
        create_item(base, collection="c")
    assert err.value.code == "NO_DATETIME"
    ranged = create_item(base, collection="c", datetime="2020-01-01T00:00:00Z/2020-12-31T23:59:59Z")
    validate_item(ranged)
    assert ranged["properties"]["datetime"] is None
    assert ranged["properties"]["start_datetime"] == "2020-01-01T00:00:00Z"
    with pytest.raises(InvalidInput):
        create_item(base, collection="c", datetime="2021-01-01/2020-01-01")


def test_item_ids_are_deterministic_readable_and_distinct():
    assert item_id("elev.tif") == "elev"
    assert item_id("a/b.tif") == item_id("a/b.tif") != item_id("a-b.tif")
    assert item_id("a/b.tif").startswith("a-b-") and len(item_id("a/b.tif")) == len("a-b-") + 8
    assert item_id("x.TIF") != item_id("x.tif")
    assert item_id("x.tiff") != item_id("x.tif")
    assert item_id("weird name (1).tif").startswith("weird-name-1-")
    assert multihash_sha256(SHA) == "1220" + SHA


def test_header_record_traces_the_valid_footprint(raster_factory):
    import numpy as np

    data = np.ones((1, 200, 200), dtype="uint8")
    data[0, :100, :100] = 0  # the top-left quarter is nodata
    path = raster_factory("holes_2024-05-06.tif", crs="EPSG:4326", bounds=(10.0, 45.0, 12.0, 47.0),
                          size=(200, 200), dtype="uint8", nodata=0, data=data)
    rec = raster_record(str(path), statistics=True, checksum=True)
    item = create_item(rec, collection="c")
    validate_item(item)
    geom = shape(item["geometry"])
    assert geom.area == pytest.approx(3.0, rel=0.02)  # 4 square degrees minus the 1 that is nodata
    assert not geom.intersects(box(10.05, 46.05, 10.95, 46.95))
    assert item["properties"]["datetime"] == "2024-05-06T00:00:00Z"
    assert item["assets"]["data"]["file:checksum"] == "1220" + hashlib.sha256(path.read_bytes()).hexdigest()
    assert item["assets"]["data"]["raster:bands"][0]["statistics"]["valid_percent"] == pytest.approx(75.0)
    full = raster_factory("full.tif", crs="EPSG:32633", size=(64, 64), dtype="uint8")
    rec2 = raster_record(str(full), last_modified="2022-01-01T00:00:00Z")
    assert "footprint" not in rec2  # nothing masked: the bounds are the footprint, nothing read
    assert create_item(rec2, collection="c")["properties"]["geoproc:datetime_source"] == "last_modified"


def test_terra_rasters_have_the_right_crs_and_footprint(terra_rasters):
    elev = raster_record(str(terra_rasters["elev.tif"]), last_modified="2020-01-01T00:00:00Z")
    item = create_item(elev, collection="terra")
    validate_item(item)
    assert item["properties"]["proj:code"] == "EPSG:4326"
    bounds = box(5.741666666666666, 49.44166666666666, 6.533333333333333, 50.19166666666666)
    geom = shape(item["geometry"])
    # Luxembourg, not its bounding box: inside the raster bounds, clearly smaller than them.
    assert geom.buffer(1e-6).within(bounds) and 0.4 * bounds.area < geom.area < 0.8 * bounds.area
    assert geom.contains(shape({"type": "Point", "coordinates": [6.13, 49.61]}))  # Luxembourg City

    meuse = create_item(raster_record(str(terra_rasters["meuse.tif"]), last_modified="2020-01-01T00:00:00Z"),
                        collection="terra")
    validate_item(meuse)
    assert meuse["properties"]["proj:code"] is None and "Stereographic" in meuse["properties"]["proj:wkt2"]
    minx, miny, maxx, maxy = meuse["bbox"]
    assert 5.70 < minx < maxx < 5.78 and 50.95 < miny < maxy < 51.00  # the Meuse near Stein, NL

    with pytest.raises(CrsMissing):  # logo.tif is in a local Cartesian system: no place on Earth
        create_item(raster_record(str(terra_rasters["logo.tif"]), last_modified="2020-01-01T00:00:00Z"),
                    collection="terra")


def test_collection_is_a_reduction_over_items():
    a = create_item(cog_result(datetime="2024-01-01T00:00:00Z"), collection="c")
    b = create_item(cog_result(datetime="2024-06-01T00:00:00Z", crs="EPSG:32632",
                               output="az://s/b.tif"), collection="c")
    coll = create_collection("c", iter([a, b]), description="two tiles")
    validate_collection(coll)
    assert coll["extent"]["temporal"]["interval"] == [["2024-01-01T00:00:00Z", "2024-06-01T00:00:00Z"]]
    bb = coll["extent"]["spatial"]["bbox"][0]
    assert bb == [min(a["bbox"][0], b["bbox"][0]), min(a["bbox"][1], b["bbox"][1]),
                  max(a["bbox"][2], b["bbox"][2]), max(a["bbox"][3], b["bbox"][3])]
    assert coll["summaries"]["proj:code"] == ["EPSG:32632", "EPSG:32633"]
    sa, sb = CollectionStats(), CollectionStats()
    sa.add(a)
    sb.add(b)
    merged = sa.merge(sb)
    assert merged.extent() == CollectionStats.from_collection(coll).extent()
    assert merged.count == 2


def test_file_datetime_rule_prefers_acquisition_and_reads_tiff_and_iso_forms():
    assert source_datetime({"TIFFTAG_DATETIME": "2023:07:14 09:15:00"}) == "2023-07-14T09:15:00Z"
    assert source_datetime({"TIFFTAG_DATETIME": "2023:07:14 09:15:00",
                            "ACQUISITIONDATETIME": "2021-02-03T04:05:06Z"}) == "2021-02-03T04:05:06Z"
    assert source_datetime({"ACQUISITION_DATETIME": "2021-02-03T06:05:06+02:00"}) == "2021-02-03T04:05:06Z"
    assert source_datetime({"DATE_TIME": "2020-01-31"}) == "2020-01-31T00:00:00Z"
    assert source_datetime({"TIFFTAG_DATETIME": "2023:13:40 99:00:00", "DATETIME": "yesterday"}) is None
    assert source_datetime({}) is None


def test_collection_extent_across_the_antimeridian_is_one_short_box():
    st = CollectionStats()
    for bbox in ([178.0, -18.0, 179.5, -16.0], [-179.8, -17.0, -178.0, -15.0]):
        st.add({"bbox": bbox, "properties": {"datetime": "2024-01-01T00:00:00Z"}})
    assert st.extent()["spatial"]["bbox"] == [[178.0, -18.0, -178.0, -15.0]]  # west > east: it crosses
