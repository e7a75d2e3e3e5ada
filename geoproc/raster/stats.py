"""Exact per-band statistics: accumulated block by block, merged across tasks, finished into numbers.

Every COG geoproc writes carries, per band, the minimum, maximum, mean, standard deviation and the
share of valid pixels (the STAC ``raster:bands`` statistics). They are exact, not sampled:

* 8- and 16-bit integers are counted in a histogram (integer sums, no rounding at any size);
* other types are summed in float64 (count, sum, sum of squares, min, max).

:class:`BandStats` holds those running figures. Because they add up, the tiles of a tiled job each
count their own pixels in parallel and the finalize step merges the counts (:meth:`BandStats.merge`)
instead of decoding the whole assembled COG once more. Its JSON form (:meth:`BandStats.to_json`)
travels in task results; histograms go as zlib-compressed base64, a few hundred bytes for 8-bit data.

Valid pixels exclude masked pixels, the nodata value, NaN and infinities.
"""

from __future__ import annotations

import base64
import math
import zlib
from collections.abc import Iterable, Iterator
from typing import Any

import numpy as np
import rasterio
from rasterio.enums import MaskFlags
from rasterio.windows import Window

READ_PIXELS = 8_000_000  # pixels per band in one windowed read of :func:`band_stats`
CHUNK = 1 << 22  # values counted at once by :meth:`BandStats.add` (a 32 MiB int64 temporary)


class BandStats:
    """Running exact statistics of the bands of one raster (see the module docstring)."""

    def __init__(self, count: int, dtype: str, nodata: float | None = None):
        self.count = count
        self.dtype = np.dtype(dtype)
        self.nodata = None if nodata is None else float(nodata)
        kind, size = self.dtype.kind, self.dtype.itemsize
        self.offset = -int(np.iinfo(self.dtype).min) if kind in "iu" and size <= 2 else 0
        self.hist = np.zeros((count, 1 << (8 * size)), dtype="int64") if kind in "iu" and size <= 2 else None
        self.cnt = np.zeros(count)
        self.s1 = np.zeros(count)
        self.s2 = np.zeros(count)
        self.lo = np.full(count, np.inf)
        self.hi = np.full(count, -np.inf)
        self.nodata_bin = self._nodata_bin()

    def _nodata_bin(self) -> int | None:
        """The histogram bin of the nodata value, when nodata is a value of this integer type."""
        nd = self.nodata
        if self.hist is None or nd is None or not math.isfinite(nd) or not nd.is_integer():
            return None
        info = np.iinfo(self.dtype)
        return int(nd) + self.offset if info.min <= nd <= info.max else None

    def add(self, data: np.ndarray) -> None:
        """Count a ``(bands, rows, cols)`` block (a masked array leaves its masked pixels out).

        The values are counted :data:`CHUNK` at a time: ``np.bincount`` and the float64 sums make
        8-byte copies of what they are given, which for a whole warped tile would be several times
        the tile itself.
        """
        masked = np.ma.isMaskedArray(data)
        for b in range(self.count):
            v = data[b].compressed() if masked else np.asarray(data[b]).ravel()
            for k in range(0, v.size, CHUNK):
                self._add_values(b, v[k:k + CHUNK])

    def _add_values(self, b: int, v: np.ndarray) -> None:
        if self.hist is not None:
            h = np.bincount((v.astype("int32") + self.offset) if self.offset else v, minlength=self.hist.shape[1])
            if self.nodata_bin is not None:
                h[self.nodata_bin] = 0
            self.hist[b] += h
            return
        keep = np.isfinite(v) if v.dtype.kind == "f" else None
        if self.nodata is not None and not math.isnan(self.nodata):
            keep = v != self.nodata if keep is None else keep & (v != self.nodata)
        if keep is not None and not keep.all():  # copy only the blocks that hold nodata
            v = v[keep]
        if v.size == 0:
            return
        v64 = v.astype("float64")
        self.cnt[b] += v.size
        self.s1[b] += v64.sum()
        self.s2[b] += float(np.dot(v64, v64))  # the sum of squares without a temporary
        self.lo[b] = min(self.lo[b], float(v.min()))
        self.hi[b] = max(self.hi[b], float(v.max()))

    def merge(self, other: BandStats) -> None:
        """Add the counts of ``other`` (the same bands and type, other pixels)."""
        if other.count != self.count or other.dtype != self.dtype:
            raise ValueError(f"cannot merge statistics of {other.count} x {other.dtype} into {self.count} x {self.dtype}")
        if self.hist is not None:
            self.hist += other.hist
            return
        self.cnt += other.cnt
        self.s1 += other.s1
        self.s2 += other.s2
        self.lo = np.minimum(self.lo, other.lo)
        self.hi = np.maximum(self.hi, other.hi)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"count": self.count, "dtype": self.dtype.name, "nodata": self.nodata}
        if self.hist is not None:
            out["hist"] = [base64.b64encode(zlib.compress(h.tobytes(), 6)).decode() for h in self.hist]
        else:
            out.update(cnt=self.cnt.tolist(), s1=self.s1.tolist(), s2=self.s2.tolist(),
                       lo=[None if math.isinf(x) else x for x in self.lo],
                       hi=[None if math.isinf(x) else x for x in self.hi])
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BandStats:
        acc = cls(d["count"], d["dtype"], d.get("nodata"))
        if acc.hist is not None:
            for b, blob in enumerate(d["hist"]):
                acc.hist[b] = np.frombuffer(zlib.decompress(base64.b64decode(blob)), dtype="int64")
        else:
            acc.cnt, acc.s1, acc.s2 = (np.array(d[k], dtype="float64") for k in ("cnt", "s1", "s2"))
            acc.lo = np.array([np.inf if x is None else x for x in d["lo"]])
            acc.hi = np.array([-np.inf if x is None else x for x in d["hi"]])
        return acc

    def result(self, total: int) -> list[dict[str, Any]]:
        """Per band: minimum, maximum, mean, stddev (population) and valid_percent of ``total`` pixels."""
        out = []
        for b in range(self.count):
            if self.hist is not None:
                present = np.nonzero(self.hist[b])[0]
                counts = [int(c) for c in self.hist[b][present]]
                values = [int(x) - self.offset for x in present]
                count = sum(counts)
                if count:
                    t1 = sum(c * x for c, x in zip(counts, values, strict=True))
                    t2 = sum(c * x * x for c, x in zip(counts, values, strict=True))
                    var = max(0.0, (t2 * count - t1 * t1) / (count * count))
                    out.append({"minimum": values[0], "maximum": values[-1], "mean": float(t1 / count),
                                "stddev": math.sqrt(var), "valid_percent": round(100.0 * count / total, 4)})
                    continue
            elif self.cnt[b]:
                mean = self.s1[b] / self.cnt[b]
                var = max(0.0, self.s2[b] / self.cnt[b] - mean * mean)
                out.append({"minimum": _num(self.lo[b]), "maximum": _num(self.hi[b]), "mean": float(mean),
                            "stddev": math.sqrt(var), "valid_percent": round(100.0 * float(self.cnt[b]) / total, 4)})
                continue
            out.append({"minimum": None, "maximum": None, "mean": None, "stddev": None, "valid_percent": 0.0})
        return out


def assembled_stats(counted: BandStats | None, *, covered: int, width: int, height: int,
                    lossless: bool) -> list[dict[str, Any]] | None:
    """The statistics of a raster assembled from tiles, from the tiles' counts; None to measure the file.

    ``counted`` holds the counts of every written tile and ``covered`` the pixels those tiles own;
    together the tiles partition the ``width`` x ``height`` grid except for tiles never written (no
    source), whose pixels are nodata and rightly not counted. The counts are the file's when its codec
    is ``lossless``, and when the grid has a nodata value or the tiles cover it all: without nodata the
    unwritten pixels would be valid zeros that no tile saw.
    """
    if counted is None or not lossless:
        return None
    if counted.nodata is None and covered != width * height:
        return None
    return counted.result(width * height)


def _num(x: float) -> float | int:
    return int(x) if float(x).is_integer() else float(x)


def band_stats(ds: rasterio.DatasetReader, windows: Iterable[Any] | None = None) -> list[dict[str, Any]]:
    """Exact per-band statistics of an open raster.

    Read in strips of whole blocks, or in the ``windows`` given (which must cover the raster once).
    Masked reads are used only when the raster has a mask or alpha band; nodata alone is left out
    by :class:`BandStats` without building masks.
    """
    acc = BandStats(ds.count, ds.dtypes[0], ds.nodata)
    masked = any(flags not in ([MaskFlags.all_valid], [MaskFlags.nodata]) for flags in ds.mask_flag_enums)
    if windows is None:
        block_h = ds.block_shapes[0][0] if ds.block_shapes else 512
        rows = max(block_h, READ_PIXELS // max(1, ds.width) // block_h * block_h)
        windows = [((r0, min(r0 + rows, ds.height)), (0, ds.width)) for r0 in range(0, ds.height, rows)]
    for window in windows:
        acc.add(ds.read(window=window, masked=masked))
    return acc.result(ds.width * ds.height)


def block_windows(ds: rasterio.DatasetReader, max_bytes: int, block: int = 512) -> Iterator[Window]:
    """Windows of whole ``block`` x ``block`` blocks of all bands holding about ``max_bytes`` (at least
    one block), covering the raster once, for :func:`band_stats` in bounded memory: memory does not
    grow with the raster and every compressed block is decoded once."""
    n, itemsize = ds.count, np.dtype(ds.dtypes[0]).itemsize
    rows = block
    cols = max(block, max_bytes // (rows * n * itemsize) // block * block)
    for r0 in range(0, ds.height, rows):
        for c0 in range(0, ds.width, cols):
            yield Window(c0, r0, min(cols, ds.width - c0), min(rows, ds.height - r0))


def raw_band_stats(ds: rasterio.DatasetReader) -> list[dict[str, Any]]:
    """:func:`band_stats`, by GDAL's own statistics routine where it is exact, for uncompressed rasters.

    GDAL computes exact statistics (``approx=False``) with vectorised loops, several times faster
    than NumPy, but reports the valid share to four digits only and ignores per-dataset masks. It is
    used for integer rasters without nodata or mask, whose pixels are all valid; the others go
    through :func:`band_stats`. Open ``ds`` with ``GDAL_PAM_ENABLED=NO``: GDAL would otherwise save
    the statistics in a side file.
    """
    every_pixel_valid = all(flags == [MaskFlags.all_valid] for flags in ds.mask_flag_enums)
    if not every_pixel_valid or any(np.dtype(d).kind not in "iu" for d in ds.dtypes):
        return band_stats(ds)
    return [{"minimum": _num(st.min), "maximum": _num(st.max), "mean": float(st.mean), "stddev": float(st.std),
             "valid_percent": 100.0} for st in ds.stats(approx=False)]
