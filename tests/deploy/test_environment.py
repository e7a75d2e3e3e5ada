"""``environment.yml`` (conda-forge) asks for the same packages and versions as ``pyproject.toml``."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
# extras that environment.yml provides besides the core dependencies (the kubernetes extra is optional)
EXTRAS = ("postgres", "test")
# PyPI name -> conda-forge name, where they differ
CONDA_NAME: dict[str, str] = {"h3": "h3-py"}


def _req(spec: str) -> tuple[str, str]:
    """``"dask[array]>=2024.8"`` -> ``("dask", ">=2024.8")`` with the name normalized (PEP 503)."""
    m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*(?:\[[^\]]*\])?\s*(.*?)\s*", spec)
    assert m, spec
    return re.sub(r"[-_.]+", "-", m.group(1)).lower(), m.group(2).replace(" ", "")


def pyproject_requirements() -> dict[str, str]:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    reqs = [_req(r) for r in project["dependencies"]]
    for extra in EXTRAS:
        reqs += [_req(r) for r in project["optional-dependencies"][extra]]
    out: dict[str, str] = {}
    for name, spec in reqs:
        assert out.get(name, spec) == spec, f"{name} pinned twice differently in pyproject.toml"
        out[CONDA_NAME.get(name, name)] = spec
    out["python"] = project["requires-python"].replace(" ", "")
    return out


def environment_requirements() -> dict[str, str]:
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert env["channels"] == ["conda-forge"]
    out: dict[str, str] = {}
    for dep in env["dependencies"]:
        if isinstance(dep, dict):  # the pip: section, for packages conda-forge does not carry
            for spec in dep["pip"]:
                name, version = _req(spec)
                out[name] = version
            continue
        name, version = _req(dep)
        if name != "pip":
            out[name] = version
    return out


def test_environment_yml_matches_pyproject():
    want, have = pyproject_requirements(), environment_requirements()
    assert set(have) - set(want) == set(), "environment.yml lists packages pyproject.toml does not"
    assert set(want) - set(have) == set(), "pyproject.toml lists packages environment.yml does not"
    assert {k: have[k] for k in want} == want


def test_environment_yml_names_the_editable_install():
    text = (ROOT / "environment.yml").read_text()
    assert "pip install -e . --no-deps" in text  # conda brings the dependencies, pip only geoproc itself
    readme = (ROOT / "README.md").read_text()
    assert "conda env create -f environment.yml" in readme
