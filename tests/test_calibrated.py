"""The calibrated (re-pairing) test: hand computation, level under shared inputs, power, edge cases."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import stats as sps

from seedprints.errors import IncompatibleFingerprintsError
from seedprints.fingerprint import Fingerprint
from seedprints.loading import ModelFacts
from seedprints.probes import ProbeSpec
from seedprints.stats import calibrated_test, centered_ranks, repairing_draws, seedprints_test


def features(x, w, offsets):
    """A toy 'model': a fixed nonlinear read-out of shared inputs, so unrelated models correlate by accident."""
    return np.tanh(x @ w) + offsets


def toy_pair(rng, n=300, m=6, d=64, related=False):
    x = rng.standard_normal((n, m))
    w_a = rng.standard_normal((m, d))
    off_a = rng.standard_normal(d)
    w_b, off_b = (w_a + 0.5 * rng.standard_normal((m, d)), off_a) if related else \
        (rng.standard_normal((m, d)), rng.standard_normal(d))
    return features(x, w_a, off_a), features(x, w_b, off_b)


def test_matches_hand_computation():
    rng = np.random.default_rng(0)
    a, b = toy_pair(rng, n=80, d=30, related=True)
    k, r_perm = 6, 200
    res = calibrated_test(a, b, k=k, n_permutations=r_perm, seed=3)
    cols = np.argsort(a.mean(axis=0), kind="stable")[:k]
    cols.sort()
    aligned = [sps.spearmanr(a[:, c], b[:, c]).statistic for c in cols]
    draws = repairing_draws(30, k, r_perm, 3)
    null = np.array([np.mean([sps.spearmanr(a[:, cols[j]], b[:, draws[r, j]]).statistic for j in range(k)])
                     for r in range(r_perm)])
    stat = float(np.mean(aligned))
    z = (stat - null.mean()) / null.std(ddof=1)
    assert list(res.columns) == list(cols)
    np.testing.assert_allclose(res.taus, aligned, atol=1e-9)
    assert res.statistic == pytest.approx(stat, abs=1e-9)
    assert res.z == pytest.approx(z, abs=1e-7)
    mc_p = (1 + (null >= stat).sum()) / (r_perm + 1)
    assert res.details["monte_carlo_p"] == pytest.approx(mc_p)
    expected = mc_p if (null >= stat).any() else min(mc_p, sps.norm.sf(z))
    assert res.pvalue == pytest.approx(expected, rel=1e-6)
    # every draw is an injective map of the k identity dims into 0..D-1
    assert all(len(set(row)) == k for row in draws) and draws.max() < 30


def test_holds_its_level_where_the_paper_null_fails():
    """Unrelated models driven by the same inputs: the analytical null rejects far too often, re-pairing does not."""
    rng = np.random.default_rng(1)
    cal, paper = [], []
    for _ in range(60):
        a, b = toy_pair(rng)
        cal.append(calibrated_test(a, b, k=0.2, n_permutations=500, seed=int(rng.integers(1 << 20))).pvalue)
        paper.append(seedprints_test(a, b, k=0.2, mode="base").pvalue)
    cal_fpr = np.mean(np.array(cal) < 0.05)
    paper_fpr = np.mean(np.array(paper) < 0.05)
    assert cal_fpr <= 0.12, cal_fpr  # nominal 0.05; binomial slack for 60 pairs
    assert paper_fpr >= 0.3, paper_fpr  # the documented failure of the analytical null


def test_p_is_the_permutation_p_inside_the_null_range():
    rng = np.random.default_rng(9)
    a, b = toy_pair(rng)
    r = calibrated_test(a, b, k=0.2, n_permutations=500)
    assert r.pvalue == pytest.approx(r.details["monte_carlo_p"])
    assert 1 / 501 <= r.pvalue <= 1.0


def test_detects_related_pairs():
    rng = np.random.default_rng(2)
    for _ in range(5):
        a, b = toy_pair(rng, related=True)
        r = calibrated_test(a, b, k=0.2)
        assert r.significant(0.01) and r.log10_pvalue < -10 and r.z > 5


def test_needs_the_full_suspect():
    spec = ProbeSpec(n_samples=50, seq_len=4, vocab_range=10)
    rng = np.random.default_rng(3)
    facts = ModelFacts("s", "LlamaForCausalLM", "llama", 40, 10, 1, "h")
    fp = Fingerprint.from_features(spec, rng.standard_normal((50, 40)).astype(np.float32), facts)
    with pytest.raises(IncompatibleFingerprintsError, match="keep='all'"):
        calibrated_test(fp, fp.compact(0.2))
    r = calibrated_test(fp.compact(0.2), fp)  # a compact *reference* is fine
    assert r.significant(0.01)


def test_degenerate_inputs_are_inconclusive_not_nan():
    const = np.ones((30, 10))
    r = calibrated_test(np.random.default_rng(4).standard_normal((30, 10)), const, k=3, n_permutations=100)
    assert r.inconclusive and r.pvalue == 1.0 and not math.isnan(r.statistic)
    r = calibrated_test(const, const, k=1, n_permutations=100)
    assert r.inconclusive


def test_rank_products_are_spearman_even_with_ties():
    from seedprints.stats import centered_ranks

    rng = np.random.default_rng(5)
    x = rng.integers(0, 5, (40, 3)).astype(float)  # many ties
    x[:, 2] = rng.standard_normal(40)  # and one column without
    y = rng.integers(0, 3, (40, 3)).astype(float)
    got = centered_ranks(x).T @ centered_ranks(y)
    for i in range(3):
        for j in range(3):
            assert got[i, j] == pytest.approx(sps.spearmanr(x[:, i], y[:, j]).statistic, abs=1e-12)


# ---------------------------------------------------------------------------- the cyclic re-pairing null
def test_cyclic_null_matches_hand_computation():
    """Each of the D - 1 shifts j -> j + r (mod D), computed one Spearman rho at a time."""
    rng = np.random.default_rng(4)
    a, b = toy_pair(rng, n=60, d=13)
    k, d = 5, 13
    res = calibrated_test(a, b, k=k, repairing="cyclic")
    cols = res.columns

    def mean_rho(r):
        return np.mean([sps.spearmanr(a[:, c], b[:, (c + r) % d]).statistic for c in cols])

    null = np.array([mean_rho(r) for r in range(1, d)])
    stat = mean_rho(0)
    np.testing.assert_allclose(res.details["null_statistics"], null, atol=1e-12)
    assert res.details["repairing"] == "cyclic" and res.details["n_permutations"] == d - 1
    assert res.statistic == pytest.approx(stat, abs=1e-12)
    assert res.z == pytest.approx((stat - null.mean()) / null.std(ddof=1), abs=1e-9)
    exceed = int((null >= stat - 1e-9).sum())
    assert res.details["monte_carlo_p"] == pytest.approx((1 + exceed) / d)


def test_auto_uses_the_cyclic_group_from_500_dimensions():
    rng = np.random.default_rng(5)
    small, big = rng.standard_normal((40, 499)), rng.standard_normal((40, 500))
    assert calibrated_test(small, rng.standard_normal((40, 499)), k=0.1).details["repairing"] == "random"
    assert calibrated_test(big, rng.standard_normal((40, 500)), k=0.1).details["repairing"] == "cyclic"
    forced = calibrated_test(big, rng.standard_normal((40, 500)), k=0.1, repairing="random", n_permutations=300)
    assert forced.details["repairing"] == "random" and len(forced.details["null_statistics"]) == 300
    with pytest.raises(Exception, match="unknown re-pairing null 'dihedral'"):
        calibrated_test(big, big, repairing="dihedral")


def test_cyclic_p_values_are_uniform_for_exchangeable_dimensions():
    """Independent models whose dimensions are exchangeable (the same inputs through independent random
    read-outs): a test over a group is exact, so its p-values are uniform: checked at 0.05 and 0.2, and by KS."""
    rng = np.random.default_rng(6)
    ps = []
    for _ in range(300):
        a, b = toy_pair(rng, n=40, m=4, d=100)
        ps.append(calibrated_test(a, b, k=1.0, repairing="cyclic").details["monte_carlo_p"])
    ps = np.array(ps)
    assert np.mean(ps <= 0.05) <= 0.05 + 3 * math.sqrt(0.05 * 0.95 / 300)
    assert np.mean(ps <= 0.2) <= 0.2 + 3 * math.sqrt(0.2 * 0.8 / 300)
    assert sps.kstest(ps, "uniform").pvalue > 0.001


def test_cyclic_and_random_nulls_agree_on_a_match():
    rng = np.random.default_rng(7)
    a, b = toy_pair(rng, n=200, d=520, related=True)
    cyc = calibrated_test(a, b, k=1.0)
    rnd = calibrated_test(a, b, k=1.0, repairing="random")
    assert cyc.details["repairing"] == "cyclic" and cyc.pvalue < 1e-6 and rnd.pvalue < 1e-6
    assert cyc.z == pytest.approx(rnd.z, rel=0.1)


def test_ranks_average_ties_like_scipy():
    rng = np.random.default_rng(8)
    x = rng.integers(0, 4, (30, 9)).astype(float)
    x[:, 2] = 1.0  # a constant column has no ranks to compare: zeros
    r = sps.rankdata(x, axis=0)
    r -= r.mean(axis=0)
    norm = np.linalg.norm(r, axis=0)
    expected = np.divide(r, norm, out=np.zeros_like(r), where=norm > 0)
    np.testing.assert_allclose(centered_ranks(x), expected, atol=1e-12)


def test_prepared_features_are_ranked_once_while_they_live(monkeypatch):
    import gc

    from seedprints import stats

    spec = ProbeSpec(kind="token", n_samples=40, seq_len=4, vocab_range=100)
    rng = np.random.default_rng(9)
    facts = ModelFacts("toy", "LlamaForCausalLM", "llama", 16, 100, 1, "s")
    fp = Fingerprint.from_features(spec, rng.standard_normal((40, 16)).astype(np.float32), facts)
    first = stats.prepare(fp)
    assert stats.prepare(fp) is first and stats.prepare(first) is first
    np.testing.assert_array_equal(first.ranks, centered_ranks(fp.features.astype(np.float64)))
    other = Fingerprint.from_features(spec, rng.standard_normal((40, 16)).astype(np.float32), facts)
    monkeypatch.setattr(stats, "RANK_CACHE_BYTES", 16 * 40 * 16)  # room for one
    stats.prepare(other)
    again = stats.prepare(fp)
    assert again is not first and again.source is fp  # evicted, least recently used first
    key = id(fp)
    assert key in stats._PREPARED
    del fp, first, again, other
    gc.collect()
    assert key not in stats._PREPARED  # the cache does not keep a fingerprint alive, and forgets it when it goes


def test_a_scan_records_the_null_it_used():
    from seedprints.verdict import scan

    spec = ProbeSpec(kind="token", n_samples=60, seq_len=4, vocab_range=100)
    rng = np.random.default_rng(10)
    a, b = toy_pair(rng, n=60, d=520, related=True)
    _, c = toy_pair(rng, n=60, d=520)
    facts = ModelFacts("toy", "LlamaForCausalLM", "llama", 520, 100, 1, "s")
    fp = lambda x, name: Fingerprint.from_features(spec, x.astype(np.float32), dataclasses.replace(facts, name=name))  # noqa: E731
    rep = scan(fp(b, "suspect"), [fp(a, "parent"), fp(c, "other")], basis_check=False)
    assert rep.verdict.label == "MATCH" and rep.rows[0].reference.name == "parent"
    assert rep.test["repairing"] == "cyclic" and rep.test["n_permutations"] == 519


@pytest.mark.parametrize("k", [5, 40, 200])
def test_the_two_routes_of_the_cyclic_null_agree(k, monkeypatch):
    """Few identity dimensions take the [k, D] product, many the FFT; both give the same statistics."""
    from seedprints import stats

    rng = np.random.default_rng(11)
    a, b = toy_pair(rng, n=50, d=256)
    monkeypatch.setattr(stats, "_FFT_MIN_K", 10_000)
    by_product = calibrated_test(a, b, k=k, repairing="cyclic")
    monkeypatch.setattr(stats, "_FFT_MIN_K", 1)
    by_fft = calibrated_test(a, b, k=k, repairing="cyclic")
    np.testing.assert_allclose(by_product.details["null_statistics"], by_fft.details["null_statistics"], atol=1e-12)
    np.testing.assert_allclose(by_product.details["null_dim_sample"], by_fft.details["null_dim_sample"], atol=1e-12)
    assert by_product.pvalue == by_fft.pvalue
