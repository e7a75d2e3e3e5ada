"""Job ids and task counts as the tests compute them."""

from __future__ import annotations

from geoproc import get_job


def cog_job_id(**params) -> str:
    """The id the cog job gets for ``params`` (defaults applied, as the CLI and the API compute it)."""
    cog = get_job("cog")
    return cog.job_id(cog.validate(params))


def counts(led, job_id: str, stage: int, status: str = "completed") -> int:
    """How many tasks of ``stage`` the ledger ``led`` holds in ``status``."""
    return led.counts(job_id).get(stage, {}).get(status, 0)
