"""Writing warped tiles, and assembling them into the two outputs of a tiled job.

* ``tiles``: every tile becomes a COG of its own (:func:`write_cog`); :func:`build_vrt` then writes a
  GDAL VRT mosaic of them, each tile placed by the transform read back from its file.
* ``single``: every tile becomes a plain tiled GeoTIFF *part* (:func:`write_part`, fast ZSTD); the
  finalize step mosaics the parts through a VRT and writes one COG with GDAL's COG driver
  (:func:`assemble_cog`), which computes the overviews from the whole raster. Overviews are never
  written through a Dask array writer (rioxarray#410: empty overviews).

Both outputs are checked with :func:`geoproc.raster.cog.describe` (``cog_validate`` plus non-empty
overviews) before they are published.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Sequence
from typing import Any
from xml.sax.saxutils import escape

import numpy as np

from .profiles import BLOCKSIZE, creation_profile

Placement = tuple[str, tuple[int, int, int, int], tuple[int, int, int, int]]  # path, src rect, dst rect

GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "uint64": "UInt64", "int64": "Int64", "float32": "Float32", "float64": "Float64"}


def cog_options(tier: str, dtype: str, *, overview_resampling: str = "nearest", raster_type: str = "unknown",
                threads: int | str = 1) -> dict[str, str]:
    """Creation options for GDAL's COG driver, from the tier's profile (same codec, level, predictor)."""
    prof = creation_profile(tier, dtype, raster_type=raster_type)
    opts = {"BLOCKSIZE": str(BLOCKSIZE), "COMPRESS": str(prof.get("compress", "NONE")).upper(),
            "OVERVIEW_RESAMPLING": overview_resampling.upper(), "NUM_THREADS": str(threads),
            "BIGTIFF": "IF_SAFER"}
    if "predictor" in prof:
        opts["PREDICTOR"] = str(prof["predictor"])
    for key in ("zlevel", "zstd_level"):
        if key in prof:
            opts["LEVEL"] = str(prof[key])
    if "quality" in prof:
        opts["QUALITY"] = str(prof["quality"])
    return opts


def _mem_dataset(array: np.ndarray, crs: Any, transform: Sequence[float], nodata: float | None) -> Any:
    import rasterio
    from affine import Affine

    count, height, width = array.shape
    ds = rasterio.open("", "w", driver="MEM", width=width, height=height, count=count, dtype=array.dtype,
                       crs=crs, transform=Affine(*transform[:6]), nodata=nodata)
    ds.write(array)
    return ds


def write_cog(array: np.ndarray, path: str, *, crs: Any, transform: Sequence[float], nodata: float | None,
              options: dict[str, str]) -> None:
    """Write a ``(bands, rows, cols)`` array as a COG at local ``path`` (GDAL's COG driver)."""
    import rasterio.shutil

    with _mem_dataset(array, crs, transform, nodata) as mem:
        rasterio.shutil.copy(mem, path, driver="COG", **options)


def write_part(array: np.ndarray, path: str, *, crs: Any, transform: Sequence[float],
               nodata: float | None) -> None:
    """Write a tile as a plain tiled GeoTIFF (512 blocks, fast ZSTD) for the ``single`` assembly."""
    import rasterio
    from affine import Affine

    count, height, width = array.shape
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=array.dtype,
                       crs=crs, transform=Affine(*transform[:6]), nodata=nodata, tiled=True,
                       blockxsize=BLOCKSIZE, blockysize=BLOCKSIZE, compress="ZSTD", zstd_level=1,
                       bigtiff="IF_SAFER") as dst:
        dst.write(array)


def placement(grid_transform: Sequence[float], file_transform: Sequence[float], shape: tuple[int, int],
              inner: tuple[int, int, int, int] | None = None) -> tuple[tuple[int, int, int, int],
                                                                        tuple[int, int, int, int]]:
    """Where a file's pixels go in the grid: (src rect in the file, dst rect in the grid).

    The offset is computed from the two transforms (not assumed from the plan) and must be a whole
    number of pixels; ``inner`` restricts the file to part of it (a tile without its halo).

    Raises:
        ValueError: the file is not on the grid's pixel lattice.
    """
    ga, _, gc, _, ge, gf = grid_transform[:6]
    fa, _, fc, _, fe, ff = file_transform[:6]
    if not (math.isclose(fa, ga, rel_tol=1e-9) and math.isclose(fe, ge, rel_tol=1e-9)):
        raise ValueError(f"file resolution {(fa, fe)} differs from the grid's {(ga, ge)}")
    dx, dy = (fc - gc) / ga, (ff - gf) / ge
    ox, oy = round(dx), round(dy)
    if abs(dx - ox) > 1e-3 or abs(dy - oy) > 1e-3:
        raise ValueError(f"file is offset by ({dx:.4f}, {dy:.4f}) pixels from the grid: not aligned")
    h, w = shape
    sx, sy, sw, sh = inner if inner is not None else (0, 0, w, h)
    return (sx, sy, sw, sh), (ox + sx, oy + sy, sw, sh)


def build_vrt(path: str, *, crs_wkt: str, transform: Sequence[float], width: int, height: int, count: int,
              dtype: str, nodata: float | None, sources: Sequence[Placement], relative: bool = False) -> None:
    """Write a GDAL VRT mosaic of ``sources`` on the grid (``relative``: paths relative to the VRT)."""
    gt = transform[:6]
    geo = f"{gt[2]!r}, {gt[0]!r}, {gt[1]!r}, {gt[5]!r}, {gt[3]!r}, {gt[4]!r}"
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(crs_wkt)}</SRS>", f"  <GeoTransform>{geo}</GeoTransform>"]
    for b in range(1, count + 1):
        lines.append(f'  <VRTRasterBand dataType="{GDAL_TYPES[dtype]}" band="{b}">')
        if nodata is not None:
            lines.append(f"    <NoDataValue>{_num(nodata)}</NoDataValue>")
        for src_path, (sx, sy, sw, sh), (dx, dy, dw, dh) in sources:
            kind = "ComplexSource" if nodata is not None else "SimpleSource"
            lines += [f"    <{kind}>",
                      f'      <SourceFilename relativeToVRT="{int(relative)}">{escape(src_path)}</SourceFilename>',
                      f"      <SourceBand>{b}</SourceBand>",
                      f'      <SrcRect xOff="{sx}" yOff="{sy}" xSize="{sw}" ySize="{sh}"/>',
                      f'      <DstRect xOff="{dx}" yOff="{dy}" xSize="{dw}" ySize="{dh}"/>']
            if nodata is not None:
                lines.append(f"      <NODATA>{_num(nodata)}</NODATA>")
            lines.append(f"    </{kind}>")
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def assemble_cog(vrt_path: str, out_path: str, options: dict[str, str], *, cache_bytes: int = 64 * 2**20,
                 gdal_config: dict[str, str] | None = None) -> None:
    """Write the COG at local ``out_path`` from the mosaic ``vrt_path`` with GDAL's COG driver.

    GDAL computes the overviews from the whole mosaic here, in one process; its block cache is bounded
    by ``cache_bytes`` so memory stays flat whatever the raster size.
    """
    import rasterio
    import rasterio.shutil

    tmp = os.path.dirname(os.path.abspath(out_path))
    with rasterio.Env(GDAL_CACHEMAX=int(cache_bytes), CPL_TMPDIR=tmp, **(gdal_config or {})):
        rasterio.shutil.copy(vrt_path, out_path, driver="COG", **options)


def _num(v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return repr(int(v)) if float(v).is_integer() else repr(float(v))


_NARROW = re.compile(r"Overview of index (\d+) is not tiled")


def check_cog(path: str) -> dict[str, Any]:
    """:func:`geoproc.raster.cog.describe` (``cog_validate``, non-empty overviews, statistics).

    rio-cogeo's validator calls an overview "not tiled" when its block is exactly as wide as the
    overview (an overview 512 pixels wide and taller than 512, which GDAL's COG driver writes in
    512 x 512 tiles). When that is the only error and every flagged overview really has 512 x 512
    blocks, the file is accepted with a warning; every other check still applies.

    Raises:
        OutputCheckFailed: the file is not a valid COG or its overviews are empty.
    """
    import rasterio

    from ..errors import OutputCheckFailed
    from . import cog as cogmod

    try:
        return cogmod.describe(path)
    except OutputCheckFailed as exc:
        errors = [e.strip() for e in str(exc).split(":", 1)[-1].split(";")]
        flagged = [_NARROW.fullmatch(e) for e in errors]
        if not all(flagged):
            raise
        for m in flagged:
            with rasterio.open(path, overview_level=int(m.group(1))) as ov:
                if ov.block_shapes[0] != (BLOCKSIZE, BLOCKSIZE):
                    raise
    with rasterio.open(path) as ds:
        stats = cogmod.band_stats(ds)
        facts = {"crs": ds.crs.to_string(), "bounds": list(ds.bounds), "shape": [ds.height, ds.width],
                 "transform": list(ds.transform)[:6], "count": ds.count, "dtype": ds.dtypes[0],
                 "nodata": ds.nodata, "compression": ds.compression.name.lower() if ds.compression else "none",
                 "blocksize": list(ds.block_shapes[0])}
    facts["overviews"] = cogmod.check_overviews(path, stats)
    facts["band_stats"] = stats
    facts["warnings"] = ["COG_VALIDATE: a 512-pixel-wide overview is tiled 512x512 (rio-cogeo reports it as untiled)"]
    return facts
