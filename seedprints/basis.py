"""The basis check: bring a suspect's hidden basis into the reference's before testing.

An adversary can permute, sign-flip or rotate a model's residual stream without changing its
outputs (:mod:`seedprints.evasion`); the re-pairing test pairs dimension j with dimension j, so
that alone turns a MATCH into NO MATCH.  A fingerprint therefore also stores the input-embedding
rows of a fixed set of *anchor* tokens that the probe never feeds (format version 3).  The
suspect's anchor table must first look like the reference's in another basis (:func:`anchor_similarity`,
which no change of basis moves, at least :data:`GATE`); only then does an orthogonal Procrustes fit between the
two anchor tables estimate the change of basis R (suspect -> reference), the calibrated test is run on the
suspect's features as they are and after ``@ R``, and the smaller p-value is doubled (Bonferroni over the two
readings).  Below the gate the test is the plain calibrated test, unchanged.

Why the level holds when one of the two models is an independent random init (or any model whose
distribution is invariant under rotations of its residual basis): its probe features depend on the
embedding rows of the probe's tokens and on its layers, never on the anchor rows, so R is
independent of them; a fixed rotation of such a model's features is distributed as the features
themselves, so its dimensions stay exchangeable and the re-pairing null stays exact.  Two *trained*
models of different seeds fall outside that argument: training on shared data makes their embedding
tables alignable, and without the gate the aligned reading calls them related (measured on the mini
zoo: every such pair).  The gate keeps them out: their anchor similarity stays far below it (about 0.1
on the mini zoo), while a re-expressed copy of the same weights scores about 1.  So a false MATCH
needs the plain reading to be wrong (probability alpha) or an unrelated pair to pass the gate, which
bench/calibration.py and bench/evasion.py count.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import weakref
from typing import Any

import numpy as np

from .probes import ProbeSpec
from .stats import DEFAULT_PERMUTATIONS, RepairingNull, SuspectRanks, calibrated_test, log10_bounded_p, p_from_log10

#: anchors per hidden dimension (Procrustes needs at least D rows; more average out training drift)
ANCHORS_PER_DIM = 2
#: the check needs at least D + this many anchor tokens that the probe does not use
MIN_SPARE_ANCHORS = 64
_ANCHOR_STREAM = 7


@functools.lru_cache(maxsize=64)
def anchor_ids(spec: ProbeSpec, d: int) -> np.ndarray | None:
    """Token ids whose embedding rows a fingerprint keeps: drawn from [0, vocab_range) minus every token the
    probe feeds, ``ANCHORS_PER_DIM`` x D of them (fewer when fewer are free); None when the probe is not a
    token probe or leaves fewer than D + MIN_SPARE_ANCHORS tokens unused."""
    if spec.kind != "token" or not spec.vocab_range:
        return None
    used = np.zeros(int(spec.vocab_range), dtype=bool)
    for i in range(spec.n_samples):
        used[spec.sample(i)] = True
    free = np.flatnonzero(~used)
    if len(free) < d + MIN_SPARE_ANCHORS:
        return None
    rng = np.random.default_rng([spec.seed, _ANCHOR_STREAM, d])
    ids = np.sort(rng.choice(free, min(len(free), ANCHORS_PER_DIM * d), replace=False)).astype(np.int64)
    ids.setflags(write=False)  # cached per (probe, D): every fingerprint read checks its anchors against it
    return ids


def unavailable_reason(spec: ProbeSpec) -> str:
    """Why a probe gives no anchors (for messages)."""
    if spec.kind != "token":
        return "embedding probes feed no tokens, so they keep no anchor rows"
    return (f"the probe feeds so many of its {spec.vocab_range} token ids that fewer than D + {MIN_SPARE_ANCHORS} "
            "are left as anchors; fingerprint the models with a probe that feeds fewer tokens, such as fast")


def embedding_rows(model: Any, ids: np.ndarray) -> np.ndarray:
    """The input-embedding rows ``ids`` of a loaded transformers model, float32 [A, D]."""
    import torch

    weight = model.get_input_embeddings().weight
    with torch.no_grad():
        # a copy: anchor ids are read-only (cached), and torch warns on tensors over read-only memory
        return weight[torch.tensor(np.asarray(ids), device=weight.device)].float().cpu().numpy()


def fit_rotation(suspect_anchors: np.ndarray, reference_anchors: np.ndarray) -> np.ndarray:
    """Orthogonal Procrustes: the [D, D] orthogonal R minimising ||suspect @ R - reference||_F."""
    m = np.asarray(suspect_anchors, dtype=np.float64).T @ np.asarray(reference_anchors, dtype=np.float64)
    u, _, vt = np.linalg.svd(m)
    return u @ vt


#: the aligned reading is taken only when the two anchor tables are this similar (:func:`anchor_similarity`)
GATE = 0.5
#: anchor rows the similarity reads (their cosine Gram matrix)
GATE_ROWS = 256


def anchor_similarity(suspect_anchors: np.ndarray, reference_anchors: np.ndarray, rows: int = GATE_ROWS) -> float:
    """How much the two anchor tables look like one table in two bases: the correlation between the
    off-diagonal entries of their cosine Gram matrices (rows centred), over the first ``rows`` anchors.

    Any orthogonal change of basis leaves a Gram matrix unchanged, so a permuted or rotated copy scores
    1; two independent tables score about 0.  No fitting is involved.
    """
    g_s, g_r = _gram(suspect_anchors, rows), _gram(reference_anchors, rows)
    if len(g_s) != len(g_r):
        raise ValueError(f"anchor tables of {len(suspect_anchors)} and {len(reference_anchors)} rows cannot be compared")
    # einsum, not BLAS: a scan calls this once per reference, and waking BLAS threads costs more than the sum
    return float(np.einsum("i,i->", g_s, g_r) / len(g_s)) if len(g_s) else 0.0


#: upper-triangle cosine-Gram entries per anchor array (by identity), so a scan computes the suspect's once
_GRAMS: dict[tuple[int, int], tuple[Any, np.ndarray]] = {}


def _gram(a: np.ndarray, rows: int) -> np.ndarray:
    """Upper-triangle entries of the cosine Gram matrix of the first ``rows`` rows of ``a`` (rows centred),
    standardised (zero mean, unit variance; all zeros when constant), so two tables' correlation is a dot product."""
    key = (id(a), rows)
    hit = _GRAMS.get(key)
    if hit is not None and hit[0]() is a:
        return hit[1]
    x = np.asarray(a[:rows], dtype=np.float64)
    x = x - x.mean(axis=0)
    x /= np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    x32 = x.astype(np.float32)  # anchor rows are float16: a float32 product loses nothing and costs half
    g = (x32 @ x32.T)[np.triu_indices(len(x), 1)].astype(np.float64)
    sd = g.std()
    g = (g - g.mean()) / sd if sd > 0 else np.zeros_like(g)
    try:
        _GRAMS[key] = (weakref.ref(a), g)
        weakref.finalize(a, _GRAMS.pop, key, None)
    except TypeError:  # an object that takes no weak references: not cached
        pass
    return g


#: a dimension counts as "kept" or "moved" when one entry of its row of R carries this much of it
_CLEAR = 0.9


@dataclasses.dataclass(frozen=True)
class BasisChange:
    """What the fitted R says about the suspect's basis relative to the reference's.

    kind: 'unchanged', 'signed permutation' (dimensions moved and/or sign-flipped), 'partial rotation'
    or 'rotation'.  kept / moved / flipped / mixed: dimensions that stayed, moved to another index,
    kept their index with a flipped sign, or are spread over several (rotated).
    """

    kind: str
    kept: int
    moved: int
    flipped: int
    mixed: int

    def describe(self) -> str:
        """Plain words for the verdict."""
        d = self.kept + self.moved + self.flipped + self.mixed
        if self.kind == "unchanged":
            return "its hidden basis is the reference's"
        if self.kind == "signed permutation":
            return (f"its hidden dimensions were re-ordered or sign-flipped relative to the reference "
                    f"({self.moved + self.flipped} of {d} dimensions), a change that keeps the model's outputs")
        return (f"its hidden basis was {'partly ' if self.kind == 'partial rotation' else ''}rotated relative to the "
                f"reference ({self.mixed} of {d} dimensions mixed), a change that keeps the model's outputs")

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return dataclasses.asdict(self)


def classify(r: np.ndarray) -> BasisChange:
    """Read a fitted rotation as unchanged / signed permutation / (partial) rotation."""
    a = np.abs(r)
    big = a.argmax(axis=1)
    clear = a[np.arange(len(r)), big] >= _CLEAR
    same = clear & (big == np.arange(len(r)))
    sign = np.sign(r[np.arange(len(r)), big])
    kept = int((same & (sign > 0)).sum())
    flipped = int((same & (sign < 0)).sum())
    moved = int((clear & ~same).sum())
    mixed = int((~clear).sum())
    d = len(r)
    if mixed == 0 and moved + flipped == 0:
        kind = "unchanged"
    elif mixed <= 0.01 * d:
        kind = "unchanged" if moved + flipped <= 0.01 * d else "signed permutation"
    else:
        kind = "rotation" if mixed > 0.5 * d else "partial rotation"
    return BasisChange(kind, kept, moved, flipped, mixed)


def rotated(fp: Any, r: np.ndarray) -> Any:
    """A copy of fingerprint ``fp`` whose features and column means are ``@ r`` (its basis brought into another)."""
    feats = (np.asarray(fp.features, dtype=np.float64) @ r).astype(np.float32)
    return dataclasses.replace(fp, features=feats, column_means=np.asarray(fp.column_means) @ r,
                               anchors=None, anchor_ids=None, verified_hash=None)


# ---------------------------------------------------------------------------- the test with the basis check
def _unchecked_reason(ref_fp: Any, basis_check: bool, inconclusive: bool, have_anchors: bool) -> str:
    """Why the basis check was not run on this pair (for its record and the verdict)."""
    if not basis_check:
        return "not requested"
    if inconclusive and have_anchors:
        return "the plain test was inconclusive"
    spec = getattr(ref_fp, "spec", None)
    if spec is not None and anchor_ids(spec, len(ref_fp.column_means)) is None:
        return unavailable_reason(spec)
    return ("the models' fingerprints do not both carry anchor rows (one was made before fingerprint format "
            "version 3): re-fingerprint them to check")


def calibrated_basis_test(reference: Any, suspect: Any, *, k: float | int | None = None,
                          n_permutations: int | None = None, seed: int = 0, basis_check: bool = True,
                          repairing: RepairingNull = "auto") -> Any:
    """The calibrated re-pairing test, read as the suspect is and after bringing its basis into the reference's.

    Below the gate (:func:`anchor_similarity` < :data:`GATE`) it is the plain calibrated test; above it, the
    reading with the smaller p-value, its p doubled (Bonferroni over the two readings).
    ``details['basis']`` records the similarity, both readings and what the fitted change of basis looks like.
    Without anchor rows on both sides (older fingerprints, embedding probes) it is the plain calibrated test,
    and ``details['basis']['checked']`` is False with the reason.
    """
    kw = {"k": k, "n_permutations": n_permutations or DEFAULT_PERMUTATIONS, "seed": seed, "repairing": repairing}
    plain = calibrated_test(reference, suspect, **kw)
    # a prepared (ranked) model keeps the fingerprint it was made from as .source
    ref_fp, sus_fp = getattr(reference, "source", reference), getattr(suspect, "source", suspect)
    ra, sa = getattr(ref_fp, "anchors", None), getattr(sus_fp, "anchors", None)
    have_anchors = ra is not None and sa is not None
    if not basis_check or not have_anchors or plain.inconclusive \
            or not np.array_equal(ref_fp.anchor_ids, sus_fp.anchor_ids):
        why = _unchecked_reason(ref_fp, basis_check, plain.inconclusive, have_anchors)
        return dataclasses.replace(plain, details={**plain.details, "basis": {"checked": False, "reason": why}})
    similarity = anchor_similarity(sa, ra)
    info: dict[str, Any] = {"checked": True, "anchor_similarity": similarity, "gate": GATE, "n_anchors": int(len(ra)),
                            "z_as_is": plain.z, "log10_p_as_is": plain.log10_pvalue}
    if similarity < GATE:  # not one embedding table in two bases: the reading as is decides, unchanged
        info.update(reading="as is", change=None, aligned=False,
                    describe="its anchor rows are not a re-expressed copy of the reference's")
        return dataclasses.replace(plain, details={**plain.details, "basis": info})
    r = fit_rotation(sa, ra)
    aligned = calibrated_test(reference, SuspectRanks(rotated(sus_fp, r)), **kw)
    best, reading = (aligned, "aligned") if aligned.log10_pvalue < plain.log10_pvalue else (plain, "as is")
    log10_p = log10_bounded_p(best.log10_pvalue + math.log10(2.0))
    change = classify(r)
    info.update(reading=reading, aligned=True, change=change.kind, detail=change.to_dict(), describe=change.describe(),
                z_aligned=aligned.z, log10_p_aligned=aligned.log10_pvalue)
    return dataclasses.replace(best, log10_pvalue=log10_p, pvalue=p_from_log10(log10_p),
                               method="calibrated-repairing+basis", details={**best.details, "basis": info})
