"""GDAL VRT mosaics: files placed on a grid by their own transforms, optionally with overview files.

A VRT mosaics the tiles of a tiled job without copying a pixel: each source is placed by the offset
between its transform and the grid's (:func:`placement`), which must be a whole number of pixels.
The same writer names precomputed overview files, so GDAL's COG driver copies them instead of
computing overviews (:func:`geoproc.raster.assemble.assemble_cog`).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Sequence
from xml.sax.saxutils import escape

log = logging.getLogger(__name__)

Placement = tuple[str, tuple[int, int, int, int], tuple[int, int, int, int]]  # path, src rect, dst rect

GDAL_TYPES = {"uint8": "Byte", "int8": "Int8", "uint16": "UInt16", "int16": "Int16", "uint32": "UInt32",
              "int32": "Int32", "uint64": "UInt64", "int64": "Int64", "float32": "Float32", "float64": "Float64"}


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
              colorinterp: Sequence[str] | None = None, descriptions: Sequence[str] | None = None) -> None:
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
        descriptions: band descriptions (names), which GDAL's COG driver copies into the COG.
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
        if descriptions:
            lines.append(f"    <Description>{escape(str(descriptions[b - 1]))}</Description>")
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


def _num(v: float) -> str:
    if isinstance(v, float) and math.isnan(v):
        return "nan"
    return repr(int(v)) if float(v).is_integer() else repr(float(v))
