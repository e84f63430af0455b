"""The package as users install it: a wheel in a fresh venv, used from another folder."""

from __future__ import annotations

import json
import os
import site
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run(list(args), cwd=cwd, env=env, capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, f"{args}: {proc.stderr[-2000:]}"
    return proc


def test_wheel_installs_and_runs_outside_the_checkout(tmp_path):
    dist, venv, elsewhere = tmp_path / "dist", tmp_path / "venv", tmp_path / "elsewhere"
    elsewhere.mkdir()
    run(sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation", "-w", str(dist),
        "-q", cwd=tmp_path)
    wheel = next(dist.glob("seedprints-*.whl"))
    run(sys.executable, "-m", "venv", str(venv), cwd=tmp_path)
    py = venv / "bin" / "python"
    # the dependencies come from this test environment (a .pth line; no download), the package from the wheel
    venv_site = Path(run(str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])",
                         cwd=tmp_path).stdout.strip())
    (venv_site / "deps.pth").write_text("\n".join(site.getsitepackages()) + "\n")
    run(str(py), "-m", "pip", "install", "--no-deps", "--no-index", "-q", str(wheel), cwd=tmp_path)
    check = subprocess.run([str(py), "-m", "pip", "check"], capture_output=True, text=True, cwd=tmp_path)
    # every dependency seedprints declares is satisfied (the venv's own old setuptools may upset torch: not ours)
    assert not [line for line in check.stdout.splitlines() if line.lower().startswith("seedprints")], check.stdout
    env = {**os.environ, "SEEDPRINTS_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    info = json.loads(run(str(py), "-c", "import json, seedprints, importlib.metadata as m; print(json.dumps("
                          "[seedprints.__file__, seedprints.__version__, m.version('seedprints')]))",
                          cwd=elsewhere, env=env).stdout)
    assert info[0].startswith(str(venv)) and info[1] == info[2]
    # data the code reads at run time ships inside the package
    run(str(py), "-c", "from seedprints import teaching as T; assert T.fpr_table_from_accuracy()", cwd=elsewhere, env=env)
    out = run(str(venv / "bin" / "seedprints"), "demo", "--json", "-q", cwd=elsewhere, env=env).stdout
    reports = json.loads(out)
    assert reports["derived"]["verdict"]["label"] == "MATCH" and reports["derived"]["verdict"]["seed"] == 3
    assert reports["unrelated"]["verdict"]["label"] == "NO MATCH"
