"""Every exception geoproc raises, in one tree.

::

    GeoprocError
    ├── UserError                  the caller asked for something impossible (CLI exit 2)
    │   ├── UnknownJob             (ValueError) job type not in the registry
    │   ├── InvalidParams          (ValueError) a parameter failed its schema
    │   ├── JobNotFound            (LookupError) no such job id in the ledger
    │   ├── SpecFileError          (ValueError) a job spec file could not be read
    │   └── JobBusy                another live driver holds the job and we were told not to wait
    ├── TaskError                  raised by handlers; carries a code and a remediation sentence
    │   ├── InvalidInput           (ValueError) bad data: never retried, the task is quarantined
    │   │   ├── CorruptRaster      the file is not a readable raster
    │   │   └── CrsMissing         the raster has no CRS and none was given
    │   └── TransientError         network, throttling, timeouts: retried with backoff
    ├── StorageError               a storage URL could not be reached or written (CLI exit 5)
    │   └── StorageNotConfigured   no credentials for a remote URL
    ├── LedgerError                the ledger database is unusable (CLI exit 5)
    │   └── SchemaMismatch         the ledger was written by a newer geoproc
    └── ClusterError               the Dask cluster could not be reached or started (CLI exit 5)

Handlers raise :class:`InvalidInput` (or a subclass) for input that will never work and
:class:`TransientError` for failures worth retrying; anything else a handler raises is classified by
:func:`geoproc.engine.retry.classify`.
"""

from __future__ import annotations


class GeoprocError(Exception):
    """Root of every error geoproc raises on purpose."""


# --- user errors -----------------------------------------------------------------------------------


class UserError(GeoprocError):
    """The request itself is wrong; the message says how to fix it."""


class UnknownJob(UserError, ValueError):
    """The job type is not registered."""

    def __init__(self, name: str, available: list[str]):
        self.name, self.available = name, available
        super().__init__(f"Unknown job {name!r}; available: {', '.join(available)}")


class InvalidParams(UserError, ValueError):
    """A job parameter failed validation; names the field, the value and what is allowed."""

    def __init__(self, job_type: str, problems: list[str]):
        self.job_type, self.problems = job_type, problems
        super().__init__(f"Invalid parameters for {job_type!r}: " + "; ".join(problems))


class JobNotFound(UserError, LookupError):
    """No job with this id (or id prefix) is in the ledger."""


class SpecFileError(UserError, ValueError):
    """A job spec file is missing, unreadable or malformed."""


class JobBusy(UserError):
    """Another live driver is running this job."""


# --- task errors -----------------------------------------------------------------------------------


class TaskError(GeoprocError):
    """A task failed; ``code`` is stable and machine-readable, ``remediation`` tells the user what to do."""

    code = "TASK_FAILED"
    remediation = "See the error message and the task's traceback with `geoproc tasks JOB_ID --status failed`."

    def __init__(self, message: str, *, code: str | None = None, remediation: str | None = None):
        super().__init__(message)
        if code:
            self.code = code
        if remediation:
            self.remediation = remediation


class InvalidInput(TaskError, ValueError):
    """The task's input can never succeed as it is; retrying is pointless."""

    code = "INVALID_INPUT"
    remediation = "Fix or replace the input, then run `geoproc retry JOB_ID --failed`."


class CorruptRaster(InvalidInput):
    """The file is not a readable raster (truncated, wrong format, or damaged)."""

    code = "CORRUPT_RASTER"
    remediation = "Check that the file is a complete GeoTIFF (e.g. `gdalinfo FILE`); re-upload it if truncated."


class CrsMissing(InvalidInput):
    """The raster has no coordinate reference system and the job gave none."""

    code = "CRS_MISSING"
    remediation = "Pass the source CRS with `--set input_crs=EPSG:XXXX`, or fix the file's georeferencing."


class TransientError(TaskError):
    """A failure that may go away on its own: retried with exponential backoff and jitter."""

    code = "TRANSIENT"
    remediation = "The task was retried; if it keeps failing, check the storage service and network."


# --- environment errors ----------------------------------------------------------------------------


class StorageError(GeoprocError):
    """A storage location could not be listed, read or written."""


class StorageNotConfigured(StorageError):
    """A remote URL was given but no credentials for it were found."""


class LedgerError(GeoprocError):
    """The ledger database cannot be opened or used."""


class SchemaMismatch(LedgerError):
    """The ledger's schema version is newer than this geoproc understands."""


class ClusterError(GeoprocError):
    """The Dask cluster could not be started or reached."""
