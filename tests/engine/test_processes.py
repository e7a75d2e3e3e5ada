"""Driver processes killed, cancelled, or racing each other — with real processes."""

import json
import os
import signal

from kit.drivers import spawn
from kit.polling import wait_for

import geoproc
from geoproc import get_job
from geoproc.ledger import open_ledger

HW = get_job("hello_world")


def _job_id(**params):
    return HW.job_id(HW.validate(params))


def _completed(led, job_id):
    return led.counts(job_id).get(0, {}).get("completed", 0)


def test_sigkill_driver_then_rerun_resumes(sqlite_url):
    """Kill the driver (and its own local cluster) mid-job; the next run re-runs only unfinished tasks."""
    args = ["run", "hello_world", "--set", "n=400", "--set", "delay=0.02", "--workers", "2", "--ledger", sqlite_url]
    jid = _job_id(n=400)
    p = spawn(*args, env={"GEOPROC_LEASE_TTL": "60"})
    led = open_ledger(sqlite_url)
    wait_for(lambda: led.get_job(jid) and 40 < _completed(led, jid) < 300, timeout=120, interval=0.05)
    os.kill(p.pid, signal.SIGKILL)
    p.wait(10)
    done_before = {t["task_id"]: t["finished_at"] for t in led.list_tasks(jid, status="completed", limit=None)}
    assert 0 < len(done_before) < 800
    assert led.get_job(jid).status == "running"  # the dead driver left its lease behind
    # same host, dead pid: the lease is taken over at once despite the 60 s TTL
    res = geoproc.run("hello_world", n=400, delay=0.02, workers=2, ledger=sqlite_url)
    assert res.status == "completed" and res.executed == 800 - len(done_before)
    after = {t["task_id"]: t for t in led.list_tasks(jid, limit=None)}
    assert all(after[t]["finished_at"] == f and after[t]["attempts"] == 1 for t, f in done_before.items())
    assert "lease_taken_over" in [e["kind"] for e in led.events(jid)]
    greetings = {t["task_id"]: t["result"]["greeting"] for t in after.values() if t["stage_name"] == "greet"}
    for t in after.values():
        if t["stage_name"] == "reply":
            assert t["result"]["reply"] == f"Reply to '{greetings[t['parent_id']]}'"


def test_cancel_from_another_process(dask_cluster, sqlite_url):
    jid = _job_id(n=3000)
    p = spawn("run", "hello_world", "--set", "n=3000", "--set", "delay=0.01", "--cluster", dask_cluster,
              "--ledger", sqlite_url)
    led = open_ledger(sqlite_url)
    wait_for(lambda: led.get_job(jid) and _completed(led, jid) > 0, timeout=60, interval=0.05)
    c = spawn("cancel", jid[:12], "--ledger", sqlite_url)
    assert c.wait(30) == 0, c.stderr.read()
    assert p.wait(60) == 4, p.stderr.read()  # exit code 4: cancelled
    job = led.get_job(jid)
    assert job.status == "cancelled" and job.lease_owner is None
    counts = led.counts(jid)
    assert counts[0].get("cancelled", 0) > 0 and counts[0].get("pending", 0) == 0
    assert "cancel_requested" in [e["kind"] for e in led.events(jid)]
    # a cancelled job can be resumed: it re-runs only what was not completed
    done = sum(c.get("completed", 0) for c in led.counts(jid).values())
    res = geoproc.run("hello_world", n=3000, cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed" and res.executed == 6000 - done


def test_two_processes_submitting_the_same_job_execute_it_once(dask_cluster, sqlite_url):
    args = ["run", "hello_world", "--set", "n=600", "--set", "delay=0.002", "--cluster", dask_cluster,
            "--ledger", sqlite_url, "--json"]
    a, b = spawn(*args), spawn(*args)
    outs = [json.loads(p.communicate(timeout=120)[0]) for p in (a, b)]
    assert a.returncode == 0 and b.returncode == 0
    assert {o["status"] for o in outs} == {"completed"}
    assert sorted(o["executed"] for o in outs) == [0, 1200]  # one executed everything, one followed
    led = open_ledger(sqlite_url)
    jid = outs[0]["job_id"]
    assert led.get_job(jid).runs == 1
    assert [e["kind"] for e in led.events(jid)].count("run_started") == 1
    assert all(t["attempts"] == 1 for t in led.list_tasks(jid, limit=None))


def test_sigterm_records_a_clean_interrupted_state(dask_cluster, sqlite_url):
    jid = _job_id(n=2000)
    # 25 s of greetings on the 4 worker threads: the signal lands mid-job even on a loaded machine (the
    # re-run, without the delay, which is not part of the job's id, finishes the rest at once)
    p = spawn("run", "hello_world", "--set", "n=2000", "--set", "delay=0.05", "--cluster", dask_cluster,
              "--ledger", sqlite_url)
    led = open_ledger(sqlite_url)
    wait_for(lambda: led.get_job(jid) and _completed(led, jid) > 0, timeout=60, interval=0.05)
    p.send_signal(signal.SIGTERM)
    assert p.wait(60) == 130
    assert "Run it again to resume" in p.stderr.read()
    job = led.get_job(jid)
    assert job.status == "interrupted" and job.lease_owner is None
    done = sum(c.get("completed", 0) for c in led.counts(jid).values())
    res = geoproc.run("hello_world", n=2000, cluster=dask_cluster, ledger=sqlite_url)
    assert res.status == "completed" and res.executed == 4000 - done
