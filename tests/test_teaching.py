"""The Learn tab's engine (seedprints.teaching), checked against hand computations, plus its tab wiring."""

from __future__ import annotations

import json
import math

from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from scipy import stats as sps

from seedprints import plots as P
from seedprints import teaching as T
from seedprints.errors import SeedPrintsError


@pytest.fixture(autouse=True)
def _one_thread():
    with T.torch_threads(1):
        yield


@pytest.fixture(scope="module")
def lesson() -> T.Lesson:
    with T.torch_threads(1):
        return T.Lesson()


def _has_data(fig: go.Figure) -> bool:
    return any(getattr(t, a, None) is not None and len(getattr(t, a)) for t in fig.data for a in ("x", "y", "z"))


# ---------------------------------------------------------------------------- step 1
def test_tiny_models_differ_only_in_their_seed():
    torch.manual_seed(99)
    expected_next = torch.rand(3)
    torch.manual_seed(99)
    a, a2, b = T.tiny_model(1), T.tiny_model(1), T.tiny_model(2)
    assert torch.equal(torch.rand(3), expected_next), "building a model must not move the caller's RNG"
    sa, sa2, sb = a.state_dict(), a2.state_dict(), b.state_dict()
    assert all(torch.equal(sa[k], sa2[k]) for k in sa)
    assert not torch.equal(sa["model.layers.0.self_attn.q_proj.weight"], sb["model.layers.0.self_attn.q_proj.weight"])
    assert a.config.to_dict() == b.config.to_dict()
    assert (a.config.hidden_size, a.config.num_hidden_layers, a.config.vocab_size) == (T.HIDDEN, T.LAYERS, T.VOCAB)
    rows = T.config_rows(a, b, 1, 2)
    assert [r["setting"] for r in rows if not r["same"]] == ["init seed (torch.manual_seed)", "weights (sha256)"]
    assert [r["setting"] for r in T.config_rows(a, a2, 1, 1) if not r["same"]] == []


def test_weights_figure_shows_both_corners_and_histograms():
    wa, wb = T.weight_matrix(T.tiny_model(1)), T.weight_matrix(T.tiny_model(2))
    assert wa.shape == (T.HIDDEN, T.HIDDEN)
    fig = P.weights_figure(wa, wb, 1, 2, size=8)
    heat = [t for t in fig.data if t.type == "heatmap"]
    assert len(heat) == 2 and np.allclose(np.asarray(heat[0].z), wa[:8, :8])
    assert sum(t.type == "histogram" for t in fig.data) == 2
    with pytest.raises(SeedPrintsError, match="no parameter"):
        T.weight_matrix(T.tiny_model(1), "nope.weight")


# ---------------------------------------------------------------------------- step 2
def test_identity_overlap_by_hand():
    a = np.array([5.0, 1.0, 4.0, 0.0, 3.0, 2.0])  # lowest three: dims 3, 1, 5
    b = np.array([0.0, 9.0, 1.0, 8.0, 2.0, 7.0])  # lowest three: dims 0, 2, 4
    ov = T.identity_overlap(a, b, 3)
    assert ov.dims_a.tolist() == [1, 3, 5] and ov.dims_b.tolist() == [0, 2, 4]
    assert ov.count == 0 and ov.shared.tolist() == []
    assert ov.expected == pytest.approx(9 / 6)
    assert ov.chance_p == pytest.approx(1.0)
    same = T.identity_overlap(a, np.array([9.0, 0.0, 9.0, 1.0, 9.0, 2.0]), 3)
    assert same.shared.tolist() == [1, 3, 5]
    # P(3 of 3 shared) for two random 3-sets of 6 = 1 / C(6, 3)
    assert same.chance_p == pytest.approx(1 / math.comb(6, 3))
    partial = T.identity_overlap(a, np.array([0.0, 0.5, 9.0, 0.2, 9.0, 9.0]), 3)  # lowest: 0, 3, 1
    assert partial.shared.tolist() == [1, 3]


def test_column_profile_is_the_feature_mean(lesson):
    spec = T.teaching_probe(60, 8)
    fp = lesson.init_fingerprint(1, spec)
    assert fp.features.shape == (60, T.HIDDEN)
    np.testing.assert_allclose(T.column_profile(fp), fp.features.astype(np.float64).mean(axis=0), rtol=1e-12)
    np.testing.assert_allclose(T.column_profile(fp.features), fp.features.mean(axis=0, dtype=np.float64), rtol=1e-6)
    np.testing.assert_allclose(T.column_profile(T.tiny_model(1), spec), fp.column_means, rtol=1e-6)
    with pytest.raises(SeedPrintsError):
        T.column_profile(T.tiny_model(1))
    assert lesson.init_fingerprint(1, spec) is fp, "the lesson memo must reuse a fingerprint"


def test_per_dim_rho_matches_scipy():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(40, 5))
    b = a + rng.normal(size=(40, 5))
    rho = T.per_dim_rho(a, b)
    for j in range(5):
        assert rho[j] == pytest.approx(sps.spearmanr(a[:, j], b[:, j]).statistic, abs=1e-12)


def test_profile_figure_colours_k_dimensions_per_model():
    rng = np.random.default_rng(1)
    ma, mb = rng.normal(size=32), rng.normal(size=32)
    fig = P.profile_figure(ma, mb, 4, "A", "B")
    grey = "#c8c8c8"
    bars = [t for t in fig.data if len(t.x) == 32]
    assert len(bars) == 2
    for trace in bars:
        assert sum(c != grey for c in trace.marker.color) == 4
    assert "chance: 0.5" in fig.layout.title.text
    # the bars' colours have legend entries, the red (shared) one included
    legend = {t.marker.color: t.name for t in fig.data if t.showlegend}
    assert "shared" in legend["#d62728"] and "A" in legend["#1f77b4"] and "B" in legend["#ff7f0e"]
    assert legend[grey] == "other dimension"


def _annotation_texts(fig: go.Figure) -> list[str]:
    return [a.text for a in fig.layout.annotations]


def test_learn_reference_lines_are_labelled_in_the_legend_not_on_the_bars():
    rows = [{"derivative": d, "z vs own init": 12.0, "z vs other seed": 0.3} for d in ("as trained", "int8")]
    fig = P.derivative_figure(rows, alpha=0.01)
    # the label of the dashed line is a legend entry: nothing is written where the bars and their values are
    assert not any("2.33" in t for t in _annotation_texts(fig))
    assert any(t.name and "z = 2.33" in t.name for t in fig.data)
    fpr = [{"test": t, "probe": "token", "budget": "quick", "n_samples": 600, "seq_len": 32, "fpr": f,
            "ci_low": 0.0, "ci_high": f + 0.01, "false_positives": 1, "negatives": 100, "alpha": 0.01}
           for t, f in (("paper-analytical", 0.03), ("paper-empirical", 0.16), ("calibrated", 0.009))]
    bars = P.fpr_figure(fpr, 0.01)
    assert not any("alpha = 0.01" in t for t in _annotation_texts(bars) if t != bars.layout.title.text)
    assert any(t.name and "alpha = 0.01" in t.name for t in bars.data)
    # every test's name says what it is: "paper-empirical" is explained in its legend label and hover
    emp = next(t for t in bars.data if t.name and t.name.startswith("paper-empirical"))
    assert "simulated" in emp.name and "simulated" in emp.hovertemplate


def test_learn_headings_are_not_doubled():
    from ui.learn_tab import STEP_HEADINGS, STEP_TEXT

    for n, text in STEP_TEXT.items():
        assert not text.lstrip().startswith("#"), n  # the accordion's label is the heading
        assert STEP_HEADINGS[n].startswith(f"Step {n} ")


def test_every_learn_histogram_has_a_labelled_y_axis():
    rng = np.random.default_rng(0)
    w = rng.normal(size=(32, 32))
    fig = P.weights_figure(w, w + 0.1, 1, 2)
    hist_axes = {t.yaxis for t in fig.data if t.type == "histogram"}
    for ax in hist_axes:
        name = "yaxis" if ax == "y" else "yaxis" + ax[1:]
        assert fig.layout[name].title.text, ax


def test_probe_settings_are_checked():
    spec = T.teaching_probe(100, 12)
    assert (spec.n_samples, spec.seq_len, spec.vocab_range) == (100, 12, T.VOCAB)
    for n, seq in ((5, 16), (100, 0), (100.5, 16), ("many", 16)):
        with pytest.raises(SeedPrintsError):
            T.teaching_probe(n, seq)
    assert T.check_seed("seed", 3.0) == 3
    with pytest.raises(SeedPrintsError, match="seed of model A"):
        T.check_seed("seed of model A", -1)


# ---------------------------------------------------------------------------- step 3
def test_train_with_losses_learns_and_leaves_the_input_alone():
    model = T.tiny_model(3)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    trained, losses = T.train_with_losses(model, steps=30, lr=5e-4, seed=0)
    again, losses2 = T.train_with_losses(model, steps=30, lr=5e-4, seed=0)
    assert len(losses) == 30 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-5:]) < np.mean(losses[:5]) - 0.5
    assert losses[0] == pytest.approx(math.log(T.VOCAB), abs=0.3), "an untrained model guesses about uniformly"
    assert losses == losses2, "the data seed fixes the run"
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in before.items())
    assert not torch.equal(trained.state_dict()["lm_head.weight"], before["lm_head.weight"])
    assert not trained.training
    seen: list[tuple[int, int]] = []
    T.train_with_losses(model, steps=3, lr=1e-4, progress=lambda stage, d, n: seen.append((d, n)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(SeedPrintsError, match="training steps"):
        T.train_with_losses(model, steps=0)


def test_trained_model_keeps_its_seed_and_not_the_other(lesson):
    spec = T.teaching_probe()
    fa, fb = lesson.init_fingerprint(1, spec), lesson.init_fingerprint(2, spec)
    ft = lesson.trained_fingerprint(1, 40, 5e-4, 0, spec)
    own, other, unrelated = T.calibrated_pair(fa, ft), T.calibrated_pair(fb, ft), T.calibrated_pair(fa, fb)
    assert own.z > 8 and own.significant(0.01)
    assert abs(other.z) < 3.5 and not other.significant(0.01)
    assert abs(unrelated.z) < 3.5
    assert lesson.trained(1, 40, 5e-4, 0) is lesson.trained(1, 40, 5e-4, 0)
    figs = [P.loss_figure(lesson.trained(1, 40, 5e-4, 0).losses), P.before_after_figure(fa, ft, T.K)]
    assert all(_has_data(f) for f in figs)
    # every dimension appears exactly once in the scatter
    assert sum(len(t.x) for t in figs[1].data) == T.HIDDEN


def test_lesson_memo_drops_the_oldest_entries():
    memo = T.Lesson(max_entries=2)
    calls = []
    for key in ("a", "b", "a", "c", "b"):
        memo._get(key, lambda key=key: calls.append(key) or key)
    # "a" stays (used again), "b" is dropped when "c" arrives, so it is made twice
    assert calls == ["a", "b", "c", "b"] and len(memo) == 2


# ---------------------------------------------------------------------------- step 5
def test_derivative_tests_link_every_copy_to_its_own_seed_only(lesson):
    spec = T.teaching_probe()
    fa, fb = lesson.init_fingerprint(1, spec), lesson.init_fingerprint(2, spec)
    trained = lesson.trained(1, 40, 5e-4, 0).model
    stages = []
    rows = T.derivative_tests(trained, fa, fb, spec, variants=T.derivatives(ft_steps=5),
                              progress=lambda stage, d, n: stages.append((d, n)))
    assert [r["derivative"] for r in rows] == ["as trained", "int8", "int4", "fine-tune", "noise", "prune"]
    assert stages[-1] == (6, 6)
    for r in rows:
        assert r["match own"] and r["z vs own init"] > 8, r
        assert not r["match other"] and abs(r["z vs other seed"]) < 3.5, r
    fig = P.derivative_figure(rows)
    assert [len(t.y) for t in fig.data if t.type == "bar"] == [6, 6]
    with pytest.raises(SeedPrintsError, match="pruned fraction"):
        T.derivatives(prune=1.5)


# ---------------------------------------------------------------------------- step 6
def _pair(positive: bool, log10_p: float, inconclusive: bool = False) -> dict:
    return {"reference": "r", "suspect": "s", "positive": positive, "kind": "x", "z": 0.0, "log10_p": log10_p,
            "inconclusive": inconclusive, "significant": log10_p < -2}


@pytest.fixture
def accuracy_file(tmp_path):
    """Two tests on one probe budget; negatives with known p-values, and positives that must be ignored."""
    neg_paper = [_pair(False, lp) for lp in (-3.0, -2.5, -1.5, -0.5)] + [_pair(False, 0.0, inconclusive=True)]
    neg_cal = [_pair(False, lp) for lp in (-1.2, -0.8, -0.4, -0.1, 0.0)]
    pos = [_pair(True, -50.0), _pair(True, -40.0)]
    record = {"alpha": 0.01, "results": [
        {"test": "paper-analytical", "probe": "token", "budget": "quick", "n_samples": 600, "seq_len": 32,
         "fpr_at_alpha": {"x": 2, "n": 5, "rate": 0.4, "ci95": [0.05, 0.85]}, "pairs": neg_paper + pos},
        {"test": "calibrated", "probe": "token", "budget": "quick", "n_samples": 600, "seq_len": 32,
         "fpr_at_alpha": {"x": 0, "n": 5, "rate": 0.0, "ci95": [0.0, 0.52]}, "pairs": neg_cal + pos},
    ]}
    path = tmp_path / "accuracy.json"
    path.write_text(json.dumps(record))
    return path


def test_fpr_table_uses_stored_rates_at_the_records_alpha(accuracy_file):
    rows = T.fpr_table_from_accuracy(accuracy_file)
    assert [(r["test"], r["false_positives"], r["negatives"], r["source"]) for r in rows] == [
        ("paper-analytical", 2, 5, "stored"), ("calibrated", 0, 5, "stored")]
    assert (rows[0]["fpr"], rows[0]["ci_low"], rows[0]["ci_high"]) == (0.4, 0.05, 0.85)
    assert rows[0]["n_samples"] == 600 and rows[0]["alpha"] == 0.01


def test_fpr_table_recomputes_other_alphas_from_the_negative_pairs(accuracy_file):
    rows = {r["test"]: r for r in T.fpr_table_from_accuracy(accuracy_file, alpha=0.05)}
    # p < 0.05 means log10 p < -1.301: paper has -3, -2.5, -1.5 (the inconclusive pair never counts), calibrated none
    paper, cal = rows["paper-analytical"], rows["calibrated"]
    assert (paper["false_positives"], paper["negatives"], paper["source"]) == (3, 5, "recomputed")
    assert paper["fpr"] == pytest.approx(0.6)
    assert (cal["false_positives"], cal["fpr"], cal["ci_low"]) == (0, 0.0, 0.0)
    # exact interval for 0 of n: upper bound 1 - 0.025 ** (1 / n)
    assert cal["ci_high"] == pytest.approx(1 - 0.025 ** (1 / 5))
    # and for n of n: lower bound 0.025 ** (1 / n)
    assert T.clopper_pearson(5, 5) == pytest.approx((0.025 ** (1 / 5), 1.0))
    lo, hi = paper["ci_low"], paper["ci_high"]
    # Clopper-Pearson bounds: P(X >= 3 | lo) = 0.025 and P(X <= 3 | hi) = 0.025
    assert sps.binom.sf(2, 5, lo) == pytest.approx(0.025) and sps.binom.cdf(3, 5, hi) == pytest.approx(0.025)
    with pytest.raises(SeedPrintsError, match="alpha"):
        T.fpr_table_from_accuracy(accuracy_file, alpha=1.5)


def test_fpr_curves_by_hand(accuracy_file):
    curves = T.fpr_curves_from_accuracy(accuracy_file, alphas=[0.01, 0.1, 0.5])
    alphas, paper = curves["paper-analytical"]
    # p-values 1e-3, 10**-2.5, 10**-1.5, 10**-0.5 and an inconclusive pair (p = 1)
    assert paper.tolist() == [pytest.approx(2 / 5), pytest.approx(3 / 5), pytest.approx(4 / 5)]
    assert curves["calibrated"][1].tolist() == [0.0, pytest.approx(1 / 5), pytest.approx(3 / 5)]
    fig = P.fpr_curve_figure(curves, 0.01)
    assert _has_data(fig)
    bars = P.fpr_figure(T.fpr_table_from_accuracy(accuracy_file), 0.01)
    assert [t.name.split(" ")[0] for t in bars.data if t.type == "bar"] == ["paper-analytical", "calibrated"]


def test_accuracy_file_missing_or_wrong(tmp_path):
    with pytest.raises(SeedPrintsError, match="is not there"):
        T.fpr_table_from_accuracy(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(SeedPrintsError, match="cannot be read"):
        T.fpr_table_from_accuracy(bad)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({"alpha": 0.01}))
    with pytest.raises(SeedPrintsError, match="results"):
        T.fpr_table_from_accuracy(other)


def test_the_shipped_accuracy_summary_matches_the_benchmark_record():
    assert T.ACCURACY_JSON.is_file()  # shipped inside the package
    rows = T.fpr_table_from_accuracy()
    bench = Path(__file__).resolve().parents[1] / "bench" / "results" / "accuracy.json"
    if bench.is_file():  # the summary is what bench/accuracy.py wrote from its record
        assert T.fpr_table_from_accuracy(bench) == rows
        assert T.fpr_table_from_accuracy(bench, alpha=0.05) == T.fpr_table_from_accuracy(alpha=0.05)
    tests = {r["test"] for r in rows}
    assert {"paper-analytical", "calibrated"} <= tests
    for r in rows:
        assert 0 <= r["ci_low"] <= r["fpr"] <= r["ci_high"] <= 1
    # recomputing at the stored alpha from the pairs gives the stored counts
    stored = {(r["test"], r["probe"], r["budget"]): r["false_positives"] for r in rows}
    nudged = T.fpr_table_from_accuracy(alpha=0.0100000001)
    assert {(r["test"], r["probe"], r["budget"]): r["false_positives"] for r in nudged} == stored


# ---------------------------------------------------------------------------- the tab (no browser)
def test_learn_params_are_checked_in_one_line():
    from ui.learn_tab import CONTROL_ORDER, LearnParams

    good = LearnParams()
    values = [getattr(good, name) for name in CONTROL_ORDER]
    assert LearnParams.parse(*values) == good
    bad = dict(zip(CONTROL_ORDER, values), k=T.HIDDEN)
    with pytest.raises(SeedPrintsError, match="identity dimensions k"):
        LearnParams.parse(*[bad[name] for name in CONTROL_ORDER])
    bad = dict(zip(CONTROL_ORDER, values), seed_b=None)
    with pytest.raises(SeedPrintsError, match="seed of model B"):
        LearnParams.parse(*[bad[name] for name in CONTROL_ORDER])


def test_step6_says_when_the_benchmark_record_is_missing(monkeypatch, tmp_path, accuracy_file):
    from ui.learn_tab import render_step6

    monkeypatch.setattr(T, "ACCURACY_JSON", tmp_path / "missing.json")
    with pytest.raises(SeedPrintsError, match="bench/accuracy.py"):
        render_step6(0.01, "token", "quick")
    monkeypatch.setattr(T, "ACCURACY_JSON", accuracy_file)
    bars, curve, md = render_step6(0.05, "token", "quick")
    assert "paper-analytical: 3 of 5" in md and "recomputed" in md
    with pytest.raises(SeedPrintsError, match="embedding"):
        render_step6(0.01, "embedding", "quick")


def test_learn_tab_builds_inside_tabs():
    import gradio as gr

    from ui.jobs import JobQueue
    from ui.learn_tab import build_learn_tab

    with gr.Blocks() as blocks:
        with gr.Tabs():
            build_learn_tab(JobQueue())
    ids = {getattr(b, "elem_id", None) for b in blocks.blocks.values()}
    for n in range(1, 7):
        assert {f"learn-step-{n}", f"learn-plot-{n}", f"learn-run-{n}", f"learn-status-{n}"} <= ids
    assert "tab-learn" in ids
