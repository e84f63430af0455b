"""The README's first command gives the user the command line, its Python API example runs as written and prints
what it promises, every code block the README or the docs mark as runnable runs, and the counts they state match
the code.

Marker convention: an HTML comment on the line before a fenced block says that the block runs.
``<!-- runs -->`` before a ```` ```python ```` block: this file executes it (it must not raise; it may assert).
``<!-- runs with the app: PATH -->``: the browser test at PATH (under tests/e2e) executes it against the real app.
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import shlex
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
#: the pages under docs/ (the sentences the tests below read live where the user looks for them)
APP_PAGE = ROOT / "docs" / "app.md"
#: the Markdown files whose code blocks may claim to run
DOCUMENTS = [README, *sorted((ROOT / "docs").glob("**/*.md"))]


def first_command() -> str:
    """The one-line install-and-run command that opens "## The two commands"."""
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## The two commands"):]
    return re.search(r"```bash\n(.*?)```", section, re.S).group(1).strip()


@pytest.mark.slow  # a venv and an install: 37 s in the fast lane on a busy 2-core machine
def test_readme_first_command_installs_the_seedprints_command(tmp_path):
    """Its install step, run as written in a copy of the checkout (offline: the dependencies come from this
    test environment), puts a working ``seedprints`` in the venv, which the next sentence tells people to run."""
    steps = [s.strip() for s in first_command().split("&&")]
    assert "\n" not in first_command() and len(steps) == 3
    assert steps[0] == "python3 -m venv .venv" and steps[2] == ".venv/bin/python app.py"
    pip = shlex.split(steps[1])
    assert pip[:2] == [".venv/bin/pip", "install"] and "requirements.txt" in pip  # pinned torch, as for a Space
    text = README.read_text(encoding="utf-8")
    assert "`.venv/bin/seedprints demo`" in text[text.index("## The two commands"):text.index("bash scripts/test.sh")]

    checkout = tmp_path / "checkout"
    checkout.mkdir()
    for name in ("pyproject.toml", "README.md", "requirements.txt"):
        shutil.copy(ROOT / name, checkout / name)
    shutil.copytree(ROOT / "seedprints", checkout / "seedprints", ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "venv", ".venv"], cwd=checkout, check=True, timeout=300)
    purelib = "import sysconfig; print(sysconfig.get_paths()['purelib'])"
    venv_site = Path(subprocess.run([".venv/bin/python", "-c", purelib], cwd=checkout, capture_output=True, text=True,
                                    check=True).stdout.strip())
    (venv_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PYTHONPATH": ""}
    # offline there is no build isolation: the build uses this environment's setuptools, not the venv's old one
    subprocess.run([".venv/bin/pip", "uninstall", "-y", "-q", "setuptools"], cwd=checkout, env=env, check=True,
                   capture_output=True, timeout=300)
    proc = subprocess.run([*pip, "--no-index", "--no-deps", "--no-build-isolation", "-q"], cwd=checkout, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]
    cli = checkout / ".venv" / "bin" / "seedprints"
    assert cli.is_file()
    out = subprocess.run([str(cli), "--help"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and "demo" in out.stdout, out.stderr[-2000:]


def api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.mark.slow  # builds the demo and audits it: 400 s on a busy 2-core machine
def test_readme_python_api_example_runs():
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(api_example(), "README.md:Python API", "exec"), {"__name__": "readme_example"})
    printed = out.getvalue()
    assert "8 references" in printed
    assert "MATCH 3" in printed
    assert "seedprints scan " in printed
    z = float(re.search(r"z = (-?[\d.]+), log10 p", printed).group(1))
    assert z > 10


NUMBERS = {"two": 2, "three": 3, "four": 4, "five": 5, "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10}


def _count(pattern: str, page: Path = README) -> int:
    word = re.search(pattern, page.read_text(encoding="utf-8")).group(1)
    return int(word) if word.isdigit() else NUMBERS[word]


def test_readme_counts_the_demo_as_the_code_builds_it():
    from seedprints.demo import REFERENCE_SEEDS, SUSPECTS

    assert _count(r"plus (\w+) suspects: ") == len(SUSPECTS)
    assert _count(r"the table ranks the (\w+) references") == 2 * len(REFERENCE_SEEDS)  # each seed as init and fine-tuned


def test_readme_counts_and_names_the_app_tabs_as_the_app_builds_them():
    import gradio as gr

    from ui.app import build_blocks
    from ui.context import AppConfig, Server, Throughput
    from ui.jobs import JobQueue

    blocks = build_blocks(Server(AppConfig(), JobQueue(), Throughput()))
    tabs = [b.label for b in blocks.blocks.values() if isinstance(b, gr.Tab)]
    sentence = re.search(r"`python app.py` serves (\w+) tabs, ([^(]*) \(", APP_PAGE.read_text(encoding="utf-8"))
    assert NUMBERS[sentence.group(1)] == len(tabs)
    assert re.split(r", | and ", sentence.group(2)) == tabs


MARKER = re.compile(r"<!-- (runs(?: with the app: (?P<test>[\w./-]+))?) -->\n"
                    r"(?P<block>```(?P<lang>[\w-]*)\n(?P<code>.*?)```)", re.S)


def marked_blocks() -> list[tuple[str, int, str | None, str, str]]:
    """(document, line, browser test or None, language, code) for every code block marked as runnable."""
    out = []
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        for m in MARKER.finditer(text):
            out.append((doc.relative_to(ROOT).as_posix(), text.count("\n", 0, m.start()) + 1, m.group("test"),
                        m.group("lang"), m.group("code")))
    return out


def test_every_runs_marker_stands_before_a_python_block():
    """A marker that is misspelt, stands before prose or before another language would silently run nothing."""
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        markers = len(re.findall(r"<!--\s*runs\b", text))
        assert markers == len(MARKER.findall(text)), f"{doc.name}: a runs marker is not directly above a code block"
    assert all(lang == "python" for _, _, _, lang, _ in marked_blocks())


def test_every_example_that_says_it_runs_is_marked():
    """Prose that promises an example runs as written is followed by, or follows, a marked block."""
    marked = {(doc, code) for doc, _, _, _, code in marked_blocks()}
    for doc in DOCUMENTS:
        text = doc.read_text(encoding="utf-8")
        for m in re.finditer(r"runs as written", text):
            blocks = [b for b in re.finditer(r"```python\n(.*?)```", text, re.S)]
            near = min(blocks, key=lambda b: min(abs(b.start() - m.start()), abs(b.end() - m.start())))
            assert (doc.relative_to(ROOT).as_posix(), near.group(1)) in marked, f"{doc.name}: unmarked example"


def test_the_readme_examples_are_marked_and_the_browser_test_runs_the_app_one():
    blocks = marked_blocks()
    assert ("README.md", api_example()) in {(doc, code) for doc, _, _, _, code in blocks}
    app_blocks = [(doc, test, code) for doc, _, test, _, code in blocks if test]
    assert app_blocks, "the README's app API example is marked as run by its browser test"
    for doc, test, code in app_blocks:
        assert (ROOT / test).is_file(), test
        source = (ROOT / test).read_text(encoding="utf-8")
        assert doc == "README.md" and 'text.index("### API")' in source  # where the browser test reads it
        text = README.read_text(encoding="utf-8")
        assert re.search(r"```python\n(.*?)```", text[text.index("### API"):], re.S).group(1) == code


def _local_blocks():
    """The blocks this file runs here (the README's Python API example has its own test with its promises)."""
    return [pytest.param(code, id=f"{doc}:{line}") for doc, line, test, _, code in marked_blocks()
            if test is None and not (doc == "README.md" and code == api_example())]


@pytest.mark.parametrize("code", _local_blocks())
def test_marked_code_block_runs(code, capsys):
    exec(compile(code, "marked block", "exec"), {"__name__": "docs_example"})
