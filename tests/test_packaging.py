"""The package as users install it: a wheel in a fresh venv with only its core dependencies, used from another folder.

The venv sees neither the system's nor this test environment's site-packages: pip installs the
wheel with pyproject's ``dependencies`` alone (torch pinned to the local 2.13.0 build, the rest
from the package index or pip's cache), so an import of an extra's package from the core API
fails here as it would for a user of ``pip install seedprints``.  About a minute with a warm pip
cache, hence ``slow``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from helpers import CORE_SCRIPT, EXTRAS_ONLY

ROOT = Path(__file__).resolve().parents[1]
TORCH = "torch==2.13.0"  # the local CPU build; an unpinned torch would pull a multi-GB CUDA build

pytestmark = pytest.mark.slow


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=1200)
    assert proc.returncode == 0, f"{args}: {proc.stdout[-1500:]}\n{proc.stderr[-3000:]}"
    return proc


def _req(text: str) -> tuple[str, str, str]:
    """A requirement as (name, specifiers, marker), whichever order the metadata writes them in."""
    from packaging.requirements import Requirement

    req = Requirement(text)
    return req.name, ",".join(sorted(str(s) for s in req.specifier)), str(req.marker or "")


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(python, seedprints command, a folder outside the checkout, env) of a fresh venv holding the wheel."""
    tmp = tmp_path_factory.mktemp("packaging")
    dist, venv, elsewhere = tmp / "dist", tmp / "venv", tmp / "elsewhere"
    elsewhere.mkdir()
    run(sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(dist),
        "-q", cwd=tmp)
    wheel = next(dist.glob("seedprints-*.whl"))
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp)  # no --system-site-packages, no .pth into this env
    py = venv / "bin" / "python"
    env = {**os.environ, "PYTHONPATH": "", "PYTHONNOUSERSITE": "1", "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
    env.pop("VIRTUAL_ENV", None)
    run(str(py), "-m", "pip", "install", "-q", str(wheel), TORCH, cwd=tmp, env=env)
    env.update({"SEEDPRINTS_HOME": str(tmp / "home"), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    return py, venv / "bin" / "seedprints", elsewhere, env


def test_venv_holds_the_core_dependencies_only(installed):
    py, _, elsewhere, env = installed
    out = json.loads(run(str(py), "-c", "import importlib.util, json, sys, sysconfig; print(json.dumps("
                         f"[[m for m in {EXTRAS_ONLY!r} if importlib.util.find_spec(m)], sys.path]))",
                         cwd=elsewhere, env=env).stdout)
    assert out[0] == [], "the venv has an extra's package: it could hide a core import of it"
    assert not [p for p in out[1] if "site-packages" in p and not p.startswith(str(py.parents[1]))], out[1]
    check = subprocess.run([str(py), "-m", "pip", "check"], capture_output=True, text=True, cwd=elsewhere, env=env)
    # every dependency seedprints declares is satisfied (the venv's own old setuptools may upset torch: not ours)
    assert not [line for line in check.stdout.splitlines() if line.lower().startswith("seedprints")], check.stdout


def test_installed_package_is_the_wheel_with_its_data(installed):
    py, _, elsewhere, env = installed
    info = json.loads(run(str(py), "-c", "import json, seedprints, importlib.metadata as m; print(json.dumps("
                          "[seedprints.__file__, seedprints.__version__, m.version('seedprints'), "
                          "sorted(m.requires('seedprints'))]))", cwd=elsewhere, env=env).stdout)
    assert info[0].startswith(str(py.parents[1])) and info[1] == info[2]
    core = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    assert {_req(r) for r in core} <= {_req(r) for r in info[3]}
    # data the code reads at run time ships inside the package
    run(str(py), "-c", "from seedprints import teaching as T; assert T.fpr_table_from_accuracy()", cwd=elsewhere, env=env)


def test_one_call_audit_and_the_cli_with_core_dependencies_only(installed):
    py, command, elsewhere, env = installed
    prelude = f"EXTRAS = {EXTRAS_ONLY!r}\n"
    out = json.loads(run(str(py), "-c", prelude + CORE_SCRIPT, cwd=elsewhere, env=env).stdout.strip().splitlines()[-1])
    assert out["loaded"] == [] and out["verdict"] == "MATCH" and out["seed"] == 1
    assert out["drawn"] is False and "pip install 'seedprints[app]'" in out["note"]
    assert out["asked"].endswith("needs scikit-learn, which is not installed: pip install 'seedprints[app]'")
    assert out["codes"] == [0, 0, 0]
    # the installed command, as a user types it: CORE_SCRIPT left the two model folders in `elsewhere`
    compare = json.loads(run(str(command), "compare", "parent", "suspect", "--vocab-range", "512", "--json", "-q",
                             cwd=elsewhere, env=env).stdout)
    assert compare["significant"] is True and compare["method"].startswith("calibrated-repairing")
