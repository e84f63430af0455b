"""The engine of the Learn tab: tiny live experiments that show how SeedPrints works, step by step.

Everything here runs on models small enough for a laptop CPU (a 2-layer, 128-wide llama with a
512-token vocabulary; a probe of a few hundred short sequences), so each step of the walkthrough
takes seconds.  Pure functions and plotly figure builders; no UI code.

The steps: (1) two models that differ only in their init seed; (2) their mean activation profiles
and identity dimensions; (3) train one of them and see its seed survive; (4) the calibrated
statistic against its null; (5) modified copies (quantized, fine-tuned, noisy, pruned) tested
again; (6) what a p-value says, and false-positive rates measured by ``bench/accuracy.py``.
"""

from __future__ import annotations

import collections
import contextlib
import copy
import dataclasses
import functools
import json
import math
import os
from collections.abc import Callable, Hashable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from plotly.subplots import make_subplots
from scipy import stats as sps

from .audit import fingerprint_model
from .derive import fine_tune, magnitude_prune, quantize_weights, weight_noise
from .errors import Cancelled, SeedPrintsError
from .fingerprint import Fingerprint
from .loading import hash_state_dict
from .probes import ProbeSpec
from .stats import SeedPrintsResult, SuspectRanks, calibrated_test, centered_ranks, identity_dims, resolve_k

# ---------------------------------------------------------------------------- settings of the lesson
HIDDEN = 128
LAYERS = 2
VOCAB = 512
SEED_A, SEED_B = 1, 2
PROBE_N, PROBE_L = 300, 16
K = 13  # identity dimensions: about 10% of D = 128, as the paper uses for foundation models
TRAIN_STEPS, TRAIN_LR, TRAIN_BATCH, TRAIN_SEQ = 60, 5e-4, 8, 32
PERMUTATIONS = 1000
ALPHA = 0.01
#: the weight matrix whose values step 1 shows
WEIGHT_NAME = "model.layers.0.self_attn.q_proj.weight"
#: bench/accuracy.py writes its results here (relative to the repository root)
ACCURACY_JSON = Path(__file__).resolve().parents[1] / "bench" / "results" / "accuracy.json"

#: A short text the lesson trains on, byte by byte (token id = byte value < 256 < VOCAB).
TRAINING_TEXT = (
    "Every network starts from a handful of random numbers. The recipe fixes the shapes and the scale of "
    "the weights; the seed fixes the numbers themselves. Two networks built from one recipe and two seeds "
    "look alike from afar and differ in every detail. Training then pulls both towards the same goal: to "
    "guess the next letter of a text like this one. It moves each weight only a little at a time, and a "
    "short training run leaves most of the starting point in place. Some hidden units of a fresh network "
    "lean low on almost any input, others lean high; these leanings are set by the seed, and they are "
    "still there after the network has learned to spell. That is the trace SeedPrints reads: feed random "
    "tokens to two models, look at the units with the lowest average output, and ask whether the two "
    "models move those units together, sample by sample, more than any other pairing of units would. "
    "If they do, the models grew from the same seed. If they do not, the seed is different, or the trace "
    "was erased. A p-value tells how surprising the agreement would be for unrelated models, no more. "
)

Progress = Callable[[str, int, int], None]
"""progress(stage, done, total): what a long step is doing, for a progress bar."""


def _say(progress: Progress | None, stage: str, done: int, total: int) -> None:
    if progress is not None:
        progress(stage, done, total)


def _check_cancel(cancel: Any) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled("cancelled")


def int_setting(name: str, value: Any, lo: int, hi: int) -> int:
    """``value`` (as typed or slid by a person) as an int in [lo, hi], or a one-line error naming the setting."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise SeedPrintsError(f"{name} must be a whole number between {lo} and {hi}, got {value!r}") from None
    if not math.isfinite(f) or not f.is_integer() or not lo <= f <= hi:
        raise SeedPrintsError(f"{name} must be a whole number between {lo} and {hi}, got {value!r}")
    return int(f)


def float_setting(name: str, value: Any, lo: float, hi: float) -> float:
    """``value`` as a finite float in [lo, hi], or a one-line error naming the setting."""
    try:
        f = float(value)
    except (TypeError, ValueError):
        raise SeedPrintsError(f"{name} must be a number between {lo:g} and {hi:g}, got {value!r}") from None
    if not math.isfinite(f) or not lo <= f <= hi:
        raise SeedPrintsError(f"{name} must be a number between {lo:g} and {hi:g}, got {value!r}")
    return f


@contextlib.contextmanager
def torch_threads(n: int = 1) -> Iterator[None]:
    """Run torch on ``n`` intra-op threads inside the block (restored after).

    The lesson's models are so small that thread start-up costs more than it saves: one thread
    trains about 3 to 15 times faster than two on a busy 2-core machine.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def check_seed(name: str, value: Any) -> int:
    """A torch seed as given by a person: a whole number 0..2**31-1."""
    return int_setting(name, value, 0, 2**31 - 1)


# ---------------------------------------------------------------------------- step 1: two models
def tiny_config(hidden: int = HIDDEN, layers: int = LAYERS, vocab: int = VOCAB) -> Any:
    """The llama-style config of the lesson's models (4 heads, MLP width 2 x hidden)."""
    from transformers import LlamaConfig

    return LlamaConfig(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                       num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=256,
                       architectures=["LlamaForCausalLM"])


def tiny_model(seed: int, hidden: int = HIDDEN, layers: int = LAYERS, vocab: int = VOCAB) -> torch.nn.Module:
    """A freshly initialised llama-style LM whose weights depend only on ``seed`` (in eval mode).

    The global torch RNG is seeded inside ``fork_rng``, so the caller's RNG state is left as it was.
    """
    from transformers import LlamaForCausalLM

    cfg = tiny_config(hidden, layers, vocab)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = LlamaForCausalLM(cfg)
    return model.eval()


#: config fields step 1 lists one by one (the rest are counted)
CONFIG_FIELDS = ("model_type", "hidden_size", "num_hidden_layers", "num_attention_heads", "intermediate_size",
                 "vocab_size", "hidden_act", "initializer_range", "rms_norm_eps", "max_position_embeddings")


def config_rows(model_a: torch.nn.Module, model_b: torch.nn.Module, seed_a: int, seed_b: int) -> list[dict[str, Any]]:
    """Rows (setting, model A, model B, same) comparing two models: config fields, seed, parameters, weights hash."""
    ca = model_a.config.to_dict()
    cb = model_b.config.to_dict()
    rows: list[dict[str, Any]] = [{"setting": "init seed (torch.manual_seed)", "model A": seed_a, "model B": seed_b,
                                   "same": seed_a == seed_b}]
    for key in CONFIG_FIELDS:
        rows.append({"setting": key, "model A": ca.get(key), "model B": cb.get(key), "same": ca.get(key) == cb.get(key)})
    skip = {"_name_or_path", "transformers_version"}
    others = sorted((set(ca) | set(cb)) - set(CONFIG_FIELDS) - skip)
    n_same = sum(ca.get(k) == cb.get(k) for k in others)
    rows.append({"setting": "other config fields", "model A": f"{len(others)} fields", "model B": f"{len(others)} fields",
                 "same": n_same == len(others)})
    na = sum(p.numel() for p in model_a.parameters())
    nb = sum(p.numel() for p in model_b.parameters())
    rows.append({"setting": "parameters", "model A": f"{na:,}", "model B": f"{nb:,}", "same": na == nb})
    ha, hb = (hash_state_dict(m).split(":")[-1] for m in (model_a, model_b))
    rows.append({"setting": "weights (sha256)", "model A": ha[:12], "model B": hb[:12], "same": ha == hb})
    return rows


def weight_matrix(model: torch.nn.Module, name: str = WEIGHT_NAME) -> np.ndarray:
    """One weight matrix of a model as float64 numpy."""
    params = dict(model.named_parameters())
    if name not in params:
        raise SeedPrintsError(f"the model has no parameter {name!r}")
    return params[name].detach().double().cpu().numpy()


# ---------------------------------------------------------------------------- step 2: profiles
def teaching_probe(n: int = PROBE_N, seq_len: int = PROBE_L, vocab: int = VOCAB, seed: int = 0) -> ProbeSpec:
    """The lesson's token probe: n sequences of seq_len token ids uniform in [0, vocab)."""
    n = int_setting("probe size N", n, 20, 5000)
    seq_len = int_setting("sequence length L", seq_len, 2, 256)
    return ProbeSpec(kind="token", n_samples=n, seq_len=seq_len, vocab_range=int(vocab), seed=int(seed))


def fingerprint(model: torch.nn.Module, spec: ProbeSpec, name: str, progress: Progress | None = None,
                cancel: Any = None) -> Fingerprint:
    """Full in-memory fingerprint (all D columns) of a model on the probe; no cache."""
    def report(stage: str, done: int, total: int) -> None:
        _say(progress, f"running the probe through {name}", done, total)

    return fingerprint_model(model, spec, name=name, device="cpu", progress=report, cancel=cancel)


def column_profile(source: Any, spec: ProbeSpec | None = None) -> np.ndarray:
    """Per-dimension mean of the last-position hidden state over the probe: a [D] float64 vector.

    ``source``: a fingerprint (its stored column means), an [N, D] feature matrix, or a model (then
    ``spec`` is required and the model is run on the probe).
    """
    if isinstance(source, torch.nn.Module):
        if spec is None:
            raise SeedPrintsError("column_profile of a model needs the probe spec")
        return np.asarray(fingerprint(source, spec, "model").column_means, dtype=np.float64)
    if hasattr(source, "column_means"):
        return np.asarray(source.column_means, dtype=np.float64)
    arr = np.asarray(source, dtype=np.float64)
    if arr.ndim != 2:
        raise SeedPrintsError(f"column_profile needs an [N, D] matrix, got shape {arr.shape}")
    return arr.mean(axis=0)


@dataclasses.dataclass(frozen=True)
class IdentityOverlap:
    """The identity dimensions (k lowest means) of two profiles and what they share.

    expected: the overlap two unrelated sets of k out of d would have on average (k^2 / d);
    chance_p: probability of an overlap at least this large by chance (hypergeometric).
    """

    dims_a: np.ndarray
    dims_b: np.ndarray
    shared: np.ndarray
    k: int
    d: int

    @property
    def count(self) -> int:
        """How many identity dimensions the two profiles share."""
        return int(len(self.shared))

    @property
    def expected(self) -> float:
        """Shared dimensions expected by chance: k * k / D."""
        return self.k * self.k / self.d

    @property
    def chance_p(self) -> float:
        """Hypergeometric chance of sharing at least this many dimensions."""
        return float(sps.hypergeom.sf(self.count - 1, self.d, self.k, self.k))


def identity_overlap(a: Any, b: Any, k: int) -> IdentityOverlap:
    """Identity dimensions of two column-mean profiles (or fingerprints) and their intersection."""
    ma, mb = _profile(a), _profile(b)
    if ma.shape != mb.shape:
        raise SeedPrintsError(f"profiles of different width: {ma.shape[0]} and {mb.shape[0]} dimensions")
    d = int(ma.shape[0])
    kk = resolve_k(k, d)
    da, db = identity_dims(ma, kk), identity_dims(mb, kk)
    return IdentityOverlap(da, db, np.intersect1d(da, db), kk, d)


def _profile(x: Any) -> np.ndarray:
    """A [D] profile given as a vector, or the column means of a fingerprint or [N, D] matrix."""
    if isinstance(x, (np.ndarray, list, tuple)) and np.asarray(x).ndim == 1:
        return np.asarray(x, dtype=np.float64)
    return column_profile(x)


def per_dim_rho(a: Any, b: Any) -> np.ndarray:
    """Spearman rho between column j of a and column j of b over the probe samples, for every j: [D]."""
    fa = np.asarray(getattr(a, "features", a), dtype=np.float64)
    fb = np.asarray(getattr(b, "features", b), dtype=np.float64)
    if fa.shape != fb.shape:
        raise SeedPrintsError(f"feature matrices differ in shape: {fa.shape} and {fb.shape}")
    return (centered_ranks(fa) * centered_ranks(fb)).sum(axis=0)


# ---------------------------------------------------------------------------- step 3: training
def text_tokens(text: str = TRAINING_TEXT) -> torch.Tensor:
    """Byte-level token ids of a text (every id < 256)."""
    ids = list(text.encode("utf-8"))
    if len(ids) < 8:
        raise SeedPrintsError("the training text is too short")
    return torch.tensor(ids, dtype=torch.long)


def train_with_losses(model: torch.nn.Module, steps: int = TRAIN_STEPS, lr: float = TRAIN_LR, seed: int = 0, *,
                      batch: int = TRAIN_BATCH, seq_len: int = TRAIN_SEQ, text: str = TRAINING_TEXT,
                      progress: Progress | None = None, cancel: Any = None) -> tuple[torch.nn.Module, list[float]]:
    """Train a copy of ``model`` with AdamW on random windows of ``text`` (next-byte loss).

    ``seed`` fixes which windows are drawn.  Returns the trained copy (in eval mode) and the
    loss of every step; the input model is left untouched.
    """
    steps = int_setting("training steps", steps, 1, 5000)
    lr = float_setting("learning rate", lr, 1e-7, 1.0)
    data = text_tokens(text)
    seq_len = min(int(seq_len), len(data) - 1)
    trained = copy.deepcopy(model)
    trained.train()
    trained.requires_grad_(True)
    opt = torch.optim.AdamW(trained.parameters(), lr=lr)
    g = torch.Generator().manual_seed(int(seed))
    losses: list[float] = []
    for step in range(steps):
        _check_cancel(cancel)
        starts = torch.randint(0, len(data) - seq_len + 1, (batch,), generator=g)
        x = torch.stack([data[s:s + seq_len] for s in starts.tolist()])
        loss = trained(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise SeedPrintsError(f"training diverged at step {step + 1} (loss {value}): lower the learning rate")
        losses.append(value)
        _say(progress, f"training: step {step + 1} of {steps}, loss {value:.2f}", step + 1, steps)
    trained.eval()
    trained.requires_grad_(False)
    return trained, losses


def calibrated_pair(reference: Fingerprint, suspect: Fingerprint | SuspectRanks, k: int = K,
              n_permutations: int = PERMUTATIONS) -> SeedPrintsResult:
    """The calibrated test (re-pairing null) of ``suspect`` against ``reference``'s identity dimensions."""
    return calibrated_test(reference, suspect, k=int(k), n_permutations=int(n_permutations))


# ---------------------------------------------------------------------------- memo shared by the steps
@dataclasses.dataclass
class Trained:
    """A model trained by the lesson, with its losses and its fingerprint on a given probe."""

    model: torch.nn.Module
    losses: list[float]


class Lesson:
    """One student's memo of models and fingerprints, so a later step reuses what an earlier one made.

    Keys name everything a value depends on; the oldest entries are dropped beyond ``max_entries``.
    Not thread-safe: use it from one worker thread at a time.
    """

    def __init__(self, max_entries: int = 12) -> None:
        self.max_entries = max_entries
        self._memo: collections.OrderedDict[Hashable, Any] = collections.OrderedDict()

    def _get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        if key in self._memo:
            self._memo.move_to_end(key)
            return self._memo[key]
        value = make()
        self._memo[key] = value
        while len(self._memo) > self.max_entries:
            self._memo.popitem(last=False)
        return value

    def __len__(self) -> int:
        return len(self._memo)

    def init_model(self, seed: int) -> torch.nn.Module:
        """The tiny model freshly initialised from ``seed`` (cached)."""
        return self._get(("init", seed), lambda: tiny_model(seed))

    def init_fingerprint(self, seed: int, spec: ProbeSpec, progress: Progress | None = None,
                         cancel: Any = None) -> Fingerprint:
        """Fingerprint of the initialised model on ``spec`` (cached)."""
        return self._get(("init-fp", seed, spec.id),
                         lambda: fingerprint(self.init_model(seed), spec, f"seed {seed} (init)", progress, cancel))

    def trained(self, seed: int, steps: int, lr: float, data_seed: int = 0, progress: Progress | None = None,
                cancel: Any = None) -> Trained:
        """The initialised model trained for ``steps`` at ``lr``, with its losses (cached)."""
        def make() -> Trained:
            model, losses = train_with_losses(self.init_model(seed), steps, lr, data_seed, progress=progress,
                                              cancel=cancel)
            return Trained(model, losses)

        return self._get(("trained", seed, int(steps), float(lr), int(data_seed)), make)

    def trained_fingerprint(self, seed: int, steps: int, lr: float, data_seed: int, spec: ProbeSpec,
                            progress: Progress | None = None, cancel: Any = None) -> Fingerprint:
        """Fingerprint of the trained model on ``spec`` (cached)."""
        def make() -> Fingerprint:
            t = self.trained(seed, steps, lr, data_seed, progress, cancel)
            return fingerprint(t.model, spec, f"seed {seed} trained", progress, cancel)

        return self._get(("trained-fp", seed, int(steps), float(lr), int(data_seed), spec.id), make)


# ---------------------------------------------------------------------------- step 5: derivatives
@dataclasses.dataclass(frozen=True)
class Derivative:
    """A modification applied to the trained model in step 5."""

    key: str
    label: str
    make: Callable[[torch.nn.Module], torch.nn.Module]


def derivatives(ft_steps: int = 20, noise: float = 0.05, prune: float = 0.3, seed: int = 123) -> list[Derivative]:
    """The five modifications of step 5: 8-bit and 4-bit weights, a fine-tune, weight noise, pruning."""
    ft_steps = int_setting("fine-tune steps", ft_steps, 1, 2000)
    noise = float_setting("noise level", noise, 0.0, 2.0)
    prune = float_setting("pruned fraction", prune, 0.0, 0.99)
    return [
        Derivative("int8", "8-bit weights (per-row scale)", lambda m: quantize_weights(m, bits=8)),
        Derivative("4-bit", "4-bit weights (groups of 32)", lambda m: quantize_weights(m, bits=4, group_size=32)),
        Derivative("fine-tune", f"fine-tuned {ft_steps} steps on random tokens (AdamW, lr 3e-4)",
                   lambda m: fine_tune(m, steps=ft_steps, lr=3e-4, batch=8, seq_len=32, seed=seed)),
        Derivative("noise", f"Gaussian noise, {noise:g} x each tensor's std", lambda m: weight_noise(m, rel=noise, seed=seed)),
        Derivative("prune", f"{prune:.0%} smallest weights set to 0", lambda m: magnitude_prune(m, prune)),
    ]


def derivative_tests(trained: torch.nn.Module, init_fp: Fingerprint, other_fp: Fingerprint, spec: ProbeSpec, *,
                     k: int = K, n_permutations: int = PERMUTATIONS, alpha: float = ALPHA,
                     variants: Sequence[Derivative] | None = None, include_trained: bool = True,
                     progress: Progress | None = None, cancel: Any = None) -> list[dict[str, Any]]:
    """Modify the trained model in each way, fingerprint it, and test it against both inits.

    One row per model: derivative, what, z and log10 p against ``init_fp`` (its own seed) and
    ``other_fp`` (another seed), and whether each is a match (p < alpha).
    """
    todo: list[tuple[str, str, Callable[[], torch.nn.Module]]] = []
    if include_trained:
        todo.append(("as trained", "the trained model itself", lambda: trained))
    for v in (variants if variants is not None else derivatives()):
        todo.append((v.key, v.label, functools.partial(v.make, trained)))
    rows = []
    for i, (key, label, make) in enumerate(todo):
        _check_cancel(cancel)
        _say(progress, f"making {key} ({i + 1} of {len(todo)})", i, len(todo))
        model = make()
        fp = fingerprint(model, spec, key, cancel=cancel)
        ranks = SuspectRanks(fp)
        own = calibrated_pair(init_fp, ranks, k, n_permutations)
        other = calibrated_pair(other_fp, ranks, k, n_permutations)
        rows.append({"derivative": key, "what": label,
                     "z vs own init": round(own.z, 2), "log10 p vs own init": round(own.log10_pvalue, 2),
                     "match own": own.significant(alpha),
                     "z vs other seed": round(other.z, 2), "log10 p vs other seed": round(other.log10_pvalue, 2),
                     "match other": other.significant(alpha)})
        _say(progress, f"tested {key} ({i + 1} of {len(todo)})", i + 1, len(todo))
    return rows


# ---------------------------------------------------------------------------- step 6: false-positive rates
def clopper_pearson(x: int, n: int, level: float = 0.95) -> tuple[float, float]:
    """Exact (Clopper-Pearson) confidence interval of a binomial rate x / n."""
    if n <= 0:
        return (0.0, 1.0)
    a = (1.0 - level) / 2.0
    lo = 0.0 if x == 0 else float(sps.beta.ppf(a, x, n - x + 1))
    hi = 1.0 if x == n else float(sps.beta.ppf(1.0 - a, x + 1, n - x))
    return lo, hi


@functools.lru_cache(maxsize=4)
def _read_json(path: str, mtime_ns: int) -> dict[str, Any]:
    del mtime_ns  # part of the cache key: a rewritten file is read again
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def load_accuracy(path: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """The benchmark record written by bench/accuracy.py (cached until the file changes)."""
    p = Path(path) if path is not None else ACCURACY_JSON
    if not p.is_file():
        raise SeedPrintsError(f"{p} is not there: run `python bench/accuracy.py` to measure false-positive rates")
    try:
        data = _read_json(str(p), p.stat().st_mtime_ns)
    except (OSError, ValueError) as exc:
        raise SeedPrintsError(f"{p} cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SeedPrintsError(f"{p} has no 'results' list: is it an accuracy benchmark record?")
    return data


def fpr_table_from_accuracy(path: str | os.PathLike[str] | None = None, alpha: float | None = None
                            ) -> list[dict[str, Any]]:
    """False-positive rate of every (test, probe, budget) row of an accuracy record, with its 95% interval.

    At the record's own alpha the stored ``fpr_at_alpha`` is used; at another alpha the rate is
    recomputed from the stored negative pairs (p < alpha, inconclusive pairs count as not significant)
    with an exact Clopper-Pearson interval.  Rows: test, probe, budget, n_samples, seq_len, alpha,
    false_positives, negatives, fpr, ci_low, ci_high, source ("stored" or "recomputed").
    """
    data = load_accuracy(path)
    stored_alpha = data.get("alpha")
    a = float(stored_alpha if alpha is None else alpha)
    if not 0.0 < a < 1.0:
        raise SeedPrintsError(f"alpha must lie between 0 and 1, got {a:g}")
    use_stored = stored_alpha is not None and math.isclose(a, float(stored_alpha), rel_tol=1e-9)
    rows = []
    for r in data["results"]:
        base = {"test": r.get("test", "?"), "probe": r.get("probe", "?"), "budget": r.get("budget", "?"),
                "n_samples": r.get("n_samples"), "seq_len": r.get("seq_len"), "alpha": a}
        fpr = r.get("fpr_at_alpha")
        if use_stored and isinstance(fpr, dict) and {"x", "n", "ci95"} <= set(fpr):
            x, n = int(fpr["x"]), int(fpr["n"])
            lo, hi = (float(v) for v in fpr["ci95"])
            rate = float(fpr.get("rate", x / n if n else float("nan")))
            source = "stored"
        else:
            pairs = r.get("pairs")
            if not isinstance(pairs, list):
                raise SeedPrintsError(f"result {base['test']}/{base['probe']}/{base['budget']} has neither "
                                      f"fpr_at_alpha for alpha {a:g} nor the pairs to recompute it")
            neg = [p for p in pairs if not p.get("positive", False)]
            log_a = math.log10(a)
            x = sum(1 for p in neg if not p.get("inconclusive", False) and float(p.get("log10_p", 0.0)) < log_a)
            n = len(neg)
            rate = x / n if n else float("nan")
            lo, hi = clopper_pearson(x, n)
            source = "recomputed"
        rows.append({**base, "false_positives": x, "negatives": n, "fpr": rate, "ci_low": lo, "ci_high": hi,
                     "source": source})
    return rows


def fpr_curves_from_accuracy(path: str | os.PathLike[str] | None = None, probe: str | None = None,
                             budget: str | None = None, alphas: Sequence[float] | None = None
                             ) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """FPR as a function of alpha for each test on one (probe, budget): {label: (alphas, fpr)}.

    A calibrated test stays on or below the diagonal FPR = alpha.  Defaults: the first probe and
    budget of the record, 40 alphas from 1e-3 to 0.2 on a log scale.
    """
    data = load_accuracy(path)
    results = data["results"]
    if not results:
        return {}
    probe = probe or results[0].get("probe")
    budget = budget or results[0].get("budget")
    grid = np.asarray(alphas if alphas is not None else np.logspace(-3, math.log10(0.2), 40), dtype=np.float64)
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for r in results:
        if r.get("probe") != probe or r.get("budget") != budget or not isinstance(r.get("pairs"), list):
            continue
        neg = np.array([0.0 if p.get("inconclusive", False) else float(p.get("log10_p", 0.0))
                        for p in r["pairs"] if not p.get("positive", False)])
        if len(neg) == 0:
            continue
        out[str(r.get("test"))] = (grid, (neg[None, :] < np.log10(grid)[:, None]).mean(axis=1))
    return out


# ---------------------------------------------------------------------------- figures
_A_COLOR, _B_COLOR, _SHARED_COLOR, _GREY = "#1f77b4", "#ff7f0e", "#d62728", "#c8c8c8"
_TEST_COLORS = {"paper-analytical": "#d62728", "paper-empirical": "#ff7f0e", "calibrated": "#2ca02c"}


def _layout(fig: go.Figure, title: str, height: int = 400) -> go.Figure:
    """The app's figure style (as seedprints.plots)."""
    fig.update_layout(title={"text": title, "x": 0.01, "font": {"size": 15}}, height=height,
                      margin={"l": 10, "r": 10, "t": 60, "b": 10}, template="plotly_white",
                      legend={"orientation": "h", "y": -0.18})
    return fig


def weights_figure(w_a: np.ndarray, w_b: np.ndarray, seed_a: int, seed_b: int, name: str = WEIGHT_NAME,
                   size: int = 24) -> go.Figure:
    """Top-left size x size corner of one weight matrix for both seeds, and the histograms of all its values."""
    lim = float(max(np.abs(w_a).max(), np.abs(w_b).max()))
    fig = make_subplots(rows=1, cols=3, column_widths=[0.28, 0.28, 0.44], horizontal_spacing=0.1,
                        subplot_titles=(f"seed {seed_a}: corner of the matrix", f"seed {seed_b}: same corner",
                                        "all values of the matrix"))
    for col, (w, seed) in enumerate(((w_a, seed_a), (w_b, seed_b)), start=1):
        fig.add_trace(go.Heatmap(z=w[:size, :size], zmin=-lim, zmax=lim, colorscale="RdBu", showscale=col == 2,
                                 colorbar={"x": 0.56, "len": 0.9, "thickness": 12, "tickformat": ".2f"},
                                 hovertemplate=f"seed {seed}<br>row %{{y}}, column %{{x}}<br>%{{z:.4f}}<extra></extra>"),
                      row=1, col=col)
        fig.update_yaxes(autorange="reversed", showticklabels=False, row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
    for w, seed, color in ((w_a, seed_a, _A_COLOR), (w_b, seed_b, _B_COLOR)):
        fig.add_trace(go.Histogram(x=w.ravel(), name=f"seed {seed}", marker={"color": color}, opacity=0.55, nbinsx=60,
                                   histnorm="probability density"), row=1, col=3)
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="weight value", row=1, col=3)
    return _layout(fig, f"{name}: same distribution, different numbers<br><sup>colour: weight value "
                        "(blue positive, red negative)</sup>", height=380)


def profile_figure(means_a: np.ndarray, means_b: np.ndarray, k: int, label_a: str, label_b: str) -> go.Figure:
    """Per-dimension mean activation of two models, identity dimensions coloured, shared ones in red."""
    ov = identity_overlap(np.asarray(means_a), np.asarray(means_b), k)
    shared = set(ov.shared.tolist())
    d = len(means_a)
    fig = make_subplots(rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.1,
                        subplot_titles=(f"{label_a}: identity dimensions in colour",
                                        f"{label_b}: identity dimensions in colour"))
    for row, (means, dims, label, color) in enumerate(((means_a, ov.dims_a, label_a, _A_COLOR),
                                                       (means_b, ov.dims_b, label_b, _B_COLOR)), start=1):
        ident = set(dims.tolist())
        colors = [(_SHARED_COLOR if j in shared else color) if j in ident else _GREY for j in range(d)]
        kind = ["identity dimension, shared by both" if j in shared else "identity dimension" if j in ident
                else "other dimension" for j in range(d)]
        fig.add_trace(go.Bar(x=np.arange(d), y=np.asarray(means), marker={"color": colors}, name=label,
                             customdata=kind, showlegend=False,
                             hovertemplate="dimension %{x}<br>mean %{y:.4f}<br>%{customdata}<extra>" + label + "</extra>"),
                      row=row, col=1)
        fig.update_yaxes(title="mean activation", row=row, col=1)
    fig.update_xaxes(title="hidden dimension", row=2, col=1)
    return _layout(fig, f"Mean activation per dimension: {ov.count} of k = {ov.k} identity dimensions shared "
                        f"(chance: {ov.expected:.1f})", height=520)


def loss_figure(losses: Sequence[float], vocab: int = VOCAB, label: str = "training loss") -> go.Figure:
    """Loss at every training step, with the loss of a uniform guess over the vocabulary for scale."""
    steps = np.arange(1, len(losses) + 1)
    fig = go.Figure(go.Scatter(x=steps, y=np.asarray(losses, dtype=float), mode="lines+markers", name=label,
                               marker={"size": 4, "color": _A_COLOR}))
    fig.add_hline(y=math.log(vocab), line={"dash": "dot", "color": "#888888"},
                  annotation_text=f"uniform guess over {vocab} tokens (ln {vocab} = {math.log(vocab):.2f})",
                  annotation_position="top right")
    fig.update_xaxes(title="training step")
    fig.update_yaxes(title="next-token loss (nats)")
    first, last = (losses[0], losses[-1]) if len(losses) else (float("nan"),) * 2
    return _layout(fig, f"Training loss: {first:.2f} at step 1, {last:.2f} at step {len(losses)}", height=360)


def before_after_figure(before: Any, after: Any, k: int, label_before: str = "init",
                        label_after: str = "trained") -> go.Figure:
    """Scatter of every dimension's mean before vs after training; identity dimensions of each highlighted.

    Hover shows each dimension's Spearman rho between the two models when both are fingerprints.
    """
    mb, ma = _profile(before), _profile(after)
    ov = identity_overlap(mb, ma, k)
    rho = per_dim_rho(before, after) if hasattr(before, "features") and hasattr(after, "features") else None
    d = len(mb)
    sets = {"identity dimension before only": np.setdiff1d(ov.dims_a, ov.shared),
            "identity dimension after only": np.setdiff1d(ov.dims_b, ov.shared),
            "identity dimension before and after": ov.shared}
    rest = np.setdiff1d(np.arange(d), np.union1d(ov.dims_a, ov.dims_b))
    fig = go.Figure()
    styles = {"other dimension": (_GREY, 7), "identity dimension before only": (_A_COLOR, 10),
              "identity dimension after only": (_B_COLOR, 10), "identity dimension before and after": (_SHARED_COLOR, 12)}
    for name, idx in [("other dimension", rest), *sets.items()]:
        color, size = styles[name]
        custom = np.stack([idx, rho[idx] if rho is not None else np.full(len(idx), np.nan)], axis=1) if len(idx) else None
        fig.add_trace(go.Scatter(x=mb[idx], y=ma[idx], mode="markers", name=f"{name} ({len(idx)})",
                                 marker={"color": color, "size": size, "line": {"width": 0.5, "color": "#333"}},
                                 customdata=custom,
                                 hovertemplate="dimension %{customdata[0]}<br>before %{x:.4f}<br>after %{y:.4f}"
                                               "<br>rho over the probe %{customdata[1]:.2f}<extra></extra>"))
    r = float(sps.spearmanr(mb, ma).statistic) if d > 2 else float("nan")
    fig.update_xaxes(title=f"mean activation, {label_before}")
    fig.update_yaxes(title=f"mean activation, {label_after}")
    return _layout(fig, f"Mean per dimension, {label_before} vs {label_after}<br><sup>{ov.count} of {ov.k} identity "
                        f"dimensions kept (chance {ov.expected:.1f}); rank correlation of the means {r:.2f}</sup>",
                   height=440)


def derivative_figure(rows: Sequence[dict[str, Any]], alpha: float = ALPHA) -> go.Figure:
    """Bars of z against the model's own init and against the other seed, for every derivative."""
    names = [r["derivative"] for r in rows]
    fig = go.Figure()
    for key, label, color in (("z vs own init", "vs the init of its own seed", _A_COLOR),
                              ("z vs other seed", "vs the init of the other seed", _B_COLOR)):
        z = [r[key] for r in rows]
        fig.add_trace(go.Bar(x=names, y=z, name=label, marker={"color": color}, text=[f"{v:.1f}" for v in z],
                             textposition="outside", cliponaxis=False))
    z_alpha = float(sps.norm.isf(alpha))
    fig.add_hline(y=z_alpha, line={"dash": "dash", "color": "#444444"},
                  annotation_text=f"z = {z_alpha:.2f} (p about {alpha:g})", annotation_position="top right")
    all_z = [float(r[key]) for r in rows for key in ("z vs own init", "z vs other seed") if math.isfinite(r[key])]
    top = max([z_alpha, *all_z])
    bottom = min([0.0, *all_z])
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="z of the calibrated test", range=[bottom - 0.08 * (top - bottom), top * 1.15 + 0.5])
    return _layout(fig, "Modified copies of the trained model, tested against both inits", height=420)


def _budget_label(r: dict[str, Any]) -> str:
    size = f" (N={r['n_samples']}, L={r['seq_len']})" if r.get("n_samples") and r.get("seq_len") else ""
    return f"{r['probe']} probe, {r['budget']}{size}"


def fpr_figure(rows: Sequence[dict[str, Any]], alpha: float | None = None) -> go.Figure:
    """False-positive rate of each test with its 95% interval, grouped by probe and budget; dashed line at alpha."""
    a = alpha if alpha is not None else (rows[0]["alpha"] if rows else ALPHA)
    fig = go.Figure()
    groups = list(dict.fromkeys(_budget_label(r) for r in rows))
    for test in dict.fromkeys(r["test"] for r in rows):
        sel = {_budget_label(r): r for r in rows if r["test"] == test}
        xs = [g for g in groups if g in sel]
        rate = [sel[g]["fpr"] for g in xs]
        fig.add_trace(go.Bar(
            x=xs, y=rate, name=test, marker={"color": _TEST_COLORS.get(test, "#7f7f7f")},
            error_y={"type": "data", "symmetric": False, "array": [sel[g]["ci_high"] - sel[g]["fpr"] for g in xs],
                     "arrayminus": [sel[g]["fpr"] - sel[g]["ci_low"] for g in xs]},
            customdata=[[sel[g]["false_positives"], sel[g]["negatives"], sel[g]["ci_low"], sel[g]["ci_high"]] for g in xs],
            hovertemplate=test + "<br>%{x}<br>FPR %{y:.3f} (%{customdata[0]} of %{customdata[1]} unrelated pairs)"
                                 "<br>95% interval %{customdata[2]:.3f} to %{customdata[3]:.3f}<extra></extra>"))
    fig.add_hline(y=a, line={"dash": "dash", "color": "#111111"}, annotation_text=f"alpha = {a:g}",
                  annotation_position="top left")
    fig.update_layout(barmode="group")
    fig.update_yaxes(title=f"share of unrelated pairs with p < {a:g}", rangemode="tozero")
    return _layout(fig, f"False-positive rate at alpha = {a:g} (bars: 95% intervals)", height=420)


def fpr_curve_figure(curves: dict[str, tuple[np.ndarray, np.ndarray]], alpha: float | None = None,
                     title: str = "", floor: float = 3e-4) -> go.Figure:
    """FPR against alpha for each test on log axes; the diagonal is what a calibrated test promises.

    A rate of 0 cannot sit on a log axis: it is drawn at ``floor`` (the bottom of the plot).
    """
    fig = go.Figure()
    lo, hi = 1e-3, 0.2
    for test, (alphas, fpr) in curves.items():
        lo, hi = float(min(lo, alphas.min())), float(max(hi, alphas.max()))
        shown = np.maximum(np.asarray(fpr, dtype=float), floor)
        fig.add_trace(go.Scatter(x=alphas, y=shown, mode="lines", name=test, customdata=np.asarray(fpr, dtype=float),
                                 line={"color": _TEST_COLORS.get(test, "#7f7f7f"), "width": 3},
                                 hovertemplate=test + "<br>alpha %{x:.3g}<br>FPR %{customdata:.4f}<extra></extra>"))
    fig.add_trace(go.Scatter(x=[lo, hi], y=[lo, hi], mode="lines", name="FPR = alpha (calibrated)",
                             line={"dash": "dash", "color": "#111111"}))
    if alpha is not None:
        fig.add_vline(x=alpha, line={"dash": "dot", "color": "#888888"})
    ticks = [t for t in (1e-3, 1e-2, 1e-1, 1.0) if floor <= t <= max(hi, 0.3) * 1.01]
    labels = [f"{t:.1%}".replace(".0%", "%") for t in ticks]
    fig.update_xaxes(type="log", title="alpha (decision threshold on p)", tickvals=ticks, ticktext=labels)
    fig.update_yaxes(type="log", title="false-positive rate (0 drawn at the bottom)", tickvals=ticks, ticktext=labels,
                     range=[math.log10(floor) - 0.05, math.log10(max(hi, 0.3))])
    return _layout(fig, title or "False-positive rate against alpha", height=420)


def empty_figure(note: str) -> go.Figure:
    """A blank figure that says why there is nothing to show."""
    fig = go.Figure()
    fig.add_annotation(text=note, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 14})
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return _layout(fig, "", height=240)
