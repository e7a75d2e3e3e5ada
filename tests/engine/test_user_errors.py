"""Bad settings and options are refused up front: one line, exit 2, no traceback, nothing recorded.

And the commands that only read the ledger never write one: not on a read-only mount, not for a
mistyped ledger URL.
"""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

import pytest
from kit.drivers import geoproc_cmd
from kit.services import missing

from geoproc import api
from geoproc.ledger import open_ledger


def _cli(*args, env=None, cwd=None):
    t0 = time.monotonic()
    p = subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=60, cwd=cwd,
                       env={**os.environ, **(env or {})})
    return p, time.monotonic() - t0


BAD_OPTIONS = [
    (["--workers", "-3"], {}, "workers=-3: the number of local worker processes must be 1 to 256"),
    (["--workers", "0"], {}, "workers=0"),
    (["--cluster", "bogus"], {}, "cluster 'bogus' is not a cluster; use local, kubernetes"),
    (["--set", "n=true"], {}, "n=true: a number is expected, not a boolean"),
    ([], {"GEOPROC_WORKERS": "0"}, "GEOPROC_WORKERS='0'"),
    ([], {"GEOPROC_WORKERS": "abc"}, "GEOPROC_WORKERS='abc': input should be a valid integer"),
    ([], {"GEOPROC_LEASE_TTL": "xyz"}, "GEOPROC_LEASE_TTL='xyz'"),
    ([], {"GEOPROC_CLUSTER": "nonsense"}, "GEOPROC_CLUSTER='nonsense': 'nonsense' is not a cluster"),
]


@pytest.mark.parametrize(("args", "env", "expected"), BAD_OPTIONS)
def test_a_bad_option_or_setting_is_one_line_and_exit_2(args, env, expected, tmp_path):
    ledger = tmp_path / "ledger.db"
    p, took = _cli("run", "hello_world", *args, "--ledger", f"sqlite:///{ledger}", env=env)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith("error: ") and p.stderr.count("\n") == 1, p.stderr
    assert expected in p.stderr and "Traceback" not in p.stderr and p.stdout == ""
    assert took < 2.0, took  # refused before any cluster starts
    assert not ledger.exists()  # nothing recorded


def test_settings_are_checked_for_every_command(tmp_path):
    p, _ = _cli("list", env={"GEOPROC_LEASE_TTL": "-1"})
    assert p.returncode == 2 and p.stderr.startswith("error: GEOPROC_LEASE_TTL='-1'"), p.stderr


def test_read_commands_never_create_a_ledger(tmp_path):
    url = f"sqlite:///{tmp_path}/typo/ledger.db"
    for args in (["jobs"], ["status", "0123456789ab"], ["tasks", "0123456789ab"], ["events", "0123456789ab"]):
        p, _ = _cli(*args, "--ledger", url)
        assert p.returncode == 2 and "No ledger at" in p.stderr and p.stderr.count("\n") == 1, (args, p.stderr)
    assert not (tmp_path / "typo").exists()


@pytest.fixture
def read_only_mount(tmp_path):
    """``tmp_path/rw`` seen read-only at ``tmp_path/ro`` (a bind mount; needs root)."""
    rw, ro = tmp_path / "rw", tmp_path / "ro"
    rw.mkdir()
    ro.mkdir()
    yield rw, ro
    if subprocess.run(["umount", str(ro)], capture_output=True).returncode != 0:
        subprocess.run(["umount", "-l", str(ro)], capture_output=True)  # busy: detach it now, free it later


def _mount_read_only(rw: Path, ro: Path) -> None:
    for cmd in (["mount", "--bind", str(rw), str(ro)], ["mount", "-o", "remount,ro,bind", str(ro)]):
        if subprocess.run(cmd, capture_output=True).returncode != 0:
            missing("a read-only bind mount (needs root)")
            pytest.skip("cannot make a read-only bind mount here")


def test_read_commands_work_on_a_ledger_on_a_read_only_mount(read_only_mount, dask_cluster):
    rw, ro = read_only_mount
    res = api.run("hello_world", n=2, ledger=f"sqlite:///{rw}/ledger.db", cluster=dask_cluster)
    assert res.status == "completed"
    _mount_read_only(rw, ro)
    assert subprocess.run(["touch", str(ro / "x")], capture_output=True).returncode != 0  # really read-only
    url = f"sqlite:///{ro}/ledger.db"
    for args in (["jobs"], ["status", res.job_id[:12]], ["tasks", res.job_id[:12]], ["events", res.job_id[:12]]):
        p, _ = _cli(*args, "--ledger", url)
        assert p.returncode == 0, (args, p.stderr)
        assert "Traceback" not in p.stderr
    p, _ = _cli("status", res.job_id[:12], "--ledger", url, "--json")
    assert '"status": "completed"' in p.stdout
    led = open_ledger(url, read_only=True)
    try:
        assert led.get_job(res.job_id).status == "completed"
    finally:
        led.close()


# --- messages ------------------------------------------------------------------------------------------


def test_names_with_brackets_are_printed_as_they_are(tmp_path, dask_cluster, sqlite_url):
    src = tmp_path / "in"
    src.mkdir()
    (src / "scan [red]2024[b].tif").write_text("not a raster")
    wide = {"COLUMNS": "300"}
    p, _ = _cli("cog", str(src), str(tmp_path / "out"), "--ledger", sqlite_url, "--cluster", dask_cluster, env=wide)
    assert p.returncode == 1, p.stderr
    assert "scan [red]2024[b].tif is not a raster" in p.stdout, p.stdout
    job_id = open_ledger(sqlite_url, read_only=True).list_jobs(limit=1)[0].job_id
    p, _ = _cli("tasks", job_id[:12], "--status", "quarantined", "--ledger", sqlite_url, env=wide)
    assert p.returncode == 0 and "quarantined" in p.stdout and "CORRUPT_RASTER" in p.stdout, p.stdout
    assert "[red]2024[b]" in p.stdout, p.stdout


def test_status_filters_are_checked(tmp_path, sqlite_url):
    open_ledger(sqlite_url).close()
    for args in (["jobs", "--status", "nope"], ["tasks", "0123456789ab", "--status", "bogus"]):
        p, _ = _cli(*args, "--ledger", sqlite_url)
        assert p.returncode == 2 and "is not a status; choose one of:" in p.stderr, (args, p.stderr)
        assert p.stderr.count("\n") == 1


def test_a_job_whose_driver_is_gone_shows_as_interrupted(dask_cluster, sqlite_url):
    import socket

    res = api.run("hello_world", n=2, ledger=sqlite_url, cluster=dask_cluster)
    led = open_ledger(sqlite_url)
    try:  # what a SIGKILLed driver leaves: running, its lease held by a process that no longer exists
        led.update_job(res.job_id, status="running", lease_owner=f"{socket.gethostname()}:999999999:0",
                       finished_at=None)
    finally:
        led.close()
    p, _ = _cli("jobs", "--ledger", sqlite_url, env={"COLUMNS": "200"})
    assert "interrupted (driver gone)" in p.stdout and "running" not in p.stdout, p.stdout
    p, _ = _cli("status", res.job_id[:12], "--ledger", sqlite_url, env={"COLUMNS": "200"})
    assert "interrupted" in p.stdout and "run the job again to resume" in p.stdout, p.stdout
