"""HTML and table pieces of the app: verdict card, progress bar, ranked table, library table."""

from __future__ import annotations

import html
import math
import re

import pandas as pd

from seedprints.audit import LibraryAudit
from seedprints.library import Reference
from seedprints.verdict import format_p

from .jobs import CANCELLED, DONE, FAILED, QUEUED, Job

_LABEL_CLASS = {"MATCH": "sp-match", "NO MATCH": "sp-nomatch", "AMBIGUOUS": "sp-ambiguous", "INCONCLUSIVE": "sp-inconclusive"}


def _fmt_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.0f} s" if s >= 10 else f"{s:.1f} s"
    return f"{int(s // 60)} min {int(s % 60):02d} s"


def message(text: str, kind: str = "info") -> str:
    """A one-line notice box: kind is info, ok or error."""
    return f'<div class="sp-msg sp-msg-{kind}" role="status">{html.escape(text)}</div>'


#: engine wording for a Hub model this server cannot fetch (its environment variables, CLI, socket errors)
_HUB_UNREACHABLE = re.compile(r"HF_HUB_OFFLINE|HF_HUB_CACHE|hf download|\[Errno -?\d+\]|"
                              r"cannot reach the Hugging Face Hub")
_HUB_ID = re.compile(r"\b([\w.-]+/[\w.-]+?)(?:@[\w./-]+)?(?=[\s:,)]|$)")

#: advice worded for the command line or the library -> the same advice in the page's terms
_IN_APP_TERMS = [("zip the folder that save_pretrained() wrote",
                  "upload a .zip of the whole model folder, with its config.json"),
                 ("put one beside it or pass --config PATH", "upload its config.json together with it")]


def plain_error(text: str) -> tuple[str, str | None]:
    """(what went wrong and what to do, in the app's terms; the engine's own text when it differs, else None)."""
    plain = text
    if _HUB_UNREACHABLE.search(text):
        hit = _HUB_ID.search(text)
        what = hit.group(1) if hit else "this model"
        plain = (f"this server cannot download {what} from the Hugging Face Hub (it is offline, or the Hub cannot "
                 "be reached): choose 'upload files' and upload the model's files instead")
    elif any(engine in text for engine, _ in _IN_APP_TERMS):
        for engine, app in _IN_APP_TERMS:
            plain = plain.replace(engine, app)
    elif text.startswith("unexpected error"):
        plain = ("something unexpected went wrong while reading or running this model: try again, or another copy "
                 "of the model; if it happens again, report it with the technical detail")
    plain = re.sub(r"\s*\[Errno -?\d+\]\s*", " ", plain)
    return plain, (text if plain != text else None)


def error_message(text: str, lead: str = "") -> str:
    """An error box that says what to do in the app's terms; the engine's technical text, when it differs, one
    click away in a collapsed <details>."""
    plain, detail = plain_error(text)
    box = message(lead + plain, "error")
    if detail is None:
        return box
    return (f'{box}<details class="sp-tech"><summary>Technical detail</summary>'
            f'<code>{html.escape(detail)}</code></details>')


def job_status(job: Job | None, position: int = 0, *, idle: str = "Ready. Choose a suspect and press Run audit.",
               unit: str | None = "probe samples", cancellable: bool = True) -> str:
    """Progress bar with the stage, steps done, elapsed and estimated time left; or the job's end state.

    ``unit`` names what ``done`` of ``total`` counts (None: show the stage alone); ``idle`` is shown before any job.
    """
    if job is None:
        return message(idle)
    label = html.escape(job.label)
    if job.state == QUEUED:
        ahead = (f"<b>{position} job(s) ahead</b> (one extraction runs at a time on this server). "
                 if position else "Starting now. ")
        hint = "Cancel removes it from the queue." if cancellable else ""
        return f'<div class="sp-status" data-state="queued">Queued: {label}<br>{ahead}{hint}</div>'
    if job.state == DONE:
        return message(f"Done: {job.label} in {_fmt_seconds(job.elapsed())}.", "ok")
    if job.state == FAILED:
        return error_message(job.error, f"Could not finish {job.label}: ")
    if job.state == CANCELLED:
        return message(f"Cancelled: {job.label}. {job.error}".strip(), "info")
    frac = job.done / job.total if job.total else 0.0
    eta = job.eta()
    eta_txt = f", about {_fmt_seconds(eta)} left" if eta is not None else ""
    detail = f"{job.stage}: {job.done} of {job.total} {unit}{eta_txt}" if job.total and unit else job.stage
    return (f'<div class="sp-status" data-state="running"><div>Running: {label} '
            f'({_fmt_seconds(job.elapsed())} elapsed)</div>'
            f'<div class="sp-bar"><div class="sp-bar-fill" style="width:{100 * frac:.1f}%"></div></div>'
            f'<div class="sp-detail">{html.escape(detail)}</div></div>')


def verdict_headline(audit: LibraryAudit) -> str:
    """'MATCH: seed 3', 'NO MATCH', 'AMBIGUOUS' or 'INCONCLUSIVE': the verdict card's title and the API's answer."""
    v = audit.report.verdict
    if v.label == "MATCH":
        return f"MATCH: seed {v.seed}" if v.seed is not None else "MATCH: unknown seed"
    return v.label


def verdict_lead(audit: LibraryAudit) -> str:
    """The verdict in plain words, with no statistics: the first thing the card says under its title."""
    v = audit.report.verdict
    rows = audit.report.rows
    tested = sum(not r.result.inconclusive for r in rows)
    if v.label == "MATCH":
        seed = "an unknown seed" if v.seed is None else f"seed {v.seed}"
        fam = f" of the {v.family} family" if v.family else ""
        return (f"The suspect was most likely made from the same training seed as {v.reference} ({seed}{fam}): "
                "it is a copy or a derivative of a model of that seed.")
    if v.label == "NO MATCH":
        return (f"None of the {tested} reference models in this library shares its training seed with the suspect: "
                "as far as this library can tell, it was not made from any of them.")
    if v.label == "AMBIGUOUS":
        return ("References of several different seeds look linked to the suspect, so the evidence does not point "
                "to one seed; check whether those references are themselves related.")
    return "No decision could be made: see the details below for why."


def _detail_rows(pairs: list[tuple[str, str, str]]) -> str:
    """Rows of (name, value as HTML, what it means in words) for the verdict card's details."""
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{v}<div class=\"sp-means\">{html.escape(m)}</div></td></tr>"
                   for k, v, m in pairs)


def verdict_card(audit: LibraryAudit) -> str:
    """The verdict in plain words first; the numbers (p after Holm, z, test, mode, k, alpha, probe, weights) in a
    details row below, each with what it means."""
    rep = audit.report
    v = rep.verdict
    cls = _LABEL_CLASS.get(v.label, "sp-inconclusive")
    head = verdict_headline(audit)
    test = rep.test
    pairs: list[tuple[str, str, str]] = []
    top = rep.rows[0] if rep.rows and not rep.rows[0].result.inconclusive else None
    if top is not None:
        pairs += [
            ("strongest reference", f"{html.escape(top.reference.name)} ({html.escape(top.reference.lineage)})",
             "the reference whose evidence of a shared seed is strongest (first row of the table)"),
            ("p-value", f"p = {html.escape(format_p(top.log10_p_holm))} after Holm correction "
                        f"(log10 p = {top.log10_p_holm:.1f}; {html.escape(format_p(top.result.log10_pvalue))} "
                        "for this pair alone)",
             "the chance that models of unrelated seeds agree this strongly; small means linked. The evidence plot "
             "shows the same p"),
            ("Holm correction", f"over {len(rep.rows)} reference(s)",
             "the p-value is raised to account for testing every reference at once, so a large library does not "
             "find a link by luck"),
            ("z", f"{top.result.z:.1f}", "how far the evidence lies above what unrelated models show, in standard "
                                         "deviations (about 0 for unrelated models)"),
            ("k", f"{top.result.k}", "how many identity dimensions (the hidden units that vary most with the "
                                     "seed) were compared"),
        ]
    name = str(test.get("test", "calibrated"))
    test_txt = ("calibrated re-pairing test (default)" if name == "calibrated"
                else "paper test (published, can over-state evidence)")
    pairs += [
        ("test", html.escape(test_txt), "the statistical test that turns the two models' activations into a p-value"),
        ("mode", html.escape(str(test.get("mode", ""))),
         "which dimensions are paired: base pairs each dimension with the same one of the reference; coset also "
         "tries the permutations a re-ordering of the hidden units could make"),
        ("alpha", f"{rep.alpha:g}", "the threshold: p below it counts as a link"),
        ("references", f"{len(rep.rows)} tested, {len(rep.skipped)} skipped",
         "skipped references were made with another probe or hidden size"),
        ("probe", html.escape(audit.suspect.spec.describe()), "the fixed random inputs both models are run on"),
        ("suspect weights", f"<code>{html.escape(audit.suspect.model.weights_hash[:16])}…</code> "
                            f"{html.escape(audit.suspect.model.architecture)}, hidden size {audit.suspect.d}",
         "a hash of the suspect's weights, to tell which file was audited"),
    ]
    return (f'<div class="sp-verdict {cls}" data-label="{html.escape(v.label)}">'
            f'<div class="sp-verdict-label">{html.escape(head)}</div>'
            f'<p class="sp-verdict-lead">{html.escape(verdict_lead(audit))}</p>'
            f'<details class="sp-verdict-details"><summary>Details: the numbers behind this verdict</summary>'
            f'<p class="sp-verdict-reason">{html.escape(v.reason)}</p>'
            f'<table class="sp-evidence">{_detail_rows(pairs)}</table></details></div>')


def ranked_table(audit: LibraryAudit) -> pd.DataFrame:
    """The scan's ranked table, strongest evidence first."""
    recs = []
    for i, r in enumerate(audit.report.rows, 1):
        res = r.result
        recs.append({"rank": i, "reference": r.reference.name, "family": r.reference.family,
                     "seed": "" if r.reference.seed is None else str(r.reference.seed),
                     "z": round(res.z, 2) if math.isfinite(res.z) else None,
                     "log10 p": round(res.log10_pvalue, 2), "log10 p (Holm)": round(r.log10_p_holm, 2),
                     "significant": "inconclusive" if res.inconclusive else ("yes" if r.significant else "no")})
    for name, why in audit.report.skipped:
        recs.append({"rank": None, "reference": name, "family": "", "seed": "", "z": None, "log10 p": None,
                     "log10 p (Holm)": None, "significant": f"skipped: {why}"})
    return pd.DataFrame(recs, columns=RANKED_COLUMNS)


#: the ranked table's columns, what decides the verdict first (a phone shows the first few without scrolling)
RANKED_COLUMNS = ["reference", "seed", "significant", "log10 p (Holm)", "z", "family", "log10 p", "rank"]


def library_table(refs: list[Reference]) -> pd.DataFrame:
    """One row per reference with its metadata."""
    return pd.DataFrame([{"name": r.name, "family": r.family, "seed": "" if r.seed is None else str(r.seed),
                          "architecture": r.architecture, "hidden size": r.hidden_size, "probe": r.probe_id,
                          "notes": r.notes, "added": r.created_at[:16].replace("T", " ")} for r in refs],
                        columns=["name", "family", "seed", "architecture", "hidden size", "probe", "notes", "added"])


def robustness_table(rows: list) -> pd.DataFrame:
    """One row per modification: verdict, seed, evidence, survived or not."""
    return pd.DataFrame([{"modification": r.modification, "what": r.description, "verdict": r.label,
                          "seed": "" if r.seed is None else str(r.seed), "reference": r.reference or "",
                          "z": round(r.z, 1) if math.isfinite(r.z) else None,
                          "log10 p (Holm)": round(r.log10_p, 1) if math.isfinite(r.log10_p) else None,
                          "match kept": "yes" if r.survived else "no"} for r in rows],
                        columns=["modification", "what", "verdict", "seed", "reference", "z", "log10 p (Holm)",
                                 "match kept"])
