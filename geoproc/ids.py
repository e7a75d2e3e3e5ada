"""Deterministic identities: job ids, task ids and the Dask keys derived from them.

Nothing that must be found again is ever a random uuid. The same job submitted on any machine gets
the same id, so re-submitting finds the ledger row instead of starting over.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

_SAFE_KEY = re.compile(r"^[A-Za-z0-9_.]{1,40}$")


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: the form that is hashed."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def job_id(job_type: str, hashed_params: dict[str, Any]) -> str:
    """sha256 of canonical JSON ``{job_type, params}``; params already normalized and filtered."""
    return sha256_hex(canonical_json({"job_type": job_type, "params": hashed_params}))


def task_key_part(key: str) -> str:
    """A logical key as it appears in a task id: itself when short and plain, else a 16-hex digest.

    Indices and tile coordinates stay readable on the dashboard; blob paths (which may be long or
    contain ``/``) become a stable digest.
    """
    key = str(key)
    return key if _SAFE_KEY.match(key) else sha256_hex(key)[:16]


def task_id(job_id_: str, stage: str, key: str) -> str:
    """``<job id 16>-<stage>-<key>``: unique per job, stable across runs and machines."""
    return f"{job_id_[:16]}-{stage}-{task_key_part(key)}"


def batch_key(job_type: str, stage: str, job_id_: str, first_task_key: str, run_token: str) -> str:
    """The Dask key of one batch of ledger tasks (the engine's unit of submission).

    Dask groups keys by their prefix before the first ``-``, so the dashboard shows
    ``hello_world.greet`` as the task group. The run token keeps keys of a resumed run distinct from
    those a still-alive scheduler may remember from an earlier, interrupted run.
    """
    return f"{job_type}.{stage}-{job_id_[:12]}-{task_key_part(first_task_key)}-{run_token}"
