"""Figures from the benchmarks are read from their results, never retyped: the shipped copies, the report,
the About tab and the CLI's help."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from seedprints import measured
from seedprints.errors import SeedPrintsError
from seedprints.measured import ACCURACY, CALIBRATION, DATA, SOURCES, budget_of, false_positive_level
from seedprints.probes import DEFAULT_PRESET, PRESETS

from helpers import load_bench, tiny_spec

ROOT = Path(__file__).resolve().parents[1]


ship = load_bench("ship")
ACCURACY_FAST = json.loads((ROOT / SOURCES[ACCURACY]).read_text())


def _bench_row(test: str, budget: str) -> dict:
    return next(r for r in ACCURACY_FAST["results"] if (r["test"], r["probe"], r["budget"]) == (test, "token", budget))


def test_shipped_results_equal_the_bench_results():
    made = ship.shipped()
    assert ACCURACY in made
    for name, text in made.items():
        assert (DATA / name).read_text() == text, f"seedprints/data/{name} is stale: run python bench/ship.py"
    for name in set(SOURCES) - set(made):  # a shipped copy whose bench result is gone must go too
        assert not (DATA / name).exists(), name


def test_default_probe_level_is_the_highest_class_of_the_calibration_summary():
    summary = json.loads((ROOT / SOURCES[CALIBRATION]).read_text())
    level = false_positive_level()
    worst = max(summary["classes"], key=lambda c: c["rate"])
    assert (level.probe, level.test, level.alpha) == (DEFAULT_PRESET, "calibrated", summary["alpha"])
    assert level.rate == worst["rate"] == worst["fp"] / worst["n"] and list(level.ci95) == worst["ci95"]
    assert level.source == "bench/results/calibration.json" and worst["class"] in level.scope
    assert f"{worst['fp']}/{worst['n']} pairs, {worst['n_independent']} independent" in level.scope
    assert level.percent() == (f"{100 * level.rate:.1f}% [{100 * level.ci95[0]:.1f}, {100 * level.ci95[1]:.1f}]")


def test_without_calibration_results_the_default_level_is_the_accuracy_bench_figure(tmp_path):
    shutil.copy(DATA / ACCURACY, tmp_path / ACCURACY)
    level = false_positive_level(data=tmp_path)
    row = _bench_row("calibrated", DEFAULT_PRESET)
    cluster = ship.cluster_fpr(row["pairs"])
    assert level.rate == row["fpr_at_alpha"]["rate"] == cluster["rate"]
    assert list(level.ci95) == cluster["ci95"] and level.ci95[0] <= level.rate <= level.ci95[1]
    assert level.source == "bench/results/accuracy-fast.json" and (ROOT / level.source).is_file()
    assert f"{row['fpr_at_alpha']['x']} of {row['fpr_at_alpha']['n']:,} unrelated pairs" in level.scope


def test_paper_level_reads_the_analytical_row():
    level = false_positive_level(test="paper")
    assert level.rate == _bench_row("paper-analytical", DEFAULT_PRESET)["fpr_at_alpha"]["rate"]


def _calibration_record(probe: str) -> dict:
    """The accuracy bench's own negative classes at ``probe``, written in the calibration bench's format."""
    classes = _bench_row("calibrated", probe)["negative_classes"]
    return {"probe": probe, "alpha": ACCURACY_FAST["alpha"],
            "classes": [{"class": name, "n": c["n"], "n_independent": c["n"], "fp": c["x"], "rate": c["rate"],
                         "ci95": c["ci95"]} for name, c in classes.items()]}


def test_calibration_results_are_preferred_when_they_cover_the_probe(tmp_path):
    shutil.copy(DATA / ACCURACY, tmp_path / ACCURACY)
    (tmp_path / CALIBRATION).write_text(json.dumps(_calibration_record(DEFAULT_PRESET)))
    level = false_positive_level(DEFAULT_PRESET, data=tmp_path)
    classes = _bench_row("calibrated", DEFAULT_PRESET)["negative_classes"]
    worst = max(classes, key=lambda name: classes[name]["rate"])
    assert level.source == "bench/results/calibration.json"
    assert level.rate == classes[worst]["rate"] and list(level.ci95) == classes[worst]["ci95"]
    assert worst in level.scope
    # another probe, or the paper test, falls back to the accuracy bench
    assert false_positive_level("quick", data=tmp_path).source == SOURCES[ACCURACY]
    assert false_positive_level(DEFAULT_PRESET, test="paper", data=tmp_path).source == SOURCES[ACCURACY]
    # the calibration bench may name its probe by id
    (tmp_path / CALIBRATION).write_text(json.dumps({**_calibration_record(DEFAULT_PRESET),
                                                    "probe": PRESETS[DEFAULT_PRESET].id}))
    assert false_positive_level(DEFAULT_PRESET, data=tmp_path).source == SOURCES[CALIBRATION]


def test_a_probe_nobody_measured_is_a_one_line_error():
    with pytest.raises(SeedPrintsError, match=r"^no false-positive rate of the calibrated test with probe 'paper' "
                                              r"ships with seedprints \(measured: fast, quick\): choose one"):
        false_positive_level("paper")
    with pytest.raises(SeedPrintsError, match="unknown test 'kendall'"):
        false_positive_level(test="kendall")


def test_budget_of_matches_presets_by_budget_and_read_out():
    assert budget_of(PRESETS["fast"]) == "fast" and budget_of(PRESETS["quick"].replace(vocab_range=1024)) == "quick"
    assert budget_of(PRESETS["fast"].replace(positions="last")) is None
    assert budget_of(tiny_spec()) is None


@pytest.fixture(scope="module")
def audit(tmp_path_factory):
    """A real audit of a tiny seeded suspect against a library of three tiny seeded references."""
    from seedprints import Library, audit_library, fingerprint_model
    from seedprints.derive import weight_noise

    from helpers import tiny_llama

    lib = Library(tmp_path_factory.mktemp("measured") / "lib")
    spec = PRESETS[DEFAULT_PRESET].replace(vocab_range=512)
    for s in (0, 1, 2):
        lib.add(fingerprint_model(tiny_llama(s), spec, name=f"tiny-{s}"), name=f"ref-seed{s}", seed=s, keep="all")
    return audit_library(weight_noise(tiny_llama(1), rel=0.01), lib, name="suspect", device="cpu")


def test_report_quotes_the_measured_levels(audit):
    from seedprints.report import LIMITATIONS, report_html

    page = report_html(audit, "seedprints scan suspect --library lib")
    calibrated, paper = false_positive_level(), false_positive_level(test="paper")
    assert calibrated.text() in page and paper.percent() in page and "docs/method.md" in page
    assert "0.3-0.5%" not in page and "%" not in LIMITATIONS  # no figure is typed into the report


def test_report_of_an_unbenchmarked_probe_says_whose_figures_it_quotes():
    from seedprints.report import measured_level

    text = measured_level(tiny_spec())
    assert f"the figures are the default probe's, {DEFAULT_PRESET}" in text and false_positive_level().text() in text
    assert "quick" in measured_level(PRESETS["quick"]) and false_positive_level("quick").text() in measured_level(
        PRESETS["quick"])


def test_about_tab_reads_its_figures_from_the_code_and_the_results():
    from ui.about_tab import about_markdown

    text = about_markdown()
    assert false_positive_level().text() in text
    assert PRESETS[DEFAULT_PRESET].positions == "all" and "at every position of each sequence" in text
    assert "activation at the last position" not in text


def test_cli_help_reads_the_level_and_the_demo_from_the_code():
    from seedprints.cli import build_parser
    from seedprints.demo import SUSPECTS

    parser = build_parser()
    sub = parser._subparsers._group_actions[0]  # noqa: SLF001 - argparse keeps sub-commands here
    scan_help = " ".join(sub.choices["scan"].format_help().split())
    assert false_positive_level().percent() in scan_help and false_positive_level().source in scan_help
    demo = next(a for a in sub._choices_actions if a.dest == "demo")  # noqa: SLF001
    assert demo.help == f"build the embedded demo library and scan its {len(SUSPECTS)} suspects"


def test_the_module_names_where_its_data_lives():
    assert measured.DATA == ROOT / "seedprints" / "data"
