"""The same COG container job submitted from two processes at once runs once."""

from __future__ import annotations

import json

import pytest
from kit.blobs import blob_hashes, upload_rasters
from kit.ledger import cog_job_id

from geoproc.ledger import open_ledger

N = 12


@pytest.mark.services
def test_same_cog_job_from_two_processes_runs_once(azurite, az_fs, az_container, dask_cluster, drivers, sqlite_url,
                                                   tmp_path):
    c = az_container
    upload_rasters(az_fs, c, "in", N, tmp_path)
    src, out = f"az://{c}/in", f"az://{c}/out"
    args = ["run", "cog", "--set", f"input={src}", "--set", f"output={out}", "--cluster", dask_cluster,
            "--ledger", sqlite_url, "--json"]
    a, b = drivers(*args), drivers(*args)
    codes = [a.wait(180), b.wait(180)]
    assert codes == [0, 0], (a.stderr[-2000:], b.stderr[-2000:])
    ra, rb = json.loads(a.stdout), json.loads(b.stdout)
    assert ra["job_id"] == rb["job_id"] == cog_job_id(input=src, output=out)
    assert ra["status"] == rb["status"] == "completed"
    assert ra["result"] == rb["result"] and ra["result"]["done"] == N
    assert sorted([ra["executed"], rb["executed"]]) == [0, 2 * N + 1]  # list + N validations + N COGs, once

    led = open_ledger(sqlite_url)
    jid = ra["job_id"]
    assert led.get_job(jid).runs == 1
    assert [e["kind"] for e in led.events(jid)].count("run_started") == 1
    tasks = led.list_tasks(jid, limit=None)
    assert len(tasks) == 2 * N + 1 and all(t["attempts"] == 1 and t["status"] == "completed" for t in tasks)
    assert len(blob_hashes(az_fs, f"{c}/out")) == N
    led.close()
