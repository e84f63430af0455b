"""Which seed, without a library: verify a claimed training seed, or recover it from a range.

When a model was initialised with a known recipe (``torch.manual_seed(s)`` then
``AutoModelForCausalLM.from_config(config)``, what the transformers examples and Trainer do; or the
zoo's own recipe), the init for any seed can be rebuilt from the model's own ``config.json``.  Each
rebuilt init is fingerprinted with the default probe and tested against the suspect with the default
test (basis check included), so permuted or rotated copies still verify.

Search and multiple testing: a search tries the seeds of a range (well-known seeds first) and corrects
with Holm over the WHOLE range, seeds not tried yet counted as p = 1.  Holm's adjusted p-values never
decrease when an input p-value grows (it is a closed test of Bonferroni tests), so each seed's adjusted
p with the untried seeds at p = 1 is at least what the finished search would give it: a seed declared
a match early stays a match of the full search.  ``stop_at_match`` therefore stops at the first seed
whose p x (seeds in the range) is below alpha, and the verdict is as valid as if the range had been
exhausted.  A seed outside the range is never recovered: the answer is then "no seed recovered".
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import re
import shlex
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from . import __version__
from .audit import ModelLike, fingerprint_model
from .errors import Cancelled, ModelLoadError, SeedPrintsError
from .extract import CancelToken
from .fileio import atomic_write_bytes
from .fingerprint import Fingerprint
from .loading import (LoadedModel, check_causal_lm_config, download_from_hub, facts_for, hash_state_dict, read_config,
                      resolve_source)
from .memory import MemoryBudgetError, format_size, resolve_budget
from .methods import DEFAULT_ALPHA, DEFAULT_TEST, get_test
from .probes import DEFAULT_PRESET, ProbeSpec, preset
from .progress import ProgressCallback
from .stats import SeedPrintsResult, SuspectRanks, holm_log10
from .verdict import basis_summary, format_p, run_test

#: seeds people type; a search tries those inside its range first, in this order
WELL_KNOWN_SEEDS = (0, 1, 42, 1234, 3407, 123, 2024, 7, 1337, 12345, 2023, 2025, 2, 3, 5, 10, 100, 999, 31337)
#: largest number of seeds one search may list (a longer range is split into several searches)
MAX_SEEDS = 1_000_000
_MAX_SEED = 2**64 - 1  # torch.manual_seed accepts 0 .. 2**64 - 1
STATE_VERSION = 1


class SeedSearchError(SeedPrintsError):
    """A seed, range, recipe or state file the seed commands cannot use."""


# ---------------------------------------------------------------------------- recipes
_RNG_LOCK = threading.Lock()  # the global torch generator is process-wide: one rebuild at a time


def _causal_lm_class(config: Any) -> str | None:
    """Why transformers' AutoModelForCausalLM cannot build this config, or None when it can."""
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

    if type(config) in MODEL_FOR_CAUSAL_LM_MAPPING:
        return None
    return (f"transformers {_transformers_version()} has no causal LM class for model type "
            f"{getattr(config, 'model_type', '?')!r} (custom-code models are not rebuilt)")


def _zoo_class(config: Any) -> str | None:
    if getattr(config, "model_type", "") in ("llama", "qwen2"):
        return None
    return f"the zoo builds llama and qwen2 models only, not {getattr(config, 'model_type', '?')!r}"


def _auto_build(config: Any) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(config)


def _zoo_build(config: Any) -> torch.nn.Module:
    import transformers

    cls = {"llama": transformers.LlamaForCausalLM, "qwen2": transformers.Qwen2ForCausalLM}[config.model_type]
    return cls(config)


def _transformers_version() -> str:
    import transformers

    return transformers.__version__


@dataclasses.dataclass(frozen=True)
class Recipe:
    """One way a model's init is drawn from a seed: what it runs, on which generator, and what it can build."""

    name: str
    description: str
    code: str
    generator: str  # "cpu" or "cuda": the torch generator the init draws from
    construct: Callable[[Any], torch.nn.Module]
    unsupported: Callable[[Any], str | None]

    def check(self, config: Any) -> None:
        """One-line error when this recipe cannot rebuild this configuration here."""
        if self.generator == "cuda" and not torch.cuda.is_available():
            raise SeedSearchError(f"recipe {self.name} draws the init on the CUDA generator and needs a CUDA GPU, "
                                  "but none is available here: run it on a machine with one, or use another recipe")
        why = self.unsupported(config)
        if why:
            raise SeedSearchError(f"recipe {self.name} cannot rebuild this model: {why}")

    def info(self) -> dict[str, Any]:
        """What a report records about the recipe: enough to redo the init elsewhere."""
        device = "cpu"
        if self.generator == "cuda" and torch.cuda.is_available():
            device = f"cuda ({torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda})"
        return {"name": self.name, "description": self.description, "code": self.code,
                "generator": f"torch {self.generator.upper()} generator", "device": device,
                "torch": torch.__version__, "transformers": _transformers_version()}

    def build(self, config: Any, seed: int) -> torch.nn.Module:
        """The init this recipe draws for ``seed`` (eval mode); the caller's random state is left as it was."""
        self.check(config)
        cuda = self.generator == "cuda"
        with _RNG_LOCK, torch.random.fork_rng(devices=[torch.cuda.current_device()] if cuda else []):
            torch.manual_seed(seed)
            if cuda:
                with torch.device("cuda"):
                    model = self.construct(config)
            else:
                model = self.construct(config)
        return model.eval().requires_grad_(False)

    def size(self, config: Any) -> tuple[int, torch.dtype]:
        """Parameters and dtype of this recipe's model for the config, counted on the meta device (no memory)."""
        self.check(config)
        with _RNG_LOCK, torch.random.fork_rng(devices=[]), torch.device("meta"):
            model = self.construct(config)
        seen = {id(p): p for p in model.parameters()}
        first = next(iter(seen.values()), None)
        return sum(p.numel() for p in seen.values()), first.dtype if first is not None else torch.float32


RECIPES: dict[str, Recipe] = {r.name: r for r in (
    Recipe("transformers-cpu",
           "torch.manual_seed(seed), then AutoModelForCausalLM.from_config(config) on the CPU: what the transformers "
           "examples and Trainer do when training from scratch",
           "torch.manual_seed(seed); AutoModelForCausalLM.from_config(config)", "cpu", _auto_build, _causal_lm_class),
    Recipe("zoo",
           "the SeedPrints zoo and tiny-model recipe (seedprints.zoo.new_model, seedprints.tiny.tiny_llama): "
           "torch.manual_seed(seed), then the architecture's class built from the config on the CPU, in float32 "
           "(llama and qwen2)",
           "torch.manual_seed(seed); LlamaForCausalLM(config)  # or Qwen2ForCausalLM", "cpu", _zoo_build, _zoo_class),
    Recipe("transformers-cuda",
           "torch.manual_seed(seed), then AutoModelForCausalLM.from_config(config) built on the GPU "
           "(under torch.device('cuda')), so the init draws from the CUDA generator, which gives other numbers "
           "than the CPU one for the same seed",
           "torch.manual_seed(seed)\nwith torch.device('cuda'): AutoModelForCausalLM.from_config(config)", "cuda",
           _auto_build, _causal_lm_class),
)}
DEFAULT_RECIPE = "transformers-cpu"


def get_recipe(name: str) -> Recipe:
    """The registered recipe of this name, or a one-line error listing the choices."""
    recipe = RECIPES.get(name)
    if recipe is None:
        raise SeedSearchError(f"unknown recipe {name!r}: choose one of {', '.join(RECIPES)}")
    return recipe


# ---------------------------------------------------------------------------- seeds
def _seed(text: str, whole: str) -> int:
    if not text.strip().isdigit():
        raise SeedSearchError(f"cannot read seed range {whole!r}: write it like 0-999, 42, or 0-99,1234,3407")
    value = int(text)
    if value > _MAX_SEED:
        raise SeedSearchError(f"seed {value} is larger than torch accepts (2**64 - 1)")
    return value


def parse_seeds(text: str) -> tuple[int, ...]:
    """The seeds of a range such as ``0-999`` or ``0-99,1234`` in the order a search tries them: the well-known
    seeds inside it first (:data:`WELL_KNOWN_SEEDS`), then the rest ascending."""
    parts = [p for p in str(text).replace(" ", "").split(",") if p]
    if not parts:
        raise SeedSearchError(f"cannot read seed range {text!r}: write it like 0-999, 42, or 0-99,1234,3407")
    spans: list[tuple[int, int]] = []
    for part in parts:
        lo_text, sep, hi_text = part.partition("-")
        lo = _seed(lo_text, text)
        hi = _seed(hi_text, text) if sep else lo
        if hi < lo:
            raise SeedSearchError(f"seed range {part!r} ends before it starts: write it low-high, like {hi}-{lo}")
        spans.append((lo, hi))
    if sum(hi - lo + 1 for lo, hi in spans) > MAX_SEEDS:
        raise SeedSearchError(f"seed range {text!r} holds more than {MAX_SEEDS:,} seeds: split it into several "
                              "searches (each keeps its own --state file)")
    inside = lambda s: any(lo <= s <= hi for lo, hi in spans)  # noqa: E731
    first = [s for s in WELL_KNOWN_SEEDS if inside(s)]
    rest = sorted({s for lo, hi in spans for s in range(lo, hi + 1)} - set(first))
    return tuple(first + rest)


def check_seed(seed: Any) -> int:
    """A claimed seed as an int (a whole number, or its digits as text), or a one-line error."""
    if isinstance(seed, str) and seed.strip().isdigit():
        seed = int(seed)
    if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= _MAX_SEED:
        raise SeedSearchError(f"seed {seed!r} is not a whole number from 0 to 2**64 - 1: give the seed the model "
                              "was trained with")
    return seed


# ---------------------------------------------------------------------------- the suspect
def seed_probe(config: Any) -> ProbeSpec:
    """The default probe, its token range limited to the model's vocabulary when that is smaller."""
    base = preset(DEFAULT_PRESET)
    vocab = int(getattr(config, "vocab_size", 0) or 0)
    return base.replace(vocab_range=vocab) if 2 <= vocab < int(base.vocab_range or 0) else base


def suspect_config(suspect: ModelLike, config: str | os.PathLike[str] | None = None, revision: str | None = None,
                   trust_remote_code: bool = False) -> Any:
    """The transformers config of a suspect (its config.json, or an in-memory model's .config)."""
    if isinstance(suspect, LoadedModel):
        suspect = suspect.model
    if isinstance(suspect, torch.nn.Module):
        cfg = getattr(suspect, "config", None)
        if cfg is None:
            raise ModelLoadError(f"{type(suspect).__name__} is not a transformers model (it has no .config)")
        return cfg
    src = resolve_source(suspect, config, revision)
    if src.kind == "gguf":
        raise ModelLoadError(f"{src.name} is a GGUF file, which carries no config.json to rebuild the init from: "
                             "give the model folder (config.json + weights) instead")
    if src.kind == "hub":
        src = download_from_hub(src.location, trust_remote_code)
    cfg = read_config(src, trust_remote_code)
    check_causal_lm_config(cfg, src.name)
    return cfg


def check_fits(recipe: Recipe, config: Any, spec: ProbeSpec, name: str, max_memory: str | int | None = None) -> int:
    """Bytes one rebuilt init needs; a one-line error naming them when they exceed the memory budget."""
    from .streaming import activation_bytes_per_sample
    from .extract import default_batch_size

    n_params, dtype = recipe.size(config)
    device = torch.device("cuda" if recipe.generator == "cuda" else "cpu")
    batch = default_batch_size(spec, device)
    need = n_params * dtype.itemsize + batch * activation_bytes_per_sample(config, spec.seq_len, dtype.itemsize)
    budget = resolve_budget(max_memory, device)
    if need > budget:
        raise MemoryBudgetError(
            f"rebuilding the {recipe.name} init of {name} needs about {format_size(need)} ({n_params:,} parameters "
            f"in {str(dtype).replace('torch.', '')}), more than the memory budget {format_size(budget)}; transformers "
            "draws the whole model's random numbers in one pass (module constructors, then init_weights), so the "
            "init cannot be rebuilt layer by layer: raise --max-memory or use a machine with more memory")
    return need


# ---------------------------------------------------------------------------- results
@dataclasses.dataclass(frozen=True)
class SeedTrial:
    """One seed tried: the test of the suspect against that seed's rebuilt init."""

    seed: int
    statistic: float
    z: float
    log10_p: float
    inconclusive: bool = False
    reason: str = ""
    basis: dict[str, Any] | None = None
    #: content hash of the rebuilt init (seedprints.loading.hash_state_dict); kept for seeds significant on
    #: their own, "" for the others (hashing every init would double a search's time)
    init_sha256: str = ""
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (also the state file's)."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> SeedTrial:
        """Inverse of :meth:`to_dict`."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass(frozen=True)
class SeedAnswer:
    """What every seed answer records: the verdict, the suspect, the recipe and its versions, the probe and test,
    and the command that reproduces it."""

    label: str
    seed: int | None
    suspect: str
    suspect_model: dict[str, Any]
    recipe: dict[str, Any]
    probe: dict[str, Any]
    probe_id: str
    test: dict[str, Any]
    alpha: float
    reason: str
    command: str
    seconds: float

    def _record(self, *leave_out: str) -> dict[str, Any]:
        return {"tool": "seedprints", "tool_version": __version__,
                **{f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name not in leave_out}}


@dataclasses.dataclass(frozen=True)
class SeedCheck(SeedAnswer):
    """The answer to "was this model trained from seed S with recipe R?" (``seedprints verify-seed``):
    label MATCH, NO MATCH or INCONCLUSIVE, the test result against the rebuilt init and that init's hash."""

    result: SeedPrintsResult
    init_sha256: str

    @property
    def significant(self) -> bool:
        """True when the suspect matches the rebuilt init at level alpha."""
        return self.result.significant(self.alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: verdict, recipe and versions, probe, test and the full test result."""
        return {**self._record("result"), "significant": self.significant, "result": self.result.to_dict()}


@dataclasses.dataclass(frozen=True)
class SeedSearch(SeedAnswer):
    """A range of seeds tried against the suspect (``seedprints seed-search``), Holm-corrected over the range.

    label is MATCH, NO MATCH, AMBIGUOUS or INCONCLUSIVE; seed the recovered seed (None when no seed, or more
    than one, is significant); trials are in the order tried; log10_p_holm[i] is trial i's Holm-adjusted
    log10 p over all ``n_range`` seeds of the range, those not tried counted as p = 1 (module docstring).
    """

    seeds: str
    n_range: int
    trials: tuple[SeedTrial, ...]
    log10_p_holm: tuple[float, ...]
    stopped_early: bool
    from_state: int
    state_file: str | None

    def ranked(self) -> list[tuple[SeedTrial, float]]:
        """(trial, Holm-adjusted log10 p) pairs, strongest evidence first."""
        pairs = list(zip(self.trials, self.log10_p_holm))
        return sorted(pairs, key=lambda t: (t[0].inconclusive, t[0].log10_p, -t[0].z))

    @property
    def best(self) -> SeedTrial | None:
        """The trial with the strongest evidence (None when nothing was tried)."""
        ranked = self.ranked()
        return ranked[0][0] if ranked else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready record: verdict, recipe and versions, probe, test, every trial with its Holm-adjusted p."""
        trials = [{**t.to_dict(), "log10_p_holm": h, "significant": _hit(t, h, self.alpha)}
                  for t, h in zip(self.trials, self.log10_p_holm)]
        return {**self._record("trials", "log10_p_holm"), "tried": len(self.trials), "trials": trials}


def _hit(trial: SeedTrial, log10_p_holm: float, alpha: float) -> bool:
    return (not trial.inconclusive) and log10_p_holm < math.log10(alpha)


# ---------------------------------------------------------------------------- the work
@dataclasses.dataclass
class _Setup:
    recipe: Recipe
    config: Any
    spec: ProbeSpec
    suspect: Fingerprint
    prepared: Any
    test: str
    test_kwargs: dict[str, Any]
    params: dict[str, Any]
    alpha: float
    progress: ProgressCallback | None
    cancel: CancelToken | None


def _setup(suspect: ModelLike, recipe_name: str = DEFAULT_RECIPE, *, name: str | None = None,
           probe: ProbeSpec | None = None, test: str = DEFAULT_TEST, alpha: float = DEFAULT_ALPHA,
           max_memory: str | int | None = None, progress: ProgressCallback | None = None,
           cancel: CancelToken | None = None, load: dict[str, Any] | None = None, **test_kwargs: Any) -> _Setup:
    """Everything a seed check needs before the first seed: the recipe, the suspect's config, the probe, and the
    suspect's fingerprint, made once (keywords as in :func:`verify_seed`)."""
    load = dict(load or {})
    if not 0.0 < alpha < 1.0:
        raise SeedPrintsError(f"alpha must lie in (0, 1), got {alpha}: use a level such as 0.01")
    get_test(test)
    recipe = get_recipe(recipe_name)
    config = suspect_config(suspect, load.get("config"), load.get("revision"), load.get("trust_remote_code", False))
    recipe.check(config)
    spec = probe or seed_probe(config)
    label = name or (Path(os.fspath(suspect)).name if isinstance(suspect, (str, os.PathLike)) else None)
    check_fits(recipe, config, spec, label or "the suspect", max_memory)
    fp = fingerprint_model(suspect, spec, name=label, max_memory=max_memory, progress=progress, cancel=cancel, **load)
    prepared = SuspectRanks(fp) if test == "calibrated" else fp
    params = {"test": test, **{k: v for k, v in test_kwargs.items() if v is not None}}
    return _Setup(recipe, config, spec, fp, prepared, test, test_kwargs, params, alpha, progress, cancel)


def _try_seed(setup: _Setup, seed: int, hash_if: Callable[[SeedPrintsResult], bool]) -> tuple[SeedPrintsResult, str]:
    model = setup.recipe.build(setup.config, seed)
    label = f"{setup.recipe.name} init, seed {seed}"
    loaded = LoadedModel(model, facts_for(model, label, weights_hash=f"rebuilt:{setup.recipe.name}:seed{seed}"))
    ref = fingerprint_model(loaded, setup.spec, name=label)
    result = run_test(ref, setup.prepared, setup.test, **setup.test_kwargs)
    sha = hash_state_dict(model) if hash_if(result) else ""
    del model, loaded
    return result, sha


def _probe_flags(spec: ProbeSpec) -> list[str]:
    if spec == seed_probe_like(spec):
        return []
    return ["--n-samples", str(spec.n_samples), "--seq-len", str(spec.seq_len), "--vocab-range",
            str(spec.vocab_range), "--probe-seed", str(spec.seed), "--positions", spec.positions]


def seed_probe_like(spec: ProbeSpec) -> ProbeSpec:
    """The default probe with this spec's token range (what the seed commands use when no probe is named)."""
    return preset(DEFAULT_PRESET).replace(vocab_range=spec.vocab_range) if spec.kind == "token" else preset(DEFAULT_PRESET)


def _command(verb: str, target: str, setup: _Setup, alpha: float, extra: list[str]) -> str:
    parts = ["seedprints", verb, target, *extra, "--recipe", setup.recipe.name, "--test", setup.test,
             "--alpha", f"{alpha:g}"]
    kw = setup.test_kwargs
    if setup.test == "calibrated":
        if kw.get("n_permutations") is not None:
            parts += ["--permutations", str(kw["n_permutations"])]
        if kw.get("basis_check") is False:
            parts.append("--no-basis-check")
    if kw.get("k") is not None:
        parts += ["--k", f"{kw['k']:g}"]
    return " ".join(shlex.quote(p) for p in parts + _probe_flags(setup.spec))


def _common(setup: _Setup, label: str, seed: int | None, reason: str, command: str, t0: float) -> dict[str, Any]:
    return {"label": label, "seed": seed, "suspect": setup.suspect.name, "suspect_model": setup.suspect.model.to_dict(),
            "recipe": setup.recipe.info(), "probe": setup.spec.to_dict(), "probe_id": setup.spec.id,
            "test": setup.params, "alpha": setup.alpha, "reason": reason, "command": command,
            "seconds": round(time.perf_counter() - t0, 3)}


def _target(suspect: ModelLike, fp: Fingerprint) -> str:
    return os.fspath(suspect) if isinstance(suspect, (str, os.PathLike)) else (fp.model.source or "SUSPECT")


def verify_seed(suspect: ModelLike, seed: int, *, recipe: str = DEFAULT_RECIPE, **options: Any) -> SeedCheck:
    """Rebuild the init of the suspect's own configuration for ``seed`` with the recipe and test the suspect
    against it: MATCH seed S, or NO MATCH.

    Options: ``name`` (of the suspect in the report), ``probe`` (default :func:`seed_probe`), ``test`` and
    ``alpha`` (the registry's defaults), ``max_memory`` (budget of one rebuilt init, and of the suspect's
    extraction), ``progress(stage, done, total)``, ``cancel`` (anything with ``is_set()``), ``load`` (the
    loading options of :func:`seedprints.audit.fingerprint_model`: config, device, dtype, cache, revision,
    trust_remote_code, stream, batch_size); other keywords go to the test.
    """
    t0 = time.perf_counter()
    seed = check_seed(seed)
    setup = _setup(suspect, recipe, **options)
    alpha, progress, cancel = setup.alpha, setup.progress, setup.cancel
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"seed check cancelled before seed {seed} was rebuilt")
    if progress:
        progress(f"rebuilding the seed {seed} init", 0, 1)
    result, sha = _try_seed(setup, seed, lambda r: True)
    if progress:
        progress(f"tested seed {seed}", 1, 1)
    sus = setup.suspect.name
    if result.inconclusive:
        label, reason = "INCONCLUSIVE", f"No decision: {result.reason}."
    elif result.significant(alpha):
        label = "MATCH"
        reason = (f"{sus} shares its init with the seed {seed} init of recipe {setup.recipe.name}: an unrelated model "
                  f"would agree this strongly with a chance of only {format_p(result.log10_pvalue)} "
                  f"(z = {result.z:.1f}), so the claim that it was trained from seed {seed} with this recipe holds.")
    else:
        label = "NO MATCH"
        reason = (f"{sus} shows no link to the seed {seed} init of recipe {setup.recipe.name} stronger than chance "
                  f"(p = {format_p(result.log10_pvalue)}, z = {result.z:.1f}, above the {alpha:g} threshold): it was not "
                  f"trained from seed {seed} with this recipe (another recipe, device or library version draws other "
                  "numbers for the same seed).")
    command = _command("verify-seed", _target(suspect, setup.suspect), setup, alpha, ["--seed", str(seed)])
    return SeedCheck(**_common(setup, label, seed, reason, command, t0), result=result, init_sha256=sha)


# ---------------------------------------------------------------------------- search
def _state_key(setup: _Setup) -> dict[str, Any]:
    info = setup.recipe.info()
    return {"suspect_weights_hash": setup.suspect.model.weights_hash, "recipe": setup.recipe.name,
            "torch": info["torch"], "transformers": info["transformers"], "device": info["device"],
            "probe_id": setup.spec.id, "test": setup.params}


def _read_state(path: Path, key: dict[str, Any]) -> dict[int, SeedTrial]:
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"version {data.get('version')!r}")
        stored_key = data["key"]
        trials = {int(s): SeedTrial.from_dict(t) for s, t in data["trials"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise SeedSearchError(f"state file {path} is not a seed-search state ({exc}): give another --state file "
                              "or delete it") from None
    if stored_key != key:
        diff = sorted(k for k in set(key) | set(stored_key) if key.get(k) != stored_key.get(k))
        raise SeedSearchError(f"state file {path} was written for another search (different {', '.join(diff)}): "
                              "give another --state file or delete it")
    return trials


def _write_state(path: Path, key: dict[str, Any], trials: dict[int, SeedTrial]) -> None:
    data = {"version": STATE_VERSION, "tool_version": __version__, "key": key,
            "trials": {str(s): t.to_dict() for s, t in trials.items()}}
    atomic_write_bytes(path, json.dumps(data, indent=1).encode())


def _holm_over_range(trials: list[SeedTrial], n_range: int) -> list[float]:
    """Holm-adjusted log10 p of each trial over the whole range, untried seeds at p = 1 (log10 p = 0)."""
    import numpy as np

    lp = np.zeros(n_range)
    lp[:len(trials)] = [0.0 if t.inconclusive else t.log10_p for t in trials]
    return [float(v) for v in holm_log10(lp)[:len(trials)]]


def search_seeds(suspect: ModelLike, seeds: str, *, recipe: str = DEFAULT_RECIPE, stop_at_match: bool = False,
                 state: str | os.PathLike[str] | None = None, **options: Any) -> SeedSearch:
    """Try every seed of a range (well-known seeds first) and recover the one the suspect was initialised from.

    Holm over the whole range (module docstring); ``stop_at_match`` stops at the first decisive seed;
    ``state`` names a JSON file of the seeds tried, written after each seed, so that a rerun continues
    where a cancelled or interrupted search stopped.  Cancel raises :class:`~seedprints.errors.Cancelled`
    (the state file keeps what was tried).  Options as in :func:`verify_seed`.
    """
    t0 = time.perf_counter()
    order = parse_seeds(seeds)
    n = len(order)
    setup = _setup(suspect, recipe, **options)
    alpha, progress, cancel = setup.alpha, setup.progress, setup.cancel
    key = _state_key(setup)
    state_path = Path(state) if state is not None else None
    stored = _read_state(state_path, key) if state_path is not None else {}
    log_alpha, log_n = math.log10(alpha), math.log10(n)
    decisive = lambda t: (not t.inconclusive) and t.log10_p + log_n < log_alpha  # noqa: E731
    tried: list[SeedTrial] = []
    from_state = 0
    for i, seed in enumerate(order):
        if cancel is not None and cancel.is_set():
            raise Cancelled(f"seed search cancelled after {i} of {n} seeds"
                            + (f"; {state_path} keeps them, rerun to continue" if state_path else ""))
        if progress:
            progress(f"seed {seed} ({i + 1}/{n})", i, n)
        trial = stored.get(seed)
        if trial is None:
            t1 = time.perf_counter()
            result, sha = _try_seed(setup, seed, lambda r: r.significant(alpha))
            trial = SeedTrial(seed, float(result.statistic), float(result.z), float(result.log10_pvalue),
                              bool(result.inconclusive), result.reason, basis_summary(result), sha,
                              round(time.perf_counter() - t1, 3))
            if state_path is not None:
                stored[seed] = trial
                _write_state(state_path, key, stored)
        else:
            from_state += 1
        tried.append(trial)
        if stop_at_match and decisive(trial):
            break
    if progress:
        progress("seed search done", n, n)
    holm = _holm_over_range(tried, n)
    stopped = len(tried) < n
    hits = [(t, h) for t, h in zip(tried, holm) if _hit(t, h, alpha)]
    label, seed_found, reason = _search_verdict(setup, seeds, n, tried, holm, hits, alpha, stopped)
    extra = ["--seeds", seeds] + (["--stop-at-match"] if stop_at_match else [])
    command = _command("seed-search", _target(suspect, setup.suspect), setup, alpha, extra)
    return SeedSearch(**_common(setup, label, seed_found, reason, command, t0), seeds=seeds, n_range=n,
                      trials=tuple(tried), log10_p_holm=tuple(holm), stopped_early=stopped, from_state=from_state,
                      state_file=None if state_path is None else str(state_path))


def _search_verdict(setup: _Setup, seeds: str, n: int, tried: list[SeedTrial], holm: list[float],
                    hits: list[tuple[SeedTrial, float]], alpha: float, stopped: bool) -> tuple[str, int | None, str]:
    sus, rec = setup.suspect.name, setup.recipe.name
    usable = [(t, h) for t, h in zip(tried, holm) if not t.inconclusive]
    if not usable:
        return "INCONCLUSIVE", None, "No decision: the test could not be run for any seed tried" + (
            f" ({tried[0].reason})." if tried else ".")
    if len(hits) == 1:
        t, h = hits[0]
        how = (f"the search stopped there, after {len(tried)} of the {n} seeds, because this p stays below {alpha:g} "
               "whatever the untried seeds give" if stopped else f"after trying all {n} seeds")
        return "MATCH", t.seed, (
            f"{sus} shares its init with the seed {t.seed} init of recipe {rec}: p = {format_p(h)} after Holm's "
            f"correction for the {n} seeds of {seeds} (z = {t.z:.1f}); {how}.")
    if hits:
        listed = ", ".join(f"{t.seed} (z = {t.z:.1f})" for t, _ in hits[:5])
        return "AMBIGUOUS", None, (
            f"Several seeds match {sus} ({listed}); inits of different seeds are independent, so the rebuilt inits "
            "or the suspect are not what they seem: check the recipe and the model.")
    best, h = min(usable, key=lambda th: th[0].log10_p)
    return "NO MATCH", None, (
        f"No seed recovered: none of the {len(usable)} seeds tried in {seeds} with recipe {rec} links to {sus} "
        f"(the closest, seed {best.seed}, has p = {format_p(h)} after Holm's correction for {n} seeds, z = "
        f"{best.z:.1f}). Either the seed lies outside the range, or the model was initialised with another recipe, "
        "device or library version.")
