"""Robustness of a match: apply standard modifications to the suspect and see whether its verdict survives.

Each modification is applied in memory to the loaded suspect, the result is fingerprinted with the
same probe and scanned against the same library.  A match "survives" when the modified model
still gets MATCH with the same seed (family and seed) as the unmodified suspect.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch

from .audit import ModelLike, check_width, fingerprint_model, suspect_width
from .derive import fine_tune, magnitude_prune, quantize_weights, weight_noise
from .errors import LibraryError
from .basis import anchor_ids, unavailable_reason
from .evasion import UnsupportedReparameterisation
from .extract import CancelToken
from .progress import ProgressCallback, scaled
from .library import Library
from .loading import LoadedModel, load_model, wrap_model
from .probes import ProbeSpec
from .verdict import DEFAULT_ALPHA, DEFAULT_TEST, scan

#: a few sentences of built-in English text for the small fine-tune (UTF-8 bytes are the token ids)
BUILTIN_TEXT = (
    "An auditor receives a checkpoint and a question: was this model trained from our seed, or from "
    "someone else's? The weights have been fine-tuned, quantized and pruned since, yet the random "
    "initialisation leaves a trace in how each hidden dimension responds to random input. This text "
    "is only here to move the weights a little, the way a short fine-tune on new data would."
)

Modification = tuple[str, Callable[[torch.nn.Module], torch.nn.Module]]


def modifications(*, ft_steps: int = 30, ft_lr: float = 1e-4, ft_text: str | None = BUILTIN_TEXT,
                  noise: float = 0.01, prune: float = 0.3, int4_group: int = 64, seed: int = 123
                  ) -> dict[str, Modification]:
    """name -> (what it does, for people; the function): int8, int4, a fine-tune, weight noise, pruning.

    The robustness panel uses the defaults; the Learn tab's step 5 passes its own settings.
    """
    data = "built-in text" if ft_text is not None else "random tokens"
    return {
        "int8": ("8-bit symmetric weight quantization", lambda m: quantize_weights(m, bits=8)),
        "int4": (f"4-bit weight quantization, groups of {int4_group}",
                 lambda m: quantize_weights(m, bits=4, group_size=int4_group)),
        "fine-tune": (f"fine-tune {ft_steps} steps at lr {ft_lr:g} on {data}",
                      lambda m: fine_tune(m, steps=ft_steps, lr=ft_lr, batch=4 if ft_text else 8, seq_len=32,
                                          seed=seed, text=ft_text)),
        "noise": (f"Gaussian weight noise, {noise:.0%} of each tensor's std", lambda m: weight_noise(m, rel=noise, seed=7)),
        "prune": (f"{prune:.0%} magnitude pruning", lambda m: magnitude_prune(m, prune)),
        # an adversary's function-preserving changes (seedprints.evasion): the model's outputs stay the same
        "permute": ("hidden dimensions permuted and sign-flipped (same outputs)",
                    lambda m: _evasion(m, "permuted", seed)),
        "rotate": ("hidden basis rotated after folding the norms (same outputs)", lambda m: _evasion(m, "rotated", seed)),
    }


#: the modifications that change the hidden basis: they need the basis check (anchor rows) to survive
EVASION_MODIFICATIONS = ("permute", "rotate")


def _evasion(model: torch.nn.Module, kind: str, seed: int) -> torch.nn.Module:
    """The evasion ``kind`` applied to ``model`` (UnsupportedReparameterisation for architectures it does not fit)."""
    from .evasion import ATTACKS

    return ATTACKS[kind](model, seed).model


#: the robustness panel's modifications
MODIFICATIONS: dict[str, Modification] = modifications()


@dataclasses.dataclass(frozen=True)
class RobustnessRow:
    """The verdict for one modified copy of the suspect, and whether it kept the original lineage."""

    modification: str
    description: str
    label: str
    family: str | None
    seed: int | None
    reference: str | None
    z: float
    log10_p: float
    survived: bool

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (z and log10 p as None when no reference could be tested)."""
        d = dataclasses.asdict(self)
        for key in ("z", "log10_p"):
            d[key] = d[key] if math.isfinite(d[key]) else None
        return d


def robustness_check(
    suspect: ModelLike,
    library: Library,
    *,
    probe: ProbeSpec | None = None,
    modifications: Sequence[str] = tuple(MODIFICATIONS),
    test: str = DEFAULT_TEST,
    alpha: float = DEFAULT_ALPHA,
    config: str | os.PathLike[str] | None = None,
    device: str = "auto",
    trust_remote_code: bool = False,
    progress: ProgressCallback | None = None,
    cancel: CancelToken | None = None,
) -> list[RobustnessRow]:
    """The unmodified suspect first (modification 'none'), then one row per modification."""
    unknown = [m for m in modifications if m not in MODIFICATIONS]
    if unknown:
        raise ValueError(f"unknown modification(s) {unknown}: choose from {', '.join(MODIFICATIONS)}")
    spec = probe or library.default_probe()
    if spec is None:
        raise LibraryError(f"the library at {library.root} is empty: add reference models first")
    check_width(library, spec, suspect_width(suspect, config=config, trust_remote_code=trust_remote_code))
    if isinstance(suspect, LoadedModel):
        loaded = suspect
    elif isinstance(suspect, torch.nn.Module):
        loaded = wrap_model(suspect, type(suspect).__name__)
    else:
        loaded = load_model(suspect, config=config, device=device, dtype="float32",
                            trust_remote_code=trust_remote_code)
    refs = list(library.items(spec.id))
    steps = len(modifications) + 1


    rows: list[RobustnessRow] = []
    base_lineage: tuple[str | None, int | None] | None = None
    for i, mod in enumerate(("none", *modifications)):
        if mod == "none":
            model, desc = loaded.model, "the suspect as given"
        else:
            desc, fn = MODIFICATIONS[mod]
            why = None
            if progress is not None:  # the modification itself (a fine-tune takes a while) is a stage of its own
                progress(f"making the {mod} copy: {desc}", int(round(1000 * i / steps)), 1000)
            if mod in EVASION_MODIFICATIONS and anchor_ids(spec, loaded.facts.hidden_size or 0) is None:
                why = f"this probe keeps no anchor rows, so the basis check cannot run: {unavailable_reason(spec)}"
            else:
                try:
                    model = fn(loaded.model)
                except UnsupportedReparameterisation as exc:  # e.g. a rotation of a LayerNorm model
                    why = str(exc)
            if why is not None:
                rows.append(RobustnessRow(mod, f"{desc}: not applicable ({why})", "NOT APPLICABLE", None, None, None,
                                          math.nan, math.nan, False))
                continue
        part = scaled(progress, i, steps, "" if mod == "none" else f"{mod} copy: ")
        fp = fingerprint_model(wrap_model(model, f"{loaded.name}+{mod}"), spec, progress=part,
                                cancel=cancel)
        rep = scan(fp, refs, alpha=alpha, test=test)  # type: ignore[arg-type]
        v = rep.verdict
        top = next((r for r in rep.rows if r.reference.name == v.reference), rep.rows[0] if rep.rows else None)
        lineage = (v.family, v.seed) if v.label == "MATCH" else None
        if mod == "none":
            base_lineage = lineage
        survived = lineage is not None and lineage == base_lineage
        rows.append(RobustnessRow(mod, desc, v.label, v.family, v.seed, v.reference,
                                  top.result.z if top else math.nan, top.log10_p_holm if top else math.nan, survived))
        if mod != "none":
            del model
    return rows
