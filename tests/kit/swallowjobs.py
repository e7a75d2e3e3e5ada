"""A job type only the engine's logging test uses: a handler that logs exceptions and carries on.

Each task catches two exceptions and reports them the way domain code does
(``log.warning(..., exc_info=True)`` on a ``geoproc.*`` logger). It also logs what must *not* count as
a swallowed exception: a warning without ``exc_info``, and an exception on a logger outside geoproc.
Registers itself on import, like ``testjobs``.
"""

from __future__ import annotations

import logging

from pydantic import BaseModel, ConfigDict, Field

from geoproc.jobs import ALL_HANDLERS, ALL_JOBS
from geoproc.model import PARTIAL_OK, JobType, Stage, TaskSpec

log = logging.getLogger("geoproc.testjobs.swallow")  # a geoproc logger, as domain modules' __name__ is
other = logging.getLogger("kit.swallowjobs")  # not geoproc's: never counted

SWALLOWED_PER_TASK = 2


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(3, ge=1, le=100)


def plan(params, previous):
    return [TaskSpec(key=str(i), params={"i": i}) for i in range(params.n)]


def fall_back(params, ctx):
    i = params["i"]
    for attempt in range(SWALLOWED_PER_TASK):
        try:
            raise OSError(f"fast path {attempt} failed for item {i}\nsecond line is not reported")
        except OSError:
            log.warning("item %d: fast path failed; using the slow one", i, exc_info=True)
    log.warning("item %d: a plain warning, no exception", i)
    try:
        raise KeyError(i)
    except KeyError:
        other.warning("outside geoproc", exc_info=True)
    return {"i": i}


ALL_JOBS["test_swallow"] = JobType(
    name="test_swallow", description="engine test job: handlers that log exceptions and carry on",
    params=Params, stages=(Stage("fallback", handler="testjobs.fall_back", plan=plan),),
    failure_policy=PARTIAL_OK)
ALL_HANDLERS["testjobs.fall_back"] = fall_back
