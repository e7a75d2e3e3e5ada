"""The job ledger: jobs, tasks, stage results and events on SQLite (default) or PostgreSQL."""

from .store import TERMINAL, JobRecord, Ledger, default_url, open_ledger, owner_token

__all__ = ["TERMINAL", "JobRecord", "Ledger", "default_url", "open_ledger", "owner_token"]
