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

from ..status import TERMINAL


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
