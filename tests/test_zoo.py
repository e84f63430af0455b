"""The seed zoo: deterministic builds, lineage decisions on real trained models, and the accuracy benchmark.

Builds the MINI zoo (3 llama seeds: init, pretrain, ft, int8) once per module into a temporary
folder.  Torch runs single-threaded inside this module: with another job on the same cores,
oversubscribed threads slow these small models down more than tenfold (weights are unchanged).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import math
import sys
from pathlib import Path

import numpy as np
import pytest

from seedprints.audit import fingerprint_model
from seedprints.cache import FingerprintCache
from seedprints.probes import ProbeSpec
from seedprints.similarity import map_models, map_separation, pairwise_evidence
from seedprints.stats import calibrated_test
from seedprints.verdict import RefInfo, scan
from seedprints.zoo import MINI, build_zoo

ROOT = Path(__file__).resolve().parents[1]


def _load_bench():
    spec = importlib.util.spec_from_file_location("bench_accuracy", ROOT / "bench" / "accuracy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_accuracy"] = module
    spec.loader.exec_module(module)
    return module


accuracy = _load_bench()


@pytest.fixture(scope="module")
def zoo(tmp_path_factory, single_thread):
    return build_zoo(MINI, root=tmp_path_factory.mktemp("zoo-a"))


@pytest.fixture(scope="module")
def fps(zoo, tmp_path_factory):
    """Token-probe fingerprints (N=300, L=16) of every seed's pretrain, ft and int8."""
    spec = ProbeSpec(kind="token", n_samples=300, seq_len=16, vocab_range=MINI.vocab)
    cache = FingerprintCache(tmp_path_factory.mktemp("fp-cache"))
    wanted = [(s, stage) for s in MINI.seeds for stage in ("pretrain", "ft", "int8")]
    return {(seed, stage): fingerprint_model(zoo.get("llama", seed, stage).path, spec, cache=cache, device="cpu",
                                             name=f"llama/seed{seed}/{stage}")
            for seed, stage in wanted}


# ---------------------------------------------------------------------------- the zoo itself
def test_zoo_layout_and_manifest(zoo):
    assert [m.key for m in zoo.models if m.seed == 0] == ["llama/seed0/init", "llama/seed0/pretrain",
                                                           "llama/seed0/ft", "llama/seed0/int8"]
    assert len(zoo.models) == 12 and all((m.path / "config.json").is_file() for m in zoo.models)
    units = zoo.manifest["units"]
    assert set(units) == {"llama/seed0", "llama/seed1", "llama/seed2"}
    for unit in units.values():
        assert set(unit["hashes"]) == {"init", "pretrain", "ft", "int8"}
        val = unit["curves"]["pretrain"]["val"]
        assert all(math.isfinite(v) for v in val) and val[-1] < val[0] - 1.0  # pretraining learned something
    hashes = [h for unit in units.values() for h in unit["hashes"].values()]
    assert len(set(hashes)) == len(hashes)  # every checkpoint is distinct
    assert zoo.get("llama", 1, "ft").same_lineage(zoo.get("llama", 1, "init"))
    assert not zoo.get("llama", 1, "ft").same_lineage(zoo.get("llama", 2, "ft"))


@pytest.mark.slow  # a second zoo build: 32 s on a busy 2-core machine
def test_build_is_deterministic_and_reused(zoo, tmp_path_factory):
    # a second, independent build of the data and of seed 1 (a unit does not depend on the other seeds)
    other = build_zoo(dataclasses.replace(MINI, seeds=(1,)), root=tmp_path_factory.mktemp("zoo-b"))
    assert other.manifest["corpora"] == zoo.manifest["corpora"]  # texts, tokenizer, token counts
    assert other.manifest["units"]["llama/seed1"]["hashes"] == zoo.manifest["units"]["llama/seed1"]["hashes"]
    assert other.manifest["units"]["llama/seed1"]["curves"] == zoo.manifest["units"]["llama/seed1"]["curves"]
    # building again into the same folder reuses every unit (nothing is rebuilt: the files are untouched)
    stamps = {p: p.stat().st_mtime_ns for p in zoo.root.rglob("*.safetensors")}
    again = build_zoo(MINI, root=zoo.root)
    assert again.manifest["units"] == zoo.manifest["units"]
    assert {p: p.stat().st_mtime_ns for p in zoo.root.rglob("*.safetensors")} == stamps


# ---------------------------------------------------------------------------- decisions on zoo models
@pytest.mark.parametrize("stage", ["ft", "int8"])
def test_calibrated_detects_derivatives(fps, stage):
    res = calibrated_test(fps[(1, "pretrain")], fps[(1, stage)])
    assert res.pvalue < 0.01, (stage, res.z)


@pytest.mark.parametrize("ref_seed,sus_seed", [(0, 1), (1, 0), (0, 2), (2, 0)])
def test_calibrated_unrelated_pretrains(fps, ref_seed, sus_seed):
    res = calibrated_test(fps[(ref_seed, "pretrain")], fps[(sus_seed, "pretrain")])
    assert not res.inconclusive
    assert res.pvalue >= 0.01, (ref_seed, sus_seed, res.z)


def test_scan_identifies_seed(fps):
    library = [(RefInfo(f"llama/seed{s}/pretrain", "llama", s), fps[(s, "pretrain")]) for s in MINI.seeds]
    report = scan(fps[(1, "ft")], library, test="calibrated")
    assert report.verdict.label == "MATCH"
    assert report.verdict.seed == 1 and report.verdict.family == "llama"
    open_set = scan(fps[(1, "ft")], [x for x in library if x[0].seed != 1], test="calibrated")
    assert open_set.verdict.label == "NO MATCH"


def test_map_of_the_mini_zoo_keeps_seed_families_apart(fps):
    """Pretrained models of every seed plus their derivatives: each family stands apart on the map."""
    items = [(f"seed{s}/{stage}", f"llama seed {s}", fp) for (s, stage), fp in sorted(fps.items())]
    matrix = pairwise_evidence(items)
    emb = map_models(matrix)
    again = map_models(pairwise_evidence(items))
    assert np.array_equal(emb.coords, again.coords)  # deterministic
    sep = map_separation(emb.coords, matrix.significant())
    assert np.nanmedian(sep) >= 2, sep
    dist = np.sqrt(((emb.coords[:, None] - emb.coords[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    seeds = [name.split("/")[0] for name, _, _ in items]
    assert all(seeds[int(np.argmin(dist[i]))] == seeds[i] for i in range(len(items)))
    assert len(emb.links) == 3 * 3  # three related pairs per seed


# ---------------------------------------------------------------------------- the accuracy benchmark
def test_cluster_fpr_counts_clusters_and_bootstraps_them():
    def neg(ref, sus, sig):
        return {"positive": False, "reference": ref, "suspect": sus, "significant": sig}

    recs = [neg("a/seed0/init", f"a/seed1/{s}", True) for s in ("ft", "int8", "int4")]  # one cluster, all positive
    recs += [neg("a/seed0/init", f"a/seed2/{s}", False) for s in ("ft", "int8", "int4")]
    recs += [neg("a/seed1/init", "a/seed2/ft", False), {"positive": True, "reference": "x", "suspect": "y/z",
                                                          "significant": True}]
    c = accuracy.cluster_fpr(recs, n_boot=4000)
    assert (c["x"], c["n"], c["clusters"], c["clusters_with_fp"]) == (3, 7, 3, 1)
    assert c["rate"] == pytest.approx(3 / 7)
    # by hand: a resample holds the positive cluster j times out of 3 (weights (3, 3, 1) pairs): rate 0 with
    # probability (2/3)^3, so the lower 2.5% point is 0, and the upper one is 1 (all three draws it: 1/27 > 2.5%)
    assert c["ci95"] == [0.0, 1.0]
    uniform = accuracy.cluster_fpr([neg("r", f"s{i}/m", i % 2 == 0) for i in range(200)])
    assert uniform["clusters"] == 200 and 0.4 < uniform["ci95"][0] < 0.5 < uniform["ci95"][1] < 0.6


def test_metric_helpers():
    rng = np.random.default_rng(0)
    pos, neg = rng.normal(1, 1, 40), np.concatenate([rng.normal(0, 1, 57), [0.5, 0.5]])
    pos[:3] = 0.5  # ties count one half
    brute = np.mean([(p > q) + 0.5 * (p == q) for p in pos for q in neg])
    assert accuracy.auc_mann_whitney(pos, neg) == pytest.approx(brute)
    assert accuracy.auc_mann_whitney(np.array([np.inf, 3.0]), np.array([0.0, 1.0])) == 1.0
    neg = np.arange(200, dtype=float)  # threshold: the 198th smallest (197.0); 2 negatives above it
    tpr, thr, realised = accuracy.tpr_at_fpr(np.array([197.0, 198.5, 300.0, 1.0]), neg, 0.01)
    assert (tpr, thr, realised) == (0.5, 197.0, 0.01)
    lo, hi = accuracy.clopper_pearson(0, 48)
    assert lo == 0.0 and hi == pytest.approx(1 - 0.025 ** (1 / 48))
    lo, hi = accuracy.clopper_pearson(5, 10)
    assert lo == pytest.approx(0.187086, abs=1e-5) and hi == pytest.approx(0.812914, abs=1e-5)


def test_labelled_pairs(zoo):
    pairs = accuracy.labelled_pairs(zoo)
    pos = [p for p in pairs if p.positive]
    neg = [p for p in pairs if not p.positive]
    assert len(pos) == 9 and sorted({p.kind for p in pos}) == ["ft", "init", "int8"]
    assert all(p.reference.stage == "pretrain" and p.reference.seed == p.suspect.seed for p in pos)
    # references: init and pretrain of 3 seeds; suspects: the 8 models of the 2 other seeds
    assert len(neg) == 6 * 8 and all(p.reference.seed != p.suspect.seed for p in neg)
    counts = {c: sum(p.kind == c for p in neg) for c in {p.kind for p in neg}}
    assert counts == {"init-init": 6, "pretrain-pretrain": 6, "init-vs-other-pretrain": 6,
                      "pretrain-vs-other-init": 6, "derivative-vs-other-pretrain": 12, "derivative-vs-other-init": 12}


@pytest.mark.slow  # 44 s on a busy 2-core machine
def test_accuracy_evaluate_quick(zoo, tmp_path):
    report = accuracy.evaluate(zoo, {"quick": (200, 16, "last")}, cache_dir=tmp_path / "fp", evasions=False)
    rows = {(r["test"], r["probe"]): r for r in report["results"]}
    assert set(rows) == {(t, p) for t in accuracy.TESTS for p in accuracy.PROBE_KINDS}
    for r in rows.values():
        assert r["n_pos"] == 6 and r["n_neg"] == 48 and len(r["pairs"]) == 57
        assert math.isfinite(r["auc"]) and 0.0 <= r["auc"] <= 1.0
        assert math.isfinite(r["tpr_at_1pct_fpr"])
        lo, hi = r["fpr_at_alpha"]["ci95"]
        assert 0.0 <= lo <= r["fpr_at_alpha"]["rate"] <= hi <= 1.0
        assert r["tokens_per_decision"] == 200 * 16 and r["seconds_per_decision"] > 0
        assert r["seed_id"]["top1"]["n"] == 6 and r["seed_id"]["open_set_no_match"]["n"] == 6
        assert set(r["detection"]) == {"init", "ft", "int8"}
    ext = report["extraction"]["token/quick"]
    assert ext["models"] == 12 and ext["tokens_total"] == 12 * 200 * 16 and ext["from_cache"] == 0
    md = accuracy.markdown(report)
    assert "| calibrated | embedding | quick" in md and "open-set NO MATCH" in md
    # a rerun is served from the cache and still reports the extraction cost
    again = accuracy.evaluate(zoo, {"quick": (200, 16, "last"), "fast": (50, 4, "all")}, cache_dir=tmp_path / "fp",
                              tests=("calibrated",), probes=("token",))
    ext2 = again["extraction"]["token/quick"]
    assert ext2["from_cache"] == 12 and ext2["extract_seconds_total"] == pytest.approx(ext["extract_seconds_total"],
                                                                                        abs=1e-3)
    first = {(r["reference"], r["suspect"]): r["z"] for r in rows[("calibrated", "token")]["pairs"]}
    assert {(r["reference"], r["suspect"]): r["z"] for r in again["results"][0]["pairs"]
            if (r["reference"], r["suspect"]) in first} == first
    # quick feeds every one of the 512 token ids, so no anchor rows are left and the basis check cannot run
    assert again["results"][0]["detection"]["rotated"]["x"] == 0
    # an every-position budget: the calibrated test reads N x L rows and every dimension
    fast = again["results"][1]
    # with the evasion kinds (5 per seed, made in memory): 3 x 6 more positives, 6 references x 10 more negatives
    assert fast["budget"] == "fast" and fast["positions"] == "all" and len(fast["pairs"]) == 57 + 18 + 60
    assert fast["detection"]["int8"]["x"] == 3
    for kind in accuracy.EVASIONS:  # the basis check brings every permuted or rotated copy back
        assert fast["detection"][kind]["x"] == 3, kind
    assert fast["negative_classes"]["evasion-vs-other-pretrain"]["n"] == 30
    assert "fast (N=50, L=4, every position)" in accuracy.markdown(again)
