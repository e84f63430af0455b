"""The exported HTML report opens with no network, shows the verdict and figures, and its command reproduces."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys
from pathlib import Path

from .test_app import ROOT, choose


def test_report_opens_offline_and_its_command_reproduces(page, browser, app_server, tmp_path):
    choose(page, "demo-suspect", "derived")
    page.click("#run-audit")
    page.wait_for_selector("#audit-status .sp-msg-ok", timeout=120_000)
    with page.expect_download() as dl:
        page.click("#download-report")
    report = tmp_path / "report.html"
    report.write_bytes(Path(dl.value.path()).read_bytes())

    ctx = browser.new_context(offline=True)
    requests: list[str] = []
    ctx.on("request", lambda r: requests.append(r.url))
    pg = ctx.new_page()
    pg.goto(report.as_uri())
    assert pg.get_attribute("#verdict", "data-label") == "MATCH"
    assert "MATCH: seed 3" in pg.inner_text("#verdict")
    pg.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length === 3")
    traces = pg.evaluate("() => [...document.querySelectorAll('.js-plotly-plot')].map(p => p._fullData.length)")
    assert all(t >= 1 for t in traces), traces
    assert pg.evaluate("() => document.querySelector('#fig-heatmap')._fullData[0].z.length") == 9
    assert all(u.startswith(("file:", "data:", "blob:", "about:")) for u in requests), requests
    command = pg.inner_text("#command").strip()
    ctx.close()
    # on a phone the report is as wide as the screen: its hashes wrap, its table scrolls in its box
    phone = browser.new_context(offline=True, viewport={"width": 390, "height": 844}, is_mobile=True)
    pg = phone.new_page()
    pg.goto(report.as_uri())
    pg.wait_for_function("() => document.querySelectorAll('.js-plotly-plot').length === 3")
    width = pg.evaluate("() => Math.max(window.innerWidth, document.documentElement.scrollWidth)")
    assert width <= 391, f"the report lays out {width}px wide on a 390px phone screen"
    phone.close()

    args = shlex.split(command)
    assert args[:2] == ["seedprints", "scan"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SEEDPRINTS_HOME": str(app_server.data_dir)}
    out = subprocess.run([sys.executable, "-m", "seedprints", *args[1:], "--json", "-q"], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    verdict = json.loads(out.stdout)["verdict"]
    assert (verdict["label"], verdict["seed"]) == ("MATCH", 3)
