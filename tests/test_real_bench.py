"""bench/real.py end to end on tiny models: prefix extraction with per-model caps, scoring, fast candidate, report."""

from __future__ import annotations

import json

import pytest

from seedprints.derive import magnitude_prune, quantize_weights, weight_noise
from seedprints.loading import wrap_model

from helpers import TINY_VOCAB, load_bench, tiny_llama


@pytest.fixture(scope="module")
def real():
    return load_bench("real")


@pytest.fixture
def small_grid(real, monkeypatch):
    for name, value in {"N_GRID": (50, 100, 200), "L_GRID": (4, 8), "MAX_N": {4: 200, 8: 100}, "N_INITS": 3,
                        "NEGATIVE_TOKENS": 400, "LARGE_BUDGET_INITS": 1, "VOCAB_RANGE": TINY_VOCAB,
                        "ALL_ROWS": 400}.items():
        monkeypatch.setattr(real, name, value)
    return real


def tiny_family() -> dict[str, object]:
    ref = tiny_llama(0)
    return {"reference": ref, "gguf": ref, "ft": weight_noise(ref, rel=0.05), "ft-heavy": weight_noise(ref, rel=0.2),
            "lora": weight_noise(ref, rel=0.02), "int8": quantize_weights(ref, bits=8),
            "int4": quantize_weights(ref, bits=4, group_size=64), "prune30": magnitude_prune(ref, 0.3),
            **{f"init-{s}": tiny_llama(100 + s) for s in range(3)}}


def test_caps_prefixes_scoring_and_report(small_grid, tmp_path):
    real = small_grid
    assert real.needed_n("reference", 4) == 200 and real.needed_n("init-0", 4) == 200
    assert real.needed_n("init-1", 4) == 100 and real.needed_n("init-2", 8) == 50  # N x L <= 400
    # every position up to N x L <= 400 rows: one run covers both read-outs where the N agree
    assert real.needed_all("reference", 4) == 100 and real.needed_all("reference", 8) == 50
    assert real.needed_all("init-1", 4) == 100 and real.needed_all("init-2", 8) == 50
    features = real.Features(tmp_path / "features")
    loads: list[str] = []
    for name, model in tiny_family().items():
        features.extract(name, lambda name=name, model=model: loads.append(name) or wrap_model(model, name))
    features.extract("reference", lambda: pytest.fail("cached features must not be extracted again"))
    assert len(loads) == 11
    # a prefix is exactly the smaller probe's features, for either read-out
    model = wrap_model(tiny_llama(0), "r")
    small = real.fingerprint_at(features, "reference", 50, 4)
    assert small.spec == real.spec_for(50, 4) and (small.features == real.extract_features(model, small.spec)).all()
    small_all = real.fingerprint_at(features, "reference", 50, 4, "all")
    assert small_all.spec.positions == "all" and small_all.n == 200
    assert (small_all.features == real.extract_features(model, small_all.spec)).all()
    # the last position taken from an every-position run (init-1 at L=4: N = 100 both ways)
    init1 = real.fingerprint_at(features, "init-1", 100, 4)
    assert features.get("init-1", 4)[1]["derived_from"] == "all positions"
    assert (init1.features == real.extract_features(wrap_model(tiny_llama(101), "i"), init1.spec)).all()
    assert real.negative_budget(features) == real.NEGATIVE_TOKENS_RANGE[0]  # 2 x 200 tokens (N=50, L=4), raised to the floor
    rows = real.score_grid(features)
    assert [(r["n_samples"], r["seq_len"]) for r in rows] == [(50, 4), (100, 4), (200, 4), (50, 8), (100, 8)]
    by = {(r["n_samples"], r["seq_len"]): r for r in rows}
    assert by[(100, 4)]["n_inits"] == 3 and by[(200, 4)]["n_inits"] == 1 and by[(100, 8)]["n_inits"] == 1
    assert by[(100, 4)]["negatives"]["calibrated"]["all"]["n"] == 3 * 2 + 3 * 2  # ref <-> init, init -> init
    for r in rows:
        assert r["derivatives"]["gguf"]["calibrated"]["z"] > 10  # identical weights
        assert set(r["negatives"]) == {"calibrated", "paper"}
    # every position where N x L <= 400, with the inits that have it
    assert [(r["n_samples"], r["seq_len"]) for r in rows if "every_position" in r] == [(50, 4), (100, 4), (50, 8)]
    ep = by[(100, 4)]["every_position"]
    assert ep["rows"] == 400 and ep["n_inits"] == 3 and ep["negatives"]["all"]["n"] == 12
    assert ep["derivatives"]["gguf"]["z"] > by[(100, 4)]["derivatives"]["gguf"]["calibrated"]["z"]
    fast = real.fast_candidate(rows, "last")
    assert fast is not None and fast["tokens"] == 200  # the smallest cell with all inits
    fast = real.fast_candidate(rows)
    assert fast is not None and fast["statistic"] == "every_position" and fast["tokens"] == 200
    builds = {m: {"seconds": 1.0} for m in real.MODELS}
    builds["ft"]["text"] = {"source": "stdlib docstrings", "chars": 100, "tokens": 30, "sha256": "0" * 64}
    report = real.build_report(features, builds,
                               {"package": real.PACKAGE, "file": real.GGUF_NAME, "sha256": real.GGUF_SHA256,
                                "hidden_size": 128, "layers": 2, "vocab_size": TINY_VOCAB}, rows, 1.9e11, 0.5, 1.0)
    json.dumps(report)
    md = real.markdown(report)
    assert "| N | L | tokens |" in md and "Fast candidate" in md and "| quick | 600 | 32 |" in md


def test_fast_candidate_needs_every_init_and_strong_derivatives(real):
    def row(n, seq, z, fp, n_inits=real.N_INITS):
        return {"n_samples": n, "seq_len": seq, "tokens": n * seq, "n_inits": n_inits,
                "derivatives": {"a": {"calibrated": {"z": z}}, "b": {"calibrated": {"z": 50.0}}},
                "negatives": {"calibrated": {"all": {"n": 100, "false_positives": fp, "fpr": fp / 100, "max_z": 2.0}}}}

    rows = [row(50, 4, 9.9, 0), row(100, 4, 12.0, 2), row(50, 8, 11.0, 1), row(400, 4, 30.0, 0, n_inits=2)]
    assert real.fast_candidate(rows, "last")["tokens"] == 400 and real.fast_candidate(rows, "last")["seq_len"] == 8
    assert real.fast_candidate(rows[:2], "last") is None
    assert real.fast_candidate(rows) is None  # no row has every-position scores
    rows[0]["every_position"] = {"rows": 200, "n_inits": real.N_INITS, "derivatives": {"a": {"z": 40.0}},
                                 "negatives": rows[0]["negatives"]["calibrated"]}
    assert real.fast_candidate(rows)["tokens"] == 200 and real.fast_candidate(rows)["min_derivative_z"] == 40.0


def test_text_is_deterministic_and_independent_of_other_imports(real):
    a = real.stdlib_text(("json", "textwrap"))
    assert len(a) > 1000 and a == real.stdlib_text(("json", "textwrap"))
