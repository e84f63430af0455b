"""Helpers several test modules share: the core API as one script, and loading a bench script as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

ROOT = Path(__file__).resolve().parents[1]


def load_bench(name: str) -> ModuleType:
    """bench/<name>.py as a module (the benches import each other by file name, so bench/ goes on sys.path)."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: import names of what the extras add (not the core); tokenizers comes with transformers, a core dependency
EXTRAS_ONLY = ("sklearn", "umap", "plotly", "pandas", "gradio", "peft", "ray")
#: the core API in one script: a library of tiny seeded models, the one-call audit, the CLI's core commands
CORE_SCRIPT = r"""
import contextlib, io, json, sys
import seedprints as sp
from seedprints.cli import main
from seedprints.derive import weight_noise
from seedprints.errors import MissingDependencyError
from seedprints.probes import ProbeSpec
from seedprints.tiny import tiny_llama

spec = ProbeSpec(kind="token", n_samples=50, seq_len=4, vocab_range=512, positions="all")
lib = sp.Library("lib")
for seed in (0, 1, 2):
    lib.add(sp.fingerprint_model(tiny_llama(seed), spec, name=f"tiny-{seed}"), name=f"ref-seed{seed}", seed=seed)
weight_noise(tiny_llama(1), rel=0.01).save_pretrained("suspect")
tiny_llama(1).save_pretrained("parent")
audit = sp.audit_library("suspect", lib, device="cpu")
record = json.dumps(audit.to_dict())
try:
    sp.audit_library("suspect", lib, device="cpu", draw_map=True)
    asked = "drawn"
except MissingDependencyError as exc:
    asked = str(exc)
out = io.StringIO()
with contextlib.redirect_stdout(out):
    codes = [main(["compare", "parent", "suspect", "-q", "--vocab-range", "512"]),
             main(["fingerprint", "suspect", "-o", "suspect.fp.safetensors", "-q", "--vocab-range", "512"]),
             main(["scan", "suspect.fp.safetensors", "--library", "lib", "-q"])]
print(json.dumps({"verdict": audit.report.verdict.label, "seed": audit.report.verdict.seed,
                  "drawn": audit.embedding.drawn, "note": audit.embedding.note, "matrix": audit.matrix.n,
                  "map_in_record": json.loads(record)["map"]["drawn"], "asked": asked, "codes": codes,
                  "cli": out.getvalue(), "loaded": sorted(m for m in sys.modules if m.split(".")[0] in EXTRAS)}))
"""
