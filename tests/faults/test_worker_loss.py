"""A Dask worker killed mid-task: the job still completes, and every task is recorded once."""

import os
import signal
import threading
import time

from distributed import Client, LocalCluster

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
            while time.time() < deadline:  # wait until work is flowing, then kill a worker mid-batch
                job = led.list_jobs(limit=1)
                if job and led.counts(job[0].job_id).get(0, {}).get("completed", 0) >= 20:
                    break
                time.sleep(0.05)
            addr, pid = next(iter(client.run(os.getpid).items()))
            os.kill(pid, signal.SIGKILL)
            killed["addr"] = addr

        t = threading.Thread(target=kill_one)
        t.start()
        res = geoproc.run("hello_world", n=300, delay=0.02, cluster=client, ledger=url)
        t.join()
    assert killed, "no worker was killed"
    assert res.status == "completed", res
    assert res.stages[0].counts == {"completed": 300} and res.stages[1].counts == {"completed": 300}
    led = open_ledger(url)
    tasks = led.list_tasks(res.job_id, limit=None)
    workers = {t["worker"] for t in tasks}
    assert len(workers) >= 2  # the batch of the killed worker was re-run elsewhere (or by its restart)
    greetings = {t["task_id"]: t["result"]["greeting"] for t in tasks if t["stage_name"] == "greet"}
    assert all(t["result"]["reply"] == f"Reply to '{greetings[t['parent_id']]}'"
               for t in tasks if t["stage_name"] == "reply")
