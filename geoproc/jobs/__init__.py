"""The registries: every job type and every task handler geoproc knows.

If it is not in these dicts it does not exist. The CLI builds its choices from ``ALL_JOBS``: each
:class:`~geoproc.model.JobType` gives its ``name``, its one-line ``summary`` and its ``params`` model
(whose fields carry their defaults, bounds and descriptions; ``describe_params()`` lists them).
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import GeoprocError, UnknownJob
from ..model import JobType
from . import (
    cog,
    hello_world,
    inventory,
    large_raster,
    mosaic,
    process,
    stac_catalog,
    stack,
    write,
    zarr_ingest,
    zonal_stats,
)

ALL_JOBS: dict[str, JobType] = {
    "hello_world": hello_world.HelloWorld,
    "cog": cog.Cog,
    "large_raster": large_raster.LargeRaster,
    "stac_catalog": stac_catalog.StacCatalog,
    "list_container": inventory.ListContainer,
    "summarize_container": inventory.SummarizeContainer,
    "write": write.Write,
    "process": process.Process,
    "stack": stack.Stack,
    "mosaic": mosaic.Mosaic,
    "zonal_stats": zonal_stats.ZonalStats,
    "zarr_ingest": zarr_ingest.ZarrIngest,
}

ALL_HANDLERS: dict[str, Callable] = {
    **hello_world.HANDLERS,
    **inventory.HANDLERS,
    **stac_catalog.HANDLERS,
    **cog.HANDLERS,
    **large_raster.HANDLERS,
    **write.HANDLERS,
    **process.HANDLERS,
    **stack.HANDLERS,
    **mosaic.HANDLERS,
    **zonal_stats.HANDLERS,
    **zarr_ingest.HANDLERS,
}


def _check_registry() -> None:
    """Every job is registered under its own name and every stage's handler exists."""
    for name, jt in ALL_JOBS.items():
        if name != jt.name:
            raise GeoprocError(f"job {jt.name!r} is registered as {name!r}")
        for stage in jt.stages:
            if stage.handler not in ALL_HANDLERS:
                raise GeoprocError(f"job {name!r}, stage {stage.name!r}: no handler {stage.handler!r}")


_check_registry()


def get_job(name: str) -> JobType:
    """Look a job type up by name; unknown names list what is available."""
    try:
        return ALL_JOBS[name]
    except KeyError:
        raise UnknownJob(name, sorted(ALL_JOBS)) from None
