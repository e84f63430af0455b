"""Every-position fingerprints: probe identity, extraction layout, file format, and the calibrated test over all D."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import stats as sps

import seedprints.stats as stats_mod
from seedprints.audit import compare
from seedprints.derive import weight_noise
from seedprints.errors import FingerprintFileError, ProbeError
from seedprints.extract import extract_features
from seedprints.fingerprint import FORMAT_VERSION_ALL_POSITIONS, Fingerprint, fingerprint_from_bytes, load_fingerprint
from seedprints.loading import wrap_model
from seedprints.probes import MAX_ALL_POSITION_ROWS, PRESETS, ProbeSpec
from seedprints.stats import SuspectRanks, calibrated_test, repairing_draws, seedprints_test
from seedprints.verdict import scan

from helpers import TINY_VOCAB, tiny_llama

ALL = ProbeSpec(n_samples=30, seq_len=6, vocab_range=TINY_VOCAB, positions="all")
LAST = ALL.replace(positions="last")


@pytest.fixture(scope="module")
def models():
    return {s: wrap_model(tiny_llama(s, hidden=64), f"m{s}") for s in (0, 1)}


def fingerprint(loaded, spec):
    return Fingerprint.from_features(spec, extract_features(loaded, spec), loaded.facts)


def test_positions_leave_existing_probe_ids_alone_and_change_the_id_when_all():
    plain = ProbeSpec(n_samples=600, seq_len=32, vocab_range=32000)
    assert "positions" not in plain.to_dict() and plain.replace(positions="last").id == plain.id
    assert ALL.id != LAST.id and ALL.to_dict()["positions"] == "all"
    assert ProbeSpec.from_dict(ALL.to_dict()) == ALL and ProbeSpec.from_dict(LAST.to_dict()) == LAST
    assert ALL.n_rows == 180 and LAST.n_rows == 30 and "every position" in ALL.describe()
    assert PRESETS["fast"].positions == "all" and PRESETS["quick"].positions == "last"


@pytest.mark.parametrize("fields, message", [
    ({"positions": "middle"}, "unknown probe positions"),
    ({"positions": "all", "n_samples": MAX_ALL_POSITION_ROWS, "seq_len": 2}, "lower n_samples or seq_len"),
    ({"positions": "all", "kind": "embedding", "vocab_range": None, "hidden_size": 8, "embed_mean": 0.0,
      "embed_std": 1.0}, "need a token probe"),
])
def test_bad_positions_are_one_line_errors(fields, message):
    with pytest.raises(ProbeError, match=message) as err:
        ProbeSpec(**{"n_samples": 10, "seq_len": 4, "vocab_range": TINY_VOCAB, **fields})
    assert "\n" not in str(err.value)


def test_rows_are_sample_major_and_hold_the_last_position_features(models):
    loaded = models[0]
    rows = extract_features(loaded, ALL, batch_size=7)  # batches that do not divide N
    last = extract_features(loaded, LAST, batch_size=7)
    assert rows.shape == (180, 64)
    np.testing.assert_array_equal(rows[5::6], last)
    with torch.inference_mode():  # row i * L + t is sample i at position t
        ids = torch.from_numpy(np.stack([ALL.sample(i) for i in (0, 17)]))
        hidden = loaded.model.base_model(input_ids=ids, use_cache=False).last_hidden_state.numpy()
    np.testing.assert_allclose(rows[0:6], hidden[0], atol=1e-5)
    np.testing.assert_allclose(rows[17 * 6:18 * 6], hidden[1], atol=1e-5)


def test_file_is_version_2_keeps_every_column_and_old_readers_views_agree(models, tmp_path):
    fp = fingerprint(models[0], ALL)
    assert fp.compact(0.2) is fp  # the every-position test reads all D
    path = fp.save(tmp_path / "a.safetensors")
    back = load_fingerprint(path)
    assert back.every_position and back.n == 180 and back.content_hash == fp.content_hash
    assert back.metadata()["format_version"] == FORMAT_VERSION_ALL_POSITIONS
    assert fingerprint(models[0], LAST).metadata()["format_version"] == 1  # last-position files are unchanged
    last = fp.last_positions()
    ref_last = fingerprint(models[0], LAST)
    assert last.spec == LAST and last.spec.id == ref_last.spec.id
    np.testing.assert_array_equal(last.features, ref_last.features)
    np.testing.assert_array_equal(fp.column_means, ref_last.column_means)  # identity dims of the last position


def test_a_file_claiming_every_position_with_last_position_rows_is_refused(models):
    from safetensors.numpy import save

    import json

    from seedprints.fingerprint import content_hash

    fp = fingerprint(models[0], LAST)
    meta = fp.metadata()
    meta["format_version"] = FORMAT_VERSION_ALL_POSITIONS  # header says v2, probe says last position
    tensors = fp.tensors()
    meta["content_sha256"] = content_hash(meta, tensors)
    data = save(tensors, metadata={"seedprints": json.dumps(meta, sort_keys=True)})
    with pytest.raises(FingerprintFileError, match="inconsistent"):
        fingerprint_from_bytes(data)


def test_calibrated_test_uses_every_row_and_every_dimension_by_hand(models):
    a, b = fingerprint(models[0], ALL), fingerprint(models[1], ALL)
    r_perm = 150
    res = calibrated_test(a, b, n_permutations=r_perm, seed=4)
    fa, fb = a.features.astype(np.float64), b.features.astype(np.float64)
    d = fa.shape[1]
    rho = np.array([[sps.spearmanr(fa[:, i], fb[:, j]).statistic for j in range(d)] for i in range(d)])
    stat = float(np.mean(np.diag(rho)))
    draws = repairing_draws(d, d, r_perm, 4)
    null = rho[np.arange(d)[None, :], draws].mean(axis=1)
    assert res.k == d and res.n == 180 and res.details["rows"] == "every position"
    assert res.statistic == pytest.approx(stat, abs=1e-9)
    assert res.z == pytest.approx((stat - null.mean()) / null.std(ddof=1), abs=1e-6)
    assert res.details["monte_carlo_p"] == pytest.approx((1 + (null >= stat).sum()) / (r_perm + 1))
    # prepared ranks on either side, and small blocks, give the same numbers (to rounding)
    prepared = calibrated_test(SuspectRanks(a), SuspectRanks(b), n_permutations=r_perm, seed=4)
    assert prepared.z == pytest.approx(res.z, rel=1e-12) and prepared.log10_pvalue == pytest.approx(res.log10_pvalue, rel=1e-12)


def test_blocks_do_not_change_the_result(models, monkeypatch):
    a, b = fingerprint(models[0], ALL), fingerprint(models[1], ALL)
    whole = calibrated_test(a, b, n_permutations=300)
    monkeypatch.setattr(stats_mod, "_BLOCK", 7)
    blocked = calibrated_test(a, b, n_permutations=300)
    assert blocked.statistic == pytest.approx(whole.statistic, abs=1e-12)
    assert blocked.z == pytest.approx(whole.z, abs=1e-9)
    np.testing.assert_allclose(blocked.details["null_dim_sample"], whole.details["null_dim_sample"], atol=1e-12)


def test_paper_test_reads_the_last_position_and_k_can_be_chosen(models):
    a, b = fingerprint(models[0], ALL), fingerprint(models[1], ALL)
    la, lb = a.last_positions(), b.last_positions()
    assert seedprints_test(a, b).log10_pvalue == seedprints_test(la, lb).log10_pvalue
    assert compare(a, b, test="paper").z == compare(la, lb, test="paper").z
    assert calibrated_test(a, b, k=0.1).k == 6  # an explicit k still picks the lowest-mean dims


def test_unrelated_inits_hold_the_level_and_a_noisy_copy_is_found():
    """40 independent inits against one reference: re-pairing p-values at every position stay calibrated."""
    ref = fingerprint(wrap_model(tiny_llama(1000, hidden=64), "ref"), ALL)
    ps = [calibrated_test(ref, fingerprint(wrap_model(tiny_llama(2000 + s, hidden=64), "x"), ALL),
                          n_permutations=400).pvalue for s in range(40)]
    assert sum(p < 0.05 for p in ps) <= 6, ps  # expected 2; P(X >= 7 | 40, 0.05) < 0.5%
    assert sps.kstest(ps, "uniform").pvalue > 0.001
    copy = wrap_model(weight_noise(tiny_llama(1000, hidden=64), rel=0.3), "copy")
    res = calibrated_test(ref, fingerprint(copy, ALL))
    assert res.significant(0.01) and res.z > 10


def test_scan_and_compare_refuse_mixing_read_outs(models):
    a_all, b_last = fingerprint(models[0], ALL), fingerprint(models[1], LAST)
    with pytest.raises(Exception, match="same probe"):
        compare(a_all, b_last)
    report = scan(a_all, [b_last, fingerprint(models[1], ALL)])
    assert len(report.rows) == 1 and len(report.skipped) == 1 and report.test["k"] == 1.0
