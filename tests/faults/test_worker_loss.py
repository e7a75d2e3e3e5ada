"""A Dask worker killed mid-task: the job still completes, the cut-off batch re-runs, every task is recorded once."""

import re
import threading
import time

from distributed import Client, LocalCluster
from kit.faults import kill_busy_worker

import geoproc
from geoproc.ledger import open_ledger


def test_worker_killed_mid_job_completes(tmp_path):
    url = f"sqlite:///{tmp_path}/ledger.db"
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address=None) as cluster, Client(cluster) as client:
        killed = {}

        def kill_one():
            led = open_ledger(url)
            deadline = time.time() + 60
            while time.time() < deadline:  # once work is flowing, kill a worker while it runs a batch
                job = led.list_jobs(limit=1)
                done = led.counts(job[0].job_id).get(0, {}).get("completed", 0) if job else 0
                if done >= 20:
                    for addr in client.scheduler_info(n_workers=-1)["workers"]:
                        kill = kill_busy_worker(client, addr, tmp_path / "kill.json")
                        if kill is not None:
                            killed.update(kill=kill, done_before=done, job_id=job[0].job_id)
                            return
                time.sleep(0.01)

        t = threading.Thread(target=kill_one)
        t.start()
        res = geoproc.run("hello_world", n=300, delay=0.02, cluster=client, ledger=url)
        t.join()
    assert killed, "no worker was killed while running a batch"
    kill = killed["kill"]
    assert res.status == "completed", res
    assert res.stages[0].counts == {"completed": 300} and res.stages[1].counts == {"completed": 300}
    assert res.executed == 600  # each task's outcome recorded once: the cut-off batch left no record

    # the kill landed mid-job: greetings were done before it, and the worker was running this job's batch
    assert killed["job_id"] == res.job_id and killed["done_before"] >= 20
    batches = [m for k in kill.keys
               if (m := re.fullmatch(rf"hello_world\.(greet|reply)-{res.job_id[:12]}-(\w+)-\w+", k))]
    assert batches, f"the killed worker ran no batch of this job: {kill.keys}"

    led = open_ledger(url)
    tasks = led.list_tasks(res.job_id, limit=None)
    by_id = {t["task_id"]: t for t in tasks}
    assert len(by_id) == 600 and all(t["status"] == "completed" for t in tasks)
    assert len({t["worker"] for t in tasks}) >= 2
    assert sum(t["finished_at"] < kill.at for t in tasks) >= 20  # the ledger agrees: work done before the kill
    for m in batches:  # the cut-off batch ran again after the kill, elsewhere, to completion
        first = by_id[f"{res.job_id[:16]}-{m[1]}-{m[2]}"]
        assert first["status"] == "completed" and first["started_at"] > kill.at, first
        assert first["worker"] != kill.address, first
    greetings = {t["task_id"]: t["result"]["greeting"] for t in tasks if t["stage_name"] == "greet"}
    assert all(t["result"]["reply"] == f"Reply to '{greetings[t['parent_id']]}'"
               for t in tasks if t["stage_name"] == "reply")
