"""Azurite stops for a few seconds in the middle of a COG container job; the job completes through retries.

A dedicated Azurite runs on a fixed port with a data directory that survives its restart, so the
storage comes back at the same address with the same blobs, as a real service would after an outage.
"""

from __future__ import annotations

import threading
import time

import pytest
from kit import services
from kit.blobs import blob_hashes, upload_rasters
from kit.ledger import cog_job_id, counts
from kit.polling import wait_for

import geoproc
from geoproc.ledger import open_ledger
from geoproc.storage import open_fs

N = 24
CONVERT = 2
OUTAGE_S = 4.0


@pytest.fixture
def own_azurite(tmp_path, monkeypatch):
    """A private Azurite on a fixed port; yields a controller that can stop and restart it."""
    location, port = tmp_path / "azurite", services.free_port()

    class Service:
        proc = None

        def start(self):
            self.proc, got = services.start_azurite(location, port)
            assert got == port

        def stop(self):
            self.proc.terminate()
            self.proc.wait(20)

    svc = Service()
    svc.start()
    svc.connection_string = services.azurite_connection_string(port)
    monkeypatch.setenv("AZURE_STORAGE_CONNECTION_STRING", svc.connection_string)
    try:
        yield svc
    finally:
        if svc.proc is not None and svc.proc.poll() is None:
            svc.stop()


@pytest.mark.services
def test_job_completes_through_a_storage_outage(own_azurite, dask_cluster, sqlite_url, tmp_path, monkeypatch):
    # outcomes reach the ledger every 50 ms, so the outage is injected while most COGs are still to come
    monkeypatch.setenv("GEOPROC_FLUSH_INTERVAL", "0.05")
    fs, _ = open_fs("az://x", {"az": {"connection_string": own_azurite.connection_string}})
    fs.mkdir("outage")
    upload_rasters(fs, "outage", "in", N, tmp_path)
    src, out = "az://outage/in", "az://outage/out"
    jid = cog_job_id(input=src, output=out)
    led = open_ledger(sqlite_url)
    outage: dict[str, float] = {}
    errors: list[BaseException] = []

    def inject():
        try:
            wait_for(lambda: led.get_job(jid) is not None and counts(led, jid, CONVERT) >= 2, timeout=120,
                     interval=0.02, what="two COGs recorded")
            outage["done_before"] = counts(led, jid, CONVERT)
            outage["down"] = time.time()
            own_azurite.stop()
            time.sleep(OUTAGE_S)
            own_azurite.start()
            outage["up"] = time.time()
        except BaseException as exc:  # noqa: BLE001 - reported by the test thread
            errors.append(exc)

    t = threading.Thread(target=inject, daemon=True)
    t.start()
    res = geoproc.run("cog", input=src, output=out, cluster=dask_cluster, ledger=sqlite_url)
    t.join(60)
    assert not errors, errors
    assert outage.get("up"), "the outage was never injected"
    tasks = led.list_tasks(jid, limit=None)
    last = max(t["finished_at"] or 0 for t in tasks)
    assert outage["done_before"] < N and last > outage["down"], "the job ended before the outage"
    failed = [(t["key"], t["error_code"], t["attempts"], t["error_message"]) for t in tasks if t["status"] != "completed"]
    assert res.status == "completed", failed
    assert res.result["done"] == N and not failed
    # the outage hit running tasks; they were retried (attempts > 1) and then succeeded
    retried = [(t["key"], t["attempts"]) for t in tasks if t["attempts"] > 1 and t["stage"] != 0]
    assert retried, "no task met the outage"
    # every output is there, with the bytes the ledger recorded
    hashes = blob_hashes(fs, "outage/out")
    assert len(hashes) == N
    for t in tasks:
        if t["stage"] == CONVERT:
            assert hashes[t["result"]["output"].split("/outage/out/", 1)[1]] == t["result"]["sha256"]
    led.close()
