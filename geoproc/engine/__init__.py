"""The engine: compiles a job into Dask graphs, runs it, and records it in the ledger."""

from .cluster import connect
from .driver import Driver
from .retry import classify

__all__ = ["Driver", "classify", "connect"]
