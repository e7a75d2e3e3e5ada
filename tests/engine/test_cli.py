"""The CLI: commands, exit codes, readable errors without tracebacks, the code catalogue and logging."""

import ast
import io
import json
import logging
import os
import subprocess
from pathlib import Path

import pytest
from kit.drivers import geoproc_cmd
from rich.console import Console
from typer.testing import CliRunner

import geoproc
from geoproc import errors
from geoproc.cli import app
from geoproc.jobs import ALL_JOBS, get_job
from geoproc.ledger import open_ledger
from geoproc.logs import configure_logging
from geoproc.report import KIND_TEXT, codes_view, job_list, param_table

runner = CliRunner()
PACKAGE = Path(geoproc.__file__).parent


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
    """Each case exits with its own code; geoproc's errors (not click's usage errors) are one line."""
    usage, user, environment = "usage", 2, 5
    open_ledger(sqlite_url).close()  # commands that only read need a ledger that exists
    cases = [
        (["run", "helo_world"], user, "Unknown job 'helo_world'; available:"),
        (["run", "hello_world", "--set", "n=0"], user, "n=0: Input should be greater than or equal to 1"),
        (["run", "no/such/spec.toml"], user, "not found"),
        (["status", "0123456789ab", "--ledger", sqlite_url], user, "No job '0123456789ab'"),
        (["run", "hello_world", "--ledger", "mysql://x/y"], environment, "Unsupported ledger URL"),
        (["tasks", "--status", "failed"], usage, "Missing argument"),
        (["run", "hello_world", "--set", "n"], usage, "--set expects key=value"),
        (["jobs", "--bbox", "1,2,3", "--ledger", sqlite_url], usage, "--bbox expects west,south,east,north"),
        (["jobs", "--bbox", "3,0,1,1", "--ledger", sqlite_url], usage, "--bbox expects west,south,east,north"),
        (["jobs", "--since", "last tuesday", "--ledger", sqlite_url], user, "Cannot read the time 'last tuesday'"),
        (["list", "helo_world"], user, "Unknown job 'helo_world'; available:"),
        (["codes", "CORUPT_RASTER"], user, "Unknown code 'CORUPT_RASTER'. Did you mean CORRUPT_RASTER"),
        (["retry", "0123456789ab", "--failed", "--task", "x", "--ledger", sqlite_url], usage,
         "give either --failed or --task, not both"),
    ]
    for args, code, expected in cases:
        p = _cli(*args)
        assert p.returncode == (2 if code == usage else code), (args, p.returncode, p.stderr)
        assert expected in p.stderr and "Traceback" not in p.stderr + p.stdout, (args, p.stderr)
        assert p.stdout == "", (args, p.stdout)
        if code != usage:  # one line: "error: " and the message
            assert p.stderr.count("\n") == 1 and p.stderr.startswith("error: "), (args, p.stderr)
    env = {**os.environ, "GEOPROC_LOG_LEVEL": "loud"}
    p = subprocess.run(geoproc_cmd("list"), capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 2 and p.stderr.startswith("error: Unknown log level 'loud'"), p.stderr


def test_list_shows_registry():
    r = runner.invoke(app, ["list", "--json"])
    jobs = json.loads(r.stdout)
    assert "hello_world" in jobs
    assert {p["name"] for p in jobs["hello_world"]["params"]} >= {"n", "message", "failure_rate"}
    r = runner.invoke(app, ["list", "hello_world", "--json"])
    assert list(json.loads(r.stdout)) == ["hello_world"]


def _lines(renderable, width=80):
    console = Console(width=width, file=io.StringIO())
    console.print(renderable)
    return console.file.getvalue().splitlines()


def _row_start(line):
    """A table line that begins a row: its first cell (a parameter name) starts in column 1."""
    return line[:1] == " " and line[1:2].strip() != ""


def test_list_fits_80_columns():
    """`geoproc list`: one row per job type with its summary; `geoproc list JOB`: its parameter table."""
    lines = _lines(job_list(ALL_JOBS))
    assert max(map(len, lines)) <= 80
    starts = [line.split()[0] for line in lines[1:] if line and not line.startswith(" ")]
    assert starts == sorted(ALL_JOBS)  # each job type starts one row, in name order
    text = " ".join(" ".join(line.split()) for line in lines)
    for jt in ALL_JOBS.values():
        assert " ".join(jt.summary.split()) in text
    for name, jt in ALL_JOBS.items():
        lines = _lines(param_table(jt))
        assert max(map(len, lines)) <= 80, name
        names = [line.split()[0] for line in lines if _row_start(line)]
        assert [n for n in names if n in jt.params.model_fields] == list(jt.params.model_fields), name
        assert lines[-1].startswith("* not part of the job id")
    cells = {line.split()[0]: line.split()[1:] for line in _lines(param_table(get_job("hello_world")))
             if _row_start(line)}
    assert cells["n"][:2] == ["int", "3"] and cells["message"][:3] == ["str", "'Hello", "World'"]
    assert cells["failure_rate"][:2] == ["*", "float"]  # not part of the job id
    cog = " ".join(" ".join(line.split()) for line in _lines(param_table(get_job("cog"))))
    assert "one of: visualization, analysis, archive" in cog and "(required)" in cog
    # through the command, in a real 80-column terminal
    env = {**os.environ, "COLUMNS": "80"}
    for args in (["list"], ["list", "cog"], ["list", "large_raster"]):
        p = subprocess.run(geoproc_cmd(*args), capture_output=True, text=True, timeout=120, env=env)
        assert p.returncode == 0 and p.stderr == "", p.stderr
        assert max(map(len, p.stdout.splitlines())) <= 80, args
    assert "memory_budget" in p.stdout and "512.0 MiB" in p.stdout  # a ByteSize default, in binary units


def _emitted_codes():
    """Every error or warning code the package spells out or imports, with the file it is in."""
    found = []

    def add(value, path):
        if isinstance(value, str) and value.isupper() and " " not in value:
            found.append((value, path))

    def constants(node, path):
        for v in ast.walk(node):
            if isinstance(v, ast.Constant):
                add(v.value, path)

    for path in sorted(PACKAGE.rglob("*.py")):
        rel = str(path.relative_to(PACKAGE))
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg in ("code", "error_code"):
                constants(node.value, rel)  # f(code="X"), f(code="A" if ... else "B")
            elif isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id in ("code", "error_code")
                                                      for t in node.targets):
                constants(node.value, rel)  # class attributes, local variables
            elif (isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name)
                  and isinstance(node.value, ast.Constant) and node.value.value == node.targets[0].id):
                add(node.value.value, rel)  # NAME = "NAME": a code constant
            elif isinstance(node, ast.Dict):
                for k, v in zip(node.keys, node.values, strict=True):
                    if isinstance(k, ast.Constant) and k.value in ("code", "error_code"):
                        constants(v, rel)
            elif isinstance(node, ast.Compare) and isinstance(node.left, ast.Name) and node.left.id == "code":
                for v in node.comparators:
                    constants(v, rel)
            elif isinstance(node, ast.Call) and getattr(node.func, "id", None) == "Finding" and node.args:
                constants(node.args[0], rel)
            elif (isinstance(node, ast.Tuple) and len(node.elts) >= 2 and isinstance(node.elts[0], ast.Name)
                  and node.elts[0].id in ("TRANSIENT", "INVALID", "UNEXPECTED")):
                constants(node.elts[1], rel)  # classify()'s (kind, code, remediation)
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[-1] == "errors":
                for alias in node.names:
                    value = getattr(errors, alias.name, None)
                    if alias.name.isupper() and isinstance(value, str):
                        add(value, rel)
            if isinstance(node, ast.Constant | ast.JoinedStr):  # "CODE: message" warnings and problems
                head = node.value if isinstance(node, ast.Constant) else (
                    node.values[0].value if node.values and isinstance(node.values[0], ast.Constant) else "")
                if isinstance(head, str) and ": " in head:
                    code = head.split(": ", 1)[0]
                    if "_" in code and code.isupper() and code.replace("_", "").isalnum():
                        add(code, rel)
    return found


def test_every_code_is_in_the_catalogue():
    """Each code the package can emit has an entry (its class, or CODES) with a meaning and a remedy."""
    found = _emitted_codes()
    assert len({c for c, _ in found}) >= 30  # the scan sees the codes: classes, findings, engine, warnings
    for code, path in found:
        info = errors.code_info(code)
        assert info is not None, f"{code} (in {path}) is not in geoproc.errors' catalogue"
        assert info.meaning.strip() and info.remediation.strip() and info.kind in KIND_TEXT, code
    cat = errors.catalogue()
    classes, todo = set(), [errors.TaskError]
    while todo:
        cls = todo.pop()
        todo += cls.__subclasses__()
        classes.add(cls.code)
    assert not set(errors.CODES) & classes  # one entry per code
    for info in cat.values():
        assert info.meaning.strip() and info.remediation.strip() and info.kind in KIND_TEXT
    for name in ("WORKER_LOST", "BATCH_ERROR", "UPSTREAM_FAILED", "NETWORK", "UNEXPECTED_ERROR",
                 "COG_VALIDATE", "TIER_FALLBACK", "RASTER_TOO_LARGE", "CRS_MISSING", "NO_VALIDATION"):
        assert getattr(errors, name) == name and name in cat
    assert errors.HTTP_STATUS == "HTTP_{status}" and errors.code_info("HTTP_503") == cat["HTTP_{status}"]
    assert errors.code_info("corrupt_raster") == cat["CORRUPT_RASTER"] and errors.code_info("NOPE") is None
    # remedies that can fix their error
    assert "overwrite=true" in errors.OutputExists.remediation
    assert "cannot help" in errors.OutputCollision.remediation and "Rename" in errors.OutputCollision.remediation
    assert "outside the inputs" in errors.UnsafePath.remediation
    assert "retry JOB_ID --failed" in errors.InvalidInput.remediation


def test_codes_command():
    lines = _lines(codes_view(errors.catalogue().items()))
    assert max(map(len, lines)) <= 80
    heads = [line.split()[0] for line in lines if line and not line.startswith(" ")]
    assert heads == list(errors.catalogue())
    r = runner.invoke(app, ["codes", "--json"])
    data = json.loads(r.stdout)
    assert r.exit_code == 0 and list(data) == list(errors.catalogue())
    assert data["OUTPUT_COLLISION"] == {"meaning": errors.catalogue()["OUTPUT_COLLISION"].meaning,
                                        "remediation": errors.OutputCollision.remediation, "kind": "invalid"}
    env = {**os.environ, "COLUMNS": "80"}
    p = subprocess.run(geoproc_cmd("codes", "http_503"), capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0 and p.stdout.splitlines()[0].split() == ["HTTP_503", "(transient:", "retried",
                                                                        "with", "backoff)"]
    assert "then run `geoproc retry JOB_ID`." in " ".join(p.stdout.split())
    p = subprocess.run(geoproc_cmd("codes"), capture_output=True, text=True, timeout=120, env=env)
    assert p.returncode == 0 and max(map(len, p.stdout.splitlines())) <= 80
    assert [line.split()[0] for line in p.stdout.splitlines() if line and not line.startswith(" ")] == \
        list(errors.catalogue())


@pytest.fixture
def geoproc_logger():
    """The ``geoproc`` logger as it was: the CLI configures it, and the next test must not inherit that."""
    logger = logging.getLogger("geoproc")
    handlers, level = list(logger.handlers), logger.level
    yield logger
    logger.handlers[:] = handlers
    logger.setLevel(level)


def test_logs_go_to_stderr_never_stdout(geoproc_logger, capsys):
    configure_logging("INFO")
    configure_logging("INFO")  # configuring again replaces the handler: one line per record
    logging.getLogger("geoproc.engine.driver").info("batch %d submitted", 7)
    logging.getLogger("geoproc.engine.driver").debug("not shown at INFO")
    got = capsys.readouterr()
    assert got.out == "" and got.err.count("\n") == 1
    assert got.err.endswith(" INFO    geoproc.engine.driver: batch 7 submitted\n"), got.err

    for args, env, level in ((["-vv"], {}, logging.DEBUG), (["-v"], {}, logging.INFO),
                             ([], {"GEOPROC_LOG_LEVEL": "debug"}, logging.DEBUG),
                             ([], {"GEOPROC_LOG_LEVEL": "ERROR"}, logging.ERROR), ([], {}, logging.WARNING),
                             (["-v", "-v"], {"GEOPROC_LOG_LEVEL": "ERROR"}, logging.DEBUG)):
        r = runner.invoke(app, [*args, "list", "--json"], env={"GEOPROC_LOG_LEVEL": None, **env})
        assert r.exit_code == 0 and list(json.loads(r.stdout)) == list(ALL_JOBS), (args, env)
        assert geoproc_logger.level == level, (args, env)
        assert ("DEBUG   geoproc.cli: geoproc" in r.stderr) == (level == logging.DEBUG), (args, env, r.stderr)
        assert r.stderr == "" or level == logging.DEBUG, (args, env, r.stderr)
    # a real process: stdout holds only the JSON, the log lines are on stderr
    p = _cli("-vv", "list", "--json")
    assert p.returncode == 0 and "hello_world" in json.loads(p.stdout)
    assert p.stderr.startswith("20") and "DEBUG   geoproc.cli: geoproc" in p.stderr


def test_retry_failed_resets_only_the_failed_tasks(engine_client, sqlite_url, tmp_path):
    """`retry --failed` puts back the failed tasks only; like every run, it also resumes unfinished ones."""
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    for i in range(4):
        (inputs / f"{i}.txt").write_text("bad" if i == 1 else "good")
    where = ["--cluster", engine_client.scheduler.address, "--ledger", sqlite_url]
    r = runner.invoke(app, ["run", "test_partial", "--set", "n=4", "--set", f"inputs={inputs}", *where, "--json"])
    assert r.exit_code == 3, r.output
    jid = json.loads(r.stdout)["job_id"]
    led = open_ledger(sqlite_url)
    try:
        by_key = {t["key"]: t["task_id"] for t in led.list_tasks(jid, limit=None)}
        led.reset_tasks(jid, task_ids=[by_key["2"]])  # as if cancelled before it ran again
        assert led.cancel_unfinished(jid, task_ids=[by_key["2"]]) == 1
        (inputs / "1.txt").write_text("good")  # the bad input is fixed

        r = runner.invoke(app, ["retry", jid[:12], "--failed", *where, "--json"])
        assert r.exit_code == 0, r.output
        assert json.loads(r.stdout)["status"] == "completed"
        resets = [e["message"] for e in led.events(jid) if e["kind"] == "retry_requested"]
        assert resets == ["1 tasks reset to pending"]  # the failed task; without --failed the cancelled one too
        tasks = {t["key"]: t for t in led.list_tasks(jid, limit=None)}
        assert {k: t["status"] for k, t in tasks.items()} == dict.fromkeys("0123", "completed")
        assert tasks["1"]["attempts"] == 2 and tasks["0"]["attempts"] == tasks["3"]["attempts"] == 1
        runs, n_events = led.get_job(jid).runs, len(led.events(jid))

        r = runner.invoke(app, ["retry", jid[:12], "--failed", *where])
        assert r.exit_code == 0 and f"Job {jid[:12]} has no failed tasks; nothing to retry." in r.stderr
        assert led.get_job(jid).runs == runs and len(led.events(jid)) == n_events  # nothing ran
        r = runner.invoke(app, ["retry", jid[:12], "--failed", "--task", "0", *where])
        assert r.exit_code == 2 and "give either --failed or --task, not both" in r.output
    finally:
        led.close()


def test_byte_sizes_are_shown_in_binary_units():
    """One formatter everywhere, its labels matching what they mean (1 KiB = 1024 bytes)."""
    from types import SimpleNamespace

    from geoproc import htmlreport, report, units
    from geoproc.jobs import inventory_report as render

    assert report.human_bytes is units.human_bytes and render.human_bytes is units.human_bytes
    assert [report.human_bytes(n) for n in (0, 1023, 1536, 3 * 2**30, None)] == [
        "0 B", "1023 B", "1.5 KiB", "3.0 GiB", "-"]
    assert [htmlreport._bytes(n) for n in (None, 0, 2**20)] == ["-", "-", "1.0 MiB"]
    res = SimpleNamespace(metrics={"convert": {"tasks_per_s": 2.0, "retries": 1, "failed": 0, "span_s": 3.0,
                                               "busy_s": 5.5, "bytes_read": 1536, "bytes_written": None}})
    row = [line for line in _lines(report.metrics_table(res)) if "convert" in line][0]
    assert row.replace("│", " ").split() == ["convert", "2", "1", "0", "3.00s", "5.50s", "1.5", "KiB", "-"]
