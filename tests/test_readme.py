"""The README's Python API example runs as written and prints what it promises."""

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
