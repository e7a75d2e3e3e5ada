"""Exceptions that geoproc code survives are logged and counted in the job's events, not lost."""

from __future__ import annotations

import logging
import threading

from kit import swallowjobs
from kit.polling import wait_for

import geoproc
from geoproc.engine.lease import Lease
from geoproc.engine.worker import MAX_SWALLOWED_MESSAGES, counting_swallowed, run_batch
from geoproc.ledger import open_ledger
from geoproc.model import RetryPolicy
from geoproc.settings import Settings

JOB = {"job_id": "0" * 64, "job_type": "test_swallow"}


def _items(n):
    return [(f"t{i}", str(i), {"i": i}, None) for i in range(n)]


def test_a_batch_counts_exceptions_logged_with_exc_info_on_geoproc_loggers():
    res = run_batch(swallowjobs.fall_back, JOB, "fallback", _items(4), RetryPolicy(), {}, {})
    assert [o["status"] for o in res.outcomes] == ["completed"] * 4
    # two per task; the plain warning and the exception logged outside geoproc do not count
    assert res.swallowed == 4 * swallowjobs.SWALLOWED_PER_TASK
    assert len(res.swallowed_messages) == MAX_SWALLOWED_MESSAGES  # capped; the count is exact
    assert res.swallowed_messages[0] == ("geoproc.testjobs.swallow: item 0: fast path failed; using the slow one "
                                         "(OSError: fast path 0 failed for item 0)")
    assert not any("second line" in m for m in res.swallowed_messages)


def test_only_the_batch_thread_is_counted():
    log = logging.getLogger("geoproc.testjobs.swallow")

    def elsewhere():
        try:
            raise OSError("another batch's failure")
        except OSError:
            log.warning("not ours", exc_info=True)

    with counting_swallowed() as counter:
        t = threading.Thread(target=elsewhere)
        t.start()
        t.join()
        try:
            raise OSError("ours")
        except OSError:
            log.error("ours", exc_info=True)
    assert counter.count == 1 and counter.messages == ["geoproc.testjobs.swallow: ours (OSError: ours)"]


def test_a_swallowed_exception_in_a_handler_is_counted_in_the_job_events(engine_client, sqlite_url):
    res = geoproc.run("test_swallow", n=3, cluster=engine_client, ledger=sqlite_url)
    assert res.status == "completed" and res.result is None
    led = open_ledger(sqlite_url)
    try:
        events = [e for e in led.events(res.job_id) if e["kind"] == "swallowed_errors"]
    finally:
        led.close()
    assert events, "no swallowed_errors event was recorded"
    assert sum(e["data"]["count"] for e in events) == 3 * swallowjobs.SWALLOWED_PER_TASK
    assert all(e["stage"] == 0 and e["task_id"].startswith(res.job_id[:16]) for e in events)
    messages = [m for e in events for m in e["data"]["messages"]]
    assert "geoproc.testjobs.swallow: item 1: fast path failed; using the slow one " \
           "(OSError: fast path 1 failed for item 1)" in messages


def test_failed_heartbeats_are_logged_and_counted_in_the_job_events(sqlite_url, caplog):
    led = open_ledger(sqlite_url)
    job_id = "f" * 64
    led.create_job(job_id, "hello_world", {}, 1)
    real = led.heartbeat
    calls = []

    def flaky(jid, owner):
        calls.append(jid)
        if len(calls) <= 2:
            raise RuntimeError("database is locked\nstatement: UPDATE ...")
        return real(jid, owner)

    led.heartbeat = flaky  # the ledger fails twice, then recovers
    lease = Lease(led, job_id, Settings(heartbeat_interval=0.02), emit=lambda kind, data: None)
    try:
        assert lease.take(wait=False) is None
        with caplog.at_level(logging.WARNING, logger="geoproc.engine.lease"):
            lease.start_heartbeat()
            wait_for(lambda: len(calls) >= 4, timeout=10, what="four heartbeats")
            lease.stop_heartbeat()
        events = [e for e in led.events(job_id) if e["kind"] == "heartbeat_failed"]
    finally:
        led.close()
    assert not lease.lost.is_set() and lease.missed == 2
    assert [(e["data"], e["message"]) for e in events] == [({"count": 2, "total": 2},
                                                            "RuntimeError: database is locked")]
    failures = [r for r in caplog.records if r.name == "geoproc.engine.lease" and r.exc_info]
    assert len(failures) == 2 and "Heartbeat of job ffffffffffff failed" in failures[0].getMessage()
