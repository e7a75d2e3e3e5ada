"""The CLI: commands, exit codes, and readable errors without tracebacks."""

import json
import subprocess

from enginekit import geoproc_cmd
from typer.testing import CliRunner

from geoproc.cli import app

runner = CliRunner()


def test_run_status_jobs_tasks_events(dask_cluster, sqlite_url):
    r = runner.invoke(app, ["run", "hello_world", "--set", "n=5", "--cluster", dask_cluster, "--ledger", sqlite_url,
                            "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.stdout)
    assert res["status"] == "completed" and res["result"]["replies"] == 5
    jid = res["job_id"]
    r = runner.invoke(app, ["status", jid[:10], "--ledger", sqlite_url, "--json"])
    st = json.loads(r.stdout)
    assert st["progress"] == 100.0 and st["stages"][1]["counts"] == {"completed": 5} and st["errors"] == []
    r = runner.invoke(app, ["status", jid[:10], "--ledger", sqlite_url])
    assert "greet" in r.stdout and "reply" in r.stdout and "completed" in r.stdout
    r = runner.invoke(app, ["jobs", "--status", "completed", "--ledger", sqlite_url, "--json"])
    assert [j["job_id"] for j in json.loads(r.stdout)] == [jid]
    r = runner.invoke(app, ["tasks", jid, "--ledger", sqlite_url, "--json"])
    assert len(json.loads(r.stdout)) == 10
    r = runner.invoke(app, ["events", jid, "--ledger", sqlite_url, "--json"])
    kinds = [e["kind"] for e in json.loads(r.stdout)]
    assert kinds[0] == "job_created" and kinds[-1] == "job_completed"
    # a spec file works the same, and a finished job comes back from the ledger
    r = runner.invoke(app, ["run", "jobs/hello_world.toml", "--ledger", sqlite_url, "--cluster", dask_cluster,
                            "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["result"]["replies"] == 100


def test_exit_codes_for_partial_and_failed_jobs(engine_client, sqlite_url):
    """test_partial / test_strict exist only in this process and on the engine_client's workers."""
    addr = engine_client.scheduler.address
    r = runner.invoke(app, ["run", "test_partial", "--set", "n=4", "--set", "bad=[1]", "--cluster", addr,
                            "--ledger", sqlite_url])
    assert r.exit_code == 3
    r = runner.invoke(app, ["run", "test_strict", "--set", "n=4", "--set", "bad=[1]", "--cluster", addr,
                            "--ledger", sqlite_url])
    assert r.exit_code == 1
    jid = runner.invoke(app, ["jobs", "--type", "test_strict", "--ledger", sqlite_url, "--json"]).stdout
    jid = json.loads(jid)[0]["job_id"]
    r = runner.invoke(app, ["tasks", jid, "--status", "failed", "--ledger", sqlite_url, "--json"])
    [t] = json.loads(r.stdout)
    assert t["error_code"] == "TEST_CORRUPT" and t["remediation"] == "Replace item with a good one."


def _cli(*args):
    return subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=120)


def test_user_errors_are_one_readable_line(sqlite_url):
    cases = [
        (["run", "helo_world"], "Unknown job 'helo_world'; available:"),
        (["run", "hello_world", "--set", "n=0"], "n=0: Input should be greater than or equal to 1"),
        (["run", "no/such/spec.toml"], "not found"),
        (["status", "0123456789ab", "--ledger", sqlite_url], "No job '0123456789ab'"),
        (["run", "hello_world", "--ledger", "mysql://x/y"], "Unsupported ledger URL"),
        (["tasks", "--status", "failed"], "Missing argument"),
        (["run", "hello_world", "--set", "n"], "--set expects key=value"),
        (["jobs", "--bbox", "1,2,3", "--ledger", sqlite_url], "--bbox expects west,south,east,north"),
    ]
    for args, expected in cases:
        p = _cli(*args)
        assert p.returncode in (2, 5), (args, p.returncode, p.stderr)
        assert expected in p.stderr and "Traceback" not in p.stderr + p.stdout, p.stderr


def test_list_shows_registry():
    r = runner.invoke(app, ["list", "--json"])
    jobs = json.loads(r.stdout)
    assert "hello_world" in jobs
    assert {p["name"] for p in jobs["hello_world"]["params"]} >= {"n", "message", "failure_rate"}
