"""``geoproc doctor``: check each part geoproc depends on, in order, and say what is broken.

Checks: library versions (GDAL, rasterio, dask), the ledger (open, write, read back), storage (list,
write, read, GDAL open of what was written — naming which credential was used), the Dask cluster
(scheduler reachable, workers, memory limits) and pgstac (reachable, version). Each check returns a
:class:`Check`; the CLI stops at the first broken one and exits non-zero.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import dask
import distributed
import numpy as np
import rasterio
from rasterio.transform import from_origin

from .errors import ClusterError, LedgerError, PgstacError, StorageError
from .ledger import open_ledger
from .storage import (
    gdal_env,
    gdal_path,
    join,
    open_fs,
    options_for,
    protocol_of,
    redact,
    resolve_storage_options,
)
from .version import __version__


@dataclass
class Check:
    """One part checked: its name, whether it works, and what was seen (or what broke)."""

    name: str
    ok: bool
    detail: str


def _guard(name: str, fn: Callable[[], str]) -> Check:
    try:
        return Check(name, True, fn())
    except Exception as exc:  # noqa: BLE001 - every failure becomes a readable line
        return Check(name, False, redact(f"{type(exc).__name__}: {exc}".splitlines()[0]))


def versions() -> str:
    """The versions that matter when reporting a problem."""
    return (f"geoproc {__version__}, GDAL {rasterio.__gdal_version__}, rasterio {rasterio.__version__}, "
            f"dask {dask.__version__}, distributed {distributed.__version__}")


def check_ledger(url: str | None) -> str:
    """Open the ledger, write a throwaway job, read it back and remove it."""
    led = open_ledger(url)
    try:
        probe = "doctor-" + uuid.uuid4().hex  # a throwaway row, removed below
        led.create_job(probe, "doctor", {}, 0)
        if led.get_job(probe) is None:
            raise LedgerError(f"a job row written to {led.url} could not be read back")
        import sqlalchemy as sa

        from .ledger import schema as s

        with led.engine.begin() as c:
            c.execute(sa.delete(s.events).where(s.events.c.job_id == probe))
            c.execute(sa.delete(s.jobs).where(s.jobs.c.job_id == probe))
        return f"{led.url} ({led.dialect}) read/write ok"
    finally:
        led.close()


def credential_kind(opts: dict[str, Any] | None) -> str:
    """Which credential of the chain was chosen, named without revealing it."""
    if not opts:
        return "none (local or public storage)"
    for key, name in (("connection_string", "connection string"), ("account_key", "account key"),
                      ("sas_token", "SAS token"), ("token", "Azure AD token"), ("anon", "anonymous")):
        if opts.get(key):
            return name
    return "library defaults"


def check_storage(url: str) -> str:
    """List, write, read back and GDAL-open a small GeoTIFF under ``url``; then remove it."""
    opts = resolve_storage_options()
    cred = credential_kind(options_for(url, opts)) if protocol_of(url) in ("az", "abfs", "abfss") else "n/a"
    fs, path = open_fs(url, opts)
    listed = len(fs.ls(path, detail=False)) if fs.exists(path) else 0
    name = f".geoproc-doctor-{uuid.uuid4().hex[:8]}.tif"
    target = join(url, name)
    with rasterio.MemoryFile() as mem:
        with mem.open(driver="GTiff", width=4, height=4, count=1, dtype="uint8", crs="EPSG:4326",
                      transform=from_origin(0, 4, 1, 1)) as d:
            d.write(np.arange(16, dtype="uint8").reshape(1, 4, 4))
        data = mem.read()
    tfs, tpath = open_fs(target, opts)
    with tfs.open(tpath, "wb") as f:
        f.write(data)
    try:
        with tfs.open(tpath, "rb") as f:
            if f.read() != data:
                raise StorageError(f"reading {target} back gave other bytes than were written")
        with rasterio.Env(**gdal_env(target, opts)), rasterio.open(gdal_path(target)) as src:
            if src.read(1)[3, 3] != 15:
                raise StorageError(f"GDAL read other pixels from {target} than were written")
    finally:
        tfs.rm(tpath)
    return f"credential: {cred}; listed {listed} entries; write, read and GDAL open ok"


def check_cluster(spec: str) -> str:
    """Connect to a scheduler, list its workers and time one task's round trip."""
    with distributed.Client(spec, timeout="10s") as client:
        info = client.scheduler_info(n_workers=-1)
        workers = info.get("workers", {})
        if not workers:
            raise ClusterError(f"scheduler {spec} has no workers")
        mem = sorted({w.get("memory_limit", 0) for w in workers.values()})
        t0 = time.perf_counter()
        if client.submit(sum, [1, 2, 3], pure=False).result(timeout=30) != 6:
            raise ClusterError(f"a test task on {spec} returned a wrong result")
        rt = (time.perf_counter() - t0) * 1000
        return (f"{len(workers)} workers, memory limits {[f'{m / 2**30:.1f} GiB' for m in mem]}, "
                f"task round trip {rt:.0f} ms")


def check_pgstac(dsn: str) -> str:
    """Connect to pgstac and read its version and collection count."""
    import psycopg  # optional dependency (geoproc[postgres])

    with psycopg.connect(dsn, connect_timeout=10, options="-c search_path=pgstac,public") as c:
        version = c.execute("SELECT pgstac.get_version()").fetchone()
        n = c.execute("SELECT count(*) FROM pgstac.collections").fetchone()
    if version is None or n is None:
        raise PgstacError("pgstac returned no version; run `geoproc stac setup`")
    return f"pgstac {version[0]}, {n[0]} collections"


def run_checks(*, ledger: str | None = None, storage: str | None = None, cluster: str | None = None,
               pgstac_dsn: str | None = None) -> Iterator[Check]:
    """Yield checks in order; callers stop at the first failure."""
    yield _guard("versions", versions)
    yield _guard("ledger", lambda: check_ledger(ledger))
    if storage:
        yield _guard(f"storage {storage}", lambda: check_storage(storage))
    if cluster:
        yield _guard(f"cluster {cluster}", lambda: check_cluster(cluster))
    if pgstac_dsn:
        yield _guard("pgstac", lambda: check_pgstac(pgstac_dsn))
