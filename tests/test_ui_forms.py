"""The app's page and forms without a browser: the tab layout, choices keyed by id, widths refused at once."""

from __future__ import annotations

import gradio as gr

from ui.app import build_blocks
from ui.context import AppConfig, Server, Throughput
from ui.jobs import JobQueue


def test_every_child_of_the_tabs_is_a_tab(tmp_path):
    """A task's hidden State and Timer between two tabs made the browser's tab bar grow a copy of each tab
    opened (#24); the browser test in tests/e2e/test_app.py watches the bar itself."""
    blocks = build_blocks(Server(AppConfig(), JobQueue(), Throughput()))
    tabs = [b for b in blocks.blocks.values() if isinstance(b, gr.Tabs)]
    assert tabs
    for t in tabs:
        assert [type(c).__name__ for c in t.children] == ["Tab"] * len(t.children)
