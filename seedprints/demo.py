"""The embedded demo: a tiny llama family with known seeds, built from scratch, plus two suspects.

Deterministic (torch seeds, seeded probe) and cached under ``$SEEDPRINTS_HOME/demo``; nothing is downloaded.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import torch

from .audit import fingerprint_model
from .cache import FingerprintCache
from .derive import fine_tune, quantize_weights, weight_noise
from .library import Library
from .paths import home
from .probes import ProbeSpec

DEMO_VERSION = 1
FAMILY = "demo-llama"
REFERENCE_SEEDS = (1, 2, 3, 4)
DERIVED_FROM = 3
UNRELATED_SEED = 77
VOCAB = 1024
#: The probe every demo fingerprint shares.
DEMO_PROBE = ProbeSpec(kind="token", n_samples=400, seq_len=24, vocab_range=VOCAB, seed=0)


def demo_model(seed: int) -> torch.nn.Module:
    """A freshly initialised 4-layer, 256-wide llama-style LM whose weights depend only on ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM

    cfg = LlamaConfig(vocab_size=VOCAB, hidden_size=256, intermediate_size=512, num_hidden_layers=4,
                      num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                      architectures=["LlamaForCausalLM"])
    torch.manual_seed(seed)
    return LlamaForCausalLM(cfg).eval()


def build_demo(root: Path | None = None, progress: Callable[[str, float], None] | None = None) -> dict[str, Path]:
    """Build (or reuse) the demo: model folders, a library of the reference seeds, two suspects.

    Returns paths: 'library', 'derived' (seed 3 fine-tuned, then 8-bit quantized), 'unrelated' (seed 77).
    """
    root = Path(root) if root is not None else home() / "demo"
    marker = root / "demo.json"
    paths = {"library": root / "library", "derived": root / "models" / "suspect-derived",
             "unrelated": root / "models" / "suspect-unrelated"}
    if marker.is_file() and json.loads(marker.read_text()).get("version") == DEMO_VERSION:
        return paths
    shutil.rmtree(root, ignore_errors=True)
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    say = progress or (lambda msg, frac: None)
    cache = FingerprintCache(root / "cache")
    lib = Library(paths["library"])
    steps = len(REFERENCE_SEEDS) + 2
    for i, seed in enumerate(REFERENCE_SEEDS):
        say(f"building reference seed {seed}", i / steps)
        folder = root / "models" / f"{FAMILY}-seed{seed}"
        demo_model(seed).save_pretrained(folder)
        fp = fingerprint_model(folder, DEMO_PROBE, cache=cache, device="cpu")
        lib.add(fp, name=f"{FAMILY}-seed{seed}", family=FAMILY, seed=seed, notes="random init, 4 layers, D=256")
    say("building derived suspect", (steps - 2) / steps)
    derived = quantize_weights(fine_tune(demo_model(DERIVED_FROM), steps=30, lr=1e-4), bits=8)
    derived.save_pretrained(paths["derived"])
    say("building unrelated suspect", (steps - 1) / steps)
    weight_noise(demo_model(UNRELATED_SEED), rel=0.0).save_pretrained(paths["unrelated"])
    marker.write_text(json.dumps({"version": DEMO_VERSION, "probe_id": DEMO_PROBE.id,
                                  "derived_from_seed": DERIVED_FROM, "unrelated_seed": UNRELATED_SEED}))
    say("demo ready", 1.0)
    return paths
