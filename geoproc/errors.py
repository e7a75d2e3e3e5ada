"""Every exception geoproc raises, in one tree.

::

    GeoprocError
    ├── UserError                  the caller asked for something impossible (CLI exit 2)
    │   ├── UnknownJob             (ValueError) job type not in the registry
    │   ├── InvalidParams          (ValueError) a parameter failed its schema
    │   ├── JobNotFound            (LookupError) no such job id in the ledger
    │   ├── SpecFileError          (ValueError) a job spec file could not be read
    │   ├── InvalidSetting         (ValueError) a GEOPROC_* setting or a command-line option is out of range
    │   ├── LedgerNotFound         (LookupError) a read-only command named a ledger that does not exist
    │   ├── InputRefused           (ValueError) a stage's plan refused the inputs, before anything ran (has a code)
    │   │   └── InvalidExpression  a band-math expression is malformed or not allowed
    │   └── JobBusy                another live driver holds the job and we were told not to wait
    ├── JobFailed                  a job whose output was asked for (geoproc.zonal_stats) did not complete
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
    │   │   ├── UnsafePath         an output name would escape its output prefix or overwrite its input
    │   │   ├── OutputExists       the output exists and overwriting was not allowed
    │   │   ├── OutputCollision    two inputs map to one output
    │   │   ├── CollectionNotHomogeneous  the files of one collection differ (bands, type, CRS, resolution)
    │   │   ├── BadDatetime        a datetime is not ISO 8601, or a range ends before it starts
    │   │   ├── DatetimeMissing    no datetime for a STAC item can be found
    │   │   └── HrefMissing        a raster record names no URL for its STAC asset
    │   ├── TransientError         network, throttling, timeouts: retried with backoff
    │   │   └── StorageUnreachable the storage endpoint could not be reached
    │   └── OutputCheckFailed      a written output failed its checks (not a COG, empty overviews)
    ├── StorageError               a storage URL could not be reached or written (CLI exit 5)
    │   └── StorageNotConfigured   no credentials for a remote URL
    ├── LedgerError                the ledger database is unusable (CLI exit 5)
    │   └── SchemaMismatch         the ledger was written by a newer geoproc
    ├── ClusterError               the Dask cluster could not be reached or started (CLI exit 5)
    ├── JobDefinitionError         a job type's declaration is inconsistent: a bug in the job (CLI exit 1)
    └── PgstacError                a pgstac database could not be set up or loaded (CLI exit 5)
        ├── PgstacNotConfigured    no pgstac DSN was given or found in GEOPROC_PGSTAC_DSN
        └── PgstacLoadIncomplete   items were still missing from pgstac after reloading them

Handlers raise :class:`InvalidInput` (or a subclass) for input that will never work and
:class:`TransientError` for failures worth retrying; anything else a handler raises is classified by
:func:`geoproc.storage.faults.classify`.

Every error code a user can meet is in one catalogue (:func:`catalogue`, printed by ``geoproc codes``):
the ``code`` of each :class:`TaskError` class here, plus :data:`CODES`, the codes that have no class of
their own (engine outcomes, validation findings, warnings). Those are module constants named like their
value (``WORKER_LOST == "WORKER_LOST"``), so code that emits them imports the name instead of spelling it.
"""

from __future__ import annotations

from dataclasses import dataclass


class GeoprocError(Exception):
    """Root of every error geoproc raises on purpose."""


@dataclass(frozen=True)
class TaskWarning:
    """Something a task noticed that did not fail it (a validator warning, a tier fallback).

    Typed so that a warning's ``code`` can be filtered on; ``str()`` gives the ``"CODE: message"`` form
    shown in reports.
    """

    code: str
    message: str

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"

    def as_dict(self) -> dict[str, str]:
        return {"code": self.code, "message": self.message}


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


class InvalidSetting(UserError, ValueError):
    """A ``GEOPROC_*`` setting or a command-line option has a value geoproc cannot use."""


class LedgerNotFound(UserError, LookupError):
    """A command that only reads the ledger was pointed at a ledger that does not exist."""


class InputRefused(UserError, ValueError):
    """The job's inputs were refused while it was planned, before anything ran: a task error's code
    (``FUNCTION_IMPORT``, ``NO_OVERLAP``, ...) raised by a stage's plan, with its remediation."""

    def __init__(self, message: str, *, code: str, remediation: str | None = None):
        super().__init__(message)
        self.code = code
        self.remediation = remediation or (CODES[code].remediation if code in CODES else "")


class InvalidExpression(InputRefused):
    """A band-math expression is malformed, uses a construct outside the allow-list, or an unknown name.

    Refused before anything runs; ``code`` is one of ``EXPR_SYNTAX``, ``EXPR_FORBIDDEN``,
    ``EXPR_UNKNOWN_NAME`` (see the catalogue for their remediations).
    """


class JobBusy(UserError):
    """Another live driver is running this job."""


class JobFailed(GeoprocError):
    """A job called for what it makes (``geoproc.zonal_stats``'s table) did not complete.

    ``result`` is its :class:`~geoproc.api.JobResult`: the failed tasks, their codes and remediations.
    """

    def __init__(self, message: str, result: object = None):
        super().__init__(message)
        self.result = result


# --- task errors -----------------------------------------------------------------------------------


class TaskError(GeoprocError):
    """A task failed; ``code`` is stable and machine-readable, ``remediation`` tells the user what to do."""

    code = "TASK_FAILED"
    remediation = "See the error message and the task's traceback with `geoproc tasks JOB_ID --status failed`."

    def __init__(self, message: str, *, code: str | None = None, remediation: str | None = None):
        super().__init__(message)
        if code:
            self.code = code
            if not remediation and code in CODES:  # a catalogued code comes with its own remediation
                remediation = CODES[code].remediation
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
    """An output name would escape its output prefix ('..', absolute path) or overwrite its own input."""

    code = "UNSAFE_PATH"
    remediation = ("Choose an output prefix that lies outside the inputs, and rename inputs whose path below "
                   "the input prefix has '..' components.")


class OutputExists(InvalidInput):
    """The output exists, was not written from this input, and overwriting was not allowed."""

    code = "OUTPUT_EXISTS"
    remediation = "Set `overwrite=true` to replace it, or choose another output prefix."


class OutputCollision(InvalidInput):
    """Two inputs map to one output name (e.g. ``a.tif`` and ``a.tiff`` both become ``a.tif``)."""

    code = "OUTPUT_COLLISION"
    remediation = ("Rename one of the two inputs, or convert them in separate jobs with different output "
                   "prefixes; `overwrite` cannot help, both would write the same file.")


class CollectionNotHomogeneous(InvalidInput):
    """The files of one collection differ in band count, data type, CRS or resolution."""

    code = "COLLECTION_NOT_HOMOGENEOUS"
    remediation = "Convert the files as separate jobs, or set collection=false."


class BadDatetime(InvalidInput):
    """A datetime is not ISO 8601, or a datetime range ends before it starts."""

    code = "BAD_DATETIME"
    remediation = ("Give datetimes as ISO 8601, e.g. stac_datetime=2024-05-01T00:00:00Z, and ranges as "
                   "START/END with START before END.")


class DatetimeMissing(InvalidInput):
    """No datetime for a STAC item: none given, none in the file's metadata or name, no last-modified time."""

    code = "NO_DATETIME"
    remediation = "Give the job a datetime, e.g. `--set stac_datetime=2024-05-01T00:00:00Z`."


class HrefMissing(InvalidInput):
    """A raster record names neither an output nor an input URL, so its STAC item would have no asset."""

    code = "NO_HREF"
    remediation = ("Build STAC items from task results or header records, which name their file "
                   "(`output` or `input`), or pass the asset `href` explicitly.")


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


class JobDefinitionError(GeoprocError):
    """A job type's declaration is inconsistent (an unregistered handler, a stage planning a key twice)."""


class PgstacError(GeoprocError):
    """A pgstac database could not be set up, loaded or checked."""


class PgstacNotConfigured(PgstacError):
    """A job asked for pgstac but no DSN was given or found in ``GEOPROC_PGSTAC_DSN``."""


class PgstacLoadIncomplete(PgstacError):
    """Some items were still missing from pgstac after the loader reloaded them."""


# --- the code catalogue ----------------------------------------------------------------------------


@dataclass(frozen=True)
class CodeInfo:
    """What an error or warning code means, what to do about it, and how geoproc treats it.

    ``kind`` is ``invalid`` (bad input: quarantined, never retried), ``transient`` (retried with
    backoff), ``error`` (the task failed), ``skipped``, ``warning`` or ``info`` (the task still succeeded).
    """

    meaning: str
    remediation: str
    kind: str = "error"


#: codes without an exception class of their own; :func:`catalogue` adds the classes' codes
CODES: dict[str, CodeInfo] = {}


def _code(code: str, meaning: str, remediation: str, kind: str = "error") -> str:
    CODES[code] = CodeInfo(meaning, remediation, kind)
    return code


_RETRY = "then run `geoproc retry JOB_ID`."

# engine outcomes
WORKER_LOST = _code("WORKER_LOST", "The Dask worker running the task's batch died (out of memory, killed, "
                    "or its pod was evicted).", "Give workers more memory or fewer threads each, read the "
                    "worker logs, " + _RETRY)
BATCH_ERROR = _code("BATCH_ERROR", "The Dask task running the task's batch failed outside the task "
                    "handler (serialization, scheduler or dependency error).",
                    "Read the error message and the Dask worker logs, " + _RETRY)
UPSTREAM_FAILED = _code("UPSTREAM_FAILED", "The task's parent in the previous stage did not complete, so "
                        "this task was skipped.", "Fix the parent task's failure (`geoproc tasks JOB_ID "
                        "--status failed`); this task re-runs with it.", "skipped")
NETWORK = _code("NETWORK", "A network error (refused or reset connection, timeout, dropped response) "
                "reached the task.", "The task was retried with backoff; check the storage endpoint and "
                "the network, " + _RETRY, "transient")
HTTP_STATUS = _code("HTTP_{status}", "The storage service answered a retryable HTTP status: 408 (timeout), "
                    "429 (throttled) or 5xx (server error), e.g. HTTP_503.", "The task was retried with "
                    "backoff; wait for the service or run fewer workers, " + _RETRY, "transient")
UNEXPECTED_ERROR = _code("UNEXPECTED_ERROR", "The task raised an exception geoproc does not know, most "
                         "likely a bug; it was not retried.", "Read its traceback (`geoproc tasks JOB_ID "
                         "--status failed`) and report it if the input looks fine.")

# raster validation findings (see geoproc.raster.validate); the classes above cover CRS_MISMATCH,
# CRS_MISSING and RASTER_EMPTY
CRS_NOT_GEOREFERENCED = _code("CRS_NOT_GEOREFERENCED", "The raster's CRS is a local (engineering) one, so it "
                              "cannot be reprojected.", "Use target_crs=keep for this file, or georeference "
                              "it first.", "invalid")
GEOTRANSFORM_MISSING = _code("GEOTRANSFORM_MISSING", "The raster has no geotransform (a bare pixel grid), or "
                             "is georeferenced by ground control points only.", "Warp it to a regular grid "
                             "(gdalwarp -t_srs ...) or add a geotransform (gdal_translate -a_ullr) first.",
                             "invalid")
TRANSFORM_ROTATED = _code("TRANSFORM_ROTATED", "The geotransform is rotated or south-up: a warning when the "
                          "output is warped (which makes it north-up), an error with target_crs=keep.",
                          "Set a target_crs so the raster is warped to a north-up grid, or warp it first.",
                          "warning")
BOUNDS_INVALID = _code("BOUNDS_INVALID", "Geographic bounds reach beyond +-90 degrees latitude.",
                       "The CRS is probably wrong (a projected raster labelled as geographic); fix it.",
                       "invalid")
BOUNDS_SUSPICIOUS = _code("BOUNDS_SUSPICIOUS", "Geographic bounds reach beyond +-360 degrees longitude.",
                          "Check the raster's CRS and geotransform; its footprint is probably wrong.", "warning")
MIXED_DTYPES = _code("MIXED_DTYPES", "The bands have different data types.",
                     "Split the bands, or cast them to one type first.", "invalid")
DTYPE_UNSUPPORTED = _code("DTYPE_UNSUPPORTED", "Complex data types are not supported.",
                          "Convert to amplitude/phase or real/imaginary bands first.", "invalid")
DTYPE_64BIT = _code("DTYPE_64BIT", "64-bit data, which is rarely needed and doubles the size (an error "
                    "with strict=true).", "Cast to a 32-bit type (gdal_translate -ot Float32) unless the "
                    "precision is needed.", "warning")
NODATA_OUT_OF_RANGE = _code("NODATA_OUT_OF_RANGE", "The nodata value cannot be stored in the raster's data "
                            "type.", "Set a nodata value the data type can hold.", "warning")
RASTER_TOO_LARGE = _code("RASTER_TOO_LARGE", "The header declares more than 2**33 pixels: damaged or "
                         "hostile, or too large for one COG task.", "If the raster really is this large, "
                         "convert it with the large_raster job (tiled, bounded memory).", "invalid")
RASTER_MOSTLY_EMPTY = _code("RASTER_MOSTLY_EMPTY", "90 % or more of the sampled pixels are nodata.",
                            "Check the extent and the nodata value; most of the file holds nothing.", "warning")
RASTER_NODATA_CONFLICT = _code("RASTER_NODATA_CONFLICT", "The nodata value lies inside the range of valid "
                               "data (an error with strict=true).", "Choose a nodata value outside the data "
                               "range.", "warning")
RASTER_EXTREME_VALUES = _code("RASTER_EXTREME_VALUES", "Valid values reach a magnitude of 1e30 or more.",
                              "These are probably an undeclared nodata value; set nodata to it.", "warning")
NAN_WITHOUT_NODATA = _code("NAN_WITHOUT_NODATA", "A float raster holds NaN values but declares no nodata.",
                           "Declare nodata=nan so that NaNs are treated as missing.", "warning")
RASTER_TYPE_OVERRIDDEN = _code("RASTER_TYPE_OVERRIDDEN", "The raster_type parameter overrode the detected "
                               "raster type.", "Nothing, if the type you gave is right; otherwise set "
                               "raster_type=auto.", "info")
CRS_MISMATCH = CrsMismatch.code
CRS_MISSING = CrsMissing.code
RASTER_EMPTY = EmptyRaster.code

# jobs and STAC
COLLECTION_NOT_HOMOGENEOUS = CollectionNotHomogeneous.code
BAD_DATETIME = BadDatetime.code
NO_DATETIME = DatetimeMissing.code
NO_HREF = HrefMissing.code
NO_VALIDATION = _code("NO_VALIDATION", "A conversion task found no validation result from its validate "
                      "task.", "Run the job again with `--force`; report it if it persists.")
# band-math expressions (raised as InvalidExpression before anything runs)
EXPR_SYNTAX = _code("EXPR_SYNTAX", "The expression is not valid syntax (or empty, or has an empty band between "
                    "';').", "Write it as in rio calc / titiler, e.g. (b4 - b3) / (b4 + b3); separate output "
                    "bands with ';'.", "invalid")
EXPR_FORBIDDEN = _code("EXPR_FORBIDDEN", "The expression uses something outside the allow-list: attribute "
                       "access, subscripts, lambdas, comprehensions, calls to other functions, strings.",
                       "Use band or input names, numbers, arithmetic, comparisons and the listed functions "
                       "(where, sqrt, log, abs, clip, nanmean, ...); write anything else as a function.",
                       "invalid")
EXPR_UNKNOWN_NAME = _code("EXPR_UNKNOWN_NAME", "The expression names a band or input that does not exist.",
                          "Use the names the message lists: b1..bN, the band descriptions, or the names of "
                          "`inputs`.", "invalid")

# user functions of the process job (module:callable or file.py:callable)
FUNCTION_IMPORT = _code("FUNCTION_IMPORT", "The process job's function could not be imported: the spec is not "
                        "module:callable or file.py:callable, the module or file is missing, or it has no such "
                        "callable.", "Give function=module:callable with the module importable by the driver and "
                        "every worker (installed, or on PYTHONPATH), or function=/path/to/file.py:callable on a "
                        "path they all see.", "invalid")
FUNCTION_FAILED = _code("FUNCTION_FAILED", "The process job's function raised an exception on a region.",
                        "Fix the function (the message has the exception and the region); run it on "
                        "geoproc.open(...) of the same inputs to reproduce, then run the job again.", "invalid")
FUNCTION_RESULT = _code("FUNCTION_RESULT", "The process job's function returned something other than a "
                        "DataArray or Dataset on the pixels it was given, or bands or a dtype that differ "
                        "from its first result.", "Return the input Dataset's (y, x) pixels, one DataArray "
                        "((y, x) or (band, y, x)) or a Dataset of (y, x) variables, the same bands and a dtype "
                        "that casts to the output's on every region; set dtype= to declare it.", "invalid")

# datacubes (zarr_ingest)
CUBE_UNREADABLE = _code("CUBE_UNREADABLE", "The source cannot be opened as NetCDF (classic or netCDF-4 / HDF5) or "
                        "Zarr: missing, another format, or damaged.", "Check the path and open it with "
                        "`ncdump -h FILE` or xarray.open_dataset(FILE).", "invalid")
CUBE_NO_SPACE = _code("CUBE_NO_SPACE", "The source has no spatial dimensions geoproc recognises (lat/lon, y/x, or "
                      "CF axis / units attributes).", "Name them in the file (CF axis=\"Y\" / \"X\" or "
                      "units degrees_north / degrees_east), or convert a table-like file another way.", "invalid")
CUBE_VARIABLES = _code("CUBE_VARIABLES", "The variables asked for do not exist, or none lies on the spatial "
                       "dimensions.", "Choose among the variables the message lists (variables=[...]).", "invalid")
CUBE_EMPTY = _code("CUBE_EMPTY", "A dimension of the source has length 0 (an empty time axis).",
                   "Give a file that holds data along every dimension.", "invalid")
CUBE_GRIDS_DIFFER = _code("CUBE_GRIDS_DIFFER", "Files stacked along time have different spatial grids "
                          "(coordinates or sizes).", "Ingest them separately, or regrid them to one grid first; "
                          "the message names the first file that differs.", "invalid")

# writes of lazy arrays (geoproc.write)
NOT_A_DATAARRAY = _code("NOT_A_DATAARRAY", "geoproc.write was given something other than one xarray.DataArray.",
                        "Pass a DataArray: one variable of a Dataset (ds['name']), or the variables stacked "
                        "into a band dimension (ds.to_dataarray('band')).", "invalid")
BAD_DIMS = _code("BAD_DIMS", "The array to write does not have dims (y, x) or (band, y, x).",
                 "Select or reduce the other dimensions first (e.g. .isel(time=0) or .mean('time')).", "invalid")
NOT_LAZY = _code("NOT_LAZY", "The array to write is held in memory (NumPy, not Dask) and is larger than "
                 "memory_limit: every region task would carry all of it.",
                 "Chunk it (obj.chunk({'y': 1024, 'x': 1024})), or better build it from geoproc.open(...), "
                 "which is lazy.", "invalid")
ZARR_INCOMPATIBLE = _code("ZARR_INCOMPATIBLE", "The Zarr store already holds an array of that name written "
                          "by another job (another computation, grid or chunking).",
                          "Write to another store, or set overwrite=true to replace it.", "invalid")
NOTHING_TO_OPEN = _code("NOTHING_TO_OPEN", "geoproc.open was given no rasters: an empty list, a directory "
                        "or prefix without rasters, or a STAC search that matched no item.",
                        "Check the path, the suffixes, or the search's bbox and datetime.", "invalid")
BANDS_DIFFER = _code("BANDS_DIFFER", "The rasters opened together have different bands.",
                     "Choose the bands they share with bands=[...].", "invalid")
GRIDS_DIFFER = _code("GRIDS_DIFFER", "The inputs computed together are on different grids (CRS, resolution, "
                    "extent or shape) and no output grid was given.", "Give the output grid (crs=, resolution=, "
                    "bounds=): every input is then reprojected onto it; or resample the inputs onto one grid first.",
                    "invalid")
STACK_MISMATCH = _code("STACK_MISMATCH", "A file of a stack is on another grid (shape, transform or CRS) than the "
                      "first file, has another data type, or has more than one band.",
                      "Give align=true to resample it onto the first file's grid; convert its data type or split "
                      "its bands first (the message names the file), or leave it out of inputs.", "invalid")
SUBDATASETS = _code("SUBDATASETS", "The file holds several rasters (subdatasets: NetCDF or HDF variables, NTv2 "
                   "grids), and geoproc does not choose one for you.", "Open one of them by the GDAL name the "
                   "message lists, e.g. NETCDF:file.nc:variable.", "invalid")
ZONES_UNREADABLE = _code("ZONES_UNREADABLE", "The zone layer cannot be read: missing, not a vector format "
                        "pyogrio reads (GeoPackage, Shapefile, GeoJSON, GeoParquet), or damaged.",
                        "Check the path and open it with `ogrinfo` or geopandas.read_file; for a GeoPackage with "
                        "several layers, name one with layer=.", "invalid")
ZONES_NO_CRS = _code("ZONES_NO_CRS", "The zone layer does not say its CRS (a Shapefile without .prj, GeoJSON "
                     "with a non-standard CRS).", "Give zones_crs= (e.g. EPSG:4326) to say which CRS its "
                     "coordinates are in; geoproc then reprojects it to the raster's.", "invalid")
ZONES_INVALID = _code("ZONES_INVALID", "The zones cannot be used as given: invalid geometries with invalid=report, "
                      "a zone_id column that is missing or not unique.", "Fix the geometries or set "
                      "invalid=repair; choose a unique zone_id column, or leave zone_id out to number the zones.",
                      "invalid")
H3_RESOLUTION = _code("H3_RESOLUTION", "The H3 zones cannot be made: a resolution outside 0..15, bounds that are "
                      "not a lon/lat box, or more cells than geoproc makes.", "Give h3_resolution from 0 (cells of "
                      "4.4 million km²) to 15 (under 1 m²), coarse enough for the bounds, and bounds as west, south, "
                      "east, north in degrees.", "invalid")
ZONES_OUTSIDE = _code("ZONES_OUTSIDE", "No zone of the layer overlaps the raster.", "Check that the zones and the "
                      "raster cover the same place, and the layer's CRS (give zones_crs= if its file has none or "
                      "a wrong one).", "invalid")
NO_OVERLAP = _code("NO_OVERLAP", "The rasters do not overlap the output grid (bounds), so every pixel would "
                   "be nodata.", "Check bounds= and its CRS (bounds are in the output CRS), or the inputs.",
                   "invalid")
WRITE_NEEDS_ARRAY = _code("WRITE_NEEDS_ARRAY", "A write job's task ran without its array: write jobs run from "
                          "the Python session that holds the computation.",
                          "Call geoproc.write(array, output) again with the same computation; it resumes.",
                          "invalid")
NO_PREDECESSOR_RESULT = _code("NO_PREDECESSOR_RESULT", "A task that consumes its parent task's result "
                              "received none (the parent's stored result is missing or incomplete).",
                              "Run the job again with `--force`; report it if it persists.")

# warnings (the task succeeded; reports list them)
COG_VALIDATE = _code("COG_VALIDATE", "rio-cogeo's COG validator warned about a written COG; it was "
                     "published anyway.", "Usually nothing to do; read the message, and report it if the "
                     "COG misbehaves in a client.", "warning")
TIER_FALLBACK = _code("TIER_FALLBACK", "The requested COG tier cannot hold this raster, so the analysis tier "
                      "(lossless DEFLATE) was used, as tier_fallback=true allows.", "Ask for tier=analysis "
                      "or tier=archive for such rasters, or accept the fallback.", "warning")


def _class_kind(cls: type[TaskError]) -> str:
    if issubclass(cls, InvalidInput):
        return "invalid"
    return "transient" if issubclass(cls, TransientError) else "error"


def catalogue() -> dict[str, CodeInfo]:
    """Every code a user can meet, sorted: the error classes' codes and :data:`CODES`."""
    found: dict[str, CodeInfo] = {}
    todo: list[type[TaskError]] = [TaskError]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        if cls.__module__ == __name__:  # classes elsewhere (tests) are not part of geoproc's catalogue
            doc = (cls.__doc__ or "").strip().splitlines()[0].replace("``", "")
            found[cls.code] = CodeInfo(doc, cls.remediation, _class_kind(cls))
    return dict(sorted({**found, **CODES}.items()))


def code_info(code: str) -> CodeInfo | None:
    """The catalogue entry of ``code`` (``HTTP_503`` finds ``HTTP_{status}``); None when unknown."""
    known = catalogue()
    code = code.strip()
    if code not in known:
        code = code.upper()
        if code.startswith("HTTP_") and code[5:].isdigit():
            code = HTTP_STATUS
    return known.get(code)
