"""Writing warped tiles, and assembling them into the two outputs of a tiled job.

* ``tiles``: every tile becomes a COG of its own (:func:`write_cog`); :func:`build_vrt` then writes a
  GDAL VRT mosaic of them, each tile placed by the transform read back from its file.
* ``single``: every tile becomes a plain tiled GeoTIFF *part* (:func:`write_part`, fast ZSTD); the
  finalize step assembles one COG from them in bounded memory (:func:`assemble_cog`):

  1. the parts are mosaicked by a VRT (no pixel is copied);
  2. the overviews are computed level by level, each from the previous level (the first from the
     mosaic), one 512 x 512 output window at a time, with GDAL's resampling kernels
     (:func:`build_overview_levels`); each level is a plain tiled GeoTIFF;
  3. a VRT that lists those files as the mosaic's overviews is copied by GDAL's COG driver with
     ``OVERVIEWS=FORCE_USE_EXISTING``: a streaming block copy that computes nothing, under a bounded
     ``GDAL_CACHEMAX``.

  Memory is one window plus GDAL's bounded block cache, whatever the raster size. Overviews are never
  written through a Dask array writer (rioxarray#410: empty overviews).

Both outputs are checked by :func:`check_cog` (``cog_validate``, non-empty overviews, exact statistics
read in bounded windows) before they are published.
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
                threads: int | str = 1, jpeg_quality: int = 85) -> dict[str, str]:
    """Creation options for GDAL's COG driver, from the tier's profile (same codec, level, predictor)."""
    prof = creation_profile(tier, dtype, raster_type=raster_type, jpeg_quality=jpeg_quality)
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
    ds = rasterio.open("", "w+", driver="MEM", width=width, height=height, count=count, dtype=array.dtype,
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
                       blockxsize=BLOCKSIZE, blockysize=BLOCKSIZE, compress="ZSTD", zstd_level=1, interleave="band",
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
              dtype: str, nodata: float | None, sources: Sequence[Placement], relative: bool = False,
              overviews: Sequence[str] = (), tags: dict[str, str] | None = None,
              colorinterp: Sequence[str] | None = None) -> None:
    """Write a GDAL VRT mosaic of ``sources`` on the grid (``relative``: paths relative to the VRT).

    Args:
        path: the VRT file to write.
        crs_wkt: CRS of the grid.
        transform: affine of the grid (6 numbers).
        width: grid width in pixels.
        height: grid height in pixels.
        count: number of bands.
        dtype: numpy data type name.
        nodata: nodata value of every band, or None.
        sources: (file, rect in the file, rect in the grid) of every source.
        relative: file names relative to the VRT's directory.
        overviews: files holding the mosaic's overviews, largest first (same bands, each covering
            the whole grid); GDAL then reads them instead of computing overviews.
        tags: dataset metadata.
        colorinterp: band colour interpretations (GDAL names: ``Red``, ``Gray``, ...).
    """
    gt = transform[:6]
    geo = f"{gt[2]!r}, {gt[0]!r}, {gt[1]!r}, {gt[5]!r}, {gt[3]!r}, {gt[4]!r}"
    lines = [f'<VRTDataset rasterXSize="{width}" rasterYSize="{height}">',
             f"  <SRS>{escape(crs_wkt)}</SRS>", f"  <GeoTransform>{geo}</GeoTransform>"]
    if tags:
        lines.append("  <Metadata>")
        lines += [f'    <MDI key="{escape(k)}">{escape(str(v))}</MDI>' for k, v in tags.items()]
        lines.append("  </Metadata>")
    for b in range(1, count + 1):
        lines.append(f'  <VRTRasterBand dataType="{GDAL_TYPES[dtype]}" band="{b}">')
        if nodata is not None:
            lines.append(f"    <NoDataValue>{_num(nodata)}</NoDataValue>")
        if colorinterp:
            lines.append(f"    <ColorInterp>{escape(colorinterp[b - 1])}</ColorInterp>")
        for ovr in overviews:
            lines += ["    <Overview>",
                      f'      <SourceFilename relativeToVRT="{int(relative)}">{escape(ovr)}</SourceFilename>',
                      f"      <SourceBand>{b}</SourceBand>", "    </Overview>"]
        for src_path, (sx, sy, sw, sh), (dx, dy, dw, dh) in sources:
            # sources do not overlap (tiles partition the grid) and hold nodata themselves: simple sources
            # copy them as they are, without the per-source working buffers of a ComplexSource
            kind = "SimpleSource"
            lines += [f"    <{kind}>",
                      f'      <SourceFilename relativeToVRT="{int(relative)}">{escape(src_path)}</SourceFilename>',
                      f"      <SourceBand>{b}</SourceBand>",
                      f'      <SrcRect xOff="{sx}" yOff="{sy}" xSize="{sw}" ySize="{sh}"/>',
                      f'      <DstRect xOff="{dx}" yOff="{dy}" xSize="{dw}" ySize="{dh}"/>',
                      f"    </{kind}>"]
        lines.append("  </VRTRasterBand>")
    lines.append("</VRTDataset>")
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def write_grid(path: str, *, crs: Any, transform: Sequence[float], width: int, height: int, count: int,
               dtype: str, nodata: float | None) -> Any:
    """Create an uncompressed tiled GeoTIFF of the whole grid (512 blocks) and return it open for writing.

    Windows written into it (whole 512 blocks when they are block-aligned) go straight to disk; nothing
    of the grid is held in memory.
    """
    import rasterio
    from affine import Affine

    return rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=count, dtype=dtype, crs=crs,
                         transform=Affine(*transform[:6]), nodata=nodata, tiled=True, blockxsize=BLOCKSIZE,
                         blockysize=BLOCKSIZE, compress="NONE", interleave="band", bigtiff="IF_SAFER",
                         sparse_ok=True)


def overview_count(width: int, height: int) -> int:
    """Number of 2x overview levels until the long side fits in one 512 block (0 for one-block rasters)."""
    n = 0
    while max(width, height) / 2**n > BLOCKSIZE:
        n += 1
    return n


OVERVIEW_MARGIN = 8  # source pixels read around each window: the widest kernel (lanczos, 3 px at 2x) and more
POOL_SIZE = 8  # parts a mosaic VRT keeps open (each holds a few MiB of decoder state)
WINDOW_BYTES = 4 * 2**20  # bytes of source pixels one overview step holds (bands are split to fit)


def build_overview_levels(src_path: str, work_dir: str, *, levels: int, resampling: str,
                          nodata: float | None, window_bytes: int = WINDOW_BYTES) -> list[str]:
    """Compute ``levels`` 2x overviews of ``src_path``, each from the previous one, window by window.

    Level *k* is a tiled GeoTIFF ``ovr{k}.tif`` of ``ceil(size / 2)`` pixels of level *k - 1*. Every
    512 x 512 output window is computed from its 1024 x 1024 source window plus a margin of
    :data:`OVERVIEW_MARGIN` pixels (so kernels wider than 2 pixels see their neighbours and windows join
    without seams), resampled by GDAL (``resampling``: nearest, average, mode, bilinear, cubic, ...;
    nodata pixels are left out as GDAL's overview builder does). Bands are processed in groups whose
    source window fits ``window_bytes``.

    Returns:
        The level files, largest first.
    """
    import rasterio

    paths: list[str] = []
    prev = src_path
    for k in range(1, levels + 1):
        out = os.path.join(work_dir, f"ovr{k}.tif")
        with rasterio.open(prev) as src:
            w, h = (src.width + 1) // 2, (src.height + 1) // 2
            dtype, count = src.dtypes[0], src.count
            side = 2 * BLOCKSIZE + 2 * OVERVIEW_MARGIN
            group = max(1, window_bytes // (side * side * np.dtype(dtype).itemsize))
            with rasterio.open(out, "w", driver="GTiff", width=w, height=h, count=count, dtype=dtype, nodata=nodata,
                               tiled=True, blockxsize=BLOCKSIZE, blockysize=BLOCKSIZE, compress="NONE",
                               interleave="band", bigtiff="IF_SAFER") as dst:
                for y0 in range(0, h, BLOCKSIZE):
                    for x0 in range(0, w, BLOCKSIZE):
                        win = (x0, y0, min(BLOCKSIZE, w - x0), min(BLOCKSIZE, h - y0))
                        for b0 in range(0, count, group):
                            bands = list(range(b0 + 1, min(count, b0 + group) + 1))
                            dst.write(_downsample(src, bands, win, resampling, nodata), indexes=bands,
                                      window=rasterio.windows.Window(*win))
        paths.append(out)
        prev = out
    return paths


def _downsample(src: Any, bands: list[int], win: tuple[int, int, int, int], resampling: str,
                nodata: float | None) -> np.ndarray:
    """Output window ``win`` of the 2x overview of ``src``: its source window with a margin, resampled."""
    from rasterio.enums import Resampling
    from rasterio.windows import Window

    x0, y0, w, h = win
    m = OVERVIEW_MARGIN  # even, so the padded window keeps the 2x grid
    X0, Y0, X1, Y1 = 2 * x0 - m, 2 * y0 - m, 2 * (x0 + w) + m, 2 * (y0 + h) + m
    sx0, sy0, sx1, sy1 = max(0, X0), max(0, Y0), min(src.width, X1), min(src.height, Y1)
    data = src.read(bands, window=Window(sx0, sy0, sx1 - sx0, sy1 - sy0))
    pad = ((0, 0), (sy0 - Y0, Y1 - sy1), (sx0 - X0, X1 - sx1))  # outside the raster: nodata (or the edge)
    if any(a or b for a, b in pad):
        data = (np.pad(data, pad, mode="edge") if nodata is None
                else np.pad(data, pad, constant_values=np.asarray(nodata).astype(data.dtype)))
    if resampling == "nearest":  # GDAL's overview builder takes the top-left pixel of each 2 x 2 cell
        small = data[:, 0::2, 0::2]
    else:
        import warnings

        from rasterio.errors import NotGeoreferencedWarning

        with warnings.catch_warnings():  # a bare pixel array: no georeference is needed to resample it
            warnings.simplefilter("ignore", NotGeoreferencedWarning)
            mem = _mem_dataset(data, None, (1, 0, 0, 0, 1, 0), nodata)
        with mem:
            small = mem.read(out_shape=(len(bands), h + m, w + m), resampling=Resampling[resampling])
    return small[:, m // 2:m // 2 + h, m // 2:m // 2 + w]


def tiled_cog(src: Any, out_path: str, *, target_crs: str, options: dict[str, str], overview_resampling: str,
              reproject_resampling: str, tags: dict[str, str] | None = None, memory_budget: int = 256 * 2**20,
              cache_bytes: int = 32 * 2**20) -> dict[str, Any]:
    """Reproject an open raster to a COG at local ``out_path`` window by window, in bounded memory.

    The one-task form of the ``large_raster`` job: a :class:`~geoproc.raster.tiling.TilingPlan` cuts
    the output grid into tiles that fit ``memory_budget``; each tile is warped from its source window
    and written straight into a tiled GeoTIFF of the whole grid (block-aligned, nothing held), then
    :func:`assemble_cog` builds the overviews and the COG. Memory does not grow with the raster.

    The tiles' pixels are counted as they are written, so ``band_stats`` (see
    :func:`~geoproc.raster.stats.assembled_stats`) spares the check a decoding pass over the COG.

    Returns:
        ``{"tiles": n, "tile_size": px, "overviews": [...], "band_stats": [...] or None}``
    """
    import rasterio
    from rasterio.windows import Window

    from .stats import BandStats, assembled_stats
    from .tiling import SourceInfo, TilingPlan
    from .warp import warp_tile

    plan = TilingPlan.build(SourceInfo.from_dataset(src, src.name), target_crs, memory_budget=memory_budget,
                            resampling=reproject_resampling)
    grid = os.path.join(os.path.dirname(os.path.abspath(out_path)), ".geoproc-grid.tif")
    counted = BandStats(len(plan.bands), plan.dtype, plan.nodata)
    covered = 0
    try:
        with rasterio.Env(GDAL_CACHEMAX=max(1, cache_bytes >> 20)):
            with write_grid(grid, crs=target_crs, transform=plan.transform, width=plan.width, height=plan.height,
                            count=len(plan.bands), dtype=plan.dtype, nodata=plan.nodata) as dst:
                for t in plan.tiles():  # tiles that see no source stay unwritten: sparse blocks read as nodata
                    x, y, w, h = t.outer
                    arr = warp_tile(src, bands=plan.bands, src_window=t.src_window, dst_crs=target_crs,
                                    dst_transform=t.transform, dst_shape=(h, w), resampling=plan.resampling,
                                    dst_nodata=plan.nodata)
                    dst.write(arr, window=Window(x, y, w, h))
                    counted.add(arr)
                    covered += w * h
                    del arr
                if tags:
                    dst.update_tags(**tags)
                if plan.colorinterp:
                    from rasterio.enums import ColorInterp

                    dst.colorinterp = [ColorInterp[c.lower()] for c in plan.colorinterp]
            release_memory()
            done = assemble_cog(grid, out_path, options, overview_resampling=overview_resampling,
                                nodata=plan.nodata, cache_bytes=cache_bytes)
    finally:
        if os.path.exists(grid):
            os.remove(grid)
    stats = assembled_stats(counted, covered=covered, width=plan.width, height=plan.height,
                            lossless=options.get("COMPRESS") != "JPEG")
    return {"tiles": len(plan.tiles()), "tile_size": plan.tile_size, **done, "band_stats": stats}


def release_memory() -> None:
    """Give freed heap pages back to the OS (glibc ``malloc_trim``), so one phase's garbage does not
    stay in the worker's footprint while the next phase runs; a no-op elsewhere."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def assemble_cog(mosaic: str, out_path: str, options: dict[str, str], *, overview_resampling: str,
                 nodata: float | None, cache_bytes: int = 32 * 2**20, vrt: dict[str, Any] | None = None,
                 gdal_config: dict[str, str] | None = None) -> dict[str, Any]:
    """Write the COG at local ``out_path`` from the full-resolution ``mosaic`` in bounded memory.

    ``mosaic`` is a VRT of the parts or a tiled GeoTIFF of the whole grid. The overview levels are
    computed next to ``out_path`` (:func:`build_overview_levels`), then GDAL's COG driver copies a
    VRT that names them as the mosaic's overviews (``OVERVIEWS=FORCE_USE_EXISTING``: nothing is
    recomputed) block by block; its block cache is bounded by ``cache_bytes``.

    Args:
        mosaic: full-resolution source (local path).
        out_path: local COG path; temporary files go next to it and are removed.
        options: COG driver creation options (:func:`cog_options`).
        overview_resampling: GDAL kernel of the overviews.
        nodata: nodata of the output.
        cache_bytes: GDAL block cache while assembling.
        vrt: keyword arguments of :func:`build_vrt` describing ``mosaic`` (grid, sources, tags,
            colour interpretation); None reads them from ``mosaic`` itself.
        gdal_config: more GDAL configuration options (credentials of the parts).

    Returns:
        ``{"overviews": [2, 4, ...]}``
    """
    import rasterio
    import rasterio.shutil

    work = os.path.join(os.path.dirname(os.path.abspath(out_path)), ".geoproc-assemble")
    os.makedirs(work, exist_ok=True)
    try:
        with rasterio.Env(GDAL_CACHEMAX=max(1, int(cache_bytes) >> 20), CPL_TMPDIR=work, VRT_NUM_THREADS=1,
                          GDAL_MAX_DATASET_POOL_SIZE=POOL_SIZE, **(gdal_config or {})):
            if vrt is None:
                with rasterio.open(mosaic) as ds:
                    vrt = {"crs_wkt": ds.crs.to_wkt() if ds.crs else "", "transform": list(ds.transform)[:6],
                           "width": ds.width, "height": ds.height, "count": ds.count, "dtype": ds.dtypes[0],
                           "nodata": ds.nodata, "tags": ds.tags(),
                           "colorinterp": [c.name.capitalize() for c in ds.colorinterp],
                           "sources": [(mosaic, (0, 0, ds.width, ds.height), (0, 0, ds.width, ds.height))]}
            levels = overview_count(vrt["width"], vrt["height"])
            ovrs = build_overview_levels(mosaic, work, levels=levels, resampling=overview_resampling, nodata=nodata)
            release_memory()
            full = os.path.join(work, "cog-source.vrt")
            build_vrt(full, **{**vrt, "overviews": ovrs})
            opts = {k: v for k, v in options.items() if k != "OVERVIEW_RESAMPLING"}
            rasterio.shutil.copy(full, out_path, driver="COG", OVERVIEWS="FORCE_USE_EXISTING",
                                 OVERVIEW_RESAMPLING=overview_resampling.upper(), **opts)
    finally:
        import shutil

        shutil.rmtree(work, ignore_errors=True)
        release_memory()
    return {"overviews": [2**k for k in range(1, levels + 1)]}


def _num(v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return repr(int(v)) if float(v).is_integer() else repr(float(v))


_NARROW = re.compile(r"Overview of index (\d+) is not tiled")
STATS_BYTES = 2 * 2**20  # bytes of pixels (all bands) one statistics window holds


def check_cog(path: str, *, cache_bytes: int = 32 * 2**20, stats: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The facts and checks of :func:`geoproc.raster.cog.describe`, in bounded memory.

    ``cog_validate`` must pass, overviews must exist and hold the data, and exact per-band statistics
    are computed, reading one band of a few blocks at a time under a ``GDAL_CACHEMAX`` of
    ``cache_bytes`` (a check of a 10 GB COG holds a few MiB), unless the caller counted them already
    (``stats``, e.g. merged from the tiles the COG was assembled from). The keys are those of ``describe``.

    rio-cogeo's validator calls an overview "not tiled" when its block is exactly as wide as the
    overview (an overview 512 pixels wide and taller than 512, which GDAL's COG driver writes in
    512 x 512 tiles). When that is the only error and every flagged overview really has 512 x 512
    blocks, the file is accepted with a warning; every other check still applies.

    Raises:
        OutputCheckFailed: the file is not a valid COG or its overviews are empty.
    """
    import rasterio
    from rasterio.enums import MaskFlags
    from rasterio.warp import transform_bounds

    from ..errors import OutputCheckFailed
    from . import cog as cogmod
    from .detect import nodata_json
    from .validate import crs_string, is_georeferenced

    try:
        warnings = cogmod.validate_cog(path)
    except OutputCheckFailed as exc:
        errors = [e.strip() for e in str(exc).split(":", 1)[-1].split(";")]
        flagged = [_NARROW.fullmatch(e) for e in errors]
        if not all(flagged):
            raise
        for m in flagged:
            with rasterio.open(path, overview_level=int(m.group(1))) as ov:
                if ov.block_shapes[0] != (BLOCKSIZE, BLOCKSIZE):
                    raise
        warnings = ["COG_VALIDATE: a 512-pixel-wide overview is tiled 512x512 (rio-cogeo reports it as untiled)"]
    with rasterio.Env(GDAL_CACHEMAX=max(1, cache_bytes >> 20)), rasterio.open(path) as ds:
        if stats is None:
            stats = band_stats(ds)
        crs, bounds = ds.crs, list(ds.bounds)
        bbox = None
        if crs is not None and is_georeferenced(crs):
            bbox = list(transform_bounds(crs, "EPSG:4326", *bounds, densify_pts=21))
        facts = {"crs": crs_string(crs), "bounds": bounds, "bbox_wgs84": bbox, "shape": [ds.height, ds.width],
                 "transform": list(ds.transform)[:6], "count": ds.count, "dtype": ds.dtypes[0],
                 "nodata": nodata_json(ds.nodata),
                 "compression": ds.compression.name.lower() if ds.compression else "none",
                 "blocksize": list(ds.block_shapes[0]), "colorinterp": [c.name for c in ds.colorinterp],
                 "has_mask": any(MaskFlags.per_dataset in f for f in ds.mask_flag_enums),
                 "provenance": ds.tags().get(cogmod.PROVENANCE_TAG), "tags": ds.tags()}
    facts["overviews"] = cogmod.check_overviews(path, stats)
    facts["band_stats"] = stats
    facts["warnings"] = warnings
    return facts


def band_stats(ds: Any, *, max_bytes: int = STATS_BYTES) -> list[dict[str, Any]]:
    """Exact per-band minimum, maximum, mean, stddev and valid_percent, read in bounded windows.

    The figures of :func:`geoproc.raster.cog.band_stats` (8- and 16-bit integers counted in a
    histogram, other types summed in float64; nodata and masks respected), read in windows of whole
    512 blocks of all bands holding about ``max_bytes`` (at least one block), so memory does not
    grow with the raster and every compressed block is decoded once.
    """
    from rasterio.windows import Window

    from .stats import band_stats as stats_in_windows

    n, itemsize = ds.count, np.dtype(ds.dtypes[0]).itemsize
    rows = BLOCKSIZE
    cols = max(BLOCKSIZE, max_bytes // (rows * n * itemsize) // BLOCKSIZE * BLOCKSIZE)
    windows = (Window(c0, r0, min(cols, ds.width - c0), min(rows, ds.height - r0))
               for r0 in range(0, ds.height, rows) for c0 in range(0, ds.width, cols))
    return stats_in_windows(ds, windows)

