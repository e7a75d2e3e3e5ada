"""The ledger's job rows: creating and finding jobs, their lease, cancel requests and footprint.

The lease is a compare-and-set on the job row (owner token plus heartbeat time), so it works alike on
SQLite and PostgreSQL. Processes other than the job's driver write only two things here: a cancel
request, and a lease takeover.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import sqlalchemy as sa

from ..errors import JobNotFound
from ..status import JobStatus
from . import schema as s
from .base import LedgerBase
from .records import JobRecord, owner_alive

log = logging.getLogger(__name__)


def _touches(w: float, so: float, e: float, n: float) -> sa.ColumnElement[bool]:
    """SQL condition: the job's stored footprint touches the box (either may cross the antimeridian)."""
    j = s.jobs.c
    crosses = j.west > j.east
    if w <= e:
        lon = sa.or_(sa.and_(~crosses, j.west <= e, j.east >= w),
                     sa.and_(crosses, sa.or_(j.west <= e, j.east >= w)))
    else:  # the box asked for crosses the antimeridian: [w, 180] and [-180, e]
        lon = sa.or_(crosses, j.east >= w, j.west <= e)
    return sa.and_(j.west.is_not(None), lon, j.south <= n, j.north >= so)


class JobsMixin(LedgerBase):
    """Jobs, leases and cancellation (part of :class:`~geoproc.ledger.Ledger`)."""

    def create_job(self, job_id: str, job_type: str, params: dict, n_stages: int) -> bool:
        """Insert the job if it is new; returns whether it was created."""
        now = time.time()
        stmt = self._insert(s.jobs).values(
            job_id=job_id, job_type=job_type, params=params, status=JobStatus.PENDING, stage=0, n_stages=n_stages,
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
        """Recent jobs, newest first; ``bbox`` (west, south, east, north) keeps jobs whose outputs touch it.

        Boxes that cross the antimeridian (west > east), stored or asked for, are understood as such.
        """
        q = sa.select(s.jobs).order_by(s.jobs.c.created_at.desc()).limit(limit)
        if until:
            q = q.where(s.jobs.c.created_at <= until)
        if bbox:
            q = q.where(_touches(*bbox))
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
        if won and job.lease_owner:
            log.info("Job %s: took the lease over from %s", job_id[:12], job.lease_owner)
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
        if job is None:
            raise JobNotFound(f"No job {job_id!r} in the ledger {self.url}; list jobs with `geoproc jobs`.")
        live = job.lease_owner and owner_alive(job.lease_owner) is not False
        if not job.terminal and not live:
            self.cancel_unfinished(job_id)
            self.update_job(job_id, status=JobStatus.CANCELLED, finished_at=time.time(), lease_owner=None)
            self.event(job_id, "job_cancelled", message="no live driver; cancelled in the ledger")
            log.info("Job %s had no live driver; cancelled in the ledger", job_id[:12])
        return self.get_job(job_id) or job

    def set_bbox(self, job_id: str, bbox: list[float] | None) -> None:
        if bbox:
            self.update_job(job_id, west=bbox[0], south=bbox[1], east=bbox[2], north=bbox[3])

    def delete_job(self, job_id: str) -> bool:
        """Remove a job and everything recorded about it (tasks, stage results, events); returns whether
        the job existed. For probes and clean-ups: a deleted job is forgotten, and runs again from scratch."""
        with self.engine.begin() as c:
            for table in (s.events, s.stage_results, s.tasks, s.outputs):
                c.execute(sa.delete(table).where(table.c.job_id == job_id))
            return c.execute(sa.delete(s.jobs).where(s.jobs.c.job_id == job_id)).rowcount == 1
