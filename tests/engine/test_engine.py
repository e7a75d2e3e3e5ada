"""The engine against real Dask worker processes."""

import re

import sqlalchemy as sa

import geoproc
from geoproc.ledger import open_ledger
from geoproc.ledger import schema as s


def _replies_quote_their_own_greeting(url, job_id):
    led = open_ledger(url)
    tasks = led.list_tasks(job_id, limit=None)
    greetings = {t["task_id"]: t["result"]["greeting"] for t in tasks if t["stage_name"] == "greet"}
    replies = [t for t in tasks if t["stage_name"] == "reply"]
    for r in replies:
        assert r["status"] == "completed"
        assert r["result"]["reply"] == f"Reply to '{greetings[r['parent_id']]}'"
        assert r["key"] == r["parent_id"].rsplit("-", 1)[1]  # reply i answers greeting i
    return len(replies)


def test_hello_world_n3(engine_client, ledger_url):
    res = geoproc.run("hello_world", n=3, cluster=engine_client, ledger=ledger_url)
    assert res.status == "completed" and not res.cached
    assert res.result["greetings"] == 3 and res.result["replies"] == 3
    assert res.result["sample"][0] == "Reply to 'Hello World from task 0'"
    assert [(st.name, st.counts) for st in res.stages] == [("greet", {"completed": 3}), ("reply", {"completed": 3})]
    assert _replies_quote_their_own_greeting(ledger_url, res.job_id) == 3


def test_hello_world_n1000_lineage(engine_client, sqlite_url):
    res = geoproc.run("hello_world", n=1000, message="Hi", cluster=engine_client, ledger=sqlite_url)
    assert res.status == "completed" and res.executed == 2000
    assert _replies_quote_their_own_greeting(sqlite_url, res.job_id) == 1000


def test_transient_failures_are_retried(engine_client, ledger_url):
    res = geoproc.run("hello_world", n=200, failure_rate=0.2, cluster=engine_client, ledger=ledger_url)
    assert res.status == "completed"
    led = open_ledger(ledger_url)
    attempts = [t["attempts"] for t in led.list_tasks(res.job_id, limit=None) if t["stage_name"] == "greet"]
    assert max(attempts) > 1 and sum(a > 1 for a in attempts) > 10  # about 20% needed a retry
    assert _replies_quote_their_own_greeting(ledger_url, res.job_id) == 200


def test_invalid_input_fails_once_and_policy_decides(engine_client, ledger_url):
    partial = geoproc.run("test_partial", n=10, bad=[3, 7], cluster=engine_client, ledger=ledger_url)
    assert partial.status == "completed_with_errors"
    assert partial.stages[0].counts == {"completed": 8, "failed": 2}
    led = open_ledger(ledger_url)
    failed = led.list_tasks(partial.job_id, status="failed")
    assert {t["key"] for t in failed} == {"3", "7"}
    assert all(t["attempts"] == 1 and t["error_code"] == "TEST_CORRUPT" for t in failed)
    assert failed[0]["remediation"] == "Replace item with a good one."
    assert partial.result["count"] == 8
    assert {(f["key"], f["code"]) for f in partial.result["failed_tasks"]} == {("3", "TEST_CORRUPT"), ("7", "TEST_CORRUPT")}
    strict = geoproc.run("test_strict", n=10, bad=[3], cluster=engine_client, ledger=ledger_url)
    assert strict.status == "failed"


def test_resubmitting_a_completed_job_executes_nothing(engine_client, sqlite_url):
    first = geoproc.run("hello_world", n=50, cluster=engine_client, ledger=sqlite_url)
    led = open_ledger(sqlite_url)
    before = led.list_tasks(first.job_id, limit=None)
    again = geoproc.run("hello_world", n=50, cluster="tcp://127.0.0.1:1", ledger=sqlite_url)  # no cluster needed
    assert again.cached and again.executed == 0 and again.result == first.result
    assert led.list_tasks(first.job_id, limit=None) == before
    forced = geoproc.run("hello_world", n=50, cluster=engine_client, ledger=sqlite_url, force=True)
    assert forced.executed == 100 and not forced.cached


def test_failed_job_reruns_only_unfinished_tasks(engine_client, sqlite_url):
    """Resume feeds stored greetings to replies whose greeting finished in an earlier run."""
    res = geoproc.run("hello_world", n=40, cluster=engine_client, ledger=sqlite_url)
    led = open_ledger(sqlite_url)
    # simulate an interrupted run: half the greetings and all replies lost
    with led.engine.begin() as c:
        c.execute(sa.update(s.tasks).where(s.tasks.c.stage == 1).values(status="pending", result=None))
        c.execute(sa.update(s.tasks).where(s.tasks.c.stage == 0, s.tasks.c.seq >= 20)
                  .values(status="pending", result=None))
        c.execute(sa.update(s.jobs).values(status="interrupted"))
    kept = {t["task_id"]: t["finished_at"] for t in led.list_tasks(res.job_id, status="completed", limit=None)}
    again = geoproc.run("hello_world", n=40, cluster=engine_client, ledger=sqlite_url)
    assert again.status == "completed" and again.executed == 60
    after = {t["task_id"]: t["finished_at"] for t in led.list_tasks(res.job_id, limit=None)}
    assert all(after[t] == f for t, f in kept.items())
    assert _replies_quote_their_own_greeting(sqlite_url, res.job_id) == 40


def test_dynamic_fan_out_and_empty_fan_out(engine_client, sqlite_url):
    res = geoproc.run("test_fanout", items=12, cluster=engine_client, ledger=sqlite_url)
    assert res.status == "completed" and res.result == {"files": 12, "length": 12 * 7}
    assert [st.counts for st in res.stages] == [{"completed": 1}, {"completed": 12}]
    empty = geoproc.run("test_fanout", items=0, cluster=engine_client, ledger=sqlite_url)
    assert empty.status == "completed" and empty.result == {"files": 0, "length": 0}
    assert [st.counts for st in empty.stages] == [{"completed": 1}, {}]


def test_background_handle(engine_client, sqlite_url):
    h = geoproc.submit("hello_world", n=20, cluster=engine_client, ledger=sqlite_url)
    res = h.result(timeout=120)
    assert res.status == "completed" and h.done() and h.status().status == "completed"
    html = res._repr_html_()
    assert "hello_world" in html and res.job_id[:12] in html and "completed" in html
    assert re.findall(r"<tr><td>(.*?)</td><td>(.*?)</td>", html) == [("greet", "20/20"), ("reply", "20/20")]
    assert h._repr_html_() == html  # the handle shows the same summary once the job is done
