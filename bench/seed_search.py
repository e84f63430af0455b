"""Seed search benchmark: recover each zoo model's init seed from a range, with no library.

Run:  python bench/seed_search.py                 (mini zoo, built if needed; about 6 minutes on 2 cores)
      python bench/seed_search.py --zoo full      (the full zoo, if built)
      python bench/seed_search.py --markdown-only (rewrite the .md from the .json)
Writes bench/results/seed_search.json and seed_search.md beside it, and prints the Markdown.

- Recovery: every model of the zoo (init, pretrain and each derivative) and the evasion kinds made in memory
  from each pretrain (seedprints.evasion.ATTACKS) searched over --range (0-99) with the zoo recipe at the
  default probe, stopping at the first decisive match (valid for the whole range: seedprints/seeds.py).
- Open set: each pretrain and ft model searched over --open-range, which holds none of the zoo's seeds, to the
  end (no early stop): no seed may be recovered.
- Speed: seeds tried per second (rebuild + fingerprint + test; the suspect is fingerprinted once, before) for
  SmolLM2-135M's configuration (a LlamaConfig, no download; a 135M suspect built from seed 1 with the
  transformers-cpu recipe, searched over 0-2) and for the zoo's configuration, on --threads CPU threads.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from seedprints.evasion import ATTACKS  # noqa: E402
from seedprints.seeds import search_seeds  # noqa: E402
from seedprints.zoo import FULL, MINI, Zoo, build_zoo, new_model, zoo_root  # noqa: E402

#: SmolLM2-135M's configuration (HuggingFaceTB/SmolLM2-135M config.json), built here with no download
SMOL2_135M = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                  num_attention_heads=9, num_key_value_heads=3, max_position_embeddings=8192,
                  tie_word_embeddings=True, rms_norm_eps=1e-5, rope_theta=100000.0, architectures=["LlamaForCausalLM"])


def _row(res, kind: str, truth: int | None) -> dict:
    best = res.best
    holm = dict(zip((t.seed for t in res.trials), res.log10_p_holm))
    others = [t.z for t in res.trials if t.seed != truth]
    return {"model": kind, "true_seed": truth, "label": res.label, "seed_found": res.seed,
            "correct": res.seed == truth if truth is not None else res.seed is None,
            "tried": len(res.trials), "n_range": res.n_range, "stopped_early": res.stopped_early,
            "best_seed": best.seed if best else None, "best_z": round(best.z, 2) if best else None,
            "best_log10_p_holm": round(holm[best.seed], 2) if best else None,
            "max_z_other_seeds": round(max(others), 2) if others else None,  # None: the first seed tried matched
            "seconds": res.seconds, "trial_seconds": round(sum(t.seconds for t in res.trials), 3)}


def recovery(zoo, rng: str, open_rng: str, say) -> tuple[list[dict], list[dict]]:
    """Every zoo model and evasion kind over rng (stop at match), and pretrain/ft over open_rng (to the end)."""
    rows, open_rows = [], []
    for m in zoo.models:
        say(f"recovery: {m.key}")
        rows.append(_row(search_seeds(m.path, rng, recipe="zoo", stop_at_match=True, name=m.key), m.stage, m.seed))
        rows[-1]["key"] = m.key
        if m.stage == "pretrain":
            from seedprints.loading import load_model

            model = load_model(m.path, device="cpu").model
            for attack, make in ATTACKS.items():
                say(f"recovery: {m.key} {attack}")
                copy = make(model, 7).model
                rows.append(_row(search_seeds(copy, rng, recipe="zoo", stop_at_match=True, name=f"{m.key}+{attack}"),
                                 attack, m.seed))
                rows[-1]["key"] = f"{m.key}+{attack}"
        if m.stage in ("pretrain", "ft"):
            say(f"open set: {m.key}")
            open_rows.append(_row(search_seeds(m.path, open_rng, recipe="zoo", name=m.key), m.stage, None))
            open_rows[-1]["key"] = m.key
    return rows, open_rows


def speed(label: str, suspect: torch.nn.Module, rng: str, recipe: str, truth: int) -> dict:
    t0 = time.perf_counter()
    res = search_seeds(suspect, rng, recipe=recipe, name=label)
    total = time.perf_counter() - t0
    trial = sum(t.seconds for t in res.trials)
    n_params = sum(p.numel() for p in {id(p): p for p in suspect.parameters()}.values())
    return {"config": label, "parameters": n_params, "recipe": recipe, "seeds": rng, "tried": len(res.trials),
            "trial_seconds": round(trial, 2), "seeds_per_second": round(len(res.trials) / trial, 3),
            "seconds_per_seed": round(trial / len(res.trials), 2),
            "setup_seconds": round(total - trial, 2), "true_seed": truth, "label": res.label, "seed_found": res.seed}


def markdown(res: dict) -> str:
    rec, opn = res["recovery"], res["open_set"]
    ok = sum(r["correct"] for r in rec)
    lines = [
        "# Seed search: the init seed back from a range, with no library", "",
        f"Zoo `{res['zoo']}`, recipe `zoo` (bit-identical to `transformers-cpu` on these models, tests/test_seeds.py), "
        f"probe `{res['probe']}` (the default, token range limited to the vocabulary), test `{res['test']}` at "
        f"alpha = {res['alpha']:g}, Holm over the whole range. Torch {res['torch']}, transformers "
        f"{res['transformers']}, {res['cpu']}; load average {res['load_average'][0]} at the end (the cores are "
        "shared with other jobs). "
        f"Command: `{res['command']}` ({res['seconds']:.0f} s).", "",
        f"## Recovery over {res['range']} (stop at the first decisive match)", "",
        f"**{ok}/{len(rec)}** models got their own seed back.", "",
        "| model | true seed | verdict | seed found | seeds tried | z | log10 p (Holm, whole range) | max z, other seeds |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['key']} | {r['true_seed']} | {r['label']} | {r['seed_found']} | {r['tried']}/{r['n_range']} | "
              f"{r['best_z']} | {r['best_log10_p_holm']} | {'-' if r['max_z_other_seeds'] is None else r['max_z_other_seeds']} |"
              for r in rec]
    none = sum(r["seed_found"] is None for r in opn)
    lines += ["", f"## Open set: {res['open_range']} holds none of the zoo's seeds (searched to the end)", "",
              f"**{none}/{len(opn)}** models got no seed (the right answer); "
              f"{sum(r['tried'] for r in opn)} unrelated inits tried in all.", "",
              "| model | verdict | seeds tried | closest seed | its z | its log10 p (Holm) |", "| --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {r['key']} | {r['label']} | {r['tried']} | {r['best_seed']} | {r['best_z']} | {r['best_log10_p_holm']} |"
              for r in opn]
    lines += ["", f"## Speed on {res['threads']} CPU threads", "",
              "Per seed: rebuild the init, fingerprint it, test (basis check included); the suspect is fingerprinted "
              "once before (setup). Measured beside other jobs on the same cores (load average in the header), so "
              "the times per seed are upper bounds.", "",
              "| configuration | parameters | seeds | seeds / s | s / seed | setup s | verdict |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    lines += [f"| {s['config']} | {s['parameters']:,} | {s['seeds']} | {s['seeds_per_second']} | {s['seconds_per_seed']} | "
              f"{s['setup_seconds']} | {s['label']}" + (f" seed {s['seed_found']}" if s["seed_found"] is not None else "")
              + f" (true seed {s['true_seed']}) |" for s in res["speed"]]
    lines += ["", "A real model trained by code that is not one of the recipes (SmolLM2) gets \"no seed recovered\": "
              "not measured here (no download in this bench)."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--zoo", choices=["mini", "full"], default="mini")
    ap.add_argument("--zoo-root", type=Path, default=None, help="zoo folder (default: $SEEDPRINTS_HOME/zoo/...)")
    ap.add_argument("--range", default="0-99", help="the range each model's seed is searched in")
    ap.add_argument("--open-range", default="100-119", help="a range with none of the zoo's seeds")
    ap.add_argument("--threads", type=int, default=2, help="CPU threads of the speed runs (the rest use one)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "seed_search.json")
    ap.add_argument("--markdown-only", action="store_true", help="rewrite the .md from an existing --out .json")
    args = ap.parse_args(argv)
    if args.markdown_only:
        text = markdown(json.loads(args.out.read_text()))
        args.out.with_suffix(".md").write_text(text)
        print(text)
        return 0
    import transformers

    from seedprints.probes import DEFAULT_PRESET
    from seedprints.seeds import seed_probe

    torch.set_num_threads(1)  # the zoo and the recovery runs: small models, where extra threads on shared cores only slow
    say = lambda text: print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)  # noqa: E731
    t0 = time.perf_counter()
    config = MINI if args.zoo == "mini" else FULL
    if args.zoo == "full" and not (zoo_root(config, args.zoo_root) / "zoo.json").is_file():  # hours to build
        ap.error("the full zoo is not built: run python bench/accuracy.py first, or use --zoo mini")
    manifest = zoo_root(config, args.zoo_root) / "zoo.json"
    if manifest.is_file():  # a finished zoo is read as it is (build_zoo would rewrite its manifest)
        zoo = Zoo(manifest.parent, config, json.loads(manifest.read_text()))
    else:
        zoo = build_zoo(config, root=args.zoo_root, progress=lambda stage, done, total: say(f"zoo: {stage}"))
    rows, open_rows = recovery(zoo, args.range, args.open_range, say)
    from transformers import AutoModelForCausalLM, LlamaConfig

    torch.set_num_threads(args.threads)
    say("speed: SmolLM2-135M configuration")
    torch.manual_seed(1)
    smol = AutoModelForCausalLM.from_config(LlamaConfig(**SMOL2_135M)).eval()
    speeds = [speed("SmolLM2-135M (llama, D = 576, 30 layers)", smol, "0-2", "transformers-cpu", 1)]
    del smol
    for cfg in dict.fromkeys((config, FULL)):
        say(f"speed: zoo {cfg.name} configuration")
        speeds.append(speed(f"zoo {cfg.name} (llama, D = {cfg.hidden}, {cfg.layers} layers)",
                            new_model("llama", cfg, 4).eval(), "0-9", "zoo", 4))
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").is_file() else ""
    res = {"zoo": f"{config.name}-{config.key}", "range": args.range, "open_range": args.open_range,
           "probe": f"{DEFAULT_PRESET} (id {seed_probe(new_model('llama', config, 0).config).id})",
           "test": "calibrated (basis check)", "alpha": 0.01, "torch": torch.__version__,
           "transformers": transformers.__version__, "threads": args.threads, "cpu": cpu,
           "load_average": [round(x, 2) for x in os.getloadavg()],
           "command": "python bench/seed_search.py" + ("" if args.zoo == "mini" else " --zoo full"),
           "recovery": rows, "open_set": open_rows, "speed": speeds, "seconds": round(time.perf_counter() - t0, 1)}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(res, indent=1))
    text = markdown(res)
    args.out.with_suffix(".md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
