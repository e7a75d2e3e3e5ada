"""Real services for the tests: Azurite, a private PostgreSQL cluster (+ pgstac), ``dask`` CLI processes.

Each starter either returns a running service or calls ``missing``, which skips the test, or fails it
when ``GEOPROC_REQUIRE_SERVICES=1`` (CI sets it) so that a broken machine cannot pass by skipping.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
PGBIN = Path("/usr/lib/postgresql/15/bin")
DASK = Path(sys.executable).with_name("dask")
REQUIRE = os.environ.get("GEOPROC_REQUIRE_SERVICES") == "1"


def missing(what: str) -> None:
    """Skip, or fail when services are required."""
    if REQUIRE:
        pytest.fail(f"required service unavailable: {what}")
    pytest.skip(f"service unavailable: {what}")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- Azurite ---------------------------------------------------------------------------------------


def start_azurite(location: Path, port: int = 0) -> tuple[subprocess.Popen, int]:
    """Start azurite-blob on loopback; return the process and its port."""
    exe = ROOT / "node_modules/.bin/azurite-blob"
    if not exe.exists():
        missing("azurite (run setup.sh: npm install azurite)")
    p = subprocess.Popen(
        [str(exe), "--blobHost", "127.0.0.1", "--blobPort", str(port), "--location", str(location),
         "--skipApiVersionCheck", "--loose", "--disableTelemetry", "--silent"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )
    deadline = time.time() + 30
    while time.time() < deadline:
        line = p.stdout.readline()
        m = re.search(r"listens on http://127\.0\.0\.1:(\d+)", line)
        if m:
            return p, int(m.group(1))
        if p.poll() is not None:
            break
    p.kill()
    missing("azurite did not start")


def azurite_connection_string(port: int) -> str:
    return (f"DefaultEndpointsProtocol=http;AccountName={AZ_ACCOUNT};AccountKey={AZ_KEY};"
            f"BlobEndpoint=http://127.0.0.1:{port}/{AZ_ACCOUNT};")


# --- PostgreSQL + pgstac ---------------------------------------------------------------------------


@contextmanager
def postgres_server() -> Iterator[int]:
    """A private PostgreSQL 15 cluster (initdb + pg_ctl, trust auth, loopback); yields its port."""
    if not (PGBIN / "initdb").exists():
        missing("PostgreSQL 15 (apt-get install postgresql-15)")
    d = Path(tempfile.mkdtemp(prefix="geoproc-pg-"))
    d.chmod(0o755)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    if as_pg:
        shutil.chown(d, "postgres", "postgres")
    port = free_port()
    subprocess.run(as_pg + [str(PGBIN / "initdb"), "-D", str(d / "data"), "-U", "postgres", "--auth=trust",
                            "-E", "UTF8", "--locale=C.UTF-8"], check=True, stdout=subprocess.DEVNULL)
    subprocess.run(as_pg + [str(PGBIN / "pg_ctl"), "-D", str(d / "data"), "-l", str(d / "log"), "-w",
                            "-o", f"-c listen_addresses=127.0.0.1 -p {port} -k {d} -c fsync=off "
                                  f"-c max_connections=200", "start"],
                   check=True, stdout=subprocess.DEVNULL)
    try:
        yield port
    finally:
        subprocess.run(as_pg + [str(PGBIN / "pg_ctl"), "-D", str(d / "data"), "-m", "immediate", "-w", "stop"],
                       stdout=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


def create_database(port: int, name: str) -> None:
    """(Re)create an empty database ``name`` in the cluster on ``port``."""
    import psycopg

    with psycopg.connect(f"postgresql://postgres@127.0.0.1:{port}/postgres", autocommit=True) as c:
        c.execute(f'DROP DATABASE IF EXISTS "{name}"')
        c.execute(f'CREATE DATABASE "{name}"')


def migrate_pgstac(dsn: str) -> None:
    subprocess.run([sys.executable, "-m", "pypgstac.pypgstac", "migrate", "--dsn", dsn], check=True,
                   stdout=subprocess.DEVNULL)


# --- dask command-line processes -------------------------------------------------------------------


@dataclass
class DaskProcesses:
    """A running scheduler and its workers; ``address`` is ``tcp://127.0.0.1:PORT``."""

    address: str
    scheduler: subprocess.Popen
    workers: list[subprocess.Popen] = field(default_factory=list)
    logs: Path | None = None

    def stop(self) -> None:
        stop_processes(self.workers + [self.scheduler])


def stop_processes(procs: list[subprocess.Popen]) -> None:
    """Terminate, then kill what is still running after 15 s."""
    for p in procs:
        if p.poll() is None:
            p.terminate()
    for p in procs:
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(5)


def _wait_for_workers(address: str, n: int, timeout: float = 60) -> None:
    from distributed import Client

    with Client(address, timeout="20s") as client:
        client.wait_for_workers(n, timeout=timeout)


def start_dask_processes(d: Path, n_workers: int = 2) -> DaskProcesses:
    """``dask scheduler`` and ``dask worker`` processes on 127.0.0.1, the workers without AZURE_* variables.

    That is how a cluster is started by hand or by Kubernetes pods: storage credentials must reach the
    workers with the tasks, never through their environment. Logs go to files in ``d``.
    """
    if not DASK.exists():
        missing(f"the dask command line ({DASK})")
    sched_file = d / "scheduler.json"
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("AZURE_")}
    sched = subprocess.Popen(
        [str(DASK), "scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
         "--scheduler-file", str(sched_file)],
        env=base_env, stdout=open(d / "scheduler.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
    )
    procs = [sched]
    deadline = time.time() + 60
    while not sched_file.exists() and time.time() < deadline and sched.poll() is None:
        time.sleep(0.2)
    if not sched_file.exists():
        stop_processes(procs)
        missing(f"dask scheduler did not start: {(d / 'scheduler.log').read_text()[-2000:]}")
    address = json.loads(sched_file.read_text())["address"]
    workers = []
    for i in range(n_workers):
        w = subprocess.Popen(
            [str(DASK), "worker", address, "--host", "127.0.0.1", "--nworkers", "1", "--nthreads", "2",
             "--memory-limit", "2GiB", "--no-dashboard", "--name", f"deploy-worker-{i}",
             "--local-directory", str(d / f"w{i}")],
            env=base_env, stdout=open(d / f"worker{i}.log", "w"), stderr=subprocess.STDOUT,  # noqa: SIM115
        )
        workers.append(w)
    procs += workers
    try:
        _wait_for_workers(address, n_workers)
    except Exception as exc:  # noqa: BLE001
        stop_processes(procs)
        logs = "\n".join((d / f"worker{i}.log").read_text()[-1500:] for i in range(n_workers))
        missing(f"dask workers did not join the scheduler: {exc}\n{logs}")
    return DaskProcesses(address=address, scheduler=sched, workers=workers, logs=d)


@contextmanager
def local_cluster_without_azure(**kw) -> Iterator[str]:
    """A LocalCluster whose worker processes start without AZURE_* variables; yields its address."""
    from dask.distributed import LocalCluster

    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("AZURE_")}
    try:
        cluster = LocalCluster(**kw)
    finally:
        os.environ.update(saved)
    try:
        yield cluster.scheduler_address
    finally:
        cluster.close()
