"""Loading decoder-only causal LMs from folders, single files, GGUF or the Hugging Face Hub.

Everything here ends in a :class:`LoadedModel` (the torch module plus facts about it) or a
one-line :class:`ModelLoadError`.  Remote code stays off unless the caller opts in; pickled
``.bin`` weights are read with ``weights_only=True`` only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import tempfile
import threading
from concurrent.futures import Future
from pathlib import Path
from typing import Any

import torch

from . import hub
from .errors import ModelLoadError, first_line

#: Model types that are encoder-only or encoder-decoder: SeedPrints needs a decoder-only LM.
ENCODER_ONLY_TYPES = frozenset({
    "bert", "roberta", "distilbert", "albert", "electra", "deberta", "deberta-v2", "xlm-roberta",
    "xlm-roberta-xl", "camembert", "mpnet", "modernbert", "ernie", "layoutlm", "longformer", "funnel",
    "squeezebert", "mobilebert", "convbert", "rembert", "nezha", "canine", "roformer", "esm",
})
_WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf")


@dataclasses.dataclass(frozen=True)
class ModelFacts:
    """What a fingerprint records about the model it came from."""

    name: str
    architecture: str
    model_type: str
    hidden_size: int
    vocab_size: int
    n_params: int
    weights_hash: str
    source: str = ""
    dtype: str = "float32"
    device: str = "cpu"
    #: dtype the weights are stored in (compute may upcast, e.g. bf16 -> fp32 on CPU); "" in older files
    checkpoint_dtype: str = ""
    #: how features were extracted: "in-memory" or "streamed layer by layer: ..."; "" in older files
    extraction: str = ""
    hub_repo: str = ""
    hub_revision: str = ""
    hub_files: dict[str, str] = dataclasses.field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form; the hub_* fields only for Hub checkpoints, so other files stay as before."""
        data = dataclasses.asdict(self)
        return data if self.hub_repo else {k: v for k, v in data.items() if not k.startswith("hub_")}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ModelFacts:
        """Inverse of :meth:`to_dict`; ignores unknown keys from newer files."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in names})


@dataclasses.dataclass
class LoadedModel:
    """A causal LM ready for extraction, with its facts."""

    model: torch.nn.Module
    facts: ModelFacts

    @property
    def name(self) -> str:
        """The model's display name."""
        return self.facts.name

    @property
    def device(self) -> torch.device:
        """Device of the model's first parameter."""
        return next(self.model.parameters()).device


@dataclasses.dataclass(frozen=True)
class ModelSource:
    """Where a checkpoint lives: kind is 'folder', 'safetensors', 'bin', 'gguf' or 'hub'."""

    kind: str
    location: str
    config_path: Path | None = None
    weight_files: tuple[Path, ...] = ()
    hub: hub.HubSnapshot | None = None

    @property
    def name(self) -> str:
        """A short name for the source: the Hub id, or the file or folder name."""
        if self.kind == "hub":
            return self.location
        p = Path(self.location)
        return p.name if p.is_dir() else p.stem


# ---------------------------------------------------------------------------- sources
def resolve_source(source: str | os.PathLike[str], config: str | os.PathLike[str] | None = None,
                   revision: str | None = None) -> ModelSource:
    """Classify a model location without loading it; one-line error for missing or unknown inputs."""
    text = os.fspath(source)
    if revision:
        src = resolve_source(text, config)
        if src.kind != "hub":
            raise ModelLoadError(f"a revision ({revision!r}) applies only to Hugging Face Hub ids, and {text!r} is a "
                                 "local file or folder: drop --revision")
        return ModelSource("hub", hub.with_revision(text, revision))
    path = Path(text).expanduser()
    if path.is_dir():
        cfg = path / "config.json"
        ggufs = sorted(path.glob("*.gguf"))
        weights = tuple(sorted(list(path.glob("*.safetensors")) + list(path.glob("*.bin"))))
        if not cfg.is_file() and len(ggufs) == 1:
            return ModelSource("gguf", str(ggufs[0]), None, (ggufs[0],))
        if not cfg.is_file():
            raise ModelLoadError(f"folder {text!r} has no config.json: give a Hugging Face model folder "
                                 "(config.json + weights), a .gguf file, or a .safetensors file with --config")
        safes = tuple(p for p in weights if p.suffix == ".safetensors")
        bins = tuple(p for p in weights if p.suffix == ".bin" and p.name != "training_args.bin")
        chosen = safes or bins
        if not chosen:
            raise ModelLoadError(f"folder {text!r} has a config.json but no weights (*.safetensors or pytorch_model*.bin)")
        return ModelSource("folder", str(path), cfg, chosen)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix == ".gguf":
            return ModelSource("gguf", str(path), None, (path,))
        if suffix in (".safetensors", ".bin"):
            cfg = Path(config).expanduser() if config is not None else path.parent / "config.json"
            if not cfg.is_file():
                raise ModelLoadError(f"{path.name} needs a config.json: put one beside it or pass --config PATH")
            return ModelSource("safetensors" if suffix == ".safetensors" else "bin", str(path), cfg, (path,))
        if suffix == ".zip":
            raise ModelLoadError(f"{path.name} is a zip: unpack it (or use the app's upload, which validates archives) "
                                 "and pass the folder")
        raise ModelLoadError(f"unknown model format {path.name!r}: give a Hugging Face folder, a .safetensors or "
                             ".bin file with config.json, a .gguf file, or a Hub id")
    if hub.is_hub_id(text) and not text.startswith((".", "/", "~")):
        return ModelSource("hub", text)
    raise ModelLoadError(f"no such model file or folder: {text!r} (a Hub id looks like 'org/name' or 'org/name@revision')")


def hash_files(paths: list[Path] | tuple[Path, ...], root: Path | None = None) -> str:
    """SHA-256 over (relative name, size, bytes) of the given files, in name order."""
    h = hashlib.sha256()
    for p in sorted(paths, key=lambda q: q.name):
        h.update(p.name.encode() + b"\0" + str(p.stat().st_size).encode() + b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(1 << 22):
                h.update(chunk)
    return h.hexdigest()


#: hash_files results of this process, keyed by each file's (path, size, mtime, inode): a file is read once
_HASHES: dict[tuple[Any, ...], Future[str]] = {}
_HASHES_LOCK = threading.Lock()


def hash_files_async(paths: list[Path] | tuple[Path, ...]) -> Future[str]:
    """hash_files(paths), computed once per process in a background thread (hashing releases the GIL, so the
    caller can import or load meanwhile); files changed since (size, mtime or inode) are hashed again."""
    key = tuple(sorted((str(p.resolve()), st.st_size, st.st_mtime_ns, st.st_ino) for p in paths for st in [p.stat()]))
    with _HASHES_LOCK:
        if (fut := _HASHES.get(key)) is not None:
            return fut
        fut = _HASHES[key] = Future()

    def run() -> None:
        try:
            fut.set_result(hash_files(paths))
        except BaseException as exc:  # noqa: BLE001 - handed to whoever waits on the future
            with _HASHES_LOCK:
                _HASHES.pop(key, None)  # a failed read is retried by the next caller
            fut.set_exception(exc)

    # a daemon thread, not an executor: an early exit must not wait for a 100 GB checkpoint to finish hashing
    threading.Thread(target=run, name="seedprints-hash", daemon=True).start()
    return fut


def start_weights_hash(src: ModelSource) -> None:
    """Begin hashing a local checkpoint in the background; a later source_weights_hash finds it ready."""
    if src.hub is None and src.kind != "hub":
        hash_files_async(_hashed_files(src))


def _hashed_files(src: ModelSource) -> list[Path]:
    return list(src.weight_files) + ([src.config_path] if src.config_path else [])


def source_weights_hash(src: ModelSource) -> str | None:
    """Content hash of a local checkpoint's weights and config; hub:org/name@sha for Hub snapshots (None before)."""
    if src.hub is not None:
        return src.hub.revision.cache_key
    if src.kind == "hub":
        return None
    try:
        return "files-sha256:" + hash_files_async(_hashed_files(src)).result()
    except OSError as exc:
        raise ModelLoadError(f"cannot read {src.name} to hash it: {first_line(exc)}") from None


def hash_state_dict(model: torch.nn.Module) -> str:
    """Content hash of a module's tensors (name, dtype, shape, bytes), for in-memory models.

    Quantized modules keep packed (weight, bias) tuples and dtype entries in their state
    dict; tensors inside are hashed in order and other values by their repr.
    """
    h = hashlib.sha256()

    def feed(name: str, value: Any) -> None:
        if isinstance(value, torch.Tensor):
            t = value.detach()
            if t.is_quantized:
                t = t.dequantize()
            t = t.to("cpu").contiguous().reshape(-1)
            h.update(f"{name}|{t.dtype}|{tuple(value.shape)}".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        elif isinstance(value, (tuple, list)):
            for i, item in enumerate(value):
                feed(f"{name}.{i}", item)
        else:
            h.update(f"{name}|{value!r}".encode())

    for name, value in sorted(model.state_dict().items(), key=lambda kv: kv[0]):
        feed(name, value)
    return "tensors-sha256:" + h.hexdigest()


# ---------------------------------------------------------------------------- devices
def select_device(device: str | torch.device = "auto") -> torch.device:
    """'auto' picks CUDA, then Apple MPS, then CPU; anything else is validated."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError):
        raise ModelLoadError(f"unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise ModelLoadError("device 'cuda' was requested but no CUDA GPU is available: use --device cpu")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise ModelLoadError("device 'mps' was requested but Apple MPS is not available: use --device cpu")
    return dev


def compute_dtype(device: torch.device, checkpoint_dtype: Any, dtype: str | torch.dtype = "auto") -> torch.dtype:
    """fp32 on CPU; bf16 on GPU for fp16/bf16 checkpoints; fp32 otherwise; or the caller's choice."""
    if isinstance(dtype, torch.dtype):
        return dtype
    if dtype != "auto":
        table = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                 "float16": torch.float16, "fp16": torch.float16}
        if dtype not in table:
            raise ModelLoadError(f"unknown dtype {dtype!r}: use auto, float32, bfloat16 or float16")
        return table[dtype]
    if device.type == "cpu":
        return torch.float32
    name = str(checkpoint_dtype).replace("torch.", "") if checkpoint_dtype is not None else ""
    return torch.bfloat16 if name in ("float16", "bfloat16") else torch.float32


# ---------------------------------------------------------------------------- config checks
def check_causal_lm_config(config: Any, name: str) -> None:
    """Refuse encoder-only and encoder-decoder configs with a one-line error."""
    model_type = str(getattr(config, "model_type", "") or "")
    archs = list(getattr(config, "architectures", None) or [])
    if getattr(config, "is_encoder_decoder", False):
        raise ModelLoadError(f"{name} is an encoder-decoder model ({model_type}): SeedPrints needs a decoder-only causal LM")
    causal = any(("CausalLM" in a) or ("LMHeadModel" in a) for a in archs)
    if model_type in ENCODER_ONLY_TYPES and not causal:
        raise ModelLoadError(f"{name} is an encoder-only model ({model_type}): SeedPrints needs a decoder-only causal LM")
    if archs and not causal and not any(a.endswith("Model") for a in archs):
        raise ModelLoadError(f"{name} declares architectures {archs}, none a causal LM: SeedPrints needs a decoder-only causal LM")


def import_model_code(src: ModelSource, trust_remote_code: bool = False) -> None:
    """Import transformers and this checkpoint's modeling code now (about 1.5 s on first use), for example while
    its weights hash in the background; any problem is left for the load that follows to report."""
    if src.config_path is None or src.kind == "gguf":
        return
    try:
        cfg = read_config(src, trust_remote_code)
        from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING

        MODEL_FOR_CAUSAL_LM_MAPPING[type(cfg)]  # the lookup imports the architecture's module
    except Exception:  # noqa: BLE001 - a warm-up only; loading reports the error with its context
        pass


def read_config(src: ModelSource, trust_remote_code: bool) -> Any:
    """The transformers config of a local checkpoint; refuses remote code unless trusted."""
    from transformers import AutoConfig

    assert src.config_path is not None
    try:
        raw = json.loads(src.config_path.read_text())
    except (OSError, ValueError) as exc:
        raise ModelLoadError(f"config {src.config_path} is not valid JSON ({exc}): fix or replace it") from None
    if not isinstance(raw, dict):
        raise ModelLoadError(f"config {src.config_path} is not a JSON object")
    if raw.get("auto_map") and not trust_remote_code:
        raise ModelLoadError(f"{src.name} asks to run custom code from its repository (auto_map in config.json); "
                             "pass --trust-remote-code only if you trust its author")
    try:
        return AutoConfig.from_pretrained(str(src.config_path), trust_remote_code=trust_remote_code,
                                          local_files_only=True)
    except Exception as exc:  # transformers raises ValueError/KeyError/OSError for unknown configs
        raise ModelLoadError(f"cannot read config of {src.name}: {first_line(exc)}") from None


def hidden_size_of(src: ModelSource, trust_remote_code: bool = False) -> int | None:
    """The checkpoint's hidden size, read from its config.json or GGUF header without loading a weight.

    None when the files do not say (or a Hub id is not downloaded yet); a config that cannot be read raises
    the ModelLoadError its load would.
    """
    if src.kind == "gguf":
        return _gguf_hidden_size(Path(src.location))
    if src.config_path is None:
        return None
    size = getattr(read_config(src, trust_remote_code), "hidden_size", None)
    return int(size) if isinstance(size, int) and size > 0 else None


def _gguf_hidden_size(path: Path) -> int | None:
    """``<architecture>.embedding_length`` of a GGUF file's metadata (its header only is read)."""
    try:
        from gguf import GGUFReader

        fields = GGUFReader(str(path)).fields
        arch = fields["general.architecture"].contents()
        size = fields[f"{arch}.embedding_length"].contents()
    except Exception:  # noqa: BLE001 - a damaged or exotic header: its load reports the problem
        return None
    return int(size) if isinstance(size, int) and size > 0 else None


def download_from_hub(repo: str | hub.HubRevision, trust_remote_code: bool = False) -> ModelSource:
    """The local snapshot of 'org/name[@revision]' (resolved to a commit first, unless already resolved),
    downloaded online if needed."""
    rev = repo if isinstance(repo, hub.HubRevision) else hub.resolve(repo)
    repo_id = repo if isinstance(repo, str) else rev.pinned

    def check(config_path: Path) -> None:
        cfg = read_config(ModelSource("hub", repo_id, config_path), trust_remote_code)
        check_causal_lm_config(cfg, repo_id)

    snap = hub.fetch(rev, check_config=check)
    return ModelSource("folder", str(snap.folder), snap.config_path, snap.weight_files, hub=snap)


# ---------------------------------------------------------------------------- loading
def load_model(
    source: str | os.PathLike[str] | ModelSource,
    *,
    config: str | os.PathLike[str] | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    name: str | None = None,
    weights_hash: str | None = None,
    revision: str | None = None,
) -> LoadedModel:
    """Load a decoder-only causal LM from a folder, .safetensors/.bin + config, .gguf or Hub id (at a revision).

    ``weights_hash`` skips hashing the files again when the caller already did.
    """
    src = source if isinstance(source, ModelSource) else resolve_source(source, config, revision)
    _quiet_transformers()
    if src.kind == "hub":
        label = name or src.location
        src = download_from_hub(src.location, trust_remote_code)
    else:
        label = name or src.name
    dev = select_device(device)
    weights_hash = weights_hash or source_weights_hash(src)
    assert weights_hash is not None
    if src.kind == "gguf":
        model = _load_gguf(src, label, dev, dtype)
    else:
        cfg = read_config(src, trust_remote_code)
        check_causal_lm_config(cfg, label)
        target = compute_dtype(dev, getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None), dtype)
        model = _load_hf(src, cfg, label, dev, target, trust_remote_code)
    facts = facts_for(model, label, weights_hash,
                      source=source.location if isinstance(source, ModelSource) else os.fspath(source))
    return LoadedModel(model, dataclasses.replace(facts, **src.hub.facts()) if src.hub is not None else facts)


def _quiet_transformers() -> None:
    """SeedPrints reports its own progress; silence transformers' per-load bars and info logs (Hub downloads keep theirs)."""
    from huggingface_hub.utils import are_progress_bars_disabled, enable_progress_bars
    from transformers.utils import logging as hf_logging

    hub_bars = not are_progress_bars_disabled()
    hf_logging.disable_progress_bar()  # this also turns off huggingface_hub's download bars ...
    if hub_bars:
        enable_progress_bars()  # ... which the CLI shows while a Hub checkpoint downloads
    hf_logging.set_verbosity_error()


def _staging_folder(src: ModelSource) -> tempfile.TemporaryDirectory[str]:
    tmp = tempfile.TemporaryDirectory(prefix="seedprints-load-")
    assert src.config_path is not None
    os.symlink(src.config_path.resolve(), Path(tmp.name) / "config.json")
    target = "model.safetensors" if src.kind == "safetensors" else "pytorch_model.bin"
    os.symlink(Path(src.location).resolve(), Path(tmp.name) / target)
    return tmp


def _checkpoint_bytes(src: ModelSource) -> int:
    return sum(p.stat().st_size for p in src.weight_files)


def _load_hf(src: ModelSource, cfg: Any, label: str, dev: torch.device, target: torch.dtype,
             trust_remote_code: bool) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    tmp = _staging_folder(src) if src.kind in ("safetensors", "bin") else None
    folder = tmp.name if tmp is not None else src.location
    kwargs: dict[str, Any] = dict(dtype=target, trust_remote_code=trust_remote_code, local_files_only=True,
                                  weights_only=True, config=cfg)
    if dev.type == "cuda" and _checkpoint_bytes(src) > 0.85 * torch.cuda.mem_get_info(dev)[0]:
        kwargs["device_map"] = "auto"  # larger than one GPU: let accelerate spread it
    try:
        model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
    except ModelLoadError:
        raise
    except Exception as exc:
        msg = first_line(exc)
        if "Unrecognized configuration class" in msg or "does not recognize this architecture" in msg:
            raise ModelLoadError(f"{label}: architecture {getattr(cfg, 'model_type', '?')!r} is not a causal LM "
                                 "that transformers can load") from None
        if "weights only load failed" in msg.lower() or "unpickl" in msg.lower() or type(exc).__name__ == "UnpicklingError":
            bins = ", ".join(p.name for p in Path(folder).glob("*.bin")) or "its .bin file"
            raise ModelLoadError(f"{label}: {bins} contains pickled code that could run when loaded: refused as "
                                 "unsafe; convert the checkpoint to .safetensors from a source you trust") from None
        raise ModelLoadError(f"cannot load weights of {label}: {msg}") from None
    finally:
        if tmp is not None:
            tmp.cleanup()
    if "device_map" not in kwargs:
        model.to(dev)
    model.eval()
    model.requires_grad_(False)
    return model


def _load_gguf(src: ModelSource, label: str, dev: torch.device, dtype: str | torch.dtype) -> torch.nn.Module:
    from transformers import AutoModelForCausalLM

    path = Path(src.location)
    target = compute_dtype(dev, "float16", dtype)
    _gguf_bar_follows_hub_switch()
    try:
        model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=target,
                                                     local_files_only=True)
    except Exception as exc:
        raise ModelLoadError(f"cannot load GGUF {path.name}: {first_line(exc)}") from None
    check_causal_lm_config(model.config, label)
    model.to(dev)
    model.eval()
    model.requires_grad_(False)
    return model


def _gguf_bar_follows_hub_switch() -> None:
    """transformers draws its "Converting and de-quantizing GGUF tensors" bar with plain tqdm, which its own
    progress-bar switch does not reach: make that bar follow huggingface_hub's switch, which the CLI turns off
    under -q/--json (and HF_HUB_DISABLE_PROGRESS_BARS=1 turns off anywhere).  Installed once; each bar asks the
    switch when it is made, so concurrent loads never race over it."""
    from huggingface_hub.utils import are_progress_bars_disabled
    from transformers import modeling_gguf_pytorch_utils as gguf_utils

    bar = getattr(gguf_utils, "tqdm", None)
    if bar is None or getattr(bar, "follows_hub_switch", False):
        return

    def tqdm(*args: Any, **kwargs: Any) -> Any:
        if are_progress_bars_disabled():
            kwargs["disable"] = True
        return bar(*args, **kwargs)

    tqdm.follows_hub_switch = True  # type: ignore[attr-defined]
    gguf_utils.tqdm = tqdm


def facts_for(model: torch.nn.Module, name: str, weights_hash: str | None = None, source: str = "") -> ModelFacts:
    """Collect the facts a fingerprint records (hashes the tensors when no file hash is given)."""
    cfg = getattr(model, "config", None)
    archs = list(getattr(cfg, "architectures", None) or [])
    seen: set[int] = set()
    n_params = 0
    for p in model.parameters():
        if id(p) not in seen:
            seen.add(id(p))
            n_params += p.numel()
    first = next(model.parameters(), None)
    return ModelFacts(
        name=name,
        architecture=archs[0] if archs else type(model).__name__,
        model_type=str(getattr(cfg, "model_type", "") or ""),
        hidden_size=int(getattr(cfg, "hidden_size", 0) or 0),
        vocab_size=int(getattr(cfg, "vocab_size", 0) or 0),
        n_params=int(n_params),
        weights_hash=weights_hash or hash_state_dict(model),
        source=source,
        dtype=str(first.dtype).replace("torch.", "") if first is not None else "float32",
        device=str(first.device) if first is not None else "cpu",
    )


def wrap_model(model: torch.nn.Module, name: str) -> LoadedModel:
    """Wrap an in-memory model (e.g. built in a test or notebook) for extraction."""
    if not hasattr(model, "config"):
        raise ModelLoadError(f"{name} is not a transformers model (it has no .config)")
    check_causal_lm_config(model.config, name)
    model.eval()
    return LoadedModel(model, facts_for(model, name))

