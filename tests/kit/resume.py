"""Kill a ``geoproc run`` driver once some regions are written, and read back how far it got."""

from __future__ import annotations

import os
import signal
import subprocess

from geoproc.errors import LedgerNotFound
from geoproc.ledger import open_ledger
from kit.drivers import geoproc_cmd
from kit.polling import wait_for


def region_counts(ledger_url: str) -> tuple[str, dict[str, int]] | None:
    """(job id, task counts by status of its ``regions`` stage) of the ledger's latest job, or None."""
    if not os.path.exists(ledger_url.removeprefix("sqlite:///")):
        return None
    try:
        led = open_ledger(ledger_url, read_only=True)
    except LedgerNotFound:  # the driver has created the file but not the schema yet
        return None
    try:
        jobs = led.list_jobs(limit=1)
        return (jobs[0].job_id, led.counts(jobs[0].job_id).get(1, {})) if jobs else None
    finally:
        led.close()


def kill_midway(args: list[str] | tuple[str, ...], ledger_url: str, regions: int = 20) -> tuple[str, int, int]:
    """Run ``geoproc ARGS`` (its ledger ``ledger_url``), SIGKILL its process group once ``regions`` regions
    are recorded as written; returns (job id, regions written, regions planned)."""
    proc = subprocess.Popen(geoproc_cmd(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        def enough() -> bool:
            state = region_counts(ledger_url)
            return proc.poll() is not None or bool(state and state[1].get("completed", 0) >= regions)

        wait_for(enough, timeout=120, what=f"{regions} regions written")
        assert proc.poll() is None, proc.communicate()  # still running when killed
        os.killpg(proc.pid, signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait(30)
    state = region_counts(ledger_url)
    assert state is not None
    job_id, counts = state
    return job_id, counts.get("completed", 0), sum(counts.values())
