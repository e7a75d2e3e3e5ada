"""Where jobs run: a LocalCluster (default), an existing scheduler, or a Kubernetes Dask cluster."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Iterator, Sequence
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


class Starting:
    """A cluster connection being made on a background thread (:func:`starting`).

    ``workers`` is how many workers the cluster will have when this run starts it (None when it
    joins an existing one); :meth:`client` waits for the connection and returns its client (or
    raises what stopped it).
    """

    def __init__(self, spec: Any, *, workers: int | None, settings: Settings, preload: Sequence[str]):
        self.workers = _local_workers(settings, workers) if _is_local(spec, settings) else None
        self._client: Any = None
        self._error: BaseException | None = None
        self._ready, self._done = threading.Event(), threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(spec, workers, settings, preload),
                                        name="geoproc-cluster", daemon=True)
        self._thread.start()

    def _serve(self, spec: Any, workers: int | None, settings: Settings, preload: Sequence[str]) -> None:
        """The connection's whole life on this thread (the client is entered and left in one context)."""
        try:
            with connect(spec, workers=workers, settings=settings, preload=preload) as client:
                self._client = client
                self._ready.set()
                self._done.wait()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller by client()
            self._error = exc
        finally:
            self._ready.set()

    def client(self) -> Any:
        self._ready.wait()
        if self._client is None:
            raise self._error or ClusterError("the cluster could not be reached")
        return self._client

    def close(self) -> None:
        """Close what this run started (after it started, if it still was)."""
        self._done.set()
        self._thread.join()


@contextmanager
def starting(spec: Any = None, *, workers: int | None = None, settings: Settings | None = None,
             preload: Sequence[str] = ()) -> Iterator[Starting]:
    """Start connecting to ``spec`` (see :func:`connect`) on a background thread, so that the driver
    plans the job's first stage while a local cluster starts and its workers import ``preload``."""
    pending = Starting(spec, workers=workers, settings=settings or Settings(), preload=preload)
    try:
        yield pending
    finally:
        pending.close()


def _is_local(spec: Any, settings: Settings) -> bool:
    return (settings.cluster if spec is None else spec) == "local"


@contextmanager
def connect(spec: Any = None, *, workers: int | None = None, settings: Settings | None = None,
            preload: Sequence[str] = ()) -> Iterator[Any]:
    """Yield a ``distributed.Client`` for ``spec``.

    ``spec`` is ``"local"`` / ``None`` (start a LocalCluster of worker processes for this run),
    a scheduler address ``tcp://host:port``, ``"kubernetes"`` (needs the ``kubernetes`` extra), or an
    existing ``Client`` (used as is, not closed). The workers of a local cluster import the modules
    ``preload`` names as they start (a job's handlers: xarray, rioxarray and GDAL take a second or
    more to import), instead of in their first task.
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
                memory_limit=settings.memory_limit, silence_logs=logging.ERROR, preload=list(preload),
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
