"""Settings, read once from ``GEOPROC_*`` environment variables and passed explicitly.

| variable                    | default                                   | meaning                                   |
|-----------------------------|-------------------------------------------|-------------------------------------------|
| ``GEOPROC_LEDGER``          | ``sqlite:///~/.local/share/geoproc/ledger.db`` | ledger URL (SQLite path or PostgreSQL) |
| ``GEOPROC_CLUSTER``         | ``local``                                 | ``local``, ``tcp://host:port``, ``kubernetes`` |
| ``GEOPROC_WORKERS``         | CPU count (at most 8)                     | local cluster worker processes            |
| ``GEOPROC_THREADS_PER_WORKER`` | 1                                      | threads per local worker                  |
| ``GEOPROC_MEMORY_LIMIT``    | ``auto``                                  | memory limit per local worker             |
| ``GEOPROC_LEASE_TTL``       | 30                                        | seconds without heartbeat before another run may take over |
| ``GEOPROC_BATCHES_PER_WORKER`` | 8                                      | light tasks: batches per worker and stage |
| ``GEOPROC_MAX_BATCH``       | 2000                                      | light tasks: most tasks in one batch      |
| ``GEOPROC_K8S_SPEC``        | ``cluster/k8s/daskcluster.yaml``          | DaskCluster spec for ``--cluster kubernetes`` |
| ``GEOPROC_LOG_LEVEL``       | ``WARNING``                               | level of the ``geoproc`` loggers (``debug``, ``info``, ...) |
| ``XDG_DATA_HOME``           | ``~/.local/share``                        | where the default SQLite ledger lives     |

A *batch* is the engine's unit of submission: the ledger tasks one Dask task runs. The old name
``GEOPROC_CHUNKS_PER_WORKER`` (``chunks_per_worker``) is still read, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from pydantic import Field, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from .errors import InvalidSetting

_CLUSTER_ADDRESS = re.compile(r"^(tcp|tls|ucx|inproc)://[^\s/]+$")
MAX_WORKERS = 256  # local worker processes: GEOPROC_WORKERS and --workers alike
CLUSTER_CHOICES = "local, kubernetes, or a scheduler address tcp://HOST:PORT"


def check_cluster(spec: str) -> str:
    """``spec`` if it names a cluster geoproc can use, else :class:`InvalidSetting` naming the choices."""
    if spec in ("local", "kubernetes") or _CLUSTER_ADDRESS.match(spec):
        return spec
    raise InvalidSetting(f"cluster {spec!r} is not a cluster; use {CLUSTER_CHOICES}")


class Settings(BaseSettings):
    """Every knob geoproc reads from the environment; construct once and pass it on."""

    model_config = SettingsConfigDict(env_prefix="GEOPROC_", extra="ignore", populate_by_name=True)

    ledger: str | None = None
    cluster: str = "local"
    workers: int | None = Field(None, ge=1, le=MAX_WORKERS)
    threads_per_worker: int = Field(1, ge=1, le=64)
    memory_limit: str = "auto"
    dashboard_address: str = "127.0.0.1:0"
    lease_ttl: float = Field(30.0, gt=0)
    heartbeat_interval: float = Field(2.0, gt=0)
    flush_interval: float = Field(0.5, gt=0)
    flush_size: int = Field(5000, ge=1)
    batches_per_worker: int = Field(8, ge=1, description="light tasks: batches per worker and stage")
    max_batch: int = Field(2000, ge=1, description="light tasks: most tasks in one batch (one Dask task)")
    follow_poll: float = Field(0.5, gt=0, description="seconds between checks while another driver runs")
    k8s_spec: str = Field("cluster/k8s/daskcluster.yaml", description="DaskCluster YAML for --cluster kubernetes")
    # kept as given: geoproc.logs.parse_level checks it where logging is configured, so that a bad
    # value is reported as a user error there instead of breaking every Settings()
    log_level: str | None = Field(None, description="level of the geoproc loggers: debug, info, warning, ...")
    data_home: str | None = Field(None, validation_alias="XDG_DATA_HOME",
                                  description="XDG data directory; the default ledger is data_home/geoproc")
    # deprecated spelling of ``batches_per_worker``; read only to be moved there
    chunks_per_worker: int | None = Field(None, ge=1, exclude=True, repr=False)

    def __init__(self, **values: Any):
        try:
            super().__init__(**values)
        except ValidationError as exc:
            raise InvalidSetting(_problems(exc)) from None

    @field_validator("cluster")
    @classmethod
    def _cluster(cls, v: str) -> str:
        try:
            return check_cluster(v)
        except InvalidSetting as exc:
            raise ValueError(str(exc).removeprefix("cluster ")) from None

    @model_validator(mode="after")
    def _deprecated_names(self) -> Settings:
        if self.chunks_per_worker is not None:
            warnings.warn("chunks_per_worker (GEOPROC_CHUNKS_PER_WORKER) is deprecated; use batches_per_worker "
                          "(GEOPROC_BATCHES_PER_WORKER)", DeprecationWarning, stacklevel=2)
            if "batches_per_worker" not in self.model_fields_set:
                self.batches_per_worker = self.chunks_per_worker
            self.chunks_per_worker = None
        return self


def _problems(exc: ValidationError) -> str:
    """One line naming each bad variable, its value and what it must be."""
    out = []
    for err in exc.errors():
        name = str(err["loc"][0]) if err["loc"] else "?"
        field = Settings.model_fields.get(name)
        var = (field.validation_alias if field is not None and isinstance(field.validation_alias, str)
               else f"GEOPROC_{name.upper()}")
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{var}={err.get('input')!r}: {msg[0].lower() + msg[1:]}")
    return "; ".join(out)
