"""Pairwise evidence matrix, its distance, the 2-D map, and the plotly figures built from them."""

from __future__ import annotations

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from seedprints.audit import fingerprint_model
from seedprints.derive import weight_noise
from seedprints.verdict import format_p
from seedprints.plots import (MAP_TITLE, correlation_bins, embedding_map, evidence_heatmap, evidence_plot,
                              label_positions, lineage_colour, title_words)
from seedprints.similarity import (UMAP_MIN_POINTS, Embedding, EvidenceMatrix, display_order, embed_2d, lineage_key,
                                   map_models, pairwise_evidence)
from seedprints.stats import seedprints_test
from seedprints.verdict import run_test

from helpers import tiny_llama, tiny_spec

NAMES = ["seed0", "noisy0", "seed1", "seed2"]
LINEAGES = ["tiny seed 0", "tiny seed 0", "tiny seed 1", "tiny seed 2"]


@pytest.fixture(scope="module")
def fps():
    spec = tiny_spec()
    models = [tiny_llama(0), weight_noise(tiny_llama(0), rel=0.01), tiny_llama(1), tiny_llama(2)]
    return [fingerprint_model(m, spec, name=n) for m, n in zip(models, NAMES)]


@pytest.fixture(scope="module")
def matrix(fps):
    return pairwise_evidence(list(zip(NAMES, LINEAGES, fps)), test="calibrated")


# ---------------------------------------------------------------------------- pairwise_evidence
def test_matrix_shape_names_and_nan_diagonal(matrix):
    assert matrix.n == 4 and matrix.names == NAMES and matrix.lineages == LINEAGES and matrix.test == "calibrated"
    assert matrix.z.shape == (4, 4) and matrix.log10_p.shape == (4, 4)
    assert np.all(np.isnan(np.diag(matrix.z))) and np.all(np.isnan(np.diag(matrix.log10_p)))
    off = ~np.eye(4, dtype=bool)
    assert np.all(np.isfinite(matrix.z[off])) and np.all(np.isfinite(matrix.log10_p[off]))
    assert np.all(matrix.log10_p[off] <= 0.0)


def test_related_pair_is_strong_both_ways_and_unrelated_pairs_are_not(matrix):
    z = matrix.z
    assert z[0, 1] > 5 and z[1, 0] > 5, (z[0, 1], z[1, 0])
    assert matrix.log10_p[0, 1] < -3 and matrix.log10_p[1, 0] < -3
    for i in range(4):
        for j in range(4):
            if i != j and {i, j} != {0, 1}:
                assert abs(z[i, j]) < 4, (NAMES[i], NAMES[j], z[i, j])


def test_matrix_entry_matches_an_independent_run_test(fps, matrix):
    for i, j in ((0, 1), (2, 3)):
        res = run_test(fps[i], fps[j], "calibrated")
        assert matrix.log10_p[i, j] == pytest.approx(res.log10_pvalue, rel=1e-9, abs=1e-12)
        assert matrix.z[i, j] == pytest.approx(res.z, rel=1e-9)


def test_compact_fingerprint_gives_nan_column_but_filled_row(fps):
    compact = fps[1].compact(0.2)
    assert not compact.is_full
    items = [("seed0", "tiny seed 0", fps[0]), ("noisy0-compact", "tiny seed 0", compact), ("seed1", "tiny seed 1", fps[2])]
    m = pairwise_evidence(items, test="calibrated")
    assert np.all(np.isnan(m.z[:, 1])) and np.all(np.isnan(m.log10_p[:, 1]))  # cannot be the suspect side
    assert np.isfinite(m.z[1, 0]) and np.isfinite(m.z[1, 2])  # ... but can be the reference side
    assert m.z[1, 0] > 5 and abs(m.z[1, 2]) < 4
    assert np.isfinite(m.z[0, 2]) and np.isfinite(m.z[2, 0])
    # an untestable direction still gives a sensible distance through the other direction
    d = m.distance()
    assert d[0, 1] == d[1, 0] == pytest.approx(1.0 / (1.0 + m.z[1, 0]))


def test_other_probe_is_untestable_both_ways(fps):
    other = fingerprint_model(tiny_llama(0), tiny_spec(seed=1), name="seed0-other-probe")
    items = [("seed0", "tiny seed 0", fps[0]), ("other", "tiny seed 0", other), ("noisy0", "tiny seed 0", fps[1])]
    m = pairwise_evidence(items, test="calibrated")
    assert np.all(np.isnan(m.z[1, :])) and np.all(np.isnan(m.z[:, 1]))
    assert m.z[0, 2] > 5 and m.z[2, 0] > 5
    assert m.distance()[0, 1] == 1.0


def test_paper_test_matrix(fps):
    m = pairwise_evidence(list(zip(NAMES, LINEAGES, fps)), test="paper")
    assert m.test == "paper" and np.all(np.isnan(np.diag(m.z)))
    assert m.z[0, 1] > 5 and m.z[1, 0] > 5
    for i, j in ((0, 1), (2, 3), (3, 2), (1, 2)):
        r = seedprints_test(fps[i], fps[j])
        if r.inconclusive:  # e.g. unrelated models sharing < 2 identity dims in coset mode: left untested
            assert math.isnan(m.z[i, j]) and math.isnan(m.log10_p[i, j])
        else:
            assert m.z[i, j] == pytest.approx(r.z) and m.log10_p[i, j] == pytest.approx(r.log10_pvalue)


def test_empty_items_give_an_empty_matrix():
    m = pairwise_evidence([], test="calibrated")
    assert m.n == 0 and m.z.shape == (0, 0) and m.distance().shape == (0, 0)


# ---------------------------------------------------------------------------- calibrated details
def test_calibrated_result_keeps_its_null(fps):
    res = run_test(fps[0], fps[1], "calibrated")
    null = np.asarray(res.details["null_statistics"])
    assert null.shape == (2000,) and res.details["n_permutations"] == 2000
    assert float(null.mean()) == pytest.approx(res.details["null_mean"], rel=1e-12)
    assert float(null.std(ddof=1)) == pytest.approx(res.details["null_sd"], rel=1e-12)
    assert res.z == pytest.approx((res.statistic - null.mean()) / null.std(ddof=1), rel=1e-9)
    sample = np.asarray(res.details["null_dim_sample"])
    assert sample.ndim == 1 and len(sample) > 0 and np.all(np.abs(sample) <= 1.0 + 1e-9)
    small = run_test(fps[0], fps[1], "calibrated", n_permutations=300)
    assert len(small.details["null_statistics"]) == 300


# ---------------------------------------------------------------------------- distance
def _hand_matrix() -> EvidenceMatrix:
    nan = math.nan
    z = np.array([
        [nan, 9.0, -2.0, nan],
        [3.0, nan, nan, 0.5],
        [-1.0, 4.0, nan, nan],
        [nan, 1.0, nan, nan],
    ])
    return EvidenceMatrix(["a", "b", "c", "d"], ["x", "x", "y", "z"], z, -np.abs(z), "calibrated")


def test_distance_against_hand_computation():
    d = _hand_matrix().distance()
    expected = np.array([
        [0.0, 1 / 10, 1.0, 1.0],        # a-b: max(9, 3) = 9; a-c: max(-2, -1) clipped to 0; a-d: untested
        [1 / 10, 0.0, 1 / 5, 1 / 2],    # b-c: max(nan, 4) = 4; b-d: max(0.5, 1) = 1
        [1.0, 1 / 5, 0.0, 1.0],         # c-d: untested both ways
        [1.0, 1 / 2, 1.0, 0.0],
    ])
    np.testing.assert_allclose(d, expected, rtol=0, atol=1e-15)
    assert np.array_equal(d, d.T) and np.all(np.diag(d) == 0.0)
    assert np.all((d >= 0.0) & (d <= 1.0))


def test_distance_formula_on_random_matrices():
    rng = np.random.default_rng(3)
    for _ in range(5):
        n = 6
        z = rng.normal(0, 6, (n, n))
        z[rng.random((n, n)) < 0.3] = np.nan
        np.fill_diagonal(z, np.nan)
        m = EvidenceMatrix([f"m{i}" for i in range(n)], ["l"] * n, z, np.full((n, n), np.nan), "paper")
        d = m.distance()
        for i in range(n):
            for j in range(n):
                if i == j:
                    assert d[i, j] == 0.0
                    continue
                vals = [v for v in (z[i, j], z[j, i]) if not math.isnan(v)]
                s = max(vals + [0.0])
                assert d[i, j] == pytest.approx(1.0 / (1.0 + s), abs=1e-15)
        assert np.array_equal(d, d.T)


def test_symmetric_z_keeps_nan_only_where_both_are_missing():
    s = _hand_matrix().symmetric_z()
    assert s[0, 1] == s[1, 0] == 9.0 and s[1, 2] == 4.0 and s[0, 2] == -1.0
    assert math.isnan(s[0, 3]) and math.isnan(s[2, 3]) and np.all(np.isnan(np.diag(s)))


# ---------------------------------------------------------------------------- embed_2d
def _random_distance(n: int, seed: int = 0) -> np.ndarray:
    pts = np.random.default_rng(seed).normal(size=(n, 3))
    d = np.sqrt(((pts[:, None, :] - pts[None, :, :]) ** 2).sum(-1))
    return d


@pytest.mark.parametrize("n, method", [(0, "point"), (1, "point"), (2, "line")])
def test_embed_small(n, method):
    d = np.full((n, n), 0.7)
    np.fill_diagonal(d, 0.0)
    e = embed_2d(d)
    assert isinstance(e, Embedding) and e.method == method and e.coords.shape == (n, 2) and e.note
    if n == 2:
        assert np.linalg.norm(e.coords[0] - e.coords[1]) == pytest.approx(0.7)


def test_embed_mds_between_3_and_umap_threshold():
    for n in sorted({3, UMAP_MIN_POINTS - 1}):
        d = _random_distance(n)
        e = embed_2d(d)
        assert e.method == "mds" and e.coords.shape == (n, 2) and np.all(np.isfinite(e.coords))
        assert str(UMAP_MIN_POINTS) in e.note
        again = embed_2d(d)
        assert np.array_equal(e.coords, again.coords)


def test_embed_umap_from_threshold_is_deterministic():
    n = UMAP_MIN_POINTS + 1
    d = _random_distance(n, seed=1)
    e1 = embed_2d(d)
    e2 = embed_2d(d.copy())
    assert e1.method == "umap" and e1.coords.shape == (n, 2) and np.all(np.isfinite(e1.coords))
    assert np.array_equal(e1.coords, e2.coords)


@pytest.mark.parametrize("bad", [np.zeros((3, 2)), np.zeros(4), np.array([[0.0, np.nan], [np.nan, 0.0]]),
                                 np.array([[0.0, np.inf], [np.inf, 0.0]])], ids=["3x2", "1d", "nan", "inf"])
def test_embed_rejects_bad_distance(bad):
    with pytest.raises(ValueError, match="finite square"):
        embed_2d(bad)


# ---------------------------------------------------------------------------- plots
def test_evidence_heatmap(matrix):
    fig = evidence_heatmap(matrix)
    assert isinstance(fig, go.Figure)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 1
    z = np.array(heat[0].z, dtype=float)
    assert z.shape == (matrix.n, matrix.n) and np.all(np.isnan(np.diag(z)))
    # shown in display order: family, seed, then name (noisy0 before seed0 within tiny seed 0)
    shown = ["noisy0", "seed0", "seed1", "seed2"]
    assert list(heat[0].x) == shown and list(heat[0].y) == shown
    assert z[0, 1] > 3 and np.nanmax(z) <= 30.0 and np.nanmin(z) >= 0.0
    # each cell is its pair's evidence, moved with its row and column
    i, j = matrix.names.index("seed1"), matrix.names.index("seed0")
    assert z[2, 1] == pytest.approx(min(-matrix.log10_p[i, j], 30.0))
    fig.to_json()  # serialisable


def test_evidence_heatmap_marks_the_diagonal(matrix):
    fig = evidence_heatmap(matrix)
    names = list(fig.data[0].x)
    selfs = [(a.x, a.y) for a in fig.layout.annotations if a.text == "self"]
    assert selfs == [(n, n) for n in names]
    cells = [(s.x0, s.x1, s.y0, s.y1) for s in fig.layout.shapes if s.type == "rect" and s.fillcolor]
    assert cells == [(i - 0.5, i + 0.5, i - 0.5, i + 0.5) for i in range(len(names))]


def test_display_order_keeps_each_seed_together():
    names = ["suspect", "demo-seed3-ft", "demo-seed10", "demo-seed2", "demo-seed3", "other-ft", "mystery"]
    lineages = ["suspect", "demo seed 3", "demo seed 10", "demo seed 2", "demo seed 3", "other seed 0",
                "demo unknown seed"]
    order = [names[i] for i in display_order(names, lineages)]
    # suspect first; family "demo" by seed as a number (2, 3, 10, unknown); base before its fine-tune
    assert order == ["suspect", "demo-seed2", "demo-seed3", "demo-seed3-ft", "demo-seed10", "mystery", "other-ft"]
    assert lineage_key("tiny seed 12") == ("tiny", 12.0) and lineage_key("seed 4") == ("", 4.0)
    assert lineage_key("x unknown seed") == ("x", math.inf)
    # the same models in another (ranked) order come out the same
    perm = [6, 4, 2, 0, 5, 1, 3]
    again = [names[perm[i]] for i in display_order([names[p] for p in perm], [lineages[p] for p in perm])]
    assert again == order


def test_evidence_heatmap_with_untestable_pairs():
    fig = evidence_heatmap(_hand_matrix())
    text = fig.data[0].text
    assert "not testable" in text[0][3] and "the same model" in text[2][2]


def test_embedding_map(matrix):
    emb = embed_2d(matrix.distance())
    fig = embedding_map(emb, matrix.names, matrix.lineages, suspect_index=0)
    assert isinstance(fig, go.Figure)
    assert sum(len(t.x) for t in fig.data) == matrix.n
    assert [t.name for t in fig.data].count("suspect") == 1
    sus = next(t for t in fig.data if t.name == "suspect")
    assert list(sus.text) == [matrix.names[0]]
    # without a suspect every model is in its lineage's trace
    fig2 = embedding_map(emb, matrix.names, matrix.lineages, suspect_index=None)
    assert sum(len(t.x) for t in fig2.data) == matrix.n and "suspect" not in [t.name for t in fig2.data]
    # the title says what the map shows in words, not how it was computed
    assert title_words(fig).startswith(MAP_TITLE) and "MDS" not in title_words(fig)
    fig.to_json()


def _colours(fig: go.Figure) -> dict[str, str]:
    return {t.name: t.marker.color for t in fig.data if t.mode == "markers+text" and t.name != "suspect"}


def test_a_lineage_keeps_its_colour_across_maps():
    # two audits with different model sets, the shared lineages listed in another order
    a_names, a_lin = ["s", "a1", "b1", "c1"], ["suspect", "demo seed 1", "demo seed 2", "demo seed 3"]
    b_names, b_lin = ["s", "c2", "x", "y", "a2"], ["suspect", "demo seed 3", "zoo seed 7", "zoo seed 8",
                                                  "demo seed 1"]
    rng = np.random.default_rng(0)
    fa = embedding_map(Embedding(rng.normal(size=(4, 2)), "mds", ""), a_names, a_lin)
    fb = embedding_map(Embedding(rng.normal(size=(5, 2)), "mds", ""), b_names, b_lin)
    ca, cb = _colours(fa), _colours(fb)
    assert ca["demo seed 1"] == cb["demo seed 1"] == lineage_colour("demo seed 1")
    assert ca["demo seed 3"] == cb["demo seed 3"] == lineage_colour("demo seed 3")
    assert len(set(ca.values())) == 3  # distinct here (the palette has 20 colours; the hash may share one)
    # a stable hash, not Python's per-process hash(): a known value
    assert lineage_colour("demo seed 1") == lineage_colour(" demo seed 1 ") == "#637939"


def test_labels_of_near_coincident_points_are_placed_apart():
    # the demo case: a reference and its fine-tune at almost the same spot, the suspect on top of them
    coords = np.array([[0.0, 0.0], [2.0, 1.0], [2.003, 1.001], [-1.5, 2.0], [-1.5, 2.004], [1.0, -2.0]])
    names = ["suspect", "seed3", "seed3-ft", "seed1", "seed1-ft", "seed2"]
    lin = ["suspect", "demo seed 3", "demo seed 3", "demo seed 1", "demo seed 1", "demo seed 2"]
    fig = embedding_map(Embedding(coords, "mds", ""), names, lin)
    pos = {}
    for t in fig.data:
        if t.mode == "markers+text":
            tp = [t.textposition] if isinstance(t.textposition, str) else list(t.textposition)
            pos.update(zip(t.text, tp))
    assert pos["seed3"] != pos["seed3-ft"] and pos["seed1"] != pos["seed1-ft"]
    assert pos["seed2"] == "top center" and pos["suspect"] == "bottom center"  # alone: where they always were
    # the pass itself: all on one spot get distinct positions; far apart points keep the first
    assert len(set(label_positions(np.zeros((4, 2))))) == 4
    assert label_positions(np.array([[0.0, 0.0], [5.0, 5.0]])) == ["top center", "top center"]


def test_map_layout_choice(matrix):
    auto = map_models(matrix)
    assert auto.method == "mds" and np.array_equal(map_models(matrix, layout="mds").coords, auto.coords)
    um = map_models(matrix, layout="umap")
    assert um.method == "umap" and um.coords.shape == (matrix.n, 2) and np.all(np.isfinite(um.coords))
    assert um.links == auto.links  # the same evidence, only placed differently
    assert np.array_equal(map_models(matrix, layout="umap").coords, um.coords)  # deterministic
    fig = embedding_map(um, matrix.names, matrix.lineages)
    assert "UMAP layout" in title_words(fig) and title_words(fig).startswith(MAP_TITLE)
    with pytest.raises(ValueError, match="layout"):
        map_models(matrix, layout="tsne")  # type: ignore[arg-type]


@pytest.mark.parametrize("test", ["calibrated", "paper"])
def test_evidence_plot(fps, test):
    res = run_test(fps[0], fps[1], "calibrated") if test == "calibrated" else seedprints_test(fps[0], fps[1])
    assert ("null_statistics" in res.details) == (test == "calibrated")
    if test == "calibrated":
        assert "null_dim_sample" in res.details
    fig = evidence_plot(res, "seed0", "noisy0")
    assert isinstance(fig, go.Figure) and len(fig.data) >= (3 if test == "calibrated" else 2)
    assert "seed0 vs noisy0" in title_words(fig)
    fig.to_json()
    # given the scan's Holm-adjusted p, the title shows it (as the verdict card does) and says so
    holm = min(res.log10_pvalue + 1.0, 0.0)
    words = title_words(evidence_plot(res, "seed0", "noisy0", holm))
    assert f"p = {format_p(holm)} after Holm correction" in words and format_p(res.log10_pvalue) in words


def test_titles_wrap_to_a_phone_width():
    """Plotly cuts a title off where the figure ends: each line of a title is kept within a phone's width."""
    from seedprints.plots import SUB_CHARS, TITLE_CHARS, wrap_title

    title = wrap_title("a long title that certainly does not fit in one narrow line on a phone<br>"
                       "<sup>and a subtitle of many words that would run far past the right edge of the figure</sup>")
    lines = title.split("<br>")
    assert len(lines) > 2
    for line in lines:
        sup = line.startswith("<sup>")
        assert len(line.removeprefix("<sup>").removesuffix("</sup>")) <= (SUB_CHARS if sup else TITLE_CHARS)


def test_evidence_plot_shows_bars_at_rho_one_and_labels_every_y_axis(fps):
    res = run_test(fps[0], fps[0], "calibrated")  # a model against itself: every dimension at rho = 1
    taus = np.asarray(res.taus)
    assert np.all(taus[np.isfinite(taus)] == pytest.approx(1.0))
    fig = evidence_plot(res, "seed0", "seed0")
    observed = next(t for t in fig.data if t.name.startswith("observed"))
    bins = observed.xbins
    assert bins.start < 1.0 < bins.end and (1.0 - bins.start) / bins.size == pytest.approx(
        round((1.0 - bins.start) / bins.size - 0.5) + 0.5)  # 1 sits in the middle of a bin, not on an edge
    lo, hi = fig.layout.xaxis.range
    assert lo < bins.start and hi > bins.end  # the whole bar is inside the axis
    lo2, hi2 = fig.layout.xaxis2.range
    assert lo2 < res.statistic < hi2  # so is the observed statistic's line
    assert fig.layout.yaxis.title.text and fig.layout.yaxis2.title.text
    b = correlation_bins(np.array([-0.2, 0.5, 1.0]))
    assert b["end"] > 1.0 and b["start"] <= -0.2


def test_evidence_plot_inconclusive_paper_result(fps):
    res = seedprints_test(fps[2], fps[3])
    assert res.inconclusive  # unrelated tiny models share < 2 identity dims in coset mode
    fig = evidence_plot(res, "seed1", "seed2")
    assert isinstance(fig, go.Figure)
    fig.to_json()
