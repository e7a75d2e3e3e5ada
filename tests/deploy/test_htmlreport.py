"""The HTML job report, rendered by real headless Chromium; its quicklooks read back and compared with the data."""

from __future__ import annotations

import base64
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from kit import reportjobs  # registers the quicklook_demo job type
from PIL import Image

import geoproc
from geoproc.htmlreport import render_html, write_html_report
from geoproc.ledger import open_ledger

GEOPROC = Path(sys.executable).with_name("geoproc")
AMBER = (0xB7, 0x79, 0x1F)  # the completed_with_errors badge


@pytest.fixture
def quicklook_job(raster_factory, tmp_path, threaded_client):
    """A finished quicklook_demo job over three real GeoTIFFs and one corrupt file."""
    inputs = tmp_path / "inputs"
    rng = np.random.default_rng(7)
    raster_factory("ramp.tif", directory=inputs, size=(256, 192))
    raster_factory("noise.tif", directory=inputs, size=(200, 200), dtype="uint16",
                   data=rng.integers(0, 4000, (1, 200, 200), dtype="uint16"))
    yy, xx = np.mgrid[0:300, 0:120]
    raster_factory("dem.tif", directory=inputs, size=(120, 300), dtype="int16", crs="EPSG:4326",
                   bounds=(10.0, 45.0, 10.4, 46.0), data=(np.hypot(xx - 60, yy - 150) * 3).astype("int16")[None])
    (inputs / "broken.tif").write_bytes(b"II*\x00 this is not a raster")
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    res = geoproc.run("quicklook_demo", inputs=str(inputs), out=str(tmp_path / "quicklooks"), size=64,
                      cluster=threaded_client, ledger=ledger)
    assert res.status == "completed_with_errors", res
    return res, ledger, inputs


def _expected(src: Path) -> np.ndarray:
    return reportjobs.colour(reportjobs.quicklook_array(str(src), 64))


def test_report_renders_stages_errors_and_quicklooks_in_chromium(quicklook_job, tmp_path, chromium):
    res, ledger, inputs = quicklook_job
    out = tmp_path / "report.html"
    r = subprocess.run([str(GEOPROC), "report", res.job_id[:10], "--html", str(out), "--ledger", ledger],
                       capture_output=True, text=True, timeout=120, env=os.environ)
    assert r.returncode == 0, r.stderr
    assert out.exists()

    dom = chromium("--dump-dom", out.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    html = dom.stdout
    assert res.job_id in html and "completed_with_errors" in html
    stages = re.findall(r'<tr class="stage"><td><b>([^<]+)</b>', html)
    assert stages == ["quicklook"]
    # the failed task with its code and remediation sentence
    assert "CORRUPT_RASTER" in html and "broken.tif" in html and "gdalinfo" in html

    # every quicklook is embedded and decodes to the PNG of its raster's pixels
    imgs = re.findall(r'<img src="data:image/png;base64,([^"]+)" alt="([^"]+)"', html)
    assert sorted(alt for _, alt in imgs) == ["dem.tif", "noise.tif", "ramp.tif"]
    for data, alt in imgs:
        png = base64.b64decode(data)
        assert png.startswith(b"\x89PNG\r\n\x1a\n")
        got = np.asarray(Image.open(io.BytesIO(png)).convert("RGB"))
        want = _expected(inputs / alt)
        assert got.shape == want.shape and got.shape[0] <= 64 and got.shape[1] <= 64
        np.testing.assert_array_equal(got, want)
    # the images differ from each other: they are pictures of different data
    assert len({d for d, _ in imgs}) == 3

    shot = tmp_path / "report.png"
    s = chromium("--screenshot=" + str(shot), "--window-size=1200,1600", out.as_uri())
    assert s.returncode == 0 and shot.exists(), s.stderr[-2000:]
    img = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert img.shape == (1600, 1200, 3)
    assert len(np.unique(img.reshape(-1, 3), axis=0)) > 200  # not blank
    # the status badge and the quicklooks were painted: the badge's amber, viridis' yellow and purple
    assert (np.abs(img - AMBER).max(axis=2) <= 2).sum() > 200
    top = np.array([253, 231, 37])
    bottom = np.array([68, 1, 84])
    assert (np.abs(img - top).max(axis=2) <= 12).sum() > 100
    assert (np.abs(img - bottom).max(axis=2) <= 12).sum() > 100


def test_report_lists_unreadable_quicklooks_and_hides_secrets(quicklook_job, tmp_path):
    res, ledger, inputs = quicklook_job
    (tmp_path / "quicklooks" / "noise.png").unlink()
    secret_url = "az://previews/ql/a.png?sv=2024-01-01&sig=TOPSECRETSIGNATURE"
    led = open_ledger(ledger)
    try:
        job = led.get_job(res.job_id)
        led.update_job(res.job_id, result={**job.result, "quicklooks": [*job.result["quicklooks"], secret_url]})
        page = render_html(led, res.job_id, storage_options={})
    finally:
        led.close()
    assert page.count("<img ") == 2
    assert "noise.tif" in page and "not shown: FileNotFoundError" in page
    assert "az://previews/ql/a.png" in page and "TOPSECRETSIGNATURE" not in page and "sv=2024" not in page


def test_report_of_a_job_without_quicklooks(tmp_path, threaded_client):
    ledger = f"sqlite:///{tmp_path}/ledger.db"
    res = geoproc.run("hello_world", n=6, cluster=threaded_client, ledger=ledger)
    path = write_html_report(res.job_id, tmp_path / "r" / "hello.html", ledger=ledger)
    page = path.read_text()
    assert re.findall(r'<tr class="stage"><td><b>([^<]+)</b>', page) == ["greet", "reply"]
    # one column per task status, then the metrics; no bytes were moved, so read/written show "-"
    assert re.findall(r"<th>([^<]+)</th>", page)[:12] == [
        "stage", "tasks", "completed", "failed", "skipped", "pending", "cancelled", "retries", "span", "busy",
        "tasks/s", "read"]
    row = re.search(r'<tr class="stage"><td><b>greet</b>.*?</tr>', page).group(0)
    assert re.findall(r'<td class="n">([^<]*)</td>', row)[:6] == ["6", "6", "0", "0", "0", "0"]
    assert re.findall(r'<td class="n">([^<]*)</td>', row)[-2:] == ["-", "-"]
    assert "This job lists no quicklooks." in page and "No errors." in page
    assert "<svg class=\"timeline\"" in page and page.count("<rect ") == 2
