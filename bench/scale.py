"""Scale benchmark: a 7B-shape checkpoint on 2 CPU cores, memory against depth, streaming overhead, cold compare.

Run:  python bench/scale.py                       (about 15 minutes on 2 CPU cores, ~17 GB of scratch disk)
      python bench/scale.py --skip-7b             (the 135M parts only, about 2 minutes)
      python bench/scale.py --probe quick        (the quick probe instead of fast)
Writes bench/results/scale.json (or --out) and prints a Markdown table.  Every figure is
measured in this one run; each extraction runs in a fresh process so its peak RSS (VmHWM)
is its own.  The synthetic checkpoints are random inits written shard by shard in bf16
(never held whole in memory) and deleted afterwards.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from perf import SMOL_135M, build_checkpoint, machine, matmul_flops  # noqa: E402

#: Llama-2-7B shape.
LLAMA_7B = dict(vocab_size=32000, hidden_size=4096, intermediate_size=11008, num_hidden_layers=32,
                num_attention_heads=32, num_key_value_heads=32, max_position_embeddings=4096, rms_norm_eps=1e-5,
                tie_word_embeddings=False, architectures=["LlamaForCausalLM"])


def write_llama_checkpoint(folder: Path, shape: dict, dtype: torch.dtype = torch.bfloat16, seed: int = 0) -> int:
    """Write a random-init llama checkpoint one layer per shard (plus index and config); returns its bytes."""
    from safetensors.torch import save_file
    from transformers import LlamaConfig

    folder.mkdir(parents=True, exist_ok=True)
    cfg = LlamaConfig(**shape, dtype=str(dtype).replace("torch.", ""))
    cfg.save_pretrained(folder)
    g = torch.Generator().manual_seed(seed)
    d, inter, n = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = d // shape["num_attention_heads"] * shape["num_key_value_heads"]
    rand = lambda *s: (torch.randn(*s, generator=g) * 0.02).to(dtype)  # noqa: E731
    weight_map: dict[str, str] = {}
    total = 0

    def write(name: str, tensors: dict[str, torch.Tensor]) -> None:
        nonlocal total
        save_file(tensors, str(folder / name), metadata={"format": "pt"})
        weight_map.update({k: name for k in tensors})
        total += sum(t.numel() * t.element_size() for t in tensors.values())

    shards = n + 1
    write(f"model-00001-of-{shards:05d}.safetensors", {
        "model.embed_tokens.weight": rand(shape["vocab_size"], d), "model.norm.weight": torch.ones(d, dtype=dtype),
        "lm_head.weight": rand(shape["vocab_size"], d)})
    for i in range(n):
        p = f"model.layers.{i}."
        write(f"model-{i + 2:05d}-of-{shards:05d}.safetensors", {
            p + "self_attn.q_proj.weight": rand(d, d), p + "self_attn.k_proj.weight": rand(kv, d),
            p + "self_attn.v_proj.weight": rand(kv, d), p + "self_attn.o_proj.weight": rand(d, d),
            p + "mlp.gate_proj.weight": rand(inter, d), p + "mlp.up_proj.weight": rand(inter, d),
            p + "mlp.down_proj.weight": rand(d, inter), p + "input_layernorm.weight": torch.ones(d, dtype=dtype),
            p + "post_attention_layernorm.weight": torch.ones(d, dtype=dtype)})
    (folder / "model.safetensors.index.json").write_text(json.dumps({"metadata": {"total_size": total},
                                                                     "weight_map": weight_map}))
    return total


_CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {root!r})
from seedprints.extract import extract_checkpoint
from seedprints.loading import resolve_source, source_weights_hash
from seedprints.memory import peak_rss
from seedprints.probes import ProbeSpec
import numpy as np
t_import = time.perf_counter()
src = resolve_source({folder!r})
h = source_weights_hash(src)
t_hash = time.perf_counter()
spec = ProbeSpec(n_samples={n}, seq_len={l}, vocab_range={v})
feats, facts = extract_checkpoint(src, spec, device="cpu", weights_hash=h, stream={stream!r}, max_memory={budget!r})
t_extract = time.perf_counter()
np.save({out!r}, feats)
print(json.dumps({{"import_s": t_import - t0, "hash_s": t_hash - t_import, "extract_s": t_extract - t_hash,
                  "total_s": t_extract - t0, "peak_rss_bytes": peak_rss(), "extraction": facts.extraction,
                  "n_params": facts.n_params, "checkpoint_dtype": facts.checkpoint_dtype}}))
"""


def child(folder: Path, n: int, seq_len: int, vocab: int, stream: bool | None, out: Path,
          budget: str | None = None) -> dict:
    """Fingerprint a checkpoint in a fresh process; its timings, peak RSS and how it ran."""
    code = _CHILD.format(root=str(ROOT), folder=str(folder), n=n, l=seq_len, v=vocab, stream=stream, budget=budget,
                         out=str(out))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"child failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def non_embedding(shape: dict) -> int:
    d, inter, n = shape["hidden_size"], shape["intermediate_size"], shape["num_hidden_layers"]
    kv = d // shape["num_attention_heads"] * shape["num_key_value_heads"]
    return n * (2 * d * d + 2 * kv * d + 3 * d * inter + 2 * d)


def read_seconds(folder: Path) -> float:
    """Seconds to read every file of a folder once (what loading cannot beat)."""
    t0 = time.perf_counter()
    for p in sorted(folder.iterdir()):
        with open(p, "rb") as f:
            while f.read(1 << 24):
                pass
    return time.perf_counter() - t0


def cold_compare(a: Path, b: Path, n: int, seq_len: int, vocab: int) -> dict:
    """`seedprints compare A B` end to end in a fresh process, plus the split measured in another fresh process."""
    cmd = [sys.executable, "-m", "seedprints", "compare", str(a), str(b), "--n-samples", str(n), "--seq-len",
           str(seq_len), "--vocab-range", str(vocab), "--no-cache", "-q", "--device", "cpu"]
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=str(ROOT))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(f"compare failed: {proc.stderr[-2000:]}")
    split_code = rf"""
import json, sys, time
t0 = time.perf_counter()
sys.path.insert(0, {str(ROOT)!r})
import torch
from seedprints.audit import compare
from seedprints.extract import extract_features
from seedprints.fingerprint import Fingerprint
from seedprints.loading import LoadedModel, facts_for, read_config, resolve_source, source_weights_hash
from seedprints.probes import ProbeSpec
from seedprints.streaming import StreamedModel, read_checkpoint_index
t1 = time.perf_counter()
spec = ProbeSpec(n_samples={n}, seq_len={seq_len}, vocab_range={vocab})
from seedprints.loading import import_model_code
s = time.perf_counter(); import_model_code(resolve_source({str(a)!r})); model_code = time.perf_counter() - s
hashing = load = extract = 0.0
fps = []
for path in ({str(a)!r}, {str(b)!r}):
    s = time.perf_counter(); src = resolve_source(path); h = source_weights_hash(src); hs = time.perf_counter()
    sm = StreamedModel(read_config(src, False), read_checkpoint_index(src.weight_files), torch.float32,
                       torch.device("cpu"), path)
    m = LoadedModel(sm.load_all(), None); m.facts = facts_for(m.model, path, h); e = time.perf_counter()
    fps.append(Fingerprint.from_features(spec, extract_features(m, spec), m.facts))
    hashing += hs - s; load += e - hs; extract += time.perf_counter() - e
s = time.perf_counter(); r = compare(fps[0], fps[1]); t = time.perf_counter() - s
print(json.dumps({{"import_s": t1 - t0, "model_code_import_s": model_code, "hash_s": hashing, "load_s": load,
                  "extract_s": extract, "test_s": t}}))
"""
    split = json.loads(subprocess.run([sys.executable, "-c", split_code], capture_output=True, text=True,
                                      check=True).stdout.strip().splitlines()[-1])
    return {"wall_s": wall, "output": proc.stdout.strip(), **split}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--probe", default="fast", help="probe preset (default fast); --n-samples/--seq-len override it")
    ap.add_argument("--n-samples", type=int, default=None, help="probe N")
    ap.add_argument("--seq-len", type=int, default=None, help="probe L")
    ap.add_argument("--skip-7b", action="store_true", help="skip the 7B-shape and depth parts")
    ap.add_argument("--scratch", default=None, help="folder for the synthetic checkpoints (default: a temp folder)")
    ap.add_argument("--out", default=str(ROOT / "bench" / "results" / "scale.json"))
    args = ap.parse_args()
    from seedprints.probes import preset

    base = preset(args.probe)
    n, seq_len, vocab = args.n_samples or base.n_samples, args.seq_len or base.seq_len, int(base.vocab_range or 32000)
    res: dict = {"machine": machine(), "probe": {"preset": args.probe, "n_samples": n, "seq_len": seq_len,
                                                 "vocab_range": vocab, "tokens": n * seq_len}}
    print(f"machine: {res['machine']}; probe N={n} L={seq_len} ({n * seq_len:,} tokens)", flush=True)
    res["matmul_flops"] = matmul_flops("cpu", torch.float32)
    print(f"dense fp32 matmul: {res['matmul_flops'] / 1e9:.1f} GFLOP/s", flush=True)
    with tempfile.TemporaryDirectory(prefix="seedprints-scale-", dir=args.scratch) as tmp:
        work = Path(tmp)
        # 135M: streamed against in-memory, same probe, same run, alternating, best of two each
        smol = build_checkpoint(work / "smol-a")
        times: dict[str, list[float]] = {"in-memory": [], "streamed": []}
        feats = {}
        for rep in range(2):
            for mode, stream in (("in-memory", False), ("streamed", True)):
                r = child(smol, n, seq_len, vocab, stream, work / f"smol-{mode}.npy")
                times[mode].append(r["extract_s"])
                feats[mode] = work / f"smol-{mode}.npy"
                print(f"135M {mode}: extract {r['extract_s']:.2f} s, peak RSS {r['peak_rss_bytes'] / 1e6:.0f} MB "
                      f"({r['extraction']})", flush=True)
        import numpy as np

        fa, fb = np.load(feats["in-memory"]), np.load(feats["streamed"])
        res["smol_streaming"] = {"in_memory_s": min(times["in-memory"]), "streamed_s": min(times["streamed"]),
                                 "ratio": min(times["streamed"]) / min(times["in-memory"]), "all": times,
                                 "max_rel_diff": float(np.abs(fa - fb).max() / np.abs(fa).max())}
        print(f"135M streamed / in-memory: {res['smol_streaming']['ratio']:.3f}", flush=True)

        # cold compare of two 135M checkpoints
        torch.manual_seed(1)
        from transformers import LlamaConfig, LlamaForCausalLM

        LlamaForCausalLM(LlamaConfig(**SMOL_135M)).save_pretrained(work / "smol-b")
        res["read_135m_s"] = read_seconds(smol)
        res["cold_compare"] = cold_compare(smol, work / "smol-b", n, seq_len, vocab)
        print(f"cold compare: {res['cold_compare']}; reading one checkpoint: {res['read_135m_s']:.2f} s", flush=True)

        if not args.skip_7b:
            for layers in (8, 32):
                shape = dict(LLAMA_7B, num_hidden_layers=layers)
                folder = work / f"llama7b-{layers}"
                t0 = time.perf_counter()
                size = write_llama_checkpoint(folder, shape)
                wrote = time.perf_counter() - t0
                print(f"wrote {layers}-layer 7B-width checkpoint: {size / 1e9:.1f} GB in {wrote:.0f} s", flush=True)
                # streamed in both, so depth is the only difference (the 8-layer one would fit in memory)
                r = child(folder, n, seq_len, vocab, True, work / f"llama{layers}.npy")
                r.update(layers=layers, checkpoint_bytes=size, write_s=wrote,
                         achieved_flops=2 * non_embedding(shape) * n * seq_len / r["extract_s"])
                r["fraction_of_matmul"] = r["achieved_flops"] / res["matmul_flops"]
                res[f"llama7b_{layers}_layers"] = r
                print(f"{layers} layers: {json.dumps(r)}", flush=True)
                import shutil

                shutil.rmtree(folder)
            a, b = res["llama7b_8_layers"]["peak_rss_bytes"], res["llama7b_32_layers"]["peak_rss_bytes"]
            res["depth_rss_ratio"] = b / a
    out = Path(args.out)
    if args.skip_7b and out.is_file():  # keep the 7B figures of an earlier full run, and say when they were made
        old = json.loads(out.read_text())
        for key in ("llama7b_8_layers", "llama7b_32_layers", "depth_rss_ratio"):
            if key in old:
                res[key] = old[key]
        res["7b_from_earlier_run"] = old.get("finished", "unknown")
    res["finished"] = time.strftime("%Y-%m-%d %H:%M:%S")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(res, indent=1))
    print()
    print(markdown(res))


def markdown(r: dict) -> str:
    """The README table."""
    m, p = r["machine"], r["probe"]
    s, c = r["smol_streaming"], r["cold_compare"]
    lines = [f"Machine: {m['cpu']}, {m['cores']} cores, {m['memory_gb']} GB, torch {m['torch']}; probe "
             f"`{p.get('preset', 'custom')}`, N={p['n_samples']} "
             f"L={p['seq_len']} ({p['tokens']:,} tokens); dense fp32 matmul {r['matmul_flops'] / 1e9:.0f} GFLOP/s.", "",
             "| measurement | value | target |", "|---|---|---|"]
    for layers in (32, 8):
        x = r.get(f"llama7b_{layers}_layers")
        if x:
            lines.append(f"| 7B-shape llama, {layers} layers ({x['checkpoint_bytes'] / 1e9:.1f} GB bf16): end to end "
                         f"(import {x['import_s']:.1f} + hash {x['hash_s']:.0f} + extract {x['extract_s']:.0f} s) | "
                         f"**{x['total_s'] / 60:.1f} min**, peak RSS **{x['peak_rss_bytes'] / 1e9:.2f} GB**, "
                         f"{x['achieved_flops'] / 1e9:.0f} GFLOP/s = {x['fraction_of_matmul']:.0%} of matmul | "
                         + ("<= 10 min, <= 3 GB |" if layers == 32 else "|"))
    if "depth_rss_ratio" in r:
        lines.append(f"| peak RSS, 32 layers / 8 layers (same width) | **{r['depth_rss_ratio']:.3f}** | < 1.15 |")
    lines.append(f"| 135M (SmolLM shape): streamed / in-memory extraction time | **{s['ratio']:.3f}** "
                 f"({s['streamed_s']:.2f} s / {s['in_memory_s']:.2f} s; max rel. difference {s['max_rel_diff']:.1g}) | <= 1.15 |")
    lines.append(f"| cold `seedprints compare` of two 135M checkpoints, fresh process | **{c['wall_s']:.1f} s** "
                 f"(split over both models, measured one after another: import {c['import_s']:.1f} + transformers' "
                 f"model code {c.get('model_code_import_s', 0):.1f}, hash {c.get('hash_s', 0):.1f} (overlapped with "
                 f"that import in the CLI), load {c['load_s']:.1f}, extract {c['extract_s']:.1f}, "
                 f"test {c['test_s']:.2f}; reading one checkpoint file {r['read_135m_s']:.2f} s) | <= 5 s |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
