"""A COG stitched from compressed parts: the same pixels, overviews and validity as one written whole."""

from __future__ import annotations

import os
import struct

import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.shutil import copy as gdal_copy

from geoproc.raster import stitch as st
from geoproc.raster.checks import validate_cog
from geoproc.raster.overviews import build_overview_levels, overview_levels
from geoproc.raster.profiles import BLOCKSIZE, part_options

TRANSFORM = Affine(10, 0, 500000, 0, -10, 6000000)


def make(dtype: str, bands: int, height: int, width: int, nodata: float) -> np.ndarray:
    yy, xx = np.mgrid[0:height, 0:width]
    data = np.stack([np.sin(xx / 50.0) * np.cos(yy / 70.0) * 1000 + 2000 + 7 * b for b in range(bands)])
    data = data.astype(dtype)
    data[:, :300, :400] = nodata
    return data


def stitched(data: np.ndarray, tmp_path, *, region_blocks: int, tier: str = "analysis", resampling: str = "average",
             nodata: float, bigtiff: bool | None = None, tags=None, descriptions=None) -> tuple[str, int]:
    """Cut ``data`` into regions of ``region_blocks`` blocks, compress each into parts, stitch them."""
    count, height, width = data.shape
    opts = part_options(tier, str(data.dtype))
    total = overview_levels(width, height)
    regional = st.region_levels(region_blocks, region_blocks, resampling, total)
    levels: list[list[st.Part]] = [[] for _ in range(regional + 1)]
    side = region_blocks * BLOCKSIZE
    for r0 in range(0, height, side):
        for c0 in range(0, width, side):
            work = tmp_path / f"r{r0}c{c0}"
            work.mkdir()
            files = st.write_region(data[:, r0:r0 + side, c0:c0 + side], str(work), crs="EPSG:32633",
                                    transform=TRANSFORM @ Affine.translation(c0, r0), nodata=nodata, options=opts,
                                    levels=regional, resampling=resampling)
            for k, f in enumerate(files):
                levels[k].append(st.Part(f, (r0 >> k) // BLOCKSIZE, (c0 >> k) // BLOCKSIZE))
    tail = tmp_path / "tail"
    tail.mkdir()
    grid = {"crs_wkt": "EPSG:32633", "count": count, "dtype": str(data.dtype), "nodata": nodata}
    levels += st.remaining_levels(levels[-1], str(tail), levels=total - regional, resampling=resampling, grid=grid,
                                  options=opts)
    out = str(tmp_path / "out.tif")
    st.stitch_cog(levels, out, metadata=st.gdal_metadata(tags, descriptions), bigtiff=bigtiff)
    return out, regional


def whole_overviews(data: np.ndarray, tmp_path, *, nodata: float, resampling: str = "average") -> list[np.ndarray]:
    """The overviews geoproc computes for the whole raster at once (the assembly's level-by-level pass)."""
    src = str(tmp_path / "whole.tif")
    count, height, width = data.shape
    with rasterio.open(src, "w", driver="GTiff", width=width, height=height, count=count, dtype=data.dtype,
                       crs="EPSG:32633", transform=TRANSFORM, nodata=nodata) as dst:
        dst.write(data)
    (tmp_path / "whole").mkdir()
    files = build_overview_levels(src, str(tmp_path / "whole"), levels=overview_levels(width, height),
                                  resampling=resampling, nodata=nodata)
    out = []
    for f in files:
        with rasterio.open(f) as ds:
            out.append(ds.read())
    return out


def check_blocks(path: str) -> int:
    """GDAL's block leader (size) and trailer (last 4 bytes) around every block; returns the blocks seen."""
    seen = 0
    with open(path, "rb") as f:
        for ifd in st.read_ifds(f):
            for off, n in zip(ifd[st.TILE_OFFSETS].values(), ifd[st.TILE_BYTE_COUNTS].values(), strict=True):
                f.seek(int(off) - 4)
                raw = f.read(int(n) + 8)
                assert struct.unpack("<I", raw[:4])[0] == n
                assert raw[-4:] == raw[-8:-4]
                seen += 1
    return seen


def test_stitched_cog_equals_the_data_and_the_whole_rasters_overviews(tmp_path):
    data = make("float32", 2, 1900, 2600, np.nan)
    out, regional = stitched(data, tmp_path, region_blocks=2, nodata=float("nan"), tags={"GEOPROC_X": "a<&b"},
                             descriptions=["red", "nir"])
    assert regional == 1  # regions of 2 x 2 blocks hold their first overview whole; the rest comes after
    assert validate_cog(out) == []
    with rasterio.open(out) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert (ds.compression.name, ds.tags(ns="IMAGE_STRUCTURE")["PREDICTOR"]) == ("deflate", "3")
        assert ds.tags()["GEOPROC_X"] == "a<&b"
        assert ds.descriptions == ("red", "nir")
        assert ds.transform == TRANSFORM and ds.crs.to_epsg() == 32633
        assert np.isnan(ds.nodata)
        assert ds.overviews(1) == [2, 4, 8]
        np.testing.assert_array_equal(ds.read(), data)
    for k, expected in enumerate(whole_overviews(data, tmp_path, nodata=float("nan")), start=1):
        with rasterio.open(out, overview_level=k - 1) as ov:  # GDAL's float sums differ by window: 1 ulp
            np.testing.assert_allclose(ov.read(), expected, rtol=2e-7)
    assert check_blocks(out) == 4 * 6 + 2 * 3 + 1 * 2 + 1  # pixel-interleaved: one block holds both bands


def test_integer_zstd_bigtiff_and_the_same_bytes_as_gdals_cog_driver(tmp_path):
    data = make("uint16", 1, 1300, 1100, 0)
    out, regional = stitched(data, tmp_path, region_blocks=4, tier="archive", nodata=0, bigtiff=True)
    assert regional == 2  # capped by the raster's own two levels
    assert validate_cog(out) == []
    with open(out, "rb") as f:
        assert f.read(4) == b"II+\0"
    with rasterio.open(out) as ds:
        assert ds.compression.name == "zstd" and ds.nodata == 0
        np.testing.assert_array_equal(ds.read(), data)
    for k, expected in enumerate(whole_overviews(data, tmp_path, nodata=0), start=1):
        with rasterio.open(out, overview_level=k - 1) as ov:
            np.testing.assert_array_equal(ov.read(), expected)
    # GDAL's COG driver compresses each block to the same bytes: the stitched file holds exactly its blocks
    (tmp_path / "gdal").mkdir()
    src = str(tmp_path / "gdal" / "src.tif")
    with rasterio.open(src, "w", driver="GTiff", width=1100, height=1300, count=1, dtype="uint16", crs="EPSG:32633",
                       transform=TRANSFORM, nodata=0) as dst:
        dst.write(data)
    ref = str(tmp_path / "gdal" / "cog.tif")
    gdal_copy(src, ref, driver="COG", COMPRESS="ZSTD", LEVEL="19", PREDICTOR="2", BLOCKSIZE="512")

    def full_blocks(path):
        with open(path, "rb") as f:
            ifd = st.read_ifds(f)[0]
            return [os.pread(f.fileno(), int(n), int(o))
                    for o, n in zip(ifd[st.TILE_OFFSETS].values(), ifd[st.TILE_BYTE_COUNTS].values(), strict=True)]

    assert full_blocks(out) == full_blocks(ref)


def test_wide_kernels_leave_every_level_to_the_assembly(tmp_path):
    assert st.region_levels(8, 8, "cubic", 5) == 0
    assert st.region_levels(8, 4, "average", 5) == 2
    assert st.region_levels(6, 6, "nearest", 5) == 1
    data = make("float32", 1, 1200, 1200, -9999)
    out, regional = stitched(data, tmp_path, region_blocks=2, resampling="cubic", nodata=-9999)
    assert regional == 0
    for k, expected in enumerate(whole_overviews(data, tmp_path, nodata=-9999, resampling="cubic"), start=1):
        with rasterio.open(out, overview_level=k - 1) as ov:
            np.testing.assert_allclose(ov.read(), expected, rtol=2e-7)


def test_parts_that_overlap_or_leave_a_gap_are_refused(tmp_path):
    data = make("uint8", 1, 1024, 1024, 0)
    opts = part_options("analysis", "uint8")
    (tmp_path / "a").mkdir()
    full = st.write_region(data[:, :, :512], str(tmp_path / "a"), crs="EPSG:32633", transform=TRANSFORM, nodata=0,
                           options=opts, levels=0, resampling="average")[0]
    with pytest.raises(ValueError, match="uncovered"):
        st.stitch_cog([[st.Part(full, 0, 0), st.Part(full, 0, 2)]], str(tmp_path / "gap.tif"))
    with pytest.raises(ValueError, match="overlap"):
        st.stitch_cog([[st.Part(full, 0, 0), st.Part(full, 1, 0), st.Part(full, 0, 0)]], str(tmp_path / "twice.tif"))
