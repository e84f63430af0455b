"""A self-contained HTML audit report: verdict, method, hashes, ranked table, interactive figures, limits.

The page embeds plotly.js and every figure, so it opens with no network; its command re-runs the audit.
"""

from __future__ import annotations

import datetime as _dt
import html
import math
from typing import Any

from . import __version__, optional
from .audit import LibraryAudit
from .measured import budget_of, false_positive_level
from .plots import embedding_map, evidence_heatmap, evidence_plot
from .probes import DEFAULT_PRESET, ProbeSpec
from .verdict import format_p

pio = optional.require("plotly.io", "the HTML report")
get_plotlyjs = optional.require("plotly.offline", "the HTML report").get_plotlyjs

LIMITATIONS = (
    "SeedPrints links models through their random initialisation: MATCH means the suspect descends "
    "(by training, fine-tuning, quantization, pruning or merging) from a model of the matched reference's "
    "seed. It does not say which of those steps happened, and it cannot link models trained from "
    "different seeds, even on the same data. A seed label is only as true as the library that records "
    "it. NO MATCH means no reference in this library shares the suspect's seed; the suspect may come "
    "from a seed the library does not hold. p-values are Holm-corrected over the references tested. "
    "Evidence depends on the probe: fingerprints made with different probes or hidden sizes are not compared."
)


def measured_level(spec: ProbeSpec) -> str:
    """What the benchmarks measured of both tests' false-positive rates, for this probe's budget (else the default's)."""
    budget = budget_of(spec)
    probe = budget if budget is not None else DEFAULT_PRESET
    calibrated, paper = false_positive_level(probe), false_positive_level(probe, test="paper")
    which = "" if budget is not None else (f" (this audit's probe is not one the benchmarks measured; the figures "
                                           f"are the default probe's, {DEFAULT_PRESET})")
    return (f"Measured on unrelated pairs{which}: the calibrated test gives {calibrated.text()}; the paper test "
            f"gives {paper.percent()} with the same probe ({paper.source}). The method and its guarantees: "
            "docs/method.md.")

_CSS = """
body { font-family: system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif; max-width: 1100px; margin: 2rem auto;
       padding: 0 1rem; color: #1f2937; line-height: 1.45; }
h1 { font-size: 1.5rem; } h2 { font-size: 1.15rem; margin-top: 2rem; border-bottom: 1px solid #e5e7eb; }
table { border-collapse: collapse; width: 100%; font-size: 0.9rem; }
th, td { text-align: left; padding: 0.3rem 0.5rem; border-bottom: 1px solid #eef0f3; vertical-align: top; }
code, pre { font-family: ui-monospace, Menlo, monospace; font-size: 0.85rem; }
pre { background: #f5f7fb; padding: 0.7rem; white-space: pre-wrap; word-break: break-all; }
td code { word-break: break-all; } .wide { overflow-x: auto; }
.verdict { border: 2px solid #6b7280; border-radius: 10px; padding: 1rem; }
.verdict .label { font-size: 1.6rem; font-weight: 700; }
.MATCH { border-color: #b91c1c; } .MATCH .label { color: #b91c1c; }
.NOMATCH { border-color: #15803d; } .NOMATCH .label { color: #15803d; }
.AMBIGUOUS { border-color: #b45309; } .AMBIGUOUS .label { color: #b45309; }
"""


def _rows(pairs: list[tuple[str, Any]]) -> str:
    return "".join(f"<tr><th>{html.escape(k)}</th><td>{v}</td></tr>" for k, v in pairs)


def _num(x: float, fmt: str = ".2f") -> str:
    return "" if x is None or not math.isfinite(x) else format(x, fmt)


def report_html(audit: LibraryAudit, command: str) -> str:
    """The report page for one audit; ``command`` is the CLI line printed for re-running it."""
    rep, sus, v = audit.report, audit.suspect, audit.report.verdict
    e = html.escape
    head = f"MATCH: seed {v.seed}" if v.label == "MATCH" and v.seed is not None else v.label
    test = rep.test
    method = [("test", e(str(test.get("test"))) + (" (re-pairing null, Spearman; the default)" if test.get("test") ==
                                                   "calibrated" else " (the published SeedPrints test)")),
              ("parameters", e(", ".join(f"{k} = {val}" for k, val in test.items() if k != "test"))),
              ("significance", f"alpha = {rep.alpha:g}, Holm correction over {len(rep.rows)} tested reference(s)"),
              ("probe", f"{e(sus.spec.describe())}"), ("probe id", f"<code>{e(rep.probe_id)}</code>"),
              ("library", f"<code>{e(audit.library)}</code>, {len(audit.references)} reference(s) with this probe, "
                          f"{len(rep.skipped)} skipped")]
    model = [("name", e(sus.name)), ("architecture", e(f"{sus.model.architecture} ({sus.model.model_type})")),
             ("hidden size", str(sus.d)), ("parameters", f"{sus.model.n_params:,}"),
             ("weights hash", f"<code>{e(sus.model.weights_hash)}</code>"), ("device, dtype",
                                                                            e(f"{sus.model.device}, {sus.model.dtype}"))]
    if sus.model.hub_repo:  # the exact Hub commit and the Hub's sha256 of every file that was loaded
        files = "<br>".join(f"<code>{e(n)}</code>: <code>{e(h)}</code>" for n, h in sorted(sus.model.hub_files.items()))
        model[1:1] = [("Hub checkpoint", f"<code id=\"hub-revision\">{e(sus.model.hub_repo)}@{e(sus.model.hub_revision)}"
                                         "</code>"), ("Hub files (sha256)", files)]
    by_name = {r.name: r for r in audit.references}
    ranked = "".join(
        f"<tr><td>{i}</td><td>{e(r.reference.name)}</td><td>{e(r.reference.lineage)}</td>"
        f"<td>{_num(r.result.z)}</td><td>{_num(r.result.log10_pvalue)}</td><td>{_num(r.log10_p_holm)}</td>"
        f"<td>{'inconclusive' if r.result.inconclusive else ('yes' if r.significant else 'no')}</td>"
        f"<td><code>{e((by_name[r.reference.name].weights_hash if r.reference.name in by_name else '')[:24])}</code></td></tr>"
        for i, r in enumerate(rep.rows, 1))
    skipped = "".join(f"<li>{e(n)}: {e(why)}</li>" for n, why in rep.skipped)
    m = audit.matrix
    top = rep.rows[0] if rep.rows else None
    figs = [("Evidence matrix", evidence_heatmap(m), "fig-heatmap"),
            ("Map of the models", embedding_map(audit.embedding, m.names, m.lineages, suspect_index=0), "fig-map")]
    if top is not None and not top.result.inconclusive:
        figs.append(("Evidence of the strongest reference", evidence_plot(top.result, top.reference.name, sus.name,
                                                                       top.log10_p_holm),
                     "fig-evidence"))
    fig_html = "".join(f"<h2>{e(t)}</h2>" + pio.to_html(f, include_plotlyjs=False, full_html=False, div_id=div,
                                                        config={"displaylogo": False})
                       for t, f, div in figs)
    created = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>SeedPrints audit: {e(sus.name)} - {e(head)}</title><style>{_CSS}</style>
<script type="text/javascript">{get_plotlyjs()}</script></head>
<body>
<h1>SeedPrints audit of {e(sus.name)}</h1>
<div id="verdict" class="verdict {e(v.label.replace(' ', ''))}" data-label="{e(v.label)}">
<div class="label">{e(head)}</div><p>{e(v.reason)}</p>
{f'<p>Evidence: log10 p = {top.log10_p_holm:.1f} after Holm correction (p = {e(format_p(top.log10_p_holm))}), z = {top.result.z:.1f}, against {e(top.reference.name)} ({e(top.reference.lineage)}).</p>' if top is not None and not top.result.inconclusive else ''}
</div>
<h2>Method and parameters</h2><table id="method">{_rows(method)}</table>
<h2>Suspect model</h2><table id="model">{_rows(model)}</table>
<h2>References, strongest evidence first</h2>
<div class="wide"><table id="ranked"><tr><th>#</th><th>reference</th><th>lineage</th><th>z</th><th>log10 p</th><th>log10 p (Holm)</th>
<th>significant</th><th>weights hash</th></tr>{ranked}</table></div>
{f'<p>Skipped:</p><ul>{skipped}</ul>' if skipped else ''}
{fig_html}
<h2>Reproduce</h2><p>This command re-runs the audit (same library, probe and test) and prints the same table and verdict:</p>
<pre id="command">{e(command)}</pre>
<h2>Limitations</h2><p id="limitations">{e(LIMITATIONS)}</p>
<p id="measured">{e(measured_level(sus.spec))}</p>
<p><small>SeedPrints {e(__version__)}, report written {created}. Method: Tong et al., SeedPrints (ICLR 2026).</small></p>
</body></html>"""
