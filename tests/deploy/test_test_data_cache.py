"""Test data from Debian packages is downloaded once into a persistent cache and reused (``kit.debian``)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kit import debian

TESTS = Path(__file__).resolve().parents[1]


def test_a_cached_package_is_reused_without_apt_or_dpkg(terra_package, tmp_path, monkeypatch):
    assert (terra_package.root / ".complete").exists() and terra_package.deb and terra_package.deb.exists()
    monkeypatch.setenv("PATH", str(tmp_path))  # neither apt-get, apt-cache nor dpkg can run now
    again = debian.unpacked("r-cran-terra", terra_package.version)
    assert again.cached and not again.downloaded and not again.extracted
    assert again.root == terra_package.root and again.deb == terra_package.deb
    offline = debian.unpacked("r-cran-terra")  # no apt lists to ask: the cached version is used
    assert offline.cached and offline.root == terra_package.root
    assert next(again.root.rglob("terra/ex/elev.tif")).stat().st_size > 0


def _fake_deb(directory: Path, name: str, version: str) -> Path:
    """A one-file Debian package built here with dpkg-deb (no network, no apt)."""
    tree = directory / "pkg"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {name}\nVersion: {version}\nArchitecture: all\nMaintainer: geoproc tests <t@example.org>\n"
        "Description: a package the test-data cache tests extract\n")
    (tree / "usr/share" / name).mkdir(parents=True)
    (tree / "usr/share" / name / "data.txt").write_text("payload\n")
    deb = directory / f"{name}_{version}_all.deb"
    try:
        subprocess.run(["dpkg-deb", "--build", str(tree), str(deb)], check=True, capture_output=True)
    except (FileNotFoundError, subprocess.CalledProcessError) as exc:
        pytest.skip(f"dpkg-deb cannot build a package here: {exc}")
    return deb


def test_two_processes_starting_at_once_extract_a_cached_deb_once(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    name, version = "geoproc-cache-fixture", "1:1.0-1"  # an epoch, as some Debian versions have
    (cache / "debian").mkdir(parents=True)
    deb = _fake_deb(tmp_path, name, version)
    deb.rename(cache / "debian" / f"{name}_1%3a1.0-1_all.deb")  # as apt-get names a downloaded .deb
    env = {**os.environ, debian.CACHE_ENV: str(cache), "PYTHONPATH": str(TESTS)}
    code = ("import json, sys; from kit import debian; u = debian.unpacked(*sys.argv[1:]); "
            "print(json.dumps({'root': str(u.root), 'downloaded': u.downloaded, 'extracted': u.extracted}))")
    procs = [subprocess.Popen([sys.executable, "-c", code, name, version], env=env, stdout=subprocess.PIPE,
                              text=True) for _ in range(2)]
    outs = [json.loads(p.communicate(timeout=60)[0]) for p in procs]
    assert all(p.returncode == 0 for p in procs)
    assert outs[0]["root"] == outs[1]["root"] and not any(o["downloaded"] for o in outs)
    assert sorted(o["extracted"] for o in outs) == [False, True]  # one extracted, the other waited and reused
    root = Path(outs[0]["root"])
    assert (root / "usr/share" / name / "data.txt").read_text() == "payload\n"
    assert sorted(p.name for p in (cache / "debian").iterdir() if not p.name.endswith(".lock")) == [
        f"{name}_1%3a1.0-1", f"{name}_1%3a1.0-1_all.deb"]  # no temporaries left behind
    monkeypatch.setenv(debian.CACHE_ENV, str(cache))
    assert debian.unpacked(name, version).cached
