"""Plotly figures of an audit: evidence matrix heatmap, 2-D map of models, per-dimension evidence.

Pure functions from engine results to ``plotly.graph_objects.Figure``; no UI code.
"""

from __future__ import annotations

import hashlib
import math
import re
import textwrap
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats as sps

from . import optional
from .similarity import Embedding, EvidenceMatrix, display_order
from .stats import SeedPrintsResult
from .teaching import ALPHA, VOCAB, WEIGHT_NAME, identity_overlap, per_dim_rho, profile_of
from .verdict import format_p

go = optional.require("plotly.graph_objects", "the figures")
make_subplots = optional.require("plotly.subplots", "the figures").make_subplots

#: -log10 p is drawn up to this value; stronger evidence gets the same darkest colour
EVIDENCE_CAP = 30.0
#: colours of lineages on the map (no black: the suspect's star is black)
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
            "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
            "#e6550d", "#31a354", "#756bb1", "#636363")
#: the title of the map: what it shows, in words
MAP_TITLE = "Models placed by evidence of a shared seed: close = linked"
#: labels of points closer than this share of the map's extent are moved apart
LABEL_CLASH = 0.06
_LABEL_POSITIONS = ("top center", "bottom center", "middle right", "middle left", "top right", "bottom left",
                    "top left", "bottom right")


def lineage_colour(lineage: str) -> str:
    """The map colour of a lineage ('family seed N'): the same in every audit and map, whatever else is drawn.

    Picked from a fixed palette by a stable hash of the label (not Python's hash(), which changes per process).
    """
    digest = hashlib.sha256(lineage.strip().encode("utf-8")).digest()
    return _PALETTE[int.from_bytes(digest[:4], "big") % len(_PALETTE)]


def label_positions(coords: np.ndarray, clash: float = LABEL_CLASH, preferred: Sequence[str] | None = None
                    ) -> list[str]:
    """A text position per point such that points drawn at nearly the same place get different ones.

    Points closer than ``clash`` times the map's extent (its larger side) are near-coincident: in index
    order, each takes its preferred position (``preferred[i]``, else "top center") unless one of its
    already placed near neighbours took it, else the first free one of a fixed cycle.  Deterministic.
    """
    xy = np.asarray(coords, dtype=np.float64).reshape(-1, 2)
    n = len(xy)
    extent = float(np.max(np.ptp(xy, axis=0))) if n > 1 else 0.0
    limit = clash * extent if extent > 0 else math.inf  # every point on one spot: all clash
    out: list[str] = []
    for i in range(n):
        want = preferred[i] if preferred is not None else _LABEL_POSITIONS[0]
        near = {out[j] for j in range(i) if float(np.hypot(*(xy[i] - xy[j]))) < limit}
        free = [p for p in (want, *_LABEL_POSITIONS) if p not in near]
        out.append(free[0] if free else _LABEL_POSITIONS[i % len(_LABEL_POSITIONS)])
    return out


#: the most characters of a title line (and of a <sup> line under it) that fit a figure on a 390 px phone
TITLE_CHARS, SUB_CHARS = 36, 54
#: how far a title sits below the figure's top: the app shows each figure's label over its top left corner
TITLE_DROP = 48


def wrap_title(title: str) -> str:
    """``title`` with each line (``<br>``-separated; ``<sup>...</sup>`` lines are smaller) broken between words
    so that no line is wider than a phone-width figure: Plotly never wraps a title, it cuts it off."""
    lines = []
    for line in title.split("<br>"):
        sup = line.startswith("<sup>") and line.endswith("</sup>")
        text = line[5:-6] if sup else line
        parts = textwrap.wrap(text, SUB_CHARS if sup else TITLE_CHARS, break_long_words=False) or [""]
        lines += [f"<sup>{t}</sup>" if sup else t for t in parts]
    return "<br>".join(lines)


def title_words(fig: go.Figure) -> str:
    """A figure's title as one line of words: its line breaks and <sup> tags taken out (see :func:`wrap_title`)."""
    return " ".join(re.sub(r"<[^>]+>", " ", fig.layout.title.text or "").split())


def _layout(fig: go.Figure, title: str, height: int = 420) -> go.Figure:
    title = wrap_title(title)
    lines = title.split("<br>")
    sub = sum(line.startswith("<sup>") for line in lines)
    # the title hangs from the top, below the app's label badge (TITLE_DROP px); the margin holds its lines (a
    # <sup> line is smaller) and a gap for subplot titles
    top = TITLE_DROP + 20 * (len(lines) - sub) + 13 * sub + 24
    total = height + top - 50
    fig.update_layout(title={"text": title, "x": 0.01, "y": 1 - TITLE_DROP / total, "yref": "container",
                             "yanchor": "top",
                             "font": {"size": 15}}, height=total,
                      margin={"l": 10, "r": 10, "t": top, "b": 10}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.15})
    return fig


def evidence_heatmap(matrix: EvidenceMatrix) -> go.Figure:
    """Heatmap of -log10 p for every (reference row, suspect column) pair; hover shows z and p.

    Rows and columns follow :func:`seedprints.similarity.display_order` (the suspect, then family, seed and
    name), so a seed's models sit together; the diagonal (a model against itself) is grey and says "self".
    """
    order = display_order(matrix.names, matrix.lineages)
    names = [matrix.names[i] for i in order]
    n = matrix.n
    lp = matrix.log10_p[np.ix_(order, order)]
    z = matrix.z[np.ix_(order, order)]
    lineages = [matrix.lineages[i] for i in order]
    strength = np.where(np.isnan(lp), np.nan, np.clip(-lp, 0.0, EVIDENCE_CAP))
    np.fill_diagonal(strength, np.nan)
    hover = []
    for i in range(n):
        row = []
        for j in range(n):
            if i == j:
                row.append(f"{names[i]}<br>(the same model)")
            elif math.isnan(z[i, j]):
                row.append(f"reference {names[i]}<br>suspect {names[j]}<br>not testable: the suspect "
                           "side is a compact library fingerprint or another probe")
            else:
                row.append(f"reference {names[i]} ({lineages[i]})<br>suspect {names[j]} "
                           f"({lineages[j]})<br>z = {z[i, j]:.1f}<br>p = {format_p(lp[i, j])}")
        hover.append(row)
    fig = go.Figure(go.Heatmap(
        z=strength, x=names, y=names, text=hover, hoverinfo="text", hoverongaps=False,
        zmin=0.0, zmax=EVIDENCE_CAP, colorscale="Blues",
        colorbar={"title": {"text": "-log10 p"}, "tickvals": [2, 10, 20, EVIDENCE_CAP],
                  "ticktext": ["2 (p = 0.01)", "10", "20", f"{EVIDENCE_CAP:g}+"]}))
    for i in range(n):  # categorical axes: cell i spans i - 0.5 to i + 0.5
        fig.add_shape(type="rect", x0=i - 0.5, x1=i + 0.5, y0=i - 0.5, y1=i + 0.5, xref="x", yref="y",
                      fillcolor="#e5e5e5", line={"width": 0}, layer="below")
        fig.add_annotation(x=names[i], y=names[i], text="self", showarrow=False, font={"size": 10, "color": "#666666"})
    fig.update_yaxes(autorange="reversed", title="reference (row)")
    fig.update_xaxes(title="tested as suspect (column)", tickangle=-30)
    return _layout(fig, "Evidence of a shared seed between every pair", height=max(380, 60 + 34 * n))


def embedding_map(embedding: Embedding, names: Sequence[str], lineages: Sequence[str], suspect_index: int | None = 0
                  ) -> go.Figure:
    """Scatter of the 2-D map: one colour per lineage (family and seed, the same in every map), the suspect as a
    large star; labels of near-coincident points are placed apart (see :func:`label_positions`)."""
    fig = go.Figure()
    if not embedding.drawn:  # left out (its optional dependency missing): say so where the map would be
        fig.add_annotation(text=embedding.note, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
        fig.update_xaxes(visible=False)
        fig.update_yaxes(visible=False)
        return _layout(fig, "Map of the models (not drawn)")
    coords = embedding.coords
    has_suspect = suspect_index is not None and 0 <= suspect_index < len(names)
    # the suspect's label first: it keeps its place below the star, the others move around it
    order = ([suspect_index] if has_suspect else []) + [i for i in range(len(names)) if i != suspect_index]
    preferred = ["bottom center" if i == suspect_index else "top center" for i in order]
    position = dict(zip(order, label_positions(coords[order], preferred=preferred)))
    if embedding.links:  # one trace of segments (None breaks the line between pairs)
        xs: list[float | None] = []
        ys: list[float | None] = []
        for i, j in embedding.links:
            xs += [float(coords[i, 0]), float(coords[j, 0]), None]
            ys += [float(coords[i, 1]), float(coords[j, 1]), None]
        fig.add_trace(go.Scatter(x=xs, y=ys, mode="lines", name="significant evidence",
                                 line={"color": "rgba(90,90,90,0.45)", "width": 1.5}, hoverinfo="skip"))
    groups: dict[str, list[int]] = {}
    for i in display_order(names, lineages):  # legend entries in a stable order too
        if i != suspect_index:
            groups.setdefault(lineages[i], []).append(i)
    for lab, idx in groups.items():
        fig.add_trace(go.Scatter(x=coords[idx, 0], y=coords[idx, 1], mode="markers+text", name=lab,
                                 text=[names[i] for i in idx], textposition=[position[i] for i in idx],
                                 marker={"size": 12, "color": lineage_colour(lab)},
                                 hovertemplate="%{text}<br>" + lab + "<extra></extra>"))
    if has_suspect:
        s = suspect_index
        fig.add_trace(go.Scatter(x=[coords[s, 0]], y=[coords[s, 1]], mode="markers+text", name="suspect",
                                 text=[names[s]], textposition=position[s],
                                 marker={"size": 20, "symbol": "star", "color": "#111111"},
                                 hovertemplate="%{text}<br>the suspect<extra></extra>"))
    fig.update_xaxes(showticklabels=False, zeroline=False, title=None)
    fig.update_yaxes(showticklabels=False, zeroline=False, title=None, scaleanchor="x")
    how = "UMAP layout" if embedding.method == "umap" else "default layout"
    return _layout(fig, f"{MAP_TITLE}<br><sup>lines join pairs with significant evidence; colour: family and seed; "
                        f"{how}</sup>")


def correlation_bins(values: np.ndarray, n_bins: int = 30) -> dict[str, float]:
    """Histogram bins for correlations (at most 1): one bin is centred on 1, so rho = 1 gets a whole bar."""
    v = np.asarray(values, dtype=np.float64)
    v = v[np.isfinite(v)]
    lo = float(min(v.min(), 0.0)) if len(v) else -1.0
    size = max((1.0 - lo) / n_bins, 0.01)
    end = 1.0 + size / 2
    start = end - size * math.ceil((end - lo) / size + 1e-9)
    return {"start": start, "end": end, "size": size}


def evidence_plot(result: SeedPrintsResult, reference: str, suspect: str,
                  log10_p_holm: float | None = None) -> go.Figure:
    """Observed per-dimension correlations against their null, and the test statistic against its null.

    The x axes are padded past every bar and line: a correlation of exactly 1 is drawn as a whole bar.
    ``log10_p_holm``: the pair's p after the scan's Holm correction, which the title then shows (as the verdict
    card does), with this pair's own p beside it.
    """
    fig = make_subplots(rows=1, cols=2, subplot_titles=("per identity dimension", "test statistic"),
                        horizontal_spacing=0.12)
    taus = np.asarray(result.taus, dtype=np.float64)
    taus = taus[np.isfinite(taus)]
    null_dim = result.details.get("null_dim_sample")
    null_stat = result.details.get("null_statistics")
    corr = "Spearman rho" if result.details.get("correlation") == "spearman" else "Kendall tau"
    left = [taus]
    if null_dim is not None:
        left.append(np.asarray(null_dim, dtype=np.float64))
    bins = correlation_bins(np.concatenate(left))
    if null_dim is not None:
        fig.add_trace(go.Histogram(x=np.asarray(null_dim), histnorm="probability density", name="null: re-paired dimensions",
                                   marker={"color": "#bbbbbb"}, opacity=0.8, xbins=bins), row=1, col=1)
    elif "tau_std" in result.details:
        sd = float(result.details["tau_std"])
        xs = np.linspace(-4 * sd, 4 * sd, 200)
        fig.add_trace(go.Scatter(x=xs, y=np.exp(-0.5 * (xs / sd) ** 2) / (sd * math.sqrt(2 * math.pi)), mode="lines",
                                 name="null: analytical", line={"color": "#888888"}), row=1, col=1)
        bins = correlation_bins(np.concatenate([taus, [-4 * sd]]))
    fig.add_trace(go.Histogram(x=taus, histnorm="probability density", name=f"observed: aligned dimensions (k={result.k})",
                               marker={"color": "#1f77b4"}, opacity=0.75, xbins=bins), row=1, col=1)
    fig.update_xaxes(range=[bins["start"] - bins["size"], bins["end"] + bins["size"]], row=1, col=1)
    if null_stat is not None:
        ns = np.asarray(null_stat, dtype=np.float64)
        fig.add_trace(go.Histogram(x=ns, histnorm="probability density",
                                   name="null: statistic after re-pairing", marker={"color": "#bbbbbb"},
                                   opacity=0.8, nbinsx=50, showlegend=False), row=1, col=2)
        fig.add_vline(x=result.statistic, line={"color": "#d62728", "width": 3}, row=1, col=2)
        finite = ns[np.isfinite(ns)]
        lo, hi = (float(min(finite.min(), result.statistic)), float(max(finite.max(), result.statistic))) \
            if len(finite) else (result.statistic - 1, result.statistic + 1)
        pad = 0.06 * max(hi - lo, 0.05)
        fig.update_xaxes(title=f"mean {corr}", range=[lo - pad, hi + pad], row=1, col=2)
    else:
        xs = np.linspace(-4, max(4.0, min(result.z, 60.0)) + 1, 300)
        fig.add_trace(go.Scatter(x=xs, y=np.exp(-0.5 * xs ** 2) / math.sqrt(2 * math.pi), mode="lines",
                                 name="null: standard normal", line={"color": "#888888"}, showlegend=False), row=1, col=2)
        fig.add_vline(x=min(result.z, 60.0), line={"color": "#d62728", "width": 3}, row=1, col=2)
        fig.update_xaxes(title="z", row=1, col=2)
    fig.update_xaxes(title=corr, row=1, col=1)
    fig.update_yaxes(title="density (share per unit)", row=1, col=1)
    fig.update_yaxes(title="density (share per unit)", row=1, col=2)
    fig.update_layout(barmode="overlay")
    p_txt = (f"p = {format_p(result.log10_pvalue)}" if log10_p_holm is None else
             f"p = {format_p(log10_p_holm)} after Holm correction "
             f"({format_p(result.log10_pvalue)} for this pair alone)")
    return _layout(fig, f"{reference} vs {suspect}: z = {result.z:.1f}, {p_txt}<br>"
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


# ---------------------------------------------------------------------------- Learn tab figures
_A_COLOR, _B_COLOR, _SHARED_COLOR, _GREY = "#1f77b4", "#ff7f0e", "#d62728", "#c8c8c8"
_TEST_COLORS = {"paper-analytical": "#d62728", "paper-empirical": "#ff7f0e", "calibrated": "#2ca02c"}
#: legend labels of the tests of bench/accuracy.py: each name says what it is
TEST_LABELS = {"paper-analytical": "paper-analytical (the paper's test, p from a normal formula)",
               "paper-empirical": "paper-empirical (the paper's test, null simulated from 20 pairs of random activations)",
               "calibrated": "calibrated (this project's test, p from re-paired dimensions)"}


def _legend_line(name: str, dash: str, color: str) -> go.Scatter:
    """A legend entry for a reference line drawn with add_hline / add_vline (which have none): the line's
    label goes to the legend instead of an annotation on the plot, where bars and their labels would hit it."""
    return go.Scatter(x=[None], y=[None], mode="lines", name=name, line={"dash": dash, "color": color},
                      hoverinfo="skip")


def weights_figure(w_a: np.ndarray, w_b: np.ndarray, seed_a: int, seed_b: int, name: str = WEIGHT_NAME,
                   size: int = 24) -> go.Figure:
    """Top-left size x size corner of one weight matrix for both seeds, and the histograms of all its values."""
    lim = float(max(np.abs(w_a).max(), np.abs(w_b).max()))
    fig = make_subplots(rows=1, cols=3, column_widths=[0.28, 0.28, 0.44], horizontal_spacing=0.1,
                        subplot_titles=(f"seed {seed_a}: corner of the matrix", f"seed {seed_b}: same corner",
                                        "all values of the matrix"))
    for col, (w, seed) in enumerate(((w_a, seed_a), (w_b, seed_b)), start=1):
        fig.add_trace(go.Heatmap(z=w[:size, :size], zmin=-lim, zmax=lim, colorscale="RdBu", showscale=col == 2,
                                 colorbar={"x": 0.56, "len": 0.9, "thickness": 12, "tickformat": ".2f"},
                                 hovertemplate=f"seed {seed}<br>row %{{y}}, column %{{x}}<br>%{{z:.4f}}<extra></extra>"),
                      row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
    for w, seed, color in ((w_a, seed_a, _A_COLOR), (w_b, seed_b, _B_COLOR)):
        fig.add_trace(go.Histogram(x=w.ravel(), name=f"seed {seed}", marker={"color": color}, opacity=0.55, nbinsx=60,
                                   histnorm="probability density"), row=1, col=3)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="weight value", row=1, col=3)
    fig.update_yaxes(title="density", row=1, col=3)
    return _layout(fig, f"{name}: same distribution, different numbers<br><sup>colour: weight value "
                        "(blue positive, red negative)</sup>", height=380)


def profile_figure(means_a: np.ndarray, means_b: np.ndarray, k: int, label_a: str, label_b: str) -> go.Figure:
    """Per-dimension mean activation of two models, identity dimensions coloured, shared ones in red."""
    ov = identity_overlap(np.asarray(means_a), np.asarray(means_b), k)
    shared = set(ov.shared.tolist())
    d = len(means_a)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=(f"{label_a}: identity dimensions in colour",
                                        f"{label_b}: identity dimensions in colour"))
    for row, (means, dims, label, color) in enumerate(((means_a, ov.dims_a, label_a, _A_COLOR),
                                                       (means_b, ov.dims_b, label_b, _B_COLOR)), start=1):
        ident = set(dims.tolist())
        colors = [(_SHARED_COLOR if j in shared else color) if j in ident else _GREY for j in range(d)]
        kind = ["identity dimension, shared by both" if j in shared else "identity dimension" if j in ident
                else "other dimension" for j in range(d)]
        fig.add_trace(go.Bar(x=np.arange(d), y=np.asarray(means), marker={"color": colors}, name=label,
                             customdata=kind, showlegend=False,
                             hovertemplate="dimension %{x}<br>mean %{y:.4f}<br>%{customdata}<extra>" + label + "</extra>"),
                      row=row, col=1)
        fig.update_yaxes(title="mean activation", row=row, col=1)
    # the bars carry no legend (one colour per bar); these entries say what each colour means
    for name, color in ((f"identity dimension of {label_a}", _A_COLOR), (f"identity dimension of {label_b}", _B_COLOR),
                        ("identity dimension of both (shared)", _SHARED_COLOR), ("other dimension", _GREY)):
        fig.add_trace(go.Bar(x=[None], y=[None], name=name, marker={"color": color}, hoverinfo="skip",
                             showlegend=True), row=1, col=1)
    fig.update_xaxes(title="hidden dimension", row=2, col=1)
    return _layout(fig, f"Mean activation per dimension: {ov.count} of k = {ov.k} identity dimensions shared "
                        f"(chance: {ov.expected:.1f})", height=520)


def loss_figure(losses: Sequence[float], vocab: int = VOCAB, label: str = "training loss") -> go.Figure:
    """Loss at every training step, with the loss of a uniform guess over the vocabulary for scale."""
    steps = np.arange(1, len(losses) + 1)
    fig = go.Figure(go.Scatter(x=steps, y=np.asarray(losses, dtype=float), mode="lines+markers", name=label,
                               marker={"size": 4, "color": _A_COLOR}))
    fig.add_hline(y=math.log(vocab), line={"dash": "dot", "color": "#888888"},
                  annotation_text=f"uniform guess over {vocab} tokens (ln {vocab} = {math.log(vocab):.2f})",
                  annotation_position="top right")
    fig.update_xaxes(title="training step")
    fig.update_yaxes(title="next-token loss (nats)")
    first, last = (losses[0], losses[-1]) if len(losses) else (float("nan"),) * 2
    return _layout(fig, f"Training loss: {first:.2f} at step 1, {last:.2f} at step {len(losses)}", height=360)


def before_after_figure(before: Any, after: Any, k: int, label_before: str = "init",
                        label_after: str = "trained") -> go.Figure:
    """Scatter of every dimension's mean before vs after training; identity dimensions of each highlighted.

    Hover shows each dimension's Spearman rho between the two models when both are fingerprints.
    """
    mb, ma = profile_of(before), profile_of(after)
    ov = identity_overlap(mb, ma, k)
    rho = per_dim_rho(before, after) if hasattr(before, "features") and hasattr(after, "features") else None
    d = len(mb)
    sets = {"identity dimension before only": np.setdiff1d(ov.dims_a, ov.shared),
            "identity dimension after only": np.setdiff1d(ov.dims_b, ov.shared),
            "identity dimension before and after": ov.shared}
    rest = np.setdiff1d(np.arange(d), np.union1d(ov.dims_a, ov.dims_b))
    fig = go.Figure()
    styles = {"other dimension": (_GREY, 7), "identity dimension before only": (_A_COLOR, 10),
              "identity dimension after only": (_B_COLOR, 10), "identity dimension before and after": (_SHARED_COLOR, 12)}
    for name, idx in [("other dimension", rest), *sets.items()]:
        color, size = styles[name]
        custom = np.stack([idx, rho[idx] if rho is not None else np.full(len(idx), np.nan)], axis=1) if len(idx) else None
        fig.add_trace(go.Scatter(x=mb[idx], y=ma[idx], mode="markers", name=f"{name} ({len(idx)})",
                                 marker={"color": color, "size": size, "line": {"width": 0.5, "color": "#333"}},
                                 customdata=custom,
                                 hovertemplate="dimension %{customdata[0]}<br>before %{x:.4f}<br>after %{y:.4f}"
                                               "<br>rho over the probe %{customdata[1]:.2f}<extra></extra>"))
    r = float(sps.spearmanr(mb, ma).statistic) if d > 2 else float("nan")
    fig.update_xaxes(title=f"mean activation, {label_before}")
    fig.update_yaxes(title=f"mean activation, {label_after}")
    return _layout(fig, f"Mean per dimension, {label_before} vs {label_after}<br><sup>{ov.count} of {ov.k} identity "
                        f"dimensions kept (chance {ov.expected:.1f}); rank correlation of the means {r:.2f}</sup>",
                   height=440)


def derivative_figure(rows: Sequence[dict[str, Any]], alpha: float = ALPHA) -> go.Figure:
    """Bars of z against the model's own init and against the other seed, for every derivative."""
    names = [r["derivative"] for r in rows]
    fig = go.Figure()
    for key, label, color in (("z vs own init", "vs the init of its own seed", _A_COLOR),
                              ("z vs other seed", "vs the init of the other seed", _B_COLOR)):
        z = [r[key] for r in rows]
        fig.add_trace(go.Bar(x=names, y=z, name=label, marker={"color": color}, text=[f"{v:.1f}" for v in z],
                             textposition="outside", cliponaxis=False))
    z_alpha = float(sps.norm.isf(alpha))
    fig.add_hline(y=z_alpha, line={"dash": "dash", "color": "#444444"})
    fig.add_trace(_legend_line(f"dashed line: z = {z_alpha:.2f} (p about {alpha:g}); above it a copy matches",
                               "dash", "#444444"))
    all_z = [float(r[key]) for r in rows for key in ("z vs own init", "z vs other seed") if math.isfinite(r[key])]
    top = max([z_alpha, *all_z])
    bottom = min([0.0, *all_z])
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="z of the calibrated test", range=[bottom - 0.08 * (top - bottom), top * 1.15 + 0.5])
    return _layout(fig, "Modified copies of the trained model, tested against both inits", height=420)


def _budget_label(r: dict[str, Any]) -> str:
    size = f" (N={r['n_samples']}, L={r['seq_len']})" if r.get("n_samples") and r.get("seq_len") else ""
    return f"{r['probe']} probe, {r['budget']}{size}"


def fpr_figure(rows: Sequence[dict[str, Any]], alpha: float | None = None) -> go.Figure:
    """False-positive rate of each test with its 95% interval, grouped by probe and budget; dashed line at alpha."""
    a = alpha if alpha is not None else (rows[0]["alpha"] if rows else ALPHA)
    fig = go.Figure()
    groups = list(dict.fromkeys(_budget_label(r) for r in rows))
    for test in dict.fromkeys(r["test"] for r in rows):
        sel = {_budget_label(r): r for r in rows if r["test"] == test}
        xs = [g for g in groups if g in sel]
        rate = [sel[g]["fpr"] for g in xs]
        fig.add_trace(go.Bar(
            x=xs, y=rate, name=TEST_LABELS.get(test, test), marker={"color": _TEST_COLORS.get(test, "#7f7f7f")},
            error_y={"type": "data", "symmetric": False, "array": [sel[g]["ci_high"] - sel[g]["fpr"] for g in xs],
                     "arrayminus": [sel[g]["fpr"] - sel[g]["ci_low"] for g in xs]},
            customdata=[[sel[g]["false_positives"], sel[g]["negatives"], sel[g]["ci_low"], sel[g]["ci_high"]] for g in xs],
            hovertemplate=TEST_LABELS.get(test, test) + "<br>%{x}<br>FPR %{y:.3f} (%{customdata[0]} of %{customdata[1]} unrelated pairs)"
                                 "<br>95% interval %{customdata[2]:.3f} to %{customdata[3]:.3f}<extra></extra>"))
    fig.add_hline(y=a, line={"dash": "dash", "color": "#111111"})
    fig.add_trace(_legend_line(f"dashed line: alpha = {a:g}, the rate a calibrated test stays under", "dash",
                               "#111111"))
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=f"share of unrelated pairs with p < {a:g}", rangemode="tozero")
    return _layout(fig, f"False-positive rate at alpha = {a:g} (bars: 95% intervals)", height=420)


def fpr_curve_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float | None = None,
                     title: str = "", floor: float = 3e-4) -> go.Figure:
    """FPR against alpha for each test on log axes; the diagonal is what a calibrated test promises.

    A rate of 0 cannot sit on a log axis: it is drawn at ``floor`` (the bottom of the plot).
    """
    fig = go.Figure()
    lo, hi = 1e-3, 0.2
    for test, (alphas, fpr) in curves.items():
        lo, hi = float(min(lo, alphas.min())), float(max(hi, alphas.max()))
        shown = np.maximum(np.asarray(fpr, dtype=float), floor)
        fig.add_trace(go.Scatter(x=alphas, y=shown, mode="lines", name=TEST_LABELS.get(test, test), customdata=np.asarray(fpr, dtype=float),
                                 line={"color": _TEST_COLORS.get(test, "#7f7f7f"), "width": 3},
                                 hovertemplate=TEST_LABELS.get(test, test) + "<br>alpha %{x:.3g}<br>FPR %{customdata:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="FPR = alpha (calibrated)",
                             line={"dash": "dash", "color": "#111111"}))
    if alpha is not None:
        fig.add_vline(x=alpha, line={"dash": "dot", "color": "#888888"})
        fig.add_trace(_legend_line(f"dotted line: alpha = {alpha:g}", "dot", "#888888"))
    ticks = [t for t in (1e-3, 1e-2, 1e-1, 1.0) if floor <= t <= max(hi, 0.3) * 1.01]
    labels = [f"{t:.1%}".replace(".0%", "%") for t in ticks]
    fig.update_xaxes(type="log", title="alpha (decision threshold on p)", tickvals=ticks, ticktext=labels)
    fig.update_yaxes(type="log", title="false-positive rate (0 drawn at the bottom)", tickvals=ticks, ticktext=labels,
                     range=[math.log10(floor) - 0.05, math.log10(max(hi, 0.3))])
    return _layout(fig, title or "False-positive rate against alpha", height=420)


def empty_figure(note: str) -> go.Figure:
    """A blank figure that says why there is nothing to show."""
    fig = go.Figure()
    fig.add_annotation(text=note, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 14})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height=240)
