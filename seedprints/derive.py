"""Standard modifications of a model (fine-tune, quantize, noise, prune): derivatives with known lineage.

Used by the demo, tests and robustness checks; each returns a new model and leaves the input untouched.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch


def train(model: torch.nn.Module, steps: int = 50, lr: float = 1e-4, batch: int = 8, seq_len: int = 32,
          seed: int = 123, vocab_range: int | None = None, text: str | None = None,
          on_step: Callable[[int, float], None] | None = None) -> tuple[torch.nn.Module, list[float]]:
    """Train a copy of ``model`` with AdamW (next-token loss); returns the copy (eval mode) and every step's loss.

    Batches are seeded random token sequences, or random windows of ``text`` whose UTF-8 bytes
    serve as token ids (no tokenizer needed).  ``on_step(step, loss)`` runs after each step and
    may raise to stop (a cancel); the input model is left untouched.
    """
    tuned = copy.deepcopy(model)
    tuned.train()
    tuned.requires_grad_(True)
    vocab = vocab_range or tuned.get_input_embeddings().weight.shape[0]
    opt = torch.optim.AdamW(tuned.parameters(), lr=lr)
    g = torch.Generator().manual_seed(seed)
    device = next(tuned.parameters()).device
    ids = None
    if text is not None:
        ids = torch.tensor(list(text.encode("utf-8")), dtype=torch.long) % vocab
        if len(ids) <= seq_len:
            raise ValueError(f"fine-tuning text must be longer than seq_len={seq_len} bytes")
    losses: list[float] = []
    for step in range(steps):
        if ids is None:
            x = torch.randint(0, vocab, (batch, seq_len), generator=g)
        else:
            starts = torch.randint(0, len(ids) - seq_len, (batch,), generator=g)
            x = torch.stack([ids[s:s + seq_len] for s in starts.tolist()])
        x = x.to(device)
        loss = tuned(input_ids=x, labels=x).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
        if on_step is not None:
            on_step(step + 1, losses[-1])
    tuned.eval()
    tuned.requires_grad_(False)
    return tuned, losses


def fine_tune(model: torch.nn.Module, steps: int = 50, lr: float = 1e-4, batch: int = 8, seq_len: int = 32,
              seed: int = 123, vocab_range: int | None = None, text: str | None = None) -> torch.nn.Module:
    """Full fine-tune (:func:`train`), returning only the tuned copy."""
    return train(model, steps, lr, batch, seq_len, seed, vocab_range, text)[0]


def int8_dynamic(model: torch.nn.Module) -> torch.nn.Module:
    """torch's int8 dynamic quantization of every Linear layer (in memory only; not saveable as safetensors)."""
    return torch.ao.quantization.quantize_dynamic(copy.deepcopy(model), {torch.nn.Linear}, dtype=torch.qint8)


def quantize_weights(model: torch.nn.Module, bits: int = 8, group_size: int | None = None) -> torch.nn.Module:
    """Round every 2-D weight to ``bits``-bit symmetric integers and back (saveable fake quantization).

    Scales are per row, or per group of ``group_size`` consecutive inputs (as 4-bit formats do).
    """
    q = copy.deepcopy(model)
    levels = 2 ** (bits - 1) - 1
    with torch.no_grad():
        for p in q.parameters():
            if p.dim() != 2:
                continue
            w = p.reshape(p.shape[0], -1, group_size) if group_size and p.shape[1] % group_size == 0 else p[:, None, :]
            scale = w.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12) / levels
            p.copy_((torch.round(w / scale).clamp(-levels, levels) * scale).reshape(p.shape))
    return q


def weight_noise(model: torch.nn.Module, rel: float = 0.01, seed: int = 7) -> torch.nn.Module:
    """Add Gaussian noise with std = rel x each tensor's own std."""
    noisy = copy.deepcopy(model)
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in noisy.parameters():
            if p.numel() > 1:
                p.add_(torch.randn(p.shape, generator=g) * rel * p.std())
    return noisy


def magnitude_prune(model: torch.nn.Module, fraction: float = 0.3) -> torch.nn.Module:
    """Zero the given fraction of smallest-magnitude entries of every 2-D weight."""
    pruned = copy.deepcopy(model)
    with torch.no_grad():
        for p in pruned.parameters():
            if p.dim() == 2 and fraction > 0:
                k = int(fraction * p.numel())
                if k:
                    threshold = p.abs().flatten().kthvalue(k).values
                    p.masked_fill_(p.abs() <= threshold, 0.0)
    return pruned


def average_weights(a: torch.nn.Module, b: torch.nn.Module) -> torch.nn.Module:
    """Uniform weight average of two models of identical architecture (a 'merge')."""
    merged = copy.deepcopy(a)
    sb = b.state_dict()
    with torch.no_grad():
        for name, p in merged.state_dict().items():
            if p.is_floating_point():
                p.copy_((p + sb[name]) / 2)
    return merged
