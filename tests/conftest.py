"""Session fixtures that start the real services the tests use.

* ``azurite``       — Azurite blob service on a free loopback port; yields its connection string and
                      sets ``AZURE_STORAGE_CONNECTION_STRING`` for this process.
* ``postgres_url``  — a private PostgreSQL 15 cluster (initdb + pg_ctl); yields a SQLAlchemy URL of an
                      empty database ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``.
* ``pgstac_dsn``    — a database in that cluster migrated by ``pypgstac migrate``; yields a libpq DSN.
* ``dask_cluster``  — a 2-process LocalCluster; yields its scheduler address (``tcp://127.0.0.1:PORT``).
                      Its workers start *without* Azure variables: credentials must travel with tasks.
* ``raster_factory``— writes synthetic GeoTIFFs (crs, bounds, dtype, nodata, bands, size).
* ``terra_rasters`` — real-world rasters nobody here wrote: the examples Debian's ``r-cran-terra`` ships.

With ``GEOPROC_REQUIRE_SERVICES=1`` (CI sets it) a service that cannot start fails the test instead
of skipping it.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PGBIN = Path("/usr/lib/postgresql/15/bin")
REQUIRE = os.environ.get("GEOPROC_REQUIRE_SERVICES") == "1"

# Tests and the processes they start must never touch the user's own ledger.
os.environ.setdefault("GEOPROC_LEDGER", f"sqlite:///{tempfile.mkdtemp(prefix='geoproc-test-ledger-')}/ledger.db")


def missing(what: str) -> None:
    """Skip, or fail when services are required."""
    if REQUIRE:
        pytest.fail(f"required service unavailable: {what}")
    pytest.skip(f"service unavailable: {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Azurite ---------------------------------------------------------------------------------------


def start_azurite(location: Path, port: int = 0) -> tuple[subprocess.Popen, int]:
    """Start azurite-blob on loopback; return the process and its port."""
    exe = ROOT / "node_modules/.bin/azurite-blob"
    if not exe.exists():
        missing("azurite (run setup.sh: npm install azurite)")
    p = subprocess.Popen(
        [str(exe), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
         "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listens on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
    p.kill()
    missing("azurite did not start")


def azurite_connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZ_ACCOUNT};")


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    proc, port = start_azurite(tmp_path_factory.mktemp("azurite"))
    cs = azurite_connection_string(port)
    old = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = cs
    yield cs
    proc.terminate()
    proc.wait(10)
    if old is None:
        os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
    else:
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = old


# --- PostgreSQL + PostGIS + pgstac ------------------------------------------------------------------


@pytest.fixture(scope="session")
def _pg_server():
    if not (PGBIN / "initdb").exists():
        missing("PostgreSQL 15 (apt-get install postgresql-15)")
    d = Path(tempfile.mkdtemp(prefix="geoproc-pg-"))
    d.chmod(0o755)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(d, "postgres", "postgres")
    port = free_port()
    subprocess.run(as_pg + [str(PGBIN / "initdb"), "-D", str(d / "data"), "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(as_pg + [str(PGBIN / "pg_ctl"), "-D", str(d / "data"), "-l", str(d / "log"), "-w",
                            "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {d} -c fsync=off "
                                  f"-c max_connections=200", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield port
    finally:
        subprocess.run(as_pg + [str(PGBIN / "pg_ctl"), "-D", str(d / "data"), "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


def _create_db(port: int, name: str) -> None:
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        c.execute(f'CREATE DATABASE "{name}"')


@pytest.fixture
def postgres_url(_pg_server):
    """A fresh, empty database per test, as a SQLAlchemy URL."""
    name = f"t{time.time_ns()}"
    _create_db(_pg_server, name)
    return f"postgresql+psycopg://postgres@127.0.0.1:{_pg_server}/{name}"


@pytest.fixture(scope="session")
def pgstac_dsn(_pg_server):
    """A database migrated with pypgstac (session-wide; tests use their own collection ids)."""
    _create_db(_pg_server, "pgstac")
    dsn = f"postgresql://postgres@127.0.0.1:{_pg_server}/pgstac"
    subprocess.run([sys.executable, "-m", "pypgstac.pypgstac", "migrate", "--dsn", dsn], check=True,
                   stdout=subprocess.DEVNULL)
    return dsn


# --- Dask --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dask_cluster():
    """A real 2-process LocalCluster; workers get an environment without Azure credentials."""
    from dask.distributed import LocalCluster

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AZURE_")}
    try:
        cluster = LocalCluster(n_workers=2, threads_per_worker=2, processes=True, host="127.0.0.1",
                               dashboard_address=None, memory_limit="4GiB")
    finally:
        os.environ.update(saved)
    yield cluster.scheduler_address
    cluster.close()


# --- shared job-test helpers ------------------------------------------------------------------------


@pytest.fixture
def ledger_url(tmp_path):
    """A SQLite ledger per test (tests/engine overrides it to run on PostgreSQL too)."""
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def az_options(azurite):
    """Storage options as the engine ships them to tasks."""
    return {"az": {"connection_string": azurite}}


@pytest.fixture
def az_container(azurite):
    """A fresh, empty Azurite container; yields its name."""
    import uuid

    from geoproc.storage import open_fs

    name = f"cog-{uuid.uuid4().hex[:12]}"
    fs, _ = open_fs(f"az://{name}", {"az": {"connection_string": azurite}})
    fs.mkdir(name)
    return name


# --- rasters -----------------------------------------------------------------------------------------


@pytest.fixture
def raster_factory(tmp_path):
    """``make(name, crs=, bounds=, size=(w, h), dtype=, nodata=, bands=, data=)`` -> Path of a GeoTIFF.

    The default pixel values are a smooth, deterministic ramp so that resampling results are stable.
    """
    import numpy as np
    import rasterio
    from rasterio.transform import from_bounds

    def make(name="raster.tif", *, crs="EPSG:32633", bounds=(500000, 5000000, 510240, 5010240),
             size=(1024, 1024), dtype="float32", nodata=None, bands=1, data=None, directory=None,
             **profile):
        w, h = size
        path = Path(directory or tmp_path) / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if data is None:
            yy, xx = np.mgrid[0:h, 0:w]
            base = (xx + yy) % 251
            data = np.stack([(base + 17 * b) % 251 for b in range(bands)]).astype(dtype)
        transform = from_bounds(*bounds, w, h)
        with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=data.shape[0],
                           dtype=data.dtype, crs=crs, transform=transform, nodata=nodata, **profile) as dst:
            dst.write(data)
        return path

    return make


@pytest.fixture(scope="session")
def terra_rasters(tmp_path_factory) -> dict[str, Path]:
    """Real rasters from Debian's r-cran-terra package (downloaded at test time, not committed)."""
    d = tmp_path_factory.mktemp("terra")
    try:
        subprocess.run(["apt-get", "download", "r-cran-terra"], cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deb = next(d.glob("r-cran-terra*.deb"))
        subprocess.run(["dpkg", "-x", str(deb), str(d / "x")], check=True)
    except (subprocess.CalledProcessError, StopIteration, FileNotFoundError) as exc:
        missing(f"r-cran-terra example rasters ({exc})")
    ex = next((d / "x").rglob("terra/ex"))
    return {p.name: p for p in sorted(ex.glob("*.tif"))}
