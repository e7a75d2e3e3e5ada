"""Re-submission gives the right answer: a job is named by what it reads and writes, not by how it was typed.

Drivers are real ``geoproc`` processes on the shared cluster of worker processes.
"""

from __future__ import annotations

import csv
import json
import subprocess

import pytest
from kit.drivers import geoproc_cmd

from geoproc import get_job
from geoproc.storage.urls import canonical


def _run(cwd, *args, ledger, cluster, timeout=180):
    p = subprocess.run(geoproc_cmd(*args, "--ledger", ledger, "--cluster", cluster, "--json"), cwd=cwd,
                       capture_output=True, text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


@pytest.mark.parametrize("spellings", [
    ["az://bronze/2025/a", "abfs://bronze/2025/a/", "az://bronze//2025/a", "AZ://bronze/2025/a"],
    ["s3://bucket/k", "s3://bucket//k/"],
])
def test_one_location_under_several_spellings_is_one_job(spellings):
    jt = get_job("summarize_container")
    ids = {jt.job_id(jt.validate({"input": s})) for s in spellings}
    assert len(ids) == 1
    assert jt.validate({"input": spellings[1]}).input == canonical(spellings[0])


def test_an_account_in_the_url_is_kept():
    jt = get_job("summarize_container")
    a = jt.job_id(jt.validate({"input": "abfss://box@one.dfs.core.windows.net/p"}))
    b = jt.job_id(jt.validate({"input": "abfss://box@two.dfs.core.windows.net/p"}))
    assert a != b
    assert a == jt.job_id(jt.validate({"input": "abfss://box@ONE.blob.core.windows.net/p/"}))


def test_local_paths_are_absolute_and_normalised(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    jt = get_job("cog")
    p = jt.validate({"input": "./in/", "output": "file://" + str(tmp_path) + "//out"})
    assert (p.input, p.output) == (str(tmp_path / "in"), str(tmp_path / "out"))
    same = jt.validate({"input": str(tmp_path / "in"), "output": str(tmp_path / "out") + "/"})
    assert jt.job_id(p) == jt.job_id(same)


def test_relative_paths_in_two_directories_are_two_jobs(dask_cluster, sqlite_url, tmp_path):
    runs = {}
    for name, n in (("A", 3), ("B", 1)):
        data = tmp_path / name / "data"
        data.mkdir(parents=True)
        for i in range(n):
            (data / f"f{i}.bin").write_bytes(b"x" * (100 + i))
        runs[name] = _run(tmp_path / name, "run", "summarize_container", "--set", "input=data",
                          ledger=sqlite_url, cluster=dask_cluster)
    a, b = runs["A"], runs["B"]
    assert a["job_id"] != b["job_id"]
    assert not b["cached"]
    assert (a["result"]["summary"]["files"], b["result"]["summary"]["files"]) == (3, 1)
    assert a["result"]["source"] == str(tmp_path / "A" / "data")
    # the same command from A again is A's job, and `geoproc cog` gets the same treatment
    assert _run(tmp_path / "A", "run", "summarize_container", "--set", "input=./data/",
                ledger=sqlite_url, cluster=dask_cluster)["job_id"] == a["job_id"]


# --- every job that lists re-lists, and plans from what it finds ------------------------------------------


def test_an_inventory_rerun_sees_deleted_and_added_files(dask_cluster, sqlite_url, tmp_path):
    data, out = tmp_path / "data", tmp_path / "inventory"
    data.mkdir()
    for i in range(40):
        (data / f"f{i:03d}.bin").write_bytes(b"x" * (10 + i))
    args = ("run", "list_container", "--set", f"input={data}", "--set", f"output={out}", "--set", "format=csv")
    first = _run(tmp_path, *args, ledger=sqlite_url, cluster=dask_cluster)
    assert first["result"]["summary"]["files"] == 40
    for i in range(5):
        (data / f"f{i:03d}.bin").unlink()
    for i in range(3):
        (data / f"new{i}.bin").write_bytes(b"y")
    again = _run(tmp_path, *args, ledger=sqlite_url, cluster=dask_cluster)
    assert again["job_id"] == first["job_id"] and not again["cached"]
    assert again["result"]["summary"]["files"] == 38
    rows = list(csv.DictReader((out / "inventory.csv").open()))
    names = {r["name"] for r in rows}
    assert len(rows) == 38 and "new2.bin" in names and "f000.bin" not in names
    summary = _run(tmp_path, "run", "summarize_container", "--set", f"input={data}",
                   ledger=sqlite_url, cluster=dask_cluster)
    (data / "f010.bin").unlink()
    assert _run(tmp_path, "run", "summarize_container", "--set", f"input={data}", ledger=sqlite_url,
                cluster=dask_cluster)["result"]["summary"]["files"] == summary["result"]["summary"]["files"] - 1


def _cog_counts(res):
    r = res["result"]
    return r["listed"], r["done"], r["failed"]


def test_deleted_inputs_leave_the_counts_with_and_without_force(dask_cluster, sqlite_url, tmp_path):
    from kit.rasters import write_small_cogs

    src = write_small_cogs(tmp_path / "in", 4)
    args = ("cog", str(tmp_path / "in"), str(tmp_path / "out"))
    assert _cog_counts(_run(tmp_path, *args, ledger=sqlite_url, cluster=dask_cluster)) == (4, 4, 0)
    src[0].unlink()
    res = _run(tmp_path, *args, ledger=sqlite_url, cluster=dask_cluster)
    assert _cog_counts(res) == (3, 3, 0) and res["status"] == "completed"
    assert all(n >= 0 for s in res["stages"] for n in s["counts"].values())
    forced = _run(tmp_path, *args, "--force", ledger=sqlite_url, cluster=dask_cluster)
    assert _cog_counts(forced) == (3, 3, 0) and forced["status"] == "completed"
    assert sum(s["counts"].get("pending", 0) for s in forced["stages"]) == 0


def test_outputs_inside_the_input_are_not_read_back_as_inputs(dask_cluster, sqlite_url, tmp_path):
    from kit.rasters import write_small_cogs

    write_small_cogs(tmp_path / "in", 3)
    for run in range(3):
        res = _run(tmp_path, "cog", "in", "in/cogs", ledger=sqlite_url, cluster=dask_cluster)
        assert _cog_counts(res) == (3, 3, 0)
        assert res["result"]["skipped"].get("excluded", 0) == (0 if run == 0 else 3)
    assert len(list((tmp_path / "in" / "cogs").glob("*.tif"))) == 3


# --- resume checks what completed tasks wrote -------------------------------------------------------------


def test_a_deleted_or_changed_output_is_made_again(dask_cluster, sqlite_url, tmp_path):
    from kit.rasters import write_small_cogs

    write_small_cogs(tmp_path / "in", 4)
    args = ("cog", str(tmp_path / "in"), str(tmp_path / "out"))
    first = _run(tmp_path, *args, ledger=sqlite_url, cluster=dask_cluster)
    cogs = sorted((tmp_path / "out").glob("*.tif"))
    original = {p.name: p.read_bytes() for p in cogs}
    assert len(cogs) == 4 and first["executed"] > 0

    assert _run(tmp_path, *args, ledger=sqlite_url, cluster=dask_cluster)["executed"] == 1  # the listing

    cogs[0].unlink()
    cogs[1].write_bytes(original[cogs[1].name][:1000])  # truncated behind geoproc's back
    p = subprocess.run(geoproc_cmd(*args, "--ledger", sqlite_url, "--cluster", dask_cluster), cwd=tmp_path,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stderr
    assert "2 output(s) missing or changed" in p.stderr
    assert {c.name: c.read_bytes() for c in cogs} == original

    # the same size with other bytes is only seen by --verify
    data = bytearray(original[cogs[2].name])
    data[-1] ^= 0xFF
    cogs[2].write_bytes(bytes(data))
    plain = _run(tmp_path, *args, ledger=sqlite_url, cluster=dask_cluster)
    assert plain["executed"] == 1 and cogs[2].read_bytes() != original[cogs[2].name]
    verified = _run(tmp_path, *args, "--verify", ledger=sqlite_url, cluster=dask_cluster)
    assert verified["job_id"] == first["job_id"] and verified["executed"] == 2
    assert cogs[2].read_bytes() == original[cogs[2].name]
