"""Figures the benchmarks measured, read from their results shipped inside the package, never retyped.

The HTML report, the app's About tab and the CLI's help quote :func:`false_positive_level`.
``python bench/ship.py`` copies what they need from bench/results/ into seedprints/data/ (a test
checks that each copy equals its bench result), so an installed package has it too:

- ``calibration.json``: bench/results/calibration.json as the calibration bench writes it,
  ``{"probe", "alpha", "classes": [{"class", "n", "n_independent", "fp", "rate", "ci95"}]}``;
  preferred for the calibrated test when it covers the probe asked for.
- ``accuracy-fast-fpr.json``: the false-positive rates of bench/results/accuracy-fast.json (the
  seed zoo at the ``fast`` and ``quick`` budgets, token probe) per test and budget, with the
  cluster bootstrap interval that bench reports, without its per-pair records.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from .errors import SeedPrintsError
from .probes import DEFAULT_PRESET, PRESETS, ProbeSpec

DATA = Path(__file__).resolve().parent / "data"
CALIBRATION = "calibration.json"
ACCURACY = "accuracy-fast-fpr.json"
#: shipped file -> the bench result it is made from (repository-relative)
SOURCES = {CALIBRATION: "bench/results/calibration.json", ACCURACY: "bench/results/accuracy-fast.json"}
#: the row of the accuracy results that stands for each test (the paper test's default null is the analytical one)
ACCURACY_ROW = {"calibrated": "calibrated", "paper": "paper-analytical"}


@dataclasses.dataclass(frozen=True)
class FalsePositiveLevel:
    """A measured false-positive rate at level ``alpha``, its 95% interval, what it covers and where it comes from."""

    probe: str
    test: str
    alpha: float
    rate: float
    ci95: tuple[float, float]
    interval: str
    scope: str
    source: str

    def percent(self) -> str:
        """'1.5% [0.3, 3.1]': the rate and its interval, in percent."""
        lo, hi = self.ci95
        return f"{100 * self.rate:.1f}% [{100 * lo:.1f}, {100 * hi:.1f}]"

    def text(self) -> str:
        """One sentence-part: the figure, the level, the probe, what it covers and the results file."""
        return (f"{self.percent()} false positives at alpha {self.alpha:g} ({self.interval}; probe {self.probe}, "
                f"{self.scope}; {self.source})")


def budget_of(spec: ProbeSpec) -> str | None:
    """The preset whose budget and read-out a probe has (kind, N, L, positions; the token range may differ), or None."""
    for name, p in PRESETS.items():
        if (p.kind, p.n_samples, p.seq_len, p.positions) == (spec.kind, spec.n_samples, spec.seq_len, spec.positions):
            return name
    return None


def _read(data: Path, name: str) -> dict[str, Any] | None:
    path = data / name
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise SeedPrintsError(f"the shipped results file {path} cannot be read ({exc}): reinstall seedprints") from None


def _from_calibration(record: dict[str, Any], probe: str) -> FalsePositiveLevel:
    worst = max(record["classes"], key=lambda c: c["rate"])
    return FalsePositiveLevel(
        probe=probe, test="calibrated", alpha=float(record["alpha"]), rate=float(worst["rate"]),
        ci95=(float(worst["ci95"][0]), float(worst["ci95"][1])), interval="95% interval",
        scope=(f"the highest of {len(record['classes'])} classes of unrelated pairs, {worst['class']}: "
               f"{worst['fp']}/{worst['n']} pairs, {worst['n_independent']} independent"),
        source=SOURCES[CALIBRATION])


def _from_accuracy(record: dict[str, Any], probe: str, test: str) -> FalsePositiveLevel | None:
    for row in record["rows"]:
        if row["budget"] == probe and row["test"] == ACCURACY_ROW[test]:
            return FalsePositiveLevel(
                probe=probe, test=test, alpha=float(record["alpha"]), rate=float(row["rate"]),
                ci95=(float(row["ci95_cluster"][0]), float(row["ci95_cluster"][1])),
                interval=f"cluster bootstrap 95% interval over {row['clusters']} clusters of related pairs",
                scope=f"{row['fp']} of {row['n']:,} unrelated pairs of the {record['zoo']} seed zoo",
                source=SOURCES[ACCURACY])
    return None


def false_positive_level(probe: str = DEFAULT_PRESET, test: str = "calibrated",
                         data: str | Path | None = None) -> FalsePositiveLevel:
    """The measured false-positive rate of ``test`` ('calibrated' or 'paper') with probe preset ``probe``.

    Reads the results shipped in seedprints/data/ (``data`` names another folder): the calibration
    bench's classes when they cover this probe (the highest class rate, with its interval), else
    the seed-zoo accuracy bench (all unrelated pairs, cluster bootstrap interval).  Raises
    SeedPrintsError when no shipped result covers the probe and test.
    """
    if test not in ACCURACY_ROW:
        raise SeedPrintsError(f"unknown test {test!r}: choose one of {', '.join(ACCURACY_ROW)}")
    folder = DATA if data is None else Path(data)
    calibration = _read(folder, CALIBRATION)
    if test == "calibrated" and calibration is not None and calibration.get("probe") in (probe, _id(probe)):
        return _from_calibration(calibration, probe)
    accuracy = _read(folder, ACCURACY)
    level = None if accuracy is None else _from_accuracy(accuracy, probe, test)
    if level is None:
        measured = sorted({r["budget"] for r in accuracy["rows"]}) if accuracy is not None else []
        raise SeedPrintsError(f"no false-positive rate of the {test} test with probe {probe!r} ships with seedprints "
                              f"(measured: {', '.join(measured) or 'none'}): choose one of those, or measure it "
                              "(bench/accuracy.py) and ship the result (python bench/ship.py)")
    return level


def _id(probe: str) -> str | None:
    return PRESETS[probe].id if probe in PRESETS else None
