"""Byte sizes and UTC timestamps, parsed and shown the same way everywhere.

* Sizes are bytes; parameters accept ``2GB`` / ``512MiB`` / ``1000`` (pydantic's ``ByteSize``: decimal
  units are powers of 1000, binary ``Ki``/``Mi``/``Gi`` units powers of 1024) and are shown in binary
  units (``1.5 GiB``), the unit labels matching what they mean.
* Times are shown as ISO 8601 UTC with a ``Z`` (``2025-01-31T12:00:00Z``); naive datetimes and epoch
  seconds are taken as UTC.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import ByteSize

__all__ = ["ByteSize", "as_utc", "human_bytes", "utc_iso"]

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")


def human_bytes(n: float | None) -> str:
    """``1536`` → ``'1.5 KiB'``; ``None`` → ``'-'``."""
    if n is None:
        return "-"
    v = float(n)
    for unit in _UNITS:
        if abs(v) < 1024 or unit == _UNITS[-1]:
            return f"{v:.0f} {unit}" if unit == "B" else f"{v:.1f} {unit}"
        v /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def as_utc(value: dt.datetime | str | float | None) -> dt.datetime | None:
    """A timezone-aware UTC datetime from a datetime, an ISO string or epoch seconds (None stays None)."""
    if value is None:
        return None
    if isinstance(value, int | float):
        return dt.datetime.fromtimestamp(value, dt.UTC)
    if isinstance(value, str):
        value = dt.datetime.fromisoformat(value.replace("Z", "+00:00"))
    return (value if value.tzinfo else value.replace(tzinfo=dt.UTC)).astimezone(dt.UTC)


def utc_iso(value: Any) -> str | None:
    """ISO 8601 UTC with ``Z`` for a datetime, ISO string or epoch seconds; other values as ``str``."""
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime | int | float):
        t = as_utc(value)
        return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None
    if isinstance(value, str):
        try:
            t = as_utc(value)
        except ValueError:
            return value
        return t.strftime("%Y-%m-%dT%H:%M:%SZ") if t else None
    return str(value)
