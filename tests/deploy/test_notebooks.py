"""Every notebook in ``notebooks/`` runs top to bottom in a real Jupyter kernel, without an error."""

from __future__ import annotations

import base64
import io
import os
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
BUDGET_S = 90  # each notebook is meant to finish well under a minute on two cores


def test_there_are_notebooks():
    assert {p.name for p in NOTEBOOKS} >= {"quickstart.ipynb", "cog_quicklooks.ipynb", "tiled_plan.ipynb",
                                          "stac_browse.ipynb", "process.ipynb", "mosaic_stack.ipynb", "zonal_stats.ipynb", "zarr_ingest.ipynb"}


def execute(path: Path, workdir: Path):
    import nbformat
    from nbclient import NotebookClient

    nb = nbformat.read(path, as_version=4)
    assert all(not c.get("outputs") for c in nb.cells if c.cell_type == "code"), "commit notebooks without outputs"
    env_ledger = f"sqlite:///{workdir}/should-not-be-used.db"
    old = os.environ.get("GEOPROC_LEDGER")
    os.environ["GEOPROC_LEDGER"] = env_ledger  # the kernel inherits it; notebooks use their own ledgers
    try:
        client = NotebookClient(nb, timeout=180, kernel_name="python3",
                                resources={"metadata": {"path": str(workdir)}})
        t0 = time.perf_counter()
        client.execute()  # raises CellExecutionError on the first failing cell
        elapsed = time.perf_counter() - t0
    finally:
        if old is None:
            os.environ.pop("GEOPROC_LEDGER", None)
        else:
            os.environ["GEOPROC_LEDGER"] = old
    return nb, elapsed


def outputs(nb, mime: str) -> list:
    return [o["data"][mime] for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "data" in o and mime in o["data"]]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_runs(path, tmp_path):
    nb, elapsed = execute(path, tmp_path)
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
              if o.get("output_type") == "error"]
    assert not errors
    assert elapsed < BUDGET_S, f"{path.name} took {elapsed:.0f} s"
    assert not (tmp_path / "should-not-be-used.db").exists()
    text = "".join("".join(o.get("text", "")) for c in nb.cells for o in c.get("outputs", []))
    html = "".join(outputs(nb, "text/html"))
    if path.name == "quickstart.ipynb":
        assert "completed" in html and "same job: True | cached: True | tasks executed: 0" in text
    if path.name == "process.ipynb":
        assert "same job: True | cached: True | tasks executed: 0" in text and "equal to the xarray NDVI: True" in text
        assert len(outputs(nb, "image/png")) == 1  # the NDVI map
    if path.name == "mosaic_stack.ipynb":
        assert "copied rows exact: True" in text and "same job: True | cached: True | tasks executed: 0" in text
        assert len(outputs(nb, "image/png")) == 3  # the plan, the mosaic and its error, the flood depths
    if path.name == "zonal_stats.ipynb":
        assert "equal to exactextract: True" in text and "cached: True | tasks executed: 0" in text
        assert len(outputs(nb, "image/png")) == 2  # the two choropleths
    if path.name == "zarr_ingest.ipynb":
        assert "cached: True | tasks executed: 0" in text and "Datetime" in text
    for png in outputs(nb, "image/png"):  # every figure is a real, non-blank picture
        import numpy as np
        from PIL import Image

        img = np.asarray(Image.open(io.BytesIO(base64.b64decode(png))).convert("RGB"))
        assert img.shape[0] > 50 and img.shape[1] > 50 and len(np.unique(img.reshape(-1, 3), axis=0)) > 20
