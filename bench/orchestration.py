"""Orchestration overhead: geoproc vs bare per-task Dask on the same 2-worker LocalCluster.

Runs hello_world with n greetings and n replies (2n tasks) through geoproc — batched Dask tasks, every
task recorded in a SQLite ledger — and the same two stages as bare ``client.map`` calls (one Dask task
per greeting and per reply, replies depending on their greeting), side by side in one run. Then
re-submits the finished job, which must come back from the ledger without computing anything.

    .venv/bin/python bench/orchestration.py [--n 10000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from distributed import Client, LocalCluster

import geoproc
from geoproc.jobs.hello_world import greet, reply
from geoproc.model import TaskContext


def bare_greet(i: int, message: str) -> dict:
    ctx = TaskContext(job_id="bare", job_type="hello_world", stage="greet", task_id=f"g{i}", key=str(i), attempt=1)
    return greet({"i": i, "message": message}, ctx)


def bare_reply(greeting: dict) -> dict:
    ctx = TaskContext(job_id="bare", job_type="hello_world", stage="reply", task_id=f"r{greeting['i']}",
                      key=str(greeting["i"]), attempt=1, predecessor=greeting)
    return reply({"i": greeting["i"]}, ctx)


def run_bare(client: Client, n: int, message: str) -> float:
    t0 = time.perf_counter()
    greetings = client.map(bare_greet, range(n), message=message, pure=False)
    replies = client.map(bare_reply, greetings, pure=False)
    results = client.gather(replies)
    dt = time.perf_counter() - t0
    assert len(results) == n and results[-1]["reply"].endswith(f"task {n - 1}'")
    del greetings, replies
    return dt


def run_geoproc(client: Client, n: int, message: str, ledger: str) -> tuple[float, float]:
    t0 = time.perf_counter()
    res = geoproc.run("hello_world", n=n, message=message, cluster=client, ledger=ledger)
    dt = time.perf_counter() - t0
    assert res.status == "completed" and res.executed == 2 * n, res
    t1 = time.perf_counter()
    again = geoproc.run("hello_world", n=n, message=message, cluster=client, ledger=ledger)
    resubmit = time.perf_counter() - t1
    assert again.cached and again.executed == 0
    return dt, resubmit


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10_000, help="greetings (tasks = 2n)")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    tasks = 2 * args.n
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        bare, gp, resub = [], [], []
        with tempfile.TemporaryDirectory() as tmp:
            for r in range(args.repeat):
                message = f"Hello round {r}"  # a new job id each round: nothing cached between rounds
                gp_t, rs = run_geoproc(client, args.n, message, f"sqlite:///{tmp}/ledger.db")
                gp.append(gp_t)
                resub.append(rs)
                bare.append(run_bare(client, args.n, message))
                print(f"round {r + 1}: geoproc {gp_t:6.2f}s   bare client.map {bare[-1]:6.2f}s   "
                      f"resubmit {rs * 1000:6.1f}ms", flush=True)
    b, g, s = statistics.median(bare), statistics.median(gp), statistics.median(resub)
    print()
    print(f"hello_world n={args.n} ({tasks} tasks), 2-worker LocalCluster, SQLite ledger, median of {args.repeat}")
    print(f"  bare per-task client.map : {b:7.2f} s  ({tasks / b:8.0f} tasks/s)")
    print(f"  geoproc (batched+ledger) : {g:7.2f} s  ({tasks / g:8.0f} recorded tasks/s)")
    print(f"  ratio bare/geoproc       : {b / g:7.1f}x   (target >= 5x)")
    print(f"  re-submit finished job   : {s * 1000:7.1f} ms (target < 1000 ms)")


if __name__ == "__main__":
    main()
