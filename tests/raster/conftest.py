"""Fixtures for the raster and cog job tests: a ledger per test, Azurite containers, a run helper."""

from __future__ import annotations

import uuid

import pytest


@pytest.fixture
def ledger_url(tmp_path):
    return f"sqlite:///{tmp_path}/ledger.db"


@pytest.fixture
def az_container(azurite):
    """A fresh, empty Azurite container; yields its name."""
    from geoproc.storage import open_fs

    name = f"cog-{uuid.uuid4().hex[:12]}"
    fs, _ = open_fs(f"az://{name}", {"az": {"connection_string": azurite}})
    fs.mkdir(name)
    return name


@pytest.fixture
def az_options(azurite):
    return {"az": {"connection_string": azurite}}


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
