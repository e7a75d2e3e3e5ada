"""Operating jobs: retry after fixing inputs, quarantine, history filters, metrics, re-listing."""

import json

from typer.testing import CliRunner

import geoproc
from geoproc.cli import app
from geoproc.ledger import open_ledger

runner = CliRunner()


def test_retry_after_fixing_the_input_keeps_history(engine_client, ledger_url, tmp_path):
    for i in range(6):
        (tmp_path / f"{i}.txt").write_text("bad" if i in (2, 4) else "ok")
    first = geoproc.run("test_partial", n=6, inputs=str(tmp_path), cluster=engine_client, ledger=ledger_url)
    assert first.status == "completed_with_errors"
    led = open_ledger(ledger_url)
    q = led.list_tasks(first.job_id, error_kind="invalid")
    assert [t["key"] for t in q] == ["2", "4"] and all(t["error_code"] == "TEST_CORRUPT" for t in q)
    r = runner.invoke(app, ["tasks", first.job_id, "--quarantined", "--ledger", ledger_url], env={"COLUMNS": "250"})
    assert "quarantined" in r.stdout and "Replace item" in r.stdout
    done = {t["task_id"]: t["finished_at"] for t in led.list_tasks(first.job_id, status="completed", limit=None)}
    # re-submitting does not retry: the job is finished; `retry` does, once the inputs are fixed
    assert geoproc.run("test_partial", n=6, inputs=str(tmp_path), cluster=engine_client, ledger=ledger_url).cached
    (tmp_path / "2.txt").write_text("ok")
    only = geoproc.api.retry(first.job_id[:10], task_ids=["2"], cluster=engine_client, ledger=ledger_url)
    assert only.status == "completed_with_errors" and only.executed == 1
    (tmp_path / "4.txt").write_text("ok")
    rest = geoproc.api.retry(first.job_id, cluster=engine_client, ledger=ledger_url)
    assert rest.status == "completed" and rest.executed == 1
    tasks = {t["task_id"]: t for t in led.list_tasks(first.job_id, limit=None)}
    assert all(tasks[t]["finished_at"] == f for t, f in done.items())  # nothing recomputed
    assert sorted(t["attempts"] for t in tasks.values()) == [1, 1, 1, 1, 2, 2]  # history kept
    kinds = [e["kind"] for e in led.events(first.job_id)]
    assert kinds.count("task_failed") == 2 and kinds.count("retry_requested") == 2


def test_history_filters_and_metrics(engine_client, sqlite_url):
    a = geoproc.run("test_partial", n=3, cluster=engine_client, ledger=sqlite_url)   # bbox 0..2.5
    b = geoproc.run("test_partial", n=12, cluster=engine_client, ledger=sqlite_url)  # bbox 0..11.5
    led = open_ledger(sqlite_url)
    assert led.get_job(a.job_id).bbox == [0, 0, 2.5, 2.5]

    def ids(*args):
        r = runner.invoke(app, ["jobs", "--ledger", sqlite_url, "--json", *args])
        assert r.exit_code == 0, r.output
        return {j["job_id"] for j in json.loads(r.stdout)}

    assert ids("--bbox", "5,5,6,6") == {b.job_id}
    assert ids("--bbox", "1,1,2,2") == {a.job_id, b.job_id}
    assert ids("--bbox", "50,50,60,60") == set()
    assert ids("--since", "1h") == {a.job_id, b.job_id}
    assert ids("--until", "2000-01-01") == set()
    assert ids("--type", "hello_world") == set()
    r = runner.invoke(app, ["jobs", "--ledger", sqlite_url, "--since", "yesterday-ish"])
    assert r.exit_code != 0
    st = json.loads(runner.invoke(app, ["status", b.job_id, "--ledger", sqlite_url, "--json"]).stdout)
    m = st["metrics"]["check"]
    assert m["tasks"] == 12 and m["bytes_read"] == 1200 and m["bytes_written"] == 120 and m["failed"] == 0
    assert m["tasks_per_s"] and m["tasks_per_s"] > 0


def test_volatile_listing_picks_up_new_inputs_only(engine_client, sqlite_url, tmp_path):
    tmp_path = tmp_path / "inputs"
    tmp_path.mkdir()
    for name in ("a", "bb", "ccc"):
        (tmp_path / name).write_text(name)
    first = geoproc.run("test_fanout", directory=str(tmp_path), cluster=engine_client, ledger=sqlite_url)
    assert first.result == {"files": 3, "length": 6} and first.executed == 4
    (tmp_path / "dddd").write_text("d")
    again = geoproc.run("test_fanout", directory=str(tmp_path), cluster=engine_client, ledger=sqlite_url)
    assert again.job_id == first.job_id and not again.cached
    assert again.executed == 2  # the listing, and the one new file
    assert again.result == {"files": 4, "length": 10}
