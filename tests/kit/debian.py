"""Real-world files nobody here wrote, from Debian packages, downloaded once and kept between runs.

``unpacked(package)`` returns the package's files extracted under a persistent cache directory
(``$GEOPROC_TEST_CACHE``, else ``~/.cache/geoproc/test-data``), keyed by package name and version:

    <cache>/debian/<name>_<version>_<arch>.deb    the downloaded package
    <cache>/debian/<name>_<version>/              its files (``dpkg -x``), complete or absent

A second run finds the tree and runs neither ``apt-get`` nor ``dpkg``; with only the ``.deb`` present it
extracts again without downloading. Two pytest processes that start at once serialise on a lock file per
package and version, and every file appears by an atomic rename of a finished temporary, so an
interrupted run leaves no half-written package or tree behind. Without network or apt lists, a version
already in the cache is used.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "GEOPROC_TEST_CACHE"


class PackageUnavailable(RuntimeError):
    """The package is neither in the cache nor downloadable (no network, no apt, unknown name)."""


@dataclass(frozen=True)
class Unpacked:
    """A package's extracted files; ``downloaded``/``extracted`` say what this call had to do."""

    package: str
    version: str
    root: Path
    deb: Path | None
    downloaded: bool
    extracted: bool

    @property
    def cached(self) -> bool:
        """True when the package's files were already in the cache (nothing downloaded or extracted)."""
        return not (self.downloaded or self.extracted)


def cache_dir() -> Path:
    base = os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "geoproc" / "test-data"
    return Path(base) / "debian"


def _quote(version: str) -> str:
    """A version as apt-get names it in a .deb file name (the epoch colon becomes %3a)."""
    return version.replace(":", "%3a")


def candidate_version(package: str) -> str | None:
    """The version ``apt-get download`` would fetch, from the local apt lists (no network)."""
    try:
        out = subprocess.run(["apt-cache", "show", "--no-all-versions", package], capture_output=True,
                             text=True, env={**os.environ, "LC_ALL": "C"}, check=True).stdout
    except (FileNotFoundError, subprocess.CalledProcessError):
        return None
    for line in out.splitlines():
        if line.startswith("Version:"):
            return line.split(":", 1)[1].strip()
    return None


def _cached_versions(cache: Path, package: str) -> list[str]:
    return sorted(p.name[len(package) + 1:].replace("%3a", ":") for p in cache.glob(f"{package}_*")
                  if p.is_dir() and not p.name.startswith(".") and (p / ".complete").exists())


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _download(package: str, version: str, cache: Path) -> Path:
    """``apt-get download`` into a private temporary directory, then rename the .deb into the cache."""
    with tempfile.TemporaryDirectory(dir=cache, prefix=f".{package}.download-") as tmp:
        try:
            subprocess.run(["apt-get", "download", f"{package}={version}"], cwd=tmp, check=True,
                           capture_output=True, text=True)
        except FileNotFoundError as exc:
            raise PackageUnavailable(f"{package}: apt-get is not available ({exc})") from None
        except subprocess.CalledProcessError as exc:
            raise PackageUnavailable(f"{package}={version}: apt-get download failed: "
                                     f"{(exc.stderr or '').strip()[-500:]}") from None
        debs = list(Path(tmp).glob(f"{package}_*.deb"))
        if len(debs) != 1:
            raise PackageUnavailable(f"{package}={version}: apt-get download left {debs}")
        target = cache / debs[0].name
        os.replace(debs[0], target)
        return target


def _extract(deb: Path, target: Path) -> None:
    """``dpkg -x`` into a temporary directory beside ``target``, mark it complete, rename it into place."""
    tmp = Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}.extract-"))
    try:
        subprocess.run(["dpkg", "-x", str(deb), str(tmp)], check=True, capture_output=True)
        (tmp / ".complete").write_text(deb.name + "\n")
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def unpacked(package: str, version: str | None = None) -> Unpacked:
    """The files of Debian package ``package`` (the apt candidate, unless ``version``), from the cache.

    Raises ``PackageUnavailable`` when they are neither cached nor downloadable.
    """
    cache = cache_dir()
    cache.mkdir(parents=True, exist_ok=True)
    if version is None:
        version = candidate_version(package)
    if version is None:
        known = _cached_versions(cache, package)
        if not known:
            raise PackageUnavailable(f"{package}: no apt candidate and nothing cached in {cache}")
        version = known[-1]
    key = f"{package}_{_quote(version)}"
    target = cache / key
    if (target / ".complete").exists():
        return Unpacked(package, version, target, _deb_of(cache, key), downloaded=False, extracted=False)
    with _locked(cache / f".{key}.lock"):
        if (target / ".complete").exists():  # another process finished it while this one waited
            return Unpacked(package, version, target, _deb_of(cache, key), downloaded=False, extracted=False)
        deb = _deb_of(cache, key)
        downloaded = deb is None
        if deb is None:
            deb = _download(package, version, cache)
        if target.exists():  # a tree without its mark: left by a run that died mid-rename
            shutil.rmtree(target)
        _extract(deb, target)
    return Unpacked(package, version, target, deb, downloaded=downloaded, extracted=True)


def _deb_of(cache: Path, key: str) -> Path | None:
    return next(iter(sorted(cache.glob(f"{key}_*.deb"))), None)
