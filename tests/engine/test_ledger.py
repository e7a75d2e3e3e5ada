"""The ledger behaves the same on SQLite and on a real PostgreSQL."""

import os
import subprocess
import sys
import time

import pytest
import sqlalchemy as sa

from geoproc.errors import JobNotFound, SchemaMismatch
from geoproc.ledger import open_ledger, owner_token
from geoproc.ledger import schema as s


def _tasks(job_id, n, stage=0):
    return [{"task_id": f"{job_id[:8]}-{stage}-{i}", "job_id": job_id, "stage": stage, "stage_name": "s",
             "seq": i, "key": str(i), "handler": "h", "params": {"i": i}} for i in range(n)]


def test_jobs_tasks_results_roundtrip(ledger_url):
    led = open_ledger(ledger_url)
    jid = "a" * 64
    assert led.create_job(jid, "hello_world", {"n": 3}, 2) is True
    assert led.create_job(jid, "hello_world", {"n": 3}, 2) is False
    led.add_tasks(_tasks(jid, 5))
    led.add_tasks(_tasks(jid, 5))  # idempotent
    assert led.task_states(jid, 0) == {f"{jid[:8]}-0-{i}": ("pending", None) for i in range(5)}
    outs = [{"task_id": f"{jid[:8]}-0-{i}", "status": "completed", "result": {"v": i * 10}, "attempts": 1,
             "worker": "w1", "started_at": 1.0, "finished_at": 2.0} for i in (4, 0, 2)]
    outs.append({"task_id": f"{jid[:8]}-0-1", "status": "failed", "attempts": 2, "error_code": "X",
                 "error_message": "boom", "remediation": "fix it"})
    led.record_outcomes(outs)
    assert [r["v"] for r in led.stream_results(jid, 0, page=2)] == [0, 20, 40]  # plan order, paged
    assert led.counts(jid) == {0: {"completed": 3, "failed": 1, "pending": 1}}
    failed = led.list_tasks(jid, status="failed")
    assert failed[0]["error_code"] == "X" and failed[0]["remediation"] == "fix it" and failed[0]["attempts"] == 2
    assert led.results([f"{jid[:8]}-0-2", f"{jid[:8]}-0-1"]) == {f"{jid[:8]}-0-2": {"v": 20}}
    led.set_stage_result(jid, 0, "s", {"count": 3})
    led.set_stage_result(jid, 0, "s", {"count": 4})
    assert led.stage_results(jid) == {0: {"count": 4}}
    assert led.reset_tasks(jid, statuses=["failed"]) == 1
    assert led.list_tasks(jid, status="failed") == []
    assert led.list_tasks(jid, status="pending", limit=None)[0]["attempts"] in (0, 2)
    assert led.find_job(jid[:10]).job_id == jid
    with pytest.raises(JobNotFound):
        led.find_job("ffffffffff")
    assert [e["kind"] for e in led.events(jid)] == ["job_created"]


def test_lease_is_exclusive_and_stale_leases_are_taken_over(ledger_url):
    led = open_ledger(ledger_url)
    jid = "b" * 64
    led.create_job(jid, "hello_world", {}, 2)
    # an owner on another host: liveness unknown, only the heartbeat age counts
    a, b = "elsewhere:1:1", "elsewhere:2:2"
    assert led.acquire_lease(jid, a, ttl=30)
    assert not led.acquire_lease(jid, b, ttl=30)
    assert led.heartbeat(jid, a) == (True, False)
    with led.engine.begin() as c:
        c.execute(sa.update(s.jobs).values(heartbeat_at=time.time() - 60))
    assert led.acquire_lease(jid, b, ttl=30)
    assert led.heartbeat(jid, a) == (False, False)  # a learns it lost the lease
    assert "lease_taken_over" in [e["kind"] for e in led.events(jid)]


def test_lease_of_a_dead_local_process_is_free_at_once(ledger_url):
    led = open_ledger(ledger_url)
    jid = "c" * 64
    led.create_job(jid, "hello_world", {}, 2)
    p = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = owner_token().rsplit(":", 2)[0] + f":{int(p.stdout)}:1"
    assert led.acquire_lease(jid, dead, ttl=3600)
    assert led.acquire_lease(jid, owner_token(), ttl=3600)


def test_cancel_without_a_live_driver_cancels_in_the_ledger(ledger_url):
    led = open_ledger(ledger_url)
    jid = "d" * 64
    led.create_job(jid, "hello_world", {}, 1)
    led.add_tasks(_tasks(jid, 3))
    job = led.request_cancel(jid)
    assert job.status == "cancelled"
    assert led.counts(jid) == {0: {"cancelled": 3}}


def test_schema_version_is_recorded_and_checked(tmp_path):
    url = f"sqlite:///{tmp_path}/l.db"
    led = open_ledger(url)
    with led.engine.begin() as c:
        assert c.execute(sa.select(s.meta.c.value)).scalar() == str(s.SCHEMA_VERSION)
        c.execute(sa.update(s.meta).values(value=str(s.SCHEMA_VERSION + 1)))
    with pytest.raises(SchemaMismatch, match="upgrade geoproc"):
        open_ledger(url)


def test_default_location_is_documented_and_overridable(tmp_path, monkeypatch):
    from geoproc.ledger import default_url

    monkeypatch.delenv("GEOPROC_LEDGER", raising=False)
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path))
    assert default_url() == f"sqlite:///{tmp_path}/geoproc/ledger.db"
    monkeypatch.setenv("GEOPROC_LEDGER", "postgresql://u@h/db")
    assert default_url() == "postgresql://u@h/db"
    assert os.environ["GEOPROC_LEDGER"]


def test_password_never_shown(postgres_url):
    url = postgres_url.replace("postgres@", "postgres:s3cret@")
    led = open_ledger(url)  # trust auth: the password is ignored but must not be printed
    assert "s3cret" not in repr(led) and "s3cret" not in led.url
