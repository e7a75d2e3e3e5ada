"""The registries: every job type and every task handler geoproc knows.

If it is not in these dicts it does not exist. The CLI builds its choices from ``ALL_JOBS``: each
:class:`~geoproc.model.JobType` gives its ``name``, its one-line ``summary`` and its ``params`` model
(whose fields carry their defaults, bounds and descriptions; ``describe_params()`` lists them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..errors import GeoprocError, UnknownJob

if TYPE_CHECKING:
    from ..model import JobType

# The registries are built on first use: a Dask worker imports one job module for its handlers, and
# should not import every other job (and their libraries) with it.
_REGISTRY: tuple[dict[str, JobType], dict[str, Callable]] | None = None


def _registry() -> tuple[dict[str, JobType], dict[str, Callable]]:
    global _REGISTRY
    if _REGISTRY is None:
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

        jobs: dict[str, JobType] = {
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
        handlers: dict[str, Callable] = {
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
        _check_registry(jobs, handlers)
        _REGISTRY = (jobs, handlers)
    return _REGISTRY


def __getattr__(name: str) -> Any:
    if name == "ALL_JOBS":
        return _registry()[0]
    if name == "ALL_HANDLERS":
        return _registry()[1]
    raise AttributeError(f"module 'geoproc.jobs' has no attribute {name!r}")


def _check_registry(jobs: dict[str, JobType], handlers: dict[str, Callable]) -> None:
    """Every job is registered under its own name and every stage's handler exists."""
    for name, jt in jobs.items():
        if name != jt.name:
            raise GeoprocError(f"job {jt.name!r} is registered as {name!r}")
        for stage in jt.stages:
            if stage.handler not in handlers:
                raise GeoprocError(f"job {name!r}, stage {stage.name!r}: no handler {stage.handler!r}")


def get_job(name: str) -> JobType:
    """Look a job type up by name; unknown names list what is available."""
    jobs = _registry()[0]
    try:
        return jobs[name]
    except KeyError:
        raise UnknownJob(name, sorted(jobs)) from None
