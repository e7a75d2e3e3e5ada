"""Session fixtures that start the real services the tests use (the machinery is in ``kit.services``).

* ``azurite``       — Azurite blob service on a free loopback port; yields its connection string and
                      sets ``AZURE_STORAGE_CONNECTION_STRING`` for this process.
* ``postgres_url``  — a private PostgreSQL 15 cluster (initdb + pg_ctl); yields a SQLAlchemy URL of an
                      empty database ``postgresql+psycopg://postgres@127.0.0.1:PORT/postgres``.
* ``pgstac_dsn``    — a database in that cluster migrated by ``pypgstac migrate``; yields a libpq DSN.
* ``dask_cluster``  — a 2-process LocalCluster; yields its scheduler address (``tcp://127.0.0.1:PORT``).
                      Its workers start *without* Azure variables: credentials must travel with tasks.
* ``raster_factory``— writes synthetic GeoTIFFs (crs, bounds, dtype, nodata, bands, size).
* ``terra_package`` — Debian's ``r-cran-terra`` unpacked from the persistent test-data cache (``kit.debian``).
* ``terra_rasters`` — real-world rasters nobody here wrote: the examples that package ships.
* ``proj_grids``    — proj-data's CHENYX06 NTv2 grids: three real 4-band rasters on one grid.

With ``GEOPROC_REQUIRE_SERVICES=1`` (CI sets it) a service that cannot start fails the test instead
of skipping it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid
from pathlib import Path

import pytest
from kit import debian, rasters, services

# Tests and the processes they start must never touch the user's own ledger.
os.environ.setdefault("GEOPROC_LEDGER", f"sqlite:///{tempfile.mkdtemp(prefix='geoproc-test-ledger-')}/ledger.db")


# --- Azurite ---------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def azurite(tmp_path_factory):
    proc, port = services.start_azurite(tmp_path_factory.mktemp("azurite"))
    cs = services.azurite_connection_string(port)
    old = os.environ.get("AZURE_STORAGE_CONNECTION_STRING")
    os.environ["AZURE_STORAGE_CONNECTION_STRING"] = cs
    yield cs
    proc.terminate()
    proc.wait(10)
    if old is None:
        os.environ.pop("AZURE_STORAGE_CONNECTION_STRING", None)
    else:
        os.environ["AZURE_STORAGE_CONNECTION_STRING"] = old


@pytest.fixture
def az_options(azurite):
    """Storage options as the engine ships them to tasks."""
    return {"az": {"connection_string": azurite}}


@pytest.fixture
def az_fs(azurite):
    """An fsspec filesystem on the Azurite account."""
    from geoproc.storage import open_fs

    fs, _ = open_fs("az://anything", {"az": {"connection_string": azurite}})
    return fs


@pytest.fixture
def az_container(az_fs):
    """A fresh, empty Azurite container; yields its name."""
    name = f"cog-{uuid.uuid4().hex[:12]}"
    az_fs.mkdir(name)
    return name


# --- PostgreSQL + PostGIS + pgstac ------------------------------------------------------------------


@pytest.fixture(scope="session")
def _pg_server():
    with services.postgres_server() as port:
        yield port


@pytest.fixture
def postgres_url(_pg_server):
    """A fresh, empty database per test, as a SQLAlchemy URL."""
    name = f"t{time.time_ns()}"
    services.create_database(_pg_server, name)
    return f"postgresql+psycopg://postgres@127.0.0.1:{_pg_server}/{name}"


@pytest.fixture(scope="session")
def pgstac_dsn(_pg_server):
    """A database migrated with pypgstac (session-wide; tests use their own collection ids)."""
    services.create_database(_pg_server, "pgstac")
    dsn = f"postgresql://postgres@127.0.0.1:{_pg_server}/pgstac"
    services.migrate_pgstac(dsn)
    return dsn


# --- Dask --------------------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def dask_cluster():
    """A real 2-process LocalCluster; workers get an environment without Azure credentials."""
    with services.local_cluster_without_azure(n_workers=2, threads_per_worker=2, processes=True,
                                              host="127.0.0.1", dashboard_address=None,
                                              memory_limit="4GiB") as address:
        yield address


# --- ledgers -----------------------------------------------------------------------------------------


@pytest.fixture
def ledger_url(tmp_path):
    """A SQLite ledger per test (tests/engine overrides it to run on PostgreSQL too)."""
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def sqlite_url(tmp_path):
    """A SQLite ledger per test, for tests that must not run on PostgreSQL."""
    return f"sqlite:///{tmp_path}/ledger.db"


# --- rasters -----------------------------------------------------------------------------------------


@pytest.fixture
def raster_factory(tmp_path):
    """``make(name, crs=, bounds=, size=(w, h), dtype=, nodata=, bands=, data=)`` -> Path of a GeoTIFF.

    The default pixel values are a smooth, deterministic ramp so that resampling results are stable
    (``kit.rasters.write_geotiff``); files go to ``tmp_path`` unless ``directory`` is given.
    """

    def make(name="raster.tif", *, directory=None, **kw) -> Path:
        return rasters.write_geotiff(Path(directory or tmp_path) / name, **kw)

    return make


@pytest.fixture(scope="session")
def proj_grids(tmp_path_factory) -> dict[str, Path]:
    """Real rasters from Debian's proj-data: the CHENYX06 NTv2 grids (three 4-band rasters on one grid)."""
    try:
        pkg = debian.unpacked("proj-data")
    except debian.PackageUnavailable as exc:
        services.missing(f"proj-data grids ({exc})")
    target = tmp_path_factory.mktemp("proj")
    return {p.name: Path(shutil.copy(p, target)) for p in sorted(pkg.root.rglob("proj/CHENYX06*.gsb"))}


@pytest.fixture(scope="session")
def terra_package() -> debian.Unpacked:
    """Debian's r-cran-terra, downloaded once into the persistent test-data cache and kept there."""
    try:
        return debian.unpacked("r-cran-terra")
    except debian.PackageUnavailable as exc:
        services.missing(f"r-cran-terra example rasters ({exc})")


@pytest.fixture(scope="session")
def terra_rasters(terra_package, tmp_path_factory) -> dict[str, Path]:
    """Real rasters from Debian's r-cran-terra package (its ``ex/*.tif``; not committed, cached).

    Tests get a session copy: GDAL may write side files (``.aux.xml``) beside a raster it reads, and the
    cached tree must stay as the package shipped it.
    """
    ex = shutil.copytree(next(terra_package.root.rglob("terra/ex")), tmp_path_factory.mktemp("terra") / "ex")
    return {p.name: p for p in sorted(ex.glob("*.tif"))}
