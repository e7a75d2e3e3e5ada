"""What the ledger hands out about a job (:class:`JobRecord`), and who may hold a job's lease.

A lease owner is a token naming the driver process (host, pid, start time), so that a lease held by a
process that died on this host can be taken over at once instead of after the lease TTL.
"""

from __future__ import annotations

import os
import socket
import time
from dataclasses import dataclass
from typing import Any

from ..status import TERMINAL, JobStatus


@dataclass
class JobRecord:
    job_id: str
    job_type: str
    params: dict[str, Any]
    status: str
    stage: int
    n_stages: int
    result: dict[str, Any] | None
    error: str | None
    runs: int
    cancel_requested: bool
    lease_owner: str | None
    heartbeat_at: float | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    west: float | None = None
    south: float | None = None
    east: float | None = None
    north: float | None = None

    @property
    def bbox(self) -> list[float] | None:
        box = [self.west, self.south, self.east, self.north]
        return None if any(v is None for v in box) else [float(v) for v in box if v is not None]

    def driver_gone(self, lease_ttl: float) -> bool:
        """Whether a job the ledger calls running has lost its driver: the process is gone from this
        host, or (elsewhere) its heartbeat is older than ``lease_ttl`` seconds."""
        if self.status != JobStatus.RUNNING:
            return False
        alive = owner_alive(self.lease_owner) if self.lease_owner else False
        if alive is not None:
            return not alive
        return self.heartbeat_at is None or time.time() - self.heartbeat_at > lease_ttl

    def seen_status(self, lease_ttl: float) -> str:
        """``interrupted`` for a running job whose driver is gone (the next run resumes it), else the status."""
        return JobStatus.INTERRUPTED if self.driver_gone(lease_ttl) else self.status

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


def owner_token() -> str:
    """Identifies this driver process in a lease: host, pid and start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time() * 1000)}"


def owner_alive(owner: str) -> bool | None:
    """True/False when the lease owner runs on this host (checked by pid); None when it is elsewhere."""
    try:
        host, pid, _ = owner.rsplit(":", 2)
        if host != socket.gethostname():
            return None
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return None
