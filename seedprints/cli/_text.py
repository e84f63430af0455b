"""Plain-text output: tables, one test's result in a sentence, a scan's ranking and verdict."""

from __future__ import annotations

from ..stats import SeedPrintsResult
from ..verdict import ScanReport, format_p


def table(headers: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h) for i, h in enumerate(headers)]
    line = lambda cells: "  ".join(c.ljust(w) for c, w in zip(cells, widths)).rstrip()  # noqa: E731
    return "\n".join([line(headers), line(["-" * w for w in widths])] + [line(r) for r in rows])


def result_text(r: SeedPrintsResult, alpha: float) -> str:
    if r.inconclusive:
        return f"INCONCLUSIVE: {r.reason}"
    verdict = "same lineage" if r.significant(alpha) else "no evidence of shared lineage"
    measure = "mean Spearman rho" if r.method.startswith("calibrated") else "mean Kendall tau"
    rows = f"n = {r.n} rows, every probe position" if r.details.get("rows") == "every position" else f"n = {r.n}"
    text = (f"{verdict} at alpha={alpha:g}: {measure} = {r.statistic:.4f} over k = {r.k} columns ({rows}), "
            f"z = {r.z:.2f}, p = {format_p(r.log10_pvalue)} (log10 p = {r.log10_pvalue:.2f}), {r.method}, {r.mode} mode")
    basis = r.details.get("basis")
    if basis and basis.get("aligned"):
        text += (f"; basis check: anchor similarity {basis['anchor_similarity']:.2f}, z = {basis['z_as_is']:.2f} "
                 f"as is, {basis['z_aligned']:.2f} aligned (p doubled for the two readings)")
        if r.significant(alpha) and basis["reading"] == "aligned" and basis["change"] != "unchanged":
            text += f"; {basis['describe']}"
    elif basis and basis.get("checked"):
        text += f"; basis check: anchor similarity {basis['anchor_similarity']:.2f}, below {basis['gate']:g}, so read as is"
    elif basis:
        text += f"; basis check not run: {basis['reason']}"
    return text


def scan_text(rep: ScanReport) -> str:
    rows = [[str(i + 1), r.reference.name, r.reference.family or "-", "-" if r.reference.seed is None else str(r.reference.seed),
             f"{r.result.statistic:.4f}", f"{r.result.z:.2f}", f"{r.result.log10_pvalue:.2f}", f"{r.log10_p_holm:.2f}",
             str(r.result.k), "inconclusive" if r.result.inconclusive else ("yes" if r.significant else "no")]
            for i, r in enumerate(rep.rows)]
    out = [f"suspect: {rep.suspect}   probe: {rep.probe_id}   alpha: {rep.alpha:g} (Holm-corrected)", "",
           table(["#", "reference", "family", "seed", "statistic", "z", "log10 p", "log10 p (Holm)", "k", "significant"], rows)]
    if rep.skipped:
        out += ["", "skipped:"] + [f"  {n}: {why}" for n, why in rep.skipped]
    out += ["", f"VERDICT: {rep.verdict.label}", rep.verdict.reason]
    if rep.test.get("test") == "paper" and rep.test.get("null") == "analytical":
        out += ["", "note: paper-mode analytical p-values assume independent columns; docs/method.md shows they can "
                "over-state the evidence between unrelated models, so treat borderline matches (|log10 p| < 10) "
                "with care."]
    return "\n".join(out)
