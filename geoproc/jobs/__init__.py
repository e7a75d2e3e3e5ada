"""The registries: every job type and every task handler geoproc knows.

If it is not in these dicts it does not exist. The CLI builds its choices from ``ALL_JOBS``.
"""

from __future__ import annotations

from collections.abc import Callable

from ..errors import UnknownJob
from ..model import JobType
from . import cog, hello_world, inventory, stac_catalog, tiled

ALL_JOBS: dict[str, JobType] = {
    "hello_world": hello_world.HelloWorld,
    "cog": cog.Cog,
    "large_raster": tiled.LargeRaster,
    "stac_catalog": stac_catalog.StacCatalog,
    "list_container": inventory.ListContainer,
    "summarize_container": inventory.SummarizeContainer,
}

ALL_HANDLERS: dict[str, Callable] = {
    **hello_world.HANDLERS,
    **inventory.HANDLERS,
    **stac_catalog.HANDLERS,
    **cog.HANDLERS,
    **tiled.HANDLERS,
}


assert all(name == jt.name for name, jt in ALL_JOBS.items())


def get_job(name: str) -> JobType:
    """Look a job type up by name; unknown names list what is available."""
    try:
        return ALL_JOBS[name]
    except KeyError:
        raise UnknownJob(name, sorted(ALL_JOBS)) from None
