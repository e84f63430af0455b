"""Map of the full seed zoo: do lineage families stand apart on the app's "Map of the models"?

Run:  python bench/map.py [--zoo full|mini] [--budget quick]
A library of every pretrained model of the zoo plus its derivatives (both architectures, all
seeds; inits are left out, as the issue asks) is tested pair by pair with the default test, laid
out exactly as the app does (similarity.map_models) and measured: per model, separation =
distance to the nearest model it has no significant evidence with / distance to the farthest
model it has evidence with (similarity.map_separation), and whether its nearest neighbour on the
map shares its (architecture, seed).  Writes bench/results/map.json and map.md.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import BUDGETS, fingerprint_zoo, machine, make_specs, write_markdown  # noqa: E402

from seedprints.cache import FingerprintCache  # noqa: E402
from seedprints.similarity import map_models, map_separation, pairwise_evidence  # noqa: E402
from seedprints.zoo import FULL, MINI, build_zoo  # noqa: E402


def measure(zoo, budget: str, say) -> dict:
    """Separation and nearest-neighbour purity of the map of pretrained models and their derivatives."""
    specs = make_specs(zoo, {budget: BUDGETS[budget]}, probes=("token",))
    fps, _ = fingerprint_zoo(zoo, specs, FingerprintCache(zoo.root / "fingerprints"), say=say)
    fps = fps[("token", budget)]
    models = [m for m in zoo.models if m.stage != "init"]
    items = [(m.key, f"{m.arch} seed {m.seed}", fps[m.key]) for m in models]
    t0 = time.perf_counter()
    matrix = pairwise_evidence(items)
    test_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    emb = map_models(matrix)
    layout_s = time.perf_counter() - t0
    sep = map_separation(emb.coords, matrix.significant())
    dist = np.sqrt(((emb.coords[:, None] - emb.coords[None]) ** 2).sum(-1))
    np.fill_diagonal(dist, np.inf)
    family = [(m.arch, m.seed) for m in models]
    nn_same = [family[int(np.argmin(dist[i]))] == family[i] for i in range(len(models))]
    sig = matrix.significant()
    truth = np.array([[a == b for b in family] for a in family])
    off = ~np.eye(len(models), dtype=bool)
    return {"models": len(models), "method": emb.method, "budget": budget, "n_samples": BUDGETS[budget][0],
            "seq_len": BUDGETS[budget][1], "median_separation": float(np.nanmedian(sep)),
            "min_separation": float(np.nanmin(sep)), "share_separation_ge_2": float(np.mean(sep[np.isfinite(sep)] >= 2)),
            "nearest_neighbour_same_family": int(sum(nn_same)), "links": len(emb.links),
            "evidence_vs_truth": {"related_pairs_significant": int((sig & truth & off).sum()),
                                  "related_pairs": int((truth & off).sum()),
                                  "unrelated_pairs_significant": int((sig & ~truth).sum()),
                                  "unrelated_pairs": int((~truth).sum())},
            "separation": {m.key: round(float(s), 3) for m, s in zip(models, sep)},
            "test_seconds": test_s, "layout_seconds": layout_s}


def markdown(r: dict) -> str:
    e = r["evidence_vs_truth"]
    return "\n".join([
        "# Map of the seed zoo (bench/map.py)", "",
        f"{r['models']} models (pretrained + derivatives, both architectures, all seeds), `{r['budget']}` probe "
        f"(N = {r['n_samples']}, L = {r['seq_len']}), laid out by {r['method']}.", "",
        "| measure | value | target |", "|---|---|---|",
        f"| median separation | **{r['median_separation']:.2f}** | >= 2 |",
        f"| smallest separation | {r['min_separation']:.2f} | |",
        f"| models with separation >= 2 | {r['share_separation_ge_2']:.0%} | |",
        f"| nearest neighbour of the same (architecture, seed) | **{r['nearest_neighbour_same_family']}/{r['models']}** "
        f"| all |",
        f"| significant pairs among related / unrelated | {e['related_pairs_significant']}/{e['related_pairs']} / "
        f"{e['unrelated_pairs_significant']}/{e['unrelated_pairs']} | |",
        "", f"Pairwise tests {r['test_seconds']:.1f} s, layout {r['layout_seconds']:.1f} s; machine {r['machine']}.", ""])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=["full", "mini"], default="full")
    ap.add_argument("--budget", default="quick", choices=list(BUDGETS))
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "map.json")
    args = ap.parse_args(argv)

    def say(msg: str) -> None:
        print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)

    zoo = build_zoo(FULL if args.zoo == "full" else MINI)
    report = measure(zoo, args.budget, say)
    report["machine"] = machine()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    write_markdown(args.out, markdown(report))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
