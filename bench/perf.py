"""Performance benchmark: extraction vs a plain baseline, FLOP/s vs matmul, peak memory, scans, file sizes.

Run:  python bench/perf.py --quick        (about 3 minutes on 2 CPU cores)
      python bench/perf.py                (standard probe, a few minutes more)
      python bench/perf.py --device cuda  (GPU path, bf16)
Writes bench/results/perf.json (or --out) and prints a Markdown table.  Every ratio is
measured side by side in this one run, on the same model and probe.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seedprints import Library, scan  # noqa: E402
from seedprints.extract import default_batch_size  # noqa: E402
from seedprints.fingerprint import Fingerprint  # noqa: E402
from seedprints.loading import ModelFacts, load_model  # noqa: E402
from seedprints.probes import preset  # noqa: E402

#: Shape of SmolLM-135M (llama-style, 30 layers, D = 576); weights are a seeded random init.
SMOL_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                 num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=2048,
                 tie_word_embeddings=True, rms_norm_eps=1e-5, architectures=["LlamaForCausalLM"])


def machine() -> dict:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info = {"cpu": cpu, "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "torch": torch.__version__,
            "python": platform.python_version(), "memory_gb": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)}
    if torch.cuda.is_available():
        info["gpu"] = torch.cuda.get_device_name(0)
    return info


def build_checkpoint(folder: Path) -> Path:
    from transformers import LlamaConfig, LlamaForCausalLM
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    torch.manual_seed(0)
    LlamaForCausalLM(LlamaConfig(**SMOL_135M)).save_pretrained(folder)
    return folder


def matmul_flops(device: str, dtype: torch.dtype, size: int = 2048, seconds: float = 3.0) -> float:
    """Dense matmul FLOP/s on this device and dtype: the practical limit."""
    a = torch.randn(size, size, device=device, dtype=dtype)
    b = torch.randn(size, size, device=device, dtype=dtype)
    for _ in range(2):
        a @ b
    sync(device)
    reps, t0 = 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        a @ b
        reps += 1
    sync(device)
    return 2 * size**3 * reps / (time.perf_counter() - t0)


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def non_embedding_params(model: torch.nn.Module) -> int:
    total = sum(p.numel() for p in {id(p): p for p in model.parameters()}.values())
    return total - model.get_input_embeddings().weight.numel() - (
        0 if model.config.tie_word_embeddings else model.get_output_embeddings().weight.numel())


def baseline_features(folder: Path, spec, device: str) -> tuple[np.ndarray, float]:
    """The obvious implementation: full causal LM, default dtype, output_hidden_states, batch 8."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    rows = []
    with torch.no_grad():
        model(input_ids=torch.from_numpy(next(spec.batches(8))[1]).to(device), output_hidden_states=True)  # warm-up
        sync(device)
        t0 = time.perf_counter()
        for _, batch in spec.batches(8):
            out = model(input_ids=torch.from_numpy(batch).to(device), output_hidden_states=True)
            rows.append(out.hidden_states[-1][:, -1, :].float().cpu().numpy())
        sync(device)
        dt = time.perf_counter() - t0
    return np.concatenate(rows), dt


def attribution(folder: Path, spec, device: str, n_samples: int) -> list[dict]:
    """Where the speed-up comes from: tokens/s of body-only vs full-LM forwards at several batch sizes."""
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(folder).to(device).eval()
    sub = spec.replace(n_samples=n_samples)
    rows = []
    with torch.inference_mode():
        for what, bs in (("full LM + hidden states", 8), ("body only", 8), ("body only", 32), ("body only", 64),
                         ("full LM (logits)", 64), ("body only", 128), ("body only", 256)):
            run = (lambda x: model(input_ids=x, output_hidden_states=True)) if what.startswith("full LM +") else \
                (lambda x: model(input_ids=x)) if what.startswith("full LM") else \
                (lambda x: model.model(input_ids=x, use_cache=False))
            run(torch.from_numpy(next(sub.batches(bs))[1]).to(device))  # warm-up
            sync(device)
            t0 = time.perf_counter()
            for _, batch in sub.batches(bs):
                run(torch.from_numpy(batch).to(device))
            sync(device)
            dt = time.perf_counter() - t0
            rows.append({"forward": what, "batch_size": bs, "tokens_per_s": sub.n_tokens / dt})
            print(f"  {what:24s} batch {bs:3d}: {sub.n_tokens / dt:7.0f} tokens/s", flush=True)
    return rows


def ours_features(folder: Path, spec, device: str) -> tuple[np.ndarray, float, int]:
    loaded = load_model(folder, device=device)
    from seedprints.extract import extract_features

    extract_features(loaded, spec.replace(n_samples=8))  # warm-up, as for the baseline
    sync(device)
    t0 = time.perf_counter()
    feats = extract_features(loaded, spec)
    sync(device)
    return feats, time.perf_counter() - t0, non_embedding_params(loaded.model)


_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
import seedprints
from seedprints.extract import extract_features
from seedprints.loading import load_model
from seedprints.probes import preset
from seedprints.fingerprint import Fingerprint
from seedprints import Library, scan
t_import = time.perf_counter()
loaded = load_model({folder!r}, device={device!r})
t_load = time.perf_counter()
spec = preset({preset!r})
feats = extract_features(loaded, spec)
t_extract = time.perf_counter()
fp = Fingerprint.from_features(spec, feats, loaded.facts)
rep = scan(fp, Library({library!r}, create=False).items())
t_scan = time.perf_counter()
# VmHWM is this process's own peak RSS; ru_maxrss would also count the parent's RSS at fork time
hwm = next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmHWM"))
print(json.dumps({{"peak_rss_bytes": hwm,
                  "import_s": t_import - t0, "load_s": t_load - t_import, "extract_s": t_extract - t_load,
                  "scan_s": t_scan - t_extract, "verdict": rep.verdict.label, "references": len(rep.rows) + len(rep.skipped)}}))
"""


def synthetic_library(root: Path, n_refs: int, spec, d: int, suspect_feats: np.ndarray | None = None) -> Library:
    """n_refs fingerprints of realistic shape (N x D float32, stored at keep 0.2); one related to the suspect."""
    lib = Library(root)
    rng = np.random.default_rng(n_refs)
    offsets = np.linspace(-2, 2, d)
    for i in range(n_refs):
        if i == 0 and suspect_feats is not None:
            feats = suspect_feats + 0.3 * rng.standard_normal(suspect_feats.shape).astype(np.float32)
        else:
            feats = (rng.standard_normal((spec.n_samples, d)) + rng.permutation(offsets)).astype(np.float32)
        facts = ModelFacts(f"ref{i}", "LlamaForCausalLM", "llama", d, 49152, 134_515_008, f"synthetic:{n_refs}:{i}")
        lib.add(Fingerprint.from_features(spec, feats, facts), name=f"ref{i:04d}", family="synthetic", seed=i)
    return lib


def time_scans(spec, d: int, sizes: list[int], workdir: Path) -> list[dict]:
    rng = np.random.default_rng(0)
    sus_feats = (rng.standard_normal((spec.n_samples, d)) + np.linspace(-2, 2, d)).astype(np.float32)
    suspect = Fingerprint.from_features(spec, sus_feats, ModelFacts("suspect", "LlamaForCausalLM", "llama", d, 49152, 1, "s"))
    out = []
    for n in sizes:
        lib = synthetic_library(workdir / f"lib{n}", n, spec, d, sus_feats)
        scan(suspect, lib.items())  # warm file cache and imports
        t0 = time.perf_counter()
        rep = scan(suspect, lib.items())
        dt = time.perf_counter() - t0
        out.append({"references": n, "seconds": dt, "ms_per_reference": 1000 * dt / n, "verdict": rep.verdict.label,
                    "top": rep.rows[0].reference.name})
        print(f"  scan of {n:5d} references: {dt:7.3f} s ({1000 * dt / n:.2f} ms each), verdict {rep.verdict.label}",
              flush=True)
    return out


def fingerprint_sizes(workdir: Path) -> list[dict]:
    spec = preset("paper")
    out = []
    for d in (576, 4096):
        feats = np.random.default_rng(d).standard_normal((2000, d)).astype(np.float32)
        fp = Fingerprint.from_features(spec, feats, ModelFacts("m", "LlamaForCausalLM", "llama", d, 32000, 1, "h"))
        for keep in ("all", 0.2, 0.1):
            stored = fp if keep == "all" else fp.compact(keep)
            path = stored.save(workdir / f"fp-{d}-{keep}.safetensors")
            out.append({"hidden_size": d, "n_samples": 2000, "keep": keep, "columns": len(stored.columns),
                        "bytes": path.stat().st_size})
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="quick probe (N=600, L=32) and scans up to 1,000 references")
    ap.add_argument("--device", default="cpu", help="cpu or cuda")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "perf.json"))
    args = ap.parse_args()
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        sys.exit("perf.py: --device cuda requested but no CUDA GPU is available")
    preset_name = "quick" if args.quick else "standard"
    spec = preset(preset_name)
    results: dict = {"machine": machine(), "device": args.device, "probe": preset_name, "probe_spec": spec.to_dict()}
    print(f"machine: {results['machine']}", flush=True)
    with tempfile.TemporaryDirectory(prefix="seedprints-perf-") as tmp:
        work = Path(tmp)
        folder = build_checkpoint(work / "smol135m")
        ckpt_bytes = sum(p.stat().st_size for p in folder.glob("*.safetensors"))
        results["checkpoint_bytes"] = ckpt_bytes

        dtype = torch.float32 if args.device == "cpu" else torch.bfloat16
        peak = matmul_flops(args.device, dtype)
        results["matmul_flops"] = peak
        print(f"dense matmul ({dtype}): {peak / 1e9:.1f} GFLOP/s", flush=True)

        base_feats, base_s = baseline_features(folder, spec, args.device)
        print(f"baseline extraction: {base_s:.2f} s", flush=True)
        our_feats, our_s, n_nonemb = ours_features(folder, spec, args.device)
        print(f"seedprints extraction: {our_s:.2f} s (batch {default_batch_size(spec, torch.device(args.device))})", flush=True)
        diff = float(np.abs(base_feats - our_feats).max())
        scale = float(np.abs(base_feats).max())
        tokens = spec.n_tokens
        achieved = 2 * n_nonemb * tokens / our_s
        results["extraction"] = {
            "tokens": tokens, "baseline_s": base_s, "seedprints_s": our_s, "speedup": base_s / our_s,
            "max_abs_diff": diff, "feature_scale": scale, "tolerance": 1e-4 * scale, "equal_within_tolerance": diff <= 1e-4 * scale,
            "non_embedding_params": n_nonemb, "achieved_flops": achieved, "fraction_of_matmul": achieved / peak,
            "batch_size": default_batch_size(spec, torch.device(args.device)),
        }

        results["attribution"] = attribution(folder, spec, args.device, 256)

        # peak memory and the quick-audit breakdown, in a fresh process so earlier work does not count
        lib10 = synthetic_library(work / "lib10-audit", 10, preset("quick"), 576)
        child = _CHILD.format(root=str(ROOT), folder=str(folder), device=args.device, preset="quick",
                              library=str(lib10.root))
        proc = subprocess.run([sys.executable, "-c", child], capture_output=True, text=True, check=True)
        audit = json.loads(proc.stdout.strip().splitlines()[-1])
        audit["total_s"] = audit["import_s"] + audit["load_s"] + audit["extract_s"] + audit["scan_s"]
        audit["rss_limit_bytes"] = 1.3 * ckpt_bytes + 500e6
        audit["rss_over_checkpoint"] = audit["peak_rss_bytes"] / ckpt_bytes
        results["quick_audit"] = audit
        print(f"quick audit: {audit}", flush=True)

        sizes = [10, 100, 1000]
        results["scan"] = time_scans(preset("quick"), 576, sizes, work)
        results["fingerprint_sizes"] = fingerprint_sizes(work)

    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(results, indent=1))
    print()
    print(markdown(results))


def markdown(r: dict) -> str:
    e, a = r["extraction"], r["quick_audit"]
    m = r["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, torch {m['torch']}"
        + (f", GPU {m['gpu']}" if "gpu" in m else "") + f"; device `{r['device']}`; probe `{r['probe']}` "
        f"({e['tokens']:,} tokens); model: SmolLM-135M shape (random init), checkpoint {r['checkpoint_bytes'] / 1e6:.0f} MB.",
        "",
        "| measurement | value |",
        "|---|---|",
        f"| baseline extraction (full LM, `output_hidden_states`, batch 8) | {e['baseline_s']:.2f} s |",
        f"| SeedPrints extraction (body only, batch {e['batch_size']}) | {e['seedprints_s']:.2f} s |",
        f"| speed-up (same run) | **{e['speedup']:.2f}x** |",
        f"| max abs feature difference (tolerance 1e-4 x max abs = {e['tolerance']:.2g}) | {e['max_abs_diff']:.2g} |",
        f"| achieved FLOP/s (2 x {e['non_embedding_params'] / 1e6:.1f}M non-embedding params x tokens / time) | {e['achieved_flops'] / 1e9:.1f} GFLOP/s |",
        f"| dense matmul FLOP/s, same dtype | {r['matmul_flops'] / 1e9:.1f} GFLOP/s |",
        f"| fraction of matmul FLOP/s | **{e['fraction_of_matmul']:.0%}** |",
        f"| peak RSS of a quick audit process / checkpoint | {a['peak_rss_bytes'] / 1e6:.0f} MB / {r['checkpoint_bytes'] / 1e6:.0f} MB "
        f"(limit 1.3 x + 500 MB = {a['rss_limit_bytes'] / 1e6:.0f} MB) |",
        f"| quick audit, 10 references: import + load + extract + scan | {a['import_s']:.1f} + {a['load_s']:.1f} + "
        f"{a['extract_s']:.1f} + {a['scan_s']:.2f} = **{a['total_s']:.1f} s** ({a['verdict']}) |",
    ]
    for row in r.get("attribution", []):
        lines.append(f"| attribution: {row['forward']}, batch {row['batch_size']} | {row['tokens_per_s']:.0f} tokens/s |")
    for s in r["scan"]:
        lines.append(f"| scan of {s['references']:,} references (default test) | {s['seconds']:.3f} s "
                     f"({s['ms_per_reference']:.2f} ms each) |")
    for f in r["fingerprint_sizes"]:
        lines.append(f"| fingerprint file, D = {f['hidden_size']}, N = 2000, keep {f['keep']} ({f['columns']} columns) | "
                     f"{f['bytes']:,} B |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
