"""A pickled ``.bin`` checkpoint whose payload would run code is refused without running it.

Each malicious file's ``__reduce__`` would create a marker file (``os.system('touch ...')`` or
``pathlib.Path.touch``); after loading, fingerprinting or the CLI, the marker must not exist.
A genuine ``torch.save(state_dict)`` ``.bin`` still loads (positive control).
"""

from __future__ import annotations

import os
import pathlib
import pickle
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from seedprints.audit import fingerprint_model
from seedprints.cli import main
from seedprints.errors import ModelLoadError, SeedPrintsError
from seedprints.extract import extract_features
from seedprints.loading import load_model

from helpers import tiny_llama, tiny_spec

ROOT = Path(__file__).resolve().parents[1]
SPEC = tiny_spec(n=20, seq_len=8)
PROBE_ARGS = ["--n-samples", "20", "--seq-len", "8", "--vocab-range", "512", "--no-cache", "--device", "cpu", "-q"]


class SystemPayload:
    """Unpickling calls os.system('touch MARKER')."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


class TouchPayload:
    """Unpickling calls pathlib.Path.touch(MARKER) (no shell needed)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def write_evil_bin(path: Path, marker: Path, how: str) -> Path:
    """A pytorch_model.bin-style file whose unpickling would create ``marker``."""
    state = {"model.embed_tokens.weight": torch.zeros(4)}
    if how == "pickle-os-system":  # legacy (non-zip) pickle, as old checkpoints are
        state["lm_head.weight"] = SystemPayload(marker)
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=2)
    elif how == "pickle-path-touch":
        state["lm_head.weight"] = TouchPayload(marker)
        with open(path, "wb") as f:
            pickle.dump(state, f, protocol=2)
    elif how == "torch-save-os-system":  # torch's zip container around the same pickle
        state["lm_head.weight"] = SystemPayload(marker)
        torch.save(state, path)
    elif how == "torch-save-path-touch":
        state["lm_head.weight"] = TouchPayload(marker)
        torch.save(state, path)
    else:  # pragma: no cover
        raise ValueError(how)
    return path


PAYLOADS = ["pickle-os-system", "pickle-path-touch", "torch-save-os-system", "torch-save-path-touch"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("pickle") / "tiny0"
    tiny_llama(0).save_pretrained(path)
    return path


@pytest.fixture
def marker(tmp_path) -> Path:
    m = tmp_path / "PWNED-marker"
    assert not m.exists()
    return m


def test_payloads_really_execute_when_unpickled_unsafely(tmp_path, marker):
    """Sanity check of the test itself: a plain pickle.load of the file does create the marker."""
    for how in ("pickle-os-system", "pickle-path-touch"):
        path = write_evil_bin(tmp_path / f"{how}.bin", marker, how)
        with open(path, "rb") as f:
            pickle.load(f)  # noqa: S301 - deliberately unsafe, proves the payload works
        assert marker.exists(), how
        marker.unlink()


def evil_folder(tmp_path: Path, model_dir: Path, marker: Path, how: str) -> Path:
    folder = tmp_path / f"evil-{how}"
    folder.mkdir()
    shutil.copyfile(model_dir / "config.json", folder / "config.json")
    write_evil_bin(folder / "pytorch_model.bin", marker, how)
    return folder


def assert_refused(excinfo: pytest.ExceptionInfo) -> str:
    err = excinfo.value
    assert isinstance(err, ModelLoadError), f"{type(err).__name__}: {err}"
    msg = str(err)
    assert msg and "\n" not in msg and "\r" not in msg, repr(msg)
    return msg


@pytest.mark.parametrize("how", PAYLOADS)
def test_malicious_bin_folder_is_refused_without_running_code(tmp_path, model_dir, marker, how):
    folder = evil_folder(tmp_path, model_dir, marker, how)
    with pytest.raises(SeedPrintsError) as ei:
        load_model(folder, device="cpu")
    msg = assert_refused(ei)
    assert folder.name in msg
    with pytest.raises(SeedPrintsError) as ei:
        fingerprint_model(str(folder), SPEC, device="cpu")
    assert_refused(ei)
    assert not marker.exists(), "the pickle payload ran"


@pytest.mark.parametrize("how", ["pickle-os-system", "torch-save-path-touch"])
def test_malicious_lone_bin_with_config_is_refused(tmp_path, model_dir, marker, how):
    lone = write_evil_bin(tmp_path / "evil.bin", marker, how)
    with pytest.raises(SeedPrintsError) as ei:
        load_model(lone, config=model_dir / "config.json", device="cpu")
    msg = assert_refused(ei)
    assert "evil" in msg
    assert not marker.exists(), "the pickle payload ran"


def test_cli_fingerprint_malicious_bin_exit_2_one_line(tmp_path, model_dir, marker):
    """The real command, in its own process: exit code 2, one line on stderr, no output file, no marker."""
    folder = evil_folder(tmp_path, model_dir, marker, "pickle-os-system")
    out = tmp_path / "out.safetensors"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SEEDPRINTS_HOME": str(tmp_path / "home")}
    proc = subprocess.run([sys.executable, "-m", "seedprints", "fingerprint", str(folder), "-o", str(out),
                           *PROBE_ARGS], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert proc.returncode == 2, (proc.returncode, proc.stderr)
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("seedprints: error: "), proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout == ""
    assert not out.exists()
    assert not marker.exists(), "the pickle payload ran"


def test_cli_lone_bin_with_config_in_process(tmp_path, model_dir, marker, capsys):
    lone = write_evil_bin(tmp_path / "evil.bin", marker, "torch-save-os-system")
    out = tmp_path / "out.safetensors"
    capsys.readouterr()
    code = main(["fingerprint", str(lone), "--config", str(model_dir / "config.json"), "-o", str(out), *PROBE_ARGS])
    captured = capsys.readouterr()
    assert code == 2, captured.err
    assert len(captured.err.splitlines()) == 1 and captured.err.startswith("seedprints: error: "), captured.err
    assert not out.exists()
    assert not marker.exists(), "the pickle payload ran"


def test_malicious_bin_beside_safetensors_is_never_read(tmp_path, model_dir, marker):
    """A folder with model.safetensors uses it; a pytorch_model.bin beside it is not unpickled at all."""
    folder = tmp_path / "mixed"
    shutil.copytree(model_dir, folder)
    write_evil_bin(folder / "pytorch_model.bin", marker, "pickle-os-system")
    write_evil_bin(folder / "training_args.bin", marker, "pickle-path-touch")
    feats = extract_features(load_model(folder, device="cpu"), SPEC)
    assert feats.shape == (SPEC.n_samples, 128)
    assert not marker.exists(), "a .bin beside the safetensors was unpickled"


def test_legitimate_bin_still_loads(tmp_path, model_dir):
    """Positive control: a plain torch.save(state_dict) .bin, as a lone file with --config, loads and matches."""
    lone = tmp_path / "weights.bin"
    torch.save(tiny_llama(0).state_dict(), lone)
    from_bin = extract_features(load_model(lone, config=model_dir / "config.json", device="cpu"), SPEC)
    from_folder = extract_features(load_model(model_dir, device="cpu"), SPEC)
    np.testing.assert_array_equal(from_bin, from_folder)


# ---------------------------------------------------------------------------- message quality
@pytest.mark.parametrize("how", ["pickle-os-system", "torch-save-os-system"])
def test_refusal_message_names_file_and_says_unsafe(tmp_path, model_dir, marker, how):
    folder = evil_folder(tmp_path, model_dir, marker, how)
    with pytest.raises(SeedPrintsError) as ei:
        load_model(folder, device="cpu")
    msg = assert_refused(ei)
    assert not marker.exists()
    assert "pytorch_model.bin" in msg, msg
    assert "unsafe" in msg.lower() or "refused" in msg.lower(), msg
    assert not any(ord(c) < 32 for c in msg), f"control characters in {msg!r}"
    assert "weights_only` set to `False`" not in msg and "will likely succeed" not in msg, msg
