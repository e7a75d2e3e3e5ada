"""Inventory files: one Parquet part per shard, merged text (CSV or JSON lines) and ``summary.json``.

Layout under the output URL::

    inventory.parquet/part-00000.parquet ...   a Parquet dataset (pandas.read_parquet(URL/inventory.parquet))
    inventory.csv  (or inventory.jsonl)        every record, one file
    summary.json                               the merged summary

Workers write each part to a local temp file and then upload it with :func:`geoproc.storage.publish`
(local outputs: an atomic rename; Azure: one blob commit, creating the container on first use), so
no reader sees half a file. Text parts go to ``_parts/`` first; the publish step concatenates them
in shard order and removes them (:func:`merge_parts`). ``memory://`` outputs live in the process that wrote them: on a
process cluster use a local or ``az://`` output.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ..errors import InvalidInput
from ..storage import join, open_fs
from ..storage import publish as put  # one atomic upload per finished file

log = logging.getLogger(__name__)

PARQUET_DIR = "inventory.parquet"
PARTS_DIR = "_parts"
FORMATS = ("csv", "jsonl")

BASE_FIELDS = [
    pa.field("url", pa.string()), pa.field("name", pa.string()), pa.field("extension", pa.string()),
    pa.field("size", pa.int64()), pa.field("etag", pa.string()),
    pa.field("last_modified", pa.timestamp("ms", tz="UTC")), pa.field("content_type", pa.string()),
]
HEADER_FIELDS = [
    pa.field("driver", pa.string()), pa.field("crs", pa.string()), pa.field("width", pa.int64()),
    pa.field("height", pa.int64()), pa.field("bands", pa.int64()), pa.field("dtype", pa.string()),
    pa.field("nodata", pa.float64()), pa.field("overviews", pa.int64()), pa.field("is_cog", pa.bool_()),
    pa.field("header_error", pa.string()),
]


def schema(headers: bool) -> pa.Schema:
    """The inventory record schema (header columns only in header mode)."""
    return pa.schema(BASE_FIELDS + (HEADER_FIELDS if headers else []))


class PartWriter:
    """Streams the records of one shard into a Parquet part and a text part, uploaded on close."""

    def __init__(self, output: str, part: str, fmt: str, headers: bool, storage_options: dict[str, dict[str, Any]]):
        self.output, self.part, self.fmt, self.storage_options = output, part, fmt, storage_options
        self.schema = schema(headers)
        self.rows = 0
        self._tmp = tempfile.mkdtemp(prefix="geoproc-inventory-")
        self._pq_path = os.path.join(self._tmp, f"{part}.parquet")
        self._txt_path = os.path.join(self._tmp, f"{part}.{fmt}")
        self._pq: pq.ParquetWriter | None = None
        self._txt: Any = None

    def write(self, records: list[dict[str, Any]]) -> None:
        """Append one batch (a listing page) of records."""
        if not records:
            return
        table = pa.Table.from_pylist(records, schema=self.schema)
        if self._pq is None:
            self._pq = pq.ParquetWriter(self._pq_path, self.schema, compression="zstd")
            self._txt = pacsv.CSVWriter(self._txt_path, self.schema) if self.fmt == "csv" \
                else open(self._txt_path, "w", encoding="utf-8")
        self._pq.write_table(table)
        if self.fmt == "csv":
            self._txt.write_table(table)
        else:
            self._txt.writelines(json.dumps(r, default=_json_default, ensure_ascii=False) + "\n" for r in records)
        self.rows += len(records)

    def close(self) -> str | None:
        """Finish and upload; returns the part name, or None when the shard had no records."""
        try:
            if self._pq is None:
                return None
            self._pq.close()
            self._txt.close()
            put(self._pq_path, join(self.output, PARQUET_DIR, f"{self.part}.parquet"), self.storage_options)
            put(self._txt_path, join(self.output, PARTS_DIR, f"{self.part}.{self.fmt}"), self.storage_options)
            return self.part
        finally:
            shutil.rmtree(self._tmp, ignore_errors=True)

    def abort(self) -> None:
        """Drop everything written so far (the task failed)."""
        for w in (self._pq, self._txt):
            try:
                if w is not None:
                    w.close()
            except Exception:  # noqa: BLE001 - best effort clean-up
                pass
        shutil.rmtree(self._tmp, ignore_errors=True)


def _json_default(v: Any) -> Any:
    return v.isoformat() if hasattr(v, "isoformat") else str(v)


def merge_parts(output: str, fmt: str, parts: list[str], headers: bool, summary: dict[str, Any],
            storage_options: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Merge text parts into one file, drop stale Parquet parts, write ``summary.json``.

    Raises:
        InvalidInput: a part listed by the shards is missing (an earlier run was interrupted while
            publishing); run the job again with ``--force``.
    """
    fs, root = open_fs(output, storage_options)
    root = root.rstrip("/")
    tmp = tempfile.mkdtemp(prefix="geoproc-publish-")
    try:
        expected = {f"{p}.parquet" for p in parts}
        pq_dir = f"{root}/{PARQUET_DIR}"
        present = {p.rsplit("/", 1)[-1] for p in (fs.ls(pq_dir, detail=False) if fs.exists(pq_dir) else [])}
        for stale in sorted(present - expected):
            fs.rm(f"{pq_dir}/{stale}")
        if not parts:  # an empty inventory is still a readable dataset with its columns
            empty = os.path.join(tmp, "part-00000.parquet")
            pq.write_table(schema(headers).empty_table(), empty)
            put(empty, join(output, PARQUET_DIR, "part-00000.parquet"), storage_options)
        text = os.path.join(tmp, f"inventory.{fmt}")
        with open(text, "wb") as out:
            if fmt == "csv" and not parts:
                pacsv.write_csv(schema(headers).empty_table(), out)
            for n, part in enumerate(sorted(parts)):
                path = f"{root}/{PARTS_DIR}/{part}.{fmt}"
                if not fs.exists(path):
                    raise InvalidInput(f"inventory part {path} is missing",
                                       remediation="Run the job again with --force to rewrite every part.")
                with fs.open(path, "rb") as src:
                    if fmt == "csv" and n > 0:
                        src.readline()  # each part has its own header line
                    shutil.copyfileobj(src, out, 1 << 20)
        put(text, join(output, f"inventory.{fmt}"), storage_options)
        write_summary(output, summary, storage_options)
        if fs.exists(f"{root}/{PARTS_DIR}"):
            fs.rm(f"{root}/{PARTS_DIR}", recursive=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return {"parquet": join(output, PARQUET_DIR), fmt: join(output, f"inventory.{fmt}"),
            "summary": join(output, "summary.json")}


def write_summary(output: str, summary: dict[str, Any], storage_options: dict[str, dict[str, Any]]) -> str:
    """Write ``summary.json`` under ``output``; returns its URL."""
    tmp = tempfile.mkdtemp(prefix="geoproc-summary-")
    try:
        path = os.path.join(tmp, "summary.json")
        with open(path, "w", encoding="utf-8") as fh:
            json.dump(summary, fh, indent=2)
        put(path, join(output, "summary.json"), storage_options)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return join(output, "summary.json")
