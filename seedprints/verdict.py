"""Scanning a suspect against reference fingerprints, Holm correction, and the plain-language verdict."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable
from typing import Any, Literal

import numpy as np

from .errors import SeedPrintsError
from .fingerprint import Fingerprint
from .methods import DEFAULT_ALPHA, DEFAULT_TEST, TESTS, get_test  # noqa: F401 (re-exported)
from .stats import DEFAULT_K, SeedPrintsResult, default_k, holm_log10, prepare

Label = Literal["MATCH", "AMBIGUOUS", "NO MATCH", "INCONCLUSIVE"]
#: Exit codes of ``scan --exit-code`` / ``compare --exit-code`` per verdict (2 stays the error code, as in git diff).
EXIT_CODES: dict[str, int] = {"MATCH": 0, "NO MATCH": 1, "AMBIGUOUS": 4, "INCONCLUSIVE": 5}
TestName = str  # a key of seedprints.methods.TESTS


def run_test(reference: Any, suspect: Any, test: str = DEFAULT_TEST, **kwargs: Any) -> SeedPrintsResult:
    """Run a registered test (:data:`seedprints.methods.TESTS`): the calibrated one by default.

    The calibrated test reads full fingerprints through :func:`~seedprints.stats.prepare`, so a fingerprint
    tested many times (a library rescanned, one reference against many suspects) is ranked once."""
    method = get_test(test)
    if method.calibrated:
        reference, suspect = (prepare(x) if getattr(x, "is_full", False) else x for x in (reference, suspect))
    return method.run(reference, suspect, **kwargs)


def lineage_label(family: str, seed: int | None) -> str:
    """'family seed 42' style label for people ('unknown seed' when the seed is not known)."""
    seed_txt = "unknown seed" if seed is None else f"seed {seed}"
    return f"{family} {seed_txt}".strip() if family else seed_txt


@dataclasses.dataclass(frozen=True)
class RefInfo:
    """Who a reference is: name and known lineage (family, seed)."""

    name: str
    family: str = ""
    seed: int | None = None

    @property
    def lineage(self) -> str:
        """'family seed 42' style label for people."""
        return lineage_label(self.family, self.seed)


@dataclasses.dataclass(frozen=True)
class ScanRow:
    """One tested reference: its identity, the test result and the Holm-adjusted evidence."""

    reference: RefInfo
    result: SeedPrintsResult
    log10_p_holm: float
    significant: bool

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form of the row."""
        r = self.result
        return {"name": self.reference.name, "family": self.reference.family, "seed": self.reference.seed,
                "statistic": r.statistic, "z": r.z, "log10_p": r.log10_pvalue, "p": r.pvalue,
                "log10_p_holm": self.log10_p_holm, "significant": self.significant, "k": r.k,
                "inconclusive": r.inconclusive, "reason": r.reason, "basis": basis_summary(r)}


@dataclasses.dataclass(frozen=True)
class Verdict:
    """The single answer of a scan and the one sentence that explains it."""

    label: Label
    reason: str
    reference: str | None = None
    family: str | None = None
    seed: int | None = None


@dataclasses.dataclass(frozen=True)
class ScanReport:
    """Ranked table (strongest evidence first), skipped references with reasons, and the verdict."""

    suspect: str
    probe_id: str
    alpha: float
    test: dict[str, Any]
    rows: list[ScanRow]
    skipped: list[tuple[str, str]]
    verdict: Verdict

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {"suspect": self.suspect, "probe_id": self.probe_id, "alpha": self.alpha, "test": self.test,
                "verdict": dataclasses.asdict(self.verdict), "rows": [r.to_dict() for r in self.rows],
                "skipped": [{"name": n, "reason": why} for n, why in self.skipped]}


def basis_summary(result: SeedPrintsResult) -> dict[str, Any] | None:
    """The basis check's record of a result (:func:`seedprints.basis.calibrated_basis_test`), without the
    per-dimension detail; None for tests that have no basis check."""
    info = result.details.get("basis")
    return None if info is None else {k: v for k, v in info.items() if k != "detail"}


def _basis_sentences(top: ScanRow | None, rows: list[ScanRow]) -> str:
    """What the verdict adds about the basis: a re-parameterised match, or a check that could not run."""
    out = ""
    info = top.result.details.get("basis") if top is not None else None
    if info and info.get("aligned") and info.get("reading") == "aligned" and info.get("change") != "unchanged":
        out += (f" The suspect matched only after its hidden basis was aligned to the reference's: "
                f"{info['describe']}. Such a change is made on purpose, and is itself evidence that the "
                "model's origin was being hidden.")
    unchecked = [r for r in rows if (r.result.details.get("basis") or {}).get("checked") is False
                 and not r.result.inconclusive]
    if unchecked:
        out += (f" The basis check (which catches permuted or rotated copies) was not available for "
                f"{len(unchecked)} of {len(rows)} references: {unchecked[0].result.details['basis']['reason']}.")
    return out


def skip_reason(suspect: Fingerprint, ref: Fingerprint) -> str | None:
    """Why a reference cannot be compared with the suspect (None if it can)."""
    if ref.spec.id != suspect.spec.id:
        return f"made with a different probe ({ref.spec.id} vs the suspect's {suspect.spec.id}); re-fingerprint one of them"
    if ref.d != suspect.d:
        if ref.d > suspect.d:
            return (f"hidden size {ref.d} differs from the suspect's {suspect.d}: the suspect could be a width-pruned "
                    "copy of it, which this test cannot check across widths")
        return f"hidden size {ref.d} differs from the suspect's {suspect.d}, so the suspect cannot derive from it"
    return None


def format_p(log10_p: float) -> str:
    """A p-value given by its log10 for people: 0.0123, 4.0e-1256, or 0 when it underflows even in log space."""
    if not math.isfinite(log10_p):
        return "0" if log10_p < 0 else "1"
    if log10_p > -4:
        return f"{10 ** log10_p:.3g}"
    exp = math.floor(log10_p)
    return f"{10 ** (log10_p - exp):.1f}e{exp}"


def scan(
    suspect: Fingerprint,
    references: Iterable[tuple[Any, Fingerprint] | Fingerprint],
    *,
    alpha: float = DEFAULT_ALPHA,
    test: TestName = DEFAULT_TEST,
    **test_kwargs: Any,
) -> ScanReport:
    """Test the suspect against every compatible reference and decide one verdict.

    references: fingerprints, or (info, fingerprint) pairs where info has name/family/seed
    (a library :class:`~seedprints.library.Reference` works).  ``test`` is 'calibrated'
    (default, :func:`~seedprints.stats.calibrated_test`) or 'paper'
    (:func:`~seedprints.stats.seedprints_test`); extra keywords go to that function.
    """
    if not 0.0 < alpha < 1.0:
        raise SeedPrintsError(f"alpha must lie in (0, 1), got {alpha}: use a level such as 0.01")
    get_test(test)
    # the calibrated test ranks the suspect's columns once for the whole scan
    prepared: Any = prepare(suspect) if get_test(test).calibrated else suspect  # ranked once for the scan
    tested: list[tuple[RefInfo, SeedPrintsResult]] = []
    skipped: list[tuple[str, str]] = []
    for item in references:
        info, fp = item if isinstance(item, tuple) else (None, item)
        ref = RefInfo(getattr(info, "name", None) or fp.name, getattr(info, "family", "") or "",
                      getattr(info, "seed", None))
        why = skip_reason(suspect, fp)
        if why:
            skipped.append((ref.name, why))
            continue
        tested.append((ref, run_test(fp, prepared, test, **test_kwargs)))
    conclusive = [i for i, (_, r) in enumerate(tested) if not r.inconclusive]
    holm = np.zeros(len(tested))
    holm[conclusive] = holm_log10(np.array([tested[i][1].log10_pvalue for i in conclusive]))
    log_alpha = math.log10(alpha)
    rows = [ScanRow(ref, res, float(holm[i]), bool((not res.inconclusive) and holm[i] < log_alpha))
            for i, (ref, res) in enumerate(tested)]
    rows.sort(key=lambda r: (r.result.inconclusive, r.result.log10_pvalue, -r.result.z))
    k = test_kwargs.get("k")
    if k is None:  # the test's own default: record what it used
        k = default_k(suspect) if test == "calibrated" else DEFAULT_K
    params = {"test": test, "k": k, "correction": "holm"}
    if test == "paper":
        params.update(mode=test_kwargs.get("mode", "coset"), null=test_kwargs.get("null", "analytical"),
                      agg=test_kwargs.get("agg", False))
    else:
        # what 'auto' chose for this D, and how many re-pairings that is (D - 1 for the cyclic null)
        used = {(r.details.get("repairing"), r.details.get("n_permutations")) for _, r in tested} - {(None, None)}
        repairing, n_perm = used.pop() if len(used) == 1 else (test_kwargs.get("repairing", "auto"),
                                                                test_kwargs.get("n_permutations", 2000))
        params.update(n_permutations=n_perm, mode="base", basis_check=test_kwargs.get("basis_check", True),
                      repairing=repairing)
    return ScanReport(suspect.name, suspect.spec.id, alpha, params, rows, skipped, decide(rows, skipped, alpha))


def decide(rows: list[ScanRow], skipped: list[tuple[str, str]], alpha: float = DEFAULT_ALPHA) -> Verdict:
    """MATCH / AMBIGUOUS / NO MATCH / INCONCLUSIVE from a ranked, Holm-corrected table."""
    usable = [r for r in rows if not r.result.inconclusive]
    if not usable:
        if not rows and not skipped:
            why = "the reference library is empty, so there is nothing to compare the suspect with."
        elif not rows:
            why = (f"none of the {len(skipped)} references was made with the same probe and hidden size as the "
                   "suspect, so none could be compared.")
        else:
            why = ("the models share too few identity dimensions for the test to say anything; "
                   "try a larger probe or base mode.")
        return Verdict("INCONCLUSIVE", "No decision: " + why)
    hits = [r for r in usable if r.significant]
    untested = len(rows) - len(usable) + len(skipped)
    caveat = f" ({untested} reference(s) could not be tested)" if untested else ""
    if not hits:
        best = usable[0]
        return Verdict("NO MATCH", (
            f"None of the {len(usable)} reference models shows a link to the suspect stronger than chance "
            f"(the closest, {best.reference.name}, has p = {format_p(best.log10_p_holm)} after correcting for "
            f"{len(usable)} comparisons, above the {alpha:g} threshold), so the suspect does not appear to "
            f"come from any seed in this library{caveat}." + _basis_sentences(None, usable)))
    lineages = {(r.reference.family, r.reference.seed) for r in hits}
    top = hits[0]
    # one known lineage; hits from references of unknown seed only count as one lineage when alone
    if len(lineages) == 1 and (top.reference.seed is not None or len(hits) == 1):
        seed_txt = "an unknown seed" if top.reference.seed is None else f"seed {top.reference.seed}"
        fam = f" of the {top.reference.family} family" if top.reference.family else ""
        return Verdict("MATCH", (
            f"The suspect shares its training seed with {top.reference.name} ({seed_txt}{fam}): "
            f"unrelated models would agree this strongly with a chance of only {format_p(top.log10_p_holm)} "
            f"(z = {top.result.z:.1f}){caveat}." + _basis_sentences(top, usable)),
            top.reference.name, top.reference.family, top.reference.seed)
    names = ", ".join(f"{r.reference.name} ({r.reference.lineage})" for r in hits[:4])
    return Verdict("AMBIGUOUS", (
        f"Several references from different seeds show significant links to the suspect ({names}), "
        "so the evidence does not single out one seed; check whether these references are themselves related."),
        top.reference.name, top.reference.family, top.reference.seed)
