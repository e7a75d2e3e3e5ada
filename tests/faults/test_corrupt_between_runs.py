"""An input is overwritten with garbage between a killed run and its re-run: only its task fails."""

from __future__ import annotations

import json

import pytest
from kit.blobs import blob_hashes, upload_rasters
from kit.drivers import assert_reaped
from kit.ledger import cog_job_id, counts
from kit.polling import wait_for

from geoproc.ledger import open_ledger

N = 12
CONVERT = 2


@pytest.mark.services
def test_input_corrupted_between_runs_fails_only_its_task(azurite, az_fs, az_container, drivers, sqlite_url, tmp_path):
    c = az_container
    inputs = upload_rasters(az_fs, c, "in", N, tmp_path)
    src, out = f"az://{c}/in", f"az://{c}/out"
    jid = cog_job_id(input=src, output=out)
    led = open_ledger(sqlite_url)
    args = ["run", "cog", "--set", f"input={src}", "--set", f"output={out}", "--workers", "2",
            "--ledger", sqlite_url, "--json"]

    first = drivers(*args, env={"GEOPROC_FLUSH_INTERVAL": "0.05"})  # progress visible task by task
    wait_for(lambda: led.get_job(jid) is not None and counts(led, jid, CONVERT) >= 3, timeout=90,
             what="three COGs recorded")
    assert first.proc.poll() is None, first.stderr[-2000:]
    assert_reaped(first.sigkill())
    converted = {t["key"] for t in led.list_tasks(jid, stage=CONVERT, status="completed", limit=None)}
    assert 3 <= len(converted) < N
    victim = next(f"az://{b}" for b in reversed(inputs) if f"az://{b}" not in converted)
    az_fs.pipe_file(victim.split("://", 1)[1], b"II*\x00" + bytes(range(256)) * 40)  # a TIFF magic, then garbage

    again = drivers(*args)
    assert again.wait(120) == 3, again.stderr[-3000:]  # exit code 3: completed with errors
    res = json.loads(again.stdout)
    assert res["status"] == "completed_with_errors"
    assert res["result"]["done"] == N - 1 and res["result"]["failed"] == 1

    tasks = led.list_tasks(jid, limit=None)
    failed = [t for t in tasks if t["status"] == "failed"]
    assert [(t["key"], t["error_code"], t["attempts"]) for t in failed] == [(victim, "CORRUPT_RASTER", 1)]
    assert failed[0]["remediation"] and "gdalinfo" in failed[0]["remediation"]
    others = [t for t in tasks if t["key"] != victim]
    assert all(t["status"] == "completed" for t in others), [(t["key"], t["status"]) for t in others
                                                              if t["status"] != "completed"]
    assert {t["status"] for t in tasks if t["key"] == victim} <= {"failed", "skipped", "completed"}

    outputs = blob_hashes(az_fs, f"{c}/out")
    victim_rel = victim.split(f"/{c}/in/", 1)[1]
    assert victim_rel not in outputs and len(outputs) == N - 1
    for t in tasks:
        if t["stage"] == CONVERT and t["status"] == "completed":
            assert outputs[t["result"]["output"].split(f"/{c}/out/", 1)[1]] == t["result"]["sha256"]
    led.close()
