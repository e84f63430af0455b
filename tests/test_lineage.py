"""Integration: tiny real llama models built from seeds, fingerprinted and tested end to end."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from seedprints import FingerprintCache, compare, fingerprint_model, scan
from seedprints.derive import fine_tune, int8_dynamic, weight_noise
from seedprints.loading import load_model

from helpers import TINY_VOCAB, tiny_llama, tiny_spec

SEEDS = [0, 1, 2, 3]
ALPHA = 0.01


@pytest.fixture(scope="module")
def parents():
    return {s: tiny_llama(s) for s in SEEDS}


@pytest.fixture(scope="module")
def parent_fps(parents):
    spec = tiny_spec()
    return {s: fingerprint_model(m, spec, name=f"seed{s}") for s, m in parents.items()}


def test_self_and_reloaded_copy_match(parents, parent_fps, tmp_path):
    fp = parent_fps[0]
    same = compare(fp, fp)
    assert same.significant(ALPHA) and same.log10_pvalue < -10
    parents[0].save_pretrained(tmp_path / "copy")
    reloaded = fingerprint_model(load_model(tmp_path / "copy", device="cpu"), fp.spec)
    np.testing.assert_allclose(reloaded.features, fp.features, atol=1e-5)
    r = compare(fp, reloaded)
    assert r.log10_pvalue < -10
    rep = scan(reloaded, [parent_fps[s] for s in SEEDS])
    assert rep.verdict.label == "MATCH" and rep.verdict.reference == "seed0"


def test_different_seeds_are_never_significant(parent_fps):
    for a, b in itertools.combinations(SEEDS, 2):
        for ref, sus in ((a, b), (b, a)):
            r = compare(parent_fps[ref], parent_fps[sus])
            assert not r.significant(ALPHA), (ref, sus, r.z, r.log10_pvalue)
            assert np.isfinite(r.z) and 0.0 <= r.pvalue <= 1.0


@pytest.mark.parametrize("derive", [pytest.param(fine_tune, marks=pytest.mark.slow),  # 50 fine-tuning steps: 50 s
                                    int8_dynamic, weight_noise], ids=["finetune50", "int8", "noise1pct"])
def test_derivatives_match_parent_and_no_other_seed(derive, parents, parent_fps):
    child = derive(parents[2])
    fp = fingerprint_model(child, parent_fps[2].spec, name=f"{derive.__name__}(seed2)")
    for s in SEEDS:
        r = compare(parent_fps[s], fp)
        if s == 2:
            assert r.significant(ALPHA) and r.log10_pvalue < -10, r
        else:
            assert not r.significant(ALPHA), (s, r.z)
    rep = scan(fp, [(type("I", (), {"name": f"seed{s}", "family": "tiny", "seed": s})(), parent_fps[s]) for s in SEEDS])
    assert rep.verdict.label == "MATCH" and rep.verdict.seed == 2


def test_fingerprint_is_deterministic_and_cached(saved_model):
    path = saved_model(5)
    cache = FingerprintCache(tmp := __import__("pathlib").Path(path).parent / "cache")
    spec = tiny_spec(n=120)
    calls = []
    fp1 = fingerprint_model(path, spec, cache=cache, device="cpu", progress=lambda stage, d, t: calls.append(d))
    assert cache.misses == 1 and cache.hits == 0 and calls[-1] == 120 and len(calls) > 1
    fp_nocache = fingerprint_model(path, spec, device="cpu")
    assert np.array_equal(fp1.features, fp_nocache.features)  # same checkpoint twice on CPU: identical
    fp2 = fingerprint_model(path, spec, cache=cache, device="cpu")
    assert cache.hits == 1 and cache.misses == 1  # second audit skipped loading and extraction
    assert np.array_equal(fp1.features, fp2.features)
    assert len(list(tmp.glob("*.safetensors"))) == 1
    # a different probe is a different cache entry
    fingerprint_model(path, tiny_spec(n=120, seed=1), cache=cache, device="cpu")
    assert cache.misses == 2


def test_probe_inputs_do_not_depend_on_batch_size():
    spec = tiny_spec(n=37)
    a = np.concatenate([b for _, b in spec.batches(5)])
    b = np.concatenate([b for _, b in spec.batches(37)])
    assert np.array_equal(a, b) and a.shape == (37, 16) and a.max() < TINY_VOCAB
    model = tiny_llama(9)
    f1 = fingerprint_model(model, spec, batch_size=5).features
    f2 = fingerprint_model(model, spec, batch_size=37).features
    np.testing.assert_allclose(f1, f2, atol=1e-5)


def test_cancel_stops_between_batches():
    import threading

    from seedprints.errors import Cancelled

    cancel = threading.Event()
    seen = []

    def progress(stage, done, total):
        seen.append(done)
        if done >= 20:
            cancel.set()

    with pytest.raises(Cancelled):
        fingerprint_model(tiny_llama(0), tiny_spec(n=100), batch_size=10, progress=progress, cancel=cancel)
    assert max(seen) == 20
