"""Browser-test fixtures: the real app in a subprocess, and headless Debian Chromium driven by Playwright.

Every test below this folder is marked ``browser`` (deselect them with ``-m "not browser"``).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from helpers import READY_TIMEOUT, open_page

HERE = Path(__file__).resolve().parent
ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = os.environ.get("SEEDPRINTS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                 "--disable-background-networking", "--disable-component-update", "--disable-dev-shm-usage"]


@pytest.hookimpl(tryfirst=True)  # before -m deselects
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.browser)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServer:
    """A running ``python app.py`` with its own data folder; ``url`` serves the page."""

    def __init__(self, data_dir: Path, extra: list[str] | None = None) -> None:
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self.log = data_dir.parent / f"app-{self.port}.log"
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "GRADIO_ANALYTICS_ENABLED": "False"}
        env.pop("SEEDPRINTS_HOME", None)
        self.started = time.monotonic()
        self.proc = subprocess.Popen([sys.executable, str(ROOT / "app.py"), "--port", str(self.port), "--data-dir",
                                      str(data_dir), *(extra or [])], cwd=ROOT, env=env,
                                     stdout=open(self.log, "w"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"app.py exited with {self.proc.returncode}: {self.log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(self.url, timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.3)
        raise RuntimeError(f"app.py did not answer within {READY_TIMEOUT} s: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()


@pytest.fixture(scope="session")
def app_server(tmp_path_factory) -> Iterator[AppServer]:
    server = AppServer(tmp_path_factory.mktemp("e2e") / "home")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.fail(f"{CHROMIUM} is missing: run scripts/test.sh, which installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture()
def page(browser, app_server):
    ctx, pg = open_page(browser, app_server)
    yield pg
    ctx.close()


def save_llama(folder: Path, seed: int, layers: int, intermediate: int) -> Path:
    """Save a real random-init llama (vocabulary 1024, hidden size 256, like the demo family) from ``seed``."""
    from seedprints.tiny import tiny_llama

    tiny_llama(seed, hidden=256, layers=layers, vocab=1024, intermediate=intermediate).save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def big_suspect(tmp_path_factory) -> Path:
    """24 layers: slow enough on a CPU to watch and cancel its extraction."""
    return save_llama(tmp_path_factory.mktemp("models") / "big-suspect", seed=1234, layers=24, intermediate=1024)


@pytest.fixture(scope="session")
def small_model(tmp_path_factory) -> Path:
    """2 layers, seed 5: a model to upload or add to a library."""
    return save_llama(tmp_path_factory.mktemp("models") / "small-seed5", seed=5, layers=2, intermediate=512)


@pytest.fixture(scope="session")
def public_server(app_server) -> Iterator[AppServer]:
    """A second app process in public mode on the same data folder, started once the first built the demo."""
    marker = app_server.data_dir / "demo" / "demo.json"
    deadline = time.monotonic() + READY_TIMEOUT
    while not marker.is_file() and time.monotonic() < deadline:
        time.sleep(0.5)
    server = AppServer(app_server.data_dir, extra=["--public", "--max-upload-mb", "20"])
    yield server
    server.stop()
