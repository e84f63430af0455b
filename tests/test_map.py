"""The map of an audit: on every demo suspect the families visibly stand apart, deterministically."""

from __future__ import annotations

import math

import numpy as np
import pytest

from seedprints.audit import audit_library
from seedprints.demo import SUSPECTS, build_demo
from seedprints.library import Library
from seedprints.plots import LABEL_CLASH, embedding_map, evidence_heatmap, lineage_colour, title_words
from seedprints.similarity import EvidenceMatrix, map_models, map_separation


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    paths = build_demo(tmp_path_factory.mktemp("demo"))
    return paths, Library(paths["library"], create=False)


@pytest.mark.slow  # the demo fixture builds the demo library: 300 s on a busy 2-core machine
@pytest.mark.parametrize("which", list(SUSPECTS))
def test_demo_suspect_stands_with_its_family(demo, which):
    paths, lib = demo
    audit = audit_library(paths[which], lib, device="cpu")
    m, emb = audit.matrix, audit.embedding
    sig = m.significant()
    sep = map_separation(emb.coords, sig)
    if which == "unrelated":
        assert not sig[0].any() and math.isnan(sep[0])  # no link, nothing to stand with
    else:
        assert sep[0] >= 2, (which, sep)
    assert np.nanmedian(sep) >= 2
    assert emb.method == "mds" and "metric MDS" in emb.note
    # each reference pair (seed s, seed s fine-tuned) is linked; every link is within one seed
    seeds = [lin for lin in m.lineages]
    assert len([p for p in emb.links if 0 not in p]) == 4
    assert all(seeds[i] == seeds[j] for i, j in emb.links if 0 not in (i, j))
    assert np.array_equal(map_models(m).coords, emb.coords)  # deterministic
    assert audit.to_dict()["map"]["links"] == [list(p) for p in emb.links]


def _text_positions(fig) -> dict[str, str]:
    pos: dict[str, str] = {}
    for t in fig.data:
        if t.mode == "markers+text":
            tp = [t.textposition] if isinstance(t.textposition, str) else list(t.textposition)
            pos.update(zip(t.text, tp))
    return pos


@pytest.mark.slow  # the demo
def test_demo_maps_read_the_same_across_audits(demo):
    """Audits of different suspects: each seed keeps its colour, near-coincident labels are placed apart, and
    the evidence matrix lists the references in one order (a seed's models side by side)."""
    paths, lib = demo
    audits = [audit_library(paths[which], lib, device="cpu") for which in ("derived", "unrelated")]
    colours, orders = [], []
    for audit in audits:
        m, emb = audit.matrix, audit.embedding
        fig = embedding_map(emb, m.names, m.lineages, suspect_index=0)
        colours.append({t.name: t.marker.color for t in fig.data if t.mode == "markers+text" and t.name != "suspect"})
        assert all(c == lineage_colour(lab) for lab, c in colours[-1].items())
        pos = _text_positions(fig)
        extent = float(np.max(np.ptp(emb.coords, axis=0)))
        close = [(i, j) for i in range(m.n) for j in range(i + 1, m.n)
                 if np.hypot(*(emb.coords[i] - emb.coords[j])) < LABEL_CLASH * extent]
        assert close, "the demo places a reference and its fine-tune at nearly the same point"
        for i, j in close:
            assert pos[m.names[i]] != pos[m.names[j]], (m.names[i], m.names[j])
        heat = evidence_heatmap(m).data[0]
        orders.append([n for n in heat.x if n != audit.suspect.name])
        lin = dict(zip(m.names, m.lineages))
        shown = [lin[n] for n in orders[-1]]
        for lab in set(shown):  # each lineage's models sit side by side
            idx = [k for k, x in enumerate(shown) if x == lab]
            assert idx == list(range(idx[0], idx[-1] + 1)), (lab, orders[-1])
    shared = set(colours[0]) & set(colours[1])
    assert shared and all(colours[0][lab] == colours[1][lab] for lab in shared)
    assert orders[0] == orders[1]  # the ranked orders differ, the matrix's does not


@pytest.mark.slow  # the demo
def test_audit_tab_redraws_the_map_in_the_chosen_layout(demo):
    """The Audit tab's "Map layout" radio redraws the map from the finished audit's evidence matrix."""
    import gradio as gr

    from ui.audit_tab import MAP_LAYOUTS, map_figure

    paths, lib = demo
    audit = audit_library(paths["derived"], lib, device="cpu")
    assert list(MAP_LAYOUTS) == ["default", "UMAP"]
    default = map_figure(audit, "default")
    umap = map_figure(audit, "UMAP")
    for fig in (default, umap):
        assert sum(len(t.x) for t in fig.data if "markers" in t.mode) == audit.matrix.n
    sus = [next(t for t in f.data if t.name == "suspect") for f in (default, umap)]
    assert (sus[0].x[0], sus[0].y[0]) == tuple(audit.embedding.coords[0])  # the audit's own map
    assert "UMAP layout" in title_words(umap) and "default layout" in title_words(default)
    assert (sus[1].x[0], sus[1].y[0]) != (sus[0].x[0], sus[0].y[0])
    assert isinstance(map_figure(None, "UMAP"), type(gr.skip()))  # before any audit: nothing to redraw


def test_separation_against_hand_computation():
    coords = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 3.0], [4.0, 0.0]])
    sig = np.zeros((4, 4), dtype=bool)
    sig[0, 1] = sig[1, 0] = True
    sep = map_separation(coords, sig)
    # model 0: nearest unrelated is model 2 at 3, farthest related is model 1 at 1
    assert sep[0] == pytest.approx(3.0)
    # model 1: unrelated 2 at sqrt(10), 3 at 3 -> 3; related 0 at 1
    assert sep[1] == pytest.approx(3.0)
    assert math.isnan(sep[2]) and math.isnan(sep[3])


def test_significance_is_holm_corrected_over_the_map():
    # 5 models: one true link (p = 1e-12) and one chance-sized link (p = 0.003, significant alone)
    n = 5
    lp = np.full((n, n), -0.3)
    np.fill_diagonal(lp, np.nan)
    lp[0, 1] = lp[1, 0] = -12.0
    lp[2, 3] = -2.5
    z = np.zeros((n, n))
    z[0, 1] = z[1, 0] = 7.0
    m = EvidenceMatrix([str(i) for i in range(n)], ["x"] * n, z, lp, "calibrated")
    sig = m.significant(0.01)
    assert sig[0, 1] and sig[1, 0]
    assert not sig[2, 3]  # 2 x 10^-2.5 x 10 pairs > 0.01 after Holm
    d = m.layout_distance()
    assert d[2, 3] == 1.0 and d[0, 1] == pytest.approx(1 / 8)
    assert map_models(m).links == ((0, 1),)
