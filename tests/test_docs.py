"""The documentation: the site builds with every internal link and anchor checked, every benchmark table it
quotes is copied from its results file, the README stays a landing page, and no page talks about how the work
was organised."""

from __future__ import annotations

import importlib.util
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
PAGES = sorted((ROOT / "docs").glob("**/*.md"))
DOCUMENTS = [README, *PAGES]
#: the landing page's budget of lines (front matter included)
README_LINES = 250

#: ``<!-- quoted from RESULTS -->`` (RESULTS a Markdown file under bench/results) on the line before a block (up to
#: the next blank line): every line of the block is a line of that file, so a benchmark's table is copied, never
#: retyped
QUOTED = re.compile(r"<!-- quoted from (?P<path>[\w./-]+) -->\n(?P<block>(?:.+\n?)+)")


@pytest.mark.skipif(importlib.util.find_spec("mkdocs") is None,
                    reason="mkdocs is not installed (requirements-dev.txt pins it: bash scripts/test.sh installs it)")
def test_the_docs_site_builds_with_every_link_and_anchor_checked(tmp_path):
    """mkdocs.yml is strict and turns every unresolved link, missing anchor or page left out of the nav into a
    warning, so the build fails on any of them."""
    proc = subprocess.run([sys.executable, "-m", "mkdocs", "build", "--strict", "--config-file", str(ROOT / "mkdocs.yml"),
                           "--site-dir", str(tmp_path / "site")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-4000:]
    built = {p.relative_to(tmp_path / "site").as_posix() for p in (tmp_path / "site").rglob("index.html")}
    for page in PAGES:
        name = page.relative_to(ROOT / "docs").with_suffix("").as_posix()
        assert ("index.html" if name == "index" else f"{name}/index.html") in built, name


def test_the_docs_config_checks_links_and_lists_every_page():
    config = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    assert re.search(r"^strict: true$", config, re.M)
    for check in ("omitted_files", "absolute_links", "unrecognized_links", "anchors", "not_found"):
        assert re.search(rf"^  {check}: warn$", config, re.M), check
    nav = set(re.findall(r"^  - [^:]+: ([\w/.-]+\.md)$", config, re.M))
    assert nav == {p.relative_to(ROOT / "docs").as_posix() for p in PAGES}


def quoted_blocks() -> list[tuple[str, int, str, list[str]]]:
    """(document, line, results file, lines of the block) for every block marked as quoted."""
    out = []
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        for m in QUOTED.finditer(text):
            out.append((doc.relative_to(ROOT).as_posix(), text.count("\n", 0, m.start()) + 1, m.group("path"),
                        m.group("block").rstrip("\n").split("\n")))
    return out


def test_every_quoted_benchmark_table_is_copied_from_its_results_file():
    blocks = quoted_blocks()
    assert len(blocks) >= 8 and {doc for doc, *_ in blocks} >= {"README.md", "docs/benchmarks.md", "docs/batch.md"}
    for doc, line, path, lines in blocks:
        assert path.startswith("bench/results/") and path.endswith(".md"), f"{doc}:{line} quotes {path}"
        source = set((ROOT / path).read_text(encoding="utf-8").split("\n"))
        stale = [row for row in lines if row not in source]
        assert not stale, f"{doc}:{line}: not in {path} (copy the rows again from the file): {stale}"
        if lines[0].startswith("|"):  # a table keeps its header and separator, so its columns say what they are
            assert re.fullmatch(r"\|(?:-+\|)+", lines[1]), f"{doc}:{line}: a quoted table starts at its header"


#: ``<!-- figures from RESULTS[, RESULTS] -->`` (results files under bench/results) on the line before prose (up to
#: the next blank line): every decimal figure in it is a number of one of those files at the precision shown (or that number in another
#: unit, ``UNITS``), so prose that quotes a benchmark cannot drift from it
FIGURES = re.compile(r"<!-- figures from (?P<paths>[\w./-]+(?:, [\w./-]+)*) -->\n(?P<block>(?:.+\n?)+)")
NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


#: a figure may show a number of its results in another unit: as a percentage, or in k, M, G (bytes, FLOP/s)
UNITS = (1, 100, 1e-3, 1e-6, 1e-9)


def _numbers(path: Path) -> list[float]:
    return [float(n.replace(",", "")) for n in NUMBER.findall(path.read_text(encoding="utf-8"))]


def unquoted_figures(block: str, sources: list[Path]) -> list[str]:
    """The decimal figures of ``block`` that no source holds at the precision shown (code and thresholds, such as
    ``<= 1.15`` or ``limit 1.3``, are not measurements)."""
    values = [v for source in sources for v in _numbers(source)]
    prose = re.sub(r"(?:[<>]=?|\blimit) ?-?\d[\d,.]*", "", re.sub(r"`[^`\n]*`", "", block))
    missing = []
    for figure in re.findall(r"(?<![\w.])\d+\.\d+(?![\w.])", prose):
        places, shown = len(figure.split(".")[1]), float(figure)
        if not any(round(v * unit, places) == shown for v in values for unit in UNITS):
            missing.append(figure)
    return missing


def test_every_figure_of_prose_that_quotes_a_benchmark_is_in_its_results():
    blocks = [(doc, m) for doc in DOCUMENTS for m in FIGURES.finditer(doc.read_text(encoding="utf-8"))]
    assert len(blocks) >= 6
    for doc, m in blocks:
        sources = [ROOT / p for p in m.group("paths").split(", ")]
        assert all(p.parts[-3:-1] == ("bench", "results") and p.is_file() for p in sources), m.group("paths")
        missing = unquoted_figures(m.group("block"), sources)
        assert not missing, f"{doc.name}: figures not in {m.group('paths')}: {missing}"


def test_the_figure_checker_sees_a_retyped_figure():
    batch = [ROOT / "bench" / "results" / "batch.md"]
    assert unquoted_figures("a wall of 70.29 s, 70.3 s rounded, `not 1.23 (code)`", batch) == []
    assert unquoted_figures("a made-up 12345.678 s and a retyped 70.31 s", batch) == ["12345.678", "70.31"]
    assert unquoted_figures("a target <= 1.15 and a limit 1.3 x + 500 MB", batch) == []


def test_the_quote_checker_sees_a_retyped_row():
    text = "<!-- quoted from bench/results/batch.md -->\n| engine | workers |\n|---|---|\n| local | 1 |\n\nprose\n"
    m = QUOTED.search(text)
    assert m.group("path") == "bench/results/batch.md" and m.group("block").split("\n")[:3] == [
        "| engine | workers |", "|---|---|", "| local | 1 |"]


def test_the_readme_is_a_landing_page():
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= README_LINES
    headings = re.findall(r"^## (.+)$", re.sub(r"^```.*?^```", "", text, flags=re.S | re.M), re.M)
    assert headings == ["The two commands", "Python API", "Headline figures", "Where to read more"]
    for command in ("python3 -m venv .venv && .venv/bin/pip install -r requirements.txt -e . && .venv/bin/python app.py",
                    "bash scripts/test.sh"):
        assert f"```bash\n{command}\n```" in text


#: how the work on the project was organised is not documentation
ORGANISATION = re.compile(r"issue #?\d+|\bthe issue\b"
                          r"|(?:this|last|previous|earlier|these) sessions?\b(?! (?:state|key|ends))"
                          r"|\bsession (?:that|which) measured", re.I)


def test_no_page_talks_about_how_the_work_was_organised():
    found = [(doc.relative_to(ROOT).as_posix(), m.group(0)) for doc in DOCUMENTS
             for m in ORGANISATION.finditer(doc.read_text(encoding="utf-8"))]
    assert not found, found


def test_the_organisation_check_tells_work_from_browser_sessions():
    assert ORGANISATION.search("the run of an earlier session") and ORGANISATION.search("issue #12's conditions")
    assert not ORGANISATION.search("two browser sessions audit at once; a session's download folders")
    assert not ORGANISATION.search("when that session ends") and not ORGANISATION.search("server-side session state")


def test_the_benchmarks_page_names_every_benchmark_and_its_results():
    """A new benchmark or results file shows up in the docs, where a reader looks for what was measured."""
    page = (ROOT / "docs" / "benchmarks.md").read_text(encoding="utf-8")
    files = [*(ROOT / "bench").glob("*.py"), *(ROOT / "bench" / "results").glob("*.md")]
    names = [p.relative_to(ROOT).as_posix() for p in files]
    assert names and not [name for name in names if not re.search(rf"(?<![\w/-]){re.escape(name)}(?![\w-])", page)]
