"""The Gradio Blocks app: Audit, Library, Learn and About tabs over one background worker queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from seedprints.demo import SUSPECTS, build_demo
from seedprints.paths import home

from . import views
from .about_tab import build_about_tab
from .audit_tab import audit_probe_choices, build_audit_tab
from .context import DEMO_LIBRARY, MY_LIBRARY, AppConfig, Server, Throughput, libraries, open_library
from .jobs import JobQueue
from .learn_tab import build_learn_tab
from .library_tab import add_probe_choices, build_library_tab, library_view
from .tasks import TaskView, watch

INTRO = """# SeedPrints: which training seed does this model come from?
Load a suspect checkpoint, pick a reference library of models whose training seeds are known, and
SeedPrints tests whether the suspect shares its **initialisation seed** with any of them, from the
activations its body produces on a fixed random probe. Every verdict comes with the numbers behind it."""


def start_server(cfg: AppConfig) -> Server:
    """The shared state of one app process; the demo library starts building on the worker at once."""
    server = Server(cfg, JobQueue(), Throughput())
    server.demo_job = server.queue.submit("preparing the demo library", lambda job: build_demo(progress=job.progress))
    return server


def demo_ready(_paths: Any) -> str:
    """The banner once the demo library is built."""
    return (f"Demo library ready: {len(open_library(DEMO_LIBRARY))} reference models with known seeds, "
            f"{len(SUSPECTS)} demo suspects.")


def library_choices(current: str) -> Any:
    """Dropdown of the libraries on this server, keeping ``current`` when it is still there."""
    labels = list(libraries())
    return gr.Dropdown(choices=labels, value=current if current in labels else labels[0])


def build_blocks(server: Server) -> gr.Blocks:
    """Lay out the page (banner and tabs) and wire what crosses tabs; returns the Blocks."""
    cfg = server.cfg
    # public mode: Gradio's cache (uploads, downloads) is swept hourly as well (each job deletes its uploads at its end)
    with gr.Blocks(title="SeedPrints", delete_cache=(3600, 3600) if cfg.public else None) as blocks:
        gr.Markdown(INTRO, elem_id="intro")
        if cfg.public:
            gr.Markdown(f"Public server: uploads up to {cfg.max_upload_bytes / 2**20:,.0f} MB, no local paths, "
                        "no remote code; uploaded files are deleted after each audit.", elem_classes="sp-note")
        startup = gr.HTML(views.message("Starting..."), elem_id="startup")
        with gr.Tabs(elem_id="tabs"):
            audit = build_audit_tab(server)
            library = build_library_tab(server)
            build_learn_tab(server.queue)
            build_about_tab()

        # the demo build refreshes the audit's probe list when it is ready
        if server.demo_job is not None:
            banner = TaskView(startup, [audit.probe_choice], lambda _, lib: [audit_probe_choices(server, lib)],
                              render_inputs=[audit.lib_choice], done=demo_ready, unit="models")
            watch(server.queue, banner, server.demo_job)
        blocks.load(lambda lib: audit_probe_choices(server, lib), audit.lib_choice, audit.probe_choice, queue=False)
        blocks.load(library_view, library.lib_choice, [library.table, library.names, library.message], queue=False)
        blocks.load(lambda lib: add_probe_choices(server, lib), library.lib_choice, library.add_probe, queue=False)
        blocks.load(lambda: (library_choices(DEMO_LIBRARY), library_choices(MY_LIBRARY)), None,
                    [audit.lib_choice, library.lib_choice], queue=False)
    blocks.queue(default_concurrency_limit=4, max_size=64)
    return blocks


def build_app(cfg: AppConfig | None = None) -> gr.Blocks:
    """The app's Blocks for ``cfg`` (local mode by default); the demo library starts building at once."""
    return build_blocks(start_server(cfg or AppConfig()))


def data_home() -> Path:
    """Where this app keeps its data (for --help and the README)."""
    return home()

