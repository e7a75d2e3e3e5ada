"""Helpers and fixtures of the fault-injection tests: driver processes, process trees, Azurite, rasters.

Drivers are real ``python -m geoproc.cli`` processes in their own session; their output goes to files
(a full pipe would block a driver). Every process a test starts is stopped in its teardown.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import psutil
import pytest
import rasterio
from polling import wait_for  # noqa: F401  (re-exported for the tests)
from rasterio.transform import from_bounds

from geoproc import get_job

COG = get_job("cog")


def _root_conftest():
    """tests/conftest.py as a module (its helpers: start_azurite, azurite_connection_string, free_port)."""
    spec = importlib.util.spec_from_file_location("geoproc_tests_conftest", Path(__file__).parents[1] / "conftest.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


ROOT_CONFTEST = _root_conftest()


def cog_job_id(**params) -> str:
    return COG.job_id(COG.validate(params))


def counts(led, job_id: str, stage: int, status: str = "completed") -> int:
    return led.counts(job_id).get(stage, {}).get(status, 0)


class Driver:
    """A ``geoproc`` CLI process in its own session, with its stdout/stderr in files."""

    def __init__(self, args: list[str], directory: Path, env: dict | None = None):
        directory.mkdir(parents=True, exist_ok=True)
        n = len(list(directory.glob("*.out")))
        self.out_path, self.err_path = directory / f"{n}.out", directory / f"{n}.err"
        with open(self.out_path, "w") as out, open(self.err_path, "w") as err:
            self.proc = subprocess.Popen([sys.executable, "-m", "geoproc.cli", *args], stdout=out, stderr=err,
                                         env={**os.environ, **(env or {})}, start_new_session=True)
        self.pid = self.proc.pid

    @property
    def stdout(self) -> str:
        return self.out_path.read_text()

    @property
    def stderr(self) -> str:
        return self.err_path.read_text()

    def wait(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def descendants(self) -> list[psutil.Process]:
        try:
            return psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []

    def sigkill(self) -> list[psutil.Process]:
        """SIGKILL the driver alone; returns the processes it had started (its cluster), still to be reaped."""
        kids = self.descendants()
        os.kill(self.pid, signal.SIGKILL)
        self.proc.wait(10)
        return kids


@pytest.fixture
def drivers(tmp_path):
    """Start drivers with ``start(*args)``; every driver and the processes it started are stopped at the end."""
    started: list[Driver] = []
    orphans: list[psutil.Process] = []

    def start(*args: str, env: dict | None = None) -> Driver:
        d = Driver(list(args), tmp_path / "drivers", env)
        started.append(d)
        return d

    start.orphans = orphans  # type: ignore[attr-defined]
    yield start
    for d in started:
        orphans.extend(d.descendants())
        if d.proc.poll() is None:
            d.proc.kill()
            d.proc.wait(10)
    for p in orphans:
        try:
            p.kill()
        except psutil.NoSuchProcess:
            pass


def assert_reaped(procs: list[psutil.Process], timeout: float = 30) -> None:
    """The processes a killed driver had started (nannies, workers) all exit on their own."""
    _, alive = psutil.wait_procs(procs, timeout=timeout)
    alive = [p for p in alive if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"orphan processes left by a killed driver: {[(p.pid, p.cmdline()[:4]) for p in alive]}"


# --- rasters and blobs ------------------------------------------------------------------------------


def write_raster(path: Path, i: int) -> Path:
    """A small deterministic GeoTIFF (256-352 px, a few data types and band counts)."""
    w = 256 + 32 * (i % 4)
    h = 256 + 32 * ((i // 4) % 3)
    yy, xx = np.mgrid[0:h, 0:w]
    kind = i % 3
    if kind == 0:
        data, nodata = ((xx * 3 + yy * 5 + i) % 997).astype("float32")[None], -9999.0
    elif kind == 1:
        data, nodata = np.stack([(xx + yy * b + i) % 251 for b in (1, 2, 3)]).astype("uint8"), None
    else:
        data, nodata = ((xx * yy + i) % 4000).astype("int16")[None], -1
    x0, y0 = 500000 + 5000 * i, 5000000
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=data.shape[0], dtype=data.dtype,
                       crs="EPSG:32633", transform=from_bounds(x0, y0, x0 + 10 * w, y0 + 10 * h, w, h),
                       nodata=nodata) as dst:
        dst.write(data)
    return path


def upload_rasters(fs, container: str, prefix: str, n: int, workdir: Path) -> list[str]:
    """Write ``n`` rasters to ``container/prefix/`` (two of them in a sub-folder); returns blob paths."""
    blobs = []
    for i in range(n):
        rel = f"sub/r{i:02d}.tif" if i % 5 == 4 else f"r{i:02d}.tif"
        local = write_raster(workdir / f"src-{i:02d}.tif", i)
        blob = f"{container}/{prefix}/{rel}"
        fs.put_file(str(local), blob)
        blobs.append(blob)
    return blobs


def blob_hashes(fs, prefix: str) -> dict[str, str]:
    """Relative name -> sha256 of every blob under ``prefix`` (``container/path``)."""
    fs.invalidate_cache()
    base = prefix.rstrip("/") + "/"
    return {p[len(base):]: hashlib.sha256(fs.cat_file(p)).hexdigest() for p in fs.find(prefix)}


@pytest.fixture
def az_fs(azurite):
    from geoproc.storage import open_fs

    fs, _ = open_fs("az://anything", {"az": {"connection_string": azurite}})
    return fs


@pytest.fixture
def az_container(az_fs):
    name = f"faults-{uuid.uuid4().hex[:12]}"
    az_fs.mkdir(name)
    return name


@pytest.fixture
def sqlite_url(tmp_path):
    return f"sqlite:///{tmp_path}/ledger.db"
