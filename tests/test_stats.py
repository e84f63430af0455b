"""The paper statistic against an independent, straightforward implementation (to 1e-9)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from seedprints.errors import ExtractionError
from seedprints.stats import holm_log10, resolve_k, seedprints_test


def reference_statistic(A, B, k, mode, temperature=10.0, agg=False):
    """docs/method.md's published test written out by hand: bottom-k, softmax(x/T), scipy kendalltau per column,
    analytical null."""
    n, d = A.shape
    ma, mb = A.mean(axis=0), B.mean(axis=0)
    bot_a = set(np.argsort(ma, kind="stable")[:k].tolist())
    bot_b = set(np.argsort(mb, kind="stable")[:k].tolist())
    cols = sorted(bot_a & bot_b) if mode == "coset" else sorted(bot_a)

    def softmax(X):
        out = np.empty_like(X, dtype=float)
        for i, row in enumerate(X):
            e = [math.exp(v / temperature) for v in row]
            s = sum(e)
            out[i] = [v / s for v in e]
        return out

    SA, SB = softmax(A[:, cols]), softmax(B[:, cols])
    taus = [sps.kendalltau(SA[:, j], SB[:, j])[0] for j in range(len(cols))]
    mean_tau = sum(taus) / len(taus)
    sd = math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1))) / math.sqrt(len(taus))
    z = mean_tau / sd
    p = min(1.0, 2 * sps.norm.sf(z))
    if agg:
        a_mean = A[:, cols].mean(axis=1)
        b_mean = B[:, cols].mean(axis=1)
        z_agg = sps.kendalltau(a_mean, b_mean)[0] / math.sqrt(2 * (2 * n + 5) / (9 * n * (n - 1)))
        z = max(z, z_agg)
        p = min(1.0, 2 * 2 * sps.norm.sf(z))
    return mean_tau, z, p, cols, taus


def _pair(seed, n=120, d=40, link=0.6):
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((n, d)) + np.linspace(-1, 1, d)
    B = link * A + (1 - link) * rng.standard_normal((n, d)) + 0.3 * np.linspace(-1, 1, d)
    return A, B


@pytest.mark.parametrize("mode", ["coset", "base"])
@pytest.mark.parametrize("agg", [False, True])
@pytest.mark.parametrize("link", [0.0, 0.15, 0.6])
def test_matches_independent_implementation(mode, agg, link):
    A, B = _pair(int(link * 100) + (7 if agg else 0), link=link)
    k = 12
    mean_tau, z, p, cols, taus = reference_statistic(A, B, k, mode, agg=agg)
    r = seedprints_test(A, B, k=k, mode=mode, agg=agg)
    assert not r.inconclusive
    assert list(r.columns) == cols
    assert r.k == len(cols) and r.n == A.shape[0] and r.mode == mode
    np.testing.assert_allclose(r.taus, taus, rtol=0, atol=1e-9)
    assert r.statistic == pytest.approx(mean_tau, abs=1e-9)
    assert r.z == pytest.approx(z, abs=1e-9)
    assert r.pvalue == pytest.approx(p, abs=1e-9)
    if p > 1e-300:
        assert r.log10_pvalue == pytest.approx(math.log10(p), abs=1e-9)


def test_k_ratio_and_absolute():
    assert resolve_k(0.10, 576) == 58
    assert resolve_k(0.10, 128) == 13
    assert resolve_k(400, 768) == 400
    A, B = _pair(1, d=100)
    r_ratio = seedprints_test(A, B, k=0.2, mode="base")
    r_abs = seedprints_test(A, B, k=20, mode="base")
    assert r_ratio.k == r_abs.k == 20 and r_ratio.statistic == r_abs.statistic


def test_log10_p_does_not_underflow():
    rng = np.random.default_rng(0)
    A = rng.standard_normal((2000, 200)) - np.linspace(0, 3, 200)
    r = seedprints_test(A, A.copy(), k=0.5)
    assert r.pvalue == 0.0  # the float underflows ...
    assert r.log10_pvalue < -1000  # ... the log does not
    assert math.isfinite(r.log10_pvalue)
    # log space agrees with a direct computation where both exist
    assert r.log10_pvalue == pytest.approx(math.log10(2) + sps.norm.logsf(r.z) / math.log(10), rel=1e-12)


def test_negative_z_gives_p_one():
    rng = np.random.default_rng(3)
    A = rng.standard_normal((300, 30)) - np.linspace(0, 1, 30)
    r = seedprints_test(A, -A + 0.0, k=10, mode="base")
    assert r.z < 0 and r.pvalue == 1.0 and r.log10_pvalue == 0.0


@pytest.mark.parametrize("null", ["simplified", "full_pipeline"])
@pytest.mark.parametrize("null_test", ["ttest", "mannwhitney"])
def test_empirical_nulls_agree_with_scipy(null, null_test):
    A, B = _pair(5, n=100, d=40, link=0.3)
    r = seedprints_test(A, B, k=12, mode="base", null=null, null_test=null_test, n_null=5, null_seed=1)
    # rebuild the same null independently and test with scipy
    from seedprints.stats import full_pipeline_null_taus, simplified_null_taus

    rng = np.random.default_rng(1)
    null_taus = (simplified_null_taus(100, r.k, 5, 10.0, rng) if null == "simplified"
                 else full_pipeline_null_taus(100, 40, 12, "base", 5, 10.0, rng))
    obs = r.taus[np.isfinite(r.taus)]
    if null_test == "ttest":
        ref = sps.ttest_ind(obs, null_taus, equal_var=False, alternative="greater")
    else:
        ref = sps.mannwhitneyu(obs, null_taus, alternative="greater", method="asymptotic")
    assert r.pvalue == pytest.approx(ref.pvalue, rel=1e-9, abs=1e-12)
    assert r.details["n_null_taus"] == len(null_taus)


def test_empirical_nulls_are_calibrated_on_independent_data():
    rng = np.random.default_rng(11)
    pvals = []
    for _ in range(40):
        A = rng.standard_normal((80, 30))
        B = rng.standard_normal((80, 30))
        pvals.append(seedprints_test(A, B, k=10, mode="base", null="simplified", n_null=4,
                                     null_seed=int(rng.integers(1 << 30))).pvalue)
    assert np.mean(np.array(pvals) < 0.05) <= 0.15


def test_too_few_columns_is_inconclusive_not_nan():
    rng = np.random.default_rng(2)
    A = rng.standard_normal((50, 10))
    r = seedprints_test(A, A, k=1)  # one column: softmax is constant
    assert r.inconclusive and r.pvalue == 1.0 and r.statistic == 0.0 and "at least 2" in r.reason
    assert not any(map(math.isnan, [r.statistic, r.pvalue, r.log10_pvalue, r.z]))
    B = A.copy()
    B[:, :] = A[:, ::-1]  # reversed columns: bottom-k sets disjoint for coset
    means = A.mean(axis=0)
    assert seedprints_test(A, B, k=2, mode="coset").inconclusive or len(set(np.argsort(means)[:2]) & set(9 - np.argsort(means)[:2])) >= 2


def test_constant_columns_give_inconclusive():
    rng = np.random.default_rng(4)
    A = rng.standard_normal((60, 8))
    A[:, :3] = -50.0 - np.arange(3)  # the 3 lowest-mean columns are constant: softmax columns constant, tau undefined
    r = seedprints_test(A, A.copy(), k=3, mode="base")
    assert r.inconclusive and r.n_dropped == 3 and r.pvalue == 1.0
    assert "vary" in r.reason


def test_non_finite_features_name_the_model():
    A = np.ones((10, 4))
    A[0, 0] = np.nan
    with pytest.raises(ExtractionError, match="suspect"):
        seedprints_test(np.ones((10, 4)), A)


def test_holm_matches_textbook():
    p = np.array([0.01, 0.04, 0.03, 0.005])
    m = len(p)
    order = np.argsort(p)
    expected = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * p[i]))
        expected[i] = running
    np.testing.assert_allclose(10 ** holm_log10(np.log10(p)), expected, rtol=1e-12)


def test_t_tail_stays_finite_where_scipy_underflows():
    from seedprints.stats import log_t_sf

    for df in (5.0, 50.0, 500.0):
        for t in (3.0, 10.0, 30.0):  # where scipy is finite, the function is scipy's
            assert log_t_sf(t, df) == pytest.approx(float(sps.t.logsf(t, df)), rel=1e-12)
        # far tail: finite, monotone, and continuous with scipy's last finite values
        assert math.isfinite(log_t_sf(1e4, df)) and log_t_sf(2e4, df) < log_t_sf(1e4, df)
    t_edge = 60.0
    assert math.isfinite(float(sps.t.logsf(t_edge, 500.0)))
    from scipy import special

    a, x = 250.0, 500.0 / (500.0 + t_edge**2)
    approx = a * math.log(x) + 0.5 * math.log1p(-x) - math.log(a) - special.betaln(a, 0.5) - math.log(2)
    assert approx == pytest.approx(float(sps.t.logsf(t_edge, 500.0)), rel=1e-3)


def test_empirical_null_extreme_match_has_finite_log_p():
    rng = np.random.default_rng(8)
    A = rng.standard_normal((400, 40)) - np.linspace(0, 2, 40)
    r = seedprints_test(A, A.copy(), k=10, mode="base", null="simplified", n_null=10)
    assert math.isfinite(r.log10_pvalue) and r.log10_pvalue < -50
