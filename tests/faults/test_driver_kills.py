"""SIGKILL the driver of a container COG job at several points, re-run it, and compare with a clean run.

Each killed driver had started its own local cluster; it is killed alone (not its process group), so
the test also checks that its nannies and workers go away by themselves. After the last run:

* every output exists and is byte-identical to the output of a clean reference run;
* no task that was COMPLETED before a kill ran again (same ``finished_at`` and ``attempts``);
* the container holds the inputs and the two output trees, nothing else (no partial blobs).
"""

from __future__ import annotations

import json

import pytest
from kit.blobs import blob_hashes, upload_rasters
from kit.drivers import assert_reaped
from kit.ledger import cog_job_id, counts
from kit.polling import wait_for

import geoproc
from geoproc.ledger import open_ledger

N = 12
LIST, VALIDATE, CONVERT = 0, 1, 2


def _committed(led, job_id: str) -> dict[str, tuple[float, int]]:
    """finished_at and attempts of every COMPLETED task of the planned (non-volatile) stages."""
    return {t["task_id"]: (t["finished_at"], t["attempts"]) for t in led.list_tasks(job_id, status="completed", limit=None)
            if t["stage"] != LIST}


@pytest.mark.services
def test_sigkilled_driver_reruns_to_identical_outputs(azurite, az_fs, az_container, dask_cluster, drivers,
                                                      sqlite_url, tmp_path):
    c = az_container
    inputs = upload_rasters(az_fs, c, "in", N, tmp_path)
    src, ref, out = f"az://{c}/in", f"az://{c}/ref", f"az://{c}/out"

    clean = geoproc.run("cog", input=src, output=ref, cluster=dask_cluster, ledger=f"sqlite:///{tmp_path}/ref.db")
    assert clean.status == "completed" and clean.result["done"] == N
    reference = blob_hashes(az_fs, f"{c}/ref")
    assert len(reference) == N

    jid = cog_job_id(input=src, output=out)
    led = open_ledger(sqlite_url)
    args = ["run", "cog", "--set", f"input={src}", "--set", f"output={out}", "--workers", "2",
            "--ledger", sqlite_url, "--json"]
    points = [
        ("listing/validation", lambda: VALIDATE in led.counts(jid) and counts(led, jid, CONVERT) == 0),
        ("a few COGs recorded", lambda: counts(led, jid, CONVERT) >= 3),
        ("past half way", lambda: counts(led, jid, CONVERT) >= N // 2 + 1),
    ]
    # outcomes are written every 50 ms, so the ledger shows progress task by task and a kill point
    # is seen well before the last COG lands
    fast_ledger = {"GEOPROC_FLUSH_INTERVAL": "0.05"}
    committed: dict[str, tuple[float, int]] = {}

    for what, reached in points:
        d = drivers(*args, env=fast_ledger)
        wait_for(lambda reached=reached: led.get_job(jid) is not None and reached(), timeout=90, what=what)
        assert d.proc.poll() is None, f"the driver ended before the kill point {what!r}: {d.stderr[-2000:]}"
        kids = d.sigkill()
        assert kids, "the driver had started no cluster processes"
        assert_reaped(kids)
        assert led.get_job(jid).status == "running"  # the dead driver left its lease behind
        assert counts(led, jid, CONVERT) < N
        for tid, stamp in _committed(led, jid).items():
            committed.setdefault(tid, stamp)

    final = drivers(*args)
    assert final.wait(120) == 0, final.stderr[-3000:]
    res = json.loads(final.stdout)
    assert res["status"] == "completed" and res["result"]["done"] == N and res["result"]["failed"] == 0

    # no committed task recomputed
    after = {t["task_id"]: t for t in led.list_tasks(jid, limit=None)}
    changed = {tid: (stamp, (after[tid]["finished_at"], after[tid]["attempts"]), after[tid]["status"])
               for tid, stamp in committed.items()
               if (after[tid]["finished_at"], after[tid]["attempts"]) != stamp or after[tid]["status"] != "completed"}
    assert not changed, f"completed tasks ran again: {changed}"
    assert 0 < len(committed) < 2 * N
    kinds = [e["kind"] for e in led.events(jid)]
    assert kinds.count("lease_taken_over") == len(points) and kinds.count("run_started") == len(points) + 1

    # outputs: present, byte-identical to the clean run, and what the ledger says they are
    outputs = blob_hashes(az_fs, f"{c}/out")
    assert outputs == reference
    for t in after.values():
        if t["stage"] == CONVERT:
            rel = t["result"]["output"].split(f"/{c}/out/", 1)[1]
            assert t["result"]["sha256"] == outputs[rel]

    # nothing else in the container: no partial or temporary blob anywhere
    az_fs.invalidate_cache()
    everything = set(az_fs.find(c))
    expected = set(inputs) | {f"{c}/ref/{r}" for r in reference} | {f"{c}/out/{r}" for r in outputs}
    assert everything == expected
    led.close()
