"""The ledger: a record of every job, task, stage result and event, on SQLite or PostgreSQL.

The ledger records; it does not drive control flow. Only the driver (the process running a job)
writes task outcomes, in batched transactions, which keeps SQLite safe and workers free of database
credentials. Other processes write only two things: a cancel request, and a lease takeover.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ..errors import JobNotFound, LedgerError, SchemaMismatch
from . import schema as s

TERMINAL = frozenset({"completed", "completed_with_errors", "failed", "cancelled"})
TASK_DONE = "completed"

_TASK_COLUMNS = (
    "task_id", "job_id", "stage", "stage_name", "seq", "key", "handler", "params", "parent_id", "fingerprint", "status",
    "attempts", "result", "error_kind", "error_code", "error_message", "remediation", "traceback", "worker",
    "started_at", "finished_at", "updated_at",
)


@dataclass
class JobRecord:
    job_id: str
    job_type: str
    params: dict[str, Any]
    status: str
    stage: int
    n_stages: int
    result: dict[str, Any] | None
    error: str | None
    runs: int
    cancel_requested: bool
    lease_owner: str | None
    heartbeat_at: float | None
    created_at: float
    updated_at: float
    started_at: float | None
    finished_at: float | None
    west: float | None = None
    south: float | None = None
    east: float | None = None
    north: float | None = None

    @property
    def bbox(self) -> list[float] | None:
        box = [self.west, self.south, self.east, self.north]
        return None if any(v is None for v in box) else [float(v) for v in box if v is not None]

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def duration(self) -> float | None:
        if self.started_at is None:
            return None
        return (self.finished_at or time.time()) - self.started_at


def default_url() -> str:
    """``$GEOPROC_LEDGER``, else SQLite at ``$XDG_DATA_HOME/geoproc/ledger.db`` (~/.local/share/...)."""
    url = os.environ.get("GEOPROC_LEDGER")
    if url:
        return url
    base = Path(os.environ.get("XDG_DATA_HOME") or Path.home() / ".local/share") / "geoproc"
    return f"sqlite:///{base}/ledger.db"


def owner_token() -> str:
    """Identifies this driver process in a lease: host, pid and start time."""
    return f"{socket.gethostname()}:{os.getpid()}:{int(time.time() * 1000)}"


def owner_alive(owner: str) -> bool | None:
    """True/False when the lease owner runs on this host (checked by pid); None when it is elsewhere."""
    try:
        host, pid, _ = owner.rsplit(":", 2)
        if host != socket.gethostname():
            return None
        os.kill(int(pid), 0)
        return True
    except ProcessLookupError:
        return False
    except (ValueError, PermissionError):
        return None


class Ledger:
    """One ledger database. Construct with :func:`open_ledger`."""

    def __init__(self, engine: sa.Engine):
        self.engine = engine
        self.dialect = engine.dialect.name
        self._insert = postgresql.insert if self.dialect == "postgresql" else sqlite.insert

    def __repr__(self) -> str:
        return f"Ledger({self.url})"

    @property
    def url(self) -> str:
        """The URL with any password hidden: safe to print."""
        return self.engine.url.render_as_string(hide_password=True)

    def close(self) -> None:
        self.engine.dispose()

    # --- jobs ----------------------------------------------------------------------------------------

    def create_job(self, job_id: str, job_type: str, params: dict, n_stages: int) -> bool:
        """Insert the job if it is new; returns whether it was created."""
        now = time.time()
        stmt = self._insert(s.jobs).values(
            job_id=job_id, job_type=job_type, params=params, status="pending", stage=0, n_stages=n_stages,
            runs=0, cancel_requested=False, created_at=now, updated_at=now,
        ).on_conflict_do_nothing(index_elements=["job_id"]).returning(s.jobs.c.job_id)
        with self.engine.begin() as c:
            created = c.execute(stmt).first() is not None
            if created:
                self._event(c, job_id, "job_created", message=job_type)
        return created

    def get_job(self, job_id: str) -> JobRecord | None:
        with self.engine.connect() as c:
            row = c.execute(sa.select(s.jobs).where(s.jobs.c.job_id == job_id)).mappings().first()
        return JobRecord(**row) if row else None

    def find_job(self, prefix: str) -> JobRecord:
        """A job by full id or unambiguous prefix (at least 6 characters)."""
        job = self.get_job(prefix)
        if job:
            return job
        if len(prefix) >= 6:
            with self.engine.connect() as c:
                rows = c.execute(
                    sa.select(s.jobs).where(s.jobs.c.job_id.like(prefix + "%")).limit(2)
                ).mappings().all()
            if len(rows) == 1:
                return JobRecord(**rows[0])
            if len(rows) > 1:
                raise JobNotFound(f"Job id prefix {prefix!r} is ambiguous; give more characters.")
        raise JobNotFound(f"No job {prefix!r} in the ledger {self.url}; list jobs with `geoproc jobs`.")

    def update_job(self, job_id: str, **values: Any) -> None:
        values["updated_at"] = time.time()
        with self.engine.begin() as c:
            c.execute(sa.update(s.jobs).where(s.jobs.c.job_id == job_id).values(**values))

    def list_jobs(self, status: str | None = None, job_type: str | None = None, limit: int = 20,
                  since: float | None = None, until: float | None = None,
                  bbox: list[float] | None = None) -> list[JobRecord]:
        """Recent jobs, newest first; ``bbox`` (west, south, east, north) keeps jobs whose outputs touch it."""
        q = sa.select(s.jobs).order_by(s.jobs.c.created_at.desc()).limit(limit)
        if until:
            q = q.where(s.jobs.c.created_at <= until)
        if bbox:
            w, so, e, n = bbox
            j = s.jobs.c
            q = q.where(j.west.is_not(None), j.west <= e, j.east >= w, j.south <= n, j.north >= so)
        if status:
            q = q.where(s.jobs.c.status == status)
        if job_type:
            q = q.where(s.jobs.c.job_type == job_type)
        if since:
            q = q.where(s.jobs.c.created_at >= since)
        with self.engine.connect() as c:
            return [JobRecord(**r) for r in c.execute(q).mappings()]

    # --- leases and cancellation ------------------------------------------------------------------------

    def acquire_lease(self, job_id: str, owner: str, ttl: float) -> bool:
        """Take the job's lease if it is free, stale, or held by a dead process on this host.

        The compare-and-set runs as one UPDATE, so of two drivers racing for the same job exactly one
        wins, on SQLite and on PostgreSQL alike.
        """
        now = time.time()
        job = self.get_job(job_id)
        if job is None:
            raise JobNotFound(job_id)
        cond = sa.or_(s.jobs.c.lease_owner.is_(None), s.jobs.c.heartbeat_at < now - ttl)
        if job.lease_owner and owner_alive(job.lease_owner) is False:
            cond = sa.or_(cond, s.jobs.c.lease_owner == job.lease_owner)
        stmt = (sa.update(s.jobs).where(s.jobs.c.job_id == job_id, cond)
                .values(lease_owner=owner, heartbeat_at=now, updated_at=now))
        with self.engine.begin() as c:
            won = c.execute(stmt).rowcount == 1
            if won and job.lease_owner:
                self._event(c, job_id, "lease_taken_over", message=f"previous driver {job.lease_owner}")
        return won

    def heartbeat(self, job_id: str, owner: str) -> tuple[bool, bool]:
        """Renew the lease; returns (still ours, cancel requested)."""
        now = time.time()
        with self.engine.begin() as c:
            n = c.execute(sa.update(s.jobs).where(s.jobs.c.job_id == job_id, s.jobs.c.lease_owner == owner)
                          .values(heartbeat_at=now)).rowcount
            cancel = c.execute(sa.select(s.jobs.c.cancel_requested).where(s.jobs.c.job_id == job_id)).scalar()
        return n == 1, bool(cancel)

    def release_lease(self, job_id: str, owner: str) -> None:
        with self.engine.begin() as c:
            c.execute(sa.update(s.jobs).where(s.jobs.c.job_id == job_id, s.jobs.c.lease_owner == owner)
                      .values(lease_owner=None, heartbeat_at=None))

    def request_cancel(self, job_id: str) -> JobRecord:
        """Ask the job's driver to stop; a job with no live driver is cancelled right here."""
        with self.engine.begin() as c:
            c.execute(sa.update(s.jobs).where(s.jobs.c.job_id == job_id)
                      .values(cancel_requested=True, updated_at=time.time()))
            self._event(c, job_id, "cancel_requested")
        job = self.get_job(job_id)
        assert job is not None
        live = job.lease_owner and owner_alive(job.lease_owner) is not False
        if not job.terminal and not live:
            self.cancel_unfinished(job_id)
            self.update_job(job_id, status="cancelled", finished_at=time.time(), lease_owner=None)
            self.event(job_id, "job_cancelled", message="no live driver; cancelled in the ledger")
        return self.get_job(job_id)  # type: ignore[return-value]

    # --- tasks ---------------------------------------------------------------------------------------------

    def add_tasks(self, rows: Iterable[dict[str, Any]], batch: int = 5000) -> None:
        """Insert planned tasks as pending; tasks that already exist are left as they are."""
        now = time.time()
        buf: list[dict[str, Any]] = []

        def flush(c: sa.Connection) -> None:
            if buf:
                c.execute(self._insert(s.tasks).on_conflict_do_nothing(index_elements=["task_id"]), buf)
                buf.clear()

        with self.engine.begin() as c:
            for r in rows:
                buf.append({**{k: None for k in _TASK_COLUMNS}, "status": "pending", "attempts": 0,
                            "updated_at": now, **r})
                if len(buf) >= batch:
                    flush(c)
            flush(c)

    def task_states(self, job_id: str, stage: int) -> dict[str, tuple[str, str | None]]:
        """task_id -> (status, fingerprint) for one stage."""
        q = sa.select(s.tasks.c.task_id, s.tasks.c.status, s.tasks.c.fingerprint).where(
            s.tasks.c.job_id == job_id, s.tasks.c.stage == stage)
        with self.engine.connect() as c:
            return {tid: (status, fp) for tid, status, fp in c.execute(q).all()}

    def refresh_tasks(self, rows: list[dict[str, Any]]) -> None:
        """Put tasks whose input changed back to pending, with their new fingerprint and params."""
        if not rows:
            return
        t = s.tasks
        stmt = (sa.update(t).where(t.c.task_id == sa.bindparam("b_id"))
                .values(status="pending", result=None, fingerprint=sa.bindparam("b_fp"),
                        params=sa.bindparam("b_params"), updated_at=time.time()))
        with self.engine.begin() as c:
            c.execute(stmt, [{"b_id": r["task_id"], "b_fp": r["fingerprint"], "b_params": r["params"]} for r in rows])

    def results(self, task_ids: list[str]) -> dict[str, Any]:
        """Stored results of the given tasks (completed ones only)."""
        out: dict[str, Any] = {}
        with self.engine.connect() as c:
            for i in range(0, len(task_ids), 900):
                q = sa.select(s.tasks.c.task_id, s.tasks.c.result).where(
                    s.tasks.c.task_id.in_(task_ids[i:i + 900]), s.tasks.c.status == TASK_DONE)
                out.update(c.execute(q).all())
        return out

    def stream_results(self, job_id: str, stage: int, page: int = 2000) -> Iterator[dict[str, Any]]:
        """Results of a stage's completed tasks in plan order, fetched page by page (bounded memory)."""
        last = -1
        while True:
            q = (sa.select(s.tasks.c.seq, s.tasks.c.result)
                 .where(s.tasks.c.job_id == job_id, s.tasks.c.stage == stage, s.tasks.c.status == TASK_DONE,
                        s.tasks.c.seq > last)
                 .order_by(s.tasks.c.seq).limit(page))
            with self.engine.connect() as c:
                rows = c.execute(q).all()
            if not rows:
                return
            for _seq, result in rows:
                yield result
            last = rows[-1][0]

    def record_outcomes(self, outcomes: list[dict[str, Any]], job_id: str | None = None,
                        owner: str | None = None) -> bool:
        """Write a batch of task outcomes in one transaction (the driver's only hot write).

        With ``owner`` the write is fenced: it happens only while that driver still holds the job's
        lease, so a driver that lost its lease (paused, then taken over) cannot overwrite newer state.
        Every failure is also appended to the job's events, which keeps the attempt history.
        """
        if not outcomes:
            return True
        now = time.time()
        t = s.tasks
        stmt = (sa.update(t).where(t.c.task_id == sa.bindparam("b_id"))
                .values(status=sa.bindparam("b_status"), attempts=t.c.attempts + sa.bindparam("b_attempts"),
                        result=sa.bindparam("b_result"), error_kind=sa.bindparam("b_kind"),
                        error_code=sa.bindparam("b_code"),
                        error_message=sa.bindparam("b_msg"), remediation=sa.bindparam("b_rem"),
                        traceback=sa.bindparam("b_tb"), worker=sa.bindparam("b_worker"),
                        started_at=sa.bindparam("b_start"), finished_at=sa.bindparam("b_end"),
                        updated_at=now))
        rows = [{"b_id": o["task_id"], "b_status": o["status"], "b_attempts": o.get("attempts", 0),
                 "b_result": o.get("result"), "b_kind": o.get("error_kind"), "b_code": o.get("error_code"),
                 "b_msg": o.get("error_message"), "b_rem": o.get("remediation"), "b_tb": o.get("traceback"),
                 "b_worker": o.get("worker"), "b_start": o.get("started_at"), "b_end": o.get("finished_at")}
                for o in outcomes]
        failures = [{"job_id": job_id, "at": now, "kind": "task_failed" if o["status"] == "failed" else "task_skipped",
                     "task_id": o["task_id"], "message": f"{o.get('error_code')}: {o.get('error_message')}",
                     "data": {"attempts": o.get("attempts"), "kind": o.get("error_kind")}}
                    for o in outcomes if o["status"] != "completed" and job_id]
        with self.engine.begin() as c:
            if owner is not None:
                q = sa.select(s.jobs.c.lease_owner).where(s.jobs.c.job_id == job_id)
                if self.dialect == "postgresql":
                    q = q.with_for_update()  # a takeover waits until this batch is written
                if c.execute(q).scalar() != owner:
                    return False
            c.execute(stmt, rows)
            if failures:
                c.execute(sa.insert(s.events), failures)
        return True

    def reset_tasks(self, job_id: str, statuses: Iterable[str] | None = None, task_ids: list[str] | None = None,
                    stages: list[int] | None = None) -> int:
        """Put tasks back to pending (``--force``, ``retry``); attempts are kept as history."""
        q = sa.update(s.tasks).where(s.tasks.c.job_id == job_id)
        if stages is not None:
            q = q.where(s.tasks.c.stage.in_(stages))
        if statuses is not None:
            q = q.where(s.tasks.c.status.in_(list(statuses)))
        if task_ids is not None:
            q = q.where(s.tasks.c.task_id.in_(task_ids))
        with self.engine.begin() as c:
            return c.execute(q.values(status="pending", result=None, updated_at=time.time())).rowcount

    def cancel_unfinished(self, job_id: str, task_ids: list[str] | None = None) -> int:
        """Mark pending tasks (or the given ones, if not completed) as cancelled."""
        q = sa.update(s.tasks).where(s.tasks.c.job_id == job_id, s.tasks.c.status != TASK_DONE,
                                     s.tasks.c.status != "failed")
        if task_ids is not None:
            q = q.where(s.tasks.c.task_id.in_(task_ids))
        with self.engine.begin() as c:
            return c.execute(q.values(status="cancelled", updated_at=time.time())).rowcount

    def counts(self, job_id: str) -> dict[int, dict[str, int]]:
        """stage -> status -> number of tasks."""
        q = (sa.select(s.tasks.c.stage, s.tasks.c.status, sa.func.count())
             .where(s.tasks.c.job_id == job_id).group_by(s.tasks.c.stage, s.tasks.c.status))
        out: dict[int, dict[str, int]] = {}
        with self.engine.connect() as c:
            for stage, status, n in c.execute(q):
                out.setdefault(stage, {})[status] = n
        return out

    def list_tasks(self, job_id: str, status: str | None = None, stage: int | None = None,
                   limit: int | None = 100, error_kind: str | None = None) -> list[dict[str, Any]]:
        q = sa.select(s.tasks).where(s.tasks.c.job_id == job_id).order_by(s.tasks.c.stage, s.tasks.c.seq)
        if error_kind:
            q = q.where(s.tasks.c.error_kind == error_kind)
        if status:
            q = q.where(s.tasks.c.status == status)
        if stage is not None:
            q = q.where(s.tasks.c.stage == stage)
        if limit:
            q = q.limit(limit)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]

    def metrics(self, job_id: str, page: int = 5000) -> dict[int, dict[str, Any]]:
        """Per stage: tasks, failures, retries, busy seconds, span, tasks/s, bytes read and written.

        Bytes come from the ``metrics`` dict handlers may put in their results
        (``{"bytes_read": n, "bytes_written": m}``).
        """
        t = s.tasks
        out: dict[int, dict[str, Any]] = {}
        last = (-1, -1)
        while True:
            q = (sa.select(t.c.stage, t.c.seq, t.c.status, t.c.attempts, t.c.started_at, t.c.finished_at, t.c.result)
                 .where(t.c.job_id == job_id, sa.tuple_(t.c.stage, t.c.seq) > sa.tuple_(*last))
                 .order_by(t.c.stage, t.c.seq).limit(page))
            with self.engine.connect() as c:
                rows = c.execute(q).all()
            if not rows:
                break
            for stage, _seq, status, attempts, t0, t1, result in rows:
                m = out.setdefault(stage, {"tasks": 0, "failed": 0, "retries": 0, "busy_s": 0.0, "first": None,
                                           "last": None, "bytes_read": 0, "bytes_written": 0})
                m["tasks"] += 1
                m["failed"] += status == "failed"
                m["retries"] += max(0, (attempts or 0) - 1)
                if t0 and t1:
                    m["busy_s"] += t1 - t0
                    m["first"] = t0 if m["first"] is None else min(m["first"], t0)
                    m["last"] = t1 if m["last"] is None else max(m["last"], t1)
                if isinstance(result, dict) and isinstance(result.get("metrics"), dict):
                    m["bytes_read"] += int(result["metrics"].get("bytes_read", 0) or 0)
                    m["bytes_written"] += int(result["metrics"].get("bytes_written", 0) or 0)
            last = (rows[-1][0], rows[-1][1])
        for m in out.values():
            span = (m["last"] - m["first"]) if m["first"] is not None else 0.0
            m["span_s"] = round(span, 3)
            m["tasks_per_s"] = round(m["tasks"] / span, 1) if span > 0 else None
            m["busy_s"] = round(m["busy_s"], 3)
        return out

    def set_bbox(self, job_id: str, bbox: list[float] | None) -> None:
        if bbox:
            self.update_job(job_id, west=bbox[0], south=bbox[1], east=bbox[2], north=bbox[3])

    # --- stage results and events ------------------------------------------------------------------------

    def set_stage_result(self, job_id: str, stage: int, stage_name: str, result: Any) -> None:
        now = time.time()
        stmt = self._insert(s.stage_results).values(job_id=job_id, stage=stage, stage_name=stage_name,
                                                    result=result, updated_at=now)
        stmt = stmt.on_conflict_do_update(index_elements=["job_id", "stage"],
                                          set_={"result": result, "updated_at": now})
        with self.engine.begin() as c:
            c.execute(stmt)

    def stage_results(self, job_id: str) -> dict[int, Any]:
        q = sa.select(s.stage_results.c.stage, s.stage_results.c.result).where(s.stage_results.c.job_id == job_id)
        with self.engine.connect() as c:
            return dict(c.execute(q).all())

    def event(self, job_id: str, kind: str, **fields: Any) -> None:
        with self.engine.begin() as c:
            self._event(c, job_id, kind, **fields)

    def _event(self, c: sa.Connection, job_id: str, kind: str, *, stage: int | None = None,
               task_id: str | None = None, message: str | None = None, data: Any = None) -> None:
        c.execute(sa.insert(s.events).values(job_id=job_id, at=time.time(), kind=kind, stage=stage,
                                             task_id=task_id, message=message, data=data))

    def events(self, job_id: str, limit: int = 1000) -> list[dict[str, Any]]:
        q = sa.select(s.events).where(s.events.c.job_id == job_id).order_by(s.events.c.id).limit(limit)
        with self.engine.connect() as c:
            return [dict(r) for r in c.execute(q).mappings()]


# --- opening -----------------------------------------------------------------------------------------


def _engine(url: str) -> sa.Engine:
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://"):]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    if url.startswith("sqlite:///"):
        path = url[len("sqlite:///"):]
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


def open_ledger(url: str | None = None) -> Ledger:
    """Open (and create or migrate) the ledger at ``url`` (default: :func:`default_url`)."""
    url = url or default_url()
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
            elif int(version) > s.SCHEMA_VERSION:
                raise SchemaMismatch(
                    f"The ledger has schema version {version}, this geoproc understands up to "
                    f"{s.SCHEMA_VERSION}; upgrade geoproc.")
    except SchemaMismatch:
        raise
    except sa.exc.SQLAlchemyError as exc:
        safe = sa.engine.make_url(url).render_as_string(hide_password=True) if "://" in url else url
        raise LedgerError(f"Cannot open the ledger {safe}: {exc.__class__.__name__}: "
                          f"{str(exc).splitlines()[0]}") from None
    return Ledger(engine)
