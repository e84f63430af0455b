"""Downloads cannot be enumerated: each lies under a folder of 128 random bits, and the old shared folder is not served."""

from __future__ import annotations

import re
import tempfile
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from .test_app import choose


def status_of(url: str) -> int:
    """HTTP status of a plain GET with no session or cookies."""
    try:
        with urllib.request.urlopen(url, timeout=30) as r:
            return r.status
    except urllib.error.HTTPError as exc:
        return exc.code


def download_urls(page) -> list[str]:
    """The links of a finished audit's two downloads (JSON record, HTML report), as the browser fetched them."""
    urls = []
    for button in ("#download-json", "#download-report"):
        with page.expect_download() as dl:
            page.click(button)
        urls.append(urllib.parse.unquote(dl.value.url))
    return urls


def test_audit_downloads_have_unguessable_urls_and_old_paths_are_refused(page, app_server):
    # a file where the app used to write audits: even present on disk, it must not be served
    old = Path(tempfile.gettempdir()) / "seedprints-exports" / "seedprints-audit-job1.json"
    old.parent.mkdir(parents=True, exist_ok=True)
    if not old.exists():
        old.write_text('{"planted": "by the download test"}')
    assert status_of(f"{app_server.url}gradio_api/file={old}") in (403, 404)

    choose(page, "demo-suspect", "derived")
    page.click("#run-audit")
    page.wait_for_selector("#audit-status .sp-msg-ok:has-text('audit of derived')", timeout=120_000)
    urls = download_urls(page)
    folders = set()
    for url in urls:
        assert "seedprints-exports" not in url and "job" not in url.rsplit("/", 1)[-1], url
        secret = re.search(r"/seedprints-([0-9a-f]{32})/seedprints-(audit|report)-", url)
        assert secret, f"no 128-bit random folder in {url}"
        folders.add(secret.group(1))
        assert status_of(url) == 200  # the holder of the link gets the file
    assert len(folders) == 1  # one folder per job holds both of its downloads
