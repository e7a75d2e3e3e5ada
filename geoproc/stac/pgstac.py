"""pgstac: set a database up, load items one batch at a time, and check that they arrived.

pypgstac's loader can drop items without an error and deadlock under concurrent loaders
(stac-utils/pgstac#285, #222, #211). :func:`load_items` therefore works one batch at a time:

1. it asks pgstac which of the batch's ids exist and with what content, and skips the items whose
   stored content is already what pypgstac would store (a re-run changes nothing, not even a row
   version);
2. it loads the new and changed items with ``Loader.load_items(..., insert_mode=Methods.upsert)``;
3. it checks that every id of the batch is now in pgstac, reloads those that are missing, and raises
   :class:`geoproc.errors.PgstacLoadIncomplete` when some are still missing after the retries.

pypgstac's loader takes an exclusive lock on the partition it writes, so concurrent jobs that load
into one collection queue behind each other instead of losing rows; deadlocks it meets while
creating partitions are retried by pypgstac itself.

**Credentials.** A DSN's password never reaches job parameters, the ledger or logs. Jobs take
``pgstac_dsn`` either as ``"env"`` (read ``GEOPROC_PGSTAC_DSN`` on the driver, the process that
loads) or as a DSN whose password :func:`split_dsn` moves into a secret parameter that the ledger
never stores; libpq's own ``PGPASSWORD`` and ``~/.pgpass`` work too. Loading runs on the driver, so
no worker ever sees the database. :func:`redact_dsn` is the form to show.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from itertools import islice
from typing import Any

from ..errors import PgstacError, PgstacLoadIncomplete, PgstacNotConfigured
from ..units import utc_iso
from .collections import CollectionStats, collection_dict

log = logging.getLogger(__name__)

DSN_ENV = "GEOPROC_PGSTAC_DSN"
BATCH_SIZE = 1000
RELOAD_ATTEMPTS = 2


# --- DSNs ------------------------------------------------------------------------------------------


def split_dsn(dsn: str) -> tuple[str, str | None]:
    """(the DSN without its password, the password or None); URL and ``key=value`` forms alike."""
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    parts = conninfo_to_dict(dsn)
    password = parts.pop("password", None)
    if password is None:
        return dsn, None
    return make_conninfo(**{k: v for k, v in parts.items() if v is not None}), str(password)


def redact_dsn(dsn: str) -> str:
    """The DSN with any password removed (for messages and logs)."""
    try:
        return split_dsn(dsn)[0]
    except Exception as exc:  # noqa: BLE001 - an unparsable DSN is shown as nothing at all
        # the parser's message may quote the DSN, password included: log its type only
        log.warning("a pgstac DSN could not be parsed (%s); it is shown as <unparsable DSN>", type(exc).__name__)
        return "<unparsable DSN>"


def resolve_dsn(dsn: str | None, password: str | None = None, env: Mapping[str, str] | None = None) -> str:
    """The DSN to connect with: ``"env"`` or None reads ``GEOPROC_PGSTAC_DSN``; ``password`` is added.

    Raises:
        PgstacNotConfigured: no DSN was given and the environment variable is not set.
    """
    env = os.environ if env is None else env
    if dsn in (None, "", "env"):
        dsn = env.get(DSN_ENV)
        if not dsn:
            raise PgstacNotConfigured(
                f"No pgstac database: set {DSN_ENV}=postgresql://USER:PASSWORD@HOST:PORT/DB on the machine "
                "that runs the job, or pass pgstac_dsn=postgresql://USER@HOST:PORT/DB (password in PGPASSWORD "
                "or ~/.pgpass).")
    if password:
        from psycopg.conninfo import make_conninfo

        dsn = make_conninfo(dsn, password=password)
    return dsn


@contextmanager
def connect(dsn: str) -> Iterator[Any]:
    """A ``pypgstac.db.PgstacDB`` whose connection pool is closed on exit.

    Raises:
        PgstacError: the database cannot be reached (checked at once, rather than after the
            connection pool's 30-second wait).
    """
    import psycopg
    from pypgstac.db import PgstacDB

    try:
        psycopg.connect(dsn, connect_timeout=10).close()
    except psycopg.OperationalError as exc:
        secret = split_dsn(dsn)[1]
        detail = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
        raise PgstacError(f"cannot connect to pgstac at {redact_dsn(dsn)}: "
                          f"{detail.replace(secret, '***') if secret else detail}") from None
    db = PgstacDB(dsn=dsn)
    try:
        db.connect()
        yield db
    finally:
        pool = db.pool
        db.disconnect()
        if pool is not None:
            pool.close()


# --- setup -----------------------------------------------------------------------------------------


def setup(dsn: str) -> dict[str, Any]:
    """Install or upgrade pgstac in the database (``pypgstac migrate``); safe to run again.

    Returns ``{"version": ..., "previous": ..., "changed": bool, "dsn": <redacted>}``.
    """
    from pypgstac.migrate import Migrate

    with connect(dsn) as db:
        previous = db.version
        version = Migrate(db).run_migration()
    return {"version": version, "previous": previous, "changed": previous != version, "dsn": redact_dsn(dsn)}


# --- collections -----------------------------------------------------------------------------------


def upsert_collection(db: Any, collection: dict[str, Any]) -> str:
    """Create the collection, or merge its extent and summaries into the stored one.

    Runs in one transaction holding the collection's row lock, so concurrent jobs that add to one
    collection end with the union of their extents. Returns ``created``, ``updated`` or ``unchanged``.
    """
    from psycopg.types.json import Jsonb

    conn = db.connect()
    cid = collection["id"]
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("INSERT INTO collections (content) VALUES (%s) ON CONFLICT (id) DO NOTHING RETURNING id",
                    [Jsonb(collection)])
        if cur.fetchone():
            return "created"
        cur.execute("SELECT content FROM collections WHERE id = %s FOR UPDATE", [cid])
        stored = cur.fetchone()[0]
        stats = CollectionStats.from_collection(stored).merge(CollectionStats.from_collection(collection))
        merged = {**stored, **{k: v for k, v in collection.items() if k not in ("extent", "summaries")}}
        fresh = collection_dict(cid, stats, description=merged.get("description"), title=merged.get("title"),
                                license=merged.get("license", "other"), keywords=merged.get("keywords"))
        merged["extent"], merged["summaries"] = fresh["extent"], fresh.get("summaries", {})
        if merged == stored:
            return "unchanged"
        cur.execute("UPDATE collections SET content = %s WHERE id = %s", [Jsonb(merged), cid])
        return "updated"


# --- items -----------------------------------------------------------------------------------------


@dataclass
class LoadReport:
    """What :func:`load_items` did: items seen, newly loaded, updated, skipped and reloaded."""

    seen: int = 0
    loaded: int = 0
    updated: int = 0
    unchanged: int = 0
    reloaded: int = 0
    batches: int = 0

    def add(self, other: LoadReport) -> None:
        for k, v in asdict(other).items():
            setattr(self, k, getattr(self, k) + v)

    def to_dict(self) -> dict[str, int]:
        return asdict(self)


def stored_ids(db: Any, collection: str, ids: list[str]) -> set[str]:
    """The ids among ``ids`` that pgstac holds in ``collection``."""
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT id FROM items WHERE collection = %s AND id = ANY(%s)", [collection, ids])
        return {r[0] for r in cur.fetchall()}


def _stored_content(db: Any, collection: str, ids: list[str]) -> dict[str, Any]:
    conn = db.connect()
    with conn.cursor() as cur:
        cur.execute("SELECT id, content FROM items WHERE collection = %s AND id = ANY(%s)", [collection, ids])
        return {r[0]: r[1] for r in cur.fetchall()}


def _batches(items: Iterable[dict[str, Any]], size: int) -> Iterator[list[dict[str, Any]]]:
    it = iter(items)
    while batch := list(islice(it, size)):
        yield batch


def load_batch(db: Any, loader: Any, batch: list[dict[str, Any]]) -> LoadReport:
    """Load one batch of items of one or more collections; see the module docstring."""
    import orjson
    from pypgstac.load import Methods

    report = LoadReport(seen=len(batch), batches=1)
    by_collection: dict[str, list[dict[str, Any]]] = {}
    for item in batch:
        by_collection.setdefault(item["collection"], []).append(item)
    for cid, items in by_collection.items():
        ids = [i["id"] for i in items]
        stored = _stored_content(db, cid, ids)
        todo = []
        for item in items:
            if item["id"] in stored:
                want = orjson.loads(loader.format_item(orjson.loads(orjson.dumps(item)))["content"])
                if want == stored[item["id"]]:
                    report.unchanged += 1
                    continue
                report.updated += 1
            else:
                report.loaded += 1
            todo.append(item)
        if todo:
            loader.load_items(iter(orjson.loads(orjson.dumps(todo))), insert_mode=Methods.upsert)
        present = stored_ids(db, cid, ids)
        missing = [i for i in ids if i not in present]
        for _ in range(RELOAD_ATTEMPTS):
            if not missing:
                break
            again = [i for i in items if i["id"] in set(missing)]
            loader.load_items(iter(orjson.loads(orjson.dumps(again))), insert_mode=Methods.upsert)
            report.reloaded += len(again)
            present = stored_ids(db, cid, missing)
            missing = [i for i in missing if i not in present]
        if missing:
            raise PgstacLoadIncomplete(
                f"{len(missing)} item(s) of collection {cid!r} are still missing from pgstac after "
                f"{RELOAD_ATTEMPTS} reloads, e.g. {missing[:5]}")
    return report


def load_items(db: Any, items: Iterable[dict[str, Any]], batch_size: int = BATCH_SIZE) -> LoadReport:
    """Load a stream of items into pgstac one checked batch at a time (their collections must exist)."""
    from pypgstac.load import Loader

    loader = Loader(db=db)
    report = LoadReport()
    for batch in _batches(items, batch_size):
        report.add(load_batch(db, loader, batch))
    return report


def search(db: Any, query: dict[str, Any]) -> dict[str, Any]:
    """``pgstac.search(query)``: a FeatureCollection (``collections``, ``bbox``, ``datetime``, ``limit``)."""
    import json

    return db.query_one("SELECT search(%s::jsonb)", [json.dumps(query)])


def delete_items(db: Any, collection: str, ids: list[str]) -> int:
    """Delete ``ids`` from ``collection``; ids that are not there are no error (a removal may be run
    again). Then recompute the collection's extent and summaries from the items that remain.
    Returns how many items were deleted."""
    from psycopg.types.json import Jsonb

    conn = db.connect()
    with conn.transaction(), conn.cursor() as cur:
        cur.execute("SELECT content FROM collections WHERE id = %s FOR UPDATE", [collection])
        row = cur.fetchone()
        if row is None:
            return 0
        cur.execute("DELETE FROM items WHERE collection = %s AND id = ANY(%s) RETURNING id", [collection, ids])
        deleted = len(cur.fetchall())
        # from the rows themselves: pgstac's collection_extent() reads partition statistics, which it
        # refreshes later, and would still report the deleted items
        cur.execute("SELECT ST_XMin(e), ST_YMin(e), ST_XMax(e), ST_YMax(e), lo, hi FROM (SELECT "
                    "ST_Extent(geometry)::geometry AS e, min(datetime) AS lo, max(end_datetime) AS hi "
                    "FROM items WHERE collection = %s) AS x", [collection])
        *bbox, lo, hi = cur.fetchone()
        extent = None if bbox[0] is None else {
            "spatial": {"bbox": [[float(v) for v in bbox]]},
            "temporal": {"interval": [[utc_iso(lo), utc_iso(hi)]]}}
        cur.execute("SELECT DISTINCT content->'properties'->>'proj:code' FROM items WHERE collection = %s",
                    [collection])
        codes = sorted(c for (c,) in cur.fetchall() if c)
        content = dict(row[0])
        if extent:  # pgstac's own reduction over the stored items; an emptied collection keeps its last one
            content["extent"] = extent
        summaries = {k: v for k, v in (content.get("summaries") or {}).items() if k != "proj:code"}
        content["summaries"] = {**summaries, **({"proj:code": codes} if codes else {})}
        cur.execute("UPDATE collections SET content = %s WHERE id = %s", [Jsonb(content), collection])
    return deleted
