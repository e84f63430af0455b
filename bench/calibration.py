"""Calibration bench: the default test's false-positive level on many independent negatives.

Run:  python bench/calibration.py [--zoo mini|full | --real] [--inits 1000] [--trained-seeds 24] [--threads N]
Each run writes its own results beside the others in bench/results (``calibration-full``, ``-mini`` or
``-real``, .json and .md; or --out), then the summary bench/results/calibration.json and its .md: every
class of every run present, named by its run (``real/...``, ``mini/llama/...``), which bench/ship.py
ships for the app, the report and the CLI to quote (``--summary`` rewrites the summary alone).

Negatives are ordered (reference, suspect) pairs of one architecture and different seeds, scored
with the default test (calibrated, basis check included) at the default probe:

- random inits: torch seeds 100000.. of the zoo configuration (seedprints.zoo.new_model), made in
  memory and never saved; each is one independent unit;
- trained seeds: the zoo's pretraining recipe (new_model(seed), then the zoo's pretrain schedule on
  its pretrain corpus) for seeds 0..S-1 per architecture; each seed is one independent unit.  A
  rotated copy of each (seedprints.evasion) is scored too, as the adversary's move an innocent party
  could also make.

Classes: ``init-vs-trained`` (reference a random init, suspect a trained model), ``trained-vs-init``,
``init-vs-init`` (consecutive random inits), ``trained-vs-other-trained`` and
``rotated-trained-vs-other-trained``.  Each class's interval is a cluster bootstrap over its
independent units (a unit's pairs succeed or fail together), beside the exact binomial interval
over pairs.  Trained models are cached as fingerprints under the work dir, so a rerun resumes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import cluster_bootstrap, machine, rate, write_results  # noqa: E402  (also sets the offline environment)

import torch  # noqa: E402

from seedprints import evasion  # noqa: E402
from seedprints.audit import fingerprint_model  # noqa: E402
from seedprints.fingerprint import Fingerprint, load_fingerprint  # noqa: E402
from seedprints.methods import DEFAULT_ALPHA, DEFAULT_TEST, get_test  # noqa: E402
from seedprints.paths import home  # noqa: E402
from seedprints.probes import DEFAULT_PRESET, preset  # noqa: E402
from seedprints.stats import SuspectRanks  # noqa: E402
from seedprints.zoo import FULL, MINI, ZooConfig, _prepare_data, new_model, train, zoo_root  # noqa: E402

INIT_SEED0 = 100_000


def say(msg: str) -> None:
    print(time.strftime("[%H:%M:%S]"), msg, flush=True)


def trained_fingerprints(config: ZooConfig, arch: str, seeds: range, spec: Any,
                         work: Path) -> tuple[dict[int, Fingerprint], dict[int, Fingerprint]]:
    """Fingerprints of the zoo-recipe pretrained model of each seed and of a rotated copy of it (built once,
    cached as fingerprint files)."""
    data = None
    trained, rotated = {}, {}
    folder = work / f"{config.name}-{config.key}" / arch
    folder.mkdir(parents=True, exist_ok=True)
    for seed in seeds:
        path, rot_path = (folder / f"{kind}-seed{seed}-{spec.id}.safetensors" for kind in ("pretrain", "rotated"))
        if path.exists() and rot_path.exists():
            trained[seed], rotated[seed] = load_fingerprint(path), load_fingerprint(rot_path)
            continue
        if data is None:
            zoo_root(config).mkdir(parents=True, exist_ok=True)
            data = _prepare_data(config, zoo_root(config))
        t0 = time.perf_counter()
        model = new_model(arch, config, seed)
        train(model, data["pretrain"], data["val"], config, config.pretrain_steps, config.pretrain_lr, data_seed=1)
        model.eval()
        trained[seed] = fingerprint_model(model, spec, name=f"{arch}/seed{seed}/pretrain")
        rotated[seed] = fingerprint_model(evasion.rotate_hidden(model, seed).model, spec,
                                          name=f"{arch}/seed{seed}/pretrain-rotated")
        rotated[seed].save(rot_path)
        trained[seed].save(path)
        say(f"trained {arch} seed {seed} in {time.perf_counter() - t0:.0f} s")
    return trained, rotated


def _significant(res: Any, alpha: float) -> bool:
    return bool(res.significant(alpha))


def _record(cls: str, unit: str, res: Any, alpha: float) -> dict[str, Any]:
    """One negative pair: its class, independent unit, decision, z, the basis check's reading and p."""
    basis = res.details.get("basis") or {}
    return {"class": cls, "unit": unit, "significant": _significant(res, alpha), "z": round(float(res.z), 3),
            "reading": basis.get("reading"), "anchor_similarity": basis.get("anchor_similarity"), "p": float(res.pvalue)}


def score_arch(config: ZooConfig, arch: str, n_inits: int, trained: dict[int, Fingerprint],
               rotated: dict[int, Fingerprint], spec: Any, alpha: float) -> list[dict[str, Any]]:
    """Every negative pair of one architecture: (class, unit, significant, z)."""
    test = get_test(DEFAULT_TEST).run
    records: list[dict[str, Any]] = []

    def add(cls: str, unit: str, res: Any) -> None:
        records.append(_record(cls, unit, res, alpha))

    prepared = {s: SuspectRanks(fp) for s, fp in trained.items()}
    prepared_rot = {s: SuspectRanks(fp) for s, fp in rotated.items()}
    seeds = sorted(trained)
    for a in seeds:
        for b in seeds:
            if a != b:
                pair = f"{min(a, b)}-{max(a, b)}"
                add("trained-vs-other-trained", pair, test(trained[a], prepared[b]))
                add("rotated-trained-vs-other-trained", pair, test(trained[a], prepared_rot[b]))
    previous: Fingerprint | None = None
    for i in range(n_inits):
        seed = INIT_SEED0 + i
        init = fingerprint_model(new_model(arch, config, seed).eval(), spec, name=f"{arch}/init{seed}")
        init_ranks = SuspectRanks(init)
        for s in seeds:
            add("init-vs-trained", str(seed), test(init, prepared[s]))
            add("trained-vs-init", str(seed), test(trained[s], init_ranks))
        if previous is not None:
            add("init-vs-init", str(seed), test(previous, init_ranks))
        previous = init
        if (i + 1) % 100 == 0:
            say(f"{arch}: {i + 1}/{n_inits} random inits scored")
    return records


def real_records(n_inits: int, n_rotated: int, alpha: float) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """Random inits of the real model's config (bench/real.py's SmolLM2-135M family, torch seeds 1000..) against the
    real model and every derivative fingerprint the evasion bench has made, both ways; the first ``n_rotated``
    inits also as rotated copies.  Init fingerprints are shared with bench/evasion.py (made once, on disk)."""
    from evasion import INIT_SEED0 as REAL_SEED0, init_fingerprints
    from real import Family, obtain_gguf

    work = home() / "real"
    obtain_gguf(work / "download")
    family = Family(work, work / "download")
    spec = preset(DEFAULT_PRESET)
    family.ensure("reference")
    reference = fingerprint_model(str(family.path("reference")), spec, name="reference")
    derivatives = {p.stem: load_fingerprint(p) for p in sorted((work / "evasion" / spec.id).glob("*.safetensors"))}
    cfg = family.reference().config
    family._reference = None
    test = get_test(DEFAULT_TEST).run
    records: list[dict[str, Any]] = []

    def add(cls: str, unit: str, res: Any) -> None:
        records.append(_record(cls, unit, res, alpha))

    previous = None
    for i in range(n_inits):
        seed = REAL_SEED0 + i
        init, rot = init_fingerprints(work, cfg, seed, spec, rotated=i < n_rotated)
        unit = str(seed)
        add("reference-vs-init", unit, test(reference, init))
        add("init-vs-reference", unit, test(init, reference))
        for fp in derivatives.values():
            add("derivative-vs-init", unit, test(fp, init))
            add("init-vs-derivative", unit, test(init, fp))
        if rot is not None:
            add("reference-vs-rotated-init", unit, test(reference, rot))
            add("rotated-init-vs-reference", unit, test(rot, reference))
        if previous is not None:
            add("init-vs-init", unit, test(previous, init))
        previous = init
        if (i + 1) % 25 == 0:
            say(f"real config: {i + 1}/{n_inits} random inits scored")
    return records, {"derivatives": sorted(derivatives), "probe_id": spec.id, "inits": n_inits, "rotated": n_rotated}


def cluster_interval(records: list[dict[str, Any]]) -> list[float]:
    """95% interval of the pooled rate, resampling independent units with replacement."""
    units: dict[str, list[int]] = {}
    for r in records:
        units.setdefault(r["unit"], []).append(int(r["significant"]))
    return cluster_bootstrap(units)["ci95"]


def summarise(records: list[dict[str, Any]], arch: str) -> list[dict[str, Any]]:
    out = []
    for cls in sorted({r["class"] for r in records}):
        rs = [r for r in records if r["class"] == cls]
        fp = sum(r["significant"] for r in rs)
        units = {r["unit"] for r in rs}
        out.append({"class": f"{arch}/{cls}", "n": len(rs), "n_independent": len(units), "fp": fp,
                    "rate": fp / len(rs), "ci95": cluster_interval(rs), "ci95_pairs_exact": rate(fp, len(rs))["ci95"],
                    "max_z": max(r["z"] for r in rs),
                    "max_anchor_similarity": max((r["anchor_similarity"] for r in rs if r["anchor_similarity"] is not None),
                                                 default=None),
                    "aligned_reading_fp": sum(r["significant"] and r["reading"] == "aligned"
                                                                               for r in rs)})
        if all("p" in r for r in rs):  # an exact test's p is uniform: its rate at every level is that level
            out[-1]["rate_at"] = {str(a): sum(r["p"] <= a for r in rs) / len(rs) for a in (0.001, 0.05, 0.1, 0.5)}
    return out


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def markdown(rep: dict[str, Any]) -> str:
    real = rep.get("real")
    what = (f"Random inits (torch seeds 1000..) of the real SmolLM2-135M configuration: {real['inits']}, the first "
            f"{real['rotated']} also as rotated copies, against the real model and its derivatives "
            f"({', '.join(real['derivatives'])}); one init is one independent unit." if real else
            f"Zoo configuration `{rep['zoo']}`; {rep['inits']} random inits and {rep['trained_seeds']} trained seeds per "
            "architecture.")
    lines = [f"# Calibration of the default test (`{rep['probe']}` probe, {rep['test']}), alpha = {rep['alpha']}", "",
             f"{what} Generated by `python bench/calibration.py {'--real' if real else '--zoo ' + rep['zoo'].split('-')[0]}`.", ""]
    lines += table(rep["classes"])
    m = rep["machine"]
    lines += ["", f"Machine: {m.get('cores')} cores, torch {m.get('torch')}; load average at start {m.get('loadavg_start')}; "
              f"{rep['seconds'] / 60:.1f} min."]
    return "\n".join(lines) + "\n"


def table(classes: list[dict[str, Any]]) -> list[str]:
    """The classes as a Markdown table."""
    lines = ["| class | pairs | independent units | false positives | rate % | 95% CI % (cluster) | exact CI % (pairs) | "
             "via the aligned reading | largest z | largest anchor similarity | rate % at p <= 0.05 / 0.1 / 0.5 |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for c in classes:
        at = c.get("rate_at")
        at_txt = " / ".join(_pct(at[a]) for a in ("0.05", "0.1", "0.5")) if at else "-"
        lines.append(f"| {c['class']} | {c['n']} | {c['n_independent']} | {c['fp']} | {_pct(c['rate'])} | "
                     f"{_pct(c['ci95'][0])}-{_pct(c['ci95'][1])} | {_pct(c['ci95_pairs_exact'][0])}-"
                     f"{_pct(c['ci95_pairs_exact'][1])} | {c['aligned_reading_fp']} | {c['max_z']} | "
                     f"{'-' if c['max_anchor_similarity'] is None else round(c['max_anchor_similarity'], 3)} | {at_txt} |")
    return lines


RESULTS = ROOT / "bench" / "results"
#: the runs the summary gathers, in its order: name -> results file
RUNS = {"full": "calibration-full.json", "mini": "calibration-mini.json", "real": "calibration-real.json"}


def summary(reports: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """One record of every class of every run (named ``run/...``), in the format the package quotes
    (seedprints/measured.py); all runs must share the probe preset, test and alpha."""
    keys = {(r["probe"], r["test"], r["alpha"]) for r in reports.values()}
    if len(keys) != 1:
        raise SystemExit(f"the calibration runs disagree on (probe, test, alpha): {sorted(keys)}; rerun the stale ones")
    (probe, test, alpha), = keys
    classes = []
    for run, rep in reports.items():
        for c in rep["classes"]:
            name = c["class"] if c["class"].startswith(f"{run}/") else f"{run}/{c['class']}"
            classes.append({**c, "class": name})
    runs = [{"run": run, "file": f"bench/results/{RUNS[run]}", "zoo": rep["zoo"], "probe_id": rep["probe_id"],
             "inits": rep["inits"], "trained_seeds": rep["trained_seeds"]} for run, rep in reports.items()]
    return {"probe": probe, "test": test, "alpha": alpha, "runs": runs, "classes": classes}


def summary_markdown(rep: dict[str, Any]) -> str:
    worst = max(rep["classes"], key=lambda c: c["rate"])
    lines = [f"# Calibration of the default test: every class measured (`{rep['probe']}` probe, {rep['test']}), "
             f"alpha = {rep['alpha']}", "",
             "Gathered by `python bench/calibration.py --summary` from each run's results:", ""]
    lines += [f"- `{r['run']}`: {r['zoo']}, {r['inits']} random inits"
              + (f", {r['trained_seeds']} trained seeds per architecture" if r["trained_seeds"] else "")
              + f" ([{Path(r['file']).with_suffix('.md').name}]({Path(r['file']).with_suffix('.md').name}))"
              for r in rep["runs"]]
    lines += ["", f"Highest class rate (the figure the app, the report and the CLI quote): {worst['class']}, "
              f"{worst['fp']}/{worst['n']} = {_pct(worst['rate'])}%.", ""]
    lines += table(rep["classes"])
    return "\n".join(lines) + "\n"


def write_summary() -> None:
    """Rewrite bench/results/calibration.json and its .md from the runs' results present."""
    reports = {run: json.loads((RESULTS / f).read_text()) for run, f in RUNS.items() if (RESULTS / f).is_file()}
    if not reports:
        raise SystemExit("no calibration run's results yet: run python bench/calibration.py [--real | --zoo mini]")
    rep = summary(reports)
    write_results(RESULTS / "calibration.json", rep, summary_markdown(rep))
    say(f"summary of {', '.join(reports)} written: bench/results/calibration.json; ship it: python bench/ship.py")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=["full", "mini"], default="full")
    ap.add_argument("--inits", type=int, default=1000)
    ap.add_argument("--trained-seeds", type=int, default=24)
    ap.add_argument("--work-dir", type=Path, default=None, help="trained fingerprints (default $SEEDPRINTS_HOME/calibration)")
    ap.add_argument("--out", type=Path, default=None, help="this run's results (default: calibration-RUN.json in bench/results)")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--real", action="store_true",
                    help="random inits of the real SmolLM2-135M config against the real model and its derivatives "
                         "(bench/real.py's family and bench/evasion.py's derivatives) instead of the zoo")
    ap.add_argument("--rotated", type=int, default=200, help="--real: how many of the inits also as rotated copies")
    ap.add_argument("--summary", action="store_true", help="only rewrite the summary of the runs' results present")
    args = ap.parse_args(argv)
    if args.summary:
        write_summary()
        return 0
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    if args.real:
        info = machine()
        records, what = real_records(args.inits, min(args.rotated, args.inits), DEFAULT_ALPHA)
        report = {"probe": DEFAULT_PRESET, "probe_id": what["probe_id"], "test": DEFAULT_TEST, "alpha": DEFAULT_ALPHA,
                  "zoo": "real SmolLM2-135M config", "inits": args.inits, "trained_seeds": 0, "real": what,
                  "classes": summarise(records, "real"), "machine": info, "seconds": round(time.perf_counter() - t0, 1)}
        write_results(args.out or RESULTS / "calibration-real.json", report, markdown(report))
        write_summary()
        return 0
    config = FULL if args.zoo == "full" else MINI
    spec = preset(DEFAULT_PRESET, vocab_range=config.vocab)
    work = args.work_dir or home() / "calibration"
    info = machine()
    classes: list[dict[str, Any]] = []
    for arch in config.archs:
        trained, rotated = trained_fingerprints(config, arch, range(args.trained_seeds), spec, work)
        records = score_arch(config, arch, args.inits, trained, rotated, spec, DEFAULT_ALPHA)
        classes += summarise(records, arch)
    report = {"probe": DEFAULT_PRESET, "probe_id": spec.id, "test": DEFAULT_TEST, "alpha": DEFAULT_ALPHA,
              "zoo": f"{config.name}-{config.key}", "inits": args.inits, "trained_seeds": args.trained_seeds,
              "classes": classes, "machine": info, "seconds": round(time.perf_counter() - t0, 1)}
    write_results(args.out or RESULTS / f"calibration-{config.name}.json", report, markdown(report))
    write_summary()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
