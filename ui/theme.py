"""The app's Gradio theme and the path of its stylesheet in assets/ (system fonts only: no font download)."""

from __future__ import annotations

from pathlib import Path

import gradio as gr

ASSETS = Path(__file__).resolve().parents[1] / "assets"
CSS_PATH = ASSETS / "seedprints.css"


def theme() -> gr.themes.Base:
    """Soft theme in indigo and slate with the platform's own fonts."""
    return gr.themes.Soft(primary_hue="indigo", neutral_hue="slate",
                          font=["system-ui", "-apple-system", "Segoe UI", "Roboto", "sans-serif"],
                          font_mono=["ui-monospace", "SFMono-Regular", "Menlo", "monospace"])


def css() -> str:
    """The stylesheet text."""
    return CSS_PATH.read_text(encoding="utf-8")
