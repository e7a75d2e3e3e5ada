"""Job spec files and job references: how a job is named before it is validated.

A job is referred to either by its registered type name (``"hello_world"``) or by a spec file (TOML)
holding ``job = "<job type>"`` and a ``[params]`` table. This module turns either into a job type
name plus raw params; checking them against the job's schema is the job type's business
(:meth:`geoproc.model.JobType.validate`). It sits in the core layer so that the API and any face
(``geoproc plan``) resolve job references the same way without importing each other.
"""

from __future__ import annotations

import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from .errors import SpecFileError


def is_spec_path(job: str) -> bool:
    """Whether a job reference names a spec file rather than a registered job type."""
    return job.endswith(".toml") or "/" in job


def load_spec(path: str | Path) -> tuple[str, dict[str, Any]]:
    """Read a job spec file (TOML): ``job = "cog"`` and a ``[params]`` table."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise SpecFileError(f"Spec file {str(p)!r} not found.") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise SpecFileError(f"Spec file {str(p)!r} is not valid TOML: {exc}") from None
    job = data.get("job")
    if not isinstance(job, str):
        raise SpecFileError(f"Spec file {str(p)!r} needs a top-level `job = \"<job type>\"`.")
    params = data.get("params", {})
    if not isinstance(params, dict):
        raise SpecFileError(f"Spec file {str(p)!r}: `params` must be a table.")
    return job, params


def resolve(job: str, params: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """A job type name or a spec file path, plus overriding params → (job type, params).

    Params given here override those of the spec file, so a spec can be reused with one value changed.
    """
    if is_spec_path(job):
        name, spec_params = load_spec(job)
        return name, {**spec_params, **params}
    return job, dict(params)
