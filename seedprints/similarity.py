"""Pairwise evidence between several fingerprints, the distance derived from it, and a 2-D map.

The matrix holds, for every ordered pair (reference i, suspect j), the z of the same test a
scan runs.  A pair is untestable (NaN) when the suspect side stores only some columns (a
compact library fingerprint), or the two were made with different probes or widths.
"""

from __future__ import annotations

import dataclasses
import math
import re
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from . import optional
from .fingerprint import Fingerprint
from .stats import SeedPrintsResult, holm_log10
from .verdict import DEFAULT_TEST, run_test, skip_reason

#: below this many models the map uses metric MDS instead of UMAP.  Measured on the demo audits and
#: on block-structured evidence of 12-100 models: MDS of the layout distance keeps every family apart
#: (separation >= 9 on the demo, median >= 37 on the blocks) where UMAP does not (demo suspect 0.7,
#: block minimum 0.6); UMAP is kept for maps too large for MDS's O(n^2) iterations.
UMAP_MIN_POINTS = 200

EmbeddingMethod = Literal["umap", "mds", "line", "point", "none"]
#: how the map is laid out: "auto" (MDS below UMAP_MIN_POINTS models, UMAP from there; what keeps
#: families apart best on the maps measured above), or "mds" / "umap" whatever the number of models
Layout = Literal["auto", "mds", "umap"]
LAYOUTS: tuple[str, ...] = ("auto", "mds", "umap")
#: the lineage audit_library gives the suspect: kept first in display_order
SUSPECT_LINEAGE = "suspect"


@dataclasses.dataclass(frozen=True)
class EvidenceMatrix:
    """z[i, j]: evidence that model j descends from model i's seed (row = reference, column = suspect).

    log10_p holds the matching log10 p-values.  NaN marks the diagonal and untestable pairs.
    """

    names: list[str]
    lineages: list[str]
    z: np.ndarray
    log10_p: np.ndarray
    test: str

    @property
    def n(self) -> int:
        """Number of models in the matrix."""
        return len(self.names)

    def symmetric_z(self) -> np.ndarray:
        """The stronger of the two directions per pair (NaN where neither was testable)."""
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN pairs stay NaN
            return np.fmax(self.z, self.z.T)

    def distance(self) -> np.ndarray:
        """1 / (1 + max(z, 0)): near 0 for a shared seed, 0.5 to 1 for unrelated models.

        Untested pairs count as unrelated (distance 1); the diagonal is 0.
        """
        s = np.nan_to_num(self.symmetric_z(), nan=0.0)
        d = 1.0 / (1.0 + np.clip(s, 0.0, None))
        np.fill_diagonal(d, 0.0)
        return d

    def significant(self, alpha: float = 0.01) -> np.ndarray:
        """Pairs whose evidence holds at level alpha for the whole map (symmetric boolean, False on the diagonal).

        A pair's p is the smaller of its two directions, doubled (Bonferroni over the two);
        Holm's correction then runs over every tested pair, as a scan's verdict corrects over
        its references, so a map of many models draws no chance links.
        """
        n = self.n
        sig = np.zeros((n, n), dtype=bool)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            lp = np.minimum(np.fmin(self.log10_p, self.log10_p.T) + np.log10(2.0), 0.0)
        iu, ju = np.triu_indices(n, 1)
        vals = lp[iu, ju]
        tested = np.isfinite(vals)
        hit = holm_log10(vals[tested]) < np.log10(alpha)
        sig[iu[tested][hit], ju[tested][hit]] = True
        return sig | sig.T

    def layout_distance(self, alpha: float = 0.01) -> np.ndarray:
        """Distance for drawing the map: 1 / (1 + z) between models with significant evidence, 1 otherwise.

        Non-significant z only measures noise, so every unrelated pair gets the same distance and
        a map cannot place two unrelated models closer than a related pair by chance.
        """
        d = np.where(self.significant(alpha), self.distance(), 1.0)
        np.fill_diagonal(d, 0.0)
        return d


def map_separation(coords: np.ndarray, significant: np.ndarray) -> np.ndarray:
    """Per model: distance to the nearest model it has no evidence with / to the farthest it has evidence with.

    NaN for a model with no related or no unrelated model on the map.  >= 2 means its family
    visibly stands apart.
    """
    c = np.asarray(coords, dtype=np.float64)
    sig = np.asarray(significant, dtype=bool)
    n = len(c)
    dist = np.sqrt(((c[:, None, :] - c[None, :, :]) ** 2).sum(-1))
    out = np.full(n, np.nan)
    for i in range(n):
        related = sig[i] & (np.arange(n) != i)
        unrelated = ~sig[i] & (np.arange(n) != i)
        if related.any() and unrelated.any():
            far = dist[i, related].max()
            out[i] = np.inf if far == 0 else dist[i, unrelated].min() / far
    return out


def pairwise_evidence(items: Sequence[tuple[str, str, Fingerprint]], test: str = DEFAULT_TEST,
                      known: Mapping[tuple[int, int], SeedPrintsResult] | None = None) -> EvidenceMatrix:
    """Test every ordered pair of (name, lineage label, fingerprint) items with one test.

    ``known`` holds results already computed with the same test and defaults, keyed by
    (reference index, suspect index) (a scan's column, say); those pairs are not tested again.
    """
    n = len(items)
    z = np.full((n, n), np.nan)
    lp = np.full((n, n), np.nan)
    known = known or {}
    for j, (_, _, sus) in enumerate(items):
        if not sus.is_full:
            continue
        for i, (_, _, ref) in enumerate(items):
            if i == j or skip_reason(sus, ref) is not None:
                continue
            res = known.get((i, j))
            if res is None:
                res = run_test(ref, sus, test)  # each full fingerprint is ranked once (the calibrated test's cache)
            if not res.inconclusive:
                z[i, j], lp[i, j] = res.z, res.log10_pvalue
    return EvidenceMatrix([it[0] for it in items], [it[1] for it in items], z, lp, test)


@dataclasses.dataclass(frozen=True)
class Embedding:
    """2-D coordinates of the models, how they were computed, and a sentence saying so.

    A map that was not drawn has method 'none', no coordinates ([0, 2]) and a note that says why.
    """

    coords: np.ndarray
    method: EmbeddingMethod
    note: str
    #: pairs (i, j), i < j, with significant evidence: drawn as lines on the map
    links: tuple[tuple[int, int], ...] = ()

    @property
    def drawn(self) -> bool:
        """False when the map was left out (its optional dependency missing, or not asked for)."""
        return self.method != "none"


def map_needs(n: int, layout: Layout = "auto") -> str | None:
    """The optional module that placing n models with ``layout`` needs (see :mod:`seedprints.optional`), or None."""
    if n <= 2:
        return None
    if layout == "umap":
        return "umap" if n >= 4 else "sklearn"
    return "sklearn" if n < UMAP_MIN_POINTS or layout == "mds" else "umap"


def can_map(n: int, layout: Layout = "auto") -> bool:
    """True when the map of n models can be drawn with ``layout`` and what is installed."""
    need = map_needs(n, layout)
    return need is None or optional.available(need)


def not_mapped(n: int, why: str) -> Embedding:
    """The Embedding of a map that was not drawn, saying why."""
    return Embedding(np.zeros((0, 2)), "none", f"map of {n} models not drawn: {why}")


def map_models(matrix: EvidenceMatrix, alpha: float = 0.01, seed: int = 0, layout: Layout = "auto") -> Embedding:
    """The map of an evidence matrix: its layout distance placed in 2-D, with its significant pairs as links.

    layout: see :data:`Layout`.  Needs scikit-learn for an MDS map of 3 models or more, umap-learn for a UMAP
    one: MissingDependencyError otherwise.
    """
    sig = matrix.significant(alpha)
    links = tuple((int(i), int(j)) for i, j in zip(*np.nonzero(np.triu(sig, 1))))
    return dataclasses.replace(embed_2d(matrix.layout_distance(alpha), seed, layout), links=links)


def embed_2d(distance: np.ndarray, seed: int = 0, layout: Layout = "auto") -> Embedding:
    """Place models in 2-D from a precomputed distance matrix.

    layout "auto": metric MDS below UMAP_MIN_POINTS models, UMAP from there; "mds" or "umap" forces one
    (UMAP needs at least 4 models: fewer are placed by MDS).
    """
    if layout not in LAYOUTS:
        raise ValueError(f"unknown map layout {layout!r}: use one of {', '.join(LAYOUTS)}")
    d = np.asarray(distance, dtype=np.float64)
    n = d.shape[0]
    if d.shape != (n, n) or not np.all(np.isfinite(d)):
        raise ValueError("distance must be a finite square matrix")
    if n == 0:
        return Embedding(np.zeros((0, 2)), "point", "no models")
    if n == 1:
        return Embedding(np.zeros((1, 2)), "point", "a single model")
    if n == 2:
        return Embedding(np.array([[0.0, 0.0], [d[0, 1], 0.0]]), "line", "two models, placed at their distance")
    use_umap = layout == "umap" and n >= 4 or layout == "auto" and n >= UMAP_MIN_POINTS
    if not use_umap:
        MDS = optional.require("sklearn.manifold", "the map of models").MDS
        mds = MDS(n_components=2, metric="precomputed", random_state=seed, n_init=4, init="random")
        coords = mds.fit_transform(d)
        return Embedding(np.asarray(coords, dtype=np.float64), "mds",
                         f"metric MDS of {n} models; UMAP from {UMAP_MIN_POINTS}")
    umap = optional.require("umap", "the map of models")  # imported late: numba compiles on first use
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # few neighbours keep seed families together on small maps (measured on the demo library)
        reducer = umap.UMAP(n_neighbors=max(2, min(15, n // 3)), metric="precomputed", init="random", min_dist=0.1,
                            random_state=seed)
        coords = reducer.fit_transform(d)
    return Embedding(np.asarray(coords, dtype=np.float64), "umap",
                     f"UMAP on distance 1 / (1 + z) between {n} models")


_LINEAGE = re.compile(r"^(?P<family>.*?)\s*(?:seed (?P<seed>-?\d+)|unknown seed)$")


def lineage_key(lineage: str) -> tuple[str, float]:
    """(family, seed) of a lineage label such as 'tiny seed 3' (see verdict.lineage_label), for sorting.

    The seed sorts as a number (seed 2 before seed 10); an unknown seed, or a label of another form, sorts
    after the known seeds of its family.
    """
    m = _LINEAGE.match(lineage.strip())
    if m is None:
        return lineage.strip(), math.inf
    return m["family"], float(m["seed"]) if m["seed"] is not None else math.inf


def _natural(name: str) -> tuple[Any, ...]:
    """'seed2' before 'seed10': digit runs compare as numbers."""
    return tuple((0, int(part), "") if part.isdigit() else (1, 0, part.lower())
                 for part in re.split(r"(\d+)", name) if part)


def display_order(names: Sequence[str], lineages: Sequence[str]) -> list[int]:
    """A stable order to show models in: the suspect first, then by family, seed and name.

    Models of one seed (a base model and its derivatives) sit together, whatever order an audit ranked
    them in; within a seed names sort naturally, so 'seed3' comes before 'seed3-ft'.
    """
    def key(i: int) -> tuple[Any, ...]:
        return (lineages[i] != SUSPECT_LINEAGE, *lineage_key(lineages[i]), _natural(names[i]), i)
    return sorted(range(len(names)), key=key)
