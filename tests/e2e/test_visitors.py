"""Two browsers on one server: on a public server neither reaches the other's library or downloads; locally they share.

A audits and builds a library; B tries A's download links, the old export path patterns and every library
action on A's entries (list, remove, export, audit against, the API), and gets nothing.  On a local
server the same steps keep today's behaviour: one shared 'my library', links served to whoever holds them.
"""

from __future__ import annotations

import tempfile
import time
import urllib.parse
from pathlib import Path

from gradio_client import Client

from seedprints.demo import DEMO_PROBE
from seedprints.library import Library

from helpers import open_page
from .test_app import choose, wait_uploaded
from .test_downloads import download_urls, status_of


def library_tab(pg) -> None:
    pg.click("button[role=tab]:has-text('Library')")
    pg.wait_for_selector("#library-msg:has-text('in my library')")


def add_upload(pg, model: Path, name: str) -> None:
    """Fingerprint ``model`` (uploaded) into my library as ``name``, seed 5."""
    library_tab(pg)
    pg.click("#add-source label:has-text('upload files')")
    pg.set_input_files("#add-upload input[type=file]", [str(model / "config.json"), str(model / "model.safetensors")])
    wait_uploaded(pg, "add-upload", "model.safetensors")
    pg.fill("#add-name textarea, #add-name input", name)
    pg.fill("#add-family textarea, #add-family input", "visitors")
    pg.fill("#add-seed textarea, #add-seed input", "5")
    choose(pg, "add-probe", DEMO_PROBE.id)  # 'demo probe (id ...)', or 'library probe id' once the library uses it
    pg.click("#add-btn")
    pg.wait_for_selector(f"#add-status .sp-msg-ok:has-text('Added {name}')", timeout=120_000)
    pg.wait_for_selector(f"#library-table:has-text('{name}')")


def export_link(pg) -> str:
    pg.click("text=Remove, export, import")
    pg.click("#export-btn")
    pg.wait_for_selector("#library-msg .sp-msg-ok:has-text('Exported')")
    return urllib.parse.unquote(pg.get_attribute("#export-file a", "href"))


def audit_my_library(pg) -> tuple[str, list[str]]:
    """Audit the 'derived' demo suspect against my library; the verdict and the two download links."""
    pg.click("button[role=tab]:has-text('Audit')")
    choose(pg, "audit-library", "my library")
    pg.wait_for_function("() => document.querySelector('#audit-probe input').value.includes('library probe')")
    pg.click("#run-audit")
    pg.wait_for_selector("#audit-status .sp-msg-ok:has-text('audit of derived')", timeout=120_000)
    return pg.inner_text("#verdict .sp-verdict-label"), download_urls(pg)


def old_patterns(server, urls: list[str]) -> list[str]:
    """URLs B can build for A's files without A's link: the former shared export folder, A's file names in other folders."""
    old = Path(tempfile.gettempdir()) / "seedprints-exports"
    guesses = [f"{server.url}gradio_api/file={old}/seedprints-audit-job{n}.json" for n in range(1, 6)]
    guesses += [f"{server.url}gradio_api/file={old}/seedprints-library-my-library-{int(time.time())}.zip"]
    for url in urls:  # the same file name one folder up: the random folder is the only way in
        parent, _secret_folder, name = url.rsplit("/", 2)
        guesses.append(f"{parent}/{name}")
    return guesses


def test_public_visitors_never_reach_each_other(browser, public_server, small_model):
    ctx_a, a = open_page(browser, public_server)
    library_tab(a)
    assert "temporary" in a.inner_text("#library-owner")
    assert "0 reference(s) in my library" in a.inner_text("#library-msg")
    add_upload(a, small_model, "a-secret-seed5")
    a_export = export_link(a)
    verdict, a_urls = audit_my_library(a)
    assert verdict == "NO MATCH"  # against A's own library: its one seed-5 reference
    for url in (*a_urls, a_export):
        assert status_of(url) == 200  # A's own links work

    ctx_b, b = open_page(browser, public_server)
    library_tab(b)
    assert "0 reference(s) in my library" in b.inner_text("#library-msg")
    assert "a-secret-seed5" not in b.inner_text("#library-table")
    b.click("text=Remove, export, import")
    b.click("#remove-name input")
    assert b.locator("ul[role=listbox] li", has_text="a-secret").count() == 0
    b.keyboard.press("Escape")
    b.click("#remove-btn")  # nothing of A's to choose; removing with no name is refused
    b.wait_for_selector("#library-msg .sp-msg-error:has-text('choose the reference')")
    b.click("#export-btn")
    b.wait_for_selector("#library-msg .sp-msg-error:has-text('my library is empty')")
    b.click("button[role=tab]:has-text('Audit')")
    choose(b, "audit-library", "my library")
    b.click("#run-audit")
    b.wait_for_selector("#audit-status .sp-msg-error:has-text('my library is empty')")
    for url in old_patterns(public_server, [*a_urls, a_export]):
        assert status_of(url) in (403, 404), url

    # the API: an anonymous caller gets the demo library only, and no page handler
    client = Client(public_server.url, verbose=False)
    assert client.predict(api_name="/libraries") == ["demo library (read-only)"]
    for call in (lambda: client.predict("my library", api_name="/references"),
                 lambda: client.predict([], "derived", "my library", "", "calibrated", api_name="/audit")):
        try:
            call()
            raise AssertionError("the API reached a visitor's library")
        except Exception as exc:  # noqa: BLE001 (gradio_client raises AppError)
            assert "my library" in str(exc)
    assert set(client.view_api(return_format="dict", print_info=False)["named_endpoints"]) == {
        "/audit", "/libraries", "/references"}

    # A's library is still A's; when A's session ends, A's links lead nowhere, whoever holds them
    ctx_a.close()
    deadline = time.monotonic() + 90
    while any(status_of(u) == 200 for u in (*a_urls, a_export)) and time.monotonic() < deadline:
        time.sleep(2)
    for url in (*a_urls, a_export):
        assert status_of(url) in (403, 404), url
    kept = [[r.name for r in Library(p).list()] for p in (public_server.data_dir / "visitors").glob("*/library")]
    assert ["a-secret-seed5"] in kept and all("a-secret-seed5" not in names or len(names) == 1 for names in kept)
    ctx_b.close()


def test_one_job_per_visitor_on_a_public_server(browser, public_server):
    ctx, pg = open_page(browser, public_server)
    pg.click("#robustness")
    pg.click("#robust-btn")  # six fingerprints: long enough to submit something else meanwhile
    pg.wait_for_selector("#robust-status [data-state]", timeout=60_000)
    pg.click("#run-audit")
    msg = pg.wait_for_selector("#audit-status .sp-msg-error").inner_text()
    assert "already have a job" in msg and "robustness check" in msg and "\n" not in msg.strip()
    pg.click("#robust-cancel")
    pg.wait_for_selector("#robust-status:has-text('Cancel')", timeout=60_000)
    ctx.close()


def test_local_server_keeps_one_shared_library(browser, app_server, small_model):
    ctx_a, a = open_page(browser, app_server)
    add_upload(a, small_model, "shared-seed5")
    _, a_urls = audit_my_library(a)
    ctx_b, b = open_page(browser, app_server)
    library_tab(b)
    assert "shared-seed5" in b.inner_text("#library-table")  # one 'my library' for everyone on this computer
    assert b.locator("#library-owner").is_hidden()
    ctx_a.close()
    time.sleep(3)
    for url in a_urls:
        assert status_of(url) == 200  # links live on as before
    b.click("text=Remove, export, import")
    choose(b, "remove-name", "shared-seed5")
    b.click("#remove-btn")
    b.wait_for_selector("#library-msg .sp-msg-ok:has-text('Removed shared-seed5')")
    ctx_b.close()
