"""Plotly figures of an audit: evidence matrix heatmap, 2-D map of models, per-dimension evidence.

Pure functions from engine results to ``plotly.graph_objects.Figure``; no UI code.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .similarity import Embedding, EvidenceMatrix
from .stats import SeedPrintsResult
from .verdict import format_p

#: -log10 p is drawn up to this value; stronger evidence gets the same darkest colour
EVIDENCE_CAP = 30.0
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf")


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 15}}, height=height,
                      margin={"l": 10, "r": 10, "t": 50, "b": 10}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.15})
    return fig


def evidence_heatmap(matrix: EvidenceMatrix) -> go.Figure:
    """Heatmap of -log10 p for every (reference row, suspect column) pair; hover shows z and p."""
    n = matrix.n
    strength = np.where(np.isnan(matrix.log10_p), np.nan, np.clip(-matrix.log10_p, 0.0, EVIDENCE_CAP))
    hover = []
    for i in range(n):
        row = []
        for j in range(n):
            if i == j:
                row.append(f"{matrix.names[i]}<br>(the same model)")
            elif math.isnan(matrix.z[i, j]):
                row.append(f"reference {matrix.names[i]}<br>suspect {matrix.names[j]}<br>not testable: the suspect "
                           "side is a compact library fingerprint or another probe")
            else:
                row.append(f"reference {matrix.names[i]} ({matrix.lineages[i]})<br>suspect {matrix.names[j]} "
                           f"({matrix.lineages[j]})<br>z = {matrix.z[i, j]:.1f}<br>p = {format_p(matrix.log10_p[i, j])}")
        hover.append(row)
    fig = go.Figure(go.Heatmap(
        z=strength, x=matrix.names, y=matrix.names, text=hover, hoverinfo="text", hoverongaps=False,
        zmin=0.0, zmax=EVIDENCE_CAP, colorscale="Blues",
        colorbar={"title": {"text": "-log10 p"}, "tickvals": [2, 10, 20, EVIDENCE_CAP],
                  "ticktext": ["2 (p = 0.01)", "10", "20", f"{EVIDENCE_CAP:g}+"]}))
    fig.update_yaxes(autorange="reversed", title="reference (row)")
    fig.update_xaxes(title="tested as suspect (column)", tickangle=-30)
    return _layout(fig, "Evidence of a shared seed between every pair", height=max(380, 60 + 34 * n))


def embedding_map(embedding: Embedding, names: Sequence[str], lineages: Sequence[str], suspect_index: int | None = 0
                  ) -> go.Figure:
    """Scatter of the 2-D map: one colour per lineage (family and seed), the suspect as a large star."""
    fig = go.Figure()
    coords = embedding.coords
    if embedding.links:  # one trace of segments (None breaks the line between pairs)
        xs: list[float | None] = []
        ys: list[float | None] = []
        for i, j in embedding.links:
            xs += [float(coords[i, 0]), float(coords[j, 0]), None]
            ys += [float(coords[i, 1]), float(coords[j, 1]), None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="significant evidence",
                                 line={"color": "rgba(90,90,90,0.45)", "width": 1.5}, hoverinfo="skip"))
    groups: dict[str, list[int]] = {}
    for i, lab in enumerate(lineages):
        if i != suspect_index:
            groups.setdefault(lab, []).append(i)
    for g, (lab, idx) in enumerate(groups.items()):
        fig.add_trace(go.Scatter(x=coords[idx, 0], y=coords[idx, 1], mode="markers+text", name=lab,
                                 text=[names[i] for i in idx], textposition="top center",
                                 marker={"size": 12, "color": _PALETTE[g % len(_PALETTE)]},
                                 hovertemplate="%{text}<br>" + lab + "<extra></extra>"))
    if suspect_index is not None and 0 <= suspect_index < len(names):
        s = suspect_index
        fig.add_trace(go.Scatter(x=[coords[s, 0]], y=[coords[s, 1]], mode="markers+text", name="suspect",
                                 text=[names[s]], textposition="bottom center",
                                 marker={"size": 20, "symbol": "star", "color": "#111111"},
                                 hovertemplate="%{text}<br>the suspect<extra></extra>"))
    fig.update_xaxes(showticklabels=False, zeroline=False, title=None)
    fig.update_yaxes(showticklabels=False, zeroline=False, title=None, scaleanchor="x")
    return _layout(fig, f"Map of the models ({embedding.note})")


def evidence_plot(result: SeedPrintsResult, reference: str, suspect: str) -> go.Figure:
    """Observed per-dimension correlations against their null, and the test statistic against its null."""
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per identity dimension", "test statistic"),
                        horizontal_spacing=0.12)
    taus = np.asarray(result.taus, dtype=np.float64)
    taus = taus[np.isfinite(taus)]
    null_dim = result.details.get("null_dim_sample")
    null_stat = result.details.get("null_statistics")
    corr = "Spearman rho" if result.details.get("correlation") == "spearman" else "Kendall tau"
    if null_dim is not None:
        fig.add_trace(go.Histogram(x=np.asarray(null_dim), histnorm="probability density", name="null: re-paired dimensions",
                                   marker={"color": "#bbbbbb"}, opacity=0.8, nbinsx=50), row=1, col=1)
    elif "tau_std" in result.details:
        sd = float(result.details["tau_std"])
        xs = np.linspace(-4 * sd, 4 * sd, 200)
        fig.add_trace(go.Scatter(x=xs, y=np.exp(-0.5 * (xs / sd) ** 2) / (sd * math.sqrt(2 * math.pi)), mode="lines",
                                 name="null: analytical", line={"color": "#888888"}), row=1, col=1)
    fig.add_trace(go.Histogram(x=taus, histnorm="probability density", name=f"observed: aligned dimensions (k={result.k})",
                               marker={"color": "#1f77b4"}, opacity=0.75, nbinsx=30), row=1, col=1)
    if null_stat is not None:
        fig.add_trace(go.Histogram(x=np.asarray(null_stat), histnorm="probability density",
                                   name="null: statistic after re-pairing", marker={"color": "#bbbbbb"},
                                   opacity=0.8, nbinsx=50, showlegend=False), row=1, col=2)
        fig.add_vline(x=result.statistic, line={"color": "#d62728", "width": 3}, row=1, col=2)
        fig.update_xaxes(title=f"mean {corr}", row=1, col=2)
    else:
        xs = np.linspace(-4, max(4.0, min(result.z, 60.0)) + 1, 300)
        fig.add_trace(go.Scatter(x=xs, y=np.exp(-0.5 * xs ** 2) / math.sqrt(2 * math.pi), mode="lines",
                                 name="null: standard normal", line={"color": "#888888"}, showlegend=False), row=1, col=2)
        fig.add_vline(x=min(result.z, 60.0), line={"color": "#d62728", "width": 3}, row=1, col=2)
        fig.update_xaxes(title="z", row=1, col=2)
    fig.update_xaxes(title=corr, row=1, col=1)
    fig.update_layout(barmode="overlay")
    return _layout(fig, f"{reference} vs {suspect}: z = {result.z:.1f}, p = {format_p(result.log10_pvalue)}<br>"
                        "<sup>grey: null (re-paired dimensions); blue and red line: observed</sup>", height=460)


def robustness_chart(rows: Sequence[Any], alpha: float = 0.01) -> go.Figure:
    """Bars of z against the matched reference per modification; green when the match survived."""
    names = [r.modification for r in rows]
    z = [r.z if math.isfinite(r.z) else 0.0 for r in rows]
    colours = ["#15803d" if r.survived else "#b91c1c" for r in rows]
    hover = [f"{r.description}<br>{r.label}" + (f" seed {r.seed}" if r.seed is not None else "") +
             (f"<br>vs {r.reference}: z = {r.z:.1f}, log10 p (Holm) = {r.log10_p:.1f}" if math.isfinite(r.z) else "")
             for r in rows]
    fig = go.Figure(go.Bar(x=names, y=z, marker={"color": colours}, text=[r.label for r in rows],
                           hovertext=hover, hoverinfo="text"))
    fig.update_yaxes(title="z against the best reference")
    return _layout(fig, "Does the verdict survive standard modifications? (green = same seed still matched)",
                   height=380)
