"""Shared fixtures: tiny real transformers models built from seeds, and an isolated SEEDPRINTS_HOME.

The fast lane for day-to-day work leaves out the slow, browser and Ray tests (markers in pyproject.toml):

    python -m pytest -m "not slow and not browser and not ray"

Helpers that test modules import (tiny_llama, tiny_spec, spies) live in tests/helpers.py.
"""

from __future__ import annotations

import os

import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")

from helpers import tiny_llama, tiny_spec  # noqa: E402
from seedprints.probes import ProbeSpec  # noqa: E402


@pytest.fixture(scope="module")
def single_thread():
    """Torch single-threaded for a module: with another job on the same cores, oversubscribed threads slow
    small models down more than tenfold (weights are unchanged)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path, monkeypatch):
    """Every test gets its own SEEDPRINTS_HOME so caches and libraries never leak between tests."""
    monkeypatch.setenv("SEEDPRINTS_HOME", str(tmp_path / "home"))
    yield


@pytest.fixture
def spec() -> ProbeSpec:
    return tiny_spec()


@pytest.fixture
def saved_model(tmp_path):
    """Factory: save tiny_llama(seed) as a Hugging Face folder and return its path."""

    def make(seed: int = 0, name: str | None = None, **kw) -> str:
        path = tmp_path / (name or f"model-seed{seed}")
        tiny_llama(seed, **kw).save_pretrained(path)
        return str(path)

    return make
