"""Sharded listing of a container, a prefix, or a directory tree, for inventories of millions of blobs.

A *source* is a URL that names a container or a directory: ``az://container[/dir]``, a local
directory, ``memory://bucket``. Blob names are relative to it. The walk itself is storage's
(:mod:`geoproc.storage.walk`: listers that stream one page at a time, and the *units* they list);
this module splits a source into units to list in parallel:

* ``("tree", p)``  every blob whose name starts with ``p``;
* ``("level", p)`` blobs whose name starts with ``p`` and has no ``/`` after it.

:func:`plan_units` finds units by delimiter listings, breadth first, until there are enough to keep a
cluster busy; the units of one plan cover every blob below the prefix exactly once.
:func:`group_units` then deals them out to the shards.
"""

from __future__ import annotations

import logging
import re
from collections import deque

from ..storage.urls import protocol_of
from ..storage.walk import PAGE, Blob, Lister, Unit, dirpart, open_lister, source_not_found

log = logging.getLogger(__name__)

# The walk's names, for the inventory job and its tests: what a shard lists and how.
__all__ = ["Blob", "Lister", "Unit", "check_source", "dirpart", "group_units", "open_lister", "plan_units",
           "source_not_found"]

_CONTAINER = re.compile(r"^(?=.{3,63}$)[a-z0-9]+(-[a-z0-9]+)*$")


def check_source(url: str) -> str:
    """Validate a source URL's shape; returns it without a trailing slash.

    Raises:
        ValueError: an ``az://`` URL without a valid container name, or a URL with a query string.
    """
    url = url.rstrip("/") if url not in ("/", "") else url
    if "?" in url and protocol_of(url) != "file":
        raise ValueError("URLs must not carry query strings (a SAS token is a secret and would be stored in the "
                         "ledger); set AZURE_STORAGE_SAS_TOKEN or a connection string instead")
    if protocol_of(url) == "az":
        container = url.split("://", 1)[1].split("/", 1)[0].split("@", 1)[0]  # abfss://c@account.dfs...
        if not _CONTAINER.match(container):
            raise ValueError(f"{container!r} is not a valid Azure container name (3-63 characters: "
                             "lowercase letters, digits and single hyphens), e.g. az://my-container/prefix")
    return url


def plan_units(lister: Lister, prefix: str, target: int, *, max_probe: int = PAGE,
               max_depth: int = 8) -> list[Unit]:
    """Split the blobs below ``prefix`` into listing units, breadth first.

    A prefix is expanded (one delimiter listing) into its level unit and its child prefixes until
    there are ``target`` units, the hierarchy ends, or a level holds more than ``max_probe`` entries
    (then it stays one tree unit: expanding it would cost as much as listing it). Result is sorted,
    so the same container gives the same plan.
    """
    units: list[Unit] = []
    queue: deque[tuple[str, int]] = deque([(prefix, 0)])
    while queue and len(units) + len(queue) < target:
        p, depth = queue.popleft()
        if depth >= max_depth:
            units.append(("tree", p))
            continue
        level = lister.walk_level(p, max_probe)
        if level.truncated:
            units.append(("tree", p))
            continue
        if level.files:
            units.append(("level", p))
        queue.extend((c, depth + 1) for c in level.prefixes)
    units.extend(("tree", p) for p, _ in queue)
    return sorted(units, key=lambda u: (u[1], u[0]))


def group_units(units: list[Unit], shards: int) -> list[list[Unit]]:
    """Contiguous groups of units, at most ``shards`` of them, as even in count as possible."""
    if not units:
        return []
    n = min(shards, len(units))
    size, extra = divmod(len(units), n)
    out, start = [], 0
    for i in range(n):
        end = start + size + (1 if i < extra else 0)
        out.append(units[start:end])
        start = end
    return out
