"""Storage failures mapped onto geoproc's error tree, so the engine retries only what may heal.

=========================================================  ==========================================
raised by fsspec / adlfs / azure-core / GDAL               becomes
=========================================================  ==========================================
HTTP 408, 429, 5xx; timeouts; connection resets            :class:`TransientError` (retried)
refused connection, unknown host                           :class:`StorageUnreachable` (retried, clear code)
HTTP 401/403, authentication failures                      :class:`StorageAccessDenied` (not retried)
missing file, container or prefix (404)                    :class:`SourceNotFound` (not retried)
=========================================================  ==========================================

Messages are built from the exception type, a status code and the *redacted* URL only: SDK messages
can quote request headers or SAS query strings, which must never reach the ledger or logs.

:func:`classify` sorts any exception a task raised into transient (retried with backoff), invalid
input (quarantined at once) or unexpected (failed at once with its traceback, because retrying a bug
wastes time). It lives here, at the storage layer, because most of what it recognises are storage and
network failures, and domain code (header readers) asks it the same question the engine does.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterator
from contextlib import contextmanager

from ..errors import (
    HTTP_STATUS,
    NETWORK,
    UNEXPECTED_ERROR,
    GeoprocError,
    InvalidInput,
    SourceNotFound,
    StorageAccessDenied,
    StorageUnreachable,
    TaskError,
    TransientError,
)
from .urls import redact

# kinds of failure (the ``error_kind`` of a failed task); the codes given to exceptions that carry none
# of their own (NETWORK, HTTP_STATUS, UNEXPECTED_ERROR) are in geoproc.errors' code catalogue
TRANSIENT = "transient"  # may heal: retried with exponential backoff and jitter
INVALID = "invalid"  # bad input: the task is quarantined at once, never retried
UNEXPECTED = "unexpected"  # a bug or an unknown failure: failed at once, with its traceback

_UNEXPECTED_REMEDIATION = ("Unexpected error in the task; read its traceback (`geoproc tasks JOB_ID --status "
                           "failed`) and report it if the input looks fine.")
_NETWORK_NAMES = frozenset({"ServiceRequestError", "ServiceResponseError", "ClientConnectorError",
                            "ServerDisconnectedError", "ClientOSError", "IncompleteReadError"})
_GDAL_NETWORK_NAMES = frozenset({"RasterioIOError", "CPLE_HttpResponseError", "CPLE_AWSError"})

_UNREACHABLE = re.compile(r"could not resolve host|name or service not known|nodename nor servname|"
                          r"cannot connect to host|connection refused|failed to resolve|"
                          r"no address associated|temporary failure in name resolution|couldn't connect|"
                          r"could not connect|failed to connect", re.I)
_TRANSIENT = re.compile(r"timed? ?out|connection (?:reset|aborted)|server busy|throttl|temporarily|"
                        r"operation too slow|transfer closed|recv failure|send failure|ssl|curl error", re.I)
_HTTP_CODE = re.compile(r"HTTP (?:response )?(?:code|status)[: ]+(\d{3})|status[_ ]code[:= ]+(\d{3})", re.I)
_NOT_FOUND = re.compile(r"does not exist|not (?:be )?found|no such file|ContainerNotFound|BlobNotFound|"
                        r"ResourceNotFound|404", re.I)
_DENIED = re.compile(r"AuthenticationFailed|AuthorizationFailure|not authorized|permission denied|"
                     r"access denied|\b40[13]\b", re.I)


def http_status(exc: BaseException) -> int | None:
    """The HTTP status an exception carries (attribute, response, or message), if any."""
    for attr in ("status_code", "status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int):
            return v
    resp = getattr(exc, "response", None)
    v = getattr(resp, "status_code", None) or getattr(resp, "status", None)
    if isinstance(v, int):
        return v
    m = _HTTP_CODE.search(str(exc))
    return int(m.group(1) or m.group(2)) if m else None


def transient_text(text: str) -> bool:
    """Whether an error message reads like a failure that may heal (network, throttling, timeouts,
    an endpoint that cannot be reached): the one list of such texts, shared with the engine's
    classification of exceptions that never passed through :func:`translate`."""
    return bool(_TRANSIENT.search(text) or _UNREACHABLE.search(text))


def translate(exc: BaseException, url: str, action: str = "read") -> GeoprocError | None:
    """The geoproc error for a storage exception raised while doing ``action`` on ``url``.

    Returns None when the exception is not a storage failure geoproc knows (the caller re-raises it).
    """
    if isinstance(exc, GeoprocError):
        return exc
    where = redact(url)
    name = type(exc).__name__
    text = str(exc)
    status = http_status(exc)
    if name == "ClientAuthenticationError" or status in (401, 403) or (
            isinstance(exc, PermissionError) and "://" in url):
        return StorageAccessDenied(f"Access denied to {where} while trying to {action} it"
                                   f"{f' (HTTP {status})' if status else ''}.")
    if isinstance(exc, FileNotFoundError) or name == "ResourceNotFoundError" or status == 404 or (
            name in ("RasterioIOError", "CPLE_OpenFailedError") and _NOT_FOUND.search(text)
            and not _UNREACHABLE.search(text)):
        return SourceNotFound(f"{where} does not exist (while trying to {action} it).")
    if status is not None and (status in (408, 429) or 500 <= status < 600):
        return TransientError(f"Storage answered HTTP {status} for {where} ({action}); will retry.",
                              code=HTTP_STATUS.format(status=status))
    if name in ("ServiceRequestError", "ClientConnectorError", "ClientConnectorDNSError") or \
            _UNREACHABLE.search(text) or (isinstance(exc, ConnectionRefusedError)):
        return StorageUnreachable(f"Storage endpoint for {where} could not be reached ({name}) while trying "
                                  f"to {action} it.")
    if name in ("ServiceResponseError", "ServerDisconnectedError", "ClientOSError", "IncompleteReadError",
                "ClientPayloadError") or isinstance(exc, (TimeoutError, ConnectionError)) or (
            isinstance(exc, OSError) and exc.errno in (errno.ETIMEDOUT, errno.ECONNRESET, errno.EPIPE)) or (
            name in ("RasterioIOError", "CPLE_HttpResponseError", "CPLE_AppDefinedError") and _TRANSIENT.search(text)):
        return TransientError(f"Network error on {where} ({name}) while trying to {action} it; will retry.",
                              code=NETWORK)
    if name == "HttpResponseError" and _DENIED.search(text):
        return StorageAccessDenied(f"Access denied to {where} while trying to {action} it.")
    return None


def classify(exc: BaseException) -> tuple[str, str, str]:
    """(kind, error code, remediation) for an exception raised by a task handler."""
    if isinstance(exc, TransientError):
        return TRANSIENT, exc.code, exc.remediation
    if isinstance(exc, InvalidInput):
        return INVALID, exc.code, exc.remediation
    if isinstance(exc, TaskError):
        return UNEXPECTED, exc.code, exc.remediation
    status = http_status(exc)
    if status is not None and (status == 429 or status == 408 or 500 <= status < 600):
        return TRANSIENT, HTTP_STATUS.format(status=status), TransientError.remediation
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TRANSIENT, NETWORK, TransientError.remediation
    name = type(exc).__name__
    if name in _NETWORK_NAMES or (name in _GDAL_NETWORK_NAMES and transient_text(str(exc))):
        return TRANSIENT, NETWORK, TransientError.remediation
    return UNEXPECTED, UNEXPECTED_ERROR, _UNEXPECTED_REMEDIATION


@contextmanager
def storage_errors(url: str, action: str = "read") -> Iterator[None]:
    """Re-raise storage exceptions inside the block as geoproc errors (see the module table)."""
    try:
        yield
    except GeoprocError:
        raise
    except Exception as exc:
        mapped = translate(exc, url, action)
        if mapped is None:
            raise
        raise mapped from None


_gdal = None


def _gdal_library():
    """The GDAL shared library this process already loaded (through rasterio), or None."""
    global _gdal
    if _gdal is None:
        import ctypes

        import rasterio  # noqa: F401 - loads GDAL

        path = None
        try:
            with open("/proc/self/maps") as maps:
                path = next((line.split()[-1] for line in maps if "libgdal" in line.rsplit("/", 1)[-1]), None)
        except OSError:
            pass
        if path is None:
            import ctypes.util

            path = ctypes.util.find_library("gdal")
        try:
            _gdal = ctypes.CDLL(path) if path else False
        except OSError:
            _gdal = False
    return _gdal or None


def forget_remote_state() -> None:
    """Drop what GDAL cached about remote files in this process (existence, sizes, blocks).

    GDAL's network file systems remember a file that could not be reached as missing; after an
    outage, a retry would then fail with "does not exist" although the file is there. Called before
    a task is retried after a transient failure.
    """
    lib = _gdal_library()
    if lib is not None and hasattr(lib, "VSICurlClearCache"):
        lib.VSICurlClearCache()
