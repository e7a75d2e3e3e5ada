"""Settings, read once from ``GEOPROC_*`` environment variables and passed explicitly.

| variable                    | default                                   | meaning                                   |
|-----------------------------|-------------------------------------------|-------------------------------------------|
| ``GEOPROC_LEDGER``          | ``sqlite:///~/.local/share/geoproc/ledger.db`` | ledger URL (SQLite path or PostgreSQL) |
| ``GEOPROC_CLUSTER``         | ``local``                                 | ``local``, ``tcp://host:port``, ``kubernetes`` |
| ``GEOPROC_WORKERS``         | CPU count (at most 8)                     | local cluster worker processes            |
| ``GEOPROC_THREADS_PER_WORKER`` | 1                                      | threads per local worker                  |
| ``GEOPROC_MEMORY_LIMIT``    | ``auto``                                  | memory limit per local worker             |
| ``GEOPROC_LEASE_TTL``       | 30                                        | seconds without heartbeat before another run may take over |
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="GEOPROC_", extra="ignore")

    ledger: str | None = None
    cluster: str = "local"
    workers: int | None = Field(None, ge=1, le=256)
    threads_per_worker: int = Field(1, ge=1, le=64)
    memory_limit: str = "auto"
    dashboard_address: str = "127.0.0.1:0"
    lease_ttl: float = Field(30.0, gt=0)
    heartbeat_interval: float = Field(2.0, gt=0)
    flush_interval: float = Field(0.5, gt=0)
    flush_size: int = Field(5000, ge=1)
    chunks_per_worker: int = Field(8, ge=1, description="light tasks: batches per worker and stage")
    max_batch: int = Field(2000, ge=1, description="light tasks: most tasks in one Dask task")
    follow_poll: float = Field(0.5, gt=0, description="seconds between checks while another driver runs")
