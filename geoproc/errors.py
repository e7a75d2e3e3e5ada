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
    │   │   ├── CrsMissing         the raster has no CRS and none was given
    │   │   ├── SourceNotFound     the container or directory to read does not exist
    │   │   ├── CrsMismatch        the file's CRS differs from the one the job gave
    │   │   ├── EmptyRaster        every pixel is nodata
    │   │   ├── UnsupportedRaster  readable, but breaks a rule (rotated transform, 64-bit when strict)
    │   │   ├── TierMismatch       the requested COG tier cannot hold this raster
    │   │   ├── StorageAccessDenied  the storage service refused the credentials (401/403)
    │   │   ├── UnsafePath         an output name would escape its output prefix
    │   │   └── OutputExists       the output exists and overwriting was not allowed
    │   ├── TransientError         network, throttling, timeouts: retried with backoff
    │   │   └── StorageUnreachable the storage endpoint could not be reached
    │   └── OutputCheckFailed      a written output failed its checks (not a COG, empty overviews)
    ├── StorageError               a storage URL could not be reached or written (CLI exit 5)
    │   └── StorageNotConfigured   no credentials for a remote URL
    ├── LedgerError                the ledger database is unusable (CLI exit 5)
    │   └── SchemaMismatch         the ledger was written by a newer geoproc
    ├── ClusterError               the Dask cluster could not be reached or started (CLI exit 5)
    └── PgstacError                a pgstac database could not be set up or loaded (CLI exit 5)
        ├── PgstacNotConfigured    no pgstac DSN was given or found in GEOPROC_PGSTAC_DSN
        └── PgstacLoadIncomplete   items were still missing from pgstac after reloading them

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


class SourceNotFound(InvalidInput):
    """The container or directory to read (list, summarize, convert) does not exist."""

    code = "SOURCE_NOT_FOUND"
    remediation = "Check the URL: the container or directory name, and the storage account it points to."


class CrsMismatch(InvalidInput):
    """The raster's own CRS differs from the ``input_crs`` the job gave."""

    code = "CRS_MISMATCH"
    remediation = "Drop `input_crs` (it only applies to files without a CRS), or fix the file's georeferencing."


class EmptyRaster(InvalidInput):
    """Every pixel of the raster is nodata."""

    code = "RASTER_EMPTY"
    remediation = "Check the nodata value and the source of the file; an all-nodata raster holds no data."


class UnsupportedRaster(InvalidInput):
    """The raster is readable but breaks a rule (rotated transform, 64-bit under strict policy, ...)."""

    code = "UNSUPPORTED_RASTER"
    remediation = "Convert the raster to a supported form (see the message), then run the job again."


class TierMismatch(InvalidInput):
    """The requested COG tier cannot hold this raster (e.g. JPEG for a non-3-band-uint8 raster)."""

    code = "TIER_MISMATCH"
    remediation = "Use `tier=analysis` or `tier=archive`, or set `tier_fallback=true` to fall back with a warning."


class StorageAccessDenied(InvalidInput):
    """The storage service refused the credentials (HTTP 401/403)."""

    code = "STORAGE_ACCESS_DENIED"
    remediation = "Check the account key, the SAS token (expiry, permissions) or the identity's role on the container."


class UnsafePath(InvalidInput):
    """An output name would escape its output prefix (absolute path or '..')."""

    code = "UNSAFE_PATH"
    remediation = "Rename the input so that its path below the input prefix has no '..' components."


class OutputExists(InvalidInput):
    """The output exists, was not written from this input, and overwriting was not allowed."""

    code = "OUTPUT_EXISTS"
    remediation = "Set `overwrite=true` to replace it, or choose another output prefix."


class TransientError(TaskError):
    """A failure that may go away on its own: retried with exponential backoff and jitter."""

    code = "TRANSIENT"
    remediation = "The task was retried; if it keeps failing, check the storage service and network."


class StorageUnreachable(TransientError):
    """The storage endpoint could not be reached (DNS, refused connection, timeout)."""

    code = "STORAGE_UNREACHABLE"
    remediation = "Check the storage account name or endpoint and the network; the task was retried."


class OutputCheckFailed(TaskError):
    """An output the task wrote failed its own checks (not a valid COG, empty overviews)."""

    code = "OUTPUT_CHECK_FAILED"
    remediation = "Report the input that caused it; nothing was published for this task."


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


class PgstacError(GeoprocError):
    """A pgstac database could not be set up, loaded or checked."""


class PgstacNotConfigured(PgstacError):
    """A job asked for pgstac but no DSN was given or found in ``GEOPROC_PGSTAC_DSN``."""


class PgstacLoadIncomplete(PgstacError):
    """Some items were still missing from pgstac after the loader reloaded them."""
