"""Probe extraction: run the transformer body on the probe and keep the last hidden state at the last position."""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np
import torch

from .errors import Cancelled, ExtractionError, ProbeError
from .loading import LoadedModel
from .probes import ProbeSpec

ProgressCallback = Callable[[int, int], None]


class CancelToken(Protocol):
    """Anything with ``is_set()``; a ``threading.Event`` works."""

    def is_set(self) -> bool:
        """True once cancellation was requested."""
        ...


def check_probe_fits(loaded: LoadedModel, spec: ProbeSpec) -> None:
    """One-line error when the probe cannot be fed to this model (vocabulary or hidden size)."""
    facts = loaded.facts
    if spec.kind == "token":
        vocab = facts.vocab_size or loaded.model.get_input_embeddings().weight.shape[0]
        if spec.vocab_range > vocab:  # type: ignore[operator]
            raise ProbeError(
                f"{facts.name} has a vocabulary of {vocab} tokens, smaller than the probe's token range "
                f"{spec.vocab_range}: use a probe with vocab_range <= {vocab} for every model you compare"
            )
    else:
        hidden = facts.hidden_size or loaded.model.get_input_embeddings().weight.shape[1]
        if spec.hidden_size != hidden:
            raise ProbeError(
                f"{facts.name} has hidden size {hidden} but the embedding probe is for hidden size "
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


def extract_features(
    loaded: LoadedModel,
    spec: ProbeSpec,
    *,
    batch_size: int | None = None,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> np.ndarray:
    """Features [N, D] float32: last-layer hidden state at the last position for every probe sample.

    Runs only the transformer body under ``torch.inference_mode``; one batch of activations is
    alive at a time; ``progress(done, total)`` is called after each batch and ``cancel`` is
    checked before each batch (raises :class:`Cancelled`).
    """
    check_probe_fits(loaded, spec)
    model = loaded.model
    device = loaded.device
    body = _body(model)
    dtype = next(model.parameters()).dtype
    bs = batch_size or default_batch_size(spec, device)
    out: np.ndarray | None = None
    total = spec.n_samples
    if progress:
        progress(0, total)
    with torch.inference_mode():
        for lo, batch in spec.batches(bs):
            if cancel is not None and cancel.is_set():
                raise Cancelled(f"extraction of {loaded.name} cancelled after {lo} of {total} samples")
            x = torch.from_numpy(batch).to(device, non_blocking=True)
            if spec.kind == "token":
                hidden = body(input_ids=x, use_cache=False).last_hidden_state
            else:
                hidden = body(inputs_embeds=x.to(dtype), use_cache=False).last_hidden_state
            last = hidden[:, -1, :].float().cpu().numpy()
            del hidden, x
            if not np.all(np.isfinite(last)):
                raise ExtractionError(
                    f"{loaded.name} produced NaN/infinite activations on probe samples {lo}..{lo + len(last) - 1}: "
                    "its weights are broken or overflow in this dtype; check the checkpoint or use --dtype float32"
                )
            if out is None:
                out = np.empty((total, last.shape[1]), dtype=np.float32)
            out[lo:lo + len(last)] = last
            if progress:
                progress(lo + len(last), total)
    assert out is not None
    return out
