"""The engine: compiles a job into Dask graphs, runs it, and records it in the ledger.

It is handed the job's handler functions by the API and never imports the job registry.
"""

from .cluster import connect
from .driver import Driver

__all__ = ["Driver", "connect"]
