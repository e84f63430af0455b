"""Helpers several test modules share: tiny seeded models and probes, spies on loading, opening the app in a
browser, the core API as one script, and loading a bench script as a module."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from seedprints.probes import ProbeSpec

ROOT = Path(__file__).resolve().parents[1]
TINY_VOCAB = 512


def tiny_llama(seed: int, hidden: int = 128, layers: int = 2, vocab: int = TINY_VOCAB) -> Any:
    """A randomly initialised llama-style causal LM whose weights depend only on ``seed`` (seedprints.tiny's recipe)."""
    from seedprints.tiny import tiny_llama as build

    return build(seed, hidden=hidden, layers=layers, vocab=vocab)


def tiny_spec(n: int = 300, seq_len: int = 16, vocab: int = TINY_VOCAB, seed: int = 0) -> ProbeSpec:
    """A small token probe that fits the tiny models."""
    return ProbeSpec(kind="token", n_samples=n, seq_len=seq_len, vocab_range=vocab, seed=seed)


def count_calls(monkeypatch: pytest.MonkeyPatch, owner: Any, name: str) -> list[tuple]:
    """Spy on ``owner.name`` for the rest of the test: the returned list gets each call's arguments."""
    calls: list[tuple] = []
    real = getattr(owner, name)

    def spy(*args: Any, **kwargs: Any) -> Any:
        calls.append((args, kwargs))
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, spy)
    return calls


def count_loads(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Spy on every opening of a checkpoint's weights in this process for the rest of the test: a load_model call
    (through any seedprints module that imported it) or a streamed model's skeleton built. The returned list gets
    one entry per load; a fingerprint-cache hit adds none."""
    from seedprints import loading, streaming

    loads: list[str] = []
    real_load, real_streamed = loading.load_model, streaming.StreamedModel

    def load_model(*args: Any, **kwargs: Any) -> Any:
        loads.append("load_model")
        return real_load(*args, **kwargs)

    def streamed_model(*args: Any, **kwargs: Any) -> Any:
        model = real_streamed(*args, **kwargs)
        loads.append("streamed")  # counted once the skeleton is built, as a load of its weights
        return model

    for module in [m for n, m in list(sys.modules.items()) if n.split(".")[0] == "seedprints"]:
        if getattr(module, "load_model", None) is real_load:
            monkeypatch.setattr(module, "load_model", load_model)
    monkeypatch.setattr(streaming, "StreamedModel", streamed_model)
    return loads


def load_bench(name: str) -> ModuleType:
    """bench/<name>.py as a module (the benches import each other by file name, so bench/ goes on sys.path)."""
    if str(ROOT / "bench") not in sys.path:
        sys.path.insert(0, str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(f"bench_{name}", ROOT / "bench" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


#: seconds the browser tests wait for the app to start and build its demo
READY_TIMEOUT = 300.0


def open_page(browser: Any, server: Any) -> tuple[Any, Any]:
    """A fresh browser context (a visitor of its own) on an e2e AppServer's page, once the demo is ready:
    (context, page)."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1000})
    pg = ctx.new_page()
    pg.set_default_timeout(60_000)
    pg.goto(server.url)
    pg.wait_for_selector("#startup .sp-msg-ok", timeout=READY_TIMEOUT * 1000)
    return ctx, pg


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
