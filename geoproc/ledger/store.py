"""The ledger: a record of every job, task, stage result and event, on SQLite or PostgreSQL.

The ledger records; it does not drive control flow. Only the driver (the process running a job)
writes task outcomes, in batched transactions, which keeps SQLite safe and workers free of database
credentials. Other processes write only two things: a cancel request, and a lease takeover.

:class:`Ledger` is one object with one method per question, assembled from parts by what they hold:
jobs and leases (:mod:`.jobs`), tasks (:mod:`.tasks`, with analytics in :mod:`.metrics`), stage
results and events (:mod:`.events`). This module opens it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import sqlalchemy as sa

from ..errors import LedgerError, LedgerNotFound, SchemaMismatch
from ..settings import Settings
from ..status import TERMINAL
from . import schema as s
from .events import EventsMixin
from .jobs import JobsMixin
from .records import JobRecord, owner_alive, owner_token
from .tasks import TasksMixin

__all__ = ["TERMINAL", "JobRecord", "Ledger", "default_url", "open_ledger", "owner_alive", "owner_token"]

log = logging.getLogger(__name__)


class Ledger(JobsMixin, TasksMixin, EventsMixin):
    """One ledger database. Construct with :func:`open_ledger`."""


def default_url(settings: Settings | None = None) -> str:
    """``$GEOPROC_LEDGER``, else SQLite at ``$XDG_DATA_HOME/geoproc/ledger.db`` (~/.local/share/...)."""
    settings = settings or Settings()
    if settings.ledger:
        return settings.ledger
    base = Path(settings.data_home or Path.home() / ".local/share") / "geoproc"
    return f"sqlite:///{base}/ledger.db"


# --- opening -----------------------------------------------------------------------------------------


def _engine(url: str, read_only: bool = False) -> sa.Engine:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
        if read_only:
            return _sqlite_read_only(url, path)
        if path and path != ":memory:":
            Path(path).expanduser().parent.mkdir(parents=True, exist_ok=True)
        engine = sa.create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})

        @sa.event.listens_for(engine, "connect")
        def _pragmas(dbapi_conn, _record):  # WAL lets readers (status, cancel) run beside the driver
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.execute("PRAGMA busy_timeout=60000")
            cur.close()

        return engine
    if url.startswith("postgresql+"):
        return sa.create_engine(url, pool_pre_ping=True)
    raise LedgerError(f"Unsupported ledger URL {url.split('://')[0]}://...; use sqlite:///PATH or postgresql://...")


def _sqlite_read_only(url: str, path: str) -> sa.Engine:
    """A SQLite ledger opened without writing anything: never created, never switched to WAL.

    ``mode=ro`` shares the WAL of a running driver, so a reader sees its progress; only on a read-only
    mount, where SQLite cannot create the WAL index and nobody can be writing, is the file read as
    ``immutable`` (a snapshot, and there exact).
    """
    file = Path(path).expanduser()
    if not path or path == ":memory:" or not file.is_file():
        raise LedgerNotFound(f"No ledger at {file}: nothing has run with it (a mistyped --ledger or "
                             "GEOPROC_LEDGER?). Commands that only read the ledger never create one.")
    quoted = quote(str(file.resolve()))

    read_only_media = not os.access(file.parent, os.W_OK)  # false for root too on a read-only mount (EROFS)

    def connect() -> Any:
        if read_only_media:  # no WAL index can be made here, and nobody can be writing: a snapshot is exact
            return sqlite3.connect(f"file:{quoted}?mode=ro&immutable=1", uri=True, check_same_thread=False)
        conn = sqlite3.connect(f"file:{quoted}?mode=ro", uri=True, timeout=60, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=60000")
        return conn

    return sa.create_engine(f"sqlite:///{file}", creator=connect)  # the URL names it; creator opens it


def open_ledger(url: str | None = None, settings: Settings | None = None, *, read_only: bool = False) -> Ledger:
    """Open (and create or migrate) the ledger at ``url`` (default: :func:`default_url`).

    ``read_only`` is for commands that only look (``status``, ``jobs``, ``tasks``, ``events``,
    ``report``): the ledger must exist already (:class:`LedgerNotFound` otherwise) and is never written,
    so they work on a read-only mount and a typo in the URL cannot start an empty history.
    """
    url = url or default_url(settings)
    if read_only:
        return _open_read_only(url)
    try:
        engine = _engine(url)
        for attempt in range(3):  # two processes creating a new ledger at once: the loser retries
            try:
                with engine.begin() as c:
                    s.metadata.create_all(c)
                break
            except sa.exc.SQLAlchemyError:
                if attempt == 2:
                    raise
                time.sleep(0.2 * (attempt + 1))
        with engine.begin() as c:
            version = c.execute(sa.select(s.meta.c.value).where(s.meta.c.key == "schema_version")).scalar()
            if version is None:
                c.execute(sa.insert(s.meta).values(key="schema_version", value=str(s.SCHEMA_VERSION)))
            else:
                _check_schema(version)
                if int(version) < s.SCHEMA_VERSION:  # create_all above added what the newer schema has
                    c.execute(sa.update(s.meta).where(s.meta.c.key == "schema_version")
                              .values(value=str(s.SCHEMA_VERSION)))
                    log.info("Ledger schema upgraded from version %s to %s", version, s.SCHEMA_VERSION)
    except SchemaMismatch:
        raise
    except sa.exc.SQLAlchemyError as exc:
        safe = sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url
        raise LedgerError(f"Cannot open the ledger {safe}: {exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0]}") from None
    led = Ledger(engine)
    log.debug("Opened the ledger %s", led.url)
    return led


def _check_schema(version: str) -> None:
    if int(version) > s.SCHEMA_VERSION:
        raise SchemaMismatch(f"The ledger has schema version {version}, this geoproc understands up to "
                             f"{s.SCHEMA_VERSION}; upgrade geoproc.")


def _open_read_only(url: str) -> Ledger:
    safe = sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url
    try:
        engine = _engine(url, read_only=True)
        with engine.connect() as c:
            if not sa.inspect(c).has_table(s.jobs.name):
                raise LedgerNotFound(f"{safe} holds no geoproc ledger: nothing has run with it (a mistyped "
                                     "--ledger or GEOPROC_LEDGER?).")
            version = c.execute(sa.select(s.meta.c.value).where(s.meta.c.key == "schema_version")).scalar()
        if version is not None:
            _check_schema(version)
    except sa.exc.SQLAlchemyError as exc:
        raise LedgerError(f"Cannot open the ledger {safe}: {exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0]}") from None
    led = Ledger(engine)
    log.debug("Opened the ledger %s read-only", url)
    return led
