"""The tiling plan: a value object that says how a large raster is cut into output tiles.

A :class:`TilingPlan` is computed from the source header alone (no pixel is read) and answers, with
plain numbers, the questions the job needs (like odc-geo's ``GeoboxTiles``):

* the output grid in the target CRS (:func:`geoproc.raster.grid.output_grid`): GDAL's suggested warp
  output (``gdalwarp`` without ``-tr``), or a given resolution; a source that crosses the antimeridian
  gets a grid that continues past 180° instead of GDAL's whole-world strip;
* the tile size, a multiple of the 512-pixel COG block, chosen so that one task fits the memory budget;
* for tile (row, col): its window in the output grid (plus an optional halo), its transform and bounds,
  and the source window it reads (padded by the resampling kernel), or ``None`` when it sees no source;
* bytes to read and to write, and the estimated memory of one task.

Tiles partition the output grid exactly: tile (r, c) covers rows ``r*T .. min((r+1)*T, H)``, so a
mosaic of the tiles has no gap and no duplicated row.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any

import numpy as np
from affine import Affine
from rasterio.crs import CRS
from rasterio.warp import transform as warp_points

from .footprint import polygon_wgs84
from .grid import SourceInfo, Window, output_grid, pixel_scale, round_up, window_bounds
from .profiles import BLOCKSIZE

log = logging.getLogger(__name__)

BLOCK = BLOCKSIZE  # tiles are made of whole COG blocks
MIN_TILE, MAX_TILE = BLOCK, 16 * BLOCK
SAMPLES_PER_SIDE = 17  # points per tile edge when mapping a tile into the source (curved edges)
WARP_MEM = 16 * 2**20  # GDAL warp working memory per task (``warp_mem_limit``)
GDAL_CACHE = 16 * 2**20  # GDAL block cache per task (``GDAL_CACHEMAX``)
TASK_OVERHEAD = 8 * 2**20  # Python objects, encoder buffers
KERNEL_RADIUS = {"nearest": 1, "bilinear": 1, "cubic": 2, "cubic_spline": 2, "lanczos": 3}


@dataclass(frozen=True)
class Tile:
    """One output tile: where it sits in the output grid and which source pixels it needs."""

    row: int
    col: int
    window: Window  # the tile's own pixels in the output grid (tiles partition the grid)
    outer: Window  # ``window`` grown by the halo, clipped to the grid (what a ``tiles`` output holds)
    transform: tuple[float, ...]  # of ``outer``
    bounds: tuple[float, float, float, float]  # of ``outer``, in the target CRS
    src_window: Window | None  # None: the tile sees no source pixel

    @property
    def key(self) -> str:
        """The stable task key of this tile (task ids and Dask keys derive from it)."""
        return f"r{self.row}c{self.col}"

    @property
    def empty(self) -> bool:
        return self.src_window is None

    @property
    def inner(self) -> Window:
        """``window`` relative to ``outer`` (where the tile's own pixels sit in the array it holds)."""
        return (self.window[0] - self.outer[0], self.window[1] - self.outer[1], self.window[2], self.window[3])


@dataclass(frozen=True)
class TilingPlan:
    """How a source raster becomes output tiles in the target CRS; see the module docstring."""

    source: SourceInfo
    crs: str  # target CRS as given (EPSG:xxxx or WKT)
    transform: tuple[float, ...]
    width: int
    height: int
    tile_size: int
    bands: tuple[int, ...]
    resampling: str = "nearest"
    halo: int = 0
    nodata: float | None = None
    memory_budget: int = 512 * 2**20
    src_windows: tuple[Window | None, ...] = field(default=(), repr=False)  # row-major, one per tile

    # --- construction --------------------------------------------------------------------------------

    @classmethod
    def build(cls, source: SourceInfo, crs: str, *, resolution: float | None = None,
              tile_size: int | None = None, memory_budget: int = 512 * 2**20, halo: int = 0,
              bands: Sequence[int] | None = None, resampling: str = "nearest",
              nodata: float | None = None) -> TilingPlan:
        """Plan the reprojection of ``source`` to ``crs``.

        Args:
            source: the source header.
            crs: target CRS (``EPSG:3857``, WKT, ...).
            resolution: output pixel size in target units; None keeps GDAL's suggested resolution.
            tile_size: output tile side in pixels (a multiple of 512); None picks the largest that
                keeps one task under ``memory_budget``.
            memory_budget: bytes one tile task may use.
            halo: extra output pixels around each tile (``tiles`` output; neighbours overlap).
            bands: 1-based source band indexes in output order (``[5, 3, 2]``); None = all.
            resampling: GDAL resampling name.
            nodata: output nodata; None carries the source's nodata.

        Raises:
            ValueError: bad band index or tile size.
        """
        bands = tuple(bands) if bands else tuple(range(1, source.count + 1))
        bad = [b for b in bands if not 1 <= b <= source.count]
        if bad:
            raise ValueError(f"band(s) {bad} out of range; the source has bands 1..{source.count}")
        if tile_size is not None and (tile_size % BLOCK or not MIN_TILE <= tile_size <= MAX_TILE):
            raise ValueError(f"tile_size={tile_size} must be a multiple of {BLOCK} in [{MIN_TILE}, {MAX_TILE}]")
        transform, width, height = output_grid(source, crs, resolution)
        plan = cls(source=source, crs=crs, transform=tuple(transform)[:6], width=width, height=height,
                   tile_size=tile_size or MAX_TILE, bands=bands, resampling=resampling, halo=halo,
                   nodata=source.nodata if nodata is None else nodata, memory_budget=memory_budget)
        if tile_size is None:
            size = min(MAX_TILE, round_up(max(width, height), BLOCK))
            while True:
                plan = replace(plan, tile_size=size, src_windows=())
                plan = replace(plan, src_windows=tuple(plan._compute_src_windows()))
                if size <= MIN_TILE or plan.memory_per_task <= memory_budget:
                    return plan
                size -= BLOCK
        return replace(plan, src_windows=tuple(plan._compute_src_windows()))

    # --- grid ----------------------------------------------------------------------------------------

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def shape(self) -> tuple[int, int]:
        """Number of tiles (rows, cols)."""
        return math.ceil(self.height / self.tile_size), math.ceil(self.width / self.tile_size)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        return window_bounds(self.affine, (0, 0, self.width, self.height))

    @property
    def dtype(self) -> str:
        return self.source.dtype

    @property
    def colorinterp(self) -> list[str] | None:
        """Colour interpretation of the output bands (the source's, in the order of ``bands``)."""
        ci = self.source.colorinterp
        return [ci[b - 1] for b in self.bands] if ci else None

    def window(self, row: int, col: int) -> Window:
        """The pixels of tile (row, col) in the output grid (edge tiles are cropped)."""
        rows, cols = self.shape
        if not (0 <= row < rows and 0 <= col < cols):
            raise IndexError(f"tile ({row}, {col}) outside the {rows} x {cols} grid")
        t = self.tile_size
        x0, y0 = col * t, row * t
        return x0, y0, min(t, self.width - x0), min(t, self.height - y0)

    def outer(self, row: int, col: int) -> Window:
        """``window(row, col)`` grown by the halo and clipped to the grid."""
        x0, y0, w, h = self.window(row, col)
        x1, y1 = min(self.width, x0 + w + self.halo), min(self.height, y0 + h + self.halo)
        x0, y0 = max(0, x0 - self.halo), max(0, y0 - self.halo)
        return x0, y0, x1 - x0, y1 - y0

    def tile(self, row: int, col: int) -> Tile:
        """Everything a task needs to produce tile (row, col)."""
        outer = self.outer(row, col)
        tr = self.affine @ Affine.translation(outer[0], outer[1])
        src_window = self.src_windows[row * self.shape[1] + col] if self.src_windows else None
        return Tile(row=row, col=col, window=self.window(row, col), outer=outer, transform=tuple(tr)[:6],
                    bounds=window_bounds(self.affine, outer), src_window=src_window)

    def __iter__(self) -> Iterator[Tile]:
        rows, cols = self.shape
        for r in range(rows):
            for c in range(cols):
                yield self.tile(r, c)

    def __len__(self) -> int:
        rows, cols = self.shape
        return rows * cols

    def tiles(self, *, skip_empty: bool = True) -> list[Tile]:
        """All tiles in row-major order; by default without those that see no source pixel."""
        return [t for t in self if not (skip_empty and t.empty)]

    # --- sizes ---------------------------------------------------------------------------------------

    @property
    def out_pixel_bytes(self) -> int:
        return len(self.bands) * self.source.itemsize

    def task_memory(self, tile: Tile) -> int:
        """Estimated peak bytes of the task for ``tile``: source window + output tile + GDAL buffers.

        The source window counts twice: rasterio hands GDAL's warper a copy of the array it is given.
        """
        out = tile.outer[2] * tile.outer[3] * self.out_pixel_bytes * 2  # the array and its encoded copy
        src = 0 if tile.src_window is None else tile.src_window[2] * tile.src_window[3] * self.out_pixel_bytes * 2
        return out + src + WARP_MEM + GDAL_CACHE + TASK_OVERHEAD

    @property
    def memory_per_task(self) -> int:
        """The largest :meth:`task_memory` over the tiles."""
        return max((self.task_memory(t) for t in self), default=0)

    @property
    def bytes_to_read(self) -> int:
        """Uncompressed source bytes the tasks read (overlapping windows counted each time)."""
        return sum(w[2] * w[3] for w in self.src_windows if w) * self.out_pixel_bytes

    @property
    def bytes_to_write(self) -> int:
        """Uncompressed output bytes of the non-empty tiles (halos included)."""
        return sum(t.outer[2] * t.outer[3] for t in self.tiles()) * self.out_pixel_bytes

    def summary(self) -> dict[str, Any]:
        """The figures ``geoproc plan`` prints."""
        rows, cols = self.shape
        return {"source": self.source.url, "source_shape": [self.source.height, self.source.width],
                "crs": self.crs, "shape": [self.height, self.width], "resolution": [self.affine.a, -self.affine.e],
                "bounds": list(self.bounds), "tile_size": self.tile_size, "halo": self.halo,
                "tiles": len(self.tiles()), "grid": [rows, cols], "empty_tiles": len(self) - len(self.tiles()),
                "bands": list(self.bands), "dtype": self.dtype, "bytes_to_read": self.bytes_to_read,
                "bytes_to_write": self.bytes_to_write, "memory_per_task": self.memory_per_task,
                "memory_budget": self.memory_budget}

    # --- serialization -------------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form (what the plan stage returns and the tile stage plans from)."""
        d = asdict(self)
        d["src_windows"] = [list(w) if w else None for w in self.src_windows]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> TilingPlan:
        d = dict(d)
        src = dict(d.pop("source"))
        src["transform"] = tuple(src["transform"])
        if src.get("colorinterp") is not None:
            src["colorinterp"] = tuple(src["colorinterp"])
        return cls(source=SourceInfo(**src), transform=tuple(d.pop("transform")), bands=tuple(d.pop("bands")),
                   src_windows=tuple(tuple(w) if w else None for w in d.pop("src_windows")), **d)

    def footprints(self, *, skip_empty: bool = True) -> dict[str, Any]:
        """The planned tile footprints as a GeoJSON FeatureCollection in EPSG:4326."""
        feats = []
        for t in self.tiles(skip_empty=skip_empty):
            feats.append({"type": "Feature", "id": t.key,
                          "properties": {"key": t.key, "row": t.row, "col": t.col, "window": list(t.outer),
                                         "src_window": list(t.src_window) if t.src_window else None,
                                         "memory": self.task_memory(t)},
                          "geometry": polygon_wgs84(self.crs, t.bounds)})
        return {"type": "FeatureCollection", "features": feats}

    # --- source windows ------------------------------------------------------------------------------

    def _padding(self) -> int:
        """Source pixels of margin around each mapped tile: kernel radius scaled when shrinking."""
        src_res = math.hypot(self.source.affine.a, self.source.affine.b)
        dst_res = math.hypot(self.affine.a, self.affine.b)
        scale = 1.0
        try:  # compare pixel sizes in metres when the CRSs differ in units (degrees vs metres)
            scale = pixel_scale(self.source, self.crs, self.affine, self.width, self.height)
        except Exception:  # noqa: BLE001 - any failure of the point transform: the raw ratio still bounds the kernel
            log.warning("pixel scale of %s -> %s not measurable; padding source windows by the raw resolution "
                        "ratio", self.source.url, self.crs, exc_info=True)
            scale = dst_res / src_res if src_res else 1.0
        radius = KERNEL_RADIUS.get(self.resampling, 1)
        return int(math.ceil(radius * max(1.0, scale))) + 2

    def _compute_src_windows(self) -> list[Window | None]:
        """Map every tile's outline and interior samples into source pixels, in one transform call."""
        tiles = [(r, c, self.outer(r, c)) for r in range(self.shape[0]) for c in range(self.shape[1])]
        n = SAMPLES_PER_SIDE
        u = np.linspace(0.0, 1.0, n)
        gx, gy = np.meshgrid(u, u)
        xs, ys = [], []
        for _, _, (x0, y0, w, h) in tiles:
            px, py = x0 + gx.ravel() * w, y0 + gy.ravel() * h
            X, Y = self.affine @ (px, py)
            xs.append(X)
            ys.append(Y)
        sx, sy = warp_points(self.crs, self.source.crs, np.concatenate(xs).tolist(), np.concatenate(ys).tolist())
        sx, sy = np.asarray(sx), np.asarray(sy)
        if CRS.from_user_input(self.source.crs).is_geographic:
            # longitudes come back in [-180, 180]: move each to the turn nearest the source's centre
            cx = (self.source.affine @ (self.source.width / 2, self.source.height / 2))[0]
            sx = sx + 360.0 * np.round((cx - sx) / 360.0)
        col, row = ~self.source.affine @ (sx, sy)
        col, row = col.reshape(len(tiles), n * n), row.reshape(len(tiles), n * n)
        pad = self._padding()
        W, H = self.source.width, self.source.height
        out: list[Window | None] = []
        for k in range(len(tiles)):
            ok = np.isfinite(col[k]) & np.isfinite(row[k])
            if not ok.any():
                out.append(None)
                continue
            c0 = max(0, int(math.floor(col[k][ok].min())) - pad)
            r0 = max(0, int(math.floor(row[k][ok].min())) - pad)
            c1 = min(W, int(math.ceil(col[k][ok].max())) + pad)
            r1 = min(H, int(math.ceil(row[k][ok].max())) + pad)
            out.append((c0, r0, c1 - c0, r1 - r0) if c1 > c0 and r1 > r0 else None)
        return out
