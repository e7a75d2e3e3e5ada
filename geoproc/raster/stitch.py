"""One COG stitched from blocks compressed where they were computed: the assembly only copies bytes.

Compressing is most of the cost of writing a COG (DEFLATE or ZSTD with a predictor over every block).
A write's region tasks therefore compress their own blocks, on every worker at once, into *parts*:
tiled GeoTIFFs written by GDAL with the COG's codec, level, predictor and 512 x 512 blocks, one file
per pyramid level the region holds whole blocks of (:func:`region_levels`). :func:`stitch_cog` then
reads each part's block offsets and writes the COG around those bytes, laid out as GDAL's COG driver
lays it out:

* the TIFF header, then GDAL's structural metadata (IFDs before the data, blocks in row-major order,
  each block led by its size as 4 bytes and trailed by its last 4 bytes repeated), so that GDAL
  reports ``LAYOUT=COG`` and can check a block's integrity;
* every IFD, full resolution first, then the overviews, largest first;
* the blocks, smallest overview first and full resolution last, row by row (band by band for a
  band-interleaved file).

Nothing is decoded or encoded: the assembly copies the compressed bytes one block at a time. (odc-geo's
``save_cog_with_dask`` compresses blocks in Dask tasks the same way; geoproc's parts are written by
GDAL, so the codec and its tags are GDAL's own.) The tags of each level are copied from its parts
(codec, predictor, sample format, nodata); the GeoTIFF keys from the part at the grid's origin. The TIFF
read and written here is the subset GDAL writes for a tiled little-endian GeoTIFF, classic or BigTIFF
(chosen by the output's size).
"""

from __future__ import annotations

import math
import os
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO
from xml.sax.saxutils import escape, quoteattr

import numpy as np
import rasterio
from affine import Affine

from .overviews import build_overview_levels, downsample
from .profiles import BLOCKSIZE
from .vrt import build_vrt
from .writers import write_part

# sizes of the TIFF field types (BYTE, ASCII, SHORT, LONG, RATIONAL, SBYTE, UNDEFINED, SSHORT, SLONG,
# SRATIONAL, FLOAT, DOUBLE, LONG8, SLONG8, IFD8)
TYPE_SIZE = {1: 1, 2: 1, 3: 2, 4: 4, 5: 8, 6: 1, 7: 1, 8: 2, 9: 4, 10: 8, 11: 4, 12: 8, 13: 4, 16: 8, 17: 8, 18: 8}
_UINT = {3: "<u2", 4: "<u4", 16: "<u8"}
ASCII, SHORT, LONG, LONG8 = 2, 3, 4, 16

NEW_SUBFILE_TYPE, WIDTH, HEIGHT = 254, 256, 257
SAMPLES_PER_PIXEL, PLANAR_CONFIG = 277, 284
TILE_WIDTH, TILE_LENGTH, TILE_OFFSETS, TILE_BYTE_COUNTS = 322, 323, 324, 325
GEO_TAGS = frozenset({33550, 33922, 34264, 34735, 34736, 34737})  # pixel scale, tiepoint, transform, keys
GDAL_METADATA = 42112
NOT_COPIED = frozenset({NEW_SUBFILE_TYPE, WIDTH, HEIGHT, TILE_OFFSETS, TILE_BYTE_COUNTS, GDAL_METADATA, 273, 279})

STRUCTURE = ("LAYOUT=IFDS_BEFORE_DATA\nBLOCK_ORDER=ROW_MAJOR\nBLOCK_LEADER=SIZE_AS_UINT4\n"
             "BLOCK_TRAILER=LAST_4_BYTES_REPEATED\nKNOWN_INCOMPATIBLE_EDITION=NO\n ")
GHOST = f"GDAL_STRUCTURAL_METADATA_SIZE={len(STRUCTURE):06d} bytes\n{STRUCTURE}".encode()

POOL_SIZE = 8  # parts a level's mosaic keeps open

# overview kernels whose 2x output pixel depends only on its own 2 x 2 source pixels: a region aligned
# on whole blocks of a level computes that level exactly as the whole raster would
LOCAL_KERNELS = frozenset({"nearest", "average", "mode", "min", "max", "med", "q1", "q3", "rms"})


@dataclass(frozen=True)
class Entry:
    """One TIFF tag: its field type, value count and value bytes (little-endian), copied as they are."""

    type: int
    count: int
    data: bytes

    def values(self) -> np.ndarray:
        return np.frombuffer(self.data, _UINT[self.type]).astype(np.int64)

    def __int__(self) -> int:
        return int(self.values()[0])


Ifd = dict[int, Entry]


@dataclass(frozen=True)
class Part:
    """A tiled GeoTIFF holding a block-aligned piece of one level: ``row`` and ``col`` are its first
    block's row and column in that level."""

    path: str
    row: int = 0
    col: int = 0


def region_levels(block_rows: int, block_cols: int, resampling: str, levels: int) -> int:
    """How many overview levels a region of ``block_rows`` x ``block_cols`` blocks (on a lattice of
    such regions) computes itself: while its level's edges still fall on whole blocks, and only for
    kernels that see no pixel beyond their own 2 x 2 cell (others need the neighbours' pixels)."""
    if resampling not in LOCAL_KERNELS:
        return 0
    n = 0
    while n < levels and block_rows % 2 ** (n + 1) == 0 and block_cols % 2 ** (n + 1) == 0:
        n += 1
    return n


def level_shape(width: int, height: int, level: int) -> tuple[int, int]:
    """(width, height) of overview ``level`` (0 is full resolution): halved, rounding up, per level."""
    for _ in range(level):
        width, height = (width + 1) // 2, (height + 1) // 2
    return width, height


def write_region(data: np.ndarray, work_dir: str, *, crs: Any, transform: Sequence[float], nodata: float | None,
                 options: dict[str, Any], levels: int, resampling: str) -> list[str]:
    """Compress a region's pixels (``(bands, rows, cols)``) into its parts: the full resolution
    ``l0.tif`` and its first ``levels`` overviews ``l1.tif``... (:func:`region_levels`), each with the
    creation ``options`` of the COG (:func:`~geoproc.raster.profiles.part_options`).

    Returns:
        The part files, full resolution first.
    """
    files = []
    for k in range(levels + 1):
        if k:
            data = downsample(data, resampling, nodata)
            transform = Affine(*transform[:6]) @ Affine.scale(2)  # its georeference is not copied into the COG
        files.append(os.path.join(work_dir, f"l{k}.tif"))
        write_part(data, files[-1], crs=crs, transform=transform, nodata=nodata, options=options)
    return files


def remaining_levels(parts: Sequence[Part], work_dir: str, *, levels: int, resampling: str, grid: Mapping[str, Any],
                     options: dict[str, Any]) -> list[list[Part]]:
    """The overview levels the regions did not compute, each from the previous one (the first from the
    mosaic of ``parts``, the deepest level the regions computed), in bounded memory.

    Args:
        parts: that deepest level's parts.
        work_dir: where the level files go.
        levels: how many levels are still to compute.
        resampling: GDAL kernel of the overviews.
        grid: the level's grid: ``crs_wkt``, ``count``, ``dtype``, ``nodata`` (its georeference is not used).
        options: creation options of the COG's parts.

    Returns:
        One list of one :class:`Part` per level computed.
    """
    if not levels:
        return []
    sources, width, height = [], 0, 0
    for p in parts:
        with open(p.path, "rb") as f:
            ifd = read_ifds(f)[0]
        w, h = int(ifd[WIDTH]), int(ifd[HEIGHT])
        x, y = p.col * BLOCKSIZE, p.row * BLOCKSIZE
        sources.append((p.path, (0, 0, w, h), (x, y, w, h)))
        width, height = max(width, x + w), max(height, y + h)
    mosaic = os.path.join(work_dir, "mosaic.vrt")
    build_vrt(mosaic, crs_wkt=grid["crs_wkt"], transform=(1, 0, 0, 0, -1, 0), width=width, height=height,
              count=grid["count"], dtype=grid["dtype"], nodata=grid.get("nodata"), sources=sources)
    with rasterio.Env(VRT_NUM_THREADS=1, GDAL_MAX_DATASET_POOL_SIZE=POOL_SIZE):
        files = build_overview_levels(mosaic, work_dir, levels=levels, resampling=resampling, nodata=grid.get("nodata"),
                                      name="tail{k}.tif", options=options)
    return [[Part(f)] for f in files]


def read_ifds(f: BinaryIO) -> list[Ifd]:
    """The IFDs of a little-endian TIFF or BigTIFF file, each as {tag: :class:`Entry`}."""
    head = f.read(16)
    if head[:2] != b"II":
        raise ValueError("not a little-endian TIFF")
    big = struct.unpack_from("<H", head, 2)[0] == 43
    count_fmt, ptr_fmt, entry_size, inline = ("<Q", "<Q", 20, 8) if big else ("<H", "<I", 12, 4)
    offset = struct.unpack_from("<Q" if big else "<I", head, 8 if big else 4)[0]
    ifds: list[Ifd] = []
    while offset:
        f.seek(offset)
        n = struct.unpack(count_fmt, f.read(struct.calcsize(count_fmt)))[0]
        raw = f.read(n * entry_size + struct.calcsize(ptr_fmt))
        ifd: Ifd = {}
        for i in range(n):
            at = i * entry_size
            tag, typ = struct.unpack_from("<HH", raw, at)
            count = struct.unpack_from(ptr_fmt, raw, at + 4)[0]
            size = count * TYPE_SIZE.get(typ, 1)
            value_at = at + 4 + struct.calcsize(ptr_fmt)
            if size <= inline:
                data = raw[value_at:value_at + size]
            else:
                here = f.tell()
                f.seek(struct.unpack_from(ptr_fmt, raw, value_at)[0])
                data = f.read(size)
                f.seek(here)
            ifd[tag] = Entry(typ, count, data)
        ifds.append(ifd)
        offset = struct.unpack_from(ptr_fmt, raw, n * entry_size)[0]
    return ifds


def gdal_metadata(tags: Mapping[str, str] | None = None, descriptions: Sequence[str | None] | None = None) -> str | None:
    """The GDAL_METADATA XML GDAL writes for dataset ``tags`` and band ``descriptions`` (None when empty)."""
    def text(v: str) -> str:  # GDAL escapes a value before its XML writer escapes it again
        return escape(escape(v))

    items = [f"  <Item name={quoteattr(str(k))}>{text(str(v))}</Item>" for k, v in (tags or {}).items()]
    items += [f'  <Item name="DESCRIPTION" sample="{i}" role="description">{text(d)}</Item>'
              for i, d in enumerate(descriptions or ()) if d]
    return "<GDALMetadata>\n" + "\n".join(items) + "\n</GDALMetadata>\n" if items else None


@dataclass
class _Level:
    ifd: Ifd
    width: int
    height: int
    files: list[str]
    source: np.ndarray  # per block of the level, in TIFF order: index of the file (-1: none)
    offset: np.ndarray  # per block: offset in that file
    length: np.ndarray  # per block: byte count


def _level(parts: Sequence[Part], geo: bool) -> _Level:
    """Read the parts of one level: their tags and where each of the level's blocks lies."""
    found = []
    for p in parts:
        with open(p.path, "rb") as f:
            ifd = read_ifds(f)[0]
        if int(ifd[TILE_WIDTH]) != BLOCKSIZE or int(ifd[TILE_LENGTH]) != BLOCKSIZE:
            raise ValueError(f"{p.path}: blocks are not {BLOCKSIZE} x {BLOCKSIZE}")
        found.append((p, ifd))
    width = max(p.col * BLOCKSIZE + int(ifd[WIDTH]) for p, ifd in found)
    height = max(p.row * BLOCKSIZE + int(ifd[HEIGHT]) for p, ifd in found)
    across, down = math.ceil(width / BLOCKSIZE), math.ceil(height / BLOCKSIZE)
    first = next((ifd for p, ifd in found if p.row == 0 and p.col == 0), found[0][1])
    planes = int(first[SAMPLES_PER_PIXEL]) if PLANAR_CONFIG in first and int(first[PLANAR_CONFIG]) == 2 else 1
    n = planes * down * across
    source, offset, length = np.full(n, -1, np.int64), np.zeros(n, np.int64), np.zeros(n, np.int64)
    for i, (p, ifd) in enumerate(found):
        w, h = int(ifd[WIDTH]), int(ifd[HEIGHT])
        pa, pd = math.ceil(w / BLOCKSIZE), math.ceil(h / BLOCKSIZE)
        ys, xs = np.meshgrid(np.arange(pd) + p.row, np.arange(pa) + p.col, indexing="ij")
        idx = (np.arange(planes)[:, None, None] * down * across + ys * across + xs).ravel()
        if (source[idx] >= 0).any():
            raise ValueError(f"{p.path}: its blocks overlap another part's")
        source[idx] = i
        offset[idx] = ifd[TILE_OFFSETS].values()
        length[idx] = ifd[TILE_BYTE_COUNTS].values()
    if (source < 0).any():
        raise ValueError(f"the parts leave {int((source < 0).sum())} of {n} blocks uncovered")
    keep = {t: e for t, e in first.items() if t not in NOT_COPIED and (geo or t not in GEO_TAGS)}
    return _Level(keep, width, height, [p.path for p, _ in found], source, offset, length)


def _entry(typ: int, values: Sequence[int] | np.ndarray) -> Entry:
    arr = np.asarray(values, dtype=_UINT[typ])
    return Entry(typ, arr.size, arr.tobytes())


def _ascii(text: str) -> Entry:
    data = text.encode() + b"\0"
    return Entry(ASCII, len(data), data)


def stitch_cog(levels: Sequence[Sequence[Part]], out_path: str, *, metadata: str | None = None,
               bigtiff: bool | None = None) -> dict[str, int]:
    """Write the COG at local ``out_path`` from the parts of each level, copying their compressed blocks.

    Args:
        levels: ``levels[0]`` the full resolution's parts, ``levels[k]`` the k-th overview's; together
            the parts of a level cover each of its blocks once.
        out_path: the COG to write.
        metadata: the GDAL_METADATA XML of the dataset (:func:`gdal_metadata`).
        bigtiff: write a BigTIFF; None when the file would not fit a classic TIFF's 4 GiB.

    Returns:
        ``{"blocks": n, "bytes": size of the file, "bigtiff": 0 or 1}``

    Raises:
        ValueError: parts that overlap, leave blocks uncovered, or are not tiled in 512 x 512 blocks.
    """
    read = [_level(parts, geo=k == 0) for k, parts in enumerate(levels)]
    ifds: list[Ifd] = []
    for k, lv in enumerate(read):
        ifd = dict(lv.ifd)
        ifd[WIDTH], ifd[HEIGHT] = _entry(LONG, [lv.width]), _entry(LONG, [lv.height])
        if k:
            ifd[NEW_SUBFILE_TYPE] = _entry(LONG, [1])
        elif metadata:
            ifd[GDAL_METADATA] = _ascii(metadata)
        ifds.append(ifd)
    data_bytes = sum(int(lv.length.sum()) + 8 * int((lv.length > 0).sum()) for lv in read)
    for big in (False, True) if bigtiff is None else (bigtiff,):
        kind = LONG8 if big else LONG  # the offsets' and byte counts' field type
        full = [{**ifd, TILE_OFFSETS: _entry(kind, np.zeros_like(lv.length)), TILE_BYTE_COUNTS: _entry(kind, lv.length)}
                for ifd, lv in zip(ifds, read, strict=True)]
        starts, end = _layout(full, big)
        if big or bigtiff is False or end + data_bytes < 2**32:
            break
    offsets = _data_offsets(read, end)
    with open(out_path, "wb") as out:
        head = struct.pack("<2sHHHQ", b"II", 43, 8, 0, starts[0]) if big else struct.pack("<2sHI", b"II", 42, starts[0])
        out.write(head + GHOST)
        for k, (ifd, at) in enumerate(zip(full, starts, strict=True)):
            nxt = starts[k + 1] if k + 1 < len(starts) else 0
            out.write(b"\0" * (at - out.tell()))
            out.write(_ifd_bytes({**ifd, TILE_OFFSETS: _entry(kind, offsets[k])}, at, nxt, big))
        out.write(b"\0" * (end - out.tell()))
        _copy_blocks(read, out)
        size = out.tell()
    return {"blocks": sum(len(lv.length) for lv in read), "bytes": size, "bigtiff": int(big)}


def _layout(ifds: list[Ifd], big: bool) -> tuple[list[int], int]:
    """Where each IFD starts (each on an even offset, its out-of-line values after it), and where the
    blocks start. An IFD's size does not depend on the offsets it holds, only on how many there are."""
    at = (16 if big else 8) + len(GHOST)
    starts = []
    for ifd in ifds:
        at += at % 2
        starts.append(at)
        at += len(_ifd_bytes(ifd, at, 0, big))
    return starts, at + at % 2


def _data_offsets(read: list[_Level], start: int) -> list[np.ndarray]:
    """Each level's block offsets when the blocks are written smallest level first, each led by its size
    (4 bytes) and trailed by its last 4 bytes."""
    offsets: list[np.ndarray] = [np.zeros(0)] * len(read)
    at = start
    for k in reversed(range(len(read))):
        length = read[k].length
        step = np.where(length > 0, length + 8, 0)
        ends = at + np.cumsum(step)
        offsets[k] = np.where(length > 0, ends - step + 4, 0)
        at = int(ends[-1]) if len(ends) else at
    return offsets


def _ifd_bytes(ifd: Ifd, at: int, nxt: int, big: bool) -> bytes:
    """One IFD written at offset ``at``, its out-of-line values right after it."""
    ptr, inline = ("<Q", 8) if big else ("<I", 4)
    head = struct.pack("<Q" if big else "<H", len(ifd))
    entries, values = [], b""
    value_at = at + len(head) + (20 if big else 12) * len(ifd) + inline
    for tag in sorted(ifd):
        e = ifd[tag]
        if len(e.data) <= inline:
            field = e.data.ljust(inline, b"\0")
        else:
            field = struct.pack(ptr, value_at + len(values))
            values += e.data + b"\0" * (len(e.data) % 2)
        entries.append(struct.pack("<HH", tag, e.type) + struct.pack(ptr, e.count) + field)
    return head + b"".join(entries) + struct.pack(ptr, nxt) + values


def _copy_blocks(read: list[_Level], out: BinaryIO) -> None:
    """Copy every block, smallest level first, with GDAL's leader and trailer around it."""
    for lv in reversed(read):
        fds = [os.open(p, os.O_RDONLY) for p in lv.files]
        try:
            for src, off, n in zip(lv.source.tolist(), lv.offset.tolist(), lv.length.tolist(), strict=True):
                if n:
                    block = os.pread(fds[src], n, off)
                    if len(block) != n:
                        raise ValueError(f"{lv.files[src]}: a block is cut short")
                    out.write(struct.pack("<I", n) + block + block[-4:])
        finally:
            for fd in fds:
                os.close(fd)
