"""Accuracy benchmark on the seed zoo: AUC, TPR at 1% FPR, calibrated FPR, seed identification.

Run:  python bench/accuracy.py                         (full zoo, quick + standard budgets)
      python bench/accuracy.py --zoo mini --budgets quick
Writes bench/results/accuracy.json (or --out) and accuracy.md beside it, and prints the Markdown.

Ground truth comes from the zoo: two checkpoints share a lineage exactly when they share
(architecture, init seed).  Pairs are ordered (reference, suspect) and always of the same
architecture: models of different architectures cannot share an init, so cross-architecture
pairs are out of scope (the engine refuses different hidden sizes outright, and an
identical width across architectures is a coincidence of this zoo, not a shared lineage).

Positives: every derivative of a seed (and, as its own kind, that seed's ``init``) as the
suspect against the same seed's ``pretrain`` as the reference.  Negatives: every ordered
pair with different seeds where the reference is an ``init`` or ``pretrain`` model and the
suspect any model of the zoo.  Score = the test's z (higher = more related); decision =
p < alpha (0.01).

The computation is :func:`evaluate`, which tests call with small budgets.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import math
import os
import platform
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from scipy import stats as sps  # noqa: E402

from seedprints.audit import fingerprint_model  # noqa: E402
from seedprints.cache import FingerprintCache  # noqa: E402
from seedprints.fingerprint import Fingerprint  # noqa: E402
from seedprints.loading import load_model, resolve_source, source_weights_hash  # noqa: E402
from seedprints.probes import PRESETS, ProbeSpec  # noqa: E402
from seedprints import evasion  # noqa: E402
from seedprints.derive import quantize_weights  # noqa: E402
from seedprints.methods import get_test  # noqa: E402
from seedprints.stats import SeedPrintsResult, SuspectRanks, seedprints_test  # noqa: E402
from seedprints.verdict import RefInfo, scan  # noqa: E402
from seedprints.zoo import FULL, MINI, Zoo, ZooConfig, ZooModel, build_zoo  # noqa: E402

#: probe budgets: name -> (N samples, L tokens per sample, positions kept), from the presets the CLI offers
BUDGETS: dict[str, tuple[int, int, str]] = {name: (PRESETS[name].n_samples, PRESETS[name].seq_len,
                                                   PRESETS[name].positions)
                                       for name in ("fast", "quick", "standard")}
PROBE_KINDS = ("token", "embedding")
TESTS = ("paper-analytical", "paper-empirical", "calibrated")
ALPHA = 0.01
REFERENCE_STAGES = ("init", "pretrain")
#: tests run through verdict.scan for seed identification: (scan test name, extra keywords)
SCAN_ARGS: dict[str, tuple[str, dict[str, Any]]] = {
    "calibrated": ("calibrated", {}),
    "paper-analytical": ("paper", {}),
    "paper-empirical": ("paper", {"null": "simplified", "n_null": 20}),
}
Say = Callable[[str], None]


# ---------------------------------------------------------------------------- statistics helpers
def auc_mann_whitney(pos: np.ndarray, neg: np.ndarray) -> float:
    """Area under the ROC curve = P(score_pos > score_neg) + 0.5 P(tie), via midranks (Mann-Whitney U)."""
    pos = np.nan_to_num(np.asarray(pos, dtype=np.float64), nan=-np.inf)
    neg = np.nan_to_num(np.asarray(neg, dtype=np.float64), nan=-np.inf)
    if len(pos) == 0 or len(neg) == 0:
        return float("nan")
    ranks = sps.rankdata(np.concatenate([pos, neg]))  # midranks; +-inf rank like any other value
    u = ranks[:len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def tpr_at_fpr(pos: np.ndarray, neg: np.ndarray, fpr: float = 0.01) -> tuple[float, float, float]:
    """(TPR, threshold, realised FPR): threshold = the smallest negative score that is at least
    ceil((1 - fpr) n) negatives' scores, i.e. that exceeds (or ties) 99% of negatives; a pair is
    called positive when its score is strictly above it, so the realised FPR is <= fpr."""
    pos = np.asarray(pos, dtype=np.float64)
    neg = np.sort(np.asarray(neg, dtype=np.float64))
    if len(pos) == 0 or len(neg) == 0:
        return float("nan"), float("nan"), float("nan")
    m = max(1, math.ceil((1.0 - fpr) * len(neg) - 1e-9))
    thr = float(neg[m - 1])
    return float(np.mean(pos > thr)), thr, float(np.mean(neg > thr))


def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact binomial confidence interval for x successes out of n."""
    if n == 0:
        return float("nan"), float("nan")
    a = (1.0 - level) / 2.0
    lo = 0.0 if x == 0 else float(sps.beta.ppf(a, x, n - x + 1))
    hi = 1.0 if x == n else float(sps.beta.ppf(1.0 - a, x + 1, n - x))
    return lo, hi


def rate(x: int, n: int) -> dict[str, Any]:
    lo, hi = clopper_pearson(x, n)
    return {"x": int(x), "n": int(n), "rate": (x / n) if n else float("nan"), "ci95": [lo, hi]}


# ---------------------------------------------------------------------------- probes and fingerprints
def make_specs(zoo: Zoo, budgets: dict[str, tuple[int, int, str]], probes: tuple[str, ...] = PROBE_KINDS,
               device: str = "cpu") -> dict[tuple[str, str], ProbeSpec]:
    """One spec per (probe kind, budget).  Token probes draw from the zoo vocabulary; the embedding
    probe takes mean/std from the llama seed-0 init table and is shared by every architecture; it keeps
    the last position only (every-position fingerprints need token probes)."""
    cfg = zoo.config
    specs: dict[tuple[str, str], ProbeSpec] = {}
    emb_src = None
    if "embedding" in probes:
        arch = "llama" if "llama" in cfg.archs else cfg.archs[0]
        seed = 0 if 0 in cfg.seeds else cfg.seeds[0]
        emb_src = load_model(zoo.get(arch, seed, "init").path, device="cpu", dtype="float32").model
    for budget, (n, seq_len, positions) in budgets.items():
        for kind in probes:
            if kind == "token":
                specs[(kind, budget)] = ProbeSpec(kind="token", n_samples=n, seq_len=seq_len, vocab_range=cfg.vocab,
                                                  positions=positions)  # type: ignore[arg-type]
            elif kind == "embedding":
                specs[(kind, budget)] = ProbeSpec.embedding_for(emb_src, n, seq_len)
            else:
                raise ValueError(f"unknown probe kind {kind!r}")
    return specs


def fingerprint_zoo(zoo: Zoo, specs: dict[tuple[str, str], ProbeSpec], cache: FingerprintCache, device: str = "cpu",
                    say: Say | None = None) -> tuple[dict[tuple[str, str], dict[str, Fingerprint]], dict[str, Any]]:
    """Fingerprint every zoo model once per spec (cache first; a model is loaded once for all missing specs).

    Extraction seconds per (model, spec) are kept in a side file of the cache so that a rerun
    served from the cache still reports what extraction cost."""
    say = say or (lambda msg: None)
    times_path = cache.root / "extract_seconds.json"
    times: dict[str, float] = json.loads(times_path.read_text()) if times_path.is_file() else {}
    fps: dict[tuple[str, str], dict[str, Fingerprint]] = {combo: {} for combo in specs}
    per_model: dict[tuple[str, str], dict[str, dict[str, Any]]] = {combo: {} for combo in specs}
    for i, m in enumerate(zoo.models):
        whash = source_weights_hash(resolve_source(m.path))
        assert whash is not None
        missing = []
        for combo, spec in specs.items():
            hit = cache.get(whash, spec.id)
            if hit is None:
                missing.append(combo)
            else:
                fps[combo][m.key] = hit.with_name(m.key)
                per_model[combo][m.key] = {"seconds": times.get(f"{whash}|{spec.id}"), "from_cache": True}
        if not missing:
            continue
        say(f"fingerprinting {m.key} ({i + 1}/{len(zoo.models)}) for {len(missing)} probe(s)")
        t0 = time.perf_counter()
        loaded = load_model(m.path, device=device, dtype="float32", name=m.key)
        load_share = (time.perf_counter() - t0) / len(missing)
        for combo in missing:
            spec = specs[combo]
            t1 = time.perf_counter()
            fp = fingerprint_model(loaded, spec, cache=cache, name=m.key)
            secs = load_share + time.perf_counter() - t1
            fps[combo][m.key] = fp
            times[f"{whash}|{spec.id}"] = round(secs, 4)
            per_model[combo][m.key] = {"seconds": secs, "from_cache": False}
        del loaded
        times_path.parent.mkdir(parents=True, exist_ok=True)
        times_path.write_text(json.dumps(times, indent=0, sort_keys=True))
    stats: dict[str, Any] = {}
    for combo, spec in specs.items():
        secs = [v["seconds"] for v in per_model[combo].values() if v["seconds"] is not None]
        known = len(secs) == len(per_model[combo])
        stats[f"{combo[0]}/{combo[1]}"] = {
            "probe": spec.to_dict(), "probe_id": spec.id, "models": len(per_model[combo]),
            "tokens_per_model": spec.n_tokens, "tokens_total": spec.n_tokens * len(per_model[combo]),
            "extract_seconds_total": float(sum(secs)) if known else None,
            "extract_seconds_per_model": float(np.mean(secs)) if known and secs else None,
            "from_cache": int(sum(v["from_cache"] for v in per_model[combo].values())),
        }
    return fps, stats


# ---------------------------------------------------------------------------- evasion kinds
#: function-preserving re-parameterisations an adversary applies (seedprints.evasion), made in memory from a
#: stored stage of the same unit: name -> (source stage, change)
EVASIONS: dict[str, tuple[str, Callable[[Any, int], Any]]] = {
    "permuted": ("pretrain", lambda m, s: evasion.permute_hidden(m, s).model),
    "rotated": ("pretrain", lambda m, s: evasion.rotate_hidden(m, s).model),
    "partial-rotation": ("pretrain", lambda m, s: evasion.rotate_hidden(m, s, fraction=0.25).model),
    "ft-rotated": ("ft", lambda m, s: evasion.rotate_hidden(m, s).model),
    "rotated-int8": ("pretrain", lambda m, s: quantize_weights(evasion.rotate_hidden(m, s).model, bits=8)),
}


def evasion_models(zoo: Zoo) -> list[ZooModel]:
    """One model per (unit, evasion kind) whose source stage the zoo holds; its path is the source's."""
    out = []
    for arch in zoo.config.archs:
        for seed in zoo.config.seeds:
            for kind, (stage, _) in EVASIONS.items():
                if stage in ("init", "pretrain", *zoo.config.derivatives):
                    out.append(ZooModel(arch, seed, kind, zoo.get(arch, seed, stage).path))
    return out


def fingerprint_evasions(models: list[ZooModel], specs: dict[tuple[str, str], ProbeSpec],
                         fps: dict[tuple[str, str], dict[str, Fingerprint]], device: str = "cpu",
                         say: Say | None = None) -> None:
    """Make each evasion model in memory (its source loaded, the change applied) and fingerprint it for every spec."""
    for i, m in enumerate(models):
        if say and i % 10 == 0:
            say(f"evasion kinds: {i}/{len(models)}")
        source = load_model(m.path, device=device, dtype="float32", name=m.key).model
        changed = EVASIONS[m.stage][1](source, 1000 + m.seed)
        for combo, spec in specs.items():
            fps[combo][m.key] = fingerprint_model(changed, spec, name=m.key)
        del source, changed


# ---------------------------------------------------------------------------- labelled pairs
@dataclasses.dataclass(frozen=True)
class Pair:
    reference: ZooModel
    suspect: ZooModel
    positive: bool
    kind: str  # positives: suspect stage (init is its own kind); negatives: the negative class


def negative_class(ref: ZooModel, sus: ZooModel) -> str:
    if sus.stage in EVASIONS:
        return f"evasion-vs-other-{ref.stage}"
    if sus.stage in REFERENCE_STAGES:
        return f"{ref.stage}-{ref.stage}" if sus.stage == ref.stage else f"{sus.stage}-vs-other-{ref.stage}"
    return f"derivative-vs-other-{ref.stage}"


def labelled_pairs(zoo: Zoo, extra: list[ZooModel] | None = None) -> list[Pair]:
    """Positives (derivatives, evasion kinds and init vs own pretrain; init vs its own rotated pretrain) and
    negatives (different seed, same architecture)."""
    pairs: list[Pair] = []
    for arch in zoo.config.archs:
        models = [m for m in [*zoo.models, *(extra or [])] if m.arch == arch]
        for seed in zoo.config.seeds:
            parent = zoo.get(arch, seed, "pretrain")
            for m in models:
                if m.seed == seed and m.stage != "pretrain":
                    pairs.append(Pair(parent, m, True, m.stage))
                if m.seed == seed and m.stage == "rotated":
                    pairs.append(Pair(zoo.get(arch, seed, "init"), m, True, "init->rotated"))
        for ref in models:
            if ref.stage not in REFERENCE_STAGES:
                continue
            for sus in models:
                if sus.seed != ref.seed:
                    pairs.append(Pair(ref, sus, False, negative_class(ref, sus)))
    for p in pairs:
        assert p.positive == p.reference.same_lineage(p.suspect)
    return pairs


# ---------------------------------------------------------------------------- running the tests
def run_pairs(test: str, pairs: list[Pair], fps: dict[str, Fingerprint], k: float | None = None) -> list[dict[str, Any]]:
    """Score every pair with one test.  Per pair: z, log10 p, and the seconds the test costs (for the
    calibrated test including ranking the suspect; the paper's simplified null is built once per
    (N, kept columns) and shared, as it is within a scan)."""
    out: list[dict[str, Any]] = []
    by_suspect: dict[str, list[Pair]] = {}
    for p in pairs:
        by_suspect.setdefault(p.suspect.key, []).append(p)
    for sus_key, group in by_suspect.items():
        prep_seconds = 0.0
        sus: Any = fps[sus_key]
        if test == "calibrated":
            t0 = time.perf_counter()
            sus = SuspectRanks(fps[sus_key])
            prep_seconds = time.perf_counter() - t0
        for p in group:
            ref = fps[p.reference.key]
            t0 = time.perf_counter()
            if test == "calibrated":  # the default test, its basis check included
                res = get_test("calibrated").run(ref, sus, k=k)
            elif test == "paper-analytical":
                res = seedprints_test(ref, sus, k=k)
            elif test == "paper-empirical":
                res = seedprints_test(ref, sus, k=k, null="simplified", n_null=20)
            else:
                raise ValueError(f"unknown test {test!r}")
            secs = time.perf_counter() - t0 + prep_seconds
            out.append(_pair_record(p, res, secs))
    return out


def _pair_record(p: Pair, res: SeedPrintsResult, secs: float) -> dict[str, Any]:
    return {"reference": p.reference.key, "suspect": p.suspect.key, "positive": p.positive, "kind": p.kind,
            "z": round(float(res.z), 5), "log10_p": round(float(res.log10_pvalue), 5),
            "statistic": round(float(res.statistic), 6), "inconclusive": bool(res.inconclusive),
            "significant": bool(res.significant(ALPHA)), "test_seconds": round(secs, 6)}


def summarise(records: list[dict[str, Any]]) -> dict[str, Any]:
    """AUC, TPR@1%FPR, FPR at alpha (overall and per class) and detection per positive kind."""
    pos = [r for r in records if r["positive"] and not r["kind"].startswith("init")]
    neg = [r for r in records if not r["positive"]]
    zp = np.array([r["z"] for r in pos])
    zn = np.array([r["z"] for r in neg])
    tpr, thr, realised = tpr_at_fpr(zp, zn, 0.01)
    out: dict[str, Any] = {
        "n_pos": len(pos), "n_neg": len(neg), "auc": auc_mann_whitney(zp, zn),
        "tpr_at_1pct_fpr": tpr, "tpr_threshold_z": thr, "tpr_threshold_realised_fpr": realised,
        "fpr_at_alpha": rate(sum(r["significant"] for r in neg), len(neg)),
        "tpr_at_alpha": rate(sum(r["significant"] for r in pos), len(pos)),
        "inconclusive": int(sum(r["inconclusive"] for r in records)),
        "test_seconds_per_decision": float(np.mean([r["test_seconds"] for r in records])) if records else float("nan"),
        "negative_classes": {}, "detection": {},
    }
    for cls in sorted({r["kind"] for r in neg}):
        rs = [r for r in neg if r["kind"] == cls]
        out["negative_classes"][cls] = {**rate(sum(r["significant"] for r in rs), len(rs)),
                                        "inconclusive": int(sum(r["inconclusive"] for r in rs)),
                                        "z_mean": float(np.mean([r["z"] for r in rs])),
                                        "z_max": float(np.max([r["z"] for r in rs]))}
    kinds = [k for k in ("init", "cpt", "ft", "lora", "int8", "int4", "prune30", "merge", *EVASIONS, "init->rotated")
             if any(r["positive"] and r["kind"] == k for r in records)]
    kinds += sorted({r["kind"] for r in records if r["positive"]} - set(kinds))
    for kind in kinds:
        rs = [r for r in records if r["positive"] and r["kind"] == kind]
        out["detection"][kind] = {**rate(sum(r["significant"] for r in rs), len(rs)),
                                  "inconclusive": int(sum(r["inconclusive"] for r in rs)),
                                  "z_mean": float(np.mean([r["z"] for r in rs])),
                                  "z_min": float(np.min([r["z"] for r in rs]))}
    return out


def cluster_fpr(records: list[dict[str, Any]], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """False-positive rate over negative pairs with a cluster bootstrap 95% interval.

    Pairs that share the reference and the suspect's (architecture, seed) are one cluster: a
    model's derivatives are near-copies, so their tests succeed or fail together and the exact
    binomial interval, which assumes independent pairs, is too narrow.  Clusters are resampled
    with replacement and the pooled rate recomputed (percentile interval).
    """
    clusters: dict[Any, list[int]] = {}
    for r in records:
        if not r["positive"]:
            clusters.setdefault((r["reference"], r["suspect"].rsplit("/", 1)[0]), []).append(int(r["significant"]))
    return cluster_bootstrap(clusters, n_boot, seed)


def cluster_bootstrap(clusters: dict[Any, list[int]], n_boot: int = 2000, seed: int = 0) -> dict[str, Any]:
    """Pooled rate of 0/1 outcomes grouped in clusters, with a 95% percentile interval from resampling
    the clusters with replacement."""
    x = np.array([sum(v) for v in clusters.values()], dtype=np.float64)
    n = np.array([len(v) for v in clusters.values()], dtype=np.float64)
    if len(n) == 0:
        return {"x": 0, "n": 0, "clusters": 0, "clusters_with_fp": 0, "rate": float("nan"), "ci95": [float("nan")] * 2}
    idx = np.random.default_rng(seed).integers(0, len(n), size=(n_boot, len(n)))
    boot = x[idx].sum(axis=1) / n[idx].sum(axis=1)
    return {"x": int(x.sum()), "n": int(n.sum()), "clusters": len(n), "clusters_with_fp": int((x > 0).sum()),
            "rate": float(x.sum() / n.sum()), "ci95": [float(np.quantile(boot, 0.025)), float(np.quantile(boot, 0.975))]}


def seed_identification(zoo: Zoo, fps: dict[str, Fingerprint], test: str, k: float | None = None,
                        extra: list[ZooModel] | None = None) -> dict[str, Any]:
    """Closed set: scan each derivative against all pretrain fingerprints of its architecture (MATCH with
    the right seed counts).  Open set: the same without its own seed's pretrain (NO MATCH counts)."""
    scan_test, kwargs = SCAN_ARGS[test]
    closed, open_ = [], []
    for arch in zoo.config.archs:
        lib = [(RefInfo(zoo.get(arch, s, "pretrain").key, arch, s), fps[zoo.get(arch, s, "pretrain").key])
               for s in zoo.config.seeds]
        for m in [*zoo.models, *(extra or [])]:
            if m.arch != arch or m.stage in REFERENCE_STAGES:
                continue
            rep = scan(fps[m.key], lib, alpha=ALPHA, test=scan_test, k=k, **kwargs)
            v = rep.verdict
            closed.append({"suspect": m.key, "label": v.label, "seed": v.seed, "family": v.family,
                           "correct": v.label == "MATCH" and v.seed == m.seed and v.family == arch})
            rep = scan(fps[m.key], [x for x in lib if x[0].seed != m.seed], alpha=ALPHA, test=scan_test, k=k, **kwargs)
            open_.append({"suspect": m.key, "label": rep.verdict.label, "seed": rep.verdict.seed,
                          "correct": rep.verdict.label == "NO MATCH"})

    def labels(rs: list[dict[str, Any]]) -> dict[str, int]:
        return {lab: sum(r["label"] == lab for r in rs) for lab in sorted({r["label"] for r in rs})}

    return {"top1": rate(sum(r["correct"] for r in closed), len(closed)), "top1_labels": labels(closed),
            "open_set_no_match": rate(sum(r["correct"] for r in open_), len(open_)), "open_set_labels": labels(open_),
            "closed": closed, "open": open_}


def evaluate(zoo: Zoo, budgets: dict[str, tuple[int, int, str]] | None = None, *, probes: tuple[str, ...] = PROBE_KINDS,
             tests: tuple[str, ...] = TESTS, device: str = "cpu", cache_dir: Path | None = None, k: float | None = None,
             say: Say | None = None, evasions: bool = True) -> dict[str, Any]:
    """The whole benchmark on a built zoo; returns a JSON-ready dict (see module docstring).

    k=None: each test's default (calibrated: 0.10 of D, all D for every-position probes; paper: 0.10)."""
    say = say or (lambda msg: None)
    budgets = dict(budgets or BUDGETS)
    t_start = time.perf_counter()
    cache = FingerprintCache(cache_dir or zoo.root / "fingerprints")
    specs = make_specs(zoo, budgets, probes, device)
    fps, extraction = fingerprint_zoo(zoo, specs, cache, device, say)
    extra = evasion_models(zoo) if evasions else []
    fingerprint_evasions(extra, specs, fps, device, say)
    pairs = labelled_pairs(zoo, extra)
    results: list[dict[str, Any]] = []
    for (kind, budget), spec in specs.items():
        ex = extraction[f"{kind}/{budget}"]
        for test in tests:
            say(f"testing {len(pairs)} pairs: {test}, {kind} probe, {budget}")
            t0 = time.perf_counter()
            records = run_pairs(test, pairs, fps[(kind, budget)], k)
            summary = summarise(records)
            summary["seed_id"] = (seed_identification(zoo, fps[(kind, budget)], test, k, extra)
                                  if test in SCAN_ARGS else None)
            per_model = ex["extract_seconds_per_model"]
            results.append({
                "test": test, "probe": kind, "budget": budget, "n_samples": spec.n_samples,
                "seq_len": spec.seq_len, "positions": spec.positions, "probe_id": spec.id, **summary,
                "tokens_per_decision": spec.n_tokens,
                "seconds_per_decision": None if per_model is None else per_model + summary["test_seconds_per_decision"],
                "wall_seconds_tests": time.perf_counter() - t0, "pairs": records,
            })
    return {
        "zoo": {"name": zoo.config.name, "key": zoo.config.key, "root": str(zoo.root),
                "archs": list(zoo.config.archs), "seeds": list(zoo.config.seeds),
                "derivatives": list(zoo.config.derivatives), "hidden": zoo.config.hidden,
                "pretrain_ok": {u: rec.get("pretrain_ok") for u, rec in zoo.manifest.get("units", {}).items()}},
        "budgets": {b: {"n_samples": n, "seq_len": seq_len, "positions": pos} for b, (n, seq_len, pos) in budgets.items()},
        "alpha": ALPHA, "k": k, "device": device,
        "definitions": {
            "pairs": "ordered (reference, suspect), same architecture only; cross-architecture pairs cannot share "
                     "an init and are out of scope",
            "positives": "suspect = derivative (or init, reported as kind 'init', excluded from AUC/TPR) of the "
                         "reference's seed; reference = that seed's pretrain",
            "negatives": "reference in {init, pretrain}, suspect any stage, different seed",
            "score": "z of the test (higher = more related)", "decision": f"p < {ALPHA}",
            "tpr_at_1pct_fpr": "positives with z strictly above the ceil(0.99 n_neg)-th smallest negative z",
            "tokens_per_decision": "N x L: fingerprinting the suspect (the reference's fingerprint is a library entry)",
            "seconds_per_decision": "mean extraction seconds per model (load share included) + mean test seconds of a "
                                    "standalone decision (calibrated: incl. ranking the suspect; paper-empirical: "
                                    "incl. building its null)",
        },
        "extraction": extraction, "results": results,
        "cache": {"dir": str(cache.root), "hits": cache.hits, "misses": cache.misses},
        "wall_seconds": time.perf_counter() - t_start,
    }


# ---------------------------------------------------------------------------- report
def _f(x: Any, fmt: str = ".3f") -> str:
    if x is None or (isinstance(x, float) and not math.isfinite(x)):
        return "n/a"
    return format(x, fmt)


def _ci(r: dict[str, Any]) -> str:
    lo, hi = r["ci95"]
    return f"{_f(r['rate'])} [{_f(lo)}, {_f(hi)}]"


def _k_words(k: Any) -> str:
    if k is not None:
        return str(k)
    return "each test's default (calibrated: 0.1 of D, all D for every-position probes; paper: 0.1)"


def markdown(report: dict[str, Any]) -> str:
    z = report["zoo"]
    lines = [f"# SeedPrints accuracy on the `{z['name']}` seed zoo ({z['key']})", "",
             f"Architectures {', '.join(z['archs'])}; seeds {', '.join(map(str, z['seeds']))}; derivatives "
             f"{', '.join(z['derivatives'])}; hidden size {z['hidden']}. alpha = {report['alpha']}, "
             f"k = {_k_words(report['k'])}, device {report['device']}. "
             "Pairs are ordered (reference, suspect) within one architecture; cross-architecture pairs cannot "
             "share an init and are out of scope. Positives: each derivative vs its own seed's pretrain (AUC, "
             "TPR and seed-ID exclude the `init` kind, shown only in the detection table). Negatives: reference "
             "init or pretrain, suspect any model of another seed. Score = z; decision = p < alpha. An "
             "inconclusive test (e.g. coset mode with fewer than 2 shared identity dimensions) scores z = 0 and "
             "p = 1; seed-ID counts only MATCH with the right seed, open set only NO MATCH.", "",
             "| test | probe | budget | AUC | TPR@1%FPR | FPR@0.01 [95% CI] | n neg | n pos | seed-ID top-1 | "
             "open-set NO MATCH | tokens/decision | s/decision | inconclusive pairs |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        sid = r["seed_id"]
        top1 = f"{sid['top1']['x']}/{sid['top1']['n']}" if sid else "n/a"
        opn = f"{sid['open_set_no_match']['x']}/{sid['open_set_no_match']['n']}" if sid else "n/a"
        every = ", every position" if r.get("positions") == "all" else ""
        lines.append(f"| {r['test']} | {r['probe']} | {r['budget']} (N={r['n_samples']}, L={r['seq_len']}{every}) | "
                     f"{_f(r['auc'])} | {_f(r['tpr_at_1pct_fpr'])} | {_ci(r['fpr_at_alpha'])} | {r['n_neg']} | "
                     f"{r['n_pos']} | {top1} | {opn} | {r['tokens_per_decision']:,} | "
                     f"{_f(r['seconds_per_decision'], '.3g')} | {r['inconclusive']}/{len(r['pairs'])} |")
    kinds: list[str] = []
    for r in report["results"]:
        kinds += [k for k in r["detection"] if k not in kinds]
    lines += ["", "## Detection rate per derivative (p < 0.01 vs own seed's pretrain)", "",
              "| test | probe | budget | " + " | ".join(kinds) + " |", "|---|---|---|" + "---|" * len(kinds)]
    # cells: detected / pairs
    for r in report["results"]:
        cells = [f"{r['detection'][k]['x']}/{r['detection'][k]['n']}" if k in r["detection"] else "" for k in kinds]
        lines.append(f"| {r['test']} | {r['probe']} | {r['budget']} | " + " | ".join(cells) + " |")
    lines += ["", "## False-positive rate per negative class (p < 0.01, exact 95% CI)", "",
              "| test | probe | budget | class | FP / n | FPR [95% CI] | mean z | max z | inconclusive |",
              "|---|---|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        for cls, c in r["negative_classes"].items():
            lines.append(f"| {r['test']} | {r['probe']} | {r['budget']} | {cls} | {c['x']}/{c['n']} | {_ci(c)} | "
                         f"{_f(c['z_mean'], '.2f')} | {_f(c['z_max'], '.2f')} | {c['inconclusive']} |")
    lines += ["", "## False positives by cluster (pairs sharing the reference and the suspect's seed)", "",
              "| test | probe | budget | false positives | clusters with one | exact 95% CI (independent pairs) | "
              "cluster bootstrap 95% CI |", "|---|---|---|---|---|---|---|"]
    for r in report["results"]:
        c, e = cluster_fpr(r["pairs"]), r["fpr_at_alpha"]
        lines.append(f"| {r['test']} | {r['probe']} | {r['budget']} | {c['x']}/{c['n']} | {c['clusters_with_fp']}/"
                     f"{c['clusters']} | {_ci(e)} | [{c['ci95'][0]:.3f}, {c['ci95'][1]:.3f}] |")
    lines += ["", "## Extraction", "", "| probe | budget | models | tokens/model | tokens total | extraction s total | "
              "s/model | served from cache |", "|---|---|---|---|---|---|---|---|"]
    for key, e in report["extraction"].items():
        probe, budget = key.split("/")
        lines.append(f"| {probe} | {budget} | {e['models']} | {e['tokens_per_model']:,} | {e['tokens_total']:,} | "
                     f"{_f(e['extract_seconds_total'], '.1f')} | {_f(e['extract_seconds_per_model'], '.3f')} | "
                     f"{e['from_cache']} |")
    lines += ["", f"tokens/decision = N x L for fingerprinting the suspect (references are library entries); "
              "s/decision = mean extraction seconds per model + mean seconds of one standalone test. "
              f"Total wall time of this run: {report['wall_seconds']:.1f} s (machine: {report.get('machine', {})})."]
    bad = [u for u, ok in report["zoo"]["pretrain_ok"].items() if ok is False]
    if bad:
        lines += ["", f"Note: the zoo manifest flags pretraining as not converged (pretrain_ok = false) for "
                      f"{', '.join(bad)}."]
    return "\n".join(lines) + "\n"


def machine() -> dict[str, Any]:
    import torch

    info: dict[str, Any] = {"cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                            "torch": torch.__version__, "python": platform.python_version()}
    with contextlib.suppress(OSError):
        info["loadavg_start"] = [round(x, 2) for x in os.getloadavg()]
    return info


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=["full", "mini"], default="full")
    ap.add_argument("--budgets", default="quick,standard", help="comma-separated subset of " + ",".join(BUDGETS))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "accuracy.json")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=0,
                    help="torch CPU threads (0 = torch default); use 1 when other jobs share the cores, since "
                         "oversubscribed threads slow small models down by an order of magnitude")
    ap.add_argument("--zoo-root", type=Path, default=None, help="zoo folder (default: $SEEDPRINTS_HOME/zoo/...)")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from an existing --out .json")
    args = ap.parse_args(argv)
    if args.markdown_only:
        write_markdown(args.out, markdown(json.loads(args.out.read_text())))
        return 0
    budgets = parse_budgets(ap, args.budgets)
    config: ZooConfig = FULL if args.zoo == "full" else MINI
    if args.threads > 0:
        import torch

        torch.set_num_threads(args.threads)

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    info = machine()
    t0 = time.perf_counter()
    zoo = build_zoo(config, root=args.zoo_root, progress=lambda stage, done, total: say(f"zoo: {stage} ({done}/{total})"))
    build_s = time.perf_counter() - t0
    report = evaluate(zoo, budgets, device=args.device, say=say)
    report["machine"] = info
    report["zoo"]["build_or_reuse_seconds"] = build_s
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1, default=float))
    if args.out.resolve() == (ROOT / "bench" / "results" / "accuracy.json").resolve():
        # the Learn tab reads a summary shipped inside the package (no path into the source tree at run time)
        from seedprints.teaching import ACCURACY_JSON, summarise_accuracy

        ACCURACY_JSON.parent.mkdir(parents=True, exist_ok=True)
        ACCURACY_JSON.write_text(json.dumps(summarise_accuracy(json.loads(args.out.read_text())), separators=(",", ":")))
    if args.out.resolve() == (ROOT / "bench" / "results" / "accuracy-fast.json").resolve():
        import ship  # the report, the About tab and the CLI quote its false-positive rates (seedprints/measured.py)

        ship.main()
    write_markdown(args.out, markdown(report))
    return 0


def parse_budgets(ap: argparse.ArgumentParser, text: str) -> dict[str, tuple[int, int, str]]:
    """The --budgets list ('fast,quick') as {name: (N, L, positions)}; an unknown or empty list is an argparse error."""
    names = [b.strip() for b in text.split(",") if b.strip()]
    unknown = [b for b in names if b not in BUDGETS]
    if unknown or not names:
        ap.error(f"unknown budget(s) {unknown}: choose from {', '.join(BUDGETS)}")
    return {b: BUDGETS[b] for b in names}


def write_markdown(out: Path, md: str) -> None:
    """Write a bench's Markdown beside its JSON and print it."""
    out.with_suffix(".md").write_text(md)
    print(md)


def write_results(out: Path, report: dict[str, Any], md: str) -> None:
    """Write a bench's JSON report and, beside it, its Markdown."""
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=1))
    write_markdown(out, md)


if __name__ == "__main__":
    raise SystemExit(main())
