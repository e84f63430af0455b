"""Probe budget: how detection and calibration of the calibrated test change with N and L.

Run:  python bench/probe_budget.py [--zoo full|mini]
For each (N, L) on a grid, every labelled pair of the zoo is scored with the calibrated test
(token probe): median z of same-lineage pairs (derivatives vs their parent) and the false-
positive rate at 0.01 plus the largest z among different-seed pairs.  Writes
bench/results/probe_budget[-mini].json and an interactive plotly figure (.html, plotly.js
loaded from its CDN to keep the file small; the .json beside it holds every number).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import fingerprint_zoo, labelled_pairs, make_specs, run_pairs  # noqa: E402

from seedprints.cache import FingerprintCache  # noqa: E402
from seedprints.fingerprint import Fingerprint  # noqa: E402
from seedprints.probes import ProbeSpec  # noqa: E402
from seedprints.zoo import FULL, MINI, build_zoo  # noqa: E402

N_GRID = (100, 200, 400, 800, 1600)
L_GRID = (16, 32, 64)


def measure(zoo, n_grid=N_GRID, l_grid=L_GRID) -> list[dict]:
    """One row per (N, L): positives' median and minimum z, negatives' FPR at 0.01 and max z."""
    # Probe sample i depends only on (probe seed, i), so the first n rows of an N-sample
    # fingerprint are exactly the n-sample fingerprint: extract once per L at the largest N.
    n_max = max(n_grid)
    big = make_specs(zoo, {f"N{n_max}-L{seq}": (n_max, seq, "last") for seq in l_grid}, probes=("token",))
    big_fps, _ = fingerprint_zoo(zoo, big, FingerprintCache(zoo.root / "fingerprints"))
    pairs = [p for p in labelled_pairs(zoo) if p.kind != "init"]
    rows = []
    for seq in l_grid:
        full = big_fps[("token", f"N{n_max}-L{seq}")]
        for n in n_grid:
            spec = big[("token", f"N{n_max}-L{seq}")].replace(n_samples=n)
            fps = {key: prefix(fp, spec) for key, fp in full.items()}
            rows.append(score(pairs, fps, spec))
    return rows


def prefix(fp: Fingerprint, spec: ProbeSpec) -> Fingerprint:
    """The fingerprint ``fp`` would have had with ``spec`` (same probe, fewer samples)."""
    if spec.replace(n_samples=fp.spec.n_samples) != fp.spec:
        raise ValueError("prefix() needs the same probe with fewer samples")
    return Fingerprint.from_features(spec, fp.features[: spec.n_rows], fp.model)  # rows are sample-major


def score(pairs, fps, spec: ProbeSpec) -> dict:
    """Calibrated-test summary over all labelled pairs for one budget."""
    recs = run_pairs("calibrated", pairs, fps)
    pos = np.array([r["z"] for r in recs if r["positive"]])
    neg = [r for r in recs if not r["positive"]]
    row = {"n_samples": spec.n_samples, "seq_len": spec.seq_len, "tokens": spec.n_tokens,
           "pos_median_z": float(np.median(pos)), "pos_min_z": float(pos.min()),
           "pos_detected": float(np.mean([r["significant"] for r in recs if r["positive"]])),
           "neg_fpr": float(np.mean([r["significant"] for r in neg])), "neg_max_z": float(max(r["z"] for r in neg)),
           "n_pos": int(len(pos)), "n_neg": len(neg)}
    print(f"N={spec.n_samples:5d} L={spec.seq_len:3d}: positives median z {row['pos_median_z']:6.1f} "
          f"(min {row['pos_min_z']:5.1f}), negatives FPR {row['neg_fpr']:.3f} max z {row['neg_max_z']:.2f}",
          flush=True)
    return row


def figure(rows: list[dict], title: str):
    """Median same-lineage z and different-seed max z against N, one line per L."""
    import plotly.graph_objects as go

    fig = go.Figure()
    for seq in sorted({r["seq_len"] for r in rows}):
        sub = sorted((r for r in rows if r["seq_len"] == seq), key=lambda r: r["n_samples"])
        fig.add_trace(go.Scatter(x=[r["n_samples"] for r in sub], y=[r["pos_median_z"] for r in sub],
                                 mode="lines+markers", name=f"same lineage, median z (L={seq})"))
        fig.add_trace(go.Scatter(x=[r["n_samples"] for r in sub], y=[r["neg_max_z"] for r in sub],
                                 mode="lines+markers", line={"dash": "dot"}, name=f"different seeds, max z (L={seq})"))
    fig.add_hline(y=2.326, line_dash="dash", annotation_text="z for p = 0.01")
    fig.update_layout(title=title, xaxis_title="probe samples N", yaxis_title="calibrated test z", xaxis_type="log")
    return fig


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=["full", "mini"], default="full")
    args = ap.parse_args()
    zoo = build_zoo(FULL if args.zoo == "full" else MINI)
    rows = measure(zoo)
    suffix = "" if args.zoo == "full" else "-mini"
    out = ROOT / "bench" / "results" / f"probe_budget{suffix}"
    out.with_suffix(".json").write_text(json.dumps({"zoo": args.zoo, "zoo_key": zoo.config.key, "rows": rows}, indent=1))
    figure(rows, f"Probe budget on the {args.zoo} seed zoo (calibrated test, token probe)").write_html(
        out.with_suffix(".html"), include_plotlyjs="cdn")
    print(f"wrote {out}.json and {out}.html")


if __name__ == "__main__":
    main()
