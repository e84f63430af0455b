"""Function-preserving re-parameterisations an adversary can apply to hide a model's lineage.

Each keeps the model's outputs (logits equal up to float rounding) while changing the basis of
the residual stream (or the meaning of token ids), which is what breaks a test that pairs hidden
dimension j of one model with dimension j of another.  Which families admit which change:

- RMSNorm families (llama, mistral, qwen2, qwen3): signed permutations directly (the norm weight is
  permuted with the basis; RMSNorm commutes with sign flips and permutations); any rotation after
  folding every norm weight into the linear layers that read the normalised vector (the LM head
  too, which unties tied embeddings).
- LayerNorm families (gpt_neox): permutations only.  LayerNorm subtracts the mean over dimensions,
  so a change of basis must keep the all-ones direction; sign flips and general rotations do not,
  and this module refuses them.
- Every family: a vocabulary permutation (rows of the embedding and LM head), with the tokenizer
  remapped by the returned permutation.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import numpy as np
import torch

from .errors import SeedPrintsError


class UnsupportedReparameterisation(SeedPrintsError, ValueError):
    """The change cannot be applied to this architecture without changing its outputs."""


@dataclasses.dataclass(frozen=True)
class _Layout:
    embed: str
    layers: str
    final_norm: str
    head: str
    norms: tuple[str, str]
    #: per norm (same order): the linear layers that read its output
    readers: tuple[tuple[str, ...], tuple[str, ...]]
    writers: tuple[str, ...]
    norm: str  # "rms" or "layer"


_LLAMA = _Layout("model.embed_tokens", "model.layers", "model.norm", "lm_head",
                 ("input_layernorm", "post_attention_layernorm"),
                 (("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj"), ("mlp.gate_proj", "mlp.up_proj")),
                 ("self_attn.o_proj", "mlp.down_proj"), "rms")
LAYOUTS: dict[str, _Layout] = {
    "llama": _LLAMA, "mistral": _LLAMA, "qwen2": _LLAMA, "qwen3": _LLAMA,
    "gpt_neox": _Layout("gpt_neox.embed_in", "gpt_neox.layers", "gpt_neox.final_layer_norm", "lm_head",
                        ("input_layernorm", "post_attention_layernorm"),
                        (("attention.query_key_value",), ("mlp.dense_h_to_4h",)),
                        ("attention.dense", "mlp.dense_4h_to_h"), "layer"),
}


@dataclasses.dataclass(frozen=True)
class Reparameterised:
    """A re-parameterised copy of a model, what was done, and the change itself.

    basis: the [D, D] orthogonal matrix Q with new hidden state = old hidden state @ Q (None for a
    vocabulary permutation).  vocab_permutation: new token id of each old token id (None otherwise).
    """

    model: torch.nn.Module
    kind: str
    basis: np.ndarray | None = None
    vocab_permutation: np.ndarray | None = None


def layout(model: torch.nn.Module) -> _Layout:
    """The parameter layout of a supported family, or a one-line error naming the supported ones."""
    mt = getattr(model.config, "model_type", "?")
    if mt not in LAYOUTS:
        raise UnsupportedReparameterisation(
            f"no re-parameterisation recipe for model type {mt!r}: supported are {', '.join(sorted(LAYOUTS))}")
    return LAYOUTS[mt]


def _get(model: torch.nn.Module, path: str) -> Any:
    return model.get_submodule(path)


def _untie(model: torch.nn.Module, lay: _Layout) -> None:
    """Give the LM head its own weight (a rotation of the head differs from the embedding's once norms are folded)."""
    head, embed = _get(model, lay.head), _get(model, lay.embed)
    if head.weight is embed.weight or head.weight.data_ptr() == embed.weight.data_ptr():
        head.weight = torch.nn.Parameter(embed.weight.detach().clone())
    for cfg in {id(model.config): model.config, id(model.config.get_text_config()): model.config.get_text_config()}.values():
        cfg.tie_word_embeddings = False


def fold_norms(model: torch.nn.Module) -> torch.nn.Module:
    """Copy of an RMSNorm model whose norm weights are 1, folded into the layers that read them; same outputs."""
    lay = layout(model)
    if lay.norm != "rms":
        raise UnsupportedReparameterisation(
            f"{model.config.model_type} uses LayerNorm, which centres its input: its norms cannot be folded into "
            "a rotation; only permutations of its hidden dimensions keep its outputs")
    out = copy.deepcopy(model)
    _untie(out, lay)
    with torch.no_grad():
        for layer in _get(out, lay.layers):
            for norm_name, readers in zip(lay.norms, lay.readers):
                norm = layer.get_submodule(norm_name)
                for r in readers:
                    layer.get_submodule(r).weight.mul_(norm.weight[None, :])
                norm.weight.fill_(1.0)
        final = _get(out, lay.final_norm)
        _get(out, lay.head).weight.mul_(final.weight[None, :])
        final.weight.fill_(1.0)
    return out


def apply_basis(model: torch.nn.Module, q: np.ndarray, *, permute_norms: bool = False,
                copy_model: bool = True) -> torch.nn.Module:
    """Copy of ``model`` whose residual stream is ``old @ q``; outputs unchanged.

    q must be orthogonal.  Norm weights must already be 1 (see :func:`fold_norms`) unless q is a
    signed permutation and ``permute_norms`` is set, in which case they move with their dimension.
    ``copy_model=False`` changes ``model`` itself (for a copy the caller made already).
    """
    lay = layout(model)
    out = copy.deepcopy(model) if copy_model else model
    # float32 products keep the logits to about 1e-6 relative and run several times faster than float64 on a CPU
    qt = torch.as_tensor(np.asarray(q), dtype=torch.float32)
    absq = qt.abs()

    def right(w: torch.Tensor) -> None:  # [*, D] -> [*, D] @ q
        w.copy_((w.float() @ qt).to(w.dtype))

    def left(w: torch.Tensor) -> None:  # [D, *] -> q^T @ [D, *]
        w.copy_((qt.T @ w.float()).to(w.dtype))

    tied = _get(out, lay.head).weight is _get(out, lay.embed).weight
    with torch.no_grad():
        right(_get(out, lay.embed).weight)
        if not tied:
            right(_get(out, lay.head).weight)
        norms = [layer.get_submodule(n) for layer in _get(out, lay.layers) for n in lay.norms] + [_get(out, lay.final_norm)]
        for norm in norms:
            if not permute_norms:  # a rotation: only norms of weight 1 (folded) commute with it
                if not bool(torch.all(norm.weight == 1.0)) or getattr(norm, "bias", None) is not None:
                    raise UnsupportedReparameterisation(
                        "norm weights are not 1: fold them first (fold_norms) or use a permutation")
                continue
            norm.weight.copy_((norm.weight.float() @ absq).to(norm.weight.dtype))
            if getattr(norm, "bias", None) is not None:
                norm.bias.copy_((norm.bias.float() @ qt).to(norm.bias.dtype))
        for layer in _get(out, lay.layers):
            for r in (name for group in lay.readers for name in group):
                right(layer.get_submodule(r).weight)
            for w in lay.writers:
                lin = layer.get_submodule(w)
                left(lin.weight)
                if getattr(lin, "bias", None) is not None:
                    lin.bias.copy_((lin.bias.float() @ qt).to(lin.bias.dtype))
    return out


def _hidden(model: torch.nn.Module) -> int:
    return int(model.config.get_text_config().hidden_size)


def random_signed_permutation(d: int, seed: int, signs: bool = True) -> np.ndarray:
    """A [d, d] signed permutation matrix drawn from ``seed``."""
    rng = np.random.default_rng([seed, 1])
    q = np.zeros((d, d))
    q[np.arange(d), rng.permutation(d)] = rng.choice([-1.0, 1.0], d) if signs else 1.0
    return q


def random_rotation(d: int, seed: int) -> np.ndarray:
    """A Haar-random [d, d] orthogonal matrix drawn from ``seed`` (QR of a Gaussian, signs fixed)."""
    rng = np.random.default_rng([seed, 2])
    qm, r = np.linalg.qr(rng.standard_normal((d, d)))
    return qm * np.sign(np.diag(r))[None, :]


def block_rotation(d: int, seed: int, fraction: float = 0.25) -> np.ndarray:
    """Orthogonal [d, d] matrix that rotates a random ``fraction`` of the dimensions among themselves."""
    rng = np.random.default_rng([seed, 3])
    idx = np.sort(rng.choice(d, max(2, int(round(fraction * d))), replace=False))
    q = np.eye(d)
    q[np.ix_(idx, idx)] = random_rotation(len(idx), seed)
    return q


def permute_hidden(model: torch.nn.Module, seed: int = 0) -> Reparameterised:
    """Permute the hidden dimensions everywhere (with random sign flips on RMSNorm families); outputs unchanged."""
    signs = layout(model).norm == "rms"
    q = random_signed_permutation(_hidden(model), seed, signs=signs)
    return Reparameterised(apply_basis(model, q, permute_norms=True),
                           "signed permutation" if signs else "permutation", basis=q)


def rotate_hidden(model: torch.nn.Module, seed: int = 0, fraction: float = 1.0) -> Reparameterised:
    """Fold the norms, then rotate the residual stream by a random orthogonal matrix (all dimensions, or a
    random ``fraction`` of them among themselves); outputs unchanged."""
    d = _hidden(model)
    q = random_rotation(d, seed) if fraction >= 1.0 else block_rotation(d, seed, fraction)
    return Reparameterised(apply_basis(fold_norms(model), q, copy_model=False),
                           "rotation" if fraction >= 1.0 else "partial rotation", basis=q)


def permute_vocabulary(model: torch.nn.Module, seed: int = 0) -> Reparameterised:
    """Permute the token ids (embedding and LM-head rows); with the tokenizer remapped by the returned
    ``vocab_permutation`` (old id -> new id) the model computes the same function of the text."""
    out = copy.deepcopy(model)
    embed, head = out.get_input_embeddings(), out.get_output_embeddings()
    v = embed.weight.shape[0]
    perm = np.random.default_rng([seed, 4]).permutation(v)  # old id t becomes perm[t]
    inv = torch.as_tensor(np.argsort(perm))
    tied = head is not None and head.weight is embed.weight
    with torch.no_grad():
        embed.weight.copy_(embed.weight[inv])
        if head is not None and not tied:
            head.weight.copy_(head.weight[inv])
            if getattr(head, "bias", None) is not None:
                head.bias.copy_(head.bias[inv])
    return Reparameterised(out, "vocabulary permutation", vocab_permutation=perm)


#: the evasion kinds, by name: what bench/evasion.py, the accuracy zoo and the robustness panel apply
ATTACKS = {
    "permuted": lambda m, seed=0: permute_hidden(m, seed),
    "rotated": lambda m, seed=0: rotate_hidden(m, seed),
    "partial-rotation": lambda m, seed=0: rotate_hidden(m, seed, fraction=0.25),
}


def max_relative_logit_difference(a: torch.nn.Module, b: torch.nn.Module, ids: np.ndarray,
                                  vocab_permutation: np.ndarray | None = None) -> float:
    """max |logits_a - logits_b| / max |logits_a| on token ids [B, L] (b reads ids mapped through the permutation)."""
    x = torch.as_tensor(ids, dtype=torch.long)
    with torch.inference_mode():
        la = a(input_ids=x).logits.double()
        if vocab_permutation is None:
            lb = b(input_ids=x).logits.double()
        else:
            perm = torch.as_tensor(vocab_permutation)
            lb = b(input_ids=perm[x]).logits.double()[..., perm]
    return float((la - lb).abs().max() / la.abs().max())
