"""The SeedPrints statistical test (paper mode), with analytical and empirical nulls.

Notation follows docs/method.md: H_ref and H_sus are [N, D] feature matrices (last-layer hidden
state at the last position).  Identity dimensions are the k columns with the smallest mean;
the kept columns are softmaxed row-wise at temperature T, a Kendall tau is computed per
kept column between the two models, and the mean tau is tested against a null.
"""

from __future__ import annotations

import collections
import dataclasses
import functools
import math
import os
import threading
import weakref
from typing import Any, Literal, Protocol

import numpy as np
from scipy import special

from .errors import ExtractionError, IncompatibleFingerprintsError, SeedPrintsError

Mode = Literal["coset", "base"]
Null = Literal["analytical", "simplified", "full_pipeline"]
NullTest = Literal["ttest", "mannwhitney"]

LN10 = math.log(10.0)


def _sps() -> Any:
    """scipy.stats, imported on first use: it costs about half a second, which a cold CLI run should not pay."""
    from scipy import stats

    return stats

DEFAULT_K = 0.10
DEFAULT_TEMPERATURE = 10.0


class FeatureSource(Protocol):
    """Anything carrying (a subset of) the columns of an [N, D] feature matrix."""

    features: np.ndarray  # [N, c] float32, the stored columns
    columns: np.ndarray  # [c] indices of the stored columns in 0..D-1
    column_means: np.ndarray  # [D] mean of every column over the N samples
    name: str


@dataclasses.dataclass(frozen=True)
class _View:
    features: np.ndarray
    columns: np.ndarray
    column_means: np.ndarray
    name: str

    @property
    def n(self) -> int:
        """Number of samples."""
        return int(self.features.shape[0])

    @property
    def d(self) -> int:
        """Number of dimensions."""
        return int(self.column_means.shape[0])

    def take(self, cols: np.ndarray) -> np.ndarray:
        """Values of the given global columns as float64, [N, len(cols)]; error if not stored or not finite."""
        pos = column_positions(self.columns, cols)
        if pos is None:
            raise IncompatibleFingerprintsError(
                f"fingerprint of {self.name!r} does not store all columns this test needs: "
                "lower k, use coset mode, or re-fingerprint it with keep='all'"
            )
        out = self.features[:, pos].astype(np.float64)
        _check_finite(out, self.name)
        return out


def column_positions(stored: np.ndarray, wanted: np.ndarray) -> np.ndarray | None:
    """Positions of ``wanted`` column ids inside the sorted ``stored`` ids, or None if any is missing."""
    if len(wanted) == 0:
        return np.empty(0, dtype=np.int64)
    if len(stored) == 0:
        return None
    pos = np.searchsorted(stored, wanted)
    ok = (pos < len(stored)) & (stored[np.minimum(pos, len(stored) - 1)] == wanted)
    return pos if bool(np.all(ok)) else None


def _view(x: Any, default_name: str) -> _View:
    """Wrap an array or fingerprint without copying its features; non-finite values show in the column means."""
    if isinstance(x, np.ndarray) or not hasattr(x, "column_means"):
        arr = np.asarray(x)
        if arr.ndim != 2:
            raise SeedPrintsError(f"features of {default_name!r} must be a 2-D [N, D] matrix, got shape {arr.shape}")
        view = _View(arr, np.arange(arr.shape[1]), arr.mean(axis=0, dtype=np.float64), default_name)
    else:
        cols = np.asarray(x.columns, dtype=np.int64)
        feats = np.asarray(x.features)
        if len(cols) > 1 and not bool(np.all(cols[1:] > cols[:-1])):
            order = np.argsort(cols)
            cols, feats = cols[order], feats[:, order]
        view = _View(feats, cols, np.asarray(x.column_means, dtype=np.float64), getattr(x, "name", None) or default_name)
    with np.errstate(all="ignore"):
        _check_finite(view.column_means, view.name)
    return view


def every_position(x: Any) -> bool:
    """True for a fingerprint (or prepared suspect) that holds the hidden state at every probe position."""
    return getattr(getattr(x, "spec", None), "positions", "last") == "all"


def default_k(x: Any) -> float:
    """The calibrated test's k for these features: every dimension (1.0) for every-position fingerprints,
    whose statistic was chosen with all D (bench/power.py), else DEFAULT_K."""
    return 1.0 if every_position(x) else DEFAULT_K


def _last_rows(x: Any) -> Any:
    """The last-position features of an every-position fingerprint (the published test's N rows); else x."""
    return x.last_positions() if every_position(x) and hasattr(x, "last_positions") else x


def _check_finite(a: np.ndarray, name: str) -> None:
    if not np.all(np.isfinite(a)):
        bad = int((~np.isfinite(a)).sum())
        raise ExtractionError(
            f"features of {name!r} contain {bad} NaN/infinite values: the model's weights are broken "
            "or overflow in this dtype; check the checkpoint or run in float32"
        )


# ---------------------------------------------------------------------------- building blocks
def resolve_k(k: float | int, d: int) -> int:
    """Number of identity dimensions: a ratio in (0, 1) of D, or an absolute count >= 1."""
    if isinstance(k, bool) or not isinstance(k, (int, float, np.integer, np.floating)) or not np.isfinite(k):
        raise SeedPrintsError(f"k must be a ratio in (0, 1) or a positive integer, got {k!r}")
    if isinstance(k, (float, np.floating)) and not float(k).is_integer():
        if not 0.0 < k < 1.0:
            raise SeedPrintsError(f"k as a ratio must lie in (0, 1), got {k}")
        return max(1, int(math.floor(k * d + 0.5)))
    k_int = int(k)
    if k_int == 1 and isinstance(k, (float, np.floating)):
        return d  # k = 1.0 means "all columns"
    if not 1 <= k_int <= d:
        raise SeedPrintsError(f"k = {k_int} identity dimensions is outside 1..D = 1..{d}")
    return k_int


def identity_dims(column_means: np.ndarray, k: int) -> np.ndarray:
    """Indices (sorted ascending) of the k columns with the smallest mean; ties broken by index."""
    order = np.argsort(np.asarray(column_means), kind="stable")
    return np.sort(order[:k])


def kept_columns(means_ref: np.ndarray, means_sus: np.ndarray, k: int, mode: Mode) -> np.ndarray:
    """Columns the test uses: the intersection of both bottom-k sets (coset) or the reference's (base)."""
    if mode == "coset":
        return np.intersect1d(identity_dims(means_ref, k), identity_dims(means_sus, k))
    if mode == "base":
        return identity_dims(means_ref, k)
    raise SeedPrintsError(f"unknown mode {mode!r}: use 'coset' or 'base'")


def softmax_rows(x: np.ndarray, temperature: float = DEFAULT_TEMPERATURE) -> np.ndarray:
    """Row-wise softmax of x / temperature, in float64."""
    z = np.asarray(x, dtype=np.float64) / temperature
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def kendall_taus(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Kendall tau-b between a[:, j] and b[:, j] for every column j; NaN where a column is constant."""
    a = np.asarray(a)
    b = np.asarray(b)
    if a.shape != b.shape or a.ndim != 2:
        raise SeedPrintsError(f"kendall_taus needs two matrices of equal shape, got {a.shape} and {b.shape}")
    out = np.empty(a.shape[1], dtype=np.float64)
    kendalltau = _sps().kendalltau
    for j in range(a.shape[1]):
        out[j] = kendalltau(a[:, j], b[:, j]).statistic
    return out


def tau_null_std(n: int) -> float:
    """Standard deviation of one Kendall tau between independent samples of size n (no ties)."""
    return math.sqrt(2.0 * (2 * n + 5) / (9.0 * n * (n - 1)))


def log10_sf_normal(z: float) -> float:
    """log10 of the standard normal survival function, accurate far into the tail."""
    return float(special.log_ndtr(-z)) / LN10


def log10_bounded_p(log10_p: float) -> float:
    """Clip a log10 p-value to at most 0 (p <= 1)."""
    return min(0.0, log10_p)


def p_from_log10(log10_p: float) -> float:
    """p = 10 ** log10_p (0.0 when it underflows a float)."""
    return float(10.0**log10_p) if log10_p > -320 else 0.0


# ---------------------------------------------------------------------------- result
@dataclasses.dataclass(frozen=True)
class SeedPrintsResult:
    """Outcome of one SeedPrints test, in the style of scipy.stats results.

    statistic: mean Kendall tau over the kept columns.  pvalue / log10_pvalue: evidence
    against "unrelated" (log10 stays exact when p underflows).  z: the standardised
    statistic the p-value comes from.  k: kept columns; n: samples.  inconclusive: the test
    could not be run (too few usable columns); then pvalue = 1 and reason says why.
    """

    statistic: float
    pvalue: float
    log10_pvalue: float
    z: float
    k: int
    n: int
    mode: str
    method: str
    taus: np.ndarray
    columns: np.ndarray
    k_requested: int
    inconclusive: bool = False
    reason: str = ""
    agg_tau: float | None = None
    agg_z: float | None = None
    n_dropped: int = 0
    details: dict[str, Any] = dataclasses.field(default_factory=dict)

    def significant(self, alpha: float = 0.01) -> bool:
        """True when the test rejects independence at level alpha."""
        return (not self.inconclusive) and self.log10_pvalue < math.log10(alpha)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        d = dataclasses.asdict(self)
        d["taus"] = [float(t) for t in self.taus]
        d["columns"] = [int(c) for c in self.columns]
        # arrays kept for plots (null draws) are listed as floats
        d["details"] = {k: ([float(x) for x in np.ravel(v)] if isinstance(v, np.ndarray) else v)
                        for k, v in self.details.items()}
        return d


def _inconclusive(reason: str, *, n: int, mode: str, method: str, k_requested: int, columns: np.ndarray,
                  taus: np.ndarray, n_dropped: int = 0) -> SeedPrintsResult:
    return SeedPrintsResult(
        statistic=0.0, pvalue=1.0, log10_pvalue=0.0, z=0.0, k=int(len(taus)), n=n, mode=mode, method=method,
        taus=taus, columns=columns, k_requested=k_requested, inconclusive=True, reason=reason, n_dropped=n_dropped,
    )


# ---------------------------------------------------------------------------- the test
def seedprints_test(
    reference: np.ndarray | FeatureSource,
    suspect: np.ndarray | FeatureSource,
    *,
    k: float | int | None = DEFAULT_K,
    mode: Mode = "coset",
    temperature: float = DEFAULT_TEMPERATURE,
    agg: bool = False,
    null: Null = "analytical",
    null_test: NullTest = "ttest",
    n_null: int = 50,
    null_seed: int = 0,
) -> SeedPrintsResult:
    """Paper-mode SeedPrints test of "suspect shares reference's init lineage".

    reference / suspect: [N, D] arrays or fingerprints (same N, D, probe).  k: identity
    dimensions as a ratio of D or a count.  null: "analytical" (paper default), or the
    empirical "simplified" / "full_pipeline" nulls compared with a one-sided t-test or
    Mann-Whitney U.  agg adds the aggregate-tau signal (analytical only, Bonferroni x2).
    Every-position fingerprints are tested on their last-position rows (the published read-out).
    """
    ref = _view(_last_rows(reference), "reference")
    sus = _view(_last_rows(suspect), "suspect")
    k = DEFAULT_K if k is None else k
    if ref.n != sus.n or ref.d != sus.d:
        raise IncompatibleFingerprintsError(
            f"{ref.name!r} is [{ref.n}, {ref.d}] and {sus.name!r} is [{sus.n}, {sus.d}]: "
            "fingerprints must come from the same probe and hidden size"
        )
    if temperature <= 0 or not np.isfinite(temperature):
        raise SeedPrintsError(f"temperature must be positive, got {temperature}")
    if null not in ("analytical", "simplified", "full_pipeline"):
        raise SeedPrintsError(f"unknown null {null!r}: use 'analytical', 'simplified' or 'full_pipeline'")
    if null_test not in ("ttest", "mannwhitney"):
        raise SeedPrintsError(f"unknown null_test {null_test!r}: use 'ttest' or 'mannwhitney'")
    if agg and null != "analytical":
        raise SeedPrintsError("the agg signal is defined for the analytical null only")
    n, d = ref.n, ref.d
    k_abs = resolve_k(k, d)
    method = "analytical" + ("+agg" if agg else "") if null == "analytical" else f"empirical-{null}-{null_test}"
    cols = kept_columns(ref.column_means, sus.column_means, k_abs, mode)
    raw_ref, raw_sus = ref.take(cols), sus.take(cols)
    common = dict(n=n, mode=mode, method=method, k_requested=k_abs, columns=cols)
    if len(cols) < 2:
        return _inconclusive(
            f"only {len(cols)} identity dimension(s) are shared by the two models; at least 2 are needed "
            "(try base mode or a larger k)",
            taus=np.full(len(cols), np.nan), **common,
        )
    taus_all = kendall_taus(softmax_rows(raw_ref, temperature), softmax_rows(raw_sus, temperature))
    finite = np.isfinite(taus_all)
    n_dropped = int((~finite).sum())
    taus = taus_all[finite]
    if len(taus) < 2:
        return _inconclusive(
            f"only {len(taus)} of {len(cols)} kept columns vary across samples; at least 2 are needed",
            taus=taus_all, n_dropped=n_dropped, **common,
        )
    mean_tau = float(taus.mean())
    kk = len(taus)

    if null == "analytical":
        sigma1 = tau_null_std(n)
        z_dim = mean_tau / (sigma1 / math.sqrt(kk))
        agg_tau = agg_z = None
        if agg:
            a = raw_ref[:, finite].mean(axis=1)
            b = raw_sus[:, finite].mean(axis=1)
            agg_tau = float(_sps().kendalltau(a, b).statistic)
            if not np.isfinite(agg_tau):
                agg_tau = 0.0
            agg_z = agg_tau / sigma1
            z = max(z_dim, agg_z)
            log10_p = log10_bounded_p(math.log10(4.0) + log10_sf_normal(z))
        else:
            z = z_dim
            log10_p = log10_bounded_p(math.log10(2.0) + log10_sf_normal(z))
        return SeedPrintsResult(
            statistic=mean_tau, pvalue=p_from_log10(log10_p), log10_pvalue=log10_p, z=float(z), k=kk, n=n,
            mode=mode, method=method, taus=taus_all, columns=cols, k_requested=k_abs, agg_tau=agg_tau,
            agg_z=None if agg_z is None else float(agg_z), n_dropped=n_dropped,
            details={"z_dim": float(z_dim), "tau_std": sigma1},
        )

    null_taus = (
        _cached_simplified_null(n, kk, n_null, float(temperature), null_seed)
        if null == "simplified"
        else full_pipeline_null_taus(n, d, k_abs, mode, n_null, temperature, np.random.default_rng(null_seed))
    )
    if len(null_taus) < 2:
        return _inconclusive("the empirical null produced fewer than 2 usable taus; raise n_null",
                             taus=taus_all, n_dropped=n_dropped, **common)
    if null_test == "ttest":
        z, log10_p = _welch_greater(taus, null_taus)
    else:
        z, log10_p = _mannwhitney_greater(taus, null_taus)
    return SeedPrintsResult(
        statistic=mean_tau, pvalue=p_from_log10(log10_p), log10_pvalue=log10_p, z=float(z), k=kk, n=n,
        mode=mode, method=method, taus=taus_all, columns=cols, k_requested=k_abs, n_dropped=n_dropped,
        details={"n_null_taus": int(len(null_taus)), "null_mean": float(null_taus.mean()),
                 "null_std": float(null_taus.std(ddof=1))},
    )


# ---------------------------------------------------------------------------- empirical nulls
def simplified_null_taus(n: int, k: int, n_pairs: int, temperature: float, rng: np.random.Generator) -> np.ndarray:
    """Pooled per-column taus of n_pairs pairs of independent N(0, I) [n, k] matrices after the softmax."""
    out = [kendall_taus(softmax_rows(rng.standard_normal((n, k)), temperature),
                        softmax_rows(rng.standard_normal((n, k)), temperature)) for _ in range(n_pairs)]
    taus = np.concatenate(out) if out else np.empty(0)
    return taus[np.isfinite(taus)]


@functools.lru_cache(maxsize=32)
def _cached_simplified_null(n: int, k: int, n_pairs: int, temperature: float, seed: int) -> np.ndarray:
    """The simplified null depends only on its arguments: build it once per scan, not per reference."""
    taus = simplified_null_taus(n, k, n_pairs, temperature, np.random.default_rng(seed))
    taus.setflags(write=False)
    return taus


def full_pipeline_null_taus(n: int, d: int, k: int, mode: Mode, n_pairs: int, temperature: float,
                            rng: np.random.Generator) -> np.ndarray:
    """Pooled taus of n_pairs pairs of independent N(0, 1) [n, d] matrices sent through bottom-k, softmax, tau."""
    out = []
    for _ in range(n_pairs):
        a = rng.standard_normal((n, d))
        b = rng.standard_normal((n, d))
        cols = kept_columns(a.mean(axis=0), b.mean(axis=0), k, mode)
        if len(cols) >= 2:
            out.append(kendall_taus(softmax_rows(a[:, cols], temperature), softmax_rows(b[:, cols], temperature)))
    taus = np.concatenate(out) if out else np.empty(0)
    return taus[np.isfinite(taus)]


def _welch_greater(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """One-sided Welch t-test of mean(x) > mean(y): (t, log10 p)."""
    nx, ny = len(x), len(y)
    vx, vy = x.var(ddof=1) / nx, y.var(ddof=1) / ny
    se = math.sqrt(vx + vy)
    if se == 0.0:
        diff = float(x.mean() - y.mean())
        return (math.copysign(math.inf, diff) if diff else 0.0), (-math.inf if diff > 0 else 0.0 if diff < 0 else math.log10(0.5))
    t = float((x.mean() - y.mean()) / se)
    df = (vx + vy) ** 2 / (vx**2 / (nx - 1) + vy**2 / (ny - 1)) if (vx > 0 or vy > 0) else nx + ny - 2
    return t, log10_bounded_p(log_t_sf(t, df) / LN10)


def log_t_sf(t: float, df: float) -> float:
    """Natural log of Student's t survival function, with a tail expansion where scipy underflows.

    For large t, sf = I_x(df/2, 1/2) / 2 with x = df / (df + t^2), and
    log I_x(a, b) = a log x + b log(1 - x) - log a - log B(a, b) + O(x).
    """
    value = float(_sps().t.logsf(t, df))
    if math.isfinite(value) or t <= 0:
        return value
    a, b = df / 2.0, 0.5
    x = df / (df + t * t)
    return (a * math.log(x) + b * math.log1p(-x) - math.log(a) - float(special.betaln(a, b)) - math.log(2.0))


def _mannwhitney_greater(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """One-sided Mann-Whitney U of x stochastically greater than y, normal approximation with
    tie and continuity correction (scipy's 'asymptotic' method): (z, log10 p)."""
    nx, ny = len(x), len(y)
    ranks = _sps().rankdata(np.concatenate([x, y]))
    u = float(ranks[:nx].sum() - nx * (nx + 1) / 2.0)
    n_all = nx + ny
    _, counts = np.unique(np.concatenate([x, y]), return_counts=True)
    tie = float((counts**3 - counts).sum())
    sigma = math.sqrt(nx * ny / 12.0 * ((n_all + 1) - tie / (n_all * (n_all - 1))))
    if sigma == 0.0:
        return 0.0, math.log10(1.0)
    z = (u - nx * ny / 2.0 - 0.5) / sigma
    return float(z), log10_bounded_p(log10_sf_normal(z))


# ---------------------------------------------------------------------------- multiple testing
def holm_log10(log10_pvalues: np.ndarray) -> np.ndarray:
    """Holm-adjusted p-values, computed on log10 p so that tiny p-values survive."""
    lp = np.asarray(log10_pvalues, dtype=np.float64)
    m = len(lp)
    if m == 0:
        return lp.copy()
    order = np.argsort(lp, kind="stable")
    adj_sorted = lp[order] + np.log10(m - np.arange(m))
    adj_sorted = np.minimum(0.0, np.maximum.accumulate(adj_sorted))
    out = np.empty(m)
    out[order] = adj_sorted
    return out


# ---------------------------------------------------------------------------- calibrated test (re-pairing null)
DEFAULT_PERMUTATIONS = 2000

#: which re-pairings the null is made of: 'cyclic', the D - 1 shifts j -> j + r (mod D), a group whose
#: statistics one FFT gives; 'random', n_permutations random injective maps; 'auto', cyclic from
#: D = CYCLIC_MIN_D on (its shifts resolve p to 1/D <= 0.002), random below.  (Reflections j -> r - j would
#: double the group, but they are involutions: on a near-copy, whose rho matrix is nearly symmetric, each
#: of their terms counts twice, which inflates the null's spread and costs power.)
RepairingNull = Literal["auto", "cyclic", "random"]
CYCLIC_MIN_D = 500


def resolve_repairing(repairing: str, d: int) -> str:
    """The re-pairings a calibrated test of D dimensions uses: 'cyclic' or 'random'."""
    if repairing == "auto":
        return "cyclic" if d >= CYCLIC_MIN_D else "random"
    if repairing not in ("cyclic", "random"):
        raise SeedPrintsError(f"unknown re-pairing null {repairing!r}: use 'auto', 'cyclic' or 'random'")
    if repairing == "cyclic" and d < 3:
        raise SeedPrintsError(f"the cyclic null needs D >= 3 dimensions, got {d}: use repairing='random'")
    return repairing


def centered_ranks(x: np.ndarray) -> np.ndarray:
    """Column ranks (ties averaged), centred and scaled to unit norm so that dot products are Spearman rho."""
    x = np.asarray(x, dtype=np.float64)
    n, d = x.shape
    order = np.argsort(x.T, axis=1)  # rows of x.T are contiguous: sorting them is faster
    sorted_x = np.take_along_axis(x.T, order, axis=1)
    pos = np.broadcast_to(np.arange(1, n + 1, dtype=np.float64), (d, n))
    if n > 1 and bool(np.any(sorted_x[:, 1:] == sorted_x[:, :-1])):
        # average ranks over runs of equal values: label each run, then give it the mean of its positions
        new_run = np.ones((d, n), dtype=bool)
        new_run[:, 1:] = sorted_x[:, 1:] != sorted_x[:, :-1]
        run = np.cumsum(new_run.ravel()) - 1
        pos = (np.bincount(run, weights=pos.ravel()) / np.bincount(run))[run].reshape(d, n)
    r_t = np.empty((d, n))
    np.put_along_axis(r_t, order, pos, axis=1)
    r = r_t.T
    r -= (n + 1) / 2.0  # the mean of ranks 1..n, ties averaged or not
    norm = np.linalg.norm(r, axis=0)
    np.divide(r, norm, out=r, where=norm > 0)
    r[:, norm == 0] = 0.0
    return np.ascontiguousarray(r)


@functools.lru_cache(maxsize=8)
def repairing_draws(d: int, k: int, n_permutations: int, seed: int) -> np.ndarray:
    """[R, k] random injective maps of k positions into 0..d-1 (the first k entries of R random permutations)."""
    rng = np.random.default_rng([seed, d, k])
    draws = np.argsort(rng.random((n_permutations, d)), axis=1)[:, :k]
    draws.setflags(write=False)
    return draws


class SuspectRanks:
    """A model's full feature matrix, ranked once: as the suspect of a scan, or as a reference tested
    against many suspects (an evidence matrix)."""

    def __init__(self, suspect: Any) -> None:
        view = _view(suspect, "suspect")
        if len(view.columns) != view.d:
            raise IncompatibleFingerprintsError(
                f"the calibrated test needs all {view.d} feature columns of the suspect {view.name!r}, "
                f"but its fingerprint stores {len(view.columns)}: re-fingerprint it with keep='all'"
            )
        full = view.take(view.columns)
        self.spec = getattr(suspect, "spec", None)
        self._source: Any = suspect
        self.name = view.name
        self.column_means = view.column_means
        self.n, self.d = full.shape
        self.ranks = centered_ranks(full)
        self._spectrum: np.ndarray | None = None
        self._spectrum_conj: np.ndarray | None = None

    @property
    def source(self) -> Any:
        """What was ranked (the basis check reads its anchor rows and features)."""
        return self._source() if isinstance(self._source, weakref.ref) else self._source

    def _hold_weakly(self) -> None:
        """Keep only a weak reference to the source, so that a cache of these does not keep it alive."""
        self._source = weakref.ref(self._source)

    @property
    def spectrum(self) -> np.ndarray:
        """Real FFT of every row of the ranks, [N, D // 2 + 1] (computed on first use, for the cyclic null)."""
        if self._spectrum is None:
            self._spectrum = np.fft.rfft(self.ranks, axis=1)
        return self._spectrum

    @property
    def spectrum_conj(self) -> np.ndarray:
        """Complex conjugate of :attr:`spectrum` (what the suspect side of a cross-correlation needs)."""
        if self._spectrum_conj is None:
            self._spectrum_conj = self.spectrum.conj()
        return self._spectrum_conj


#: memory that prepared (ranked, transformed) feature matrices may occupy across tests, so a library scanned
#: again, or tested pair by pair in an evidence matrix, is ranked once; SEEDPRINTS_RANK_CACHE_MB sets it
RANK_CACHE_BYTES = int(os.environ.get("SEEDPRINTS_RANK_CACHE_MB", "2048")) << 20
_PREPARED: collections.OrderedDict[int, tuple[Any, SuspectRanks, int]] = collections.OrderedDict()
_PREPARED_LOCK = threading.Lock()
_prepared_bytes = 0


def _forget(key: int) -> None:
    global _prepared_bytes
    with _PREPARED_LOCK:
        hit = _PREPARED.pop(key, None)
        if hit is not None:
            _prepared_bytes -= hit[2]


def prepare(x: Any) -> SuspectRanks:
    """``x`` (a full fingerprint or feature matrix) ranked for the calibrated test, reused while ``x`` is alive
    and the cache (:data:`RANK_CACHE_BYTES`, least recently used first out) has room."""
    global _prepared_bytes
    if isinstance(x, SuspectRanks):
        return x
    key = id(x)
    with _PREPARED_LOCK:
        hit = _PREPARED.get(key)
        if hit is not None and hit[0]() is x:
            _PREPARED.move_to_end(key)
            return hit[1]
    ranks = SuspectRanks(x)
    # ranks (float64) and their half spectrum (complex128); a model that is also tested as a suspect holds the
    # spectrum's conjugate too (8 more bytes per value), which the budget leaves out: a scan has one suspect
    size = 16 * ranks.n * ranks.d
    try:
        ref = weakref.ref(x)
    except TypeError:  # arrays and other objects without weak references are ranked every time
        return ranks
    if size > RANK_CACHE_BYTES:
        return ranks
    ranks._hold_weakly()  # the caller holds x while it uses the result; the cache must not
    with _PREPARED_LOCK:
        _PREPARED[key] = (ref, ranks, size)
        _prepared_bytes += size
        while _prepared_bytes > RANK_CACHE_BYTES and _PREPARED:
            _, (_, _, old) = _PREPARED.popitem(last=False)
            _prepared_bytes -= old
    weakref.finalize(x, _forget, key)
    return ranks


#: how many re-paired per-dimension correlations a calibrated result keeps for plots (at least one re-pairing:
#: all k for k > this)
NULL_DIM_SAMPLE = 1000


#: reference dimensions per block of the aligned-correlation matrix: bounds the test's memory to
#: block x D values (32 MB at D = 8,192) whatever k is
_BLOCK = 512


def _random_null(a: np.ndarray, sus: SuspectRanks, cols: np.ndarray, n_permutations: int, seed: int,
                 n_sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of n_permutations random re-pairings, and per-dimension correlations of the first n_sample."""
    k = len(cols)
    draws = repairing_draws(sus.d, k, n_permutations, seed)
    null_sum = np.zeros(n_permutations)
    null_dims = np.empty((min(n_sample, n_permutations), k))
    for lo in range(0, k, _BLOCK):
        hi = min(k, lo + _BLOCK)
        idx = np.arange(hi - lo)
        m = a[:, lo:hi].T @ sus.ranks  # Spearman rho of these identity dims of the reference with every suspect dim
        repaired = m[idx[None, :], draws[:, lo:hi]]  # [R, block]
        null_sum += repaired.sum(axis=1)
        null_dims[:, lo:hi] = repaired[: len(null_dims)]
    return null_sum / k, null_dims


#: from this many identity dimensions on, the cyclic null's statistics come from FFTs (below, from a [k, D] product)
_FFT_MIN_K = 128


def _cyclic_null(a: np.ndarray, ref: Any, sus: SuspectRanks, cols: np.ndarray,
                 n_sample: int) -> tuple[np.ndarray, np.ndarray]:
    """Statistics of the D - 1 shifts j -> j + r (mod D), r = 1..D-1, and per-dimension correlations under
    the first n_sample of them.

    Sum_j a_j . s_(j+r) over all r is the circular cross-correlation of each row of A (zero outside the
    identity dimensions) with the same row of S: one product of real FFTs, summed over rows.
    """
    d, k = sus.d, len(cols)
    n_dims = min(n_sample, d - 1)
    if k < _FFT_MIN_K:  # few identity dimensions: their rho with every suspect dimension is the cheaper route
        m = a.T @ sus.ranks  # [k, D]
        targets = (cols[:, None] + np.arange(d)[None, :]) % d  # row j, column r: the dimension shift r maps j to
        paired = np.take_along_axis(m, targets, axis=1)  # paired[j, r] = rho(a_j, s_(j+r))
        return paired.sum(axis=0)[1:] / k, paired[:, 1:n_dims + 1].T.copy()
    if isinstance(ref, SuspectRanks) and k == d:
        fa = ref.spectrum
    else:
        a_full = np.zeros((a.shape[0], d))
        a_full[:, cols] = a
        fa = np.fft.rfft(a_full, axis=1)
    # sum_n conj(fa) fs = conj(sum_n fa conj(fs)): the suspect, fixed over a scan, holds the conjugate
    cross = np.einsum("nf,nf->f", fa, sus.spectrum_conj).conj()
    shifts = np.fft.irfft(cross, n=d)  # shifts[r] = sum_j a_j . s_(j+r)
    s = sus.ranks
    if k == d:  # every dimension: shift r pairs a[:, :d-r] with s[:, r:] and a[:, d-r:] with s[:, :r], no copies
        null_dims = np.stack([np.concatenate([np.einsum("nk,nk->k", a[:, : d - r], s[:, r:]),
                                              np.einsum("nk,nk->k", a[:, d - r:], s[:, :r])])
                              for r in range(1, n_dims + 1)])
    else:
        null_dims = np.stack([np.einsum("nk,nk->k", a, s[:, (cols + r) % d]) for r in range(1, n_dims + 1)])
    return shifts[1:] / k, null_dims


def calibrated_test(
    reference: np.ndarray | FeatureSource | SuspectRanks,
    suspect: np.ndarray | FeatureSource | SuspectRanks,
    *,
    k: float | int | None = None,
    n_permutations: int = DEFAULT_PERMUTATIONS,
    seed: int = 0,
    repairing: RepairingNull = "auto",
) -> SeedPrintsResult:
    """SeedPrints test with a re-pairing null: calibrated for any pair of independently seeded models.

    Statistic: mean Spearman rho between the reference's k identity dimensions and the same
    dimensions of the suspect, over every feature row (N samples, or N x L positions for
    every-position fingerprints).  Null: the same mean after mapping those dimensions to other
    dimensions of the suspect.  Independent inits make hidden dimensions exchangeable (the init is
    permutation-invariant and training is permutation-equivariant), so the aligned pairing is one
    draw from this null unless the two models share their init.  The re-pairings (``repairing``) are the
    cyclic group of the D dimensions (the D - 1 shifts; a test over a group is exact; 'auto' from D = 500
    on) or ``n_permutations`` random maps ('random'; 'auto' below D = 500).
    k=None: :func:`default_k` (0.10 of D; every dimension for every-position fingerprints).
    z = (T - mean_null) / sd_null.  p is the permutation p-value (1 + #null >= T) / (R + 1) over the R
    re-pairings; when T exceeds every one, p = min(1 / (R + 1), sf(z)), extrapolating with the normal tail.
    """
    ref: Any = reference if isinstance(reference, SuspectRanks) else _view(reference, "reference")
    sus = suspect if isinstance(suspect, SuspectRanks) else SuspectRanks(suspect)
    if ref.n != sus.n or ref.d != sus.d:
        raise IncompatibleFingerprintsError(
            f"{ref.name!r} is [{ref.n}, {ref.d}] and {sus.name!r} is [{sus.n}, {sus.d}]: "
            "fingerprints must come from the same probe and hidden size"
        )
    kind = resolve_repairing(repairing, ref.d)
    if kind == "random" and n_permutations < 100:
        raise SeedPrintsError(f"n_permutations must be at least 100, got {n_permutations}")
    k_abs = resolve_k(default_k(reference) if k is None else k, ref.d)
    cols = identity_dims(ref.column_means, k_abs)
    method = "calibrated-repairing"
    rows = "every position" if every_position(reference) else "last position"
    if k_abs < 2:
        return _inconclusive("the calibrated test needs at least 2 identity dimensions",
                             n=ref.n, mode="base", method=method, k_requested=k_abs, columns=cols,
                             taus=np.full(len(cols), np.nan))
    # ranks are per column, so a prepared reference's ranks restricted to cols are the ranks of cols
    if isinstance(ref, SuspectRanks):
        a = ref.ranks if k_abs == ref.d else ref.ranks[:, cols]
    else:
        a = centered_ranks(ref.take(cols))
    n_sample = max(1, NULL_DIM_SAMPLE // k_abs)  # re-paired per-dimension correlations kept for plots
    aligned = np.einsum("nk,nk->k", a, sus.ranks if k_abs == ref.d else sus.ranks[:, cols])
    if kind == "cyclic":
        null_stats, null_dims = _cyclic_null(a, ref, sus, cols, n_sample)
    else:
        null_stats, null_dims = _random_null(a, sus, cols, n_permutations, seed, n_sample)
    n_null = len(null_stats)
    stat = float(aligned.mean())
    sd = float(null_stats.std(ddof=1))
    mu = float(null_stats.mean())
    if sd == 0.0:
        return _inconclusive("the suspect's dimensions do not vary across the probe; nothing to compare",
                             n=ref.n, mode="base", method=method, k_requested=k_abs, columns=cols, taus=aligned)
    z = (stat - mu) / sd
    # a re-pairing that ties the aligned statistic counts against it (FFT sums carry ~1e-15 of rounding)
    exceed = int((null_stats >= stat - 1e-9).sum())
    mc_p = (1 + exceed) / (n_null + 1)
    # the permutation p-value is exact; only beyond the last re-pairing do we extrapolate with the
    # normal tail of the null (needed for Holm over large libraries)
    log10_p = math.log10(mc_p) if exceed else min(math.log10(mc_p), log10_sf_normal(z))
    return SeedPrintsResult(
        statistic=stat, pvalue=p_from_log10(log10_p), log10_pvalue=log10_p, z=float(z), k=k_abs, n=ref.n,
        mode="base", method=method, taus=aligned, columns=cols, k_requested=k_abs,
        details={"null_mean": mu, "null_sd": sd, "repairing": kind, "n_permutations": n_null, "monte_carlo_p": mc_p,
                 "correlation": "spearman", "rows": rows, "null_statistics": null_stats,
                 # per-dimension correlations under re-pairing (first draws), for plotting the evidence
                 "null_dim_sample": null_dims.ravel()},
    )
