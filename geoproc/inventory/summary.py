"""Inventory summaries: partial reductions computed per shard and merged associatively.

A :class:`Summary` counts files and bytes in total, per extension, per top-level prefix and per size
bucket; it keeps the largest, smallest, oldest and newest blob, and (in header mode) the mix of
drivers, CRSs, dtypes, COG / not-COG and the unreadable files. ``merge`` is associative and
commutative (ties are broken by name), so shard results may be merged in any order and the driver
holds one summary, never a listing. Keyed tables keep at most ``MAX_KEYS`` keys: beyond that the
smallest (by bytes) fold into ``"(other)"``.
"""

from __future__ import annotations

import datetime as dt
import posixpath
from dataclasses import dataclass, field
from typing import Any

from ..storage.walk import Blob

MB = 1024**2
GB = 1024**3
BUCKETS: tuple[tuple[str, int | None], ...] = (
    ("0-10 MB", 10 * MB), ("10-100 MB", 100 * MB), ("100 MB-1 GB", GB), ("1-10 GB", 10 * GB), ("10 GB+", None),
)
COMPOUND_EXTENSIONS = (".aux.xml", ".tar.gz")
MAX_KEYS = 1000
MAX_SAMPLE = 10
ROOT_GROUP = "(root)"
OTHER = "(other)"


def bucket_of(size: int) -> str:
    """The size bucket label of ``size`` bytes (upper bounds exclusive: 10 MiB is in ``10-100 MB``)."""
    for label, upper in BUCKETS:
        if upper is None or size < upper:
            return label
    raise AssertionError("unreachable")


def extension_of(name: str) -> str:
    """Lower-case extension of a blob name (``.aux.xml`` and ``.tar.gz`` kept whole), ``(none)`` if none."""
    base = posixpath.basename(name).lower()
    for ext in COMPOUND_EXTENSIONS:
        if base.endswith(ext) and len(base) > len(ext):
            return ext
    ext = posixpath.splitext(base)[1]
    return ext if ext else "(none)"


def group_of(name: str, level_dir: str) -> str:
    """The top-level prefix of ``name`` below ``level_dir`` (``2025/01/``), or ``(root)``."""
    rest = name[len(level_dir):]
    cut = rest.find("/")
    return ROOT_GROUP if cut < 0 else level_dir + rest[: cut + 1]


@dataclass
class Extreme:
    """A blob that is the largest, smallest, oldest or newest so far."""

    name: str
    size: int
    last_modified: dt.datetime | None

    def to_json(self) -> dict[str, Any]:
        lm = self.last_modified.isoformat() if self.last_modified else None
        return {"name": self.name, "size": self.size, "last_modified": lm}

    @classmethod
    def from_json(cls, d: dict[str, Any] | None) -> Extreme | None:
        if d is None:
            return None
        lm = dt.datetime.fromisoformat(d["last_modified"]) if d.get("last_modified") else None
        return cls(d["name"], int(d["size"]), lm)


def _better(a: Extreme | None, b: Extreme | None, key: str, largest: bool) -> Extreme | None:
    """The winner of two extremes by ``key``; equal keys go to the smaller name (deterministic)."""
    if a is None or getattr(a, key) is None:
        return b if b is not None and getattr(b, key) is not None else a
    if b is None or getattr(b, key) is None:
        return a
    ka, kb = getattr(a, key), getattr(b, key)
    if ka != kb:
        return a if (ka > kb) == largest else b
    return a if a.name <= b.name else b


def _add_count(table: dict[str, list[int]], key: str, size: int) -> None:
    entry = table.get(key)
    if entry is None:
        table[key] = [1, size]
    else:
        entry[0] += 1
        entry[1] += size


def _cap(table: dict[str, list[int]]) -> dict[str, list[int]]:
    if len(table) <= MAX_KEYS:
        return table
    other = list(table.get(OTHER, [0, 0]))
    ranked = sorted(((k, v) for k, v in table.items() if k != OTHER), key=lambda kv: (-kv[1][1], -kv[1][0], kv[0]))
    kept = dict(ranked[: MAX_KEYS - 1])
    for _, (n, b) in ranked[MAX_KEYS - 1:]:
        other = [other[0] + n, other[1] + b]
    kept[OTHER] = other
    return kept


def _merge_counts(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    out = {k: list(v) if isinstance(v, list) else v for k, v in a.items()}
    for k, v in b.items():
        if isinstance(v, list):
            cur = out.get(k, [0, 0])
            out[k] = [cur[0] + v[0], cur[1] + v[1]]
        else:
            out[k] = out.get(k, 0) + v
    return out


@dataclass
class Summary:
    """A mergeable summary of a set of blobs (see the module docstring)."""

    files: int = 0
    bytes: int = 0
    scanned: int = 0  # blobs listed, before filters
    hit_limit: bool = False
    by_extension: dict[str, list[int]] = field(default_factory=dict)
    by_prefix: dict[str, list[int]] = field(default_factory=dict)
    buckets: dict[str, list[int]] = field(default_factory=lambda: {label: [0, 0] for label, _ in BUCKETS})
    largest: Extreme | None = None
    smallest: Extreme | None = None
    oldest: Extreme | None = None
    newest: Extreme | None = None
    headers: dict[str, Any] | None = None  # present in header mode

    def add(self, blob: Blob, group: str, header: dict[str, Any] | None = None) -> None:
        """Count one blob (already filtered); ``header`` is its header record in header mode."""
        size = blob.size
        self.files += 1
        self.bytes += size
        _add_count(self.by_extension, extension_of(blob.name), size)
        _add_count(self.by_prefix, group, size)
        _add_count(self.buckets, bucket_of(size), size)
        # Hot path: build an Extreme only when this blob may replace one (same rule as _better).
        name, lm = blob.name, blob.last_modified
        lg, sm = self.largest, self.smallest
        if lg is None or size > lg.size or (size == lg.size and name < lg.name):
            self.largest = Extreme(name, size, lm)
        if sm is None or size < sm.size or (size == sm.size and name < sm.name):
            self.smallest = Extreme(name, size, lm)
        if lm is not None:
            od, nw = self.oldest, self.newest
            if od is None or od.last_modified is None or lm < od.last_modified or (
                    lm == od.last_modified and name < od.name):
                self.oldest = Extreme(name, size, lm)
            if nw is None or nw.last_modified is None or lm > nw.last_modified or (
                    lm == nw.last_modified and name < nw.name):
                self.newest = Extreme(name, size, lm)
        if header is not None:
            self._add_header(blob.name, header)
        if len(self.by_extension) > 2 * MAX_KEYS:
            self.by_extension = _cap(self.by_extension)
        if len(self.by_prefix) > 2 * MAX_KEYS:
            self.by_prefix = _cap(self.by_prefix)

    def _add_header(self, name: str, h: dict[str, Any]) -> None:
        hs = self.headers if self.headers is not None else empty_headers()
        self.headers = hs
        if h.get("header_error"):
            hs["unreadable"] += 1
            hs["unreadable_sample"] = sorted([*hs["unreadable_sample"], name])[:MAX_SAMPLE]
            return
        hs["read"] += 1
        hs["cog" if h.get("is_cog") else "not_cog"] += 1
        for key, col in (("driver", "driver"), ("crs", "crs"), ("dtype", "dtype")):
            val = h.get(col) or "(none)"
            hs[key][val] = hs[key].get(val, 0) + 1

    def merge(self, other: Summary) -> Summary:
        """A new summary of both inputs."""
        headers = self.headers
        if other.headers is not None:
            headers = other.headers if headers is None else merge_headers(headers, other.headers)
        return Summary(
            files=self.files + other.files, bytes=self.bytes + other.bytes, scanned=self.scanned + other.scanned,
            hit_limit=self.hit_limit or other.hit_limit,
            by_extension=_cap(_merge_counts(self.by_extension, other.by_extension)),
            by_prefix=_cap(_merge_counts(self.by_prefix, other.by_prefix)),
            buckets=_merge_counts(self.buckets, other.buckets),
            largest=_better(self.largest, other.largest, "size", True),
            smallest=_better(self.smallest, other.smallest, "size", False),
            oldest=_better(self.oldest, other.oldest, "last_modified", False),
            newest=_better(self.newest, other.newest, "last_modified", True),
            headers=headers,
        )

    def to_json(self) -> dict[str, Any]:
        """JSON-able form: tables as ``{key: {"files": n, "bytes": b}}``, sorted by bytes."""

        def table(t: dict[str, list[int]], order: str = "bytes") -> dict[str, dict[str, int]]:
            items = sorted(t.items(), key=lambda kv: (-kv[1][1], kv[0])) if order == "bytes" else t.items()
            return {k: {"files": v[0], "bytes": v[1]} for k, v in items}

        out: dict[str, Any] = {
            "files": self.files, "bytes": self.bytes, "scanned": self.scanned, "hit_limit": self.hit_limit,
            "by_extension": table(_cap(self.by_extension)), "by_prefix": table(_cap(self.by_prefix)),
            "size_buckets": table(self.buckets, order="fixed"),
            "largest": self.largest.to_json() if self.largest else None,
            "smallest": self.smallest.to_json() if self.smallest else None,
            "oldest": self.oldest.to_json() if self.oldest else None,
            "newest": self.newest.to_json() if self.newest else None,
        }
        if self.headers is not None:
            out["headers"] = self.headers
        return out

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Summary:
        def table(t: dict[str, dict[str, int]]) -> dict[str, list[int]]:
            return {k: [v["files"], v["bytes"]] for k, v in t.items()}

        s = cls(files=d["files"], bytes=d["bytes"], scanned=d.get("scanned", 0), hit_limit=d.get("hit_limit", False),
                by_extension=table(d["by_extension"]), by_prefix=table(d["by_prefix"]))
        s.buckets = {**s.buckets, **table(d["size_buckets"])}
        for name in ("largest", "smallest", "oldest", "newest"):
            setattr(s, name, Extreme.from_json(d.get(name)))
        s.headers = d.get("headers")
        return s


def empty_headers() -> dict[str, Any]:
    """The header-mode part of an empty summary."""
    return {"read": 0, "unreadable": 0, "cog": 0, "not_cog": 0, "driver": {}, "crs": {}, "dtype": {},
            "unreadable_sample": []}


def merge_headers(a: dict[str, Any], b: dict[str, Any]) -> dict[str, Any]:
    """Merge the header-mode parts of two summaries."""
    out = {k: a[k] + b[k] for k in ("read", "unreadable", "cog", "not_cog")}
    for k in ("driver", "crs", "dtype"):
        out[k] = dict(sorted(_merge_counts(a[k], b[k]).items()))
    out["unreadable_sample"] = sorted(set(a["unreadable_sample"]) | set(b["unreadable_sample"]))[:MAX_SAMPLE]
    return out


def merge_all(parts: Any, *, headers: bool = False) -> Summary:
    """Merge a stream of summaries (JSON or :class:`Summary`) holding only one at a time."""
    total = Summary(headers=empty_headers() if headers else None)
    for p in parts:
        total = total.merge(p if isinstance(p, Summary) else Summary.from_json(p))
    return total
