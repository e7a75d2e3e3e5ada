"""geoproc: parallel raster ETL on Dask with a resumable job ledger.

>>> import geoproc
>>> res = geoproc.run("hello_world", n=5)        # doctest: +SKIP
>>> res.status, res.result["replies"]             # doctest: +SKIP
('completed', 5)
"""

from .api import JobHandle, JobResult, open, process, retry, run, status, submit, write, zonal_stats
from .errors import GeoprocError
from .jobs import ALL_HANDLERS, ALL_JOBS, get_job
from .lifecycle import approve, history, reject, unpublish
from .planview import plan_write
from .version import __version__

__all__ = ["ALL_HANDLERS", "ALL_JOBS", "GeoprocError", "JobHandle", "JobResult", "__version__", "approve",
           "get_job", "history", "open", "plan_write", "process", "reject", "retry", "run", "status", "submit", "unpublish",
           "write", "zonal_stats"]
