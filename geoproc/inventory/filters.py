"""Which listed blobs an inventory keeps: suffixes, a size range and a modification-time range."""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

from ..storage.walk import Blob
from ..units import as_utc

log = logging.getLogger(__name__)


def normalize_suffix(suffix: str) -> str:
    """Lower-case; a bare extension gets its dot (``tif`` -> ``.tif``; ``_cog.tif`` stays)."""
    s = suffix.strip().lower()
    return "." + s if s and s[0].isalnum() else s


@dataclass(frozen=True)
class BlobFilter:
    """Inclusive size bounds, ``modified_after <= last_modified < modified_before``, any of the suffixes."""

    suffixes: tuple[str, ...] = ()
    min_size: int | None = None
    max_size: int | None = None
    modified_after: dt.datetime | None = None
    modified_before: dt.datetime | None = None

    @classmethod
    def from_params(cls, p: dict[str, Any]) -> BlobFilter:
        """Build from job/task params (JSON values)."""
        return cls(
            suffixes=tuple(normalize_suffix(s) for s in p.get("suffixes") or ()),
            min_size=p.get("min_size"), max_size=p.get("max_size"),
            modified_after=as_utc(p.get("modified_after")), modified_before=as_utc(p.get("modified_before")),
        )

    def __call__(self, blob: Blob) -> bool:
        if self.suffixes and not blob.name.lower().endswith(self.suffixes):
            return False
        if self.min_size is not None and blob.size < self.min_size:
            return False
        if self.max_size is not None and blob.size > self.max_size:
            return False
        if self.modified_after is not None or self.modified_before is not None:
            lm = blob.last_modified
            if lm is None:
                return False
            if self.modified_after is not None and lm < self.modified_after:
                return False
            if self.modified_before is not None and lm >= self.modified_before:
                return False
        return True
