"""Error classification: which failures are retried, which quarantine the task at once.

Transient (network, throttling, timeouts, a lost connection) → retried with exponential backoff and
jitter. Invalid input (corrupt file, missing CRS, bad value) → failed at once, never retried. Anything
else is an unexpected error: failed at once with its traceback, because retrying a bug wastes time.
"""

from __future__ import annotations

import re

from ..errors import InvalidInput, TaskError, TransientError

TRANSIENT = "transient"
INVALID = "invalid"
UNEXPECTED = "unexpected"

_HTTP_STATUS = re.compile(r"HTTP (?:response )?(?:code|status)[: ]+(\d{3})", re.I)
_TRANSIENT_TEXT = re.compile(r"curl error|timed? ?out|connection (?:reset|refused|aborted)|"
                             r"temporarily unavailable|server busy|throttl", re.I)


def _status_code(exc: BaseException) -> int | None:
    for attr in ("status_code", "status"):
        v = getattr(exc, attr, None)
        if isinstance(v, int):
            return v
    resp = getattr(exc, "response", None)
    v = getattr(resp, "status_code", None) or getattr(resp, "status", None)
    return v if isinstance(v, int) else None


def classify(exc: BaseException) -> tuple[str, str, str]:
    """(kind, error code, remediation) for an exception raised by a handler."""
    if isinstance(exc, TransientError):
        return TRANSIENT, exc.code, exc.remediation
    if isinstance(exc, InvalidInput):
        return INVALID, exc.code, exc.remediation
    if isinstance(exc, TaskError):
        return UNEXPECTED, exc.code, exc.remediation
    status = _status_code(exc)
    if status is not None and (status == 429 or status == 408 or 500 <= status < 600):
        return TRANSIENT, f"HTTP_{status}", TransientError.remediation
    if isinstance(exc, (ConnectionError, TimeoutError)):
        return TRANSIENT, "NETWORK", TransientError.remediation
    name = type(exc).__name__
    text = str(exc)
    if name in {"ServiceRequestError", "ServiceResponseError", "ClientConnectorError",
                "ServerDisconnectedError", "ClientOSError", "IncompleteReadError"}:
        return TRANSIENT, "NETWORK", TransientError.remediation
    m = _HTTP_STATUS.search(text)
    if m and (m.group(1) == "429" or m.group(1).startswith("5")):
        return TRANSIENT, f"HTTP_{m.group(1)}", TransientError.remediation
    if name in {"RasterioIOError", "CPLE_HttpResponseError", "CPLE_AWSError"} and _TRANSIENT_TEXT.search(text):
        return TRANSIENT, "NETWORK", TransientError.remediation
    return (UNEXPECTED, "UNEXPECTED_ERROR",
            "Unexpected error in the task; read its traceback (`geoproc tasks JOB_ID --status failed`) "
            "and report it if the input looks fine.")
