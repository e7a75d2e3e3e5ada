"""Jobs run by the CLI against a cluster of real ``dask scheduler`` / ``dask worker`` processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from geoproc.jobs import ALL_JOBS
from geoproc.ledger import open_ledger

GEOPROC = Path(sys.executable).with_name("geoproc")


def geoproc_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([str(GEOPROC), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, **(env or {})})


def worker_environments(address: str) -> dict[str, list[str]]:
    """Names of the AZURE_* variables each worker process sees, by worker address."""
    from distributed import Client

    def azure_vars() -> list[str]:
        import os

        return sorted(k for k in os.environ if k.startswith("AZURE_"))

    with Client(address, timeout="20s") as client:
        return client.run(azure_vars)


def test_workers_run_without_azure_variables(dask_processes):
    envs = worker_environments(dask_processes.address)
    assert len(envs) == 2
    assert all(v == [] for v in envs.values()), envs


def test_hello_world_on_scheduler_address(dask_processes, tmp_path):
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    r = geoproc_cli("run", "hello_world", "--set", "n=40", "--set", "message=distributed",
                    "--cluster", dask_processes.address, "--ledger", ledger, "--json")
    assert r.returncode == 0, r.stderr + r.stdout
    res = json.loads(r.stdout)
    assert res["status"] == "completed"
    assert res["result"]["greetings"] == 40 and res["result"]["replies"] == 40
    assert [s["counts"] for s in res["stages"]] == [{"completed": 40}, {"completed": 40}]

    led = open_ledger(ledger)
    try:
        tasks = led.list_tasks(res["job_id"], limit=None)
        assert len(tasks) == 80 and {t["status"] for t in tasks} == {"completed"}
        # every task ran on one of the two worker processes of this cluster, not in the driver
        envs = worker_environments(dask_processes.address)
        workers = {t["worker"] for t in tasks}
        assert workers and workers <= set(envs), (workers, set(envs))
        replies = [t["result"]["reply"] for t in tasks if t["stage_name"] == "reply"]
        assert "Reply to 'distributed from task 7'" in replies
        kinds = [e["kind"] for e in led.events(res["job_id"])]
        assert "job_created" in kinds
    finally:
        led.close()

    # the same job again on the same cluster is free: the stored result, nothing recomputed
    again = geoproc_cli("run", "hello_world", "--set", "n=40", "--set", "message=distributed",
                        "--cluster", dask_processes.address, "--ledger", ledger, "--json")
    assert again.returncode == 0, again.stderr
    res2 = json.loads(again.stdout)
    assert res2["job_id"] == res["job_id"] and res2["cached"] is True and res2["executed"] == 0


def test_unreachable_scheduler_is_an_environment_error(tmp_path):
    import socket

    with socket.socket() as sock:  # a loopback port on which nothing listens
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    r = geoproc_cli("run", "hello_world", "--set", "n=2", "--cluster", f"tcp://127.0.0.1:{port}",
                    "--ledger", f"sqlite:///{tmp_path}/ledger.db", timeout=120)
    assert r.returncode == 5, r.stderr
    assert f"127.0.0.1:{port}" in r.stderr and "Traceback" not in r.stderr


def _upload(conn: str, container: str, files: dict[str, Path]) -> None:
    from azure.core.exceptions import ResourceExistsError
    from azure.storage.blob import BlobServiceClient

    svc = BlobServiceClient.from_connection_string(conn)
    try:
        svc.create_container(container)
    except ResourceExistsError:
        pass
    for name, path in files.items():
        svc.get_blob_client(container, name).upload_blob(path.read_bytes(), overwrite=True)


def _download(conn: str, url: str) -> bytes:
    from azure.storage.blob import BlobServiceClient

    container, name = url[len("az://"):].split("/", 1)
    return BlobServiceClient.from_connection_string(conn).get_blob_client(container, name).download_blob().readall()


def test_cog_job_on_scheduler_address_against_azurite(dask_processes, azurite, raster_factory, tmp_path):
    """COGs from Azurite to Azurite on workers that have no Azure variables: credentials travel with tasks."""
    import hashlib

    import numpy as np
    import rasterio
    from rio_cogeo.cogeo import cog_validate

    if "cog" not in ALL_JOBS:
        pytest.fail("the cog job type is not registered in geoproc.jobs.ALL_JOBS")
    src = tmp_path / "src"
    files = {
        "2025/utm/a.tif": raster_factory("a.tif", directory=src, size=(300, 200)),
        "2025/utm/b.tif": raster_factory("b.tif", directory=src, size=(256, 256), dtype="uint16",
                                         bands=3, crs="EPSG:32632", bounds=(600000, 5100000, 607680, 5107680)),
        "2025/geo/c.tif": raster_factory("c.tif", directory=src, size=(180, 120), dtype="int16", nodata=-9999,
                                         crs="EPSG:4326", bounds=(10.0, 45.0, 10.3, 45.2)),
    }
    _upload(azurite, "bronze", files)
    _upload(azurite, "silver", {})  # the output container exists, as it would in a storage account
    assert worker_environments(dask_processes.address) and all(
        v == [] for v in worker_environments(dask_processes.address).values())

    ledger = f"sqlite:///{tmp_path}/ledger.db"
    r = geoproc_cli("run", "cog", "--set", "input=az://bronze/2025", "--set", "output=az://silver/cogs",
                    "--cluster", dask_processes.address, "--ledger", ledger, "--json",
                    env={"AZURE_STORAGE_CONNECTION_STRING": azurite})
    assert r.returncode == 0, r.stderr[-4000:] + r.stdout[-2000:]
    res = json.loads(r.stdout)
    assert res["status"] == "completed"
    assert [s["name"] for s in res["stages"]][:3] == ["list", "validate", "cog"]
    assert [s["counts"] for s in res["stages"]][:3] == [{"completed": 1}, {"completed": 3}, {"completed": 3}]
    assert all(set(s["counts"]) <= {"completed"} for s in res["stages"])

    led = open_ledger(ledger)
    try:
        tasks = led.list_tasks(res["job_id"], limit=None)
        envs = worker_environments(dask_processes.address)
        assert {t["status"] for t in tasks} == {"completed"}
        assert sum(t["stage_name"] in ("list", "validate", "cog") for t in tasks) == 7
        assert {t["worker"] for t in tasks} <= set(envs)
        cogs = {t["result"]["input"]: t["result"] for t in tasks if t["stage_name"] == "cog"}
    finally:
        led.close()
    assert set(cogs) == {f"az://bronze/{name}" for name in files}
    for name, path in files.items():
        out = cogs[f"az://bronze/{name}"]
        assert out["output"] == "az://silver/cogs/" + name[len("2025/"):]
        data = _download(azurite, out["output"])  # the COG exists in Azurite, as recorded in the ledger
        assert len(data) == out["size"] and hashlib.sha256(data).hexdigest() == out["sha256"]
        local = tmp_path / "out" / name
        local.parent.mkdir(parents=True, exist_ok=True)
        local.write_bytes(data)
        valid, errors, _ = cog_validate(str(local), quiet=True)
        assert valid, errors
        with rasterio.open(local) as cog, rasterio.open(path) as inp:
            assert cog.count == inp.count and cog.dtypes == inp.dtypes
            assert cog.crs.to_epsg() == 4326
            a = cog.read(1, masked=True)
            assert a.count() > 0
            lo, hi = inp.read(1).min(), inp.read(1).max()
            assert lo <= float(np.ma.median(a)) <= hi  # pixels of this input, not an empty or foreign image
    secret = azurite.split("AccountKey=")[1].split(";")[0]
    assert secret not in r.stdout and secret not in r.stderr
