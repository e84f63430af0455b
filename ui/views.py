"""HTML and table pieces of the app: verdict card, progress bar, ranked table, library table."""

from __future__ import annotations

import html
import math

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
        return message(f"Could not finish {job.label}: {job.error}", "error")
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


def verdict_card(audit: LibraryAudit) -> str:
    """The plain-language verdict with its evidence (log10 p after Holm, z) and what it rests on."""
    rep = audit.report
    v = rep.verdict
    cls = _LABEL_CLASS.get(v.label, "sp-inconclusive")
    head = verdict_headline(audit)
    sub = ""
    if v.label == "MATCH":
        fam = f" of the {v.family} family" if v.family else ""
        sub = f"closest reference: {v.reference}{fam}"
    rows = ""
    if rep.rows and not rep.rows[0].result.inconclusive:
        top = rep.rows[0]
        rows = (f"<tr><th>strongest reference</th><td>{html.escape(top.reference.name)} "
                f"({html.escape(top.reference.lineage)})</td></tr>"
                f"<tr><th>evidence</th><td>log10 p = {top.log10_p_holm:.1f} after Holm correction "
                f"(p = {html.escape(format_p(top.log10_p_holm))}), z = {top.result.z:.1f}</td></tr>")
    test = rep.test.get("test", "calibrated")
    test_txt = ("calibrated re-pairing test (default)" if test == "calibrated"
                else "paper test (published, can over-state evidence)")
    rows += (f"<tr><th>test</th><td>{html.escape(test_txt)}, alpha = {rep.alpha:g}, "
             f"{len(rep.rows)} reference(s) tested, {len(rep.skipped)} skipped</td></tr>"
             f"<tr><th>probe</th><td>{html.escape(audit.suspect.spec.describe())}</td></tr>"
             f"<tr><th>suspect weights</th><td><code>{html.escape(audit.suspect.model.weights_hash[:16])}…</code> "
             f"{html.escape(audit.suspect.model.architecture)}, hidden size {audit.suspect.d}</td></tr>")
    return (f'<div class="sp-verdict {cls}" data-label="{html.escape(v.label)}">'
            f'<div class="sp-verdict-label">{html.escape(head)}</div>'
            f'<div class="sp-verdict-sub">{html.escape(sub)}</div>'
            f'<p class="sp-verdict-reason">{html.escape(v.reason)}</p>'
            f'<table class="sp-evidence">{rows}</table></div>')


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
    return pd.DataFrame(recs, columns=["rank", "reference", "family", "seed", "z", "log10 p", "log10 p (Holm)",
                                       "significant"])


def library_table(refs: list[Reference]) -> pd.DataFrame:
    """One row per reference with its metadata."""
    return pd.DataFrame([{"name": r.name, "family": r.family, "seed": "" if r.seed is None else str(r.seed),
                          "architecture": r.architecture, "hidden size": r.hidden_size, "probe": r.probe_id,
                          "notes": r.notes, "added": r.created_at[:19]} for r in refs],
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
