"""The Gradio Blocks app: Audit, Library, Learn and About tabs over one background worker queue."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import gradio as gr

from seedprints.demo import SUSPECTS, build_demo
from seedprints.paths import home

from . import views
from .about_tab import build_about_tab
from .api import build_api, make_internal_private
from .audit_tab import READY, audit_probe_choices, build_audit_tab
from .context import DEMO_LIBRARY, MY_LIBRARY, AppConfig, Server, Throughput, libraries, open_library
from .jobs import JobQueue
from .learn_tab import build_learn_tab
from .library_tab import add_probe_choices, build_library_tab, library_view
from .tasks import TaskView, session_of, watch
from .visitors import BROWSER_STORAGE_KEY, browser_state_secret, identify, oauth_enabled

INTRO = """# SeedPrints: which training seed does this model come from?
Load a suspect checkpoint, pick a reference library of models whose training seeds are known, and
SeedPrints tests whether the suspect shares its **initialisation seed** with any of them, from the
activations its body produces on a fixed random probe. Every verdict comes with the numbers behind it."""


def start_server(cfg: AppConfig) -> Server:
    """The shared state of one app process; the demo library starts building on the worker at once."""
    server = Server(cfg, JobQueue(one_per_owner=cfg.public), Throughput())
    server.demo_job = server.queue.submit("preparing the demo library", lambda job: build_demo(progress=job.progress))
    return server


def demo_ready(_paths: Any) -> str:
    """The banner once the demo library is built."""
    return (f"Demo library ready: {len(open_library(DEMO_LIBRARY))} reference models with known seeds, "
            f"{len(SUSPECTS)} demo suspects.")


def library_choices(current: str, visitor: str | None) -> Any:
    """Dropdown of the libraries ``visitor`` may use, keeping ``current`` when it is still there."""
    labels = list(libraries(visitor))
    return gr.Dropdown(choices=labels, value=current if current in labels else labels[0])


def build_blocks(server: Server) -> gr.Blocks:
    """Lay out the page (banner and tabs) and wire what crosses tabs; returns the Blocks."""
    cfg = server.cfg
    # public mode: Gradio's cache (uploads, downloads) is swept hourly as well (each job deletes its uploads at its end)
    with gr.Blocks(title="SeedPrints", delete_cache=(3600, 3600) if cfg.public else None) as blocks:
        gr.Markdown(INTRO, elem_id="intro")
        # the session's visitor key (None on a local server): server-side state, set by the load event below
        visitor = gr.State(None)
        browser_id = None
        if cfg.public:
            gr.Markdown(f"Public server: uploads and Hub models up to {cfg.max_upload_bytes / 2**20:,.0f} MB, "
                        "no local paths, no remote code, one job per visitor at a time; uploaded files are deleted "
                        "after each audit; your library is yours alone.", elem_classes="sp-note")
            browser_id = gr.BrowserState(None, storage_key=BROWSER_STORAGE_KEY, secret=browser_state_secret())
            if oauth_enabled():
                gr.LoginButton()
        startup = gr.HTML(views.message("Starting..."), elem_id="startup")
        with gr.Tabs(elem_id="tabs"):
            audit = build_audit_tab(server, visitor)
            library = build_library_tab(server, visitor)
            build_learn_tab(server.queue)
            build_about_tab()
        build_api(server)

        # the demo build refreshes the audit's probe list when it is ready
        if server.demo_job is not None:
            banner = TaskView(startup, [audit.probe_choice, audit.status],
                              lambda _, lib, who: [audit_probe_choices(server, lib, who), views.message(READY)],
                              render_inputs=[audit.lib_choice, visitor], done=demo_ready, unit="models")
            watch(server.queue, banner, server.demo_job)

        def on_load(browser: str | None, profile: gr.OAuthProfile | None) -> tuple[Any, ...]:
            key, browser, note = identify(True, browser, profile)
            return key, browser, gr.Markdown(note, visible=True)

        def fill(visitor_value: str | None) -> tuple[Any, ...]:
            return (library_choices(DEMO_LIBRARY, visitor_value), library_choices(MY_LIBRARY, visitor_value),
                    audit_probe_choices(server, DEMO_LIBRARY, visitor_value),
                    *library_view(MY_LIBRARY, visitor_value), add_probe_choices(server, MY_LIBRARY, visitor_value))

        def session_ended(request: gr.Request) -> None:
            server.session_ended(session_of(request))

        blocks.unload(session_ended)
        # the visitor is known first (public server); then the page shows that visitor's libraries
        filled = [audit.lib_choice, library.lib_choice, audit.probe_choice, library.table, library.names,
                  library.message, library.add_probe]
        if browser_id is not None:
            blocks.load(on_load, browser_id, [visitor, browser_id, library.owner], queue=False).then(
                fill, visitor, filled, queue=False)
        else:
            blocks.load(fill, visitor, filled, queue=False)
    make_internal_private(blocks)  # after the Blocks closed: some events are only added then
    blocks.queue(default_concurrency_limit=4, max_size=64)
    return blocks


def build_app(cfg: AppConfig | None = None) -> gr.Blocks:
    """The app's Blocks for ``cfg`` (local mode by default); the demo library starts building at once."""
    return build_blocks(start_server(cfg or AppConfig()))


def data_home() -> Path:
    """Where this app keeps its data (for --help and the README)."""
    return home()

