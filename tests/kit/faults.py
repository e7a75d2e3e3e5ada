"""Fault injection from inside a Dask worker: kill it while it is running a task, and say which.

Killing a worker from outside cannot tell whether it was busy; a kill that lands between two tasks proves
nothing about recovery. ``kill_busy_worker`` runs in the worker's own event loop, reads the keys its
threads are executing at that instant and SIGKILLs its own process, so the keys it reports were
certainly cut off mid-run. Its nanny then starts a fresh worker process (on a new address).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Kill:
    """A worker killed mid-task: its address, when, and the Dask keys it was executing."""

    address: str
    at: float
    keys: list[str]


def kill_busy_worker(client, address: str, record: Path) -> Kill | None:
    """SIGKILL the worker at ``address`` if it is executing a task now; None (and no kill) when idle.

    ``record`` is a file the dying worker writes the executing keys and the time to, just before the kill.
    """

    def die_if_busy(path, dask_worker=None):  # runs in the worker process (pickled by value)
        import json as _json
        import os as _os
        import signal as _signal
        import time as _time

        keys = [str(ts.key) for ts in dask_worker.state.executing]
        if not keys:
            return None
        tmp = f"{path}.tmp"
        with open(tmp, "w") as fh:
            _json.dump({"keys": keys, "at": _time.time()}, fh)
        _os.replace(tmp, path)
        _os.kill(_os.getpid(), _signal.SIGKILL)
        return keys  # never reached

    record = Path(record)
    record.unlink(missing_ok=True)
    try:
        client.run(die_if_busy, str(record), workers=[address], on_error="return")
    except Exception:  # noqa: BLE001 - the connection to a worker that killed itself breaks
        pass
    if not record.exists():
        return None
    info = json.loads(record.read_text())
    return Kill(address=address, at=info["at"], keys=info["keys"])


def wait_until_gone(client, address: str, timeout: float = 30) -> None:
    """Wait until the scheduler has dropped the killed worker at ``address``."""
    deadline = time.time() + timeout
    while address in client.scheduler_info(n_workers=-1).get("workers", {}):
        if time.time() > deadline:
            raise AssertionError(f"the scheduler still lists the killed worker {address}")
        time.sleep(0.05)
