"""The documented API: ``/audit``, ``/libraries`` and ``/references``, the only endpoints a client can call.

They go through the same checks and the same worker queue as the page, and the same public-mode rules:
a caller reaches the demo library and, signed in to Hugging Face on a Space with OAuth, their own; an
anonymous caller on a public server the demo only.  Every other handler of the page is private
(:func:`make_internal_private`), so ``gradio_client`` neither lists nor calls it.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import gradio as gr

from seedprints.demo import SUSPECTS
from seedprints.errors import SeedPrintsError
from seedprints.methods import DEFAULT_ALPHA

from .audit_tab import AuditForm, AuditResult, check_form, parse_form, run_audit
from .context import DEMO_LIBRARY, Server, libraries, open_library, probe_choices
from .jobs import DONE, FINISHED, Job
from .sources import SOURCE_DEMO, SOURCE_HUB, SOURCE_UPLOAD
from .tasks import session_of
from .views import verdict_headline
from .visitors import api_visitor

API_NAMES = ("audit", "libraries", "references")
#: how often a waiting /audit call reports the job's state
REPORT_SECONDS = 1.0


def api_form(server: Server, files: list[str] | None, model: str, library: str, probe: str, test: str,
             visitor: str | None) -> AuditForm:
    """The audit form an API call stands for: an upload, else a demo suspect's name, else a Hub id."""
    model = (model or "").strip()
    library = (library or "").strip() or DEMO_LIBRARY
    if files:
        source = SOURCE_UPLOAD
    elif model in SUSPECTS:
        source = SOURCE_DEMO
    elif model:
        source = SOURCE_HUB
    else:
        raise SeedPrintsError(f"give the suspect: upload its files, or name a Hub id or a demo suspect "
                              f"({', '.join(SUSPECTS)})")
    probe_id = (probe or "").strip() or None
    if probe_id is not None:
        choices = probe_choices(open_library(library, visitor), None)
        if probe_id not in choices:
            raise SeedPrintsError(f"{library} has no probe {probe!r}: use one of {', '.join(choices)}, "
                                  "or leave it empty")
    return parse_form(source, model if source == SOURCE_DEMO else None, files, model if source == SOURCE_HUB else "",
                      "", library, probe_id, (test or "").strip() or "calibrated", DEFAULT_ALPHA, False, visitor)


def wait_for(server: Server, job: Job) -> Iterator[str]:
    """Yield a status line every REPORT_SECONDS until the job ends; a caller that goes away cancels it."""
    try:
        while job.state not in FINISHED:
            ahead = server.queue.position(job)
            yield (f"queued: {ahead} job(s) ahead" if ahead else f"{job.state}: {job.stage}"
                   + (f" ({job.done} of {job.total})" if job.total else ""))
            time.sleep(REPORT_SECONDS)
    finally:
        if job.state not in FINISHED:
            server.queue.cancel(job.id)


def build_api(server: Server) -> None:
    """Declare the three documented endpoints; call inside the open ``gr.Blocks``."""
    public = server.cfg.public

    def audit(files: list[str] | None, model: str, library: str, probe: str, test: str, request: gr.Request,
              profile: gr.OAuthProfile | None) -> Iterator[tuple[str, Any]]:
        """Audit a suspect against a reference library on the server's worker queue.

        files: the suspect's files (a .gguf, a .zip of the model folder, or .safetensors/.bin with config.json),
        or none; model: else a Hub id ('org/name[@revision]') or a demo suspect's name; library: a name from
        /libraries (default the demo library); probe: a probe id from /references (empty: the library's);
        test: 'calibrated' (default) or 'paper'. While the job waits or runs, the first output reports its
        state; at the end it is the verdict ('MATCH: seed 3', 'NO MATCH', ...) and the second output is the
        audit's JSON record (the page's 'Download audit (JSON)').
        """
        try:
            form = api_form(server, files, model, library, probe, test, api_visitor(public, profile))
            check_form(server, form)
            what = form.model.demo_key if form.model.source == SOURCE_DEMO else form.model.source
            job = server.queue.submit(f"audit of {what} (API)", lambda j: run_audit(server, form, j),
                                      owner=session_of(request))
        except SeedPrintsError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        for line in wait_for(server, job):
            yield line, None
        if job.state != DONE:
            raise gr.Error(f"the audit did not finish: {job.error or job.state}", print_exception=False)
        result: AuditResult = job.result
        yield verdict_headline(result.audit), json.loads(result.json_path.read_text())

    def list_libraries(profile: gr.OAuthProfile | None) -> list[str]:
        """The reference libraries this caller may audit against."""
        return list(libraries(api_visitor(public, profile)))

    def references(library: str, profile: gr.OAuthProfile | None) -> list[dict[str, Any]]:
        """The references of one library (a name from /libraries): name, family, seed (null if unknown), probe id."""
        try:
            lib = open_library((library or "").strip() or DEMO_LIBRARY, api_visitor(public, profile))
        except SeedPrintsError as exc:
            raise gr.Error(str(exc), print_exception=False) from None
        return [{"name": r.name, "family": r.family, "seed": r.seed, "probe": r.probe_id} for r in lib.list()]

    with gr.Column(visible=False):
        files = gr.File(file_count="multiple", label="suspect files")
        model = gr.Textbox(label="model (Hub id or demo suspect name)")
        library = gr.Textbox(DEMO_LIBRARY, label="library")
        probe = gr.Textbox("", label="probe id (empty: the library's)")
        test = gr.Textbox("calibrated", label="test (calibrated or paper)")
        verdict = gr.Textbox(label="verdict")
        record = gr.JSON(label="audit record")
        trigger = gr.Button(visible=False)
    # waiting calls hold a thread each but no worker: the worker queue runs one job at a time anyway
    trigger.click(audit, [files, model, library, probe, test], [verdict, record], api_name="audit",
                  concurrency_limit=16, concurrency_id="api-audit")
    gr.api(list_libraries, api_name="libraries", queue=False)
    gr.api(references, api_name="references", queue=False)


def make_internal_private(blocks: gr.Blocks) -> None:
    """Every handler but the documented API becomes private: not listed by view_api, refused by gradio_client.

    The page still calls them; what a handler can reach is bounded by its session's server-side state
    (its job ids, its visitor key), never by what the request names.
    """
    for fn in blocks.fns.values():
        if fn.api_name not in API_NAMES:
            fn.api_visibility = "private"
