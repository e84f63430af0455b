"""The core API with the core dependencies alone: optional packages are checked in one place and never required.

The fast lane's proof runs the core API in a subprocess whose site-packages is this environment's
without the extras' packages (scikit-learn, umap-learn, plotly, pandas, gradio, peft, ray);
tests/test_packaging.py proves the same in a fresh venv with only pyproject's dependencies.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from seedprints import optional
from seedprints.errors import MissingDependencyError, SeedPrintsError
from seedprints.similarity import not_mapped

from helpers import CORE_SCRIPT, EXTRAS_ONLY

ROOT = Path(__file__).resolve().parents[1]
#: site-packages entries that hold the extras' packages: the packages, their compiled libraries and metadata
_HIDDEN = ("sklearn", "scikit_learn", "umap", "umap_learn", "plotly", "_plotly_utils", "pandas", "gradio", "peft", "ray")


def core_only_site(tmp_path: Path) -> Path:
    """A site folder linking every entry of this environment's site-packages except the extras' packages."""
    site_dir = tmp_path / "core-site"
    site_dir.mkdir()
    purelib = Path(sysconfig.get_paths()["purelib"])
    for entry in purelib.iterdir():
        top = entry.name.split("-", 1)[0].split(".", 1)[0]
        if top not in _HIDDEN:
            (site_dir / entry.name).symlink_to(entry)
    return site_dir


def run_core(tmp_path: Path, script: str) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in a fresh interpreter that sees only the core-only site folder (and its .pth files)."""
    site_dir = core_only_site(tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    prelude = f"import site; site.addsitedir({str(site_dir)!r}); EXTRAS = {EXTRAS_ONLY!r}\n"
    env = {**os.environ, "PYTHONPATH": "", "SEEDPRINTS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1",
           "TRANSFORMERS_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-S", "-c", prelude + script], cwd=work, env=env, capture_output=True,
                          text=True, timeout=600)


def test_core_api_runs_without_the_extras(tmp_path):
    proc = run_core(tmp_path, CORE_SCRIPT)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["loaded"] == [], "the core API imported an extra's package"
    assert out["verdict"] == "MATCH" and out["seed"] == 1 and out["matrix"] == 4
    # the map is left out and the result says so, naming what to install; the record carries the same
    assert out["drawn"] is False and out["map_in_record"] is False
    assert "scikit-learn" in out["note"] and "pip install 'seedprints[app]'" in out["note"]
    # asking for the map is a plain one-line error naming the fix
    assert out["asked"] == ("the map of models needs scikit-learn, which is not installed: "
                            "pip install 'seedprints[app]'")
    assert out["codes"] == [0, 0, 0]
    assert "same lineage" in out["cli"] and "VERDICT: MATCH" in out["cli"]


def test_the_extras_site_really_lacks_them(tmp_path):
    """The fast lane's proof holds only if its interpreter cannot import the extras at all."""
    proc = run_core(tmp_path, "from seedprints import optional\n"
                              "print([m for m in EXTRAS if optional.available(m)])\n"
                              "import importlib.util; print(importlib.util.find_spec('seedprints').origin)")
    assert proc.returncode == 0, proc.stderr[-2000:]
    available, origin = proc.stdout.strip().splitlines()[-2:]
    assert available == "[]"
    assert origin.startswith(str(ROOT))


def test_every_optional_module_names_its_extra_as_pyproject_does():
    import tomllib

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    for module, (package, extra) in optional.OPTIONAL.items():
        assert any(req.split(">")[0].split("=")[0].split("<")[0] == package for req in extras[extra]), (module, extra)
        assert optional.available(module)  # the dev environment has every extra
    assert set(EXTRAS_ONLY) <= set(optional.OPTIONAL)


def test_missing_dependency_error_is_one_line_and_an_import_error():
    err = optional.missing("umap", "the map of 300 models")
    assert isinstance(err, ImportError) and isinstance(err, SeedPrintsError) and isinstance(err, MissingDependencyError)
    assert str(err) == "the map of 300 models needs umap-learn, which is not installed: pip install 'seedprints[app]'"
    assert (err.name, err.package, err.extra) == ("umap", "umap-learn", "app")
    with pytest.raises(ValueError, match="not an optional dependency"):
        optional.require("numpy", "anything")
    assert optional.require("plotly.io", "the report").__name__ == "plotly.io"


def test_a_map_left_out_is_drawn_as_its_note():
    from seedprints.plots import embedding_map

    emb = not_mapped(5, "not asked for (draw_map=False)")
    assert not emb.drawn and emb.coords.shape == (0, 2)
    fig = embedding_map(emb, [f"m{i}" for i in range(5)], ["x"] * 5, suspect_index=0)
    assert not fig.data and fig.layout.annotations[0].text == emb.note
