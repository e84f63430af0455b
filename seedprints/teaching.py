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
import torch
from scipy import stats as sps

from .audit import fingerprint_model
from .derive import train
from .errors import Cancelled, SeedPrintsError
from .fingerprint import Fingerprint
from .loading import hash_state_dict
from .probes import ProbeSpec
from .progress import ProgressCallback
from .robustness import EVASION_MODIFICATIONS, modifications
from .stats import SeedPrintsResult, SuspectRanks, calibrated_test, centered_ranks, identity_dims, resolve_k
from .tiny import tiny_llama

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
#: the Learn tab's false-positive figures: a summary of bench/results/accuracy.json shipped inside the package
ACCURACY_JSON = Path(__file__).resolve().parent / "data" / "accuracy-summary.json"

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

Progress = ProgressCallback  # the engine's one progress contract: progress(stage, done, total)


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
def tiny_model(seed: int, hidden: int = HIDDEN, layers: int = LAYERS, vocab: int = VOCAB) -> torch.nn.Module:
    """A freshly initialised lesson model (the shared tiny llama recipe) whose weights depend only on ``seed``."""
    return tiny_llama(seed, hidden, layers, vocab)


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
    ma, mb = profile_of(a), profile_of(b)
    if ma.shape != mb.shape:
        raise SeedPrintsError(f"profiles of different width: {ma.shape[0]} and {mb.shape[0]} dimensions")
    d = int(ma.shape[0])
    kk = resolve_k(k, d)
    da, db = identity_dims(ma, kk), identity_dims(mb, kk)
    return IdentityOverlap(da, db, np.intersect1d(da, db), kk, d)


def profile_of(x: Any) -> np.ndarray:
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
    """Train a copy of ``model`` on random windows of ``text`` (next-byte loss) with the shared loop
    (:func:`seedprints.derive.train`), checking the lesson's settings, cancel and divergence.

    ``seed`` fixes which windows are drawn.  Returns the trained copy (in eval mode) and the
    loss of every step; the input model is left untouched.
    """
    steps = int_setting("training steps", steps, 1, 5000)
    lr = float_setting("learning rate", lr, 1e-7, 1.0)
    seq_len = min(int(seq_len), len(text_tokens(text)) - 1)

    def on_step(step: int, value: float) -> None:
        if not math.isfinite(value):
            raise SeedPrintsError(f"training diverged at step {step} (loss {value}): lower the learning rate")
        _say(progress, f"training: step {step} of {steps}, loss {value:.2f}", step, steps)
        _check_cancel(cancel)

    _check_cancel(cancel)
    return train(model, steps, lr, batch, seq_len, int(seed), text=text, on_step=on_step)


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
    """The five modifications of step 5 (the robustness panel's list, with the lesson's settings)."""
    ft_steps = int_setting("fine-tune steps", ft_steps, 1, 2000)
    noise = float_setting("noise level", noise, 0.0, 2.0)
    prune = float_setting("pruned fraction", prune, 0.0, 0.99)
    mods = modifications(ft_steps=ft_steps, ft_lr=3e-4, ft_text=None, noise=noise, prune=prune, int4_group=32,
                         seed=seed)
    # the lesson's five are the ordinary modifications; the basis changes belong to the robustness panel
    return [Derivative(key, label, make) for key, (label, make) in mods.items() if key not in EVASION_MODIFICATIONS]


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
        raise SeedPrintsError(f"{p} is not there: run `python bench/accuracy.py` to measure false-positive rates "
                              "(it writes this summary too)")
    try:
        data = _read_json(str(p), p.stat().st_mtime_ns)
    except (OSError, ValueError) as exc:
        raise SeedPrintsError(f"{p} cannot be read as JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("results"), list):
        raise SeedPrintsError(f"{p} has no 'results' list: is it an accuracy benchmark record?")
    return data


def summarise_accuracy(record: dict[str, Any]) -> dict[str, Any]:
    """What the Learn tab reads of an accuracy record: each row's FPR and its pairs' labels and log10 p."""
    keep = ("test", "probe", "budget", "n_samples", "seq_len", "fpr_at_alpha")
    rows = []
    for r in record.get("results", []):
        row = {k: r[k] for k in keep if k in r}
        if isinstance(r.get("pairs"), list):
            row["pairs"] = [{"positive": bool(p.get("positive", False)), "inconclusive": bool(p.get("inconclusive", False)),
                             "log10_p": round(float(p.get("log10_p", 0.0)), 4)} for p in r["pairs"]]
        rows.append(row)
    return {"alpha": record.get("alpha"), "source": "bench/results/accuracy.json", "results": rows}


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
