"""Where SeedPrints keeps its data: one home folder, overridable with SEEDPRINTS_HOME."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """$SEEDPRINTS_HOME, else /data/seedprints on a Hugging Face Space with persistent storage, else ~/.cache/seedprints."""
    env = os.environ.get("SEEDPRINTS_HOME")
    if env:
        return Path(env).expanduser()
    if Path("/data").is_dir() and os.access("/data", os.W_OK) and os.environ.get("SPACE_ID"):
        return Path("/data/seedprints")
    return Path.home() / ".cache" / "seedprints"


def default_library() -> Path:
    """The library used when none is named."""
    return home() / "library"


def default_cache() -> Path:
    """The fingerprint cache folder."""
    return home() / "cache"
