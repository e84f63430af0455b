"""The Library tab: see a library, fingerprint a model into it on the worker, remove, export and import."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr

from seedprints.audit import fingerprint_model
from seedprints.cache import FingerprintCache
from seedprints.errors import LibraryError, SeedPrintsError
from seedprints.paths import default_cache

from . import views
from .context import (DEMO_LIBRARY, MY_LIBRARY, Server, download_dir, find_probe, open_library, probe_choices,
                      probe_dropdown, safe_filename, starting_libraries)
from .jobs import Job
from .sources import SOURCE_HUB, SOURCE_PATH, SOURCE_UPLOAD, ModelChoice, model_form, prepared_model, resolve_model
from .tasks import Submission, TaskView, session_of, wire


@dataclasses.dataclass(frozen=True)
class AddForm:
    """A checked request to fingerprint a model into a library."""

    model: ModelChoice
    lib_label: str
    #: the probe dropdown's value: a probe id
    probe_id: str
    name: str
    family: str
    seed: str | None
    notes: str
    full: bool
    visitor: str | None = None


@dataclasses.dataclass(frozen=True)
class LibraryTab:
    """The Library tab's components that the rest of the page updates."""

    tab: Any
    lib_choice: Any
    table: Any
    names: Any
    message: Any
    add_probe: Any
    owner: Any


def library_view(lib_label: str, visitor: str | None = None) -> tuple[Any, Any, str]:
    """Table, reference names and a note for the chosen library, as ``visitor`` may see it."""
    try:
        lib = open_library(lib_label, visitor)
        refs = lib.list()
    except SeedPrintsError as exc:
        return views.library_table([]), gr.Dropdown(choices=[], value=None), views.error_message(str(exc))
    # a public server names no folders of its own
    note = f"{len(refs)} reference(s) in {lib_label}" + (f" ({lib.root})." if visitor is None else ".")
    if lib_label == DEMO_LIBRARY:
        note += " The demo library is read-only; add models to 'my library'."
    return views.library_table(refs), gr.Dropdown(choices=[r.name for r in refs], value=None), views.message(note)


def add_probe_choices(server: Server, lib_label: str, visitor: str | None = None) -> Any:
    """Dropdown of the probes a new reference can be fingerprinted with: (label, probe id) choices."""
    try:
        choices = probe_dropdown(probe_choices(open_library(lib_label, visitor), server.throughput, with_presets=True))
    except SeedPrintsError:
        choices = []
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


ADD_IDLE = "Fill in the form and press Fingerprint and add."


def add_form(lib_label: str, n_parts: int) -> list[Any]:
    """The add form's ``n_parts`` fields and button, usable only for a writable library, and its status line: for a
    read-only library, the reason and what to do instead."""
    writable = lib_label != DEMO_LIBRARY
    note = (views.message(ADD_IDLE) if writable else
            views.message("Adding is off: the demo library is read-only. Choose 'my library' above to add models.",
                          "error"))
    return [gr.update(interactive=writable)] * n_parts + [note]


def check_add(server: Server, source: str, files: list[str] | None, hub_id: str, local_path: str, lib_label: str,
              probe_id: str, name: str, family: str, seed: Any, notes: str, full: bool,
              visitor: str | None = None) -> AddForm:
    """The add form checked: a writable library, a model, a new name and a whole-number seed (or none)."""
    if lib_label == DEMO_LIBRARY:
        raise LibraryError("the demo library is read-only: choose 'my library' to add models")
    model = ModelChoice(source, None, files, hub_id, local_path)
    resolve_model(server, model, None)
    name = (name or "").strip()
    if not name:
        raise LibraryError("enter a name for the reference")
    seed_txt = str(seed).strip() if seed is not None else ""
    if seed_txt and not seed_txt.lstrip("-").isdigit():
        raise LibraryError(f"seed must be a whole number (or empty if unknown), got {seed_txt!r}")
    lib = open_library(lib_label, visitor)
    if name in {r.name for r in lib.list()}:
        raise LibraryError(f"{lib_label} already has a reference named {name!r}: choose another name")
    if find_probe(lib, probe_id, with_presets=True) is None:
        raise LibraryError("choose a probe from the list")
    return AddForm(model, lib_label, probe_id, name, family, seed_txt or None, notes, bool(full), visitor)


def run_add(server: Server, form: AddForm, job: Job) -> str:
    """On the worker: fingerprint the model with the chosen probe and add it to the library; says what was added."""
    job.stage = "preparing the model"
    with prepared_model(server, form.model) as (model, _):
        lib = open_library(form.lib_label, form.visitor)
        spec = find_probe(lib, form.probe_id, with_presets=True)
        if spec is None:
            raise LibraryError("choose a probe from the list")
        job.stage = "loading the model"
        t0 = time.perf_counter()
        fp = fingerprint_model(model, spec, name=form.name, cache=FingerprintCache(default_cache()),
                               device=server.cfg.device, max_memory=server.cfg.max_memory, trust_remote_code=False,
                               progress=job.progress, cancel=job.cancel_event)
    if job.measured:
        server.throughput.record(fp.model.n_params, spec.n_tokens, time.perf_counter() - t0)
    ref = lib.add(fp, name=form.name, family=form.family, seed=form.seed, notes=form.notes,
                  keep="all" if form.full else 0.2)
    return f"Added {ref.name} ({ref.lineage}) to {form.lib_label}."


def _change(lib_label: str, visitor: str | None, change: Callable[[], str]) -> tuple[Any, Any, str]:
    """Run ``change`` (it returns what it did), then the library's table and names, and a note of the outcome."""
    try:
        msg = views.message(change(), "ok")
    except SeedPrintsError as exc:
        msg = views.error_message(str(exc))
    table, names, _ = library_view(lib_label, visitor)
    return table, names, msg


def remove(lib_label: str, name: str | None, visitor: str | None = None) -> tuple[Any, Any, str]:
    """Remove one reference from a writable library."""

    def change() -> str:
        if lib_label == DEMO_LIBRARY:
            raise LibraryError("the demo library is read-only")
        if not name:
            raise LibraryError("choose the reference to remove")
        ref = open_library(lib_label, visitor).remove(name)
        return f"Removed {ref.name} ({ref.lineage})."

    return _change(lib_label, visitor, change)


def import_zip(lib_label: str, file: str | None, visitor: str | None = None) -> tuple[Any, Any, str]:
    """Import a library zip (validated completely first) into a writable library."""

    def change() -> str:
        if lib_label == DEMO_LIBRARY:
            raise LibraryError("the demo library is read-only: import into 'my library'")
        if not file:
            raise LibraryError("choose a library .zip exported by SeedPrints")
        added = open_library(lib_label, visitor).import_zip(file, on_conflict="skip")
        return f"Imported {len(added)} reference(s); names already present were kept."

    return _change(lib_label, visitor, change)


def export(lib_label: str, visitor: str | None = None, folder: Path | None = None) -> tuple[Any, str]:
    """Export the chosen library as a zip for download, into ``folder``: by default a new one no one can guess."""
    try:
        lib = open_library(lib_label, visitor)
        if len(lib) == 0:
            raise LibraryError(f"{lib_label} is empty: nothing to export")
        name = f"seedprints-library-{safe_filename(lib_label)}-{int(time.time())}.zip"
        out = lib.export_zip((folder or download_dir()) / name)
    except SeedPrintsError as exc:
        return gr.File(value=None), views.error_message(str(exc))
    return gr.File(value=str(out), visible=True), views.message(f"Exported {len(lib)} reference(s).", "ok")


def build_library_tab(server: Server, visitor: gr.State) -> LibraryTab:
    """Lay out the Library tab and wire its events; call inside an open ``gr.Tabs()``.

    ``visitor`` is the session's key (None on a local server): every action opens the library through it.
    """
    add_sources = [SOURCE_UPLOAD, SOURCE_HUB] + ([SOURCE_PATH] if server.cfg.local_paths else [])
    with gr.Tab("Library", id="library", elem_id="tab-library") as tab:
        lib_choice = gr.Dropdown(starting_libraries(server.cfg), value=MY_LIBRARY, label="Library", elem_id="library-choice")
        owner = gr.Markdown(elem_id="library-owner", elem_classes="sp-note", visible=False)
        lib_msg = gr.HTML(elem_id="library-msg")
        table = gr.Dataframe(views.library_table([]), label="References", interactive=False,
                             elem_id="library-table", wrap=True)
        with gr.Accordion("Add a model", open=True, elem_id="add-model"):
            model = model_form(add_sources, SOURCE_UPLOAD,
                               ids={"source": "add-source", "files": "add-upload", "hub": "add-hub", "path": "add-path"},
                               labels={"source": "Model", "files": "Model files", "hub": "Hub id", "path": "Local path"})
            with gr.Row():
                add_name = gr.Textbox(label="Name", elem_id="add-name")
                add_family = gr.Textbox(label="Family", elem_id="add-family")
                add_seed = gr.Textbox(label="Training seed (empty if unknown)", elem_id="add-seed")
            add_notes = gr.Textbox(label="Notes", elem_id="add-notes")
            add_probe = gr.Dropdown([], label="Probe (must match the library's to be comparable)",
                                    elem_id="add-probe")
            add_full = gr.Checkbox(True, label="Store the full fingerprint (shows reference-to-reference "
                                   "evidence; a larger file)")
            with gr.Row():
                add_btn = gr.Button("Fingerprint and add", variant="primary", elem_id="add-btn")
                add_cancel = gr.Button("Cancel", variant="stop", elem_id="add-cancel")
            add_status = gr.HTML(views.message(ADD_IDLE), elem_id="add-status")
        with gr.Accordion("Remove, export, import", open=False):
            with gr.Row():
                rm_name = gr.Dropdown([], label="Reference to remove", elem_id="remove-name")
                rm_btn = gr.Button("Remove", variant="stop", elem_id="remove-btn")
            with gr.Row():
                export_btn = gr.Button("Export library (.zip)", elem_id="export-btn")
                export_file = gr.File(label="Exported library", interactive=False, elem_id="export-file")
            with gr.Row():
                import_file = gr.File(label="Library .zip to import", file_types=[".zip"], elem_id="import-file")
                import_btn = gr.Button("Import", elem_id="import-btn")

        # wired inside the tab: the hidden parts of a task (State, Timer) must not sit between tabs (ui.tasks)
        view_outputs = [table, rm_name, lib_msg]
        add_view = TaskView(add_status, view_outputs, lambda _, lib, who: library_view(lib, who),
                            render_inputs=[lib_choice, visitor],
                            done=lambda added: added, idle=ADD_IDLE)
        inputs = [model.source, model.files, model.hub_id, model.local_path, lib_choice, add_probe, add_name,
                  add_family, add_seed, add_notes, add_full, visitor]

        def start_add(*values: Any) -> Submission:
            form = check_add(server, *values)
            return Submission(f"adding {form.name} to {form.lib_label}", lambda job: run_add(server, form, job))

        wire(server.queue, add_view, add_btn, inputs, start_add, add_cancel)
        tab.select(library_view, [lib_choice, visitor], view_outputs, queue=False)
        lib_choice.change(library_view, [lib_choice, visitor], view_outputs, queue=False)
        lib_choice.change(lambda lib, who: add_probe_choices(server, lib, who), [lib_choice, visitor], add_probe,
                          queue=False)
        add_parts = [*model.inputs[:1], *model.inputs[2:], add_name, add_family, add_seed, add_notes, add_probe,
                     add_full, add_btn]
        lib_choice.change(lambda lib: add_form(lib, len(add_parts)), lib_choice, [*add_parts, add_status],
                          queue=False)
        rm_btn.click(remove, [lib_choice, rm_name, visitor], view_outputs, concurrency_limit=1)

        def export_for(lib: str, who: str | None, request: gr.Request) -> tuple[Any, str]:
            return export(lib, who, server.download_dir(session_of(request)))

        export_btn.click(export_for, [lib_choice, visitor], [export_file, lib_msg], concurrency_limit=1)
        import_btn.click(import_zip, [lib_choice, import_file, visitor], view_outputs, concurrency_limit=1)
    return LibraryTab(tab, lib_choice, table, rm_name, lib_msg, add_probe, owner)
