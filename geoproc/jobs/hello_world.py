"""hello_world: the engine's own test job — n greetings, then n replies that quote them (lineage)."""

from __future__ import annotations

import hashlib
import random
import time
from collections.abc import Iterator

from pydantic import Field

from ..errors import NO_PREDECESSOR_RESULT, TaskError, TransientError
from ..model import JSON, PARTIAL_OK, JobParams, JobType, RetryPolicy, Stage, TaskContext, TaskSpec


class Params(JobParams):
    n: int = Field(3, ge=1, le=100_000, description="number of greetings (and replies)")
    message: str = Field("Hello World", min_length=1, max_length=200, description="the greeting text")
    failure_rate: float = Field(
        0.0, ge=0.0, le=1.0, description="chance that a greeting attempt raises a transient error"
    )
    delay: float = Field(0.0, ge=0.0, le=60.0, description="seconds each greeting takes (to watch progress)")


def plan_greetings(params: Params, previous: None) -> Iterator[TaskSpec]:
    for i in range(params.n):
        yield TaskSpec(key=str(i), params={"i": i, "message": params.message, "failure_rate": params.failure_rate,
                                              "delay": params.delay})


def plan_replies(params: Params, greeting_keys: list[str]) -> Iterator[TaskSpec]:
    for key in greeting_keys:
        yield TaskSpec(key=key, params={"i": int(key)}, parent=key)


def greet(params: JSON, ctx: TaskContext) -> JSON:
    """Say hello; with ``failure_rate`` > 0 fail transiently at random (seeded by task and attempt)."""
    if params.get("delay"):
        time.sleep(params["delay"])
    rate = params.get("failure_rate", 0.0)
    if rate:
        seed = hashlib.sha256(f"{ctx.task_id}:{ctx.attempt}".encode()).digest()
        if random.Random(seed).random() < rate:
            raise TransientError(f"simulated transient failure (attempt {ctx.attempt})")
    return {"i": params["i"], "greeting": f"{params['message']} from task {params['i']}"}


def reply(params: JSON, ctx: TaskContext) -> JSON:
    """Answer one greeting: lineage hands this task the result of its own predecessor."""
    greeting = (ctx.predecessor or {}).get("greeting")
    if greeting is None:
        raise TaskError(f"reply {params['i']} received no predecessor result", code=NO_PREDECESSOR_RESULT)
    return {"i": params["i"], "reply": f"Reply to '{greeting}'"}


def count(params: Params, results: Iterator[JSON]) -> JSON:
    n, sample = 0, []
    for r in results:
        n += 1
        if len(sample) < 3:
            sample.append(r)
    return {"count": n, "sample": sample}


def job_result(params: Params, values: list[JSON | None]) -> JSON:
    greetings, replies = values
    return {
        "greetings": (greetings or {}).get("count", 0),
        "replies": (replies or {}).get("count", 0),
        "sample": [r["reply"] for r in (replies or {}).get("sample", [])],
    }


HelloWorld = JobType(
    name="hello_world",
    description="Test job: n greetings, then n replies that each quote their own greeting.",
    params=Params,
    stages=(
        Stage(
            "greet",
            handler="hello_world.greet",
            plan=plan_greetings,
            aggregate=count,
            retry=RetryPolicy(attempts=8, base_delay=0.01, max_delay=0.5),
            description="n greetings",
        ),
        Stage(
            "reply",
            handler="hello_world.reply",
            plan=plan_replies,
            aggregate=count,
            lineage=True,
            description="one reply per greeting, fed its predecessor's result",
        ),
    ),
    hash_exclude=frozenset({"failure_rate", "delay"}),
    failure_policy=PARTIAL_OK,
    finalize=job_result,
)

HANDLERS = {"hello_world.greet": greet, "hello_world.reply": reply}
