"""Where jobs run: a LocalCluster (default), an existing scheduler, or a Kubernetes Dask cluster."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from ..errors import ClusterError
from ..settings import Settings

log = logging.getLogger(__name__)


def _local_workers(settings: Settings, workers: int | None) -> int:
    return workers or settings.workers or max(1, min(os.cpu_count() or 1, 8))


def _serve(cluster: Any) -> Iterator[Any]:
    """A client of a cluster this run started; both are closed when the run ends."""
    from distributed import Client

    try:
        with Client(cluster) as client:
            yield client
            # Workers leave before the scheduler goes: closing the scheduler under them races their
            # heartbeat, which then logs a CommClosedError traceback on the run's stderr.
            with suppress(Exception):
                client.retire_workers(close_workers=True)
    finally:
        cluster.close()


@contextmanager
def connect(spec: Any = None, *, workers: int | None = None, settings: Settings | None = None) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``spec``.

    ``spec`` is ``"local"`` / ``None`` (start a LocalCluster of worker processes for this run),
    a scheduler address ``tcp://host:port``, ``"kubernetes"`` (needs the ``kubernetes`` extra), or an
    existing ``Client`` (used as is, not closed).
    """
    from distributed import Client, LocalCluster

    settings = settings or Settings()
    spec = settings.cluster if spec is None else spec
    if isinstance(spec, Client):
        yield spec
        return
    if spec == "local":
        try:
            cluster = LocalCluster(
                n_workers=_local_workers(settings, workers), threads_per_worker=settings.threads_per_worker,
                processes=True, host="127.0.0.1", dashboard_address=settings.dashboard_address,
                memory_limit=settings.memory_limit, silence_logs=logging.ERROR,
            )
        except Exception as exc:  # noqa: BLE001
            raise ClusterError(f"Could not start a local Dask cluster: {exc}") from exc
        log.info("Started a local Dask cluster: %s", cluster.dashboard_link)
        yield from _serve(cluster)
        return
    if spec == "kubernetes":
        try:
            from dask_kubernetes.operator import KubeCluster
        except ImportError:
            raise ClusterError("--cluster kubernetes needs the kubernetes extra: pip install 'geoproc[kubernetes]'") from None
        # the cluster spec in cluster/k8s names the geoproc image; GEOPROC_K8S_SPEC points elsewhere
        spec_file = settings.k8s_spec
        if not os.path.exists(spec_file):
            raise ClusterError(f"--cluster kubernetes needs a DaskCluster spec: {spec_file} not found; "
                               "set GEOPROC_K8S_SPEC to the YAML file (see cluster/k8s/daskcluster.yaml).")
        cluster = KubeCluster(custom_cluster_spec=spec_file)
        log.info("Started a Kubernetes Dask cluster from %s", spec_file)
        if workers:
            cluster.scale(workers)
        yield from _serve(cluster)
        return
    try:
        client = Client(spec, timeout="15s")
    except (OSError, TimeoutError) as exc:
        raise ClusterError(f"Cannot reach the Dask scheduler at {spec}: {exc}; is it running?") from None
    log.info("Connected to the Dask scheduler at %s", spec)
    try:
        yield client
    finally:
        client.close()
