"""Users' own functions over regions: ``module:callable`` or ``path/to/file.py:callable``.

A function has the shape of mapchete's process function or odc-stats' ``reduce``::

    def focal_mean(ds: xarray.Dataset) -> xarray.DataArray | xarray.Dataset: ...

It is called once per output region, on the worker that writes the region, with the inputs of that
region *plus* ``halo`` pixels of context on every side, computed and in memory (an ``xarray.Dataset``
of ``(y, x)`` variables with their coordinates; nodata is NaN). It returns the same pixels: one
DataArray, ``(y, x)`` or ``(band, y, x)``, or a Dataset whose variables become the bands in order.
geoproc checks the result's dims, shape, bands and dtype, cuts the halo off and writes the rest.

At the raster's edge the halo is cut off rather than padded: the function sees the raster's edge
exactly as it would on the whole raster. So wherever an output pixel depends only on the input pixels
at most ``halo`` away from it, the result equals the function applied to the whole raster at once,
edges included (``xarray``'s ``rolling(..., min_periods=1)``, a ``scipy.ndimage`` filter with
``mode="nearest"``, ...). A function that looks further than ``halo`` sees a truncated neighbourhood
near region boundaries: give the halo its reach.

A function is imported where it runs: in the driver, which calls it once on a small window to learn
its bands and dtype and to fail early, and on every worker. ``module:callable`` must be importable on
all of them; ``file.py:callable`` is loaded from a path they all see. Its :meth:`Function.token` hashes
the source file, so editing the function makes its regions run again.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from ..errors import FUNCTION_FAILED, FUNCTION_IMPORT, FUNCTION_RESULT, InvalidInput

if TYPE_CHECKING:
    import xarray as xr


@dataclass(frozen=True)
class Function:
    """A user function named by ``module:callable`` or ``path/to/file.py:callable``."""

    spec: str
    module: str
    name: str

    @classmethod
    def parse(cls, spec: str) -> Function:
        """Check the spelling (nothing is imported)."""
        module, sep, name = spec.strip().rpartition(":")
        if not sep or not module or not name.isidentifier():
            raise InvalidInput(f"function={spec!r} is not module:callable or path/to/file.py:callable, "
                               "e.g. mypackage.filters:focal_mean", code=FUNCTION_IMPORT)
        if not module.endswith(".py") and not all(part.isidentifier() for part in module.split(".")):
            raise InvalidInput(f"function={spec!r}: {module!r} is neither a module name nor a .py file",
                               code=FUNCTION_IMPORT)
        return cls(spec.strip(), module, name)

    @property
    def is_file(self) -> bool:
        return self.module.endswith(".py")

    def source_file(self) -> str | None:
        """The file the function's module is loaded from (None for a module without one)."""
        if self.is_file:
            return os.path.abspath(os.path.expanduser(self.module))
        try:
            spec = importlib.util.find_spec(self.module)
        except (ImportError, ValueError):
            return None
        return spec.origin if spec and spec.origin and os.path.isfile(spec.origin) else None

    def token(self) -> str:
        """The spec and the content of its source file: an edited function is another computation."""
        h = hashlib.sha256(self.spec.encode())
        path = self.source_file()
        if path is None and self.is_file:
            raise InvalidInput(f"function={self.spec!r}: no file {self.module!r}", code=FUNCTION_IMPORT)
        if path is not None:
            with open(path, "rb") as f:
                h.update(f.read())
        return h.hexdigest()[:32]

    def load(self) -> Callable[[xr.Dataset], Any]:
        """Import the module (or load the file) and return the callable."""
        try:
            module = _load_file(self.source_file() or self.module) if self.is_file else importlib.import_module(self.module)
        except InvalidInput:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure of the user's module while importing it
            raise InvalidInput(f"function={self.spec!r}: importing {self.module!r} failed: "
                               f"{type(exc).__name__}: {exc}", code=FUNCTION_IMPORT) from None
        fn = getattr(module, self.name, None)
        if not callable(fn):
            raise InvalidInput(f"function={self.spec!r}: {self.module!r} has no callable {self.name!r}",
                               code=FUNCTION_IMPORT)
        return fn


def _load_file(path: str) -> Any:
    if not os.path.isfile(path):
        raise InvalidInput(f"no file {path!r} (a function file must be on a path the driver and every worker "
                           "see)", code=FUNCTION_IMPORT)
    name = "geoproc_user_" + hashlib.sha256(path.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise InvalidInput(f"{path!r} cannot be loaded as a Python module", code=FUNCTION_IMPORT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses and pickling look modules up by name
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module


def grow(span: tuple[int, int], halo: int, size: int) -> tuple[int, int]:
    """``span`` widened by ``halo`` on both sides, cut at the raster's edge ``[0, size)``."""
    return max(0, span[0] - halo), min(size, span[1] + halo)


@dataclass(frozen=True)
class Shape:
    """What a function's results must look like: the first result's bands and dtype."""

    bands: list[str] | None  # None: a (y, x) result
    dtype: str


def apply(fn: Callable[[xr.Dataset], Any], ds: xr.Dataset, *, where: str, spec: str) -> xr.DataArray:
    """Call ``fn`` on ``ds`` and give its result as a DataArray of ``ds``'s pixels, ``(y, x)`` or
    ``(band, y, x)``; an exception or a result of another kind is an :class:`InvalidInput`."""
    import xarray as xr

    try:
        out = fn(ds)
    except Exception as exc:  # noqa: BLE001 - the user's function failed; its task fails with the reason
        raise InvalidInput(f"function {spec} raised on {where}: {type(exc).__name__}: {exc}",
                           code=FUNCTION_FAILED) from None
    if isinstance(out, xr.Dataset):
        bad = [str(k) for k, v in out.data_vars.items() if set(v.dims) != {"y", "x"}]
        if bad or not out.data_vars:
            raise InvalidInput(f"function {spec} returned a Dataset on {where} whose variables are not all "
                               f"(y, x): {bad or 'no variables'}", code=FUNCTION_RESULT)
        out = xr.concat([v.reset_coords(drop=True).transpose("y", "x") for v in out.data_vars.values()],
                        dim="band").assign_coords(band=[str(k) for k in out.data_vars])
    if not isinstance(out, xr.DataArray):
        raise InvalidInput(f"function {spec} returned {type(out).__name__} on {where}; it must return an "
                           "xarray DataArray or Dataset", code=FUNCTION_RESULT)
    dims = set(out.dims)
    if dims not in ({"y", "x"}, {"band", "y", "x"}):
        raise InvalidInput(f"function {spec} returned dims {out.dims} on {where}; it must return (y, x) or "
                           "(band, y, x)", code=FUNCTION_RESULT)
    want = (ds.sizes["y"], ds.sizes["x"])
    out = out.transpose(*(("band",) if "band" in dims else ()), "y", "x")
    if (out.sizes["y"], out.sizes["x"]) != want:
        raise InvalidInput(f"function {spec} returned {out.sizes['y']} x {out.sizes['x']} pixels on {where}, "
                       f"given {want[0]} x {want[1]}; return the pixels it was given (halo included)",
                           code=FUNCTION_RESULT)
    return out


def shape_of(out: xr.DataArray) -> Shape:
    """The bands and dtype of a function's (first) result."""
    bands = [str(b) for b in out["band"].values] if "band" in out.dims and "band" in out.coords else (
        [f"b{i + 1}" for i in range(out.sizes["band"])] if "band" in out.dims else None)
    return Shape(bands, out.dtype.name)


def conform(out: xr.DataArray, shape: Shape, dtype: np.dtype, *, where: str, spec: str) -> np.ndarray:
    """The result's pixels as ``dtype``, after checking its bands against ``shape``."""
    n = None if shape.bands is None else len(shape.bands)
    got = out.sizes.get("band") if "band" in out.dims else None
    if got != n:
        raise InvalidInput(f"function {spec} returned {got or 'no'} bands on {where}, and {n or 'no'} bands on "
                           "the first window; return the same bands everywhere", code=FUNCTION_RESULT)
    if out.dtype != dtype and not np.can_cast(out.dtype, dtype, "same_kind"):
        raise InvalidInput(f"function {spec} returned {out.dtype} on {where}, which does not cast safely to the "
                           f"output's {dtype}; return {dtype} or set dtype=", code=FUNCTION_RESULT)
    return np.asarray(out.values, dtype=dtype)


def describe(region: Mapping[str, Any]) -> str:
    """A region named in messages: its key and pixel rows and columns."""
    return f"region {region['key']} (rows {region['y'][0]}:{region['y'][1]}, columns {region['x'][0]}:{region['x'][1]})"
