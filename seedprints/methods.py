"""The registry of statistical tests: one place for their names, labels, help and defaults.

The CLI's ``--test`` choices, the Python API (``run_test``, ``scan``) and the app's test
selector all read :data:`TESTS`, so a new test is added here once.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from .errors import SeedPrintsError
from .basis import calibrated_basis_test
from .stats import DEFAULT_K, DEFAULT_PERMUTATIONS, SeedPrintsResult, seedprints_test

#: Significance level of every verdict unless the caller chooses another.
DEFAULT_ALPHA = 0.01


class UnknownTestError(SeedPrintsError):
    """A test name that is not in the registry."""


@dataclasses.dataclass(frozen=True)
class TestMethod:
    """A named test: the function, what people see, and its defaults."""

    name: str
    label: str
    help: str
    run: Callable[..., SeedPrintsResult]
    defaults: dict[str, Any]
    calibrated: bool

    __test__ = False  # not a pytest test class


TESTS: dict[str, TestMethod] = {
    "calibrated": TestMethod(
        "calibrated", "calibrated (default: holds its error rate)",
        "re-pairing null: holds its level for unrelated trained models (k = 0.1 of D; all D for every-position probes); "
        "also read after aligning the suspect's hidden basis to the reference's, so a permuted or rotated copy "
        "still matches",
        calibrated_basis_test, {"k": None, "n_permutations": DEFAULT_PERMUTATIONS, "repairing": "auto"}, calibrated=True),
    "paper": TestMethod(
        "paper", "paper (published test; can over-state evidence)",
        "the published test exactly (its analytical null can over-state evidence)",
        seedprints_test, {"k": DEFAULT_K, "mode": "coset", "null": "analytical", "null_test": "ttest", "agg": False},
        calibrated=False),
}
DEFAULT_TEST = "calibrated"


def get_test(name: str) -> TestMethod:
    """The registered test of this name, or a one-line error listing the choices."""
    try:
        return TESTS[name]
    except KeyError:
        raise UnknownTestError(f"unknown test {name!r}: choose one of {', '.join(TESTS)}") from None


def test_by_label(label: str) -> TestMethod:
    """The test whose people-facing label (or name) this is."""
    for method in TESTS.values():
        if label in (method.label, method.name):
            return method
    raise UnknownTestError(f"unknown test {label!r}: choose one of {', '.join(m.label for m in TESTS.values())}")
