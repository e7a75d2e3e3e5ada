"""Inventories of local directories and memory:// through the engine, and the CLI view."""

from __future__ import annotations

import json
import os

import fsspec
import pyarrow.parquet as pq
import pytest
from kit.inventory import LAYOUT, MB, expected, payload
from typer.testing import CliRunner

import geoproc
from geoproc.cli import app
from geoproc.errors import SourceNotFound
from geoproc.ledger import open_ledger

GB = 1024 * MB


def test_size_buckets_and_extremes_of_a_local_directory(sparse_sizes, dask_cluster, ledger_url):
    res = geoproc.run("summarize_container", input=str(sparse_sizes), cluster=dask_cluster, ledger=ledger_url)
    assert res.status == "completed", res.error
    s = res.result["summary"]
    assert s["size_buckets"] == {
        "0-10 MB": {"files": 2, "bytes": 10 * MB - 1},
        "10-100 MB": {"files": 1, "bytes": 10 * MB},
        "100 MB-1 GB": {"files": 1, "bytes": 150 * MB},
        "1-10 GB": {"files": 1, "bytes": 2 * GB},
        "10 GB+": {"files": 1, "bytes": 11 * GB},
    }
    assert (s["files"], s["bytes"]) == (6, 10 * MB - 1 + 10 * MB + 150 * MB + 13 * GB)
    assert (s["largest"]["name"], s["smallest"]["name"]) == ("f_11g.bin", "a_empty.bin")
    assert s["oldest"] == {"name": "a_empty.bin", "size": 0, "last_modified": "2020-09-13T12:26:40+00:00"}
    assert s["newest"]["name"] not in ("a_empty.bin", "f_11g.bin")
    assert res.result["source"] == str(sparse_sizes)  # the result still names the listed location "source"
    # ``source`` is the parameter's old name: the same job, listed again (an inventory is of the container now)
    with pytest.warns(DeprecationWarning, match="'source' is deprecated; use 'input'"):
        again = geoproc.run("summarize_container", source=str(sparse_sizes), cluster=dask_cluster, ledger=ledger_url)
    assert again.job_id == res.job_id and not again.cached and again.result == res.result


def test_local_summary_filters_and_modified_range(local_container, dask_cluster, ledger_url):
    for name, _ in LAYOUT:  # one day apart, in name order
        ts = 1_700_000_000 + 86_400 * LAYOUT.index((name, dict(LAYOUT)[name]))
        os.utime(local_container / name, (ts, ts))
    res = geoproc.run("summarize_container", input=str(local_container), shards=3, cluster=dask_cluster,
                      ledger=ledger_url)
    s, want = res.result["summary"], expected(LAYOUT)
    assert (s["files"], s["bytes"]) == (want["files"], want["bytes"])
    assert {k: v for k, v in s["by_extension"].items()} == want["by_extension"]
    assert s["oldest"]["name"] == LAYOUT[0][0] and s["newest"]["name"] == LAYOUT[-1][0]
    res = geoproc.run("summarize_container", input=str(local_container), cluster=dask_cluster, ledger=ledger_url,
                      modified_after="2023-11-16T22:13:20Z", modified_before="2023-11-19T22:13:20+00:00")
    assert [res.result["summary"][k]["name"] for k in ("oldest", "newest")] == [LAYOUT[2][0], LAYOUT[4][0]]
    assert res.result["summary"]["files"] == 3


def test_list_container_to_a_local_directory_replaces_stale_parts(local_container, tmp_path, dask_cluster,
                                                                  ledger_url):
    out = tmp_path / "out"
    (out / "inventory.parquet").mkdir(parents=True)
    pq.write_table(pq.read_table(_tiny_parquet(tmp_path)), out / "inventory.parquet" / "part-99999.parquet")
    res = geoproc.run("list_container", input=str(local_container), prefix="2024/", output=str(out), shards=2,
                      cluster=dask_cluster, ledger=ledger_url)
    assert res.status == "completed", res.error
    assert not (out / "inventory.parquet" / "part-99999.parquet").exists()
    assert not (out / "_parts").exists()
    table = pq.read_table(out / "inventory.parquet")
    want = [(n, s) for n, s in LAYOUT if n.startswith("2024/")]
    assert sorted(zip(table.column("name").to_pylist(), table.column("size").to_pylist(), strict=True)) == want
    assert table.column("url").to_pylist()[0].startswith(str(local_container) + "/2024/")
    lines = (out / "inventory.csv").read_text().splitlines()
    assert len(lines) == 1 + len(want) and lines[0].startswith('"url","name","extension","size"')
    with pytest.warns(DeprecationWarning, match="'source' is deprecated; use 'input'"):
        again = geoproc.run("list_container", source=str(local_container), prefix="2024/", output=str(out),
                            shards=2, cluster=dask_cluster, ledger=ledger_url)
    assert again.job_id == res.job_id and not again.cached and again.result == res.result


def _tiny_parquet(tmp_path):
    import pyarrow as pa

    p = tmp_path / "tiny.parquet"
    pq.write_table(pa.table({"x": [1]}), p)
    return p


def test_missing_local_directory(tmp_path, dask_cluster, ledger_url):
    with pytest.raises(SourceNotFound, match="does not exist"):
        geoproc.run("summarize_container", input=str(tmp_path / "nope"), cluster=dask_cluster, ledger=ledger_url)


def test_invalid_params_name_the_problem():
    from geoproc.errors import InvalidParams

    with pytest.raises(InvalidParams, match="not a valid Azure container name"):
        geoproc.run("summarize_container", input="az://X")
    with pytest.raises(InvalidParams, match="min_size .* is larger than max_size"):
        geoproc.run("summarize_container", input="/tmp", min_size="2MB", max_size=10)
    with pytest.raises(InvalidParams, match="output"):
        geoproc.run("list_container", input="/tmp")
    with pytest.raises(InvalidParams, match="query strings"):
        geoproc.run("list_container", input="az://box/x?sv=2024&sig=SECRET", output="/tmp/o")
    with pytest.raises(InvalidParams, match="'source' is the old name of 'input'; give only 'input'"):
        geoproc.run("summarize_container", input="/tmp", source="/tmp")


def test_memory_filesystem_with_an_in_process_cluster(tmp_path):
    from distributed import Client, LocalCluster

    fs = fsspec.filesystem("memory")
    for name, size in LAYOUT:
        fs.pipe(f"/inv-mem/{name}", payload(name, size))
    with LocalCluster(n_workers=1, processes=False, dashboard_address=None) as cluster, Client(cluster) as client:
        res = geoproc.run("list_container", input="memory://inv-mem", output="memory://inv-mem-out", shards=4,
                          cluster=client, ledger=f"sqlite:///{tmp_path}/l.db")
    assert res.status == "completed", res.error
    assert res.result["summary"]["files"] == len(LAYOUT)
    assert len(fs.cat("/inv-mem-out/inventory.csv").decode().splitlines()) == 1 + len(LAYOUT)
    assert json.loads(fs.cat("/inv-mem-out/summary.json"))["summary"]["bytes"] == expected(LAYOUT)["bytes"]
    fs.rm("/inv-mem", recursive=True)
    fs.rm("/inv-mem-out", recursive=True)


def test_memory_filesystem_on_a_process_cluster_explains_itself(tmp_path, dask_cluster):
    fs = fsspec.filesystem("memory")
    fs.pipe("/inv-mem-only-here/a.tif", b"x")
    ledger = f"sqlite:///{tmp_path}/l.db"
    res = geoproc.run("summarize_container", input="memory://inv-mem-only-here", cluster=dask_cluster,
                      ledger=ledger)
    assert res.status == "failed"
    (task,) = open_ledger(ledger).list_tasks(res.job_id, status="failed")
    assert task["error_code"] == "SOURCE_NOT_FOUND" and "in-process cluster" in task["error_message"]
    fs.rm("/inv-mem-only-here", recursive=True)


def test_cli_shows_tables_and_json(local_container, dask_cluster, ledger_url):
    runner = CliRunner()
    args = ["run", "summarize_container", "--set", f"input={local_container}", "--set", "suffixes=[\"tif\"]",
            "--cluster", dask_cluster, "--ledger", ledger_url]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    tifs = [n for n, _ in LAYOUT if n.lower().endswith(".tif")]
    assert "By extension" in r.output and "By top-level prefix" in r.output and "10 GB+" in r.output
    assert f"{len(tifs)}" in r.output
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0
    assert json.loads(r.stdout)["result"]["summary"]["files"] == len(tifs)  # progress goes to stderr
