"""The documented API against the real app: only /audit, /libraries and /references, and the README example runs."""

from __future__ import annotations

import contextlib
import io
import re

import pytest
from gradio_client import Client, handle_file

from tests.test_readme import README

DEMO = "demo library (read-only)"
DOCUMENTED = {"/audit", "/libraries", "/references"}


def readme_api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("### API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


def test_readme_api_example_runs_against_the_app(page, app_server):
    code = readme_api_example().replace("http://127.0.0.1:7860/", app_server.url)
    assert app_server.url in code
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md:API", "exec"), {"__name__": "readme_api_example"})
    printed = out.getvalue()
    assert DEMO in printed and "8 references" in printed
    assert "MATCH: seed 3 demo-llama-seed3" in printed


def test_only_the_documented_endpoints_are_listed_or_callable(page, app_server):
    client = Client(app_server.url, verbose=False)
    info = client.view_api(return_format="dict", print_info=False)
    assert set(info["named_endpoints"]) == DOCUMENTED and not info["unnamed_endpoints"]
    config = client.config
    for dep in config["dependencies"]:
        if dep.get("api_name") not in {e.strip("/") for e in DOCUMENTED}:
            assert dep["api_visibility"] == "private", dep.get("api_name")
            with pytest.raises(ValueError, match="Invalid function index"):
                client.predict(fn_index=dep["id"])
    for name in ("/remove", "/export", "/import_zip", "/start_1", "/poll_3"):
        with pytest.raises(ValueError):
            client.predict(api_name=name)


def test_api_audits_an_upload_and_reports_errors_in_one_line(page, app_server, small_model):
    client = Client(app_server.url, verbose=False)
    assert client.predict(api_name="/libraries")[:2] == [DEMO, "my library"]
    refs = client.predict(DEMO, api_name="/references")
    assert {r["seed"] for r in refs} >= {1, 3} and len({r["probe"] for r in refs}) == 1
    files = [handle_file(str(small_model / "config.json")), handle_file(str(small_model / "model.safetensors"))]
    verdict, record = client.predict(files, "", DEMO, refs[0]["probe"], "paper", api_name="/audit")
    assert verdict == "NO MATCH" and record["scan"]["verdict"]["label"] == "NO MATCH"
    assert record["probe_id"] == refs[0]["probe"] and record["scan"]["test"]["test"] == "paper"
    with pytest.raises(Exception, match="has no probe 'nope'"):
        client.predict([], "derived", DEMO, "nope", "calibrated", api_name="/audit")
    with pytest.raises(Exception, match="give the suspect"):
        client.predict([], "", DEMO, "", "calibrated", api_name="/audit")
