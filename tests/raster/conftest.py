"""Fixtures for the raster tests: the cog job's handlers run in-process for one input."""

from __future__ import annotations

import pytest


@pytest.fixture
def convert_one(tmp_path):
    """Run the cog job's three handlers in this process for one input; returns (validation, cog result)."""
    from geoproc.jobs import cog as C
    from geoproc.model import StageOutput, TaskContext

    def run(src, output=None, storage_options=None, **params):
        p = C.Params(input=str(src), output=str(output or tmp_path / "out"), **params)
        so = storage_options or {}

        def ctx(stage, key, pred=None):
            return TaskContext("0" * 64, "cog", stage, f"t-{stage}", key, 1, predecessor=pred, storage_options=so)

        listing = C.list_inputs(next(C.plan_list(p, None)).params, ctx("list", "list"))
        (spec,) = list(C.plan_validate(p, StageOutput(None, lambda: iter([listing]))))
        v = C.validate(spec.params, ctx("validate", spec.key))
        (cspec,) = list(C.plan_cog(p, [spec.key]))
        return v, C.convert(cspec.params, ctx("cog", spec.key, v))

    return run
