"""The README's Python API example runs as written and prints what it promises; the counts it states match the code."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def api_example() -> str:
    text = README.read_text(encoding="utf-8")
    section = text[text.index("## Python API"):]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


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


def _count(pattern: str) -> int:
    word = re.search(pattern, README.read_text(encoding="utf-8")).group(1)
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
    sentence = re.search(r"`python app.py` serves (\w+) tabs, ([^(]*) \(", README.read_text(encoding="utf-8"))
    assert NUMBERS[sentence.group(1)] == len(tabs)
    assert re.split(r", | and ", sentence.group(2)) == tabs
