"""Batch throughput: models per hour against workers (1, 2) for the local engine and Ray, and Ray's overhead.

Run:  python bench/batch.py                 (about 4 minutes on 2 idle CPU cores: 4 models of ~10 s x 4 runs)
      python bench/batch.py --models 2 --hidden 256 --layers 2   (a smoke run, under a minute)
Builds ``--models`` random-init llama checkpoints (seeds 0..M-1, ``--hidden``/``--layers``, a
32000-token vocabulary) and a manifest of them, then builds a reference library from it with
``--engine local`` and ``--engine ray`` at 1 and 2 workers (one torch thread each, fingerprint
cache off, the quick probe).  Each Ray run gets a fresh local instance (``ray.init(num_cpus=2)``),
whose start-up is reported apart (a platform team's cluster is already running); the walls of both
engines include their workers' start and first imports.  Every run must
give the same fingerprint files.  Writes bench/results/batch.json and batch.md (or --out).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from perf import machine  # noqa: E402

from seedprints.batch import LocalEngine, RayEngine, build_library  # noqa: E402
from seedprints.library import Library  # noqa: E402
from seedprints.probes import preset  # noqa: E402
from seedprints.tiny import tiny_llama  # noqa: E402


def write_models(folder: Path, n: int, hidden: int, layers: int) -> tuple[Path, int]:
    """Save n random-init checkpoints and a CSV manifest of them; returns the manifest and one model's bytes."""
    lines = ["source,name,family,seed"]
    size = 0
    for seed in range(n):
        path = folder / f"model-s{seed}"
        tiny_llama(seed, hidden=hidden, layers=layers, vocab=32000).save_pretrained(path)
        size = sum(p.stat().st_size for p in path.glob("*.safetensors"))
        lines.append(f"{path},bench-s{seed},bench,{seed}")
    manifest = folder / "manifest.csv"
    manifest.write_text("\n".join(lines) + "\n")
    return manifest, size


def run(manifest: Path, lib: Path, engine, spec) -> dict:
    """One library build from scratch; wall time, models per hour and the per-row times."""
    shutil.rmtree(lib, ignore_errors=True)
    t0 = time.perf_counter()
    result = build_library(manifest, lib, engine, spec=spec, device="cpu", threads=1, cache_dir=None)
    wall = time.perf_counter() - t0
    if result.done != len(result.records):
        raise SystemExit(f"benchmark build failed:\n{result.summary()}")
    rows = [r["seconds"] for r in result.records]
    return {"engine": engine.name, "workers": engine.workers, "wall_s": round(wall, 2),
            "models_per_hour": round(3600 * len(rows) / wall, 1), "row_s_mean": round(sum(rows) / len(rows), 2),
            "row_s_max": round(max(rows), 2),
            "files": {r.name: r.content_sha256 for r in Library(lib, create=False).list()}}


def markdown(res: dict) -> str:
    """The results as a Markdown table and the overhead line."""
    out = [f"# Batch throughput ({res['models']} models of {res['checkpoint_mb']} MB, probe {res['probe']}, "
           f"{res['machine']['cores']} cores, {res['machine']['cpu']})", "",
           "| engine | workers | wall (s) | models / hour | mean row (s) |", "|---|---|---|---|---|"]
    out += [f"| {r['engine']} | {r['workers']} | {r['wall_s']} | {r['models_per_hour']} | {r['row_s_mean']} |"
            for r in res["runs"]]
    out += ["", f"Ray start-up (mean per run, not in the walls above): {res['ray_start_s']} s.  Ray overhead at 1 worker against "
                f"local: {res['ray_overhead_1_worker'] * 100:+.1f}% of wall time (target <= 10% for rows of >= 10 s; "
                f"mean row here {res['runs'][0]['row_s_mean']} s).  Identical fingerprint files in every run: "
                f"{res['identical_files']}.", "", f"Note: {res['note']}"]
    return "\n".join(out) + "\n"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", type=int, default=4)
    ap.add_argument("--hidden", type=int, default=768)
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--probe", default="quick")
    ap.add_argument("--note", default="", help="what else ran on the machine during the measurement")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "batch.json"))
    args = ap.parse_args()
    os.environ.setdefault("SOURCE_DATE_EPOCH", "1767225600")  # identical files across runs, compared below
    import ray

    spec = preset(args.probe)
    with tempfile.TemporaryDirectory(prefix="seedprints-bench-batch-") as tmp:
        work = Path(tmp)
        manifest, size = write_models(work, args.models, args.hidden, args.layers)
        runs, ray_start = [], []
        for engine in (LocalEngine(1), LocalEngine(2), RayEngine(workers=1), RayEngine(workers=2)):
            if engine.name == "ray":  # a fresh instance per run: its workers import torch in the run, as local's do
                t0 = time.perf_counter()
                ray.init(address="local", num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False,
                         log_to_driver=False, logging_level="warning")
                ray_start.append(time.perf_counter() - t0)
            try:
                runs.append(run(manifest, work / "lib", engine, spec))
            finally:
                if engine.name == "ray":
                    ray.shutdown()
            print(f"{engine.describe()}: {runs[-1]['wall_s']} s, {runs[-1]['models_per_hour']} models/h", flush=True)
    identical = all(r["files"] == runs[0]["files"] for r in runs)
    for r in runs:
        r.pop("files")
    local1, ray1 = runs[0]["wall_s"], runs[2]["wall_s"]
    res = {"machine": machine(), "models": args.models, "hidden": args.hidden, "layers": args.layers,
           "checkpoint_mb": round(size / 1e6, 1), "probe": args.probe, "probe_spec": spec.to_dict(),
           "ray_start_s": round(sum(ray_start) / len(ray_start), 2), "runs": runs, "ray_overhead_1_worker": round(ray1 / local1 - 1, 4),
           "identical_files": identical, "note": args.note or "none given"}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    out.with_suffix(".md").write_text(markdown(res))
    print(markdown(res))


if __name__ == "__main__":
    main()
