"""The ledger's tables, in SQLAlchemy Core so the same schema runs on SQLite and PostgreSQL.

Times are epoch seconds (float): portable, sortable and cheap to compare. JSON columns are JSONB on
PostgreSQL. ``SCHEMA_VERSION`` is stored in ``geoproc_meta``; a ledger written by a newer geoproc is
refused rather than silently misread; an older one is brought up to date when opened (version 2 only
added a table, which ``create_all`` makes).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB

SCHEMA_VERSION = 2  # 2: geoproc_outputs

JSONType = sa.JSON().with_variant(JSONB(), "postgresql")

metadata = sa.MetaData()

meta = sa.Table(
    "geoproc_meta",
    metadata,
    sa.Column("key", sa.String(64), primary_key=True),
    sa.Column("value", sa.String(256), nullable=False),
)

jobs = sa.Table(
    "geoproc_jobs",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("job_type", sa.String(64), nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("stage", sa.Integer, nullable=False, default=0),
    sa.Column("n_stages", sa.Integer, nullable=False),
    sa.Column("result", JSONType),
    sa.Column("error", sa.Text),
    sa.Column("runs", sa.Integer, nullable=False, default=0),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, default=False),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("heartbeat_at", sa.Float),
    sa.Column("created_at", sa.Float, nullable=False),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    # footprint of the job's outputs in WGS84 (union of task results' bbox_wgs84), for `jobs --bbox`
    sa.Column("west", sa.Float),
    sa.Column("south", sa.Float),
    sa.Column("east", sa.Float),
    sa.Column("north", sa.Float),
    sa.Index("ix_jobs_status", "status"),
    sa.Index("ix_jobs_type", "job_type"),
    sa.Index("ix_jobs_created", "created_at"),
)

tasks = sa.Table(
    "geoproc_tasks",
    metadata,
    sa.Column("task_id", sa.String(200), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("stage", sa.Integer, nullable=False),
    sa.Column("stage_name", sa.String(64), nullable=False),
    sa.Column("seq", sa.Integer, nullable=False),
    sa.Column("key", sa.Text, nullable=False),
    sa.Column("handler", sa.String(128), nullable=False),
    sa.Column("params", JSONType, nullable=False),
    sa.Column("parent_id", sa.String(200)),
    sa.Column("fingerprint", sa.String(200)),
    sa.Column("status", sa.String(32), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, default=0),
    sa.Column("result", JSONType),
    sa.Column("error_kind", sa.String(16)),  # transient | invalid (quarantined) | unexpected
    sa.Column("error_code", sa.String(64)),
    sa.Column("error_message", sa.Text),
    sa.Column("remediation", sa.Text),
    sa.Column("traceback", sa.Text),
    sa.Column("worker", sa.String(200)),
    sa.Column("started_at", sa.Float),
    sa.Column("finished_at", sa.Float),
    sa.Column("updated_at", sa.Float, nullable=False),
    sa.Index("ix_tasks_job_stage_status", "job_id", "stage", "status"),
    sa.Index("ix_tasks_job_seq", "job_id", "stage", "seq"),
)

stage_results = sa.Table(
    "geoproc_stage_results",
    metadata,
    sa.Column("job_id", sa.String(64), primary_key=True),
    sa.Column("stage", sa.Integer, primary_key=True),
    sa.Column("stage_name", sa.String(64), nullable=False),
    sa.Column("result", JSONType),
    sa.Column("updated_at", sa.Float, nullable=False),
)

events = sa.Table(
    "geoproc_events",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("at", sa.Float, nullable=False),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("stage", sa.Integer),
    sa.Column("task_id", sa.String(200)),
    sa.Column("message", sa.Text),
    sa.Column("data", JSONType),
    sa.Index("ix_events_job", "job_id", "at"),
)

# Every file a completed task wrote, one row per (url, job, sha256): an output's revisions, with the
# checksums of earlier ones kept after a task that ran again has replaced its result.
outputs = sa.Table(
    "geoproc_outputs",
    metadata,
    sa.Column("id", sa.Integer, sa.Identity(), primary_key=True),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("job_id", sa.String(64), nullable=False),
    sa.Column("task_id", sa.String(200), nullable=False),
    sa.Column("size", sa.BigInteger),
    sa.Column("sha256", sa.String(64)),
    sa.Column("at", sa.Float, nullable=False),
    sa.UniqueConstraint("url", "job_id", "sha256", name="uq_outputs_url_job_sha"),
    sa.Index("ix_outputs_url", "url"),
    sa.Index("ix_outputs_job", "job_id"),
)
