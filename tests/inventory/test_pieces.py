"""The inventory pieces with plain numbers and a local directory: buckets, extensions, merging, sharding."""

from __future__ import annotations

import datetime as dt
import random

import pytest
from kit.inventory import LAYOUT, MB, expected

from geoproc.inventory import listing
from geoproc.inventory.filters import BlobFilter, normalize_suffix
from geoproc.inventory.listing import Blob, group_units, open_lister, plan_units
from geoproc.inventory.summary import MAX_KEYS, OTHER, Summary, bucket_of, extension_of, group_of, merge_all

GB = 1024 * MB


@pytest.mark.parametrize("size, label", [
    (0, "0-10 MB"), (10 * MB - 1, "0-10 MB"), (10 * MB, "10-100 MB"), (100 * MB - 1, "10-100 MB"),
    (100 * MB, "100 MB-1 GB"), (GB, "1-10 GB"), (10 * GB - 1, "1-10 GB"), (10 * GB, "10 GB+"), (10**15, "10 GB+"),
])
def test_size_buckets(size, label):
    assert bucket_of(size) == label


@pytest.mark.parametrize("name, ext", [
    ("a/b/x.TIF", ".tif"), ("x.tif.aux.xml", ".aux.xml"), ("README", "(none)"), ("d.x/README", "(none)"),
    (".hidden", "(none)"), ("a.tar.gz", ".tar.gz"), ("scene.JP2", ".jp2"),
])
def test_extension_of(name, ext):
    assert extension_of(name) == ext


def test_group_of_is_relative_to_the_listed_level():
    assert group_of("2024/01/x.tif", "") == "2024/"
    assert group_of("top.tif", "") == "(root)"
    assert group_of("2024/01/x.tif", "2024/") == "2024/01/"
    assert group_of("2024/x.tif", "2024/") == "(root)"


def _blob(name, size, day=1):
    return Blob(name, size, dt.datetime(2024, 1, day, tzinfo=dt.UTC), None, None)


def test_merge_is_order_independent_and_ties_break_by_name():
    blobs = [_blob(f"p{i % 4}/f{i}.{['tif', 'json', 'txt'][i % 3]}", (i * 7919) % 1000, 1 + i % 9)
             for i in range(300)]
    blobs.append(_blob("p0/zz_tie.tif", 999, 9))  # same size as the largest: the smaller name wins

    def summarize(chunk):
        s = Summary()
        for b in chunk:
            s.add(b, group_of(b.name, ""))
        return s

    whole = summarize(blobs).to_json()
    for seed in range(5):
        rnd = random.Random(seed)
        shuffled = blobs[:]
        rnd.shuffle(shuffled)
        cuts = sorted(rnd.sample(range(1, len(blobs)), 6))
        chunks = [shuffled[a:b] for a, b in zip([0, *cuts], [*cuts, len(blobs)], strict=True)]
        parts = [summarize(c).to_json() for c in chunks]
        rnd.shuffle(parts)
        assert merge_all(parts).to_json() == whole
    assert whole["files"] == 301 and whole["bytes"] == sum(b.size for b in blobs)
    largest = max(blobs, key=lambda b: (b.size, [-ord(c) for c in b.name]))
    assert whole["largest"]["name"] == largest.name and whole["largest"]["size"] == 999
    assert whole["oldest"]["last_modified"].startswith("2024-01-01")


def test_keyed_tables_are_capped_with_an_other_row():
    s = Summary()
    for i in range(MAX_KEYS + 50):
        s.add(_blob(f"f{i}.e{i}", i + 1), "(root)")
    out = s.to_json()
    assert len(out["by_extension"]) == MAX_KEYS
    assert sum(v["files"] for v in out["by_extension"].values()) == MAX_KEYS + 50
    assert out["by_extension"][OTHER]["files"] == 51  # the 51 smallest (by bytes) folded together


def test_filters():
    f = BlobFilter.from_params({"suffixes": ["tif", "_cog.TIF"], "min_size": 10, "max_size": 20,
                                "modified_after": "2024-01-02", "modified_before": "2024-01-05T00:00:00Z"})
    assert f.suffixes == (".tif", "_cog.tif")
    assert f(_blob("a.TIF", 10, 2)) and f(_blob("a.tif", 20, 4))
    assert not f(_blob("a.tif", 9, 2)) and not f(_blob("a.tif", 21, 2))
    assert not f(_blob("a.tif", 15, 1)) and not f(_blob("a.tif", 15, 5))  # before is exclusive
    assert not f(_blob("motif.json", 15, 3))
    assert normalize_suffix(".JSON") == ".json" and normalize_suffix("tif") == ".tif"


def _listed(lister, units):
    return [b.name for u in units for b in lister.iter_unit(u)]


@pytest.mark.parametrize("target", [1, 2, 3, 5, 8, 40])
@pytest.mark.parametrize("prefix", ["", "2024/", "2024/0", "misc/", "nothing/"])
def test_units_cover_every_blob_exactly_once(local_container, target, prefix):
    lister = open_lister(str(local_container))
    units = plan_units(lister, prefix, target)
    names = _listed(lister, units)
    want = [n for n, _ in LAYOUT if n.startswith(prefix)]
    assert sorted(names) == want  # each exactly once
    groups = group_units(units, target)
    assert len(groups) <= target and [u for g in groups for u in g] == units


def test_a_tree_unit_lists_in_name_order(local_container):
    lister = open_lister(str(local_container))
    names = [b.name for b in lister.iter_unit(("tree", ""))]
    assert names == [n for n, _ in LAYOUT]  # object-store order: 'a.tif' < 'a/...'


def test_deep_single_chain_stops_at_max_depth(local_container):
    lister = open_lister(str(local_container))
    units = plan_units(lister, "misc/deep/", 50, max_depth=2)
    assert _listed(lister, units) == ["misc/deep/a/b/c/blob.bin"]
    assert units == [("tree", "misc/deep/a/b/")]


def test_truncated_level_becomes_one_tree_unit(local_container):
    lister = open_lister(str(local_container))
    assert plan_units(lister, "", 50, max_probe=3) == [("tree", "")]


def test_expected_helper_matches_summary(local_container):
    lister = open_lister(str(local_container))
    s = Summary()
    for b in lister.iter_unit(("tree", "")):
        s.add(b, group_of(b.name, ""))
    got = s.to_json()
    want = expected(LAYOUT)
    assert got["files"] == want["files"] and got["bytes"] == want["bytes"]
    assert got["by_extension"] == dict(sorted(want["by_extension"].items(), key=lambda kv: (-kv[1]["bytes"], kv[0])))
    assert got["by_prefix"] == dict(sorted(want["by_prefix"].items(), key=lambda kv: (-kv[1]["bytes"], kv[0])))


def test_missing_directory_and_bad_container_names(tmp_path):
    assert not open_lister(str(tmp_path / "nope")).exists()
    with pytest.raises(ValueError, match="not a valid Azure container name"):
        listing.check_source("az://ab/x")
    with pytest.raises(ValueError, match="not a valid Azure container name"):
        listing.check_source("az://Upper-Case")
    assert listing.check_source("az://good-name/dir/") == "az://good-name/dir"
    assert listing.check_source("abfss://good-name@acct.dfs.core.windows.net/d") == \
        "abfss://good-name@acct.dfs.core.windows.net/d"


@pytest.mark.parametrize("spec", ["list_container.toml", "summarize_container.toml"])
def test_spec_files_validate(spec):
    from pathlib import Path

    from geoproc.api import load_spec
    from geoproc.jobs import get_job

    name, params = load_spec(Path(__file__).resolve().parents[2] / "jobs" / spec)
    model = get_job(name).validate(params)
    assert model.input == "az://bronze-rasters" and name == spec.removesuffix(".toml")


@pytest.mark.parametrize("job", ["list_container", "summarize_container"])
def test_descriptions_render_in_the_cli(job):
    """`geoproc list` prints help texts as rich markup: brackets would break it."""
    from rich.markup import render

    from geoproc.jobs import get_job

    jt = get_job(job)
    for p in jt.describe_params():
        render(p["help"])
    render(jt.description)
