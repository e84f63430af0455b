"""Ship the benchmark results the package quotes: copy them from bench/results/ into seedprints/data/.

Run:  python bench/ship.py
(bench/accuracy.py runs it after writing accuracy-fast.json; a bench whose results the package
quotes runs it after writing them.)  What is shipped is described in seedprints/measured.py:

- bench/results/calibration.json -> seedprints/data/calibration.json, verbatim, once the
  calibration bench has written it;
- bench/results/accuracy-fast.json -> seedprints/data/accuracy-fast-fpr.json: each token-probe
  row's false positives at the record's alpha, with the exact and the cluster bootstrap 95%
  intervals (the per-pair records stay behind).

tests/test_measured.py checks that each shipped file equals what this script makes of the bench results.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import cluster_fpr  # noqa: E402

from seedprints.measured import ACCURACY, CALIBRATION, DATA, SOURCES  # noqa: E402


def false_positives(record: dict[str, Any]) -> dict[str, Any]:
    """What the package reads of an accuracy record: per token-probe (test, budget), its false positives."""
    rows = []
    for r in record["results"]:
        if r["probe"] != "token":
            continue
        c = cluster_fpr(r["pairs"])
        e = r["fpr_at_alpha"]
        assert (c["x"], c["n"]) == (e["x"], e["n"]), "the clusters must hold exactly the negative pairs"
        rows.append({"test": r["test"], "budget": r["budget"], "probe_id": r["probe_id"], "fp": e["x"], "n": e["n"],
                     "rate": e["rate"], "ci95_exact": e["ci95"], "ci95_cluster": c["ci95"], "clusters": c["clusters"],
                     "clusters_with_fp": c["clusters_with_fp"]})
    return {"source": SOURCES[ACCURACY], "alpha": record["alpha"], "zoo": record["zoo"]["name"], "rows": rows}


def shipped() -> dict[str, str]:
    """Shipped file name -> its text, made from the bench results present now."""
    out = {}
    calibration = ROOT / SOURCES[CALIBRATION]
    if calibration.is_file():
        out[CALIBRATION] = calibration.read_text()
    accuracy = json.loads((ROOT / SOURCES[ACCURACY]).read_text())
    out[ACCURACY] = json.dumps(false_positives(accuracy), indent=1) + "\n"
    return out


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    for name, text in shipped().items():
        (DATA / name).write_text(text)
        print(f"wrote {DATA / name} from {SOURCES[name]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
