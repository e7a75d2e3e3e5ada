"""Error classification: which failures are retried, which quarantine the task at once.

Transient (network, throttling, timeouts, a lost connection) → retried with exponential backoff and
jitter. Invalid input (corrupt file, missing CRS, bad value) → failed at once, never retried. Anything
else is an unexpected error: failed at once with its traceback, because retrying a bug wastes time.
"""

from __future__ import annotations

from ..errors import InvalidInput, TaskError, TransientError
from ..storage.faults import http_status, transient_text

TRANSIENT = "transient"
INVALID = "invalid"
UNEXPECTED = "unexpected"


def classify(exc: BaseException) -> tuple[str, str, str]:
    """(kind, error code, remediation) for an exception raised by a handler."""
    if isinstance(exc, TransientError):
        return TRANSIENT, exc.code, exc.remediation
    if isinstance(exc, InvalidInput):
        return INVALID, exc.code, exc.remediation
    if isinstance(exc, TaskError):
        return UNEXPECTED, exc.code, exc.remediation
    status = http_status(exc)
    if status is not None and (status == 429 or status == 408 or 500 <= status < 600):
        return TRANSIENT, f"HTTP_{status}", TransientError.remediation
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TRANSIENT, "NETWORK", TransientError.remediation
    name = type(exc).__name__
    text = str(exc)
    if name in {"ServiceRequestError", "ServiceResponseError", "ClientConnectorError",
                "ServerDisconnectedError", "ClientOSError", "IncompleteReadError"}:
        return TRANSIENT, "NETWORK", TransientError.remediation
    if name in {"RasterioIOError", "CPLE_HttpResponseError", "CPLE_AWSError"} and transient_text(text):
        return TRANSIENT, "NETWORK", TransientError.remediation
    return (UNEXPECTED, "UNEXPECTED_ERROR",
            "Unexpected error in the task; read its traceback (`geoproc tasks JOB_ID --status failed`) "
            "and report it if the input looks fine.")
