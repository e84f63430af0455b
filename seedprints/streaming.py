"""Layer-streamed extraction: memory independent of depth.

The model is built as a skeleton without weights (meta device).  Each decoder layer's
tensors are read from the safetensors shards only when that layer runs, upcast to the
compute dtype, used for every probe sample of the current chunk, and freed.  The
transformer's own forward code runs unchanged: forward pre-hooks materialise a layer and
forward hooks free it, so every architecture transformers ships runs its own maths.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .errors import Cancelled, ModelLoadError, first_line
from .memory import MemoryBudgetError, format_size, release_freed_memory
from .probes import ProbeSpec
from .progress import ProgressCallback

INDEX_NAME = "model.safetensors.index.json"
_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16,
           "I64": torch.int64, "I32": torch.int32, "I16": torch.int16, "I8": torch.int8, "U8": torch.uint8,
           "BOOL": torch.bool}
_MAX_HEADER = 100 << 20
#: Cap on tokens per streamed chunk on a CPU: larger chunks gain nothing and cost cache misses.
CPU_CHUNK_TOKENS = 1 << 16


class StreamingUnsupported(ModelLoadError):
    """This checkpoint or architecture has no streaming path (the in-memory path may still work)."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
    """Where one checkpoint tensor lives and what it is."""

    file: Path
    dtype: str
    shape: tuple[int, ...]

    @property
    def numel(self) -> int:
        """Number of elements."""
        return math.prod(self.shape)


@dataclasses.dataclass(frozen=True)
class CheckpointIndex:
    """Every tensor of a safetensors checkpoint, read from the shard headers only."""

    tensors: dict[str, TensorInfo]
    files: tuple[Path, ...]

    @property
    def n_params(self) -> int:
        """Elements over all tensors."""
        return sum(t.numel for t in self.tensors.values())

    @property
    def checkpoint_dtype(self) -> str:
        """The dtype holding most floating-point elements ('bfloat16', 'float32', ...)."""
        counts: dict[str, int] = {}
        for t in self.tensors.values():
            if t.dtype in ("F64", "F32", "F16", "BF16"):
                counts[t.dtype] = counts.get(t.dtype, 0) + t.numel
        if not counts:
            return ""
        return str(_DTYPES[max(counts, key=counts.__getitem__)]).replace("torch.", "")


def _read_header(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            n = int.from_bytes(f.read(8), "little")
            if not 0 < n <= _MAX_HEADER:
                raise ValueError("bad header length")
            header = json.loads(f.read(n))
        if not isinstance(header, dict):
            raise ValueError("header is not an object")
        return header
    except FileNotFoundError:
        raise ModelLoadError(f"shard {path.name} is missing from {path.parent}: download the checkpoint again") from None
    except (OSError, ValueError, RecursionError) as exc:
        raise ModelLoadError(f"{path.name} is not a valid safetensors file ({exc}): download it again") from None


def read_checkpoint_index(weight_files: Sequence[Path]) -> CheckpointIndex:
    """Index the tensors of safetensors weights; with an index file, its shards must exist and agree with it."""
    if not weight_files or any(Path(p).suffix != ".safetensors" for p in weight_files):
        raise StreamingUnsupported("layer streaming reads .safetensors weights only")
    folder = Path(weight_files[0]).parent
    index_file = folder / INDEX_NAME
    weight_map: dict[str, str] | None = None
    if index_file.is_file():
        try:
            weight_map = json.loads(index_file.read_text())["weight_map"]
            if not isinstance(weight_map, dict):
                raise TypeError
        except (OSError, ValueError, KeyError, TypeError, RecursionError):
            raise ModelLoadError(f"{INDEX_NAME} in {folder} is not a valid index: download the checkpoint again") from None
        files = tuple(folder / name for name in sorted(set(map(str, weight_map.values()))))
        for f in files:
            if f.parent != folder or not f.is_file():
                raise ModelLoadError(f"shard {f.name} named by {INDEX_NAME} is missing from {folder}: "
                                     "download the checkpoint again")
    else:
        files = tuple(sorted(Path(p) for p in weight_files))
    tensors: dict[str, TensorInfo] = {}
    for f in files:
        for name, info in _read_header(f).items():
            if name == "__metadata__":
                continue
            try:
                tensors[name] = TensorInfo(f, str(info["dtype"]), tuple(int(s) for s in info["shape"]))
            except (KeyError, TypeError, ValueError):
                raise ModelLoadError(f"{f.name} has a malformed entry for tensor {name!r}: download it again") from None
    if weight_map is not None:
        for name, shard in weight_map.items():
            held = tensors.get(name)
            if held is None or held.file.name != shard:
                raise ModelLoadError(f"{INDEX_NAME} says tensor {name!r} is in {shard}, but that shard does not hold it: "
                                     "the shards disagree with their index; download the checkpoint again")
    return CheckpointIndex(tensors, files)


# ---------------------------------------------------------------------------- the skeleton
def _find_layers(body: torch.nn.Module, n_layers: int) -> tuple[str, torch.nn.ModuleList]:
    for name, child in body.named_children():
        if isinstance(child, torch.nn.ModuleList) and len(child) == n_layers and n_layers > 0:
            return name, child
    raise StreamingUnsupported(f"cannot find the {n_layers} decoder layers of {type(body).__name__}")


@dataclasses.dataclass
class _Unit:
    """A group of parameters loaded and freed together: the token embedding or one decoder layer."""

    label: str
    module: torch.nn.Module
    params: list[tuple[str, str]]  # (name inside module, checkpoint key)
    rows: int | None = None  # embedding only: fill the first ``rows`` rows

    def bytes_at(self, index: CheckpointIndex, itemsize: int) -> int:
        """Bytes of this unit's tensors at a given element size."""
        return sum(index.tensors[k].numel for _, k in self.params) * itemsize

    def checkpoint_bytes(self, index: CheckpointIndex) -> int:
        """Bytes of this unit's tensors as stored."""
        return sum(index.tensors[k].numel * _DTYPES[index.tensors[k].dtype].itemsize for _, k in self.params)


class StreamedModel:
    """A weightless skeleton of a causal LM plus the map from its parameters to checkpoint tensors."""

    def __init__(self, cfg: Any, index: CheckpointIndex, dtype: torch.dtype, device: torch.device, name: str,
                 trust_remote_code: bool = False) -> None:
        from accelerate import init_empty_weights
        from transformers import AutoModelForCausalLM

        try:
            from transformers.conversion_mapping import get_checkpoint_conversion_mapping

            converted = bool(get_checkpoint_conversion_mapping(getattr(cfg, "model_type", "")))
        except ImportError:  # pragma: no cover - older transformers
            converted = False
        arch = getattr(cfg, "model_type", "?")
        if converted:
            raise StreamingUnsupported(f"architecture {arch!r} renames or fuses checkpoint tensors when loading; "
                                       "it has no streaming path")
        self.index, self.dtype, self.device, self.name = index, dtype, device, name
        try:
            with init_empty_weights():
                self.model = AutoModelForCausalLM.from_config(cfg, dtype=dtype, trust_remote_code=trust_remote_code)
        except Exception as exc:
            raise StreamingUnsupported(f"cannot build architecture {arch!r} without weights: "
                                       f"{first_line(exc)}") from None
        self.model.eval()
        self.model.requires_grad_(False)
        body = getattr(self.model, "base_model", None)
        if body is None or body is self.model:
            raise StreamingUnsupported(f"architecture {arch!r} has no separate transformer body")
        self.body = body
        n_layers = int(getattr(cfg, "num_hidden_layers", 0) or getattr(cfg, "n_layer", 0) or 0)
        layers_name, layers = _find_layers(body, n_layers)
        prefix = self._prefix_of(body)
        embed = self.model.get_input_embeddings()
        embed_id = id(embed)
        self.embedding = _Unit("embedding", embed, [])
        self.layers = [_Unit(f"layer {i + 1}/{n_layers}", layer, []) for i, layer in enumerate(layers)]
        self.resident = _Unit("resident", body, [])
        for mod_name, module in body.named_modules():
            for pname, _ in module.named_parameters(recurse=False):
                full = f"{prefix}{mod_name}.{pname}" if mod_name else f"{prefix}{pname}"
                key = self._key_for(full, prefix)
                if module is embed or id(module) == embed_id:
                    self.embedding.params.append((pname, key))
                    continue
                parts = mod_name.split(".")
                if parts[0] == layers_name and len(parts) > 1:
                    unit = self.layers[int(parts[1])]
                    rel = ".".join(parts[2:] + [pname])
                    unit.params.append((rel, key))
                else:
                    self.resident.params.append((f"{mod_name}.{pname}" if mod_name else pname, key))
        self._move_buffers()

    # ------------------------------------------------------------------ names
    def _prefix_of(self, body: torch.nn.Module) -> str:
        for name, module in self.model.named_children():
            if module is body:
                return name + "."
        return ""

    def _key_for(self, full: str, prefix: str) -> str:
        short = full[len(prefix):] if prefix and full.startswith(prefix) else full
        for cand in (full, short, prefix + short):
            if cand in self.index.tensors:
                return cand
        raise StreamingUnsupported(f"the checkpoint of {self.name} has no tensor for parameter {full!r}; "
                                   "its tensor names differ from what transformers builds")

    def _move_buffers(self) -> None:
        for module in self.model.modules():
            for bname, buf in list(module._buffers.items()):
                if buf is not None and buf.device != self.device and buf.device.type != "meta":
                    module._buffers[bname] = buf.to(self.device)

    # ------------------------------------------------------------------ sizes
    @property
    def n_params(self) -> int:
        """Parameters as a loaded model counts them: a tied output table counts once."""
        total = sum(p.numel() for p in self.model.parameters())
        head, embed = self.model.get_output_embeddings(), self.model.get_input_embeddings()
        tied = bool(getattr(self.model.config.get_text_config(), "tie_word_embeddings", False))
        if tied and head is not None and head.weight is not embed.weight:
            total -= head.weight.numel()
        return total

    @property
    def max_unit_bytes(self) -> int:
        """Bytes of the largest streamed unit at the compute dtype, plus its copy as stored (staging)."""
        size = self.dtype.itemsize
        return max(u.bytes_at(self.index, size) + u.checkpoint_bytes(self.index) for u in [self.embedding, *self.layers])

    @property
    def resident_bytes(self) -> int:
        """Bytes of the parameters kept for the whole run (final norm, position tables...)."""
        return self.resident.bytes_at(self.index, self.dtype.itemsize)

    # ------------------------------------------------------------------ weights in and out
    def load(self, unit: _Unit) -> None:
        """Read a unit's tensors from the shards, upcast to the compute dtype, and attach them."""
        from safetensors import safe_open

        by_file: dict[Path, list[tuple[str, str]]] = {}
        for pname, key in unit.params:
            by_file.setdefault(self.index.tensors[key].file, []).append((pname, key))
        for path, items in by_file.items():
            with safe_open(str(path), framework="pt", device="cpu") as f:
                for pname, key in items:
                    if unit.rows is not None and unit is self.embedding and unit.rows < self.index.tensors[key].shape[0]:
                        value = self._embedding_rows(f, key, unit.rows)
                    else:
                        value = f.get_tensor(key).to(self.device, self.dtype)
                    self._attach(unit.module, pname, value)

    def load_all(self) -> torch.nn.Module:
        """Attach every tensor the body needs (the in-memory path without transformers' loader); returns the model."""
        self.embedding.rows = None
        for unit in [self.resident, self.embedding, *self.layers]:
            self.load(unit)
        return self.model

    def _embedding_rows(self, f: Any, key: str, rows: int) -> torch.Tensor:
        """The embedding table with only its first ``rows`` rows read (the only ones a token probe uses).

        The untouched rows are never read by the model and, on a CPU, never become resident memory.
        """
        shape = self.index.tensors[key].shape
        out = torch.empty(shape, dtype=self.dtype, device=self.device)
        block = max(1, (64 << 20) // max(1, shape[1] * 4))
        sl = f.get_slice(key)
        for lo in range(0, min(rows, shape[0]), block):
            hi = min(lo + block, rows, shape[0])
            out[lo:hi] = sl[lo:hi].to(self.device, self.dtype)
        return out

    def embedding_rows(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` of the input-embedding table, read from the shards alone, float32 [A, D]."""
        from safetensors import safe_open

        key = next(k for p, k in self.embedding.params if p.endswith("weight"))
        with safe_open(str(self.index.tensors[key].file), framework="pt", device="cpu") as f:
            sl = f.get_slice(key)
            return np.stack([sl[int(i):int(i) + 1].float().numpy()[0] for i in ids]).astype(np.float32)

    def free(self, unit: _Unit) -> None:
        """Detach a unit's tensors (they go back to the meta device)."""
        for pname, _ in unit.params:
            mod_path, _, attr = pname.rpartition(".")
            owner = unit.module.get_submodule(mod_path) if mod_path else unit.module
            old = owner._parameters[attr]
            owner._parameters[attr] = torch.nn.Parameter(torch.empty(old.shape, dtype=old.dtype, device="meta"),
                                                         requires_grad=False)
        if self.device.type == "cpu":
            release_freed_memory()

    @staticmethod
    def _attach(module: torch.nn.Module, pname: str, value: torch.Tensor) -> None:
        mod_path, _, attr = pname.rpartition(".")
        owner = module.get_submodule(mod_path) if mod_path else module
        owner._parameters[attr] = torch.nn.Parameter(value, requires_grad=False)


# ---------------------------------------------------------------------------- the plan
@dataclasses.dataclass(frozen=True)
class ChunkPlan:
    """How a streamed extraction splits the probe: chunk_size samples per pass over the layers."""

    budget: int
    fixed_bytes: int
    sample_bytes: int
    chunk_size: int
    n_chunks: int

    def describe(self) -> str:
        """One line for logs and the fingerprint metadata."""
        return (f"streamed layer by layer: {self.n_chunks} chunk(s) of {self.chunk_size} samples within "
                f"{format_size(self.budget)} (one layer {format_size(self.fixed_bytes)}, "
                f"{format_size(self.sample_bytes)} per sample)")


def activation_bytes_per_sample(cfg: Any, seq_len: int, itemsize: int) -> int:
    """Upper estimate of live activation bytes per probe sample inside one decoder layer."""
    d = int(getattr(cfg, "hidden_size", 0) or getattr(cfg, "n_embd", 0) or 1)
    inter = int(getattr(cfg, "intermediate_size", 0) or getattr(cfg, "n_inner", 0) or 4 * d)
    heads = int(getattr(cfg, "num_attention_heads", 0) or getattr(cfg, "n_head", 0) or 1)
    per_token = 12 * d + 4 * inter
    return int(1.5 * itemsize * seq_len * (per_token + 2 * heads * seq_len))


def plan_chunks(streamed: StreamedModel, cfg: Any, spec: ProbeSpec, budget: int) -> ChunkPlan:
    """The largest chunk that fits the budget next to one layer; one line naming the need if none does."""
    fixed = streamed.max_unit_bytes + streamed.resident_bytes
    per_sample = activation_bytes_per_sample(cfg, spec.seq_len, streamed.dtype.itemsize)
    room = budget - fixed
    if room < per_sample:
        need = fixed + per_sample
        raise MemoryBudgetError(
            f"memory budget {format_size(budget)} is too small for {streamed.name}: one layer needs "
            f"{format_size(fixed)} plus {format_size(per_sample)} per probe sample; use --max-memory "
            f"{math.ceil(need / 1e8) / 10:g}GB or more")
    chunk = min(spec.n_samples, room // per_sample)
    if streamed.device.type == "cpu":
        chunk = min(chunk, max(1, CPU_CHUNK_TOKENS // spec.seq_len))
    chunk = max(1, int(chunk))
    n_chunks = math.ceil(spec.n_samples / chunk)
    chunk = math.ceil(spec.n_samples / n_chunks)  # even chunks
    return ChunkPlan(budget, fixed, per_sample, chunk, n_chunks)


# ---------------------------------------------------------------------------- running
def streamed_batches(
    streamed: StreamedModel,
    spec: ProbeSpec,
    plan: ChunkPlan,
    *,
    progress: ProgressCallback | None = None,
    cancel: Any = None,
) -> Iterator[tuple[int, np.ndarray, torch.nn.Module]]:
    """Yield (first index, inputs, body) per chunk with hooks installed that stream the layers in and out.

    The caller runs ``body`` on the inputs; pre-hooks load each layer (checking ``cancel`` and
    reporting ``progress(stage, done, total)`` in layer steps), forward hooks free it.
    """
    n_layers = len(streamed.layers)
    units = ([streamed.embedding] if spec.kind == "token" else []) + streamed.layers
    total = plan.n_chunks * len(units)
    state = {"chunk": 0, "done": 0, "lo": 0}
    reread = " (each extra chunk re-reads the weights)" if plan.n_chunks > 1 else ""
    if spec.kind == "token":
        streamed.embedding.rows = int(spec.vocab_range or 0)

    def pre(unit: _Unit):
        def hook(module: torch.nn.Module, args: Any, kwargs: Any = None) -> None:
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"extraction of {streamed.name} cancelled at {unit.label}, chunk "
                                f"{state['chunk'] + 1}/{plan.n_chunks} ({state['lo']} of {spec.n_samples} samples done)")
            if progress:
                progress(f"{unit.label}, chunk {state['chunk'] + 1}/{plan.n_chunks}{reread}", state["done"], total)
            streamed.load(unit)

        return hook

    def post(unit: _Unit):
        def hook(module: torch.nn.Module, args: Any, output: Any) -> None:
            streamed.free(unit)
            state["done"] += 1

        return hook

    handles = []
    streamed.load(streamed.resident)
    try:
        for unit in units:
            handles.append(unit.module.register_forward_pre_hook(pre(unit)))
            handles.append(unit.module.register_forward_hook(post(unit)))
        if progress:
            progress(f"streaming {n_layers} layers, {plan.n_chunks} chunk(s){reread}", 0, total)
        for j, (lo, batch) in enumerate(spec.batches(plan.chunk_size)):
            state["chunk"], state["lo"] = j, lo
            yield lo, batch, streamed.body
        if progress:
            progress("streamed every layer", total, total)
    finally:
        for h in handles:
            h.remove()
        for unit in [streamed.embedding, *streamed.layers, streamed.resident]:
            streamed.free(unit)

