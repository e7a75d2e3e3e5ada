"""A job's stages run in this process, handler by handler: no Dask, no ledger, exceptions propagate.

``run_inline`` plans each stage the way the engine's driver does (a lineage stage gets the previous
stage's task keys, any other stage a ``StageOutput`` of the previous stage's aggregate and results in
plan order), hands a lineage task its parent's result as ``ctx.predecessor``, aggregates each stage and,
when every stage ran, applies the job's ``finalize``. A handler that raises raises here: the tests that
use this runner want the error itself, not the engine's outcome record.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from geoproc import get_job
from geoproc.ids import task_id
from geoproc.jobs import ALL_HANDLERS
from geoproc.model import StageOutput, TaskContext, TaskSpec


@dataclass
class InlineRun:
    """What an inline run produced, stage by stage (stage name -> task results in plan order)."""

    job_id: str
    params: Any
    specs: dict[str, list[TaskSpec]] = field(default_factory=dict)
    results: dict[str, list[Any]] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    result: Any = None  # the job's result; None when the run stopped before its last stage

    def one(self, stage: str) -> Any:
        """The result of a stage that planned exactly one task."""
        (only,) = self.results[stage]
        return only


def run_inline(job: str, raw: Mapping[str, Any], *, storage_options: dict | None = None,
               until: str | None = None, given: Mapping[str, list[Any]] | None = None) -> InlineRun:
    """Run job ``job`` with params ``raw`` in this process, up to and including stage ``until``.

    ``given`` maps a stage name to stand-in task results: that stage is planned but its handler is not
    called (a test that feeds the validate stage a listing of its own, say).
    """
    jt = get_job(job)
    params = jt.validate(raw)
    run = InlineRun(job_id=jt.job_id(params), params=params)
    so = storage_options or {}
    previous: StageOutput | None = None
    prev_results: dict[str, Any] = {}
    prev_keys: list[str] = []
    values: list[Any] = []
    stage_names = [st.name for st in jt.stages]
    if until is not None and until not in stage_names:
        raise KeyError(f"job {job!r} has no stage {until!r}; its stages: {stage_names}")
    for stage in jt.stages:
        specs = list(stage.plan(params, prev_keys if stage.lineage else previous))
        if given is not None and stage.name in given:
            results = list(given[stage.name])
        else:
            handler = ALL_HANDLERS[stage.handler]
            results = []
            for spec in specs:
                ctx = TaskContext(job_id=run.job_id, job_type=jt.name, stage=stage.name,
                                  task_id=task_id(run.job_id, stage.name, spec.key), key=spec.key, attempt=1,
                                  predecessor=prev_results.get(spec.parent) if spec.parent is not None else None,
                                  storage_options=so)
                results.append(handler(spec.params, ctx))
        value = stage.aggregate(params, iter(results)) if stage.aggregate else None
        run.specs[stage.name], run.results[stage.name], run.values[stage.name] = specs, results, value
        values.append(value)
        if stage.name == until:
            return run
        previous = StageOutput(value, lambda r=results: iter(r))
        prev_results = {spec.key: r for spec, r in zip(specs, results, strict=False)}
        prev_keys = [spec.key for spec in specs]
    run.result = jt.finalize(params, values) if jt.finalize else values[-1]
    return run


def convert_one(src: str | Path, output: str | Path, storage_options: dict | None = None,
                **params: Any) -> tuple[dict, dict]:
    """The cog job on one input, up to its ``cog`` stage: ``(validation result, cog result)``."""
    run = run_inline("cog", {"input": str(src), "output": str(output), **params},
                     storage_options=storage_options, until="cog")
    return run.one("validate"), run.one("cog")


def large_raster(**raw: Any) -> dict:
    """The whole large_raster job: the plan task's result, the tile results, the finalize result, the job's."""
    run = run_inline("large_raster", raw)
    return {"plan": run.one("plan"), "tiles": run.results["tiles"], "final": run.one("finalize"),
            "result": run.result}
