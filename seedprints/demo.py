"""The embedded demo: a tiny llama family with known seeds, built from scratch, plus three suspects.

Library: for each reference seed, the freshly initialised model and a lightly fine-tuned copy
(full fingerprints, so the app can show reference-to-reference evidence).  Suspects: seed 3
fine-tuned then 8-bit quantized, seed 1 with 30% of its weights pruned, and seed 77, which the
library does not hold.

Deterministic (torch seeds, seeded probe) and cached under ``$SEEDPRINTS_HOME/demo``; nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch

from .audit import fingerprint_model
from .cache import FingerprintCache
from .derive import fine_tune, magnitude_prune, quantize_weights, weight_noise
from .library import Library
from .paths import home
from .progress import ProgressCallback
from .probes import ProbeSpec
from .tiny import tiny_llama

DEMO_VERSION = 2
FAMILY = "demo-llama"
REFERENCE_SEEDS = (1, 2, 3, 4)
DERIVED_FROM = 3
PRUNED_FROM = 1
UNRELATED_SEED = 77
#: suspect key -> what it is, for people
SUSPECTS = {"derived": f"seed {DERIVED_FROM}, fine-tuned then 8-bit quantized",
            "pruned": f"seed {PRUNED_FROM} with 30% of its weights pruned",
            "unrelated": f"seed {UNRELATED_SEED}, a seed the library does not hold"}
VOCAB = 1024
#: The probe every demo fingerprint shares.
DEMO_PROBE = ProbeSpec(kind="token", n_samples=400, seq_len=24, vocab_range=VOCAB, seed=0)


def demo_model(seed: int) -> torch.nn.Module:
    """A freshly initialised 4-layer, 256-wide llama-style LM whose weights depend only on ``seed``."""
    return tiny_llama(seed, hidden=256, layers=4, vocab=VOCAB)


def build_demo(root: Path | None = None, progress: ProgressCallback | None = None) -> dict[str, Path]:
    """Build (or reuse) the demo: model folders, a library of the reference seeds, three suspects.

    Returns paths: 'library', and one model folder per key of :data:`SUSPECTS`.
    """
    root = Path(root) if root is not None else home() / "demo"
    marker = root / "demo.json"
    paths = {"library": root / "library", **{k: root / "models" / f"suspect-{k}" for k in SUSPECTS}}
    if marker.is_file() and json.loads(marker.read_text()).get("version") == DEMO_VERSION:
        return paths
    shutil.rmtree(root, ignore_errors=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    say = progress or (lambda stage, done, total: None)
    cache = FingerprintCache(root / "cache")
    lib = Library(paths["library"])
    steps = 2 * len(REFERENCE_SEEDS) + len(SUSPECTS)
    done = 0
    for seed in REFERENCE_SEEDS:
        base = demo_model(seed)
        variants = [("", base, "random init, 4 layers, D=256"),
                    ("-ft", fine_tune(base, steps=20, lr=1e-3, seed=seed), "fine-tuned 20 steps at lr 1e-3")]
        for suffix, model, notes in variants:
            name = f"{FAMILY}-seed{seed}{suffix}"
            say(f"building reference {name}", done, steps)
            folder = root / "models" / name
            model.save_pretrained(folder)
            fp = fingerprint_model(folder, DEMO_PROBE, cache=cache, device="cpu")
            lib.add(fp, name=name, family=FAMILY, seed=seed, notes=notes, keep="all")
            done += 1
    makers = {"derived": lambda: quantize_weights(fine_tune(demo_model(DERIVED_FROM), steps=30, lr=1e-4), bits=8),
              "pruned": lambda: magnitude_prune(demo_model(PRUNED_FROM), 0.3),
              "unrelated": lambda: weight_noise(demo_model(UNRELATED_SEED), rel=0.0)}
    for key, make in makers.items():
        say(f"building suspect: {SUSPECTS[key]}", done, steps)
        make().save_pretrained(paths[key])
        done += 1
    marker.write_text(json.dumps({"version": DEMO_VERSION, "probe_id": DEMO_PROBE.id,
                                  "derived_from_seed": DERIVED_FROM, "pruned_from_seed": PRUNED_FROM,
                                  "unrelated_seed": UNRELATED_SEED}))
    say("demo ready", steps, steps)
    return paths
