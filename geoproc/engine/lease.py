"""The job lease: at most one live driver per job, kept alive by a heartbeat.

A driver takes the job's lease before it runs anything. A second submission of the same job finds the
lease held by a live driver and waits for it (returning that run's final record), or raises
:class:`~geoproc.errors.JobBusy` when told not to wait. While the job runs, a heartbeat thread renews
the lease every ``heartbeat_interval`` seconds and picks up cancel requests written by other processes.
A driver that died stops beating; the next run takes its lease over once the heartbeat is older than
``lease_ttl`` (or at once, when the dead driver ran on the same host).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Any

from ..errors import JobBusy
from ..ledger import JobRecord, Ledger, owner_token
from ..settings import Settings
from .worker import first_line

log = logging.getLogger(__name__)

EventSink = Callable[[str, dict[str, Any]], None]


class StopRun(Exception):  # noqa: N818 - control flow inside the engine, never seen by callers
    """The run must stop: ``reason`` is ``"cancelled"`` (requested) or ``"lost"`` (another driver took over)."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Lease:
    """The lease of one job held by this driver process, and the heartbeat that keeps it."""

    def __init__(self, ledger: Ledger, job_id: str, settings: Settings, emit: EventSink):
        self.ledger, self.job_id, self.settings, self.emit = ledger, job_id, settings, emit
        self.owner = owner_token()
        self.lost = threading.Event()  # another driver owns the job now
        self.cancel = threading.Event()  # someone asked the job to stop
        self.missed = 0  # heartbeats that failed in this run
        self._unrecorded = 0  # failed heartbeats not yet written to the job's events
        self._last_error: str | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def run_token(self) -> str:
        """A short token unique to this run (from the owner's start time), for Dask keys."""
        return self.owner.rsplit(":", 1)[-1][-6:]

    def take(self, *, wait: bool) -> JobRecord | None:
        """Acquire the lease, or wait for the live driver that holds it and return its final record.

        Returns None when this process now holds the lease.
        """
        waited = False
        while not self.ledger.acquire_lease(self.job_id, self.owner, self.settings.lease_ttl):
            job = self.ledger.get_job(self.job_id)
            if job is None:
                continue
            if not wait:
                raise JobBusy(f"Job {self.job_id[:12]} is running in another process ({job.lease_owner}); "
                              f"watch it with `geoproc status {self.job_id[:12]}`.")
            if not waited:
                self.emit("following", {"job_id": self.job_id, "owner": job.lease_owner})
                waited = True
            time.sleep(self.settings.follow_poll)
        if waited:
            job = self.ledger.get_job(self.job_id)
            if job is not None and job.terminal:
                self.ledger.release_lease(self.job_id, self.owner)
                return job
        return None

    # --- heartbeat ---------------------------------------------------------------------------------------

    def start_heartbeat(self) -> None:
        self._thread = threading.Thread(target=self._beat, name=f"geoproc-heartbeat-{self.job_id[:8]}",
                                        daemon=True)
        self._thread.start()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        if self._unrecorded:
            self._record_missed()

    def _beat(self) -> None:
        interval = self.settings.heartbeat_interval
        while not self._stop.wait(interval):
            try:
                ours, cancel = self.ledger.heartbeat(self.job_id, self.owner)
            except Exception as exc:  # noqa: BLE001 - a missed beat is retried on the next tick
                self.missed += 1
                self._unrecorded += 1
                self._last_error = first_line(exc)
                log.warning("Heartbeat of job %s failed (%d missed in this run); retrying in %.1f s",
                            self.job_id[:12], self.missed, interval, exc_info=True)
                continue
            if self._unrecorded:
                self._record_missed()
            if not ours:
                self.lost.set()
            if cancel:
                self.cancel.set()

    def _record_missed(self) -> None:
        """Write the heartbeats that failed since the last record to the job's events (once it works again)."""
        try:
            self.ledger.event(self.job_id, "heartbeat_failed", message=self._last_error,
                              data={"count": self._unrecorded, "total": self.missed})
        except Exception:  # noqa: BLE001 - the ledger is still unreachable; the next beat tries again
            log.warning("Could not record %d failed heartbeats of job %s", self._unrecorded, self.job_id[:12],
                        exc_info=True)
            return
        self._unrecorded = 0
