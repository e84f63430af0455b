"""The Gradio Blocks app: Audit, Library and About tabs over one background extraction worker."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import gradio as gr

from seedprints.audit import LibraryAudit, audit_library, fingerprint_model
from seedprints.cache import FingerprintCache
from seedprints.demo import SUSPECTS, build_demo
from seedprints.errors import LibraryError, SeedPrintsError, UploadError
from seedprints.paths import default_cache, home
from seedprints.plots import embedding_map, evidence_heatmap, evidence_plot, robustness_chart
from seedprints.report import report_html
from seedprints.robustness import MODIFICATIONS, robustness_check
from seedprints.uploads import prepare_upload

from . import views
from .context import (DEMO_LIBRARY, MY_LIBRARY, AppConfig, Throughput, exports_dir, libraries, open_library,
                      probe_choices, remove_dir, scratch_dir)
from .jobs import DONE, FINISHED, Job, JobQueue
from .learn import build_learn_tab

SOURCE_DEMO, SOURCE_UPLOAD, SOURCE_HUB, SOURCE_PATH = "demo suspect", "upload files", "Hugging Face Hub id", "local path"
TEST_CALIBRATED = "calibrated (default: holds its error rate)"
TEST_PAPER = "paper (published test; can over-state evidence)"
POLL_SECONDS = 0.5

INTRO = """# SeedPrints: which training seed does this model come from?
Load a suspect checkpoint, pick a reference library of models whose training seeds are known, and
SeedPrints tests whether the suspect shares its **initialisation seed** with any of them, from the
activations its body produces on a fixed random probe. Every verdict comes with the numbers behind it."""

ABOUT = """## What the verdict means
* **MATCH**: the suspect shares its random initialisation with the named reference: it was trained,
  fine-tuned, quantized, pruned or merged from a model of that seed. The p-value is the chance that an
  unrelated model would agree at least this strongly (after Holm correction over all references).
* **NO MATCH**: no reference shows more agreement than chance. The suspect may still come from a seed that
  is not in the library.
* **AMBIGUOUS**: references of several different seeds match; check whether those references are related.
* **INCONCLUSIVE**: nothing could be tested (empty library, different probe or hidden size).

## How it works
The body of each model reads the same random token sequences (the *probe*). For every hidden dimension
we record its activation at the last position. Dimensions with the lowest mean activation are a model's
*identity dimensions*; they are set by the initialisation and survive training. The **calibrated test**
correlates (Spearman) the reference's identity dimensions with the same dimensions of the suspect and
compares the mean with re-pairings to random other dimensions: for models from different seeds the aligned
pairing is just one more random pairing, so the p-value holds its level. The **paper test** is the published
SeedPrints test (Kendall tau, analytical null); on models trained on the same data it can report evidence
where there is none, so it is offered for comparison only.

## What it cannot tell
* It links models through their **initialisation**; two models trained from different seeds on the same data
  are, correctly, not linked. A seed label is only as true as the library that records it.
* Models of different hidden size, or fingerprinted with different probes, cannot be compared.
* Evidence is statistical: at alpha = 0.01 about 1 unrelated reference in 100 may cross the threshold before
  correction; the Holm correction controls this over the whole library.

The same engine runs from the command line (`seedprints scan MODEL --library DIR`) and from Python
(`seedprints.audit.audit_library`)."""


def _session(request: gr.Request | None) -> str:
    return getattr(request, "session_hash", "") or ""


class SeedPrintsApp:
    """Holds the worker queue and builds the Blocks; every handler is quick and returns at once."""

    def __init__(self, cfg: AppConfig) -> None:
        self.cfg = cfg
        self.queue = JobQueue()
        self.throughput = Throughput()
        self.demo_job = self.queue.submit("preparing the demo library", self._build_demo)

    # ------------------------------------------------------------------ jobs (run in the worker thread)
    def _build_demo(self, job: Job) -> dict[str, Path]:
        def say(stage: str, done: int, total: int) -> None:
            job.stage = stage
            job.progress(done, total)

        paths = build_demo(progress=say)
        return paths

    def _clean_up(self, work: Path | None, files: list[str] | None) -> None:
        """Delete a job's scratch folder; in public mode also the uploaded files themselves."""
        remove_dir(work)
        if self.cfg.public:
            for f in files or []:
                Path(f).unlink(missing_ok=True)

    def _resolve_model(self, source: str, demo_key: str | None, files: list[str] | None, hub_id: str,
                       local_path: str, work: Path | None) -> tuple[str | Path, str]:
        """(model path or Hub id, display name) for the chosen source; checks what can be checked early."""
        if source == SOURCE_DEMO:
            key = (demo_key or "").split(":")[0].strip()
            if key not in SUSPECTS:
                raise SeedPrintsError("choose one of the demo suspects from the list")
            if self.demo_job.state != DONE:
                if self.demo_job.state in FINISHED:
                    raise SeedPrintsError(f"the demo library could not be built ({self.demo_job.error}); restart the app")
                return "", f"suspect-{key}"
            return self.demo_job.result[key], f"suspect-{key}"
        if source == SOURCE_UPLOAD:
            if not files:
                raise UploadError("no file uploaded: add a .gguf, a .zip of the model folder, or weights + config.json")
            if work is None:
                return "", Path(files[0]).stem
            return prepare_upload(files, work, self.cfg.max_upload_bytes), Path(files[0]).stem
        if source == SOURCE_HUB:
            hub_id = (hub_id or "").strip()
            if not hub_id or " " in hub_id:
                raise SeedPrintsError("enter a Hugging Face Hub id such as 'HuggingFaceTB/SmolLM-135M'")
            return hub_id, hub_id.split("/")[-1]
        if source == SOURCE_PATH:
            if not self.cfg.local_paths:
                raise SeedPrintsError("local paths are disabled on a public server: upload the model instead")
            p = Path((local_path or "").strip()).expanduser()
            if not str(local_path or "").strip():
                raise SeedPrintsError("enter the path of a model folder, .safetensors, .gguf or fingerprint file")
            if not p.exists():
                raise SeedPrintsError(f"no such file or folder: {p}: check the path")
            return p, p.name
        raise SeedPrintsError(f"unknown suspect source {source!r}")

    def _audit_job(self, source: str, demo_key: str | None, files: list[str] | None, hub_id: str, local_path: str,
                   lib_label: str, probe_label: str | None, test: str, alpha: float, trust: bool):
        def run(job: Job) -> tuple[LibraryAudit, str]:
            work = scratch_dir() if source == SOURCE_UPLOAD else None
            try:
                job.stage = "preparing the suspect"
                model, name = self._resolve_model(source, demo_key, files, hub_id, local_path, work)
                lib = open_library(lib_label)
                probes = probe_choices(lib, self.throughput)
                spec = probes.get(probe_label or "") or lib.default_probe()
                job.stage = "loading the suspect model"

                def progress(stage: str, done: int, total: int) -> None:
                    job.stage = stage
                    job.progress(done, total)

                audit = audit_library(model, lib, name=name, probe=spec, test=test, alpha=alpha,
                                      cache=FingerprintCache(default_cache()), device=self.cfg.device,
                                      max_memory=self.cfg.max_memory,
                                      trust_remote_code=bool(trust) and self.cfg.local_paths,
                                      progress=progress, cancel=job.cancel_event)
                if job.measured:
                    self.throughput.record(audit.suspect.model.n_params, audit.suspect.spec.n_tokens,
                                           audit.seconds["fingerprint"])
                shown = "SUSPECT" if source == SOURCE_UPLOAD else str(model)
                return audit, shown
            finally:
                self._clean_up(work, files)

        return run

    def _add_job(self, source: str, files: list[str] | None, hub_id: str, local_path: str, lib_label: str,
                 probe_label: str, name: str, family: str, seed: Any, notes: str, full: bool):
        def run(job: Job) -> str:
            work = scratch_dir() if source == SOURCE_UPLOAD else None
            try:
                job.stage = "preparing the model"
                model, default_name = self._resolve_model(source, None, files, hub_id, local_path, work)
                lib = open_library(lib_label)
                spec = probe_choices(lib, self.throughput, with_presets=True).get(probe_label)
                if spec is None:
                    raise LibraryError("choose a probe from the list")
                job.stage = "loading the model"

                def progress(stage: str, done: int, total: int) -> None:
                    job.stage = stage
                    job.progress(done, total)

                t0 = time.perf_counter()
                fp = fingerprint_model(model, spec, name=name or default_name, cache=FingerprintCache(default_cache()),
                                       device=self.cfg.device, max_memory=self.cfg.max_memory,
                                       trust_remote_code=False, progress=progress,
                                       cancel=job.cancel_event)
                if job.measured:
                    self.throughput.record(fp.model.n_params, spec.n_tokens, time.perf_counter() - t0)
                ref = lib.add(fp, name=name or default_name, family=family, seed=seed, notes=notes,
                              keep="all" if full else 0.2)
                return f"Added {ref.name} ({ref.lineage}) to {lib_label}."
            finally:
                self._clean_up(work, files)

        return run

    def _robustness_job(self, source: str, demo_key: str | None, files: list[str] | None, hub_id: str,
                        local_path: str, lib_label: str, probe_label: str | None, test: str, alpha: float, trust: bool):
        def run(job: Job) -> list[Any]:
            work = scratch_dir() if source == SOURCE_UPLOAD else None
            try:
                job.stage = "preparing the suspect"
                model, _ = self._resolve_model(source, demo_key, files, hub_id, local_path, work)
                lib = open_library(lib_label)
                spec = probe_choices(lib, self.throughput).get(probe_label or "") or lib.default_probe()
                job.stage = "loading the suspect model"

                def progress(stage: str, done: int, total: int) -> None:
                    job.stage = stage
                    job.progress(done, total)

                return robustness_check(model, lib, probe=spec, test=test, alpha=alpha, device=self.cfg.device,
                                        trust_remote_code=bool(trust) and self.cfg.local_paths, progress=progress,
                                        cancel=job.cancel_event)
            finally:
                self._clean_up(work, files)

        return run

    def start_robustness(self, source, demo_key, files, hub_id, local_path, lib_label, probe_label, test_label, alpha,
                         trust, request: gr.Request):
        """Queue a robustness check of the chosen suspect; returns job id, status, timer."""
        try:
            self._resolve_model(source, demo_key, files, hub_id, local_path, None)
            if len(open_library(lib_label)) == 0:
                raise LibraryError(f"{lib_label} is empty: add reference models in the Library tab first")
        except SeedPrintsError as exc:
            return None, views.message(str(exc), "error"), gr.Timer(active=False)
        test = "paper" if test_label == TEST_PAPER else "calibrated"
        job = self.queue.submit("robustness check", self._robustness_job(
            source, demo_key, files, hub_id, local_path, lib_label, probe_label, test, float(alpha), trust),
            owner=_session(request))
        return job.id, views.job_status(job, self.queue.position(job)), gr.Timer(active=True)

    def poll_robustness(self, job_id):
        """Status of the robustness job, and its table and chart once done."""
        job = self.queue.get(job_id)
        if (pending := self._unfinished(job, 2)) is not None:
            return pending
        rows = job.result
        return [views.job_status(job), gr.Timer(active=False), views.robustness_table(rows), robustness_chart(rows)]

    # ------------------------------------------------------------------ handlers (event loop side)
    def startup_status(self, lib_label: str) -> tuple[str, Any, Any]:
        """Banner while the demo library builds; refreshes the probe list when ready."""
        job = self.demo_job
        if job.state in FINISHED:
            if job.state == DONE:
                n = len(open_library(DEMO_LIBRARY))
                return (views.message(f"Demo library ready: {n} reference models with known seeds, "
                                      f"{len(SUSPECTS)} demo suspects.", "ok"), gr.Timer(active=False),
                        self.audit_probe_choices(lib_label))
            return views.job_status(job), gr.Timer(active=False), gr.skip()
        return views.job_status(job, self.queue.position(job)), gr.Timer(active=True), gr.skip()

    def library_choices(self, current: str | None = None) -> Any:
        """Dropdown of the libraries on this server, keeping the current choice."""
        labels = list(libraries())
        return gr.Dropdown(choices=labels, value=current if current in labels else labels[0])

    def audit_probe_choices(self, lib_label: str) -> Any:
        """Dropdown of the probes an audit can use with this library."""
        try:
            labels = list(probe_choices(open_library(lib_label), self.throughput))
        except SeedPrintsError:
            labels = []
        return gr.Dropdown(choices=labels, value=labels[0] if labels else None)

    def add_probe_choices(self, lib_label: str) -> Any:
        """Dropdown of the probes a new reference can be fingerprinted with."""
        try:
            labels = list(probe_choices(open_library(lib_label), self.throughput, with_presets=True))
        except SeedPrintsError:
            labels = []
        return gr.Dropdown(choices=labels, value=labels[0] if labels else None)

    def start_audit(self, source, demo_key, files, hub_id, local_path, lib_label, probe_label, test_label, alpha,
                    trust, request: gr.Request):
        """Check the form and queue an audit; returns job id, status and an active timer."""
        try:
            self._resolve_model(source, demo_key, files, hub_id, local_path, None)
            alpha = float(alpha)
            if not 0.0 < alpha < 0.5:
                raise SeedPrintsError(f"alpha must lie between 0 and 0.5, got {alpha:g}")
            if lib_label == DEMO_LIBRARY and self.demo_job.state not in FINISHED:
                pass  # the audit queues behind the demo build
            elif len(open_library(lib_label)) == 0:
                raise LibraryError(f"{lib_label} is empty: add reference models in the Library tab first")
        except SeedPrintsError as exc:
            return None, views.message(str(exc), "error"), gr.Timer(active=False)
        test = "paper" if test_label == TEST_PAPER else "calibrated"
        label = f"audit of {demo_key.split(':')[0] if source == SOURCE_DEMO else source}"
        job = self.queue.submit(label, self._audit_job(source, demo_key, files, hub_id, local_path, lib_label,
                                                       probe_label, test, alpha, trust), owner=_session(request))
        return job.id, views.job_status(job, self.queue.position(job)), gr.Timer(active=True)

    def _unfinished(self, job: Job | None, n_outputs: int) -> list[Any] | None:
        """Status and timer (plus unchanged outputs) for a job that has no result to show; None when it has one."""
        keep = [gr.skip()] * n_outputs
        if job is None:
            return [views.job_status(None), gr.Timer(active=False), *keep]
        if job.state not in FINISHED:
            return [views.job_status(job, self.queue.position(job)), gr.Timer(), *keep]
        if job.state != DONE:
            return [views.job_status(job), gr.Timer(active=False), *keep]
        return None

    def poll_audit(self, job_id):
        """Status of the audit job, and all result components once it is done."""
        job = self.queue.get(job_id)
        if (pending := self._unfinished(job, 9)) is not None:
            return pending
        audit, shown = job.result
        return [views.job_status(job), gr.Timer(active=False), *self.render_audit(audit, shown, job.id)]

    def render_audit(self, audit: LibraryAudit, shown: str, job_id: str) -> list[Any]:
        """Verdict card, table, figures, downloads and command for a finished audit."""
        m = audit.matrix
        heat = evidence_heatmap(m)
        mp = embedding_map(audit.embedding, m.names, m.lineages, suspect_index=0)
        top = audit.report.rows[0] if audit.report.rows else None
        ev = (evidence_plot(top.result, top.reference.name, audit.suspect.name)
              if top is not None and not top.result.inconclusive else None)
        record = audit.to_dict()
        record["command"] = audit.command(shown)
        out = exports_dir() / f"seedprints-audit-{job_id}.json"
        out.write_text(json.dumps(record, indent=1))
        page = exports_dir() / f"seedprints-report-{job_id}.html"
        page.write_text(report_html(audit, audit.command(shown)), encoding="utf-8")
        cmd = (f"Reproduce from the command line (the library's probe, the same test):\n\n```\n{audit.command(shown)}\n```"
               + ("\n\n(SUSPECT: the uploaded model.)" if shown == "SUSPECT" else ""))
        return [views.verdict_card(audit), views.ranked_table(audit), heat, mp, ev,
                gr.DownloadButton(value=str(out), visible=True), gr.DownloadButton(value=str(page), visible=True),
                cmd, gr.Column(visible=True)]

    def cancel(self, job_id) -> str:
        """Cancel the session's job: drop it from the queue or stop it before its next batch."""
        job = self.queue.get(job_id)
        if job is None or job.state in FINISHED:
            return views.message("Nothing to cancel.")
        self.queue.cancel(job_id)
        return views.job_status(job, self.queue.position(job)) if job.state in FINISHED else views.message(
            "Cancelling: the extraction stops before its next batch.")

    def library_view(self, lib_label: str):
        """Table, reference names and a note for the chosen library."""
        try:
            lib = open_library(lib_label)
            refs = lib.list()
        except SeedPrintsError as exc:
            return views.library_table([]), gr.Dropdown(choices=[], value=None), views.message(str(exc), "error")
        names = [r.name for r in refs]
        note = f"{len(refs)} reference(s) in {lib_label} ({lib.root})."
        if lib_label == DEMO_LIBRARY:
            note += " The demo library is read-only; add models to 'my library'."
        return views.library_table(refs), gr.Dropdown(choices=names, value=None), views.message(note)

    def start_add(self, source, files, hub_id, local_path, lib_label, probe_label, name, family, seed, notes, full,
                  request: gr.Request):
        """Check the form and queue fingerprinting a model into the chosen library."""
        try:
            if lib_label == DEMO_LIBRARY:
                raise LibraryError("the demo library is read-only: choose 'my library' to add models")
            self._resolve_model(source, None, files, hub_id, local_path, None)
            name = (name or "").strip()
            if not name:
                raise LibraryError("enter a name for the reference")
            seed_txt = str(seed).strip() if seed is not None else ""
            if seed_txt and not seed_txt.lstrip("-").isdigit():
                raise LibraryError(f"seed must be a whole number (or empty if unknown), got {seed_txt!r}")
            lib = open_library(lib_label)
            if name in {r.name for r in lib.list()}:
                raise LibraryError(f"{lib_label} already has a reference named {name!r}: choose another name")
        except SeedPrintsError as exc:
            return None, views.message(str(exc), "error"), gr.Timer(active=False)
        job = self.queue.submit(f"adding {name} to {lib_label}",
                                self._add_job(source, files, hub_id, local_path, lib_label, probe_label, name,
                                              family, seed_txt or None, notes, full), owner=_session(request))
        return job.id, views.job_status(job, self.queue.position(job)), gr.Timer(active=True)

    def poll_add(self, job_id, lib_label):
        """Status of the add job; refreshes the library table once done."""
        job = self.queue.get(job_id)
        if (pending := self._unfinished(job, 3)) is not None:
            return pending
        table, names, note = self.library_view(lib_label)
        return [views.message(job.result, "ok"), gr.Timer(active=False), table, names, note]

    def remove(self, lib_label, name):
        """Remove one reference from a writable library."""
        try:
            if lib_label == DEMO_LIBRARY:
                raise LibraryError("the demo library is read-only")
            if not name:
                raise LibraryError("choose the reference to remove")
            ref = open_library(lib_label).remove(name)
            msg = views.message(f"Removed {ref.name} ({ref.lineage}).", "ok")
        except SeedPrintsError as exc:
            msg = views.message(str(exc), "error")
        table, names, _ = self.library_view(lib_label)
        return table, names, msg

    def export(self, lib_label):
        """Export the chosen library as a zip for download."""
        try:
            lib = open_library(lib_label)
            if len(lib) == 0:
                raise LibraryError(f"{lib_label} is empty: nothing to export")
            safe = "".join(c if c.isalnum() else "-" for c in lib_label)
            out = lib.export_zip(exports_dir() / f"seedprints-library-{safe}-{int(time.time())}.zip")
        except SeedPrintsError as exc:
            return gr.File(value=None), views.message(str(exc), "error")
        return gr.File(value=str(out), visible=True), views.message(f"Exported {len(lib)} reference(s).", "ok")

    def import_zip(self, lib_label, file):
        """Import a library zip (validated completely first) into a writable library."""
        try:
            if lib_label == DEMO_LIBRARY:
                raise LibraryError("the demo library is read-only: import into 'my library'")
            if not file:
                raise LibraryError("choose a library .zip exported by SeedPrints")
            added = open_library(lib_label).import_zip(file, on_conflict="skip")
            msg = views.message(f"Imported {len(added)} reference(s); names already present were kept.", "ok")
        except SeedPrintsError as exc:
            msg = views.message(str(exc), "error")
        table, names, _ = self.library_view(lib_label)
        return table, names, msg

    # ------------------------------------------------------------------ layout
    def build(self) -> gr.Blocks:
        """Lay out the tabs and wire every event; returns the Blocks."""
        cfg = self.cfg
        sources = [SOURCE_DEMO, SOURCE_UPLOAD, SOURCE_HUB] + ([SOURCE_PATH] if cfg.local_paths else [])
        add_sources = [SOURCE_UPLOAD, SOURCE_HUB] + ([SOURCE_PATH] if cfg.local_paths else [])
        demo_choices = [f"{k}: {v}" for k, v in SUSPECTS.items()]
        lib_labels = list(libraries())
        # public mode: Gradio's own upload cache is swept hourly as well (each job deletes its uploads at its end)
        with gr.Blocks(title="SeedPrints", delete_cache=(3600, 3600) if cfg.public else None) as blocks:
            gr.Markdown(INTRO, elem_id="intro")
            if cfg.public:
                gr.Markdown(f"Public server: uploads up to {cfg.max_upload_bytes / 2**20:,.0f} MB, no local paths, "
                            "no remote code; uploaded files are deleted after each audit.", elem_classes="sp-note")
            startup = gr.HTML(views.message("Starting..."), elem_id="startup")
            startup_timer = gr.Timer(POLL_SECONDS, active=True)
            with gr.Tabs(elem_id="tabs") as tabs:
                with gr.Tab("Audit", id="audit", elem_id="tab-audit"):
                    with gr.Row(equal_height=False):
                        with gr.Column(scale=2, min_width=300):
                            source = gr.Radio(sources, value=SOURCE_DEMO, label="Suspect model", elem_id="source")
                            demo_key = gr.Dropdown(demo_choices, value=demo_choices[0], label="Demo suspect",
                                                   elem_id="demo-suspect")
                            files = gr.File(file_count="multiple", label="Model files: .gguf, a .zip of the folder, "
                                            "or .safetensors/.bin + config.json", visible=False, elem_id="upload",
                                            file_types=[".gguf", ".zip", ".safetensors", ".bin", ".json"])
                            hub_id = gr.Textbox(label="Hub id (needs internet)", placeholder="org/model",
                                                visible=False, elem_id="hub-id")
                            local_path = gr.Textbox(label="Local path on this computer", visible=False,
                                                    placeholder="/path/to/model-folder", elem_id="local-path")
                            lib_choice = gr.Dropdown(lib_labels, value=DEMO_LIBRARY, label="Reference library",
                                                     elem_id="audit-library")
                            probe_choice = gr.Dropdown([], label="Probe (from the library)", elem_id="audit-probe")
                            with gr.Accordion("Advanced", open=False):
                                test_choice = gr.Radio([TEST_CALIBRATED, TEST_PAPER], value=TEST_CALIBRATED,
                                                       label="Statistical test")
                                alpha = gr.Number(0.01, label="Significance level alpha", minimum=0.0001, maximum=0.2)
                                trust = gr.Checkbox(False, label="Allow the model's own Python code (trust_remote_code; "
                                                    "only for authors you trust)", visible=cfg.local_paths)
                            with gr.Row():
                                run_btn = gr.Button("Run audit", variant="primary", elem_id="run-audit")
                                cancel_btn = gr.Button("Cancel", variant="stop", elem_id="cancel-audit")
                            status = gr.HTML(views.job_status(None), elem_id="audit-status")
                            gr.Examples([[SOURCE_DEMO, c] for c in demo_choices], inputs=[source, demo_key],
                                        label="Demo suspects")
                        with gr.Column(scale=3, min_width=320, visible=False, elem_id="results") as results:
                            verdict = gr.HTML(elem_id="verdict")
                            ranked = gr.Dataframe(label="References, strongest evidence first", interactive=False,
                                                  elem_id="ranked", wrap=True)
                            with gr.Row():
                                download = gr.DownloadButton("Download audit (JSON)", visible=False,
                                                             elem_id="download-json")
                                download_report = gr.DownloadButton("Download report (HTML)", visible=False,
                                                                    elem_id="download-report")
                            command = gr.Markdown(elem_id="command")
                    heat = gr.Plot(label="Evidence matrix", elem_id="heatmap")
                    with gr.Row():
                        umap_plot = gr.Plot(label="Map of the models", elem_id="umap")
                        evidence = gr.Plot(label="Evidence of the strongest reference", elem_id="evidence")
                    with gr.Accordion("Robustness check: does the verdict survive modifications?", open=False,
                                      elem_id="robustness"):
                        gr.Markdown("Applies " + "; ".join(f"**{k}** ({d})" for k, (d, _) in
                                                             MODIFICATIONS.items()) +
                                    " to the suspect, fingerprints each copy with the same probe and scans "
                                    "the same library. Takes about six audits' time.")
                        robust_btn = gr.Button("Check robustness", elem_id="robust-btn")
                        robust_status = gr.HTML(elem_id="robust-status")
                        robust_table = gr.Dataframe(interactive=False, elem_id="robust-table", wrap=True)
                        robust_plot = gr.Plot(elem_id="robust-plot", show_label=False)
                with gr.Tab("Library", id="library", elem_id="tab-library") as lib_tab:
                    lib_view_choice = gr.Dropdown(lib_labels, value=MY_LIBRARY, label="Library", elem_id="library-choice")
                    lib_msg = gr.HTML(elem_id="library-msg")
                    lib_table = gr.Dataframe(views.library_table([]), label="References", interactive=False,
                                             elem_id="library-table", wrap=True)
                    with gr.Accordion("Add a model", open=True, elem_id="add-model"):
                        with gr.Row():
                            add_source = gr.Radio(add_sources, value=add_sources[-1], label="Model", elem_id="add-source")
                        add_files = gr.File(file_count="multiple", label="Model files", visible=add_sources[-1] == SOURCE_UPLOAD,
                                            file_types=[".gguf", ".zip", ".safetensors", ".bin", ".json"],
                                            elem_id="add-upload")
                        add_hub = gr.Textbox(label="Hub id", visible=add_sources[-1] == SOURCE_HUB, elem_id="add-hub")
                        add_path = gr.Textbox(label="Local path", visible=add_sources[-1] == SOURCE_PATH,
                                              elem_id="add-path")
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
                        add_status = gr.HTML(elem_id="add-status")
                    with gr.Accordion("Remove, export, import", open=False):
                        with gr.Row():
                            rm_name = gr.Dropdown([], label="Reference to remove", elem_id="remove-name")
                            rm_btn = gr.Button("Remove", variant="stop", elem_id="remove-btn")
                        with gr.Row():
                            export_btn = gr.Button("Export library (.zip)", elem_id="export-btn")
                            export_file = gr.File(label="Exported library", interactive=False, elem_id="export-file")
                        with gr.Row():
                            import_file = gr.File(label="Library .zip to import", file_types=[".zip"],
                                                  elem_id="import-file")
                            import_btn = gr.Button("Import", elem_id="import-btn")
                build_learn_tab(self)
                with gr.Tab("About", id="about", elem_id="tab-about"):
                    gr.Markdown(ABOUT)

            job_id = gr.State(None)
            add_job_id = gr.State(None)
            audit_timer = gr.Timer(POLL_SECONDS, active=False)
            add_timer = gr.Timer(POLL_SECONDS, active=False)

            def show_inputs(src):
                return (gr.Dropdown(visible=src == SOURCE_DEMO), gr.File(visible=src == SOURCE_UPLOAD),
                        gr.Textbox(visible=src == SOURCE_HUB), gr.Textbox(visible=src == SOURCE_PATH))

            source.change(show_inputs, source, [demo_key, files, hub_id, local_path], queue=False)
            add_source.change(lambda s: show_inputs(s)[1:], add_source, [add_files, add_hub, add_path], queue=False)
            startup_timer.tick(self.startup_status, lib_choice, [startup, startup_timer, probe_choice], queue=False)
            lib_choice.change(self.audit_probe_choices, lib_choice, probe_choice, queue=False)
            blocks.load(self.audit_probe_choices, lib_choice, probe_choice, queue=False)
            blocks.load(self.library_view, lib_view_choice, [lib_table, rm_name, lib_msg], queue=False)
            blocks.load(self.add_probe_choices, lib_view_choice, add_probe, queue=False)
            blocks.load(lambda: (self.library_choices(DEMO_LIBRARY), self.library_choices(MY_LIBRARY)), None,
                        [lib_choice, lib_view_choice], queue=False)

            run_btn.click(self.start_audit, [source, demo_key, files, hub_id, local_path, lib_choice, probe_choice,
                                             test_choice, alpha, trust], [job_id, status, audit_timer],
                          concurrency_limit=None)
            audit_timer.tick(self.poll_audit, job_id, [status, audit_timer, verdict, ranked, heat, umap_plot, evidence,
                                                        download, download_report, command, results], queue=False)
            robust_id = gr.State(None)
            robust_timer = gr.Timer(POLL_SECONDS, active=False)
            robust_btn.click(self.start_robustness, [source, demo_key, files, hub_id, local_path, lib_choice,
                                                     probe_choice, test_choice, alpha, trust],
                             [robust_id, robust_status, robust_timer], concurrency_limit=None)
            robust_timer.tick(self.poll_robustness, robust_id, [robust_status, robust_timer, robust_table, robust_plot],
                              queue=False)
            cancel_btn.click(self.cancel, job_id, status, queue=False)

            lib_tab.select(self.library_view, lib_view_choice, [lib_table, rm_name, lib_msg], queue=False)
            lib_view_choice.change(self.library_view, lib_view_choice, [lib_table, rm_name, lib_msg], queue=False)
            lib_view_choice.change(self.add_probe_choices, lib_view_choice, add_probe, queue=False)
            add_btn.click(self.start_add, [add_source, add_files, add_hub, add_path, lib_view_choice, add_probe, add_name,
                                           add_family, add_seed, add_notes, add_full], [add_job_id, add_status, add_timer],
                          concurrency_limit=None)
            add_timer.tick(self.poll_add, [add_job_id, lib_view_choice],
                           [add_status, add_timer, lib_table, rm_name, lib_msg], queue=False)
            add_cancel.click(self.cancel, add_job_id, add_status, queue=False)
            rm_btn.click(self.remove, [lib_view_choice, rm_name], [lib_table, rm_name, lib_msg], concurrency_limit=1)
            export_btn.click(self.export, lib_view_choice, [export_file, lib_msg], concurrency_limit=1)
            import_btn.click(self.import_zip, [lib_view_choice, import_file], [lib_table, rm_name, lib_msg],
                             concurrency_limit=1)
            del tabs
        blocks.queue(default_concurrency_limit=4, max_size=64)
        return blocks


def build_app(cfg: AppConfig | None = None) -> gr.Blocks:
    """The app's Blocks for ``cfg`` (local mode by default); the demo library starts building at once."""
    return SeedPrintsApp(cfg or AppConfig()).build()


def data_home() -> Path:
    """Where this app keeps its data (for --help and the README)."""
    return home()
