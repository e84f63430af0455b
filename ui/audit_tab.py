"""The Audit tab: pick a suspect and a library, run the audit on the worker, show the verdict; robustness check."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import gradio as gr

from seedprints.audit import LibraryAudit, audit_library, check_width, suspect_width
from seedprints.cache import FingerprintCache
from seedprints.errors import LibraryError, SeedPrintsError
from seedprints.library import Library
from seedprints.methods import DEFAULT_ALPHA, DEFAULT_TEST, TESTS, test_by_label
from seedprints.paths import default_cache
from seedprints.plots import embedding_map, evidence_heatmap, evidence_plot, robustness_chart
from seedprints.probes import ProbeSpec
from seedprints.report import report_html
from seedprints.robustness import MODIFICATIONS, RobustnessRow, robustness_check
from seedprints.similarity import map_models, not_mapped

from . import views
from .context import (DEMO_LIBRARY, Server, find_probe, open_library, probe_choices, probe_dropdown, safe_filename,
                      starting_libraries)
from .jobs import FINISHED, Job
from .sources import (DEMO_CHOICES, SOURCE_DEMO, SOURCE_HUB, SOURCE_PATH, SOURCE_UPLOAD, ModelChoice, model_form,
                      prepared_model, resolve_model)
from .seed_panel import build_seed_section
from .tasks import Submission, TaskView, wire


@dataclasses.dataclass(frozen=True)
class AuditForm:
    """The raw values of the audit form, checked by :func:`check_form`."""

    model: ModelChoice
    lib_label: str
    #: the probe dropdown's value: a probe id (None: the library's default)
    probe_id: str | None
    test: str
    alpha: float
    trust: bool
    visitor: str | None = None


@dataclasses.dataclass(frozen=True)
class AuditResult:
    """A finished audit, how its command names the suspect, and its downloads (written by the worker)."""

    audit: LibraryAudit
    command: str
    json_path: Path
    report_path: Path
    uploaded: bool


@dataclasses.dataclass(frozen=True)
class AuditTab:
    """The Audit tab's components that the rest of the page updates."""

    lib_choice: Any
    probe_choice: Any
    status: Any


#: the audit's status before any audit, once the demo library is built
READY = "Ready. Choose a suspect and press Run audit."


def audit_idle(server: Server) -> str:
    """The audit status a page opens with: not "Ready" while the demo library is still being built (the banner's
    watch sets :data:`READY` when it is)."""
    if server.demo_job is not None and server.demo_job.state not in FINISHED:
        return ("The demo library is being built (see the banner above): choose a suspect meanwhile; an audit "
                "started now waits for it.")
    return READY


def parse_form(source: str, demo_key: str | None, files: list[str] | None, hub_id: str, local_path: str,
               lib_label: str, probe_id: str | None, test_label: str, alpha: Any, trust: bool,
               visitor: str | None = None) -> AuditForm:
    """The form's values, typed (raises SeedPrintsError on a bad test or alpha); ``visitor`` is the session's key."""
    try:
        a = float(alpha)
    except (TypeError, ValueError):
        raise SeedPrintsError(f"alpha must be a number between 0 and 0.5, got {alpha!r}") from None
    if not 0.0 < a < 0.5:
        raise SeedPrintsError(f"alpha must lie between 0 and 0.5, got {a:g}")
    return AuditForm(ModelChoice(source, demo_key, files, hub_id, local_path), lib_label, probe_id,
                     test_by_label(test_label).name, a, bool(trust), visitor)


def check_form(server: Server, form: AuditForm) -> None:
    """Check what can be checked before queueing: the model's source, a non-empty library, the probe, and (for a
    model on this computer) that the library holds references of its hidden size."""
    model, name = resolve_model(server, form.model, None)
    demo_building = server.demo_job is not None and server.demo_job.state not in FINISHED
    if form.lib_label == DEMO_LIBRARY and demo_building:
        return  # the job queues behind the demo build
    lib = open_library(form.lib_label, form.visitor)
    if len(lib) == 0:
        raise LibraryError(f"{form.lib_label} is empty: add reference models in the Library tab first")
    spec = chosen_probe(lib, form)
    if model and form.model.source in (SOURCE_DEMO, SOURCE_PATH):  # the rest is known once the worker has it
        check_width(lib, spec, suspect_width(model, trust_remote_code=form.trust and server.cfg.local_paths), name)


def chosen_probe(lib: Library, form: AuditForm) -> ProbeSpec:
    """The probe the form names by id, else the library's default (no choice made, e.g. an API call without one)."""
    spec = lib.default_probe() if form.probe_id is None else find_probe(lib, form.probe_id)
    if spec is None and form.probe_id is None:
        raise LibraryError(f"{form.lib_label} is empty: add reference models in the Library tab first")
    if spec is None:
        raise LibraryError(f"{form.lib_label} holds no references made with probe {form.probe_id}: "
                           "choose the library again to refresh the probe list")
    return spec


def run_audit(server: Server, form: AuditForm, job: Job) -> AuditResult:
    """On the worker: audit the suspect against the library and write its JSON record and HTML report."""
    job.stage = "preparing the suspect"
    with prepared_model(server, form.model) as (model, name):
        lib = open_library(form.lib_label, form.visitor)
        spec = chosen_probe(lib, form)
        job.stage = "loading the suspect model"
        audit = audit_library(model, lib, name=name, probe=spec, test=form.test, alpha=form.alpha,
                              cache=FingerprintCache(default_cache()), device=server.cfg.device,
                              max_memory=server.cfg.max_memory,
                              trust_remote_code=form.trust and server.cfg.local_paths,
                              progress=job.progress, cancel=job.cancel_event)
    if job.measured:
        server.throughput.record(audit.suspect.model.n_params, audit.suspect.spec.n_tokens,
                                 audit.seconds["fingerprint"])
    uploaded = form.model.source == SOURCE_UPLOAD
    command = audit.command("SUSPECT" if uploaded else str(model))
    job.stage = "writing the downloads"
    folder, stem = server.download_dir(job.owner), safe_filename(audit.suspect.name)
    json_path = folder / f"seedprints-audit-{stem}.json"
    json_path.write_text(json.dumps({**audit.to_dict(), "command": command}, indent=1))
    report_path = folder / f"seedprints-report-{stem}.html"
    report_path.write_text(report_html(audit, command), encoding="utf-8")
    return AuditResult(audit, command, json_path, report_path, uploaded)


#: the map layout radio: label -> similarity.map_models layout
MAP_LAYOUTS = {"default": "auto", "UMAP": "umap"}


def map_figure(audit: LibraryAudit | None, layout_label: str = "default") -> Any:
    """The map of a finished audit in the chosen layout, redrawn from its evidence matrix (nothing extracted again)."""
    if audit is None:
        return gr.skip()
    m, emb = audit.matrix, audit.embedding
    layout = MAP_LAYOUTS.get(layout_label, "auto")
    if layout != "auto" and emb.drawn:
        try:
            emb = map_models(m, audit.report.alpha, layout=layout)  # type: ignore[arg-type]
        except SeedPrintsError as exc:  # umap-learn not installed: say so where the map would be
            emb = not_mapped(m.n, str(exc))
    return embedding_map(emb, m.names, m.lineages, suspect_index=0)


def render_audit(result: AuditResult, layout_label: str = "default") -> list[Any]:
    """Verdict card, table, figures (the map in the chosen layout), downloads, command, the results and figures
    columns of a finished audit, and the audit itself (kept for redrawing the map)."""
    audit = result.audit
    m = audit.matrix
    top = audit.report.rows[0] if audit.report.rows else None
    ev = (evidence_plot(top.result, top.reference.name, audit.suspect.name, top.log10_p_holm)
          if top is not None and not top.result.inconclusive else None)
    cmd = (f"Reproduce from the command line (the library's probe, the same test):\n\n```\n{result.command}\n```"
           + ("\n\n(SUSPECT: the uploaded model.)" if result.uploaded else ""))
    return [views.verdict_card(audit), views.ranked_table(audit), evidence_heatmap(m),
            map_figure(audit, layout_label), ev,
            gr.DownloadButton(value=str(result.json_path), visible=True),
            gr.DownloadButton(value=str(result.report_path), visible=True), cmd, gr.Column(visible=True),
            gr.Column(visible=True), audit]


def cleared_audit() -> list[Any]:
    """What :func:`render_audit` fills, emptied and hidden: set the moment an audit starts or its form is refused."""
    return ["", None, None, None, None, gr.DownloadButton(value=None, visible=False),
            gr.DownloadButton(value=None, visible=False), "", gr.Column(visible=False), gr.Column(visible=False), None]


def start_audit(server: Server, *values: Any) -> Submission:
    """Check the audit form; the submission runs the audit on the worker."""
    form = parse_form(*values)
    check_form(server, form)
    return Submission(f"audit of {form.model.shown}", lambda job: run_audit(server, form, job))


def run_robustness(server: Server, form: AuditForm, job: Job) -> list[RobustnessRow]:
    """On the worker: modify the suspect in each way, fingerprint each copy and scan the library again."""
    job.stage = "preparing the suspect"
    with prepared_model(server, form.model) as (model, _):
        lib = open_library(form.lib_label, form.visitor)
        spec = chosen_probe(lib, form)
        job.stage = "loading the suspect model"
        return robustness_check(model, lib, probe=spec, test=form.test, alpha=form.alpha, device=server.cfg.device,
                                trust_remote_code=form.trust and server.cfg.local_paths, progress=job.progress,
                                cancel=job.cancel_event)


def start_robustness(server: Server, *values: Any) -> Submission:
    """Check the audit form; the submission runs the robustness check on the worker."""
    form = parse_form(*values)
    check_form(server, form)
    return Submission(f"robustness check of {form.model.shown}", lambda job: run_robustness(server, form, job))


def audit_probe_choices(server: Server, lib_label: str, visitor: str | None = None) -> Any:
    """Dropdown of the probes an audit can use with this library: (label, probe id) choices."""
    try:
        choices = probe_dropdown(probe_choices(open_library(lib_label, visitor), server.throughput))
    except SeedPrintsError:
        choices = []
    return gr.Dropdown(choices=choices, value=choices[0][1] if choices else None)


def build_audit_tab(server: Server, visitor: gr.State) -> AuditTab:
    """Lay out the Audit tab and wire its events; call inside an open ``gr.Tabs()``; ``visitor``: the session's key."""
    cfg = server.cfg
    sources = [SOURCE_DEMO, SOURCE_UPLOAD, SOURCE_HUB] + ([SOURCE_PATH] if cfg.local_paths else [])
    tests = [m.label for m in TESTS.values()]
    with gr.Tab("Audit", id="audit", elem_id="tab-audit"):
        with gr.Row(equal_height=False):
            with gr.Column(scale=2, min_width=300):
                model = model_form(sources, SOURCE_DEMO, ids={"source": "source", "demo": "demo-suspect",
                                                              "files": "upload", "hub": "hub-id", "path": "local-path"},
                                   labels={"source": "Suspect model", "hub": "Hub id (needs internet)",
                                           "path": "Local path on this computer",
                                           "files": "Model files: .gguf, a .zip of the folder, "
                                                    "or .safetensors/.bin + config.json"})
                lib_choice = gr.Dropdown(starting_libraries(server.cfg), value=DEMO_LIBRARY, label="Reference library",
                                         elem_id="audit-library")
                probe_choice = gr.Dropdown([], label="Probe (from the library)", elem_id="audit-probe")
                with gr.Accordion("Advanced", open=False):
                    test_choice = gr.Radio(tests, value=TESTS[DEFAULT_TEST].label, label="Statistical test")
                    alpha = gr.Number(DEFAULT_ALPHA, label="Significance level alpha", minimum=0.0001, maximum=0.2)
                    trust = gr.Checkbox(False, label="Allow the model's own Python code (trust_remote_code; "
                                        "only for authors you trust)", visible=cfg.local_paths)
                with gr.Row():
                    run_btn = gr.Button("Run audit", variant="primary", elem_id="run-audit")
                    cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-audit")
                status = gr.HTML(views.job_status(None, idle=audit_idle(server)), elem_id="audit-status")
                # one column, the suspect: a click also switches the source to the demo suspects
                examples = gr.Examples([[key] for _, key in DEMO_CHOICES], inputs=[model.demo_key],
                                       label="Demo suspects")
                examples.load_input_event.then(lambda: SOURCE_DEMO, None, model.source, queue=False)
            # the results get two thirds of the row: the ranked table fits at 1400 px with whole-word headers
            with gr.Column(scale=4, min_width=320, visible=False, elem_id="results") as results:
                verdict = gr.HTML(elem_id="verdict")
                ranked = gr.Dataframe(label="References, strongest evidence first", interactive=False,
                                      elem_id="ranked", wrap=True)
                with gr.Row():
                    download = gr.DownloadButton("Download audit (JSON)", visible=False, elem_id="download-json")
                    download_report = gr.DownloadButton("Download report (HTML)", visible=False,
                                                        elem_id="download-report")
                command = gr.Markdown(elem_id="command")
        # shown with the results, hidden with them: no empty figure frames before an audit or after an error
        with gr.Column(visible=False, elem_id="figures") as figures:
            heat = gr.Plot(label="Evidence matrix", elem_id="heatmap")
            with gr.Row():
                with gr.Column(min_width=300):
                    map_layout = gr.Radio(list(MAP_LAYOUTS), value="default", label="Map layout",
                                          elem_id="map-layout")
                    umap_plot = gr.Plot(label="Map of the models", elem_id="umap")
                evidence = gr.Plot(label="Evidence of the strongest reference", elem_id="evidence")
        with gr.Accordion("Robustness check: does the verdict survive modifications?", open=False,
                          elem_id="robustness"):
            gr.Markdown("Applies " + "; ".join(f"**{k}** ({d})" for k, (d, _) in MODIFICATIONS.items()) +
                        " to the suspect, fingerprints each copy with the same probe and scans "
                        "the same library. Takes about six audits' time.")
            with gr.Row():
                robust_btn = gr.Button("Check robustness", elem_id="robust-btn")
                robust_cancel = gr.Button("Cancel", variant="stop", elem_id="robust-cancel")
            robust_status = gr.HTML(elem_id="robust-status")
            # hidden until a check has finished: no empty table or figure frame before
            robust_table = gr.Dataframe(interactive=False, elem_id="robust-table", wrap=True, visible=False)
            robust_plot = gr.Plot(elem_id="robust-plot", show_label=False, visible=False)
        connect_seed_section = build_seed_section(server)

        # wired inside the tab: the hidden parts of a task (State, Timer) must not sit between tabs (ui.tasks)
        form = [*model.inputs, lib_choice, probe_choice, test_choice, alpha, trust, visitor]
        shown_audit = gr.State(None)  # the finished audit: the map layout radio redraws from it
        audit_view = TaskView(status, [verdict, ranked, heat, umap_plot, evidence, download, download_report, command,
                                       results, figures, shown_audit], render_audit, render_inputs=[map_layout],
                              cleared=cleared_audit, idle=READY)
        wire(server.queue, audit_view, run_btn, form, lambda *v: start_audit(server, *v), cancel_btn)
        robust_view = TaskView(robust_status, [robust_table, robust_plot],
                               lambda rows: [gr.Dataframe(views.robustness_table(rows), visible=True),
                                             gr.Plot(robustness_chart(rows), visible=True)],
                               idle="Press Check robustness to test the chosen suspect.", unit=None,
                               cleared=lambda: [gr.Dataframe(None, visible=False), gr.Plot(None, visible=False)])
        wire(server.queue, robust_view, robust_btn, form, lambda *v: start_robustness(server, *v), robust_cancel)
        connect_seed_section(form)
        map_layout.change(map_figure, [shown_audit, map_layout], umap_plot, queue=False)
        lib_choice.change(lambda lib, who: audit_probe_choices(server, lib, who), [lib_choice, visitor], probe_choice,
                          queue=False)
    return AuditTab(lib_choice, probe_choice, status)
