"""Publishing items: the STAC options jobs share, and the driver-side step that catalogs a stream.

A job that catalogs its outputs (``stac_catalog``, ``cog`` with ``stac=true``) mixes
:class:`StacOptions` into its parameters and lists :data:`SECRET_PARAMS` among its secret
parameters. Its item tasks build items (and write them into the static catalog, in parallel); its
stage aggregate calls :func:`publish` on the driver with the stream of item dicts from the ledger,
which loads pgstac one checked batch at a time and writes the collection. The pgstac DSN is only ever
used on the driver: task parameters never carry it.

With ``publish="review"`` nothing public is written by the run: item tasks write into a preview
catalog beside the public one (:func:`review_root`), the aggregate writes the preview's collection
(:func:`stage_preview`), and :func:`publish` runs later, when a reviewer approves, with the items
streamed from the ledger (``write_items=True``: the public static catalog gets its item files then).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator

from ..model import STAGED
from ..storage.urls import Location
from .collections import CollectionStats, collection_dict

log = logging.getLogger(__name__)

SECRET_PARAMS = frozenset({"pgstac_password"})
_COLLECTION_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class StacOptions(BaseModel):
    """Where and how to catalog items: a static catalog, pgstac, or both."""

    stac_catalog: Location | None = Field(None, description="root URL of a static STAC catalog to write (local or az://)")
    stac_collection: str | None = Field(None, description="collection id (default: derived from the source)")
    stac_description: str | None = Field(None, max_length=2000, description="collection description")
    stac_license: str = Field("other", max_length=100, description="collection license (SPDX id or 'other')")
    stac_datetime: str | None = Field(
        None, description="datetime of every item (ISO 8601) or 'start/end'; default: file metadata, "
                          "a YYYYMMDD date in the file name, then the file's last-modified time")
    pgstac_dsn: str | None = Field(
        None, description="pgstac database: 'env' (GEOPROC_PGSTAC_DSN on the driver) or a DSN; a password "
                          "in it is moved to a secret parameter that is never stored")
    pgstac_password: SecretStr | None = Field(None, description="pgstac password (secret; never stored)")
    publish: Literal["auto", "review"] = Field(
        "auto", description="'auto' publishes the STAC at once; 'review' writes the outputs and a preview "
                            "catalog, and publishes only on `geoproc approve`")

    @model_validator(mode="before")
    @classmethod
    def _move_password(cls, data: Any) -> Any:
        """Take any password out of ``pgstac_dsn`` before it can reach the ledger or the job hash."""
        if isinstance(data, dict) and isinstance(data.get("pgstac_dsn"), str) and data["pgstac_dsn"] != "env":
            from .pgstac import split_dsn

            data = dict(data)
            try:
                dsn, password = split_dsn(data["pgstac_dsn"])
            except Exception as exc:  # noqa: BLE001 - never echo a DSN that may hold a password
                # its type only: the parser's message may quote the DSN; the field validator then refuses it
                log.warning("pgstac_dsn could not be parsed (%s)", type(exc).__name__)
                data["pgstac_dsn"] = "<unparsable DSN>"
                return data
            data["pgstac_dsn"] = dsn
            if password and not data.get("pgstac_password"):
                data["pgstac_password"] = password
        return data

    @field_validator("pgstac_dsn")
    @classmethod
    def _dsn_parses(cls, v: str | None) -> str | None:
        if v == "<unparsable DSN>":
            raise ValueError("not a PostgreSQL DSN; use postgresql://USER@HOST:PORT/DB or 'env'")
        return v

    @field_validator("stac_collection")
    @classmethod
    def _collection_id(cls, v: str | None) -> str | None:
        if v is not None and not _COLLECTION_ID.match(v):
            raise ValueError("collection ids use letters, digits, '.', '_' and '-' (at most 128)")
        return v

    @property
    def wants_stac(self) -> bool:
        return bool(self.stac_catalog or self.pgstac_dsn)

    def dsn(self) -> str:
        """The DSN to connect with (driver side only)."""
        from .pgstac import resolve_dsn

        pw = self.pgstac_password.get_secret_value() if self.pgstac_password else None
        return resolve_dsn(self.pgstac_dsn, pw)


def default_collection_id(source: str) -> str:
    """A collection id from a source URL: its last path component, lowercased and slugged."""
    tail = source.rstrip("/").split("://", 1)[-1].rstrip("/").rsplit("/", 1)[-1]
    slug = re.sub(r"[^a-z0-9._-]+", "-", tail.lower()).strip("-.")
    return slug or "geoproc"


def review_root(base: str, job_id: str) -> str:
    """Where a job awaiting review keeps its preview catalog: ``<base>.review/<job id[:12]>``.

    ``base`` is the public catalog's root, else the job's output (the directory of an output file).
    The preview sits beside it, never inside it, so a public catalog served as files shows nothing
    that was not approved; a container root (``az://out``) keeps it in ``az://out/_review/``.
    """
    base = base.rstrip("/")
    if base.lower().endswith((".tif", ".tiff")) and "/" in base.split("://", 1)[-1]:
        base = base.rsplit("/", 1)[0]
    if "://" in base and "/" not in base.split("://", 1)[1]:
        return f"{base}/_review/{job_id[:12]}"
    return f"{base}.review/{job_id[:12]}"


def stage_preview(opts: StacOptions, collection_id: str, results: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """The review step that replaces :func:`publish`: the preview catalog's collection, and a digest.

    ``results`` are item task results; each names the preview catalog it wrote its item into. The
    digest covers every item, so an approval can tell whether a later run staged anything new.
    """
    from ..ids import canonical_json, sha256_hex
    from .catalog import CATALOG_FILE, StaticCatalog

    stats, digest, preview = CollectionStats(), [], None
    for r in results:
        stats.add(r["item"])
        digest.append(sha256_hex(canonical_json(r["item"])))
        preview = preview or r.get("preview")
    staged: dict[str, Any] = {"items": stats.count, "digest": sha256_hex("".join(sorted(digest))),
                              "catalog": None}
    if preview:
        meta = {"description": opts.stac_description, "license": opts.stac_license}
        StaticCatalog(preview).write_collection(collection_id, stats, **meta)
        staged["catalog"] = f"{preview}/{CATALOG_FILE}"
    return {"collection": collection_id, "items": stats.count, "extent": stats.extent(), STAGED: staged}


def publish(opts: StacOptions, collection_id: str, items: Iterable[dict[str, Any]],
            batch_size: int = 1000, *, write_items: bool = False) -> dict[str, Any]:
    """Catalog a stream of items: pgstac (checked batches) and/or the static catalog's collection.

    The stream is read once. With pgstac the collection is upserted before the first batch (items
    need it) and again at the end with the full extent; both upserts merge with what is stored.
    Items were already written to the static catalog by the tasks that made them (``write_items``:
    an approval, whose items were only in the preview, writes them here); then the collection file
    and the root catalog are written.
    """
    from .pgstac import LoadReport

    stats = CollectionStats()
    meta = {"description": opts.stac_description, "license": opts.stac_license}
    out: dict[str, Any] = {"collection": collection_id}
    static = None
    if opts.stac_catalog and write_items:
        from .catalog import StaticCatalog

        static = StaticCatalog(opts.stac_catalog)

    def counted(stream: Iterable[dict[str, Any]]) -> Iterator[dict[str, Any]]:
        for item in stream:
            stats.add(item)
            if static is not None:
                static.write_item(item)
            yield item

    if opts.pgstac_dsn:
        from .pgstac import connect, load_batch, redact_dsn, upsert_collection

        report = LoadReport()
        dsn = opts.dsn()
        with connect(dsn) as db:
            from pypgstac.load import Loader

            loader = Loader(db=db)
            batch: list[dict[str, Any]] = []
            first = True
            for item in counted(items):
                batch.append(item)
                if len(batch) >= batch_size:
                    if first:
                        upsert_collection(db, collection_dict(collection_id, stats, **meta))
                        first = False
                    report.add(load_batch(db, loader, batch))
                    batch = []
            if batch or first:
                upsert_collection(db, collection_dict(collection_id, stats, **meta))
                if batch:
                    report.add(load_batch(db, loader, batch))
            out["collection_upsert"] = upsert_collection(db, collection_dict(collection_id, stats, **meta))
        out["pgstac"] = {**report.to_dict(), "dsn": redact_dsn(dsn)}
    else:
        for _ in counted(items):
            pass
    out["items"] = stats.count
    out["extent"] = stats.extent()
    if opts.stac_catalog:
        from .catalog import StaticCatalog

        out["static"] = StaticCatalog(opts.stac_catalog).write_collection(collection_id, stats, **meta)
    return out
