"""Probe extraction: run the transformer body on the probe and keep the last hidden state at the last position
(or at every position, for probes with ``positions="all"``).

Two paths give the same features: in memory (the whole model loaded) and layer-streamed
(:mod:`seedprints.streaming`, memory independent of depth); :func:`extract_checkpoint`
chooses between them from the memory budget.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Protocol

import numpy as np
import torch

from .basis import anchor_ids, embedding_rows
from .errors import Cancelled, ExtractionError, ProbeError
from .loading import (LoadedModel, ModelFacts, ModelSource, check_causal_lm_config, compute_dtype, download_from_hub,
                      load_model, read_config, resolve_source, select_device, source_weights_hash)
from .memory import format_size, resolve_budget
from .probes import ProbeSpec
from .progress import ProgressCallback


class CancelToken(Protocol):
    """Anything with ``is_set()``; a ``threading.Event`` works."""

    def is_set(self) -> bool:
        """True once cancellation was requested."""
        ...


def check_probe_fits(loaded: LoadedModel, spec: ProbeSpec) -> None:
    """One-line error when the probe cannot be fed to this model (vocabulary or hidden size)."""
    emb = loaded.model.get_input_embeddings().weight
    check_probe_fits_facts(loaded.facts.name, spec, loaded.facts.vocab_size or emb.shape[0],
                           loaded.facts.hidden_size or emb.shape[1])


def check_probe_fits_facts(name: str, spec: ProbeSpec, vocab: int, hidden: int) -> None:
    """The same check from a model's vocabulary and hidden size alone (no weights needed)."""
    if spec.kind == "token":
        if vocab and spec.vocab_range > vocab:  # type: ignore[operator]
            raise ProbeError(
                f"{name} has a vocabulary of {vocab} tokens, smaller than the probe's token range "
                f"{spec.vocab_range}: use a probe with vocab_range <= {vocab} for every model you compare"
            )
    elif spec.hidden_size != hidden:
        raise ProbeError(
            f"{name} has hidden size {hidden} but the embedding probe is for hidden size "
            f"{spec.hidden_size}: embedding probes only compare models of equal hidden size; use a token probe"
        )


def default_batch_size(spec: ProbeSpec, device: torch.device) -> int:
    """Samples per forward pass: about 2k tokens on CPU (measured best, bench/perf.py), 32k on GPU, at least 1."""
    budget = 32768 if device.type in ("cuda", "mps") else 2048
    return max(1, min(spec.n_samples, budget // spec.seq_len))


def _body(model: torch.nn.Module) -> torch.nn.Module:
    """The transformer without its LM head (model.model for Llama, model.transformer for GPT-2...)."""
    body = getattr(model, "base_model", None)
    if body is None or body is model:
        raise ExtractionError(f"cannot find the transformer body of {type(model).__name__} (no base_model)")
    return body


def _readout(body: torch.nn.Module, spec: ProbeSpec, batch: np.ndarray, lo: int, device: torch.device,
             dtype: torch.dtype, name: str) -> np.ndarray:
    """Run the body on one batch; the last hidden state at the last position [B, D], or at every position
    [B x L, D] (sample-major) when the probe keeps every position; float32."""
    x = torch.from_numpy(batch).to(device, non_blocking=True)
    if spec.kind == "token":
        hidden = body(input_ids=x, use_cache=False).last_hidden_state
    else:
        hidden = body(inputs_embeds=x.to(dtype), use_cache=False).last_hidden_state
    kept = hidden.reshape(-1, hidden.shape[-1]) if spec.positions == "all" else hidden[:, -1, :]
    rows = kept.float().cpu().numpy()
    del hidden, x, kept
    if not np.all(np.isfinite(rows)):
        raise ExtractionError(
            f"{name} produced NaN/infinite activations on probe samples {lo}..{lo + len(batch) - 1}: "
            "its weights are broken or overflow in this dtype; check the checkpoint or use --dtype float32"
        )
    return rows


def extract_features(
    loaded: LoadedModel,
    spec: ProbeSpec,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Features [rows, D] float32: last-layer hidden state at the last position of every probe sample
    (rows = N), or at every position (rows = N x L, sample-major) when ``spec.positions == "all"``.

    Runs only the transformer body under ``torch.inference_mode``; one batch of activations is
    alive at a time; ``progress(stage, done, total)`` is called after each batch (in samples)
    and ``cancel`` is checked before each batch (raises :class:`Cancelled`).
    """
    check_probe_fits(loaded, spec)
    model = loaded.model
    device = loaded.device
    body = _body(model)
    dtype = next(model.parameters()).dtype
    bs = batch_size or default_batch_size(spec, device)
    out: np.ndarray | None = None
    total = spec.n_samples
    stage = "extracting probe activations"
    if progress:
        progress(stage, 0, total)
    with torch.inference_mode():
        for lo, batch in spec.batches(bs):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"extraction of {loaded.name} cancelled after {lo} of {total} samples")
            rows = _readout(body, spec, batch, lo, device, dtype, loaded.name)
            if out is None:
                out = np.empty((spec.n_rows, rows.shape[1]), dtype=np.float32)
            r = spec.rows_per_sample
            out[lo * r:lo * r + len(rows)] = rows
            if progress:
                progress(stage, lo + len(batch), total)
    assert out is not None
    return out


def model_anchors(loaded: LoadedModel, spec: ProbeSpec) -> np.ndarray | None:
    """The anchor rows of a loaded model for this probe (:mod:`seedprints.basis`), or None when it keeps none."""
    d = int(loaded.model.get_input_embeddings().weight.shape[1])
    ids = anchor_ids(spec, d)
    return None if ids is None else embedding_rows(loaded.model, ids)


# ---------------------------------------------------------------------------- from a checkpoint
def _in_memory_bytes(n_params: int, dtype: torch.dtype, cfg: Any, spec: ProbeSpec, device: torch.device) -> int:
    from .streaming import activation_bytes_per_sample

    batch = min(spec.n_samples, default_batch_size(spec, device))
    return n_params * dtype.itemsize + batch * activation_bytes_per_sample(cfg, spec.seq_len, dtype.itemsize)


def extract_checkpoint(
    source: str | os.PathLike[str] | ModelSource,
    spec: ProbeSpec,
    *,
    name: str | None = None,
    config: str | os.PathLike[str] | None = None,
    device: str | torch.device = "auto",
    dtype: str | torch.dtype = "auto",
    trust_remote_code: bool = False,
    weights_hash: str | None = None,
    batch_size: int | None = None,
    max_memory: str | int | None = None,
    stream: bool | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> tuple[np.ndarray, ModelFacts, np.ndarray | None]:
    """Features [rows, D] (see :func:`extract_features`), facts and anchor rows (:func:`seedprints.basis.anchor_ids`;
    None when the probe keeps none) of a checkpoint, in memory when it fits ``max_memory``, else layer-streamed.

    ``stream=None`` decides from the budget (default: 60% of available RAM, or of free GPU
    memory); True or False forces a path.  A checkpoint that cannot be streamed (pickled
    ``.bin``, GGUF, an architecture without a streaming path) falls back to the in-memory
    path when it fits and otherwise fails with one line naming the memory it needs.
    """
    from .streaming import StreamedModel, StreamingUnsupported, plan_chunks, read_checkpoint_index, streamed_batches

    src = source if isinstance(source, ModelSource) else resolve_source(source, config)
    label = name or src.name
    origin = src.location if isinstance(source, ModelSource) else os.fspath(source)
    if src.kind == "hub":
        src = download_from_hub(src.location, trust_remote_code)
    weights_hash = weights_hash or source_weights_hash(src)
    dev = select_device(device)
    budget = resolve_budget(max_memory, dev)

    def in_memory(note: str, ckpt_dtype: str = "") -> tuple[np.ndarray, ModelFacts, np.ndarray | None]:
        loaded = load_model(src, device=dev, dtype=dtype, trust_remote_code=trust_remote_code, name=label,
                            weights_hash=weights_hash)
        feats = extract_features(loaded, spec, batch_size=batch_size, progress=progress, cancel=cancel)
        return feats, dataclasses.replace(loaded.facts, extraction=note, source=origin,
                                          checkpoint_dtype=ckpt_dtype or loaded.facts.dtype), model_anchors(loaded, spec)

    if src.kind not in ("folder", "safetensors"):
        return in_memory("in-memory" if stream is not True else f"in-memory ({src.kind} weights cannot be streamed)")
    try:
        index = read_checkpoint_index(src.weight_files)
    except StreamingUnsupported:  # .bin weights in a folder
        index = None
    ckpt_dtype = index.checkpoint_dtype if index else ""
    cfg = read_config(src, trust_remote_code)
    check_causal_lm_config(cfg, label)
    target = compute_dtype(dev, getattr(cfg, "dtype", None) or getattr(cfg, "torch_dtype", None), dtype)
    # pickled weights have no header to count parameters from: assume 2 bytes each (an over-estimate for fp32)
    n_params = index.n_params if index else sum(p.stat().st_size for p in src.weight_files) // 2
    need = _in_memory_bytes(n_params, target, cfg, spec, dev)
    fits = need <= budget
    arch = getattr(cfg, "model_type", "?")
    try:
        if index is None:
            raise StreamingUnsupported("its weights are pickled .bin files, not safetensors")
        streamed = StreamedModel(cfg, index, target, dev, label, trust_remote_code)
    except StreamingUnsupported as exc:
        if fits or stream is False:
            return in_memory("in-memory" if stream is None else f"in-memory (no streaming path: {exc})", ckpt_dtype)
        raise StreamingUnsupported(
            f"{label} ({arch}) needs about {format_size(need)} in memory, more than the budget {format_size(budget)}, "
            f"and cannot be streamed layer by layer ({exc}): raise --max-memory or use a machine with more memory"
        ) from None
    check_probe_fits_facts(label, spec, int(getattr(cfg, "vocab_size", 0) or 0), int(getattr(cfg, "hidden_size", 0) or 0))
    archs = list(getattr(cfg, "architectures", None) or [])
    facts = ModelFacts(
        name=label, architecture=archs[0] if archs else type(streamed.model).__name__, model_type=str(arch),
        hidden_size=int(getattr(cfg, "hidden_size", 0) or 0), vocab_size=int(getattr(cfg, "vocab_size", 0) or 0),
        n_params=streamed.n_params, weights_hash=weights_hash or "", source=origin,
        dtype=str(target).replace("torch.", ""), device=str(dev), checkpoint_dtype=ckpt_dtype, extraction="in-memory")
    if stream is False or (stream is None and fits):
        # the whole model, read straight from its shards into the skeleton: loading costs what reading costs
        loaded = LoadedModel(streamed.load_all(), facts)
        return (extract_features(loaded, spec, batch_size=batch_size, progress=progress, cancel=cancel), facts,
                model_anchors(loaded, spec))
    plan = plan_chunks(streamed, cfg, spec, budget)
    out = np.empty((spec.n_rows, 0), dtype=np.float32)
    r = spec.rows_per_sample
    with torch.inference_mode():
        for lo, batch, body in streamed_batches(streamed, spec, plan, progress=progress, cancel=cancel):
            rows = _readout(body, spec, batch, lo, dev, target, label)
            if out.shape[1] == 0:
                out = np.empty((spec.n_rows, rows.shape[1]), dtype=np.float32)
            out[lo * r:lo * r + len(rows)] = rows
    ids = anchor_ids(spec, out.shape[1])
    return out, dataclasses.replace(facts, extraction=plan.describe()), None if ids is None else streamed.embedding_rows(ids)
