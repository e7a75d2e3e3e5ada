"""geoproc: parallel raster ETL on Dask with a resumable job ledger.

>>> import geoproc
>>> res = geoproc.run("hello_world", n=5)        # doctest: +SKIP
>>> res.status, res.result["replies"]             # doctest: +SKIP
('completed', 5)
"""

from __future__ import annotations

from typing import Any

from . import status as _status_module  # noqa: F401 - the module, before the function takes its name
from .errors import GeoprocError
from .version import __version__

__all__ = ["ALL_HANDLERS", "ALL_JOBS", "GeoprocError", "JobHandle", "JobResult", "__version__", "approve",
           "get_job", "history", "open", "plan_write", "process", "reject", "retry", "run", "status", "submit", "unpublish",
           "write", "zonal_stats"]

# The facade is loaded on first use: a Dask worker imports ``geoproc.jobs.<job>`` for its handlers and
# should not pay for the API, the engine, the ledger and every other job (a third of a worker's imports).
_API = {"JobHandle", "JobResult", "open", "process", "retry", "run", "submit", "write", "zonal_stats"}
_JOBS = {"ALL_HANDLERS", "ALL_JOBS", "get_job"}
_LIFECYCLE = {"approve", "history", "reject", "unpublish"}


def __getattr__(name: str) -> Any:
    if name in _API:
        from . import api as module
    elif name in _JOBS:
        from . import jobs as module
    elif name in _LIFECYCLE:
        from . import lifecycle as module
    elif name == "plan_write":
        from . import planview as module
    else:
        raise AttributeError(f"module 'geoproc' has no attribute {name!r}")
    value = getattr(module, name)
    globals()[name] = value
    return value


def status(job_id: str, ledger: str | None = None) -> Any:
    """The current state of a job (by id or unambiguous prefix) from the ledger (:func:`geoproc.api.status`;
    a function here, since ``geoproc.status`` is also the module of the status enums)."""
    from .api import status as api_status

    return api_status(job_id, ledger)


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
