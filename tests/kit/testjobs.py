"""Job types used only by the engine tests: a handler that rejects some inputs as invalid, and a fan-out.

The module registers itself on import and imports nothing from the test kit: the ``engine_client``
fixture uploads this one file to the Dask workers (as the module ``testjobs``), and importing it there
fills their handler registry too.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from geoproc.errors import InvalidInput
from geoproc.jobs import ALL_HANDLERS, ALL_JOBS
from geoproc.model import ALL_OR_NOTHING, PARTIAL_OK, JobType, Stage, TaskSpec

CALLS_DIR_ENV = "GEOPROC_TEST_CALLS"


class Params(BaseModel):
    model_config = ConfigDict(extra="forbid")
    n: int = Field(10, ge=1, le=10_000)
    bad: list[int] = Field(default_factory=list)
    inputs: str | None = None  # a directory of <i>.txt files; one that reads "bad" is invalid input


def plan(params, previous):
    return [TaskSpec(key=str(i), params={"i": i, "bad": i in params.bad, "inputs": params.inputs})
            for i in range(params.n)]


def check(params, ctx):
    i = params["i"]
    text = ""
    if params.get("inputs"):
        with open(f"{params['inputs']}/{i}.txt") as f:
            text = f.read().strip()
    if params["bad"] or text == "bad":
        raise InvalidInput(f"item {i} is corrupt", code="TEST_CORRUPT",
                           remediation="Replace item with a good one.")
    return {"i": i, "bbox_wgs84": [i, i, i + 0.5, i + 0.5], "metrics": {"bytes_read": 100, "bytes_written": 10}}


def total(params, results):
    return {"count": sum(1 for _ in results)}


def _job(name, policy):
    return JobType(name=name, description="engine test job", params=Params,
                   stages=(Stage("check", handler="testjobs.check", plan=plan, aggregate=total),),
                   failure_policy=policy)


class FanParams(BaseModel):
    model_config = ConfigDict(extra="forbid")
    items: int = Field(5, ge=0, le=1000)
    directory: str | None = None  # list this directory instead of inventing `items` names


def plan_list(params, previous):
    return [TaskSpec(key="all", params={"items": params.items, "directory": params.directory})]


def list_items(params, ctx):
    import os

    if params.get("directory"):
        return {"names": sorted(os.listdir(params["directory"]))}
    return {"names": [f"item{i:03d}" for i in range(params["items"])]}


def collect(params, results):
    return {"names": [n for r in results for n in r["names"]]}


def plan_each(params, previous):
    return [TaskSpec(key=name, params={"name": name}) for name in previous.value["names"]]


def measure(params, ctx):
    return {"name": params["name"], "length": len(params["name"])}


def total_length(params, results):
    return {"files": 0, "length": 0} | _sum(results)


def _sum(results):
    n = total = 0
    for r in results:
        n += 1
        total += r["length"]
    return {"files": n, "length": total}


ALL_JOBS["test_fanout"] = JobType(
    name="test_fanout", description="engine test job: list, then one task per listed item", params=FanParams,
    stages=(Stage("list", handler="testjobs.list", plan=plan_list, aggregate=collect, volatile=True),
            Stage("each", handler="testjobs.measure", plan=plan_each, aggregate=total_length)))
ALL_HANDLERS["testjobs.list"] = list_items
ALL_HANDLERS["testjobs.measure"] = measure
ALL_JOBS["test_partial"] = _job("test_partial", PARTIAL_OK)
ALL_JOBS["test_strict"] = _job("test_strict", ALL_OR_NOTHING)
ALL_HANDLERS["testjobs.check"] = check
