"""`geoproc doctor` against real services, and its failures."""

import subprocess

from kit.drivers import geoproc_cmd


def _doctor(*args, env=None):
    import os

    return subprocess.run(geoproc_cmd("doctor", *args), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "COLUMNS": "250", **(env or {})})


def test_doctor_all_parts_ok(sqlite_url, azurite, dask_cluster, pgstac_dsn, tmp_path):
    import fsspec

    fs = fsspec.filesystem("az", connection_string=azurite)
    if not fs.exists("doctor-ok"):
        fs.mkdir("doctor-ok")
    p = _doctor("--ledger", sqlite_url, "--storage", "az://doctor-ok/probe", "--cluster", dask_cluster,
                "--pgstac-dsn", pgstac_dsn)
    assert p.returncode == 0, p.stdout + p.stderr
    assert "credential: connection string" in p.stdout and "GDAL open ok" in p.stdout
    assert "2 workers" in p.stdout and "pgstac 0." in p.stdout and "GDAL 3." in p.stdout
    assert "AccountKey" not in p.stdout + p.stderr
    out = tmp_path / "out"
    out.mkdir()
    local = _doctor("--ledger", sqlite_url, "--storage", str(out))
    assert local.returncode == 0 and "credential: n/a" in local.stdout
    assert list(out.iterdir()) == []  # the probe file is removed


def test_doctor_stops_at_first_broken_part(sqlite_url, azurite):
    bad = azurite.replace("AccountKey=Eby8", "AccountKey=AAAA")
    p = _doctor("--ledger", sqlite_url, "--storage", "az://doctor-bad/x", env={"AZURE_STORAGE_CONNECTION_STRING": bad})
    assert p.returncode == 5 and "FAIL storage" in p.stdout and "Traceback" not in p.stdout + p.stderr
    assert "AAAA" not in p.stdout
    p = _doctor("--ledger", sqlite_url, "--cluster", "tcp://127.0.0.1:9")
    assert p.returncode == 5 and "FAIL cluster" in p.stdout
    p = _doctor("--ledger", "postgresql://nobody@127.0.0.1:9/none", "--cluster", "tcp://127.0.0.1:9")
    assert p.returncode == 5 and "FAIL ledger" in p.stdout and "cluster" not in p.stdout
