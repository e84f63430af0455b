"""Seed zoo: model families with known lineage, built deterministically on the CPU with no download.

Per architecture and init seed: ``init``; ``pretrain`` (every seed sees the same synthetic
corpus in the same order, the hardest negatives); then derivatives of the pretrained model:
``cpt`` (continued pre-training on another corpus), ``ft`` (full fine-tune), ``lora`` (peft
LoRA merged into the weights), ``int8`` and ``int4`` (weight quantization), ``prune30``
(30% magnitude pruning) and ``merge`` (weight average of two fine-tunes of the parent).
Two models share a lineage exactly when they share (architecture, seed).
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
import math
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import optional
from .derive import average_weights, magnitude_prune, quantize_weights
from .paths import home
from .progress import ProgressCallback

ZOO_VERSION = 1
DERIVATIVES = ("cpt", "ft", "lora", "int8", "int4", "prune30", "merge")
STAGES = ("init", "pretrain", *DERIVATIVES)


@dataclasses.dataclass(frozen=True)
class ZooConfig:
    """Everything that determines a zoo's contents (its hash names the build)."""

    name: str
    archs: tuple[str, ...] = ("llama", "qwen2")
    seeds: tuple[int, ...] = (0, 1, 2, 3, 4, 5)
    hidden: int = 256
    layers: int = 4
    heads: int = 4
    vocab: int = 1024
    seq_len: int = 64
    batch: int = 16
    pretrain_steps: int = 600
    pretrain_lr: float = 1e-3
    cpt_steps: int = 200
    cpt_lr: float = 5e-4
    ft_steps: int = 100
    ft_lr: float = 1e-4
    lora_steps: int = 150
    lora_lr: float = 1e-3
    derivatives: tuple[str, ...] = DERIVATIVES
    corpus_words: int = 400_000

    @property
    def key(self) -> str:
        """Short hash of the configuration and zoo version."""
        blob = json.dumps({"v": ZOO_VERSION, **dataclasses.asdict(self)}, sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


FULL = ZooConfig("full")
MINI = ZooConfig("mini", archs=("llama",), seeds=(0, 1, 2), hidden=128, layers=2, vocab=512, seq_len=32,
                 pretrain_steps=300, pretrain_lr=2e-3, cpt_steps=0, ft_steps=30, lora_steps=0, derivatives=("ft", "int8"),
                 corpus_words=60_000)


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One checkpoint of the zoo and its ground truth."""

    arch: str
    seed: int
    stage: str
    path: Path

    @property
    def key(self) -> str:
        """Stable short hash of the configuration (names the zoo folder)."""
        return f"{self.arch}/seed{self.seed}/{self.stage}"

    def same_lineage(self, other: ZooModel) -> bool:
        """Ground truth: same architecture and init seed."""
        return self.arch == other.arch and self.seed == other.seed


# ---------------------------------------------------------------------------- corpora and tokenizer
def _words(rng: np.random.Generator, n: int) -> list[str]:
    onsets = ["", "b", "d", "f", "g", "k", "l", "m", "n", "p", "r", "s", "t", "v", "z", "br", "st", "tr", "pl"]
    vowels = ["a", "e", "i", "o", "u", "ai", "ou"]
    codas = ["", "n", "r", "s", "t", "l", "m"]
    out: list[str] = []
    seen: set[str] = set()
    while len(out) < n:
        w = "".join(str(rng.choice(onsets)) + str(rng.choice(vowels)) + str(rng.choice(codas))
                    for _ in range(int(rng.integers(1, 4))))
        if w not in seen:
            seen.add(w)
            out.append(w)
    return out


def synthetic_corpus(domain: int, n_words: int, vocab_words: int = 800) -> str:
    """Deterministic text from a sparse random Markov chain over pseudo-words (domain picks the chain)."""
    words = _words(np.random.default_rng(12345), vocab_words)  # one shared word list
    rng = np.random.default_rng([777, domain])
    fanout = 6
    succ = rng.integers(0, vocab_words, (vocab_words, fanout))
    probs = rng.dirichlet(np.full(fanout, 0.5), vocab_words)
    cum = np.cumsum(probs, axis=1)
    u = rng.random(n_words)
    ends = rng.random(n_words) < 0.08
    out = []
    w = int(rng.integers(vocab_words))
    for i in range(n_words):
        out.append(words[w])
        if ends[i]:
            out.append(".\n")
            w = int(rng.integers(vocab_words)) if u[i] < 0.5 else w
        w = int(succ[w, min(int(np.searchsorted(cum[w], u[i])), fanout - 1)])
    return " ".join(out)


def _train_tokenizer(text: str, vocab: int) -> Any:
    tokenizers = optional.require("tokenizers", "the seed zoo's tokenizer")
    models, pre_tokenizers, trainers = tokenizers.models, tokenizers.pre_tokenizers, tokenizers.trainers
    tok = tokenizers.Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    trainer = trainers.BpeTrainer(vocab_size=vocab, special_tokens=["<unk>"], show_progress=False)
    tok.train_from_iterator(text.splitlines(), trainer=trainer)
    return tok


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------------------- models and training
def new_model(arch: str, cfg: ZooConfig, seed: int) -> torch.nn.Module:
    """A fresh init of the zoo architecture ``arch`` from ``seed``."""
    from transformers import LlamaConfig, LlamaForCausalLM, Qwen2Config, Qwen2ForCausalLM

    common = dict(vocab_size=cfg.vocab, hidden_size=cfg.hidden, intermediate_size=2 * cfg.hidden,
                  num_hidden_layers=cfg.layers, num_attention_heads=cfg.heads, max_position_embeddings=2 * cfg.seq_len,
                  tie_word_embeddings=False)
    torch.manual_seed(seed)
    if arch == "llama":
        return LlamaForCausalLM(LlamaConfig(num_key_value_heads=cfg.heads, architectures=["LlamaForCausalLM"], **common))
    if arch == "qwen2":
        return Qwen2ForCausalLM(Qwen2Config(num_key_value_heads=max(1, cfg.heads // 2),
                                            architectures=["Qwen2ForCausalLM"], **common))
    raise ValueError(f"unknown zoo architecture {arch!r}: use 'llama' or 'qwen2'")


def _batches(tokens: np.ndarray, cfg: ZooConfig, steps: int, data_seed: int) -> Iterator[torch.Tensor]:
    rng = np.random.default_rng([data_seed, 99])
    for _ in range(steps):
        starts = rng.integers(0, len(tokens) - cfg.seq_len - 1, cfg.batch)
        yield torch.from_numpy(np.stack([tokens[s:s + cfg.seq_len] for s in starts]))


def _val_loss(model: torch.nn.Module, val: np.ndarray, cfg: ZooConfig) -> float:
    model.eval()
    with torch.inference_mode():
        losses = [float(model(input_ids=x, labels=x).loss) for x in _batches(val, cfg, 8, data_seed=4242)]
    model.train()
    return float(np.mean(losses))


def train(model: torch.nn.Module, tokens: np.ndarray, val: np.ndarray, cfg: ZooConfig, steps: int, lr: float,
          data_seed: int) -> dict[str, list[float]]:
    """AdamW with warm-up and cosine decay on seeded batches; returns train and validation loss curves."""
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=lr, weight_decay=0.01)
    warm = max(1, steps // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warm) * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(1.0, s / steps)))))
    curve: dict[str, list[float]] = {"train": [], "val_step": [], "val": [_val_loss(model, val, cfg)]}
    curve["val_step"].append(0)
    model.train()
    for step, x in enumerate(_batches(tokens, cfg, steps, data_seed), start=1):
        loss = model(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        curve["train"].append(round(loss.item(), 5))
        if step % max(1, steps // 10) == 0 or step == steps:
            curve["val_step"].append(step)
            curve["val"].append(round(_val_loss(model, val, cfg), 5))
    model.eval()
    return curve


def _lora_finetune(model: torch.nn.Module, tokens: np.ndarray, val: np.ndarray, cfg: ZooConfig) -> torch.nn.Module:
    peft = optional.require("peft", "the seed zoo's LoRA derivatives")
    base = copy.deepcopy(model)
    lcfg = peft.LoraConfig(r=8, lora_alpha=16, lora_dropout=0.0, init_lora_weights=True,
                      target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"])
    torch.manual_seed(1000)  # LoRA A matrices are random: fix them
    peft_model = peft.get_peft_model(base, lcfg)
    train(peft_model, tokens, val, cfg, cfg.lora_steps, cfg.lora_lr, data_seed=3)
    return peft_model.merge_and_unload()


# ---------------------------------------------------------------------------- the zoo
class Zoo:
    """A built zoo on disk: its config, models and manifest (loss curves, hashes, timings)."""

    def __init__(self, root: Path, config: ZooConfig, manifest: dict[str, Any]) -> None:
        self.root = root
        self.config = config
        self.manifest = manifest
        self.models = [ZooModel(arch, seed, stage, root / arch / f"seed{seed}" / stage)
                       for arch in config.archs for seed in config.seeds
                       for stage in ("init", "pretrain", *config.derivatives)]

    def get(self, arch: str, seed: int, stage: str) -> ZooModel:
        """The model with this architecture, seed and stage."""
        for m in self.models:
            if (m.arch, m.seed, m.stage) == (arch, seed, stage):
                return m
        raise KeyError(f"{arch}/seed{seed}/{stage}")


def zoo_root(config: ZooConfig, root: Path | None = None) -> Path:
    """Folder of a zoo build: $SEEDPRINTS_HOME/zoo/<name>-<config hash> unless given."""
    return Path(root) if root is not None else home() / "zoo" / f"{config.name}-{config.key}"


def build_zoo(config: ZooConfig = FULL, root: Path | None = None, progress: ProgressCallback | None = None,
              only_arch: str | None = None) -> Zoo | None:
    """Build (or resume, or reuse) a zoo; each (architecture, seed) unit is written once and marked done.

    ``only_arch`` builds that architecture's units alone (so that one process per architecture can build
    a zoo in parallel) and returns None; the zoo is returned once every unit is done."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    hf_logging.set_verbosity_error()
    say = progress or (lambda stage, done, total: None)
    root = zoo_root(config, root)
    root.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    data = _prepare_data(config, root)
    units = [(a, s) for a in config.archs for s in config.seeds]
    for i, (arch, seed) in enumerate(units):
        unit = root / arch / f"seed{seed}"
        if (unit / "done.json").is_file() or (only_arch is not None and arch != only_arch):
            continue
        say(f"building {arch} seed {seed}", i, len(units))
        shutil.rmtree(unit, ignore_errors=True)
        _build_unit(config, arch, seed, unit, data)
    if only_arch is not None:
        return None
    manifest = {"version": ZOO_VERSION, "config": dataclasses.asdict(config), "key": config.key,
                "corpora": data["hashes"], "units": {}}
    for arch, seed in units:
        manifest["units"][f"{arch}/seed{seed}"] = json.loads((root / arch / f"seed{seed}" / "done.json").read_text())
    manifest["last_build_seconds"] = round(time.perf_counter() - t_start, 1)
    (root / "zoo.json").write_text(json.dumps(manifest, indent=1))
    say("zoo ready", len(units), len(units))
    return Zoo(root, config, manifest)


def _prepare_data(config: ZooConfig, root: Path) -> dict[str, Any]:
    files = {name: root / f"{name}.npy" for name in ("pretrain", "val", "cpt", "ft", "ft2")}
    meta_path = root / "data.json"
    if meta_path.is_file() and all(p.is_file() for p in files.values()):
        arrays = {k: np.load(p) for k, p in files.items()}
        return {**arrays, "hashes": json.loads(meta_path.read_text())}
    texts = {"pretrain": synthetic_corpus(1, config.corpus_words), "cpt": synthetic_corpus(2, config.corpus_words // 2),
             "ft": synthetic_corpus(3, config.corpus_words // 4)}
    tok = _train_tokenizer(texts["pretrain"], config.vocab)
    tok.save(str(root / "tokenizer.json"))

    def encode(text: str) -> np.ndarray:
        ids = [i for line in text.splitlines() for i in tok.encode(line).ids]
        return np.asarray(ids, dtype=np.int64)

    pre = encode(texts["pretrain"])
    cut = int(len(pre) * 0.95)
    ft = encode(texts["ft"])
    half = len(ft) // 2
    arrays = {"pretrain": pre[:cut], "val": pre[cut:], "cpt": encode(texts["cpt"]), "ft": ft[:half], "ft2": ft[half:]}
    hashes = {f"{k}_text_sha256": _sha(v.encode()) for k, v in texts.items()}
    hashes["tokenizer_sha256"] = _sha((root / "tokenizer.json").read_bytes())
    hashes.update({f"{k}_tokens": int(len(v)) for k, v in arrays.items()})
    for k, p in files.items():
        np.save(p, arrays[k])
    meta_path.write_text(json.dumps(hashes, indent=1))
    return {**arrays, "hashes": hashes}


def _save(model: torch.nn.Module, folder: Path) -> str:
    from .loading import resolve_source, source_weights_hash

    model.save_pretrained(folder)
    return str(source_weights_hash(resolve_source(folder)))


def _build_unit(config: ZooConfig, arch: str, seed: int, unit: Path, data: dict[str, Any]) -> None:
    t0 = time.perf_counter()
    record: dict[str, Any] = {"arch": arch, "seed": seed, "hashes": {}, "curves": {}}
    model = new_model(arch, config, seed)
    record["hashes"]["init"] = _save(model, unit / "init")
    curve = train(model, data["pretrain"], data["val"], config, config.pretrain_steps, config.pretrain_lr, data_seed=1)
    record["curves"]["pretrain"] = curve
    val = curve["val"]
    record["pretrain_ok"] = bool(val[-1] < 0.5 * val[0] and (val[-2] - val[-1]) < 0.05 * val[-2])
    record["hashes"]["pretrain"] = _save(model, unit / "pretrain")
    parent = model
    made: dict[str, torch.nn.Module] = {}
    for stage in config.derivatives:
        if stage == "cpt":
            child = copy.deepcopy(parent)
            record["curves"]["cpt"] = train(child, data["cpt"], data["val"], config, config.cpt_steps, config.cpt_lr, 2)
        elif stage in ("ft", "merge"):
            if "ft" not in made:
                made["ft"] = copy.deepcopy(parent)
                record["curves"]["ft"] = train(made["ft"], data["ft"], data["val"], config, config.ft_steps,
                                               config.ft_lr, 5)
            if stage == "ft":
                child = made["ft"]
            else:
                ft2 = copy.deepcopy(parent)
                record["curves"]["ft2"] = train(ft2, data["ft2"], data["val"], config, config.ft_steps, config.ft_lr, 6)
                child = average_weights(made["ft"], ft2)
        elif stage == "lora":
            child = _lora_finetune(parent, data["ft"], data["val"], config)
        elif stage == "int8":
            child = quantize_weights(parent, bits=8)
        elif stage == "int4":
            child = quantize_weights(parent, bits=4, group_size=32)
        elif stage == "prune30":
            child = magnitude_prune(parent, 0.3)
        else:
            raise ValueError(f"unknown zoo stage {stage!r}")
        record["hashes"][stage] = _save(child, unit / stage)
    record["seconds"] = round(time.perf_counter() - t0, 1)
    (unit / "done.json").write_text(json.dumps(record))
